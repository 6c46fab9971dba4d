"""How good pseudo labels are: the ten protocol numbers of hard labels against dense GT (evaluation.md §10),
for the generator's logits and for the VALOR-style zero-shot baseline (method.md §10)."""

from __future__ import annotations

import numpy as np

from uwav.metrics import pseudo_label_scores
from uwav.pseudo.targets import hard_labels
from uwav.pseudo.thresholds import shift_thresholds

# Zero-shot similarity scales: CLIP's 100 and CLAP's exp(logit_scale_a) = exp(3.2912) ≈ 26.88.
CLIP_ZERO_SHOT_SCALE = 100.0
CLAP_ZERO_SHOT_SCALE = float(np.exp(3.2912))


def zero_shot_scores(features: np.ndarray, text: np.ndarray, scale: float) -> np.ndarray:
    """VALOR-style zero-shot logits: scale · cos(segment feature, class text embedding) [N, T, C]."""
    f = features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), 1e-12)
    t = text / np.maximum(np.linalg.norm(text, axis=-1, keepdims=True), 1e-12)
    return (scale * (f @ t.T)).astype(np.float32)


def pseudo_quality(logits_a: np.ndarray, logits_v: np.ndarray, theta_a: np.ndarray, theta_v: np.ndarray,
                   weak: np.ndarray, gt_a: np.ndarray, gt_v: np.ndarray) -> dict[str, float]:
    """The ten protocol numbers of the hard pseudo labels of one split (evaluation.md §10: no model gate)."""
    hard_a = hard_labels(logits_a, theta_a, weak)
    hard_v = hard_labels(logits_v, theta_v, weak)
    return pseudo_label_scores(hard_a, hard_v, gt_a.astype(bool), gt_v.astype(bool))


def run_pseudo_quality(config, data, split: str = "val") -> dict[str, float]:
    """Quality of one run's hard labels on `split` (θ of the config's mode, shifted by its offsets)."""
    arrays = data.split(split)
    theta = data.thresholds[config.pseudo.threshold_mode]
    return pseudo_quality(arrays.logits_audio, arrays.logits_visual,
                          shift_thresholds(theta["audio"], config.pseudo.offset_audio),
                          shift_thresholds(theta["visual"], config.pseudo.offset_visual),
                          arrays.weak, arrays.gt_audio, arrays.gt_visual)
