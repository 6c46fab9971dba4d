"""The Ray Tune function trainable: a thin adapter that turns `fit`'s per-epoch callback into reports.

Each epoch it reports the flat metrics of `EpochReport.metrics()` (val_segment_type_at_av, loss_total, ...) plus
`objective` / `best_objective` for the sweep's metric, with a checkpoint holding `Trainer.state_dict()`;
a restarted or resumed trial continues from `tune.get_checkpoint()`. The data arrive through
`tune.with_parameters`, i.e. from Ray's object store, mapped read-only and shared by every trial on a
node. No second training loop: training is `uwav.fit.fit`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from uwav.checkpoints import load_trainer_state, save_trainer_state
from uwav.config import Config, with_overrides
from uwav.errors import UwavError
from uwav.fit import fit
from uwav.pseudo.quality import run_pseudo_quality

STATE_FILE = "state.pt"


def sweep_trial(params: dict[str, Any], data=None, base: Config | None = None, metric: str = "segment_type_at_av",
                threads: int = 1) -> None:
    """One trial: `params` are the searched values ({"loss.W": 0.3, ...}) applied to the base config."""
    if data is None or base is None:
        raise UwavError("sweep_trial needs data and base (pass them with tune.with_parameters)")
    if "test" in data.splits:
        # The driver loads with include_test=False; refusing here makes a leak impossible, not unlikely.
        raise UwavError("a sweep trial was given the test split; sweeps select on val only")
    torch.set_num_threads(max(1, int(threads)))
    config = with_overrides(base, params, "<sweep trial>")

    resume_state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume_state = load_trainer_state(Path(folder) / STATE_FILE)
    fresh = resume_state is None

    def report(epoch_report, trainer) -> None:
        nonlocal fresh
        values = epoch_report.metrics()
        values["precision"] = trainer.precision  # param-like: train.precision as resolved on the trial's device
        history = [h.val[metric] for h in trainer.history]
        values["objective"], values["best_objective"] = history[-1], max(history)
        if fresh:  # once per trial, with the first epoch
            values.update({f"pseudo_val_{k}": float(v) for k, v in run_pseudo_quality(config, data).items()})
            values.update({f"pseudo_density_{m}": v for m, v in trainer.targets.hard_fraction.items()})
            fresh = False
        with tempfile.TemporaryDirectory(prefix="uwav-ckpt-") as folder:
            save_trainer_state(Path(folder) / STATE_FILE, trainer.state_dict())
            tune.report(values, checkpoint=tune.Checkpoint.from_directory(folder))

    fit(config, data, on_epoch=report, resume_state=resume_state, keep_best=False, progress=False)
