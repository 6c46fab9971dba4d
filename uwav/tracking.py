"""Everything MLflow, in one place: the sweep's parent run, one child run per trial, the final run.

Layout in the MLflow UI (experiment `uwav-<sweep name>` unless the sweep file names one):
  parent run `<sweep name>`: the sweep settings as params (space.loss.W = "loguniform[0.1, 2.0]", ...),
      the generator's pseudo-label quality (non-test rows of quality.json), and at the end
      best_config.yaml, leaderboard.csv / leaderboard.md, best_objective, tag best_trial_id.
  child runs, one per Tune trial (tag mlflow.parentRunId, uwav.trial_id): the trial's full flat config
      as params (searched keys under their dotted names, listed in tag uwav.searched), the trial's
      pseudo-label quality once (pseudo_val_*), per-epoch val_* / loss_* / lr / objective /
      best_objective as step metrics (step = epoch), final_objective at the end; status FINISHED,
      FAILED, or KILLED (sweep interrupted); ASHA-stopped trials are FINISHED with tag
      stopped_early=true.
  final runs from `uwav train --best` (tag uwav.kind=final): per-seed test metrics as steps and
      their mean / std.

Logging happens on the driver through a Tune callback (uwav.sweep.tracker): trials never talk to MLflow,
so a cluster only needs the tracking server reachable from the head node. On `--resume` child runs are
found again by their trial id, so nothing is duplicated.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

TRIAL_TAG = "uwav.trial_id"
SWEEP_TAG = "uwav.sweep_dir"
PARENT_TAG = "mlflow.parentRunId"
# Result keys that become step metrics; Tune's own bookkeeping (time_this_iter_s, ...) is left out.
METRIC_PREFIXES = ("val_", "loss_", "pseudo_")
METRIC_KEYS = ("objective", "best_objective", "best_epoch", "lr", "epoch_seconds")


def client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=tracking_uri)


def ensure_experiment(mlflow_client, name: str, artifact_root: Path | None = None) -> str:
    """Experiment id for `name`, created (with local artifacts beside a sqlite store) when missing."""
    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    location = artifact_root.resolve().as_uri() if artifact_root is not None else None
    return mlflow_client.create_experiment(name, artifact_location=location)


def local_artifact_root(tracking_uri: str) -> Path | None:
    """Artifacts of a sqlite store go beside the database, not into ./mlruns of the working directory."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts"
    return None


def _batched(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def log_params(mlflow_client, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    entries = [Param(k, _param_value(v)) for k, v in params.items()]
    for chunk in _batched(entries, 100):
        mlflow_client.log_batch(run_id, params=chunk)


def _param_value(v: Any) -> str:
    text = "" if v is None else str(v)
    return text[:6000]  # MLflow's limit for one param value


def log_metrics(mlflow_client, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    entries = [Metric(k, float(v), now, step) for k, v in metrics.items()
               if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))]
    for chunk in _batched(entries, 1000):
        mlflow_client.log_batch(run_id, metrics=chunk)


def find_run(mlflow_client, experiment_id: str, tags: dict[str, str]) -> Any | None:
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = mlflow_client.search_runs([experiment_id], filter_string=query, max_results=2,
                                     order_by=["attributes.start_time ASC"])
    return runs[0] if runs else None


def reopen(mlflow_client, run) -> None:
    if run.info.status != "RUNNING":
        mlflow_client.update_run(run.info.run_id, status="RUNNING")


# ---- the sweep's parent run -------------------------------------------------------------------------


def pseudo_quality_metrics(quality_file: Path) -> dict[str, float]:
    """Rows of `uwav pseudo`'s quality.json as metrics, test rows left out: a sweep never looks at test."""
    if not quality_file.is_file():
        return {}
    report = json.loads(quality_file.read_text())
    out = {}
    for row in report.get("rows", []):
        if row.get("split") == "test":
            continue
        prefix = f"pseudo_{row.get('labels', 'generator')}_{row.get('split')}_"
        out.update({prefix + k: v for k, v in row.items() if k not in ("labels", "split")})
    return out


def start_sweep(tracking_uri: str, experiment: str, sweep_dir: Path, name: str, settings: dict[str, Any],
                quality_file: Path | None = None, files: tuple[Path, ...] = ()) -> tuple[str, str]:
    """(experiment id, parent run id); an existing parent for `sweep_dir` is reopened (resume)."""
    c = client(tracking_uri)
    exp_id = ensure_experiment(c, experiment, local_artifact_root(tracking_uri))
    run = find_run(c, exp_id, {SWEEP_TAG: str(sweep_dir)})
    if run is not None:
        reopen(c, run)
        return exp_id, run.info.run_id
    run = c.create_run(exp_id, run_name=name, tags={SWEEP_TAG: str(sweep_dir), "uwav.kind": "sweep"})
    run_id = run.info.run_id
    log_params(c, run_id, settings)
    if quality_file is not None:
        log_metrics(c, run_id, pseudo_quality_metrics(quality_file))
    for f in files:
        if f.is_file():
            c.log_artifact(run_id, str(f))
    return exp_id, run_id


def finish_sweep(tracking_uri: str, parent_run_id: str, status: str, metrics: dict[str, float] | None = None,
                 tags: dict[str, str] | None = None, files: tuple[Path, ...] = ()) -> None:
    c = client(tracking_uri)
    if metrics:
        log_metrics(c, parent_run_id, metrics)
    for k, v in (tags or {}).items():
        c.set_tag(parent_run_id, k, v)
    for f in files:
        if f.is_file():
            c.log_artifact(parent_run_id, str(f))
    close_children(tracking_uri, parent_run_id, "KILLED")
    c.set_terminated(parent_run_id, status)


def close_children(tracking_uri: str, parent_run_id: str, status: str = "KILLED") -> int:
    """End child runs still RUNNING (the sweep stopped under them); returns how many were closed."""
    c = client(tracking_uri)
    parent = c.get_run(parent_run_id)
    runs = c.search_runs([parent.info.experiment_id],
                         filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}' and attributes.status = 'RUNNING'")
    for run in runs:
        c.set_tag(run.info.run_id, "uwav.interrupted", "true")
        c.set_terminated(run.info.run_id, status)
    return len(runs)


def drop_lost_trials(tracking_uri: str, parent_run_id: str, trial_ids: set[str]) -> int:
    """Soft-delete child runs of trials that Tune's saved state does not know.

    A driver killed between starting a trial and Tune's next state snapshot leaves an MLflow run for a
    trial that `--resume` never continues (the searcher samples a replacement). Deleted runs stay
    restorable (`mlflow gc` is what removes them for good) but no longer show as a phantom trial.
    """
    c = client(tracking_uri)
    lost = [r for r in child_runs(tracking_uri, parent_run_id) if r.data.tags.get(TRIAL_TAG) not in trial_ids]
    for run in lost:
        c.set_tag(run.info.run_id, "uwav.lost", "not in Tune's saved state when the sweep was resumed")
        if run.info.status == "RUNNING":
            c.set_terminated(run.info.run_id, "KILLED")
        c.delete_run(run.info.run_id)
    return len(lost)


def child_runs(tracking_uri: str, parent_run_id: str) -> list:
    c = client(tracking_uri)
    parent = c.get_run(parent_run_id)
    return c.search_runs([parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'")


# ---- the final multi-seed run of `uwav train --best` -------------------------------------------------


def log_final(tracking_uri: str, experiment: str, name: str, params: dict[str, Any],
              per_seed: list[dict[str, float]], summary: dict[str, float], files: tuple[Path, ...] = (),
              tags: dict[str, str] | None = None) -> str:
    """One run holding each seed's numbers as steps (step = seed index) and their mean / std."""
    c = client(tracking_uri)
    exp_id = ensure_experiment(c, experiment, local_artifact_root(tracking_uri))
    run = c.create_run(exp_id, run_name=name, tags={"uwav.kind": "final", **(tags or {})})
    run_id = run.info.run_id
    try:
        log_params(c, run_id, params)
        for i, values in enumerate(per_seed):
            log_metrics(c, run_id, values, step=i)
        log_metrics(c, run_id, summary)
        for f in files:
            if f.is_file():
                c.log_artifact(run_id, str(f))
    except BaseException:
        c.set_terminated(run_id, "FAILED")
        raise
    c.set_terminated(run_id, "FINISHED")
    return run_id
