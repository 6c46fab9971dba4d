"""Tiny in-memory parser data and sweep files for the sweep and tracking tests (seconds per trial)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from uwav.data.dataset import ParserData, SplitArrays
from uwav.pseudo import fit_all_thresholds

C, T, DA, DV = 6, 10, 8, 12


def _split(name: str, n: int, rng: np.random.Generator) -> SplitArrays:
    """Features and logits that carry the dense truth plus noise, so trials learn something."""
    gt_a = rng.random((n, T, C)) < 0.15
    gt_v = rng.random((n, T, C)) < 0.15
    weak = (gt_a | gt_v).any(axis=1).astype(np.float32)
    audio = (gt_a @ rng.normal(size=(C, DA)) + 0.5 * rng.normal(size=(n, T, DA))).astype(np.float32)
    visual = (gt_v @ rng.normal(size=(C, DV)) + 0.5 * rng.normal(size=(n, T, DV))).astype(np.float32)
    z_a = (4.0 * gt_a - 2.0 + rng.normal(size=gt_a.shape)).astype(np.float32)
    z_v = (4.0 * gt_v - 2.0 + rng.normal(size=gt_v.shape)).astype(np.float32)
    return SplitArrays(name=name, filenames=tuple(f"{name}{i:04d}" for i in range(n)), weak=weak, audio=audio,
                       visual=visual, gt_audio=gt_a, gt_visual=gt_v, logits_audio=z_a, logits_visual=z_v)


def tiny_data(include_test: bool, n_train: int = 48, n_eval: int = 24, seed: int = 0) -> ParserData:
    rng = np.random.default_rng(seed)
    splits = {"train": _split("train", n_train, rng), "val": _split("val", n_eval, rng)}
    test = _split("test", n_eval, rng)
    if include_test:
        splits["test"] = test
    val = splits["val"]
    # θ as `uwav pseudo` fits it (the same function), so the data look like a real load.
    thresholds = fit_all_thresholds(val.logits_audio, val.logits_visual, val.weak, val.gt_audio, val.gt_visual)
    return ParserData(splits=splits, thresholds=thresholds,
                      meta={"audio_gt_file": "synthetic", "layout": "han", "threshold_fit": "f1"})


BASE = {
    "seed": 3,
    "paths": {"annotations": "unused", "features": "unused"},
    "parser": {"d_model": 16, "layers": 1, "heads": 2, "ff": 32, "dropout": 0.1},
    "train": {"epochs": 4, "warmup_epochs": 1, "batch_size": 16, "lr_max": 3e-3, "lr_min": 1e-4,
              "device": "cpu", "eval_batch_size": 64},
}


def write_sweep(tmp: Path, num_samples: int = 4, concurrent: int = 2, name: str = "tiny", **extra) -> Path:
    """A base config and a sweep file under `tmp`; storage and MLflow stay inside `tmp` too."""
    base = {**BASE, "paths": {**BASE["paths"], "out": str(tmp / "out")}}
    (tmp / "base.yaml").write_text(yaml.safe_dump(base))
    sweep = {
        "name": name,
        "base": "base.yaml",
        "space": {
            "pseudo.offset_audio": {"type": "uniform", "low": -1.0, "high": 1.0},
            "loss.W": {"type": "loguniform", "low": 0.1, "high": 2.0},
            "train.lr_max": {"type": "loguniform", "low": 1e-3, "high": 1e-2},
        },
        "points_to_evaluate": [{"pseudo.offset_audio": 0.0, "loss.W": 0.5}],
        "search": {"seed": 1, "n_startup_trials": 2},
        "scheduler": {"grace_period": 1, "max_t": 4, "reduction_factor": 2},
        "resources": {"cpu": 1},
        "trials": {"num_samples": num_samples, "max_concurrent": concurrent, "max_failures": 2},
        "storage": {"path": str(tmp / "sweeps")},
        **extra,
    }
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path
