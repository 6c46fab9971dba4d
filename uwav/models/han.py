"""HAN (hybrid attention network) with MMIL pooling, in UWAV's configuration (method.md §9.1).

Audio [B, T, Da] and visual [B, T, Dv] segment features -> per-modality segment logits [B, T, C] from a
shared classifier, and a video-level probability [B, C] in (0, 2) from attention pooling over time and
modality. The original HAN (1 layer, 1 head, FFN 512, linear audio projection) is the same module with a
different HANConfig, except that it updated both streams in parallel.
"""

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from uwav.errors import UwavError
from uwav.models.attention import Attention
from uwav.models.dropout import FastDropout


@dataclass
class HANConfig:
    audio_dim: int = 128  # VGGish
    visual_dim: int = 2560  # ResNet-152 (8-frame mean) ++ R(2+1)D
    d_model: int = 512
    layers: int = 5
    heads: int = 16
    ff: int = 2048
    dropout: float = 0.1
    num_classes: int = 25
    audio_projection: str = "mlp"  # "mlp": 128->1024->ReLU->512 (UWAV); "linear": one Linear (original HAN)


class HANOutput(NamedTuple):
    video_prob: torch.Tensor  # [B, C], in (0, 2)
    seg_logits_a: torch.Tensor  # [B, T, C]
    seg_logits_v: torch.Tensor  # [B, T, C]
    feats_a: torch.Tensor  # [B, T, d]
    feats_v: torch.Tensor  # [B, T, d]


class HANLayer(nn.Module):
    """Post-norm layer L(q, k): cross-attention to k and self-attention summed into one residual, then FFN."""

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


class HAN(nn.Module):
    def __init__(self, config: HANConfig | None = None):
        super().__init__()
        self.config = cfg = config or HANConfig()
        d = cfg.d_model
        if cfg.audio_projection == "mlp":
            self.audio_proj: nn.Module = nn.Sequential(
                nn.Linear(cfg.audio_dim, 1024), nn.ReLU(), nn.Linear(1024, d)
            )
        elif cfg.audio_projection == "linear":
            self.audio_proj = nn.Linear(cfg.audio_dim, d)
        else:
            raise UwavError(
                f"HAN config: audio_projection is {cfg.audio_projection!r}; expected 'mlp' or 'linear'"
            )
        self.visual_proj = nn.Linear(cfg.visual_dim, d)
        # Layer i is applied to both streams (shared weights per depth).
        self.layers = nn.ModuleList(HANLayer(d, cfg.heads, cfg.ff, cfg.dropout) for _ in range(cfg.layers))
        self.fc_prob = nn.Linear(d, cfg.num_classes)
        self.fc_frame_att = nn.Linear(d, cfg.num_classes)
        self.fc_av_att = nn.Linear(d, cfg.num_classes)

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        """Shared segment classifier: feats [..., d] -> logits [..., C] (used by the mixup loss)."""
        return self.fc_prob(feats)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> HANOutput:
        """audio [B, T, Da], visual [B, T, Dv] -> HANOutput."""
        a = self.audio_proj(audio)
        v = self.visual_proj(visual)
        for layer in self.layers:
            # Sequential update: the visual stream attends to the already updated audio stream.
            a, v = layer.forward_pair(a, v)
        seg_a = self.fc_prob(a)
        seg_v = self.fc_prob(v)

        x = torch.stack([a, v], dim=2)  # [B, T, M=2, d]
        frame_att = torch.softmax(self.fc_frame_att(x), dim=1)  # over time, [B, T, M, C]
        av_att = torch.softmax(self.fc_av_att(x), dim=2)  # over modality, [B, T, M, C]
        seg_prob = torch.sigmoid(torch.stack([seg_a, seg_v], dim=2))  # [B, T, M, C]
        video_prob = (frame_att * av_att * seg_prob).sum(dim=(1, 2))  # [B, C]
        return HANOutput(video_prob, seg_a, seg_v, a, v)
