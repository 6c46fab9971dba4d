"""UWAV losses (method.md §3, §6–8, §11): video MMIL BCE, class-balanced segment BCE, feature mixup, and
the generator's pre-training loss on the product of audio and visual probabilities.

All functions are pure and mean-reduced; arrays follow [B, T, C] (videos, segments, classes).
"""

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from uwav.errors import UwavError

_PROB_EPS = 1e-7  # video-probability clamp of the reference code; MMIL output lies in (0, 2)
_LOG_FLOOR = -100.0  # reference BCE clamps its logs here
# log(1 - p) needs |log p| > 0. Capping log p at -1e-30 keeps the value (>= -69.08) and its gradient
# finite in float32 when both logits are huge; the reference saturates much earlier (p rounds to 1.0).
_LOG_P_CAP = -1e-30
_LN2 = math.log(2.0)


def video_loss(video_prob: torch.Tensor, weak: torch.Tensor) -> torch.Tensor:
    """BCE of the MMIL video probability [B, C] (clamped to [1e-7, 1-1e-7]) against weak labels [B, C]."""
    p = video_prob.clamp(_PROB_EPS, 1.0 - _PROB_EPS)
    return F.binary_cross_entropy(p, weak.to(p.dtype))


def class_balance_weights(
    hard_labels: np.ndarray | torch.Tensor,
    W: float,
    scale: Literal["code", "paper"] = "code",
    num_classes: int | None = None,
) -> tuple[float, float]:
    """(w_pos, w_neg) from training-split hard pseudo labels [N, T, C] of one modality (method.md §6).

    code:  f_c = mean over (N, T) of the hard label;  w_pos = (C - sum_c f_c) * W,  w_neg = sum_c f_c.
    paper: the code values divided by C (means over N, T, C).
    """
    labels = hard_labels.detach().cpu().numpy() if isinstance(hard_labels, torch.Tensor) else hard_labels
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 3:
        raise UwavError(f"class_balance_weights: hard labels have shape {labels.shape}; expected [N, T, C]")
    c = labels.shape[-1]
    if num_classes is not None and num_classes != c:
        raise UwavError(f"class_balance_weights: hard labels have {c} classes; expected {num_classes}")
    if scale not in ("code", "paper"):
        raise UwavError(f"class_balance_weights: reweight scale is {scale!r}; expected 'code' or 'paper'")
    freq_sum = float(labels.mean(axis=(0, 1)).sum())
    w_pos = (c - freq_sum) * W
    w_neg = freq_sum
    if scale == "paper":
        w_pos, w_neg = w_pos / c, w_neg / c
    return float(w_pos), float(w_neg)


def segment_loss(
    seg_logits: torch.Tensor,
    targets: torch.Tensor,
    weak: torch.Tensor,
    w_pos: float | None = None,
    w_neg: float | None = None,
) -> torch.Tensor:
    """Segment BCE-with-logits [B, T, C] against (soft or hard) targets [B, T, C], mean over B*T*C.

    With w_pos / w_neg, each element is weighted by w_pos where the VIDEO-level label weak [B, C] is 1
    (broadcast over T) and by w_neg where it is 0; w_pos=None means no weighting.
    """
    bce = F.binary_cross_entropy_with_logits(seg_logits, targets.to(seg_logits.dtype), reduction="none")
    if w_pos is None:
        return bce.mean()
    if w_neg is None:
        raise UwavError("segment_loss: w_pos is set but w_neg is None; expected both or neither")
    # new_full fills on the device; new_tensor would copy each scalar from the host (a GPU sync per batch).
    weight = torch.where(weak[:, None, :] > 0, bce.new_full((), w_pos), bce.new_full((), w_neg))
    return (weight * bce).mean()


def sample_mixup(batch_segments: int, alpha: float, generator: torch.Generator,
                 beta: float | None = None) -> tuple[float, torch.Tensor]:
    """One mixup draw: λ ~ Beta(alpha, beta) (1.0 if alpha <= 0) and a permutation of batch_segments.

    beta=None ties the two parameters, Beta(α, α), as the paper does. Both draws come from `generator`
    so training is reproducible: the permutation is torch.randperm on it, then λ is drawn by a numpy
    Generator seeded with one integer taken from it (torch's Beta sampler accepts no generator). perm is
    a LongTensor [batch_segments] on the generator's device.
    """
    perm = torch.randperm(batch_segments, generator=generator, device=generator.device)
    if alpha <= 0:
        return 1.0, perm
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    lam = float(np.random.default_rng(seed).beta(alpha, alpha if beta is None or beta <= 0 else beta))
    return lam, perm


def mixup_loss(
    feats: torch.Tensor,
    targets: torch.Tensor,
    classifier: Callable[[torch.Tensor], torch.Tensor],
    lam: float,
    perm: torch.Tensor,
) -> torch.Tensor:
    """Feature mixup over all B*T segments of one modality (method.md §7); no class re-weighting.

    feats [B, T, d] (HAN output features, not detached), targets [B, T, C], perm LongTensor [B*T].
    Equals mean BCE-with-logits against the mixed target lam*t + (1-lam)*t[perm].
    """
    f = feats.reshape(-1, feats.shape[-1])
    t = targets.reshape(-1, targets.shape[-1]).to(f.dtype)
    perm = perm.to(f.device)
    logits = classifier(lam * f + (1.0 - lam) * f[perm])
    return lam * F.binary_cross_entropy_with_logits(logits, t) + (
        1.0 - lam
    ) * F.binary_cross_entropy_with_logits(logits, t[perm])


def ave_mixup_targets(
    soft: torch.Tensor | np.ndarray, mode: Literal["soft", "ceil_literal", "round"]
) -> torch.Tensor | np.ndarray:
    """AVE mixup targets from soft labels p̂ [..., C] (method.md §11).

    soft: p̂ unchanged. ceil_literal: ⌈p̂⌉, i.e. the weak label broadcast over segments wherever the
    sigmoid has not underflowed to 0. round: 1[p̂ >= 0.5], approximately the hard label.
    """
    lib = torch if isinstance(soft, torch.Tensor) else np
    if mode == "soft":
        return soft
    if mode == "ceil_literal":
        return lib.ceil(soft)
    if mode == "round":
        return (soft >= 0.5) * lib.ones_like(soft)
    raise UwavError(f"ave_mixup_target is {mode!r}; expected 'soft', 'ceil_literal' or 'round'")


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable in both regimes (Mächler 2012); x is capped at _LOG_P_CAP."""
    x = x.clamp(max=_LOG_P_CAP)
    near_zero = x > -_LN2
    # Each branch sees a harmless dummy value where it is not selected, so no inf/NaN leaks into grads.
    small = torch.log(-torch.expm1(torch.where(near_zero, x, -1.0)))
    large = torch.log1p(-torch.exp(torch.where(near_zero, -1.0, x)))
    return torch.where(near_zero, small, large)


def pretrain_loss(
    z_a: torch.Tensor,
    z_v: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    pos_weight: float = 5.0,
    second_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generator pre-training BCE on p = sigmoid(z_a) * sigmoid(z_v) against audio-visual labels (§3).

    z_a, z_v, labels [B, T, C]; valid bool [B, T]. w[b, c] = pos_weight if class c is positive in any
    valid segment of video b, else 1 (pos_weight=1 is the paper's plain BCE).
    Without `second_weight`: L = sum(valid * w * BCE) / (sum(valid) * C), the official per-batch
    normalisation. With `second_weight` [B] (float, the weight of each valid second of video b):
    L = sum_b second_weight[b] * sum_{t,c}(valid * w * BCE) / C; second_weight = 1 / sum(valid) for every
    video gives the first form. Logs are computed in log space and floored at -100.
    """
    y = labels.to(z_a.dtype)
    m = valid.to(z_a.dtype)[..., None]  # [B, T, 1]
    log_p = F.logsigmoid(z_a) + F.logsigmoid(z_v)
    log_q = _log1mexp(log_p).clamp(min=_LOG_FLOOR)
    log_p = log_p.clamp(min=_LOG_FLOOR)
    bce = -(y * log_p + (1.0 - y) * log_q)
    present = ((y * m) > 0).any(dim=1, keepdim=True)  # [B, 1, C]
    w = torch.where(present, bce.new_full((), pos_weight), bce.new_full((), 1.0))  # filled on the device
    num_classes = z_a.shape[-1]
    if second_weight is not None:
        per_video = (m * w * bce).sum(dim=(1, 2))  # [B]
        return (per_video * second_weight.to(per_video.dtype)).sum() / num_classes
    denom = m.sum() * num_classes
    return (m * w * bce).sum() / denom.clamp(min=1.0)
