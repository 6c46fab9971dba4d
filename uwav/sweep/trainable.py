"""The Ray Tune function trainable: a thin adapter that turns `fit`'s per-epoch callback into reports.

Each epoch it reports the flat metrics of `EpochReport.metrics()` (val_seg_type, loss_total, ...) plus
`objective` / `best_objective` for the sweep's metric, with a checkpoint holding `Trainer.state_dict()`;
a restarted or resumed trial continues from `tune.get_checkpoint()`. The data arrive through
`tune.with_parameters`, i.e. from Ray's object store, mapped read-only and shared by every trial on a
node. No second training loop: training is `uwav.train.fit`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

STATE_FILE = "state.pt"


def pseudo_label_metrics(config, data) -> dict[str, float]:
    """Val quality of this trial's hard pseudo labels (θ shifted by its offsets), logged once per trial."""
    from uwav.pseudo import pseudo_quality, shift_thresholds

    val = data.split("val")
    theta = data.thresholds[config.pseudo.threshold_mode]
    scores = pseudo_quality(val.logits_audio, val.logits_visual,
                            shift_thresholds(theta["audio"], config.pseudo.offset_audio),
                            shift_thresholds(theta["visual"], config.pseudo.offset_visual),
                            val.weak, val.gt_audio, val.gt_visual)
    return {f"pseudo_val_{k}": float(v) for k, v in scores.items()}


def sweep_trial(params: dict[str, Any], data=None, base: dict | None = None, metric: str = "seg_type",
                threads: int = 1) -> None:
    """One trial: `params` are the searched values ({"loss.W": 0.3, ...}) applied to the base config."""
    import torch
    from ray import tune

    from uwav.config import config_from_dict, with_overrides
    from uwav.errors import UwavError
    from uwav.train import fit

    if data is None or base is None:
        raise UwavError("sweep_trial needs data and base (pass them with tune.with_parameters)")
    if "test" in data.splits:
        # The driver loads with include_test=False; refusing here makes a leak impossible, not unlikely.
        raise UwavError("a sweep trial was given the test split; sweeps select on val only")
    torch.set_num_threads(max(1, int(threads)))
    config = with_overrides(config_from_dict(base, "<sweep base>"), params, "<sweep trial>")

    resume_state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume_state = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)
    fresh = resume_state is None

    def report(epoch_report, trainer) -> None:
        nonlocal fresh
        values = epoch_report.metrics()
        history = [h.val[metric] for h in trainer.history]
        values["objective"], values["best_objective"] = history[-1], max(history)
        if fresh:  # once per trial, with the first epoch
            values.update(pseudo_label_metrics(config, data))
            values.update({f"pseudo_density_{m}": v for m, v in trainer.targets.hard_fraction.items()})
            fresh = False
        with tempfile.TemporaryDirectory(prefix="uwav-ckpt-") as folder:
            torch.save(trainer.state_dict(), Path(folder) / STATE_FILE)
            tune.report(values, checkpoint=tune.Checkpoint.from_directory(folder))

    fit(config, data, on_epoch=report, resume_state=resume_state, keep_best=False, progress=False)
