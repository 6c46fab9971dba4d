"""`uwav train --best` on a finished sweep folder with every run's scores set by hand (run_training
replaced): fresh seeds, the reference and its seeds, the paired statistics against a hand computation,
the winner-no-better sentence, the audio GT warnings, results files and MLflow. No Ray here: the real
sweep + real training path is tests/test_sweep.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sweep_fixtures import BASE, tiny_data

from uwav import tracking
from uwav.cli import main
from uwav.data.dataset import annotation_files
from uwav.metrics import METRIC_NAMES
from uwav.sweep import finish

LLP = Path(__file__).resolve().parents[2] / "shared" / "data" / "llp"
needs_llp = pytest.mark.skipif(not (LLP / "AVVP_eval_audio.csv").is_file(), reason="shared LLP CSVs not found")
OBJ = "segment_type_at_av"
T_975_DF2 = 4.302652729749464  # t(0.975, 2): three seeds


def _scores(objective: float, other: float) -> dict[str, float]:
    return {m: objective if m == OBJ else other for m in METRIC_NAMES}


# Per (loss.W, seed): val and test scores. Winner W = 0.3, reference (paper point) W = 0.5. Seeds 4, 5, 6
# (the trials used seed 3). On test the winner is better on the objective (d = 1.0, 1.2, 0.8) and worse
# on every other number by exactly 1; on val it is no better on the objective (d = 0.5, -0.5, 0).
TABLE = {
    (0.3, 4): (_scores(64.5, 50.0), _scores(65.0, 49.0)),
    (0.3, 5): (_scores(63.5, 50.0), _scores(65.2, 49.5)),
    (0.3, 6): (_scores(64.0, 50.0), _scores(64.8, 50.0)),
    (0.5, 4): (_scores(64.0, 50.0), _scores(64.0, 50.0)),
    (0.5, 5): (_scores(64.0, 50.0), _scores(64.0, 50.5)),
    (0.5, 6): (_scores(64.0, 50.0), _scores(64.0, 51.0)),
}


@pytest.fixture
def sweep_dir(tmp_path, monkeypatch):
    """A finished sweep's folder (what `uwav sweep` leaves) whose base config scores with the shared LLP GT."""
    exp = tmp_path / "sweeps" / "tiny"
    exp.mkdir(parents=True)
    base = {**BASE, "paths": {"annotations": str(LLP), "features": str(tmp_path / "features"),
                              "out": str(tmp_path / "out")}}
    (exp / "base_config.yaml").write_text(yaml.safe_dump(base))
    board = [{"trial_id": "t1", "params": {"loss.W": 0.3}, "best_objective": 66.0, "best_epoch": 3, "epochs": 4,
              "status": "complete", "stopped_early": False},
             {"trial_id": "t0", "params": {"loss.W": 0.5}, "best_objective": 64.0, "best_epoch": 3, "epochs": 4,
              "status": "complete", "stopped_early": False}]
    (exp / "leaderboard.json").write_text(json.dumps(board))
    meta = {"name": "tiny", "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "uwav-tiny",
            "parent_run_id": "", "points_to_evaluate": [{"loss.W": 0.5}], "finish": {"reference": "paper"}}
    (exp / "sweep.json").write_text(json.dumps(meta))
    trained = []

    def load(config, include_test):
        assert include_test
        data = tiny_data(include_test=True)
        data.meta["audio_gt_file"] = annotation_files(config)  # as load_parser_data records it
        return data

    def run_training(config, data, run_dir, evaluate_test, progress, data_provenance):
        assert evaluate_test and data_provenance["audio_gt"]
        trained.append((config.loss.W, config.seed, Path(run_dir).relative_to(exp / "best").as_posix()))
        val, test = TABLE[(config.loss.W, config.seed)]
        return {"val": val, "test": test, "seed": config.seed}

    monkeypatch.setattr(finish, "load_parser_data", load)
    monkeypatch.setattr(finish, "run_training", run_training)
    return exp, trained


@needs_llp
def test_fresh_seeds_reference_and_paired_statistics(sweep_dir):
    exp, trained = sweep_dir
    lines = []
    report = finish.finish_best(exp, seeds=3, progress=False, echo=lines.append)
    # Fresh seeds after the trials' seed 3, the same three for the winner and the reference.
    assert report["seeds"] == [4, 5, 6] and report["sweep_seeds"]["trial seeds"] == [3]
    assert sorted(trained) == sorted([(0.3, s, f"rank1/seed{s}") for s in (4, 5, 6)]
                                     + [(0.5, s, f"reference/seed{s}") for s in (4, 5, 6)])
    assert lines[0].startswith("seeds [4, 5, 6]: fresh, after every seed the sweep used (trial seeds [3]")
    assert report["reference"]["choice"] == "paper" and report["reference"]["params"] == {"loss.W": 0.5}

    comps = {c["split"]: c for c in report["comparisons"]}
    test = comps["test"]["metrics"][OBJ]
    # By hand: d = [1.0, 1.2, 0.8], mean 1.0, sample std 0.2, t = 1.0 / (0.2 / √3), df 2.
    t = 1.0 / (0.2 / math.sqrt(3))
    assert test["diff_mean"] == pytest.approx(1.0) and test["diff_std"] == pytest.approx(0.2)
    assert test["t"] == pytest.approx(t)
    assert test["p_value"] == pytest.approx(1.0 - t / math.sqrt(2.0 + t * t))  # t CDF with df 2, closed form
    assert test["ci_low"] == pytest.approx(1.0 - T_975_DF2 * 0.2 / math.sqrt(3))
    assert test["winner_mean"] == pytest.approx(65.0) and test["reference_mean"] == pytest.approx(64.0)
    assert test["verdict"] == "better"
    assert comps["test"]["sentence"].startswith("rank 1 beats the reference (the paper's settings) by +1.00 ± 0.20 "
                                                "Segment Type@AV on test (95% CI +0.50 to +1.50, p = 0.013, 3 seeds)")
    # Every other test number: d = -1 exactly for every seed.
    audio = comps["test"]["metrics"]["segment_audio"]
    assert audio["verdict"] == "worse" and audio["zero_variance"] and audio["diff_mean"] == pytest.approx(-1.0)
    # Val, the winner no better: d = [0.5, -0.5, 0.0], mean 0, std 0.5, p = 1.
    val = comps["val"]["metrics"][OBJ]
    assert val["diff_mean"] == pytest.approx(0.0, abs=1e-12) and val["diff_std"] == pytest.approx(0.5)
    assert val["p_value"] == pytest.approx(1.0) and val["verdict"] == "indistinguishable"
    assert comps["val"]["sentence"].startswith("rank 1 is not distinguishable from the reference (the paper's "
                                               "settings) on Segment Type@AV on val: +0.00 ± 0.50")

    saved = json.loads((exp / "best" / "results.json").read_text())
    assert saved["comparisons"] == report["comparisons"] and saved["seeds"] == [4, 5, 6]
    assert saved["audio_gt"]["version"] == "current"
    assert {"code", "versions", "device", "annotations", "audio_gt", "features", "generator"} <= set(
        saved["provenance"])
    md = (exp / "best" / "results.md").read_text()
    assert "current upstream LLP audio GT" in md and "beats the reference" in md
    assert report["text"].rstrip().splitlines()[-1].endswith("verdict: p < 0.05")  # the legend under the test table
    assert report["warnings"] == [w for w in report["warnings"] if "sweep's trials" in w]  # no sweep GT recorded

    client = tracking.client(saved["tracking_uri"])
    summary = client.get_run(saved["mlflow"]["summary_run_id"])
    assert json.loads(summary.data.params["seeds"]) == [4, 5, 6]
    assert summary.data.metrics[f"comparison/rank1_test_{OBJ}_diff_mean"] == pytest.approx(1.0)
    assert summary.data.metrics[f"comparison/rank1_test_{OBJ}_p_value"] == pytest.approx(test["p_value"])
    assert summary.data.tags[f"uwav.comparison.rank1_test_{OBJ}_verdict"] == "better"
    assert summary.data.metrics[f"reference/test_{OBJ}_mean"] == pytest.approx(64.0)
    runs = saved["mlflow"]["runs"]
    assert sorted((r["label"], r["seed"]) for r in runs) == [(k, s) for k in ("rank1", "reference") for s in (4, 5, 6)]
    for entry in [*runs, {"run_id": summary.info.run_id}]:
        tags = client.get_run(entry["run_id"]).data.tags
        assert tags["uwav.provenance.audio_gt.version"] == "current"
        assert tags["uwav.provenance.code.source"] in ("git", "installed")
        assert len(tags["uwav.provenance.annotations_sha256"]) == 64


@needs_llp
def test_legacy_reference_and_earlier_results_are_warned_about(sweep_dir, tmp_path):
    exp, _ = sweep_dir
    ref = yaml.safe_load((exp / "base_config.yaml").read_text())
    ref["paths"]["eval_audio"] = str(LLP / "legacy" / "AVVP_eval_audio.csv")
    ref["loss"] = {"W": 0.5}
    (tmp_path / "legacy_ref.yaml").write_text(yaml.safe_dump(ref))
    (exp / "best").mkdir()
    (exp / "best" / "results.json").write_text(json.dumps({"audio_gt": {"version": "legacy", "file": "old.csv"}}))
    lines = []
    report = finish.finish_best(exp, seeds=3, reference=str(tmp_path / "legacy_ref.yaml"), progress=False,
                                echo=lines.append)
    warnings = report["warnings"]
    assert any(w.startswith("warning: the reference was scored with the legacy audio GT") for w in warnings)
    assert any("the earlier" in w and "legacy audio GT" in w for w in warnings)
    assert any("paths.eval_audio" in w for w in warnings)  # the reference reads other files than the sweep
    assert all(w in lines for w in warnings)
    assert report["reference"]["choice"] == "file"
    ref_conf = next(c for c in report["configurations"] if c["key"] == "reference")
    assert ref_conf["test_seeds"] == [4, 5, 6]


def test_reference_choices_and_the_winner_as_reference(sweep_dir):
    exp, trained = sweep_dir
    # default: the base config as is, which here is W = 0.5 as well
    base, meta = finish.load_config(exp / "base_config.yaml"), json.loads((exp / "sweep.json").read_text())
    config, info = finish.resolve_reference("default", base, exp, meta)
    assert config == base and info["nickname"] == "the code's defaults"
    assert finish.resolve_reference("none", base, exp, meta) == (None, {"choice": "none"})
    with pytest.raises(finish.UwavError, match="neither"):
        finish.resolve_reference("nope.yaml", base, exp, meta)
    no_points = {**meta, "points_to_evaluate": []}
    with pytest.raises(finish.UwavError, match="points_to_evaluate"):
        finish.resolve_reference("paper", base, exp, no_points)

    # The paper point is rank 2 here; with --top-k 2 it is the reference itself and is trained once.
    report = finish.finish_best(exp, seeds=3, top_k=2, progress=False, echo=lambda *_: None)
    assert sorted(w for w, _, _ in trained) == [0.3] * 3 + [0.5] * 3
    same = [c for c in report["comparisons"] if c["configuration"] == "rank2"]
    assert same and all(c["metrics"] == {} and "itself" in c["sentence"] for c in same)
    assert "is the reference (the paper's settings) itself" in report["text"]

    none = finish.finish_best(exp, seeds=2, reference="none", progress=False, echo=lambda *_: None)
    assert none["comparisons"] == [] and none["seeds"] == [4, 5]


def test_cli_reference_option(sweep_dir):
    exp, _ = sweep_dir
    result = CliRunner().invoke(main, ["train", "--best", str(exp), "--seeds", "3", "--reference", "none"])
    assert result.exit_code == 0, result.output
    assert "seeds [4, 5, 6]: fresh" in result.output
    result = CliRunner().invoke(main, ["train", "cfg.yaml", "--reference", "paper"])
    assert result.exit_code == 2 and "--reference is an option of uwav train --best" in result.output
