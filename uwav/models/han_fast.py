"""The CPU-tuned HAN layer: the same parameters and function as `uwav.models.han.HANLayer`, fewer CPU passes.

`uwav.models.han` holds the definition (the paper's equations, written plainly). This module computes the
same layer L(q, k) with the work arranged for a CPU training step, where at T = 10 segments the
bookkeeping around the matrix products costs as much as the products:

- attention through `uwav.models.attention.Attention` (nn.MultiheadAttention's parameters, fewer passes)
  and dropout through `uwav.models.dropout.FastDropout` (a quarter of the random draws);
- `forward_pair` runs the parts of HAN's sequential update that do not wait on the new audio stream for
  both streams in one batch;
- in-place residual adds on fresh outputs, and the FFN on [B*T, d] rows.

The state_dict keys and shapes equal the plain layer's, so a checkpoint loads into either; outputs and
gradients are tested equal (dropout off). `HAN` picks this layer on CPU by default (`parser.layer_impl`).
On a GPU the stock kernels are the fast ones, so there the plain layer is used. Measured effect:
bench/README.md.
"""

import torch
from torch import nn

from uwav.models.attention import Attention
from uwav.models.dropout import FastDropout


class FastHANLayer(nn.Module):
    """HAN's layer L(q, k) of `uwav.models.han.HANLayer`, tuned for CPU training (see the module docstring)."""

    def __init__(self, d_model: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.cross_attn = Attention(d_model, heads, dropout)
        self.self_attn = Attention(d_model, heads, dropout)
        self.linear1 = nn.Linear(d_model, ff)
        self.linear2 = nn.Linear(ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.drop_cross = FastDropout(dropout)
        self.drop_self = FastDropout(dropout)
        self.drop_ff_inner = FastDropout(dropout)
        self.drop_ff_out = FastDropout(dropout)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """q, k [B, T, d] -> L(q, k) [B, T, d]."""
        w = self.cross_attn.split_in_proj()
        own = self.drop_self(self.self_attn(q))
        return self._finish(q, self.cross_attn.project_q(q, w), k, own, w)

    def forward_pair(self, a: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """HAN's sequential update a' = L(a, v), v' = L(v, a'), with the work that does not wait on a'
        done for both streams at once.

        The self-attention of v and the query projection of v's cross-attention read only the layer's
        input v, so both streams go through those in one batch of 2B clips: half the operator calls and
        twice the rows per matrix product. Only the cross-attention keys/values and the FFN of v wait for a'.
        """
        w = self.cross_attn.split_in_proj()
        both = torch.cat([a, v])  # [2B, T, d]
        own_a, own_v = self.drop_self(self.self_attn(both)).chunk(2)
        q_a, q_v = self.cross_attn.project_q(both, w).chunk(2)
        a_new = self._finish(a, q_a, v, own_a, w)
        v_new = self._finish(v, q_v, a_new, own_v, w)
        return a_new, v_new

    def _finish(self, q: torch.Tensor, q_cross: torch.Tensor, k: torch.Tensor, own: torch.Tensor,
                w: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The rest of L(q, k) given q's projected cross-attention query and its dropped-out self-attention."""
        cross = self.cross_attn.attend(q_cross, *self.cross_attn.project_kv(k, w))
        # In-place adds and ReLU land on fresh outputs that no backward reads (autograd checks this):
        # fewer large allocations, each of which costs page faults on first touch on CPU. Never on a view
        # that autograd tracks: a Linear on a 3-D input returns a view of its 2-D product, and an in-place
        # op on such a view makes backward rebuild the whole base (CopySlices: a clone and two full
        # copies). `cross` is one when dropout passes it through, so that add is out of place; the FFN
        # runs on [B*T, d] rows (its in-place ReLU on a 3-D view cost 3 % of a training step).
        dropped = self.drop_cross(cross)
        z = (dropped + own if dropped is cross and cross.requires_grad else dropped.add_(own)).add_(q)
        z = self.norm1(z)
        rows = z.view(-1, z.shape[-1])
        ffn = self.linear2(self.drop_ff_inner(torch.relu_(self.linear1(rows))))
        return self.norm2(self.drop_ff_out(ffn).add_(rows).view_as(z))
