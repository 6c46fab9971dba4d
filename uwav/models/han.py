"""HAN (hybrid attention network) with MMIL pooling, in UWAV's configuration (method.md §9.1).

Audio [B, T, Da] and visual [B, T, Dv] segment features are projected to width d, then L layers update
both streams in turn (a' = L(a, v), then v' = L(v, a'); one layer's weights serve both streams):

    L(q, k) = LN(z + Dropout(FFN(z))),   z = LN(q + Dropout(Attn(q, k, k)) + Dropout(Attn(q, q, q)))

A shared classifier gives segment logits per modality [B, T, C]; the video-level probability [B, C], in
(0, 2), pools the segment probabilities with attention over time and over the two modalities (MMIL).
The original HAN (1 layer, 1 head, FFN 512, linear audio projection) is this module with another
`ParserConfig`, except that it updated both streams in parallel. The paper's CLIP + CLAP variant
(Table A6 †, configs/llp_clipclap.yaml) is the code's: d = 768, no visual projection
(`parser.visual_projection: none`), audio MLP 512 → 1536 → 768.

`HANLayer` below is the definition. `uwav.models.han_fast.FastHANLayer` computes the same layer with the
same parameters, arranged for CPU training; `parser.layer_impl` chooses (auto: the fast one on CPU).
"""

from typing import NamedTuple

import torch
from torch import nn

from uwav.config import ParserConfig
from uwav.errors import UwavError
from uwav.models.han_fast import FastHANLayer

# Parser inputs of the HAN layout: VGGish audio, ResNet-152 (8-frame mean) ++ R(2+1)D visual, LLP's classes.
HAN_AUDIO_DIM, HAN_VISUAL_DIM, LLP_NUM_CLASSES = 128, 2560, 25


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
        self.cross_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.self_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, ff)
        self.linear2 = nn.Linear(ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.drop_cross = nn.Dropout(dropout)
        self.drop_self = nn.Dropout(dropout)
        self.drop_ff_inner = nn.Dropout(dropout)
        self.drop_ff_out = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """q, k [B, T, d] -> L(q, k) [B, T, d]."""
        cross = self.cross_attn(q, k, k, need_weights=False)[0]
        own = self.self_attn(q, q, q, need_weights=False)[0]
        z = self.norm1(q + self.drop_cross(cross) + self.drop_self(own))
        ffn = self.linear2(self.drop_ff_inner(torch.relu(self.linear1(z))))
        return self.norm2(z + self.drop_ff_out(ffn))

    def forward_pair(self, a: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """HAN's sequential update: the visual stream attends to the already updated audio stream."""
        a = self(a, v)
        return a, self(v, a)


LAYERS = {"plain": HANLayer, "fast": FastHANLayer}


class HAN(nn.Module):
    def __init__(self, config: ParserConfig | None = None, audio_dim: int = HAN_AUDIO_DIM,
                 visual_dim: int = HAN_VISUAL_DIM, num_classes: int = LLP_NUM_CLASSES, layer_impl: str = "plain"):
        """config: the `parser:` section; the input widths and class count come from the data.

        layer_impl: plain (`HANLayer`) or fast (`FastHANLayer`); the config's `auto` is resolved by the
        caller, which knows the device (uwav.fit.build_parser).
        """
        super().__init__()
        self.config = cfg = config or ParserConfig()
        self.audio_dim, self.visual_dim, self.num_classes = audio_dim, visual_dim, num_classes
        if layer_impl not in LAYERS:
            raise UwavError(f"HAN: layer_impl is {layer_impl!r}; expected one of {', '.join(LAYERS)}")
        self.layer_impl = layer_impl
        d = cfg.d_model
        if cfg.audio_projection == "mlp":  # hidden width 2·d, as the code's MLP(Da, 2·d, d)
            self.audio_proj: nn.Module = nn.Sequential(nn.Linear(audio_dim, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        elif cfg.audio_projection == "linear":
            self.audio_proj = nn.Linear(audio_dim, d)
        else:
            raise UwavError(f"HAN config: audio_projection is {cfg.audio_projection!r}; expected 'mlp' or 'linear'")
        if cfg.visual_projection == "linear":
            self.visual_proj: nn.Module = nn.Linear(visual_dim, d)
        elif cfg.visual_projection == "none":
            # The code's CLIP + CLAP variant feeds the CLIP features to the layers as they are.
            if visual_dim != d:
                raise UwavError(f"HAN config: parser.visual_projection is 'none', so parser.d_model ({d}) must "
                                f"equal the visual feature width ({visual_dim})")
            self.visual_proj = nn.Identity()
        else:
            raise UwavError(f"HAN config: visual_projection is {cfg.visual_projection!r}; expected 'linear' or "
                            "'none'")
        # Layer i is applied to both streams (shared weights per depth).
        layer = LAYERS[layer_impl]
        self.layers = nn.ModuleList(layer(d, cfg.heads, cfg.ff, cfg.dropout) for _ in range(cfg.layers))
        self.fc_prob = nn.Linear(d, num_classes)
        self.fc_frame_att = nn.Linear(d, num_classes)
        self.fc_av_att = nn.Linear(d, num_classes)

    @property
    def dims(self) -> dict[str, int]:
        """The data-derived sizes a checkpoint needs to rebuild the model."""
        return {"audio_dim": self.audio_dim, "visual_dim": self.visual_dim, "num_classes": self.num_classes}

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        """Shared segment classifier: feats [..., d] -> logits [..., C] (used by the mixup loss)."""
        return self.fc_prob(feats)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> HANOutput:
        """audio [B, T, Da], visual [B, T, Dv] -> HANOutput."""
        a = self.audio_proj(audio)
        v = self.visual_proj(visual)
        for layer in self.layers:
            a, v = layer.forward_pair(a, v)  # a' = L(a, v), v' = L(v, a')
        seg_a = self.fc_prob(a)
        seg_v = self.fc_prob(v)

        x = torch.stack([a, v], dim=2)  # [B, T, M=2, d]
        frame_att = torch.softmax(self.fc_frame_att(x), dim=1)  # over time, [B, T, M, C]
        av_att = torch.softmax(self.fc_av_att(x), dim=2)  # over modality, [B, T, M, C]
        seg_prob = torch.sigmoid(torch.stack([seg_a, seg_v], dim=2))  # [B, T, M, C]
        video_prob = (frame_att * av_att * seg_prob).sum(dim=(1, 2))  # [B, C]
        return HANOutput(video_prob, seg_a, seg_v, a, v)
