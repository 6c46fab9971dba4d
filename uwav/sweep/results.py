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


def leaderboard(spec: SweepSpec, grid) -> list[dict]:
    """One row per trial, best first: trial id, searched values, best objective, epochs, status.

    status: complete (trained max_t epochs), stopped (ASHA stopped it early), error, or unfinished
    (the sweep was interrupted under it).
    """
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
    head = ["rank", "trial_id", "best_objective", "best_epoch", "epochs", "status", *keys]
    lines = []
    for i, r in enumerate(board, 1):
        obj = r["best_objective"]
        lines.append([i, r["trial_id"], "" if obj is None else f"{obj:.2f}", r["best_epoch"], r["epochs"],
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


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def format_outcome(outcome: SweepOutcome, metric: str = "segment_type_at_av") -> str:
    lines = [f"best trial {outcome.best_trial_id}: val {metric} {outcome.best_objective:.2f} (best-so-far)"]
    lines += [f"  {k} = {_fmt(v)}" for k, v in outcome.best_params.items()]
    lines.append(f"best config: {outcome.best_config_file}")
    stopped = sum(r["stopped_early"] for r in outcome.leaderboard)
    lines.append(f"trials: {len(outcome.leaderboard)} ({stopped} stopped early by ASHA); leaderboard: "
                 f"{outcome.experiment_dir / (LEADERBOARD + '.md')}")
    lines.append(f"MLflow: {outcome.tracking_uri} (parent run {outcome.parent_run_id}); browse with "
                 f"`mlflow ui --backend-store-uri {outcome.tracking_uri}`")
    if not outcome.finished:
        lines.append("the sweep was interrupted: continue it with `uwav sweep FILE --resume`")
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
