"""`uwav sweep show`: what a sweep folder holds, finished or still running, read from its files only
(nothing runs, no Ray and no MLflow server needed): trial counts, the leaderboard, the best configuration,
where the plots, the Optuna study and the MLflow runs page are.

Finished sweeps are read from leaderboard.json (ranked as `uwav train --best` ranks them); a running or
interrupted one from Tune's own experiment state and per-trial result files (uwav.sweep.records).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from uwav.config import load_config
from uwav.errors import UwavError
from uwav.sweep import console
from uwav.sweep.records import STATUSES, trial_records
from uwav.sweep.results import BEST_FILE, LEADERBOARD, META_FILE, is_finished, mlflow_lines
from uwav.sweep.spec import AshaSettings, load_sweep

ROWS = 10


def experiment_folder(source: str | Path) -> Path:
    source = Path(source)
    if source.is_dir():
        exp_dir = source
    elif source.is_file():
        exp_dir = load_sweep(source).experiment_dir
    else:
        raise UwavError(f"{source}: neither a sweep file nor a sweep folder")
    if not (exp_dir / META_FILE).is_file():
        raise UwavError(f"{exp_dir}: no {META_FILE} there, so no sweep has started in it (`uwav sweep FILE` "
                        f"starts one)")
    return exp_dir


def _settings(exp_dir: Path) -> tuple[list[str], int, object]:
    """(searched keys, num_samples, epochs of a full trial as a function of the searched values) from the
    copy of the sweep file and the base config the sweep saved in its folder."""
    from uwav.sweep.tuner import TargetEpochs

    raw = yaml.safe_load((exp_dir / "sweep.yaml").read_text()) or {}
    keys = list(raw.get("space") or {})
    num_samples = int((raw.get("trials") or {}).get("num_samples", 16))
    scheduler = raw.get("scheduler") or {}
    max_t = None if scheduler.get("type") == "fifo" else int(scheduler.get("max_t", AshaSettings().max_t))
    return keys, num_samples, TargetEpochs(load_config(exp_dir / "base_config.yaml"), max_t)


def _records(exp_dir: Path, keys: list[str], num_samples: int, target) -> list:
    from ray.tune import ExperimentAnalysis

    try:
        trials = ExperimentAnalysis(str(exp_dir.resolve())).trials  # a relative path is no URI to pyarrow
    except Exception:  # no experiment state written yet (the sweep has just started)
        return []
    return trial_records(trials, tuple(keys), target, console.name_digits(num_samples))


def describe_sweep(source: str | Path, rows: int = ROWS, width: int = console.WIDTH) -> str:
    exp_dir = experiment_folder(source)
    meta = json.loads((exp_dir / META_FILE).read_text())
    keys, num_samples, target = _settings(exp_dir)
    records = _records(exp_dir, keys, num_samples, target)
    board_file = exp_dir / f"{LEADERBOARD}.json"
    board = json.loads(board_file.read_text()) if board_file.is_file() else None
    finished = board is not None and is_finished(board, num_samples)
    names = {r.trial_id: r.name for r in records}
    names.update({r["trial_id"]: r["name"] for r in board or [] if r.get("name")})
    metric = meta.get("metric", "segment_type_at_av")
    if finished:
        table = [{"name": names.get(r["trial_id"], r["trial_id"]), "status": r["status"], "epochs": r["epochs"],
                  "target": int(target(r["params"])), "best": r.get("reeval", {}).get("mean", r["best_objective"]),
                  "params": r["params"]} for r in board]
        counts = {s: sum(r["status"] == s for r in board) for s in STATUSES}
    else:
        table = [{"name": r.name, "status": r.status, "epochs": r.epochs, "target": r.target_epochs,
                  "best": r.best_objective, "params": r.params} for r in records]
        counts = {s: sum(r.status == s for r in records) for s in STATUSES}
    started = sum(counts.values()) - counts["pending"]
    state = "finished" if finished else "not finished (running, or interrupted: `uwav sweep FILE` continues it)"
    lines = [f"sweep {meta.get('name', exp_dir.name)} in {exp_dir}: {state}",
             f"trials: {started} of {num_samples} started; {counts['complete']} complete, {counts['stopped']} "
             f"stopped early by ASHA, {counts['error']} errors, {counts['unfinished']} unfinished, "
             f"{counts['pending']} pending"]
    if not table:
        lines.append("no trial has reported yet")
    else:
        reeval = finished and any("reeval" in r for r in board)
        lines.append("")
        lines += _table(table[:rows], keys, target, num_samples, width,
                        f"val {metric}" + (" (mean over the re-evaluation seeds where given)" if reeval else ""))
        if len(table) > rows:
            lines.append(f"... {len(table) - rows} more in {exp_dir / (LEADERBOARD + '.md')}"
                         if finished else f"... {len(table) - rows} more")
        top = table[0]
        if top["best"] is not None:
            lines += ["", f"best configuration ({top['name']}, val {metric} {top['best']:.2f}):"]
            lines += [f"  {k} = {console.format_value(v, 24)}" for k, v in top["params"].items()]
            if (exp_dir / BEST_FILE).is_file():
                lines.append(f"  full config: {exp_dir / BEST_FILE}")
    extra = [p for p in (exp_dir / "plots", exp_dir / "optuna.db") if p.exists()]
    if extra:
        lines.append("files: " + ", ".join(str(p) for p in extra))
    if (exp_dir / "best" / "results.md").is_file():
        lines.append(f"final results (uwav train --best): {exp_dir / 'best' / 'results.md'}")
    lines += mlflow_lines(meta["tracking_uri"], str(meta.get("experiment_id", "")), meta.get("parent_run_id", ""),
                          exp_dir)
    return "\n".join(line[:width] if not line.startswith("  runs page") else line for line in lines)


def _table(table: list[dict], keys: list[str], target, num_samples: int, width: int, label: str) -> list[str]:
    name_w = max(len(console.short_name(0, "00000000", console.name_digits(num_samples))),
                 *(len(r["name"]) for r in table))
    columns, hidden = console.plan_columns([(k, False) for k in keys], width - 10, name_w)
    head = "  ".join(["rank", f"{'trial':<{name_w}}", f"{'status':<8}", "epoch", f"{'best':>7}"] +
                     [f"{c.header:<{c.width}}" for c in columns])
    out = [f"best = best-so-far {label}"]
    legend = ", ".join(f"{c.header} = {c.key}" for c in columns if c.header != c.key.rsplit(".", 1)[-1])
    if legend:
        out.append(f"columns: {legend}")
    if hidden:
        out.append(f"not shown (too wide): {', '.join(hidden)}")
    out.append(head.rstrip())
    for i, r in enumerate(table, 1):
        best = "" if r["best"] is None else f"{r['best']:.2f}"
        cells = [f"{i:>4}", f"{r['name']:<{name_w}}", f"{r['status']:<8}", f"{r['epochs']:>2}/{r['target']:<2}",
                 f"{best:>7}"]
        cells += [f"{console.format_value(r['params'].get(c.key, ''), c.width):<{c.width}}" for c in columns]
        out.append("  ".join(cells).rstrip())
    return out
