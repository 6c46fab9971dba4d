"""Sweep files: validation with one-line errors naming the file and key, and the Tune/Optuna space."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sweep_fixtures import write_sweep

from uwav.config import load_config
from uwav.errors import UwavError
from uwav.sweep.spec import load_sweep

ROOT = Path(__file__).resolve().parents[1]


def edit(path: Path, **changes) -> Path:
    raw = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        node = raw
        parts = key.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def error(path: Path) -> str:
    with pytest.raises(UwavError) as err:
        load_sweep(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    return msg


def test_valid_file_resolves_base_storage_and_points(tmp_path):
    spec = load_sweep(write_sweep(tmp_path))
    assert spec.base_path == (tmp_path / "base.yaml").resolve()
    assert spec.base.parser.layers == 1 and spec.metric == "segment_type_at_av"
    assert spec.experiment_dir == tmp_path / "sweeps" / "tiny"
    assert spec.tracking_uri == f"sqlite:///{tmp_path / 'sweeps' / 'mlflow.db'}"
    # keys a point leaves out come from the base config (train.lr_max = 3e-3)
    assert spec.points_to_evaluate == ({"pseudo.offset_audio": 0.0, "loss.W": 0.5, "train.lr_max": 3e-3},)
    assert spec.trial_config({"loss.W": 0.3}).loss.W == 0.3


def test_space_domains_are_inclusive_and_typed(tmp_path):
    path = write_sweep(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["space"]["parser.layers"] = {"type": "int", "low": 1, "high": 2}
    raw["space"]["loss.reweight_scale"] = {"type": "choice", "values": ["code", "paper"]}
    path.write_text(yaml.safe_dump(raw))
    space = load_sweep(path).tune_space()
    assert space["parser.layers"].lower == 1 and space["parser.layers"].upper == 3  # randint excludes upper
    assert space["loss.reweight_scale"].categories == ["code", "paper"]
    assert space["loss.W"].lower == 0.1 and space["loss.W"].upper == 2.0


@pytest.mark.parametrize("space, expected", [
    ({"loss.Z": {"type": "uniform", "low": 0, "high": 1}}, "space.loss.Z: unknown config key"),
    ({"loss": {"type": "uniform", "low": 0, "high": 1}}, "is a section"),
    ({"loss.W": {"type": "normal", "low": 0.1, "high": 1}}, "space.loss.W.type must be one of"),
    ({"loss.W": {"low": 0.1, "high": 1}}, "space.loss.W.type is missing"),
    ({"loss.W": {"type": "uniform", "low": 0.0, "high": 1}}, "space.loss.W.low = 0.0 gives an invalid config"),
    ({"loss.W": {"type": "uniform", "low": 2.0, "high": 1}}, "must be below high"),
    ({"loss.W": {"type": "loguniform", "low": 0.1}}, "space.loss.W.high must be a number"),
    ({"parser.layers": {"type": "uniform", "low": 1, "high": 3}}, "needs a float config key; parser.layers is int"),
    ({"loss.W": {"type": "int", "low": 1, "high": 3}}, "needs an integer config key"),
    ({"loss.reweight_scale": {"type": "choice", "values": ["code", "both"]}}, "value 'both' gives an invalid"),
    ({"loss.W": {"type": "choice", "values": []}}, "values must be a non-empty list"),
    ({"train.dropout": {"type": "uniform", "low": 0, "high": 1}}, "unknown config key"),
    ({"train.lr_min": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}, "lr_min"),
    ({"parser.heads": {"type": "choice", "values": [2, 3]}}, "heads (3) must divide"),
    ({"pseudo.threshold_cuts": {"type": "choice", "values": ["code", "realisable"]}},
     "space.pseudo.threshold_cuts: θ is fitted once by `uwav pseudo`"),
])
def test_bad_space_entries(tmp_path, space, expected):
    path = edit(write_sweep(tmp_path), space=space, points_to_evaluate=None)
    assert expected in error(path)


def test_pairs_of_searched_keys_are_checked_together(tmp_path):
    path = edit(write_sweep(tmp_path), points_to_evaluate=None, space={
        "train.lr_max": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
        "train.lr_min": {"type": "loguniform", "low": 1e-5, "high": 1e-3},
    })
    msg = error(path)
    assert "train.lr_max = 0.0001 with train.lr_min = 0.001" in msg and "must not exceed" in msg


@pytest.mark.parametrize("changes, expected", [
    ({"base": "missing.yaml"}, "base: config file"),
    ({"base": None}, "base is missing"),
    ({"colour": 1}, "unknown key top level.colour"),
    ({"overrides": {"loss.nope": 1}}, "overrides.loss.nope"),
    ({"overrides": {"train.epochs": 0}}, "overrides gives an invalid config"),
    ({"objective": {"metric": "accuracy"}}, "objective.metric must be one of"),
    ({"objective": {"mode": "min"}}, "objective.mode must be one of max"),
    ({"search": {"group": True, "multivariate": False}}, "search.group needs search.multivariate"),
    ({"search": {"seed": "x"}}, "search.seed must be an integer"),
    ({"scheduler": {"grace_period": 1, "max_t": 4, "reduction_factor": 2, "time_attr": "steps"}},
     "scheduler.time_attr must be one of epoch, training_iteration"),
    ({"scheduler": {"max_t": 9}}, "scheduler.max_t (9) exceeds"),
    ({"scheduler": {"reduction_factor": 1}}, "scheduler.reduction_factor must be > 1.0"),
    ({"resources": {"cpu": 0}}, "resources.cpu must be > 0.0"),
    ({"resources": {"gpu": 2}}, "resources.gpu must be <= 1.0"),
    ({"resources": {"gpu": 0.25}}, "resources.gpu is 0.25 but the base config trains on the CPU"),
    ({"resources": {"gpu": 0}, "overrides": {"train.device": "cuda"}}, "train.device is cuda but resources.gpu is 0"),
    ({"trials": {"num_samples": 0}}, "trials.num_samples must be >= 1"),
    ({"points_to_evaluate": [{"loss.W": 5.0}]}, "points_to_evaluate[0].loss.W = 5.0 is outside the space"),
    ({"points_to_evaluate": [{"loss.alpha": 1.0}]}, "points_to_evaluate[0].loss.alpha is not a searched key"),
    ({"points_to_evaluate": "paper"}, "points_to_evaluate must be a list"),
    ({"storage": {"path": "s3://bucket/sweeps"}}, "storage.path 's3://bucket/sweeps' is a URI"),
    ({"finish": {"top_k": 9}}, "finish.top_k (9) exceeds trials.num_samples (4)"),
    ({"finish": {"top_k": -1}}, "finish.top_k must be >= 0"),
    ({"finish": {"seeds": 3}}, "finish.seeds is set but finish.top_k is 0"),
    ({"finish": {"top_k": 2, "seeds": 0}}, "finish.seeds must be >= 1"),
    ({"finish": {"reference": "nope.yaml"}}, "finish.reference: 'nope.yaml' is neither paper, default, none"),
    ({"finish": {"reference": "paper"}, "points_to_evaluate": None}, "finish.reference is paper"),
    ({"finish": {"colour": 1}}, "unknown key finish.colour"),
])
def test_bad_settings(tmp_path, changes, expected):
    path = edit(write_sweep(tmp_path), **changes)
    assert expected in error(path)


def test_finish_section(tmp_path):
    spec = load_sweep(write_sweep(tmp_path))
    assert (spec.finish.top_k, spec.finish.reference) == (0, "paper")  # no re-evaluation by default
    path = edit(write_sweep(tmp_path), finish={"top_k": 2, "seeds": 5, "reference": "base.yaml"})
    finish = load_sweep(path).finish
    assert (finish.top_k, finish.seeds) == (2, 5)
    assert finish.reference == str((tmp_path / "base.yaml").resolve())  # relative to the sweep file
    assert load_sweep(edit(path, points_to_evaluate=None, finish=None)).finish.reference == "default"


def test_grace_period_must_cover_the_warmup(tmp_path):
    path = edit(write_sweep(tmp_path), overrides={"train.warmup_epochs": 3},
                scheduler={"grace_period": 2, "max_t": 4})
    assert "grace_period (2) must be at least the warm-up (3 epochs)" in error(path)
    # the default grace period is the warm-up itself
    path = edit(path, scheduler={"max_t": 4})
    assert load_sweep(path).asha.grace_period == 3


def test_point_values_from_the_base_must_lie_in_the_space(tmp_path):
    path = edit(write_sweep(tmp_path), overrides={"loss.W": 3.0}, points_to_evaluate=[{}])
    assert "loss.W = 3.0 (from the base config) is outside the space" in error(path)


def test_missing_and_invalid_files(tmp_path):
    assert "sweep file not found" in error(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: [unclosed\n")
    assert "invalid YAML" in error(bad)


@pytest.mark.parametrize("name", ["demo", "llp"])
def test_shipped_sweep_files_are_valid(name):
    spec = load_sweep(ROOT / "sweeps" / f"{name}.yaml")
    base = load_config(ROOT / "configs" / f"{name}.yaml")
    assert spec.base.paths == base.paths
    assert spec.points_to_evaluate, "the paper's settings are evaluated first"
    paper = spec.trial_config(spec.points_to_evaluate[0])
    assert paper.pseudo.temperature == 1.0 and paper.pseudo.offset_audio == 0.0
    assert spec.asha.grace_period >= spec.base.train.warmup_epochs
    assert spec.finish.reference == "paper"  # train --best compares the winner with the paper's settings
    if name == "demo":
        assert spec.num_samples >= 12 and spec.cpu == 1 and spec.max_concurrent == 2
    else:
        assert spec.gpu == 0.25 and spec.asha.max_t == spec.base.train.epochs
        assert spec.finish.top_k >= 2 and spec.finish.seeds >= 2  # the winner is a mean over seeds
        keys = set(spec.keys)
        for key in ("pseudo.offset_audio", "pseudo.offset_visual", "pseudo.temperature", "loss.W",
                    "loss.alpha", "train.lr_max"):
            assert key in keys
