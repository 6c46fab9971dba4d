"""Sweeps end to end on tiny in-memory data with a 2-CPU Ray: Optuna + ASHA, MLflow parent/child runs,
the test split never loaded, resume after the driver is killed, a trial surviving a killed worker, and
`--best` producing mean ± std."""

from __future__ import annotations

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
    write_thresholds(pseudo, fake.thresholds, "f1", FakeLogits().get("generator_sha256"), "synthetic")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dataset, "load_split", load_split)
        mp.setattr(dataset, "open_logits", lambda path: FakeLogits())
        outcome = run_sweep(spec, verbose=0)
    return spec, outcome, requested


def test_sweep_end_to_end_with_optuna_and_asha(finished):
    spec, outcome, _ = finished
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
    _, _, requested = finished
    assert sorted(requested) == ["train", "val"]
    with pytest.raises(UwavError, match="test split"):
        sweep_trial({}, data=tiny_data(include_test=True), base={})
    spec = load_sweep(write_sweep(tmp_path))
    with pytest.raises(UwavError, match="test split"):
        run_sweep(spec, data=tiny_data(include_test=True))


def test_mlflow_parent_and_child_runs(finished):
    spec, outcome, _ = finished
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
        params = child.data.params
        assert params == {k: str(v) for k, v in flat_dict(spec.trial_config(row["params"])).items()}
        history = client.get_metric_history(child.info.run_id, "val_segment_type_at_av")
        assert [m.step for m in history] == list(range(1, row["epochs"] + 1))
        best = client.get_metric_history(child.info.run_id, "best_objective")
        assert best[-1].value == pytest.approx(row["best_objective"])
        assert len(client.get_metric_history(child.info.run_id, "pseudo_val_segment_type_at_av")) == 1
        assert {"loss_total", "val_event_type_at_av", "final_objective", "lr"} <= set(child.data.metrics)


def test_best_retrains_with_seeds_and_reports_mean_std(finished):
    spec, outcome, _ = finished
    report = finish_best(outcome.experiment_dir, seeds=2, top_k=1, data=tiny_data(include_test=True),
                         progress=False, echo=lambda *_: None)
    (result,) = report["results"]
    base_seed = spec.trial_config(outcome.best_params).seed
    assert result["seeds"] == [base_seed, base_seed + 1]
    assert set(result["test"]) == set(METRIC_NAMES)
    for name in METRIC_NAMES:
        values = [s[name] for s in result["test_per_seed"]]
        assert result["test"][name]["mean"] == pytest.approx(np.mean(values))
        assert result["test"][name]["std"] == pytest.approx(np.std(values, ddof=1))
    assert "±" in report["text"] and "Type@AV" in report["text"]
    saved = json.loads((outcome.experiment_dir / "best" / "results.json").read_text())
    assert saved["results"][0]["test"] == result["test"]
    client = tracking.client(outcome.tracking_uri)
    run = client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["uwav.kind"] == "final"
    mean = result["test"]["segment_type_at_av"]["mean"]
    assert run.data.metrics["test_segment_type_at_av_mean"] == pytest.approx(mean)
    assert len(client.get_metric_history(run.info.run_id, "test_segment_type_at_av")) == 2


def test_cli_errors_are_one_line(finished, tmp_path):
    spec, _, _ = finished
    runner = CliRunner()
    for args in (["sweep", str(tmp_path / "missing.yaml")], ["train", "--best", str(tmp_path / "nowhere")],
                 ["sweep", str(spec.path)], ["train", "cfg.yaml", "--best", str(spec.path)]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert "--resume" in runner.invoke(main, ["sweep", str(spec.path)]).output


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
    steps_before = {t: len(client.get_metric_history(r.info.run_id, "epoch")) for t, r in before.items()}
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
        assert len(client.get_metric_history(run.info.run_id, "epoch")) == steps_before[tid]
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
    spec, _, _ = finished
    original = spec.path.read_text()
    try:
        spec.path.write_text(original.replace("num_samples: 6", "num_samples: 7"))
        with pytest.raises(UwavError, match="differs from the file this sweep started with"):
            run_sweep(load_sweep(spec.path), resume=True, data=tiny_data(False))
    finally:
        spec.path.write_text(original)
