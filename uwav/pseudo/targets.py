"""Hard and soft (uncertainty-weighted) pseudo labels from cached logits and θ (method.md §5-§6, §14).

One implementation each: `hard_labels` works on numpy arrays and torch tensors alike (the class weights
and the quality report use numpy, a training batch torch), and `batch_targets` builds one batch's soft
and hard targets in torch. `prepare_targets` turns a trial's knobs (θ offsets, threshold mode, −∞
policy, W, re-weight scale) into what a training run needs, once per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from uwav import losses
from uwav.errors import UwavError
from uwav.pseudo.thresholds import fill_infinite_thresholds, shift_thresholds


def hard_labels(logits, theta, weak):
    """ŷ = 1[z > θ] ⊙ y as bool [N, T, C] (θ = −∞ gives the weak label on every segment).

    logits [N, T, C], theta [C], weak [N, C] (0/1): all numpy arrays or all torch tensors.
    """
    return (logits > theta) & (weak[:, None, :] > 0)


def batch_targets(z: torch.Tensor, theta: torch.Tensor, weak: torch.Tensor, temperature: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft and hard pseudo labels, float [B, T, C], of one batch; z [B, T, C], theta [C], weak [B, C].

    soft = sigmoid((z − θ) / τ) ⊙ y (method.md §5, Eq. 12 with τ). A θ still −∞ here gets the code's
    batch_min replacement: this batch's class minimum over all its (video, segment) logits − 1.
    """
    present = weak[:, None, :] > 0
    hard = hard_labels(z, theta, weak).to(z.dtype)
    # Unconditional (the same θ where none is −∞): testing first would read a flag back from the device
    # and stall the GPU every batch.
    theta = torch.where(torch.isneginf(theta), z.amin(dim=(0, 1)) - 1.0, theta)
    soft = torch.sigmoid((z - theta) / temperature) * present
    return soft, hard


@dataclass
class PseudoTargets:
    """Per-run pseudo-label settings derived from θ, the offsets and the training logits."""

    theta: dict[str, torch.Tensor]  # modality -> [C]; −∞ kept when the policy is batch_min
    w_pos: dict[str, float | None]
    w_neg: dict[str, float | None]
    hard_fraction: dict[str, float]  # mean hard label on train, logged as pseudo-label density


def prepare_targets(config, data, train_idx: np.ndarray, device: torch.device) -> PseudoTargets:
    """θ shifted by the config's offsets, class weights from the training split's hard labels (§6).

    data: uwav.data.dataset.ParserData with θ read from the `uwav pseudo` artefact.
    """
    if not data.thresholds:
        raise UwavError("no generator logits loaded: training needs `uwav pseudo` to have run")
    fitted = data.meta.get("threshold_fit", "f1")
    if config.pseudo.threshold_fit != fitted:
        raise UwavError(f"pseudo.threshold_fit is {config.pseudo.threshold_fit!r} but θ was fitted with {fitted!r} "
                        "by `uwav pseudo`; it is fixed per data load and cannot vary per trial")
    cuts = data.meta.get("threshold_cuts", "code")
    if fitted == "f1" and config.pseudo.threshold_cuts != cuts:
        # θ is fitted once by `uwav pseudo`; training must not silently use θ made by another cut rule.
        raise UwavError(f"pseudo.threshold_cuts is {config.pseudo.threshold_cuts!r} but θ was fitted with "
                        f"{cuts!r} by `uwav pseudo`; rerun `uwav pseudo` with this config (θ is fixed per "
                        "data load and cannot vary per trial)")
    train = data.split("train")
    mode = config.pseudo.threshold_mode
    offsets = {"audio": config.pseudo.offset_audio, "visual": config.pseudo.offset_visual}
    theta, w_pos, w_neg, density = {}, {}, {}, {}
    for m in ("audio", "visual"):
        z = getattr(train, f"logits_{m}")[train_idx]
        th = shift_thresholds(data.thresholds[mode][m], offsets[m])
        hard = hard_labels(z, th, train.weak[train_idx]).astype(np.float32)
        density[m] = float(hard.mean())
        if config.loss.reweight:
            w_pos[m], w_neg[m] = losses.class_balance_weights(hard, config.loss.W, config.loss.reweight_scale,
                                                              data.num_classes)
        else:
            w_pos[m] = w_neg[m] = None
        if config.pseudo.inf_threshold_policy == "global_min":
            th = fill_infinite_thresholds(th, z)
        theta[m] = torch.from_numpy(th).to(device)
    return PseudoTargets(theta=theta, w_pos=w_pos, w_neg=w_neg, hard_fraction=density)
