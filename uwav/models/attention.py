"""Multi-head attention for HAN's short clips: nn.MultiheadAttention's parameters, fewer CPU passes.

Same parameter names, shapes, order and initialisation as `nn.MultiheadAttention(d, heads, dropout)`
(so checkpoints load either way and a seeded model starts from the same weights), and the same function:
softmax(q k^T / sqrt(d_head)) v with dropout on the attention weights. What differs is the work around
the matrix products, which at T = 10 segments costs more than the attention itself on CPU:

- inputs stay batch-first; the stock module transposes to [T, B, d] and back (two copies per call);
- the 1 / sqrt(d_head) scale rides in the score product (`baddbmm` alpha) instead of two extra passes;
- attention-weight dropout is `FastDropout` (a quarter of `bernoulli_`'s random draws);
- the softmax over S = 10 keys is `ShortRowSoftmax`: torch's CPU softmax kernel is slow on rows this
  short (1.6 ms for [2048, 10, 10] on the project's 2-core CPU, against 0.24 ms for four whole-tensor
  passes);
- q/k/v and the two streams are separated with `unbind`/`split`, whose gradients are one concatenation,
  not a zero-filled full-size tensor per slice as plain indexing costs in backward;
- projections are exposed separately (`project_qkv`, `project_q`, `project_kv`, `attend`), so HAN can
  project both modality streams in one product where its update order allows (see `HANLayer.forward_pair`);
- without attention dropout (eval, p = 0) and on CUDA, `scaled_dot_product_attention` does it all.

Measured effect on the paper-size training step and validation pass: bench/README.md.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from uwav.models.dropout import FastDropout


class ShortRowSoftmax(torch.autograd.Function):
    """softmax over the last dimension, for many short rows; backward y * (g - sum(g * y))."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = (x - x.amax(dim=-1, keepdim=True)).exp_()
        y = y.div_(y.sum(dim=-1, keepdim=True))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return (grad - (grad * y).sum(dim=-1, keepdim=True)).mul_(y)


class Attention(nn.Module):
    def __init__(self, d_model: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
        self.d_model, self.heads, self.head_dim = d_model, heads, d_model // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        # Registration and RNG order of nn.MultiheadAttention: in_proj (empty), out_proj (Linear's own
        # init draws), then xavier on in_proj and zero biases.
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)
        self.drop = FastDropout(dropout)

    # -- projections ----------------------------------------------------------------------------------
    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, T, d] -> q, k, v, each [B, H, T, d_head] (views of one buffer)."""
        b, t, _ = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        return self._heads_first(qkv.view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)).unbind(0)

    def split_in_proj(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_q, b_q, W_kv, b_kv) of the cross-attention form. Split once per forward and pass to
        `project_q`/`project_kv`: every split of a parameter adds a full-size gradient concatenation."""
        d = self.d_model
        w_q, w_kv = self.in_proj_weight.split([d, 2 * d])
        b_q, b_kv = self.in_proj_bias.split([d, 2 * d])
        return w_q, b_q, w_kv, b_kv

    def project_q(self, x: torch.Tensor, w: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        """x [B, T, d] -> q [B, H, T, d_head]; w from `split_in_proj`."""
        w_q, b_q, _, _ = w or self.split_in_proj()
        b, t, _ = x.shape
        return self._heads_first(F.linear(x, w_q, b_q).view(b, t, self.heads, self.head_dim).transpose(1, 2))

    def project_kv(self, x: torch.Tensor, w: tuple[torch.Tensor, ...] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, S, d] -> k, v, each [B, H, S, d_head]; w from `split_in_proj`."""
        _, _, w_kv, b_kv = w or self.split_in_proj()
        b, s, _ = x.shape
        kv = F.linear(x, w_kv, b_kv)
        return self._heads_first(kv.view(b, s, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)).unbind(0)

    def _explicit_path(self, x: torch.Tensor) -> bool:
        # Training with attention dropout on CPU: torch's fused CPU kernel has no dropout and its fallback
        # draws bernoulli_ masks, so this module runs the products itself. Everywhere else (eval, p = 0,
        # CUDA, whose fused kernels do dropout) scaled_dot_product_attention does the whole attention.
        return self.training and self.drop.t15 > 0 and x.device.type == "cpu"

    def _heads_first(self, x: torch.Tensor) -> torch.Tensor:
        """The fused kernels read strided [.., H, T, d_head] views as they are; bmm needs them contiguous."""
        return x.contiguous() if self._explicit_path(x) else x

    # -- attention over projected inputs ---------------------------------------------------------------
    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q [B, H, T, d_head], k and v [B, H, S, d_head] (from the project_* methods) -> out_proj(attention)
        [B, T, d]."""
        b, h, t, hd = q.shape
        s = k.shape[2]
        if self._explicit_path(q):
            qf, kf = q.view(b * h, t, hd), k.view(b * h, s, hd)
            scores = torch.baddbmm(qf.new_empty(()), qf, kf.transpose(1, 2), beta=0.0, alpha=self.scale)
            weights = self.drop(ShortRowSoftmax.apply(scores))
            ctx = torch.bmm(weights, v.view(b * h, s, hd)).view(b, h, t, hd)
        else:
            ctx = F.scaled_dot_product_attention(q, k, v, dropout_p=self.drop.p if self.training else 0.0)
        return self.out_proj(ctx.transpose(1, 2).reshape(b, t, h * hd))

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention when key is None (or is query), else query attends to key (value = key)."""
        if key is None or key is query:
            return self.attend(*self.project_qkv(query))
        w = self.split_in_proj()
        return self.attend(self.project_q(query, w), *self.project_kv(key, w))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, heads={self.heads}, dropout={self.drop.p}"
