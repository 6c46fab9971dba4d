"""UWAV pseudo-label generator: one temporal transformer per modality over frozen CLAP / CLIP segments.

Each stream maps segment embeddings [B, T, D] to class logits [B, T, C] by a scaled inner product with
frozen class text embeddings [C, D] that are passed in at call time, so one checkpoint serves any label
space (UnAV's 100 classes in pre-training, LLP's 25 or AVE's 28 at generation time). method.md §2.
"""

import torch
import torch.nn.functional as F
from torch import nn

from uwav.config import GeneratorConfig
from uwav.models.dropout import FastDropout

# Additive mask value of the reference code; a finite float (not -inf / bool) keeps fully masked rows
# (padded queries) finite instead of NaN.
_MASK_VALUE = -1e10
# Fixed multipliers of the text-similarity logits (≈ ln 26.88 and ln 100), not learned; method.md §2.2.
AUDIO_LOGIT_SCALE = 3.2912
VISUAL_LOGIT_SCALE = 4.6052
CLAP_DIM, CLIP_DIM = 512, 768  # the frozen encoders' embedding widths


def padding_attention_mask(
    valid: torch.Tensor, heads: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Additive float mask [B*heads, T, T]: -1e10 wherever the query or the key is padding.

    valid: bool [B, T], True at real segments. Row order b*heads + h matches nn.MultiheadAttention.
    """
    pad = ~valid.bool()
    blocked = pad[:, :, None] | pad[:, None, :]  # [B, T(query), T(key)]
    # float16 cannot hold -1e10; half its most negative value stays finite after adding a score.
    value = max(_MASK_VALUE, torch.finfo(dtype).min / 2)
    mask = torch.zeros(blocked.shape, dtype=dtype, device=valid.device).masked_fill(blocked, value)
    return mask.repeat_interleave(heads, dim=0)


class PostNormEncoderLayer(nn.TransformerEncoderLayer):
    """nn.TransformerEncoderLayer (post-norm, same parameters) that always takes the plain path.

    The stock layer's inference fast path (eval + no_grad) turns the fully masked rows of padded queries
    into NaN (torch 2.13), which the next layer's attention then spreads to every segment of the video.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        p = self.dropout.p  # the residual and FFN dropouts; attention-weight dropout stays in self_attn
        self.dropout, self.dropout1, self.dropout2 = FastDropout(p), FastDropout(p), FastDropout(p)

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        if src_key_padding_mask is not None or is_causal:
            raise ValueError("PostNormEncoderLayer takes padding as an additive float src_mask")
        attn = self.self_attn(src, src, src, attn_mask=src_mask, need_weights=False)[0]
        x = self.norm1(src + self.dropout1(attn))
        ff = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.norm2(x + self.dropout2(ff))


class TemporalStream(nn.Module):
    """Input MLP -> post-norm transformer encoder (no positional encoding) -> output MLP -> text logits."""

    def __init__(
        self,
        in_dim: int,
        hidden: int = 1024,
        layers: int = 5,
        heads: int = 16,
        ff: int = 2048,
        dropout: float = 0.3,
        logit_scale: float = 1.0,
        normalize_text: bool = False,
    ):
        super().__init__()
        self.heads = heads
        self.logit_scale = float(logit_scale)
        self.normalize_text = normalize_text
        # Hidden width 2·hidden, as the code's MLP(D, 2·hidden, hidden).
        self.input_proj = nn.Sequential(nn.Linear(in_dim, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, hidden))
        self.layers = nn.ModuleList(
            PostNormEncoderLayer(
                d_model=hidden,
                nhead=heads,
                dim_feedforward=ff,
                dropout=dropout,
                activation="relu",
                batch_first=True,
                norm_first=False,
            )
            for _ in range(layers)
        )
        self.output_proj = nn.Sequential(nn.Linear(hidden, in_dim), nn.ReLU(), nn.Linear(in_dim, in_dim))

    def features(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, in_dim] -> output-projected segment features h [B, T, in_dim] (not normalised).

        valid: bool [B, T] when the batch has padding, else None. The mask is applied as given: checking
        `valid.all()` here would read from the device every batch (callers know it from the lengths).
        """
        mask = None if valid is None else padding_attention_mask(valid, self.heads, x.dtype)
        h = self.input_proj(x)
        for layer in self.layers:
            h = layer(h, src_mask=mask)
        return self.output_proj(h)

    def forward(self, x: torch.Tensor, text: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, D], text [C, D] class embeddings, valid bool [B, T] or None -> logits [B, T, C].

        The text rows are used as given, as the code does (its comment calls them L2-normalised; `uwav data
        check` reports the norms a file actually holds), or L2-normalised first with `generator.normalize_text`.
        """
        h = self.features(x, valid)
        e = text.to(h.dtype)
        if self.normalize_text:
            e = F.normalize(e, dim=-1)
        return self.logit_scale * (h @ e.T)


class Generator(nn.Module):
    """Audio (CLAP) and visual (CLIP) streams with separate weights."""

    def __init__(self, config: GeneratorConfig | None = None, audio_dim: int = CLAP_DIM, visual_dim: int = CLIP_DIM):
        super().__init__()
        self.config = cfg = config or GeneratorConfig()
        self.audio_dim, self.visual_dim = audio_dim, visual_dim
        common = dict(hidden=cfg.hidden, layers=cfg.layers, heads=cfg.heads, ff=cfg.ff, dropout=cfg.dropout,
                      normalize_text=cfg.normalize_text)
        self.audio = TemporalStream(audio_dim, logit_scale=AUDIO_LOGIT_SCALE, **common)
        self.visual = TemporalStream(visual_dim, logit_scale=VISUAL_LOGIT_SCALE, **common)

    def forward(
        self,
        clap: torch.Tensor,
        clip: torch.Tensor,
        text_audio: torch.Tensor,
        text_visual: torch.Tensor,
        valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """clap [B, T, 512], clip [B, T, 768], text_audio [C, 512], text_visual [C, 768], valid bool [B, T]
        when the batch has padding (None when it has none; see `TemporalStream.features`).

        Returns (z_a, z_v), each [B, T, C]. Outputs at padded positions are finite but meaningless.
        """
        return self.audio(clap, text_audio, valid), self.visual(clip, text_visual, valid)
