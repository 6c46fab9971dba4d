"""MLflow tracking without Ray: the Tune callback driven by stand-in trials, read back via MlflowClient."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field

import pytest
from sweep_fixtures import BASE

from uwav import tracking
from uwav.config import config_from_dict
from uwav.sweep.tracker import SweepTracker


@dataclass
class Trial:  # the attributes of ray.tune.experiment.Trial the callback reads
    trial_id: str
    config: dict
    last_result: dict = field(default_factory=dict)
    num_failures: int = 0
    error_file: str | None = None
    experiment_tag: str = "7_loss_W=0.3"

    def __str__(self):
        return f"sweep_trial_{self.trial_id}"


def result(epoch: int, value: float) -> dict:
    return {"epoch": epoch, "val_segment_type_at_av": value, "loss_total": 1.0 / epoch, "objective": value,
            "best_objective": value, "best_epoch": epoch, "time_this_iter_s": 0.1, "trial_id": "ignored",
            "config": {"x": 1}}


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    """One store for the module: creating an MLflow sqlite database takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def sweep(uri, tmp_path, request):
    base = config_from_dict(BASE)
    exp_id, parent = tracking.start_sweep(uri, f"uwav-{request.node.name}", tmp_path / "sweep", "test",
                                          {"space.loss.W": "x"})
    return uri, exp_id, parent, SweepTracker(uri, exp_id, parent, base, ("loss.W",))


def test_child_runs_params_steps_and_statuses(sweep):
    uri, _, parent, cb = sweep
    done, stopped, broken = Trial("a", {"loss.W": 0.3}), Trial("b", {"loss.W": 1.5}), Trial("c", {"loss.W": 1.0})
    for t in (done, stopped, broken):
        cb.on_trial_start(0, [], t)
    for epoch in range(1, 5):
        cb.on_trial_result(0, [], done, {**result(epoch, 10.0 * epoch), "pseudo_val_segment_type_at_av": 40.0}
                           if epoch == 1 else result(epoch, 10.0 * epoch))
    cb.on_trial_result(0, [], stopped, result(1, 5.0))
    cb.on_trial_complete(0, [], done)
    cb.on_trial_complete(0, [], stopped)
    cb.on_trial_error(0, [], broken)
    client = tracking.client(uri)
    runs = {r.data.tags[tracking.TRIAL_TAG]: r for r in tracking.child_runs(uri, parent)}
    assert set(runs) == {"a", "b", "c"}
    assert {k: r.info.status for k, r in runs.items()} == {"a": "FINISHED", "b": "FINISHED", "c": "FAILED"}
    assert runs["a"].data.tags["stopped_early"] == "false" and runs["b"].data.tags["stopped_early"] == "true"
    assert runs["a"].data.tags[tracking.PARENT_TAG] == parent
    # only what differs between trials: the searched value under its sweep key and the derived facts
    assert runs["a"].data.params == {"loss.W": "0.3", "epochs_trained": "4", "best_epoch": "4",
                                     "stopped_early": "false"}
    assert runs["b"].data.params == {"loss.W": "1.5", "epochs_trained": "1", "best_epoch": "1",
                                     "stopped_early": "true"}
    assert runs["c"].data.params == {"loss.W": "1.0", "epochs_trained": "0"}
    assert runs["a"].info.run_name == "t07-a"  # the trial counter first, then Tune's id
    assert runs["a"].data.tags["uwav.searched"] == "loss.W"
    history = client.get_metric_history(runs["a"].info.run_id, "val_segment_type_at_av")
    assert [(m.step, m.value) for m in history] == [(1, 10.0), (2, 20.0), (3, 30.0), (4, 40.0)]
    # the objective under one name: best_objective; `objective` (= val_<metric>), `epoch` are not repeated
    assert runs["a"].data.metrics["best_objective"] == 40.0
    assert not {"objective", "final_objective", "epoch", "best_epoch"} & set(runs["a"].data.metrics)
    assert [m.step for m in client.get_metric_history(runs["a"].info.run_id, "pseudo_val_segment_type_at_av")] == [0]
    # Tune's bookkeeping is not logged as metrics
    assert "time_this_iter_s" not in runs["a"].data.metrics and "trial_id" not in runs["a"].data.metrics


def test_restored_callback_reuses_runs_and_skips_logged_steps(sweep):
    uri, _, parent, cb = sweep
    trial = Trial("a", {"loss.W": 0.3})
    cb.on_trial_start(0, [], trial)
    cb.on_trial_result(0, [], trial, result(1, 1.0))
    cb.on_trial_result(0, [], trial, result(2, 2.0))
    # Tuner.restore unpickles the callback in a new driver; the restarted trial repeats epoch 2
    again = pickle.loads(pickle.dumps(cb))
    assert again._runs == {} and again._client is None
    again.on_trial_start(0, [], trial)
    for epoch in (2, 3):
        again.on_trial_result(0, [], trial, result(epoch, float(epoch)))
    again.on_trial_complete(0, [], trial)
    (run,) = tracking.child_runs(uri, parent)
    steps = [m.step for m in tracking.client(uri).get_metric_history(run.info.run_id, "val_segment_type_at_av")]
    assert steps == [1, 2, 3] and run.info.status == "FINISHED"


def test_best_trial_is_tagged_and_linked_from_the_parent(sweep):
    uri, _, parent, cb = sweep
    for tid in ("a", "b"):
        cb.on_trial_start(0, [], Trial(tid, {"loss.W": 0.3}))
    runs = {r.data.tags[tracking.TRIAL_TAG]: r.info.run_id for r in tracking.child_runs(uri, parent)}
    assert tracking.mark_best(uri, parent, "a") == runs["a"]
    assert tracking.mark_best(uri, parent, "b") == runs["b"]  # a resumed sweep may rank another one first
    client = tracking.client(uri)
    assert client.get_run(parent).data.tags[tracking.BEST_RUN_TAG] == runs["b"]
    assert client.get_run(runs["b"]).data.tags[tracking.BEST_TAG] == "true"
    assert tracking.BEST_TAG not in client.get_run(runs["a"]).data.tags


def test_interrupted_sweep_closes_runs_and_resume_reopens_the_parent(sweep, tmp_path):
    uri, exp_id, parent, cb = sweep
    trial = Trial("a", {"loss.W": 0.3})
    cb.on_trial_start(0, [], trial)
    tracking.finish_sweep(uri, parent, "KILLED")
    client = tracking.client(uri)
    assert client.get_run(parent).info.status == "KILLED"
    (child,) = tracking.child_runs(uri, parent)
    assert child.info.status == "KILLED" and child.data.tags["uwav.interrupted"] == "true"
    # --resume: the same parent is found by the sweep folder and reopened, not duplicated
    exp_again, parent_again = tracking.start_sweep(uri, client.get_experiment(exp_id).name, tmp_path / "sweep",
                                                   "test", {})
    assert (exp_again, parent_again) == (exp_id, parent)
    assert client.get_run(parent).info.status == "RUNNING"
    cb.on_trial_start(0, [], trial)
    assert tracking.client(uri).get_run(child.info.run_id).info.status == "RUNNING"
    assert len(tracking.child_runs(uri, parent)) == 1


def test_runs_of_trials_lost_by_a_killed_driver_are_soft_deleted(sweep):
    uri, _, parent, cb = sweep
    for tid in ("kept", "lost"):
        cb.on_trial_start(0, [], Trial(tid, {"loss.W": 0.3}))
    assert tracking.drop_lost_trials(uri, parent, {"kept"}) == 1
    (run,) = tracking.child_runs(uri, parent)
    assert run.data.tags[tracking.TRIAL_TAG] == "kept"


def test_pseudo_quality_rows_skip_test(tmp_path):
    path = tmp_path / "quality.json"
    path.write_text(json.dumps({"rows": [
        {"labels": "generator", "split": "val", "segment_type_at_av": 60.0},
        {"labels": "zero_shot", "split": "train", "segment_type_at_av": 30.0},
        {"labels": "generator", "split": "test", "segment_type_at_av": 99.0},
    ]}))
    assert tracking.pseudo_quality_metrics(path) == {"pseudo_generator_val_segment_type_at_av": 60.0,
                                                     "pseudo_zero_shot_train_segment_type_at_av": 30.0}
    assert tracking.pseudo_quality_metrics(tmp_path / "missing.json") == {}


def _history(epochs: int, base: float) -> list[dict]:
    """Per-epoch entries as uwav.fit.EpochReport dicts (history.json)."""
    return [{"epoch": e, "lr": 1e-3, "seconds": 0.5, "losses": {"total": 1.0 / e},
             "val": {"segment_type_at_av": base + e}, "objective": base + e, "best_objective": base + e,
             "best_epoch": e, "improved": True} for e in range(1, epochs + 1)]


def test_final_report_is_nested_under_the_sweep_with_one_child_per_configuration_and_seed(sweep, tmp_path):
    uri, exp_id, parent, _ = sweep
    results_md = tmp_path / "results.md"
    results_md.write_text("table")
    run_dir = tmp_path / "rank1" / "seed20000"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text("{}")

    def run(seed: int, test: float, folder=None) -> dict:
        return {"seed": seed, "val": {"segment_type_at_av": 50.0}, "test": {"segment_type_at_av": test},
                "best_epoch": 3, "history": _history(3, 40.0), **({"run_dir": str(folder)} if folder else {})}

    report = {
        "objective": "segment_type_at_av", "seeds": [20000, 20001],
        "configurations": [
            {"label": "rank1", "params": {"loss.W": 0.3}, "trial_id": "a",
             "runs": [run(20000, 40.0, run_dir), run(20001, 44.0)]},
            {"label": "reference", "params": {"loss.W": 0.5}, "runs": [run(20000, 39.0), run(20001, 41.0)]},
        ],
        "comparison": {"rank1_vs_reference": {"test": {"segment_type_at_av": {"difference": 2.0, "p": 0.5,
                                                                                "verdict": "indistinguishable"}}}},
        "text": "rank 1 is not distinguishable from the reference", "files": [str(results_md)],
    }
    logged = tracking.log_final_report(uri, {"name": "test", "experiment_id": exp_id, "parent_run_id": parent},
                                       report, provenance={"code": {"git_commit": "abc123", "git_dirty": False},
                                                           "libraries": {"mlflow": "3"}})
    client = tracking.client(uri)
    summary = client.get_run(logged["summary_run_id"])
    assert summary.data.tags[tracking.PARENT_TAG] == parent and summary.data.tags["uwav.kind"] == "final"
    assert client.get_run(parent).data.tags["uwav.final_run_id"] == summary.info.run_id
    assert json.loads(summary.data.params["seeds"]) == [20000, 20001]
    assert summary.data.params["rank1/loss.W"] == "0.3"
    m = summary.data.metrics
    assert m["rank1/test_segment_type_at_av_mean"] == pytest.approx(42.0)
    assert m["rank1/test_segment_type_at_av_std"] == pytest.approx(2.0 ** 1.5)  # sample std of 40, 44
    assert m["reference/test_segment_type_at_av_mean"] == pytest.approx(40.0)
    assert m["comparison/rank1_vs_reference_test_segment_type_at_av_difference"] == 2.0
    assert summary.data.tags["uwav.comparison.rank1_vs_reference_test_segment_type_at_av_verdict"] == \
        "indistinguishable"
    # plain values, not a seed-as-step curve
    assert [x.step for x in client.get_metric_history(summary.info.run_id, "rank1/test_segment_type_at_av_mean")] == [0]
    assert {a.path for a in client.list_artifacts(summary.info.run_id)} == {"results.md"}

    children = client.search_runs([exp_id], f"tags.`{tracking.PARENT_TAG}` = '{summary.info.run_id}'")
    assert sorted((c.data.params["configuration"], c.data.params["seed"]) for c in children) == [
        ("rank1", "20000"), ("rank1", "20001"), ("reference", "20000"), ("reference", "20001")]
    for child in children:
        assert child.data.tags["uwav.kind"] == "final_seed" and child.info.status == "FINISHED"
        assert set(child.data.params) == {"loss.W", "seed", "configuration"}
        curve = client.get_metric_history(child.info.run_id, "val_segment_type_at_av")
        assert [(x.step, x.value) for x in curve] == [(1, 41.0), (2, 42.0), (3, 43.0)]
        assert child.data.metrics["best_epoch"] == 3 and child.data.metrics["best_objective"] == 50.0
        assert "objective" not in child.data.metrics and "epoch" not in child.data.metrics
        assert child.data.tags["uwav.provenance.code.git_commit"] == "abc123"
        assert child.data.tags["mlflow.source.git.commit"] == "abc123"
    first = next(c for c in children if c.data.tags.get("uwav.run_dir") == str(run_dir))
    assert first.data.metrics["test_segment_type_at_av"] == 40.0
    assert {a.path for a in client.list_artifacts(first.info.run_id)} == {"metrics.json"}
    assert summary.data.tags["uwav.provenance.libraries.mlflow"] == "3"
