"""Sweeps end to end on tiny in-memory data with a 2-CPU Ray: Optuna + ASHA, MLflow parent/child runs,
the test split never loaded, resume after the driver is killed, a trial surviving a killed worker, and
`--best` producing mean ± std."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from sweep_fixtures import tiny_data, write_sweep

from uwav import tracking
from uwav.cli import main
from uwav.config import flat_dict, load_config
from uwav.data import dataset
from uwav.errors import UwavError
from uwav.metrics import METRIC_NAMES
from uwav.pseudo.run import write_thresholds
from uwav.sweep.finish import finish_best
from uwav.sweep.repair import named_checkpoints, repair_lost_checkpoints
from uwav.sweep.results import format_outcome
from uwav.sweep.spec import load_sweep
from uwav.sweep.trainable import sweep_trial
from uwav.sweep.tuner import run_sweep

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_local():
    from uwav.sweep.tuner import ray_environment

    ray_environment(local=True)
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=256 << 20,
             log_to_driver=False)
    yield
    ray.shutdown()


class FakeLogits:
    def get(self, key, default=""):
        return "sha-of-a-test-generator"


@pytest.fixture(scope="module")
def finished(ray_local, tmp_path_factory):
    """One 6-trial sweep whose driver loads data through the real `load_parser_data`, with only the
    per-split reader replaced, so the test can see which splits it asks for."""
    tmp = tmp_path_factory.mktemp("sweep")
    spec = load_sweep(write_sweep(tmp, num_samples=6))
    fake = tiny_data(include_test=True)
    requested = []

    def load_split(config, split, logits):
        requested.append(split)
        return fake.splits[split]

    pseudo = Path(spec.base.logits_file).parent
    pseudo.mkdir(parents=True)
    Path(spec.base.logits_file).write_bytes(b"")
    quality = {"rows": [{"labels": "generator", "split": s, **{m: 50.0 + i for i, m in enumerate(METRIC_NAMES)}}
                        for s in ("val", "test")]}
    (pseudo / "quality.json").write_text(json.dumps(quality))
    write_thresholds(pseudo, fake.thresholds, "f1", "code", FakeLogits().get("generator_sha256"), "synthetic")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setattr(dataset, "load_split", load_split)
        mp.setattr(dataset, "open_logits", lambda path: FakeLogits())
        outcome = run_sweep(spec, verbose=1)  # the console as `uwav sweep` prints it to a log file
        print(format_outcome(outcome, spec.metric))
    return spec, outcome, requested, out.getvalue()


def test_console_fits_120_columns_without_per_result_boxes(finished):
    spec, outcome, _, printed = finished
    lines = printed.splitlines()
    assert max(map(len, lines)) <= 120, max(lines, key=len)
    assert not any(ch in printed for ch in "╭╰│┌└") and "Trial status" not in printed  # Tune's table and boxes
    assert "INFO" not in printed and "tensorboard" not in printed.lower()
    rows = [line for line in lines if line.startswith("t0")]
    assert len(rows) == 6  # one line per finished trial
    for row in outcome.leaderboard:
        line = next(line for line in rows if row["trial_id"] in line.split()[0])
        assert line.split()[1] == {"complete": "done", "stopped": "stop"}[row["status"]]
        assert f"{row['best_objective']:.2f}" in line  # the best-so-far value the leaderboard ranks by
    head = next(line for line in lines if line.startswith("trial "))
    assert head.split()[:4] == ["trial", "stat", "epoch", "best"] and "offset_audio" in head
    assert "runs page: http://127.0.0.1:5000/#/experiments/" in printed and "/runs?" in printed


def test_sweep_end_to_end_with_optuna_and_asha(finished):
    spec, outcome, _, _ = finished
    board = outcome.leaderboard
    assert len(board) == 6 and outcome.finished
    assert {r["status"] for r in board} <= {"complete", "stopped"}
    assert any(r["status"] == "stopped" and r["epochs"] < 4 for r in board), "ASHA stopped nobody"
    assert any(r["status"] == "complete" and r["epochs"] == 4 for r in board)
    objectives = [r["best_objective"] for r in board]
    assert objectives == sorted(objectives, reverse=True) and outcome.best_objective == objectives[0]
    # the paper's point ran as given, the others were sampled inside the space
    assert any(r["params"] == {"pseudo.offset_audio": 0.0, "loss.W": 0.5, "train.lr_max": 3e-3} for r in board)
    for r in board:
        assert -1.0 <= r["params"]["pseudo.offset_audio"] <= 1.0 and 0.1 <= r["params"]["loss.W"] <= 2.0
    best = load_config(outcome.best_config_file)
    assert best == spec.trial_config(outcome.best_params)
    assert (outcome.experiment_dir / "leaderboard.md").read_text().count("\n") == 6 + 2


def test_sweep_never_reads_the_test_split(finished, tmp_path):
    _, _, requested, _ = finished
    assert sorted(requested) == ["train", "val"]
    with pytest.raises(UwavError, match="test split"):
        sweep_trial({}, data=tiny_data(include_test=True), base={})
    spec = load_sweep(write_sweep(tmp_path))
    with pytest.raises(UwavError, match="test split"):
        run_sweep(spec, data=tiny_data(include_test=True))


def test_mlflow_parent_and_child_runs(finished):
    spec, outcome, _, _ = finished
    client = tracking.client(outcome.tracking_uri)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["best_trial_id"] == outcome.best_trial_id
    assert parent.data.metrics["best_objective"] == pytest.approx(outcome.best_objective)
    assert parent.data.params["space.loss.W"] == "loguniform[0.1, 2.0]"
    assert parent.data.metrics["pseudo_generator_val_segment_audio"] == 50.0
    assert not any("test" in k for k in parent.data.metrics), "the sweep logged test numbers"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"best_config.yaml", "leaderboard.csv", "leaderboard.md", "sweep.yaml"} <= artifacts

    children = tracking.child_runs(outcome.tracking_uri, outcome.parent_run_id)
    board = {r["trial_id"]: r for r in outcome.leaderboard}
    assert sorted(c.data.tags[tracking.TRIAL_TAG] for c in children) == sorted(board)
    for child in children:
        row = board[child.data.tags[tracking.TRIAL_TAG]]
        assert child.info.status == "FINISHED"
        assert child.data.tags["stopped_early"] == ("true" if row["status"] == "stopped" else "false")
        assert child.data.tags["uwav.precision"] == "fp32"  # train.precision as the trial resolved it
        # the searched values under their sweep keys and the derived facts, nothing else
        facts = {"epochs_trained": str(row["epochs"]), "best_epoch": str(row["best_epoch"]),
                 "stopped_early": "true" if row["status"] == "stopped" else "false"}
        assert child.data.params == {**{k: str(v) for k, v in row["params"].items()}, **facts}
        assert child.info.run_name.startswith("t0") and child.info.run_name.endswith(row["trial_id"])
        history = client.get_metric_history(child.info.run_id, "val_segment_type_at_av")
        assert [m.step for m in history] == list(range(1, row["epochs"] + 1))
        best = client.get_metric_history(child.info.run_id, "best_objective")
        assert best[-1].value == pytest.approx(row["best_objective"])
        assert len(client.get_metric_history(child.info.run_id, "pseudo_val_segment_type_at_av")) == 1
        assert {"loss_total", "val_event_type_at_av", "lr"} <= set(child.data.metrics)
        assert not {"objective", "final_objective", "epoch"} & set(child.data.metrics)
        assert (child.data.tags.get(tracking.BEST_TAG) == "true") == (row["trial_id"] == outcome.best_trial_id)
    # the constants once, on the parent: every base-config key that is not searched
    constants = {k: str(v) for k, v in flat_dict(spec.base).items() if k not in spec.keys}
    assert {k: parent.data.params[k] for k in constants} == constants
    assert not set(spec.keys) & set(parent.data.params)
    best_run = next(c for c in children if c.data.tags[tracking.TRIAL_TAG] == outcome.best_trial_id)
    assert parent.data.tags[tracking.BEST_RUN_TAG] == best_run.info.run_id
    assert "base_config.yaml" in artifacts


def test_plots_and_the_persisted_optuna_study(finished):
    import optuna

    spec, outcome, _, _ = finished
    client = tracking.client(outcome.tracking_uri)
    logged = {a.path for a in client.list_artifacts(outcome.parent_run_id, "plots")}
    assert logged == {f"plots/{name}" for name in ("optimisation_history.png", "param_importance.png",
                                                    "parallel_coordinates.png", "learning_curves.png")}
    for name in logged:
        assert (outcome.experiment_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    study = optuna.load_study(study_name=spec.name,
                              storage=f"sqlite:///{(outcome.experiment_dir / 'optuna.db').resolve()}")
    board = {r["trial_id"]: r for r in outcome.leaderboard}
    trials = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    assert set(trials) == set(board)
    for tid, t in trials.items():
        assert t.state == optuna.trial.TrialState.COMPLETE and t.params == pytest.approx(board[tid]["params"])
        assert t.value == pytest.approx(board[tid]["best_objective"])
        assert t.user_attrs["stopped_early"] == (board[tid]["status"] == "stopped")
        assert sorted(t.intermediate_values) == list(range(1, board[tid]["epochs"] + 1))
    assert study.best_value == pytest.approx(outcome.best_objective)


def test_best_fresh_seeds_paired_with_a_reference_and_provenance(finished, tmp_path):
    """Issue 14 on the tiny sweep: fresh seeds, the reference on the same seeds, the paired statistics by
    hand, provenance in every results file and on every MLflow run."""
    spec, outcome, _, _ = finished
    ref = yaml.safe_load((spec.path.parent / "base.yaml").read_text())
    ref["loss"] = {"W": 1.7}  # a configuration no trial ran, so the reference is trained beside the winner
    (tmp_path / "ref.yaml").write_text(yaml.safe_dump(ref))
    report = finish_best(outcome.experiment_dir, seeds=2, top_k=1, reference=str(tmp_path / "ref.yaml"),
                         data=tiny_data(include_test=True), progress=False, echo=lambda *_: None)
    trial_seeds = {spec.trial_config(r["params"]).seed for r in outcome.leaderboard}
    assert trial_seeds == {3} and report["seeds"] == [4, 5] and not trial_seeds & set(report["seeds"])
    best = outcome.experiment_dir / "best"
    for key in ("rank1", "reference"):
        for seed in (4, 5):
            saved = json.loads((best / key / f"seed{seed}" / "metrics.json").read_text())
            assert saved["seed"] == seed and set(saved["test"]) == set(METRIC_NAMES)
            prov = saved["provenance"]
            assert {"code", "versions", "device", "config_sha256", "annotations", "audio_gt", "features",
                    "generator"} <= set(prov)
            assert saved["audio_gt"] == prov["audio_gt"] and prov["versions"]["torch"]
    results = json.loads((best / "results.json").read_text())
    conf = {c["key"]: c for c in results["configurations"]}
    assert conf["reference"]["test_seeds"] == conf["rank1"]["test_seeds"] == [4, 5]
    assert conf["rank1"]["trial_id"] == outcome.best_trial_id
    assert conf["reference"]["config_sha256"] != conf["rank1"]["config_sha256"]
    assert {"audio_gt", "provenance", "seeds", "sweep_seeds"} <= set(results)
    # The paired statistics by hand: two seeds, one degree of freedom (Cauchy: P(|T| > t) = 1 - 2 atan(t) / π).
    for comp in results["comparisons"]:
        split = comp["split"]
        for name in METRIC_NAMES:
            w = [conf["rank1"][f"{split}_per_seed"][str(s)][name] for s in (4, 5)]
            r = [conf["reference"][f"{split}_per_seed"][str(s)][name] for s in (4, 5)]
            d = [a - b for a, b in zip(w, r, strict=True)]
            mean, sd = (d[0] + d[1]) / 2, abs(d[0] - d[1]) / np.sqrt(2)
            got = comp["metrics"][name]
            assert got["diff_mean"] == pytest.approx(mean, abs=1e-9)
            assert got["winner_mean"] == pytest.approx(np.mean(w)) and got["reference_std"] == pytest.approx(
                np.std(r, ddof=1))
            if got["zero_variance"]:
                continue
            assert got["diff_std"] == pytest.approx(sd)
            t = mean / (sd / np.sqrt(2))
            assert got["p_value"] == pytest.approx(1 - 2 * np.arctan(abs(t)) / np.pi, abs=1e-9)
            half = 12.706204736174705 * sd / np.sqrt(2)  # t(0.975, 1)
            assert (got["ci_low"], got["ci_high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
            assert got["verdict"] == ("indistinguishable" if got["p_value"] >= 0.05 else
                                      "better" if mean > 0 else "worse")
        words = {"better": " beats the reference", "worse": " is worse than the reference",
                 "indistinguishable": " is not distinguishable from the reference"}
        assert comp["sentence"].startswith("rank 1" + words[comp["metrics"]["segment_type_at_av"]["verdict"]])
    assert "Segment Type@AV" in report["text"] and "95% interval" in report["text"]

    client = tracking.client(outcome.tracking_uri)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.data.tags["uwav.provenance.code.source"] in ("git", "installed")
    assert "provenance.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    trial_hashes = set()
    for child in tracking.child_runs(outcome.tracking_uri, outcome.parent_run_id):
        tags = child.data.tags
        if tags.get("uwav.kind") != "trial":
            continue
        assert tags["uwav.provenance.versions.torch"] and tags["uwav.provenance.audio_gt.version"]
        trial_hashes.add(tags["uwav.provenance.config_sha256"])
    assert len(trial_hashes) == len(outcome.leaderboard)  # each trial its own resolved config
    # The final runs (issue 13's layout): a summary under the sweep's parent, one child per configuration x seed.
    summary = client.get_run(results["mlflow"]["summary_run_id"])
    assert summary.data.tags["uwav.kind"] == "final" and summary.data.tags[tracking.PARENT_TAG] == parent.info.run_id
    assert json.loads(summary.data.params["seeds"]) == [4, 5]
    assert summary.data.tags["uwav.provenance.audio_gt.version"] == results["audio_gt"]["version"]
    test_comp = next(c for c in results["comparisons"] if c["split"] == "test")
    assert summary.data.metrics["comparison/rank1_test_segment_type_at_av_diff_mean"] == pytest.approx(
        test_comp["metrics"]["segment_type_at_av"]["diff_mean"])
    for key in ("rank1", "reference"):
        assert summary.data.metrics[f"{key}/test_segment_type_at_av_mean"] == pytest.approx(
            conf[key]["test"]["segment_type_at_av"]["mean"])
    seed_runs = results["mlflow"]["runs"]
    assert sorted((r["label"], r["seed"]) for r in seed_runs) == [("rank1", 4), ("rank1", 5), ("reference", 4),
                                                                  ("reference", 5)]
    for entry in seed_runs:
        run = client.get_run(entry["run_id"])
        assert run.data.tags["uwav.provenance.code.source"] in ("git", "installed")
        assert run.data.metrics["test_segment_type_at_av"] == pytest.approx(
            conf[entry["label"]]["test_per_seed"][str(entry["seed"])]["segment_type_at_av"])


def test_finish_section_reevaluates_the_top_trials_on_fresh_seeds(ray_local, tmp_path):
    """`finish: {top_k: 2, seeds: 2}`: after the search the two best trials are re-trained on val with seeds
    after the search's, ranked by their mean; `train --best` then takes seeds after those too."""
    spec = load_sweep(write_sweep(tmp_path, num_samples=3, finish={"top_k": 2, "seeds": 2, "reference": "none"}))
    with contextlib.redirect_stderr(io.StringIO()) as err:
        outcome = run_sweep(spec, data=tiny_data(include_test=False), verbose=0)
    lines = err.getvalue().splitlines()
    summary = json.loads((outcome.experiment_dir / "reevaluation.json").read_text())
    assert summary["trial_seeds"] == [3] and summary["seeds"] == [4, 5] and summary["trainings"] == 4
    means = [t["mean"] for t in summary["trials"]]
    assert means == sorted(means, reverse=True)
    for t in summary["trials"]:
        assert t["mean"] == pytest.approx(np.mean(list(t["per_seed"].values())))
    board = json.loads((outcome.experiment_dir / "leaderboard.json").read_text())
    assert [r["trial_id"] for r in board[:2]] == [t["trial_id"] for t in summary["trials"]]
    assert "reeval" in board[0] and "reeval" not in board[2]
    assert outcome.best_trial_id == board[0]["trial_id"]
    assert load_config(outcome.best_config_file) == spec.trial_config(board[0]["params"])
    assert "reeval_mean" in (outcome.experiment_dir / "leaderboard.md").read_text()
    assert any(line.startswith("re-evaluating the top 2 trials with seeds [4, 5] on val") for line in lines)
    report = finish_best(outcome.experiment_dir, seeds=2, data=tiny_data(include_test=True), progress=False,
                         echo=lambda *_: None)
    assert report["seeds"] == [6, 7] and report["sweep_seeds"]["re-evaluation seeds"] == [4, 5]
    assert report["reference"] == {"choice": "none"}  # the sweep file's finish.reference


def test_cli_errors_are_one_line(finished, tmp_path):
    spec, _, _, _ = finished
    runner = CliRunner()
    for args in (["sweep", str(tmp_path / "missing.yaml")], ["train", "--best", str(tmp_path / "nowhere")],
                 ["train", "cfg.yaml", "--best", str(spec.path)], ["sweep", "show", str(tmp_path)],
                 ["sweep", "show", str(tmp_path / "missing.yaml")], ["ui", str(tmp_path)]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.count("\n") == 1 and result.output.startswith("error: ")


def test_sweep_again_reuses_the_finished_sweep_and_show_reads_it(finished):
    spec, outcome, _, _ = finished
    runner = CliRunner()
    client = tracking.client(outcome.tracking_uri)
    before = len(tracking.child_runs(outcome.tracking_uri, outcome.parent_run_id))
    again = runner.invoke(main, ["sweep", str(spec.path)])
    assert again.exit_code == 0, again.output
    assert again.output.startswith(f"reusing the finished sweep in {outcome.experiment_dir}")
    best_name = outcome.leaderboard[0]["name"]
    assert best_name.startswith("t0") and best_name.endswith(outcome.best_trial_id)
    assert f"best trial {best_name}: val segment_type_at_av {outcome.best_objective:.2f}" in again.output
    assert len(tracking.child_runs(outcome.tracking_uri, outcome.parent_run_id)) == before
    assert client.get_run(outcome.parent_run_id).info.status == "FINISHED"

    shown = runner.invoke(main, ["sweep", "show", str(outcome.experiment_dir)])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert max(map(len, lines)) <= 120
    assert lines[0].endswith(": finished")
    counts = {s: sum(r["status"] == s for r in outcome.leaderboard) for s in ("complete", "stopped")}
    assert lines[1] == (f"trials: 6 of 6 started; {counts['complete']} complete, {counts['stopped']} stopped early "
                        f"by ASHA, 0 errors, 0 unfinished, 0 pending")
    ranked = [line.split()[1] for line in lines if line[:4].strip().isdigit()]
    assert [name.split("-", 1)[1] for name in ranked] == [r["trial_id"] for r in outcome.leaderboard]
    assert f"best configuration ({ranked[0]}, val segment_type_at_av {outcome.best_objective:.2f}):" in lines
    assert any(line.startswith("  runs page: http://127.0.0.1:5000/#/experiments/") for line in lines)
    # the sweep file shows the same
    assert runner.invoke(main, ["sweep", "show", str(spec.path)]).output == shown.output


_DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from sweep_fixtures import tiny_data
from uwav.sweep.tuner import run_sweep
from uwav.sweep.spec import load_sweep
run_sweep(load_sweep(sys.argv[1]), data=tiny_data(False), verbose=0, num_cpus=2)
"""


def _finished_children(spec) -> dict[str, object]:
    """Child runs of trials that are finished both in MLflow and in Tune's saved experiment state."""
    from ray.tune import ExperimentAnalysis

    meta_file = spec.experiment_dir / "sweep.json"
    if not meta_file.is_file():
        return {}
    try:
        saved = {t.trial_id for t in ExperimentAnalysis(str(spec.experiment_dir)).trials
                 if t.status == "TERMINATED"}
    except Exception:  # no state file written yet
        return {}
    meta = json.loads(meta_file.read_text())
    runs = tracking.child_runs(meta["tracking_uri"], meta["parent_run_id"])
    return {r.data.tags[tracking.TRIAL_TAG]: r for r in runs
            if r.info.status == "FINISHED" and r.data.tags[tracking.TRIAL_TAG] in saved}


def test_resume_after_the_driver_is_killed(ray_local, tmp_path):
    spec = load_sweep(write_sweep(tmp_path, num_samples=6, name="killed"))
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER.format(tests=str(TESTS)))
    proc = subprocess.Popen([sys.executable, str(script), str(spec.path)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 150
        while len(before := _finished_children(spec)) < 2:
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
            assert time.time() < deadline, "no trial finished in time"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        proc.wait()
    client = tracking.client(spec.tracking_uri)
    steps_before = {t: len(client.get_metric_history(r.info.run_id, "best_objective")) for t, r in before.items()}
    # Ray's checkpoint/state race (uwav/sweep/repair.py), made to happen to every unfinished trial with a
    # checkpoint: the one the saved state names is gone and only a newer one is on disk.
    for folder, named in named_checkpoints(spec.experiment_dir).items():
        if named.is_dir() and not any(tid in folder for tid in before):
            newer = named.with_name(f"checkpoint_{int(named.name.split('_')[1]) + 1:06d}")
            if newer.exists():
                shutil.rmtree(named)
            else:
                named.rename(newer)

    outcome = run_sweep(spec, resume=True, data=tiny_data(False), verbose=0)
    assert outcome.finished and len(outcome.leaderboard) == 6
    children = tracking.child_runs(spec.tracking_uri, outcome.parent_run_id)
    trial_ids = [c.data.tags[tracking.TRIAL_TAG] for c in children]
    assert len(trial_ids) == len(set(trial_ids)) == 6, "MLflow runs were duplicated"
    assert {c.info.status for c in children} == {"FINISHED"}
    assert set(trial_ids) == {r["trial_id"] for r in outcome.leaderboard}
    for tid, run in before.items():  # finished trials were not run again
        again = client.get_run(run.info.run_id)
        assert again.info.end_time == run.info.end_time
        assert len(client.get_metric_history(run.info.run_id, "best_objective")) == steps_before[tid]
    parents = client.search_runs([children[0].info.experiment_id], filter_string="tags.`uwav.kind` = 'sweep'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"


def test_resume_puts_back_a_checkpoint_ray_deleted_before_saving_its_state(ray_local, tmp_path):
    spec = load_sweep(write_sweep(tmp_path, num_samples=1, concurrent=1, name="lost", scheduler={"type": "fifo"}))
    run_sweep(spec, data=tiny_data(False), verbose=0)
    ((folder, named),) = named_checkpoints(spec.experiment_dir).items()
    assert named.is_dir() and named.parent == spec.experiment_dir / folder
    files = {p.name: p.read_bytes() for p in named.iterdir()}
    newer = named.with_name(f"checkpoint_{int(named.name.split('_')[1]) + 1:06d}")
    named.rename(newer)  # what a driver killed between Ray's deletion and its state snapshot leaves
    (line,) = repair_lost_checkpoints(spec.experiment_dir)
    assert named.name in line and newer.name in line
    assert {p.name: p.read_bytes() for p in named.iterdir()} == files
    assert repair_lost_checkpoints(spec.experiment_dir) == []  # idempotent
    assert named_checkpoints(tmp_path) == {} and repair_lost_checkpoints(tmp_path) == []  # no Tune state


def test_trial_restarts_from_its_checkpoint_after_the_worker_dies(ray_local, tmp_path):
    spec = load_sweep(write_sweep(tmp_path, num_samples=1, concurrent=1, name="crash",
                                  scheduler={"type": "fifo"}))
    marker, log = tmp_path / "killed-once", tmp_path / "epochs.log"

    def crashing_trial(params, **kwargs):
        """sweep_trial, but the worker process SIGKILLs itself after its first epoch 2 (before reporting)."""
        import os
        import signal

        from uwav import fit as train
        from uwav.sweep.trainable import sweep_trial

        original = train.Trainer.run_epoch

        def run_epoch(self):
            report = original(self)
            with open(log, "a") as fh:
                fh.write(f"{os.getpid()} {report.epoch}\n")
            if report.epoch == 2 and not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
            return report

        train.Trainer.run_epoch = run_epoch
        try:
            sweep_trial(params, **kwargs)
        finally:
            train.Trainer.run_epoch = original

    data = tiny_data(False)
    outcome = run_sweep(spec, data=data, trainable=crashing_trial, verbose=0)
    (row,) = outcome.leaderboard
    assert row["status"] == "complete" and row["epochs"] == 4
    lines = [tuple(map(int, line.split())) for line in log.read_text().splitlines()]
    pids = list(dict.fromkeys(pid for pid, _ in lines))
    assert len(pids) == 2, lines
    assert [e for p, e in lines if p == pids[0]] == [1, 2]
    assert [e for p, e in lines if p == pids[1]] == [2, 3, 4], "the restart did not resume from epoch 1"

    # resuming from the checkpoint is exact: same best score as an uninterrupted fit
    import torch

    from uwav.fit import fit

    torch.set_num_threads(1)
    reference = fit(spec.trial_config(row["params"]), data, keep_best=False, progress=False)
    assert row["best_objective"] == pytest.approx(reference.best_objective, abs=1e-9)

    (child,) = tracking.child_runs(outcome.tracking_uri, outcome.parent_run_id)
    assert child.info.status == "FINISHED" and "uwav.restarts" in child.data.tags
    steps = [m.step for m in tracking.client(outcome.tracking_uri).get_metric_history(child.info.run_id,
                                                                                       "val_segment_type_at_av")]
    assert steps == [1, 2, 3, 4]


def test_resume_refuses_a_changed_sweep_file(finished):
    spec, _, _, _ = finished
    original = spec.path.read_text()
    try:
        spec.path.write_text(original.replace("num_samples: 6", "num_samples: 7"))
        with pytest.raises(UwavError, match="differs from the file this sweep started with"):
            run_sweep(load_sweep(spec.path), resume=True, data=tiny_data(False))
    finally:
        spec.path.write_text(original)


def test_demo_flow_runs_twice_in_one_folder(ray_local, tiny_pipeline, tmp_path):
    """`make demo`'s steps after pretraining (pseudo, sweep, train --best) on the tiny pipeline, twice: the
    second run reuses the logits, the finished sweep and the final results, says so, and exits 0."""
    sweep_file = tmp_path / "demo.yaml"
    sweep_file.write_text(yaml.safe_dump({
        "name": "demo-twice", "base": str(tiny_pipeline),
        "overrides": {"train": {"epochs": 2, "warmup_epochs": 1}},
        "space": {"loss.W": {"type": "loguniform", "low": 0.1, "high": 2.0}},
        "points_to_evaluate": [{"loss.W": 0.5}],
        "scheduler": {"type": "fifo"}, "resources": {"cpu": 1},
        "trials": {"num_samples": 2, "max_concurrent": 2}, "storage": {"path": str(tmp_path / "sweeps")},
        "finish": {"reference": "paper"},
    }))
    steps = (["pseudo", str(tiny_pipeline)], ["sweep", str(sweep_file)],
             ["train", "--best", str(sweep_file), "--seeds", "1"])
    runner = CliRunner()
    first = [runner.invoke(main, args) for args in steps]
    for args, result in zip(steps, first, strict=True):
        assert result.exit_code == 0, (args, result.output, result.exception)
    spec = load_sweep(sweep_file)
    runs_before = len(tracking.child_runs(spec.tracking_uri, json.loads(
        (spec.experiment_dir / "sweep.json").read_text())["parent_run_id"]))
    results_before = (spec.experiment_dir / "best" / "results.json").read_text()
    second = [runner.invoke(main, args) for args in steps]
    for args, result in zip(steps, second, strict=True):
        assert result.exit_code == 0, (args, result.output, result.exception)
    assert second[0].output.startswith("logits reused")
    table = [line for line in first[0].output.splitlines()
             if line.split(" ")[0] in ("labels", "generator", "zero_shot")]
    assert len(table) >= 3 and max(map(len, table)) <= 120  # the quality table: header + label sets x splits
    assert second[1].output.startswith(f"reusing the finished sweep in {spec.experiment_dir}")
    assert second[2].output.splitlines()[1].startswith(f"reusing the final results in {spec.experiment_dir / 'best'}")
    assert "rank 1" in second[2].output and "MLflow: " in second[2].output
    assert (spec.experiment_dir / "best" / "results.json").read_text() == results_before
    meta = json.loads((spec.experiment_dir / "sweep.json").read_text())
    assert len(tracking.child_runs(spec.tracking_uri, meta["parent_run_id"])) == runs_before  # nothing logged twice
