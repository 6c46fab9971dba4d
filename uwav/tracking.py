"""Everything MLflow, in one place: the sweep's parent run, one child run per trial, the final run.

Layout in the MLflow UI (experiment `uwav-<sweep name>` unless the sweep file names one):
  parent run `<sweep name>`: the sweep settings as params (space.loss.W = "loguniform[0.1, 2.0]", ...)
      and the base config's constant values (every key that is not searched, flat: train.epochs, ...;
      also as base_config.yaml), the generator's pseudo-label quality (non-test rows of quality.json),
      and at the end best_config.yaml, leaderboard.csv / leaderboard.md, plots/*.png, best_objective,
      tags best_trial_id (Tune's id) and uwav.best_run_id (the best child's run id).
  child runs, one per Tune trial, named `t07-41beeb6f` (trial counter, then Tune's id; tags
      mlflow.parentRunId, uwav.trial_id): params = the searched values under their sweep keys plus the
      derived facts epochs_trained, best_epoch, stopped_early (at the end); the trial's pseudo-label
      quality once (pseudo_val_*); per-epoch val_* / loss_* / lr / epoch_seconds and best_objective (the
      best-so-far val score of the sweep's metric, the one objective name) as step metrics (step =
      epoch); status FINISHED, FAILED, or KILLED (sweep interrupted); ASHA-stopped trials are FINISHED
      with stopped_early=true (param and tag); the best trial has tag uwav.best_trial=true.
  final runs from `uwav train --best` (tag uwav.kind=final): a summary run under the parent with
      mean / std as plain metrics, one child per configuration and seed (log_final_report).

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
BEST_TAG = "uwav.best_trial"
BEST_RUN_TAG = "uwav.best_run_id"
# Result keys that become step metrics; Tune's own bookkeeping (time_this_iter_s, ...) is left out.
METRIC_PREFIXES = ("val_", "loss_", "pseudo_")
METRIC_KEYS = ("best_objective", "lr", "epoch_seconds")


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
                 tags: dict[str, str] | None = None, files: tuple[Path, ...] = (),
                 plots: tuple[Path, ...] = ()) -> None:
    """Close the parent: metrics, tags, `files` as artifacts (`plots` under plots/), open children KILLED."""
    c = client(tracking_uri)
    for f in plots:
        if f.is_file():
            c.log_artifact(parent_run_id, str(f), artifact_path="plots")
    if metrics:
        log_metrics(c, parent_run_id, metrics)
    for k, v in (tags or {}).items():
        c.set_tag(parent_run_id, k, v)
    for f in files:
        if f.is_file():
            c.log_artifact(parent_run_id, str(f))
    close_children(tracking_uri, parent_run_id, "KILLED")
    c.set_terminated(parent_run_id, status)


def mark_best(tracking_uri: str, parent_run_id: str, trial_id: str) -> str | None:
    """Tag the best trial's child run (uwav.best_trial=true, the tag removed from any earlier best) and
    link it from the parent (uwav.best_run_id); returns its run id (None when it has no run)."""
    c = client(tracking_uri)
    best = None
    for run in child_runs(tracking_uri, parent_run_id):
        if run.data.tags.get(TRIAL_TAG) == trial_id:
            best = run.info.run_id
            c.set_tag(best, BEST_TAG, "true")
        elif BEST_TAG in run.data.tags:
            c.delete_tag(run.info.run_id, BEST_TAG)
    if best is not None:
        c.set_tag(parent_run_id, BEST_RUN_TAG, best)
    return best


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


# ---- the final runs of `uwav train --best`, nested under the sweep's parent --------------------------

FINAL_KIND, FINAL_SEED_KIND = "final", "final_seed"
PROVENANCE_PREFIX = "uwav.provenance."
# Keys of a per-epoch history entry (uwav.fit.EpochReport as a dict) that are not curves: the step
# itself, the selection bookkeeping (logged once as `objective` / `best_epoch`) and a flag.
_HISTORY_SKIP = {"epoch", "objective", "best_objective", "best_epoch", "improved"}
_HISTORY_PREFIX = {"val": "val_", "losses": "loss_", "loss": "loss_"}
_HISTORY_RENAME = {"seconds": "epoch_seconds"}


def _flat_leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a_b_c": leaf} of a nested dict (lists are indexed: a_0, a_1)."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat_leaves(v, f"{prefix}{k}_"))
        return out
    if isinstance(tree, list | tuple):
        out = {}
        for i, v in enumerate(tree):
            out.update(_flat_leaves(v, f"{prefix}{i}_"))
        return out
    return {prefix.rstrip("_"): tree}


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


def metric_key(name: str) -> str:
    """`name` with the characters MLflow refuses in a metric or param name replaced by `_`."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in str(name))


def history_metrics(entry: dict[str, Any]) -> dict[str, float]:
    """One per-epoch history entry (nested EpochReport dict, or already flat) as metric name -> value."""
    out = {}
    for k, v in entry.items():
        if k in _HISTORY_SKIP:
            continue
        if isinstance(v, dict):
            prefix = _HISTORY_PREFIX.get(k, f"{k}_")
            out.update({f"{prefix}{kk}": vv for kk, vv in v.items() if _number(vv)})
        elif _number(v):
            out[_HISTORY_RENAME.get(k, k)] = v
    return out


def provenance_tags(provenance: dict[str, Any] | None) -> dict[str, str]:
    """Provenance entries as tags `uwav.provenance.<key>` (nested dicts joined with ".", lists and
    dicts below that as JSON); a `git_commit` leaf also fills MLflow's `mlflow.source.git.commit`, which
    its run page shows."""
    tags: dict[str, str] = {}

    def walk(tree: dict, prefix: str) -> None:
        for k, v in tree.items():
            if isinstance(v, dict) and v:
                walk(v, f"{prefix}{k}.")
            else:
                text = json.dumps(v) if isinstance(v, list | dict) else ("" if v is None else str(v))
                tags[metric_key(f"{PROVENANCE_PREFIX}{prefix}{k}")] = text[:5000]
                if k == "git_commit" and v:
                    tags["mlflow.source.git.commit"] = str(v)

    walk(provenance or {}, "")
    return tags


def _summary_metrics(summary: dict[str, Any], label: str) -> dict[str, float]:
    """{"val": {metric: {"mean", "std"}}, "test": ...} -> {"<label>/test_<metric>_mean": v, ...}."""
    out = {}
    for split, per_metric in (summary or {}).items():
        if not isinstance(per_metric, dict):
            continue
        for name, stats in per_metric.items():
            if isinstance(stats, dict):
                out.update({f"{label}/{split}_{name}_{s}": v for s, v in stats.items() if _number(v)})
            elif _number(stats):
                out[f"{label}/{split}_{name}"] = stats
    return out


def _mean_std(runs: list[dict], split: str) -> dict[str, dict[str, float]]:
    """Mean and sample std (0 for one seed) per metric over the seeds' `split` scores."""
    names = [k for k in (runs[0].get(split) or {}) if all(_number((r.get(split) or {}).get(k)) for r in runs)]
    out = {}
    for k in names:
        v = [float(r[split][k]) for r in runs]
        mean = sum(v) / len(v)
        std = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
        out[k] = {"mean": mean, "std": std}
    return out


def log_final_report(tracking_uri: str, sweep_meta: dict[str, Any], report: dict[str, Any],
                     provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Log `uwav train --best`'s whole report as runs nested under the sweep's parent run; returns
    {"summary_run_id": id, "runs": [{"label", "seed", "run_id"}, ...]}.

    Layout (the parent is sweep_meta["parent_run_id"]):
      summary run (tag uwav.kind=final, child of the parent; the parent gets tag uwav.final_run_id):
        params   seeds (the true list, e.g. "[20000, 20001, 20002]"), seed_count, configurations
                 ("rank1,reference"), and each configuration's searched values as "<label>/<key>"
        metrics  "<label>/<split>_<metric>_mean" and "_std" (plain values, no steps), and every numeric
                 leaf of report["comparison"] as "comparison/<path joined by _>"
        tags     string leaves of the comparison as "uwav.comparison.<path>", report["text"] as the run's
                 description, provenance
        artifacts report["files"] (results.md, results.json, ...)
      one run per configuration and seed (tag uwav.kind=final_seed, child of the summary run):
        params   the searched values under their sweep keys, seed, configuration (the label)
        metrics  per-epoch curves of the history (val_*, loss_*, lr, epoch_seconds; step = epoch), and
                 once: best_objective (the best val score of the selection metric, when given), best_epoch,
                 epochs_trained, val_<metric> is the curve, test_<metric> the test scores
        tags     uwav.run_dir, uwav.trial_id, provenance; artifacts: metrics.json and history.json of
                 the run folder when present (never the checkpoints)

    `report` (plain data, JSON-able):
      name            summary run name (default "<sweep name>-final")
      objective       the selection metric's name (e.g. "segment_type_at_av"); optional
      seeds           the seeds of the final runs (default: the union of the configurations' seeds)
      configurations  [{label: "rank1" | "reference" | ..., params: {sweep key: value}, trial_id (opt.),
                        title (opt.), summary (opt.: {"val"|"test": {metric: {"mean", "std"}}}, computed
                        from the runs when missing),
                        runs: [{seed, val: {metric: v} (at the best epoch), test: {metric: v},
                                history: [EpochReport dicts or flat {epoch, val_*, loss_*, ...}] (opt.),
                                best_epoch (opt.), run_dir (opt.)}]}]
      comparison      any nested dict (optional)
      text            the report as text (optional; the summary run's description)
      files           paths to attach to the summary run (optional)
    `provenance` entries become tags (uwav.provenance.<key>) on every run created here.
    """
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

    c = client(tracking_uri)
    parent = sweep_meta.get("parent_run_id") or ""
    exp_id = sweep_meta.get("experiment_id")
    if not exp_id:
        exp_id = ensure_experiment(c, sweep_meta["experiment"], local_artifact_root(tracking_uri))
    exp_id = str(exp_id)
    configurations = list(report.get("configurations") or [])
    seeds = report.get("seeds") or sorted({r["seed"] for cfg in configurations for r in cfg.get("runs", [])})
    prov = provenance_tags(provenance)
    objective = report.get("objective")
    created: list[str] = []

    def new_run(name: str, parent_id: str, tags: dict[str, str]) -> str:
        run = c.create_run(exp_id, run_name=name, tags={**({PARENT_TAG: parent_id} if parent_id else {}),
                                                         **tags, **prov})
        created.append(run.info.run_id)
        return run.info.run_id

    try:
        summary_id = new_run(report.get("name") or f"{sweep_meta.get('name', 'sweep')}-final", parent,
                             {"uwav.kind": FINAL_KIND, **({"uwav.sweep_parent": parent} if parent else {})})
        params: dict[str, Any] = {"seeds": json.dumps(list(seeds)), "seed_count": len(seeds),
                                  "configurations": ",".join(cfg["label"] for cfg in configurations)}
        metrics: dict[str, float] = {}
        for cfg in configurations:
            label = metric_key(cfg["label"])
            params.update({f"{label}/{k}": v for k, v in (cfg.get("params") or {}).items()})
            if cfg.get("trial_id"):
                params[f"{label}/trial_id"] = cfg["trial_id"]
            runs = list(cfg.get("runs") or [])
            summary = cfg.get("summary") or ({s: _mean_std(runs, s) for s in ("val", "test")} if runs else {})
            metrics.update(_summary_metrics(summary, label))
        comparison = _flat_leaves(report.get("comparison") or {})
        metrics.update({metric_key(f"comparison/{k}"): v for k, v in comparison.items() if _number(v)})
        log_params(c, summary_id, params)
        log_metrics(c, summary_id, metrics)
        for k, v in comparison.items():
            if isinstance(v, str):
                c.set_tag(summary_id, metric_key(f"uwav.comparison.{k}"), v[:5000])
        if report.get("text"):
            c.set_tag(summary_id, MLFLOW_RUN_NOTE, f"```\n{report['text']}\n```")
        for f in report.get("files") or ():
            if Path(f).is_file():
                c.log_artifact(summary_id, str(f))

        logged = []
        for cfg in configurations:
            for run in cfg.get("runs") or []:
                run_id = new_run(f"{cfg['label']}-seed{run['seed']}", summary_id, {
                    "uwav.kind": FINAL_SEED_KIND, "uwav.configuration": str(cfg["label"]),
                    **({TRIAL_TAG: str(cfg["trial_id"])} if cfg.get("trial_id") else {}),
                    **({"uwav.run_dir": str(run["run_dir"])} if run.get("run_dir") else {})})
                log_params(c, run_id, {**(cfg.get("params") or {}), "seed": run["seed"],
                                       "configuration": cfg["label"]})
                history = list(run.get("history") or [])
                for i, entry in enumerate(history, 1):
                    log_metrics(c, run_id, history_metrics(entry), step=int(entry.get("epoch", i)))
                once: dict[str, float] = {f"test_{k}": v for k, v in (run.get("test") or {}).items()}
                if not history:  # no curves given: the best epoch's val scores as plain values
                    once.update({f"val_{k}": v for k, v in (run.get("val") or {}).items()})
                if objective and _number((run.get("val") or {}).get(objective)):
                    once["best_objective"] = run["val"][objective]
                if _number(run.get("best_epoch")):
                    once["best_epoch"] = run["best_epoch"]
                if history:
                    once["epochs_trained"] = max(int(e.get("epoch", i)) for i, e in enumerate(history, 1))
                log_metrics(c, run_id, once, step=int(run.get("best_epoch") or 0))
                folder = Path(run["run_dir"]) if run.get("run_dir") else None
                for name in ("metrics.json", "history.json"):
                    if folder is not None and (folder / name).is_file():
                        c.log_artifact(run_id, str(folder / name))
                c.set_terminated(run_id, "FINISHED")
                logged.append({"label": cfg["label"], "seed": run["seed"], "run_id": run_id})
        c.set_terminated(summary_id, "FINISHED")
        if parent:
            c.set_tag(parent, "uwav.final_run_id", summary_id)
    except BaseException:
        for run_id in created:
            if c.get_run(run_id).info.status == "RUNNING":
                c.set_terminated(run_id, "FAILED")
        raise
    return {"summary_run_id": summary_id, "runs": logged}


# ---- provenance (issue 14): tags on every run, the full record as an artifact -------------------------


def log_provenance(tracking_uri: str, run_id: str, tags: dict[str, str], record: dict | None = None) -> None:
    """Set `tags` (uwav.provenance.*, from uwav.provenance.flat_tags) on a run; with `record`, also log
    it as provenance.json. The tags make runs comparable in the UI; the record holds every file hash."""
    from mlflow.entities import RunTag

    c = client(tracking_uri)
    entries = [RunTag(k, _param_value(v)) for k, v in tags.items()]
    for chunk in _batched(entries, 100):
        c.log_batch(run_id, tags=chunk)
    if record is not None:
        c.log_dict(run_id, record, "provenance.json")
