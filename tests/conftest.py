"""Shared fixtures: the real annotation folder beside the checkout and a tiny synthetic pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from uwav._env import quiet_library_defaults

# Tests call the library directly, not through the CLI entry point that applies these.
quiet_library_defaults()

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Small networks and few epochs: the whole pipeline fixture builds in a few seconds on 2 cores.
TINY_PIPELINE = {
    "seed": 7,
    "generator": {"hidden": 32, "layers": 1, "heads": 2, "ff": 64, "dropout": 0.1},
    "pretrain": {"epochs": 2, "batch_size": 16, "warmup_epochs": 1, "lr_max": 1e-3, "lr_min": 1e-4},
    "parser": {"d_model": 32, "layers": 1, "heads": 2, "ff": 64, "dropout": 0.1},
    "train": {"epochs": 3, "batch_size": 16, "warmup_epochs": 1, "lr_max": 1e-3, "lr_min": 1e-4,
              "device": "cpu"},
}


def pipeline_config(data_root: Path, out: Path, layout: str = "han") -> dict:
    llp = data_root / "llp"
    return {
        **TINY_PIPELINE,
        "paths": {
            "annotations": str(llp / "annotations"),
            "features": str(llp),
            "layout": layout,
            "generator_features": str(llp),
            "unav_features": str(data_root / "unav"),
            "unav_annotations": str(data_root / "unav" / "unav100_annotations.json"),
            "out": str(out),
        },
    }


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A tiny synthetic LLP + UnAV set in all three layouts (written once per test session)."""
    from uwav.data.synthetic import generate

    root = tmp_path_factory.mktemp("synth") / "data"
    generate(root, size="tiny", seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_dataset, tmp_path_factory) -> Path:
    """Config file of a tiny pipeline whose generator is pre-trained and whose logits are cached."""
    from uwav.config import load_config
    from uwav.pretrain import pretrain
    from uwav.pseudo.run import run_pseudo

    out = tmp_path_factory.mktemp("pipeline")
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(pipeline_config(tiny_dataset, out / "run")))
    config = load_config(path)
    pretrain(config, progress=False)
    run_pseudo(config, progress=False)
    return path
