"""A sweep's results: the leaderboard, the outcome printed at the end, and finding a sweep's folder.

Files in the experiment folder <storage>/<name>/: sweep.json (name, metric, MLflow location),
best_config.yaml (the best trial's full config), leaderboard.{json,csv,md} (one row per trial, best first).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uwav.config import Config, load_config, with_overrides
from uwav.errors import UwavError
from uwav.io import write_json, write_text
from uwav.sweep.spec import SweepSpec, load_sweep

META_FILE = "sweep.json"
BEST_FILE = "best_config.yaml"
LEADERBOARD = "leaderboard"


@dataclass
class SweepOutcome:
    experiment_dir: Path
    best_trial_id: str
    best_objective: float
    best_params: dict[str, Any]
    best_config_file: Path
    leaderboard: list[dict]
    tracking_uri: str
    parent_run_id: str
    finished: bool  # False when the sweep was interrupted (continue with --resume)
    experiment_id: str = ""
    reused: bool = False  # nothing ran: the folder held this sweep, finished


def leaderboard(spec: SweepSpec, grid) -> list[dict]:
    """One row per trial, best first: trial id, searched values, best objective, epochs, status.

    status: complete (trained max_t epochs), stopped (ASHA stopped it early), error, or unfinished
    (the sweep was interrupted under it).
    """
    from uwav.sweep.console import name_digits, short_name, trial_number

    # Trial objects carry Tune's status, which the Result wrappers drop.
    trials = grid._experiment_analysis.trials
    rows = []
    for trial in trials:
        m = trial.last_result or {}
        params = {k: trial.config[k] for k in spec.keys if k in trial.config}
        target = min(spec.trial_config(params).train.epochs, spec.asha.max_t if spec.asha.enabled else 10**9)
        reached = int(m.get("epoch", 0))
        if trial.status == "ERROR":
            status = "error"
        elif trial.status != "TERMINATED":
            status = "unfinished"
        else:
            status = "complete" if reached >= target else "stopped"
        rows.append({
            "trial_id": trial.trial_id,
            "name": short_name(trial_number(trial), trial.trial_id, name_digits(spec.num_samples)),
            "params": params,
            "best_objective": m.get("best_objective"),
            "best_epoch": m.get("best_epoch"),
            "epochs": reached,
            "status": status,
            "stopped_early": status == "stopped",
            "last_val": {k.removeprefix("val_"): v for k, v in m.items() if k.startswith("val_")},
        })
    rows.sort(key=lambda r: (r["best_objective"] is None, -(r["best_objective"] or 0.0)))
    return rows


def write_leaderboard(exp_dir: Path, board: list[dict]) -> tuple[Path, ...]:
    keys = sorted({k for r in board for k in r["params"]})
    # Rows re-evaluated with extra seeds (the sweep file's finish:) come first, ranked by that mean.
    reeval = any("reeval" in r for r in board)
    head = ["rank", "trial", "trial_id", "best_objective", *(["reeval_mean", "reeval_std"] if reeval else []),
            "best_epoch", "epochs", "status", *keys]
    lines = []
    for i, r in enumerate(board, 1):
        obj = r["best_objective"]
        cells = []
        if reeval:
            again = r.get("reeval") or {}
            cells = [_fmt2(again.get("mean")), _fmt2(again.get("std"))]
        lines.append([i, r.get("name", ""), r["trial_id"], _fmt2(obj), *cells, r["best_epoch"], r["epochs"],
                      r["status"], *[_fmt(r["params"].get(k)) for k in keys]])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([head, *lines])
    md = ["| " + " | ".join(map(str, head)) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(map(str, line)) + " |" for line in lines]
    paths = (exp_dir / f"{LEADERBOARD}.json", exp_dir / f"{LEADERBOARD}.csv", exp_dir / f"{LEADERBOARD}.md")
    write_json(paths[0], board)
    write_text(paths[1], buf.getvalue())
    write_text(paths[2], "\n".join(md) + "\n")
    return paths


def _fmt2(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def is_finished(board: list[dict], num_samples: int) -> bool:
    """Every trial of the sweep ran to its end (complete, stopped by ASHA or errored)."""
    return len(board) >= num_samples and all(r["status"] != "unfinished" for r in board)


def finished_outcome(spec: SweepSpec) -> SweepOutcome | None:
    """The outcome of this sweep read back from its folder when it finished there, else None."""
    exp_dir = spec.experiment_dir
    meta_file, board_file, best_file = exp_dir / META_FILE, exp_dir / f"{LEADERBOARD}.json", exp_dir / BEST_FILE
    if not (meta_file.is_file() and board_file.is_file() and best_file.is_file()):
        return None
    board = json.loads(board_file.read_text())
    if not is_finished(board, spec.num_samples):
        return None
    meta = json.loads(meta_file.read_text())
    best = next((r for r in board if r["status"] != "error" and r["best_objective"] is not None), None)
    if best is None:
        return None
    return SweepOutcome(experiment_dir=exp_dir, best_trial_id=best["trial_id"], best_objective=best["best_objective"],
                        best_params=best["params"], best_config_file=best_file, leaderboard=board,
                        tracking_uri=meta["tracking_uri"], parent_run_id=meta["parent_run_id"], finished=True,
                        experiment_id=str(meta.get("experiment_id", "")), reused=True)


def mlflow_lines(tracking_uri: str, experiment_id: str, parent_run_id: str, folder: Path | str) -> list[str]:
    """Where to read the sweep in the MLflow UI: the runs-page link (MLflow 3.x opens an experiment on
    its GenAI pages otherwise) and, for a local store, the command that serves it."""
    from uwav import mlflow_ui

    base = mlflow_ui.ui_base(tracking_uri)
    lines = [f"MLflow: {tracking_uri}", f"  parent run: {parent_run_id}"]
    if experiment_id:
        lines.append(f"  runs page: {mlflow_ui.runs_url(base, experiment_id, view=True)}")
    if not tracking_uri.startswith(("http://", "https://")):
        lines.append(f"  serve it (127.0.0.1): uwav ui {folder}")
    return lines


def format_outcome(outcome: SweepOutcome, metric: str = "segment_type_at_av") -> str:
    top = outcome.leaderboard[0] if outcome.leaderboard else {}
    best = top.get("name") if top.get("trial_id") == outcome.best_trial_id else None
    best = best or outcome.best_trial_id
    lines = [f"best trial {best}: val {metric} {outcome.best_objective:.2f} (best-so-far)"]
    again = outcome.leaderboard[0].get("reeval") if outcome.leaderboard else None
    if again:  # chosen on the mean over fresh seeds (finish: in the sweep file), not on the search's one seed
        lines[0] = (f"best trial {best}: val {metric} {again['mean']:.2f} ± {again['std'] or 0:.2f} "
                    f"over {len(again['seeds'])} fresh seeds {again['seeds']} (its search run: "
                    f"{outcome.best_objective:.2f})")
    if outcome.reused:
        lines[:0] = [f"reusing the finished sweep in {outcome.experiment_dir}: nothing trained",
                     "(delete that folder, or change name in the sweep file, to run it again)"]
    lines += [f"  {k} = {_fmt(v)}" for k, v in outcome.best_params.items()]
    lines.append(f"best config: {outcome.best_config_file}")
    stopped = sum(r["stopped_early"] for r in outcome.leaderboard)
    folder = outcome.experiment_dir
    lines += [f"trials: {len(outcome.leaderboard)} ({stopped} stopped early by ASHA)",
              f"leaderboard: {folder / (LEADERBOARD + '.md')}", f"plots: {folder / 'plots'}",
              f"Optuna study: {folder / 'optuna.db'}"]
    lines += mlflow_lines(outcome.tracking_uri, outcome.experiment_id, outcome.parent_run_id, outcome.experiment_dir)
    if not outcome.finished:
        lines.append("the sweep was interrupted: continue it with `uwav sweep FILE` (or --resume)")
    return "\n".join(lines)


def sweep_dir_of(source: str | Path) -> tuple[Path, dict]:
    """Experiment folder and its sweep.json from a sweep file or the folder itself."""
    source = Path(source)
    if source.is_file():
        exp_dir = load_sweep(source).experiment_dir
    elif source.is_dir():
        exp_dir = source
    else:
        raise UwavError(f"{source}: neither a sweep file nor a sweep folder")
    meta_file = exp_dir / META_FILE
    board_file = exp_dir / f"{LEADERBOARD}.json"
    if not meta_file.is_file() or not board_file.is_file():
        raise UwavError(f"{exp_dir}: no finished sweep results ({META_FILE}, {board_file.name}); run "
                        f"`uwav sweep` first")
    return exp_dir, json.loads(meta_file.read_text())


def top_configs(exp_dir: Path, top_k: int) -> list[tuple[dict, Config]]:
    """(leaderboard row, full Config) of the `top_k` best trials that trained at least one epoch."""
    board = json.loads((exp_dir / f"{LEADERBOARD}.json").read_text())
    rows = [r for r in board if r["status"] != "error" and r["best_objective"] is not None]
    if len(rows) < top_k:
        raise UwavError(f"{exp_dir}: --top-k {top_k} asked but the sweep has {len(rows)} usable trials")
    base = load_config(exp_dir / "base_config.yaml")
    return [(r, with_overrides(base, r["params"], str(exp_dir / f"{LEADERBOARD}.json"))) for r in rows[:top_k]]
