"""Plain per-trial records of a sweep, read from Tune's own files: what the plots, the Optuna study and
`uwav sweep show` are built from.

Tune keeps each trial's reports in <experiment>/<trial folder>/result.json (one JSON line per report).
A trial restarted from a checkpoint, or continued by `--resume`, reports some epochs again; the last
report of an epoch wins. Nothing here needs a running Ray: the trials come from the driver's result grid
or from `ray.tune.ExperimentAnalysis` on the experiment folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Tune's status -> the leaderboard's words (see `status_of`)
STATUSES = ("complete", "stopped", "error", "unfinished", "pending")


@dataclass
class TrialRecord:
    trial_id: str
    number: int  # Tune's 1-based trial counter
    name: str  # t07-41beeb6f
    params: dict[str, Any]  # the searched values only
    status: str  # one of STATUSES
    epochs: int  # epochs trained
    target_epochs: int  # epochs a full trial trains (min of its train.epochs and ASHA's max_t)
    best_objective: float | None
    best_epoch: int | None
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: epoch, objective, timestamp, ...

    @property
    def stopped_early(self) -> bool:
        return self.status == "stopped"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialRecord:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def status_of(tune_status: str, epochs: int, target: int) -> str:
    """complete (trained the full length), stopped (ASHA stopped it), error, unfinished (the sweep was
    interrupted under it) or pending (never started)."""
    if tune_status == "ERROR":
        return "error"
    if tune_status == "PENDING" and epochs == 0:
        return "pending"
    if tune_status != "TERMINATED":
        return "unfinished"
    return "complete" if epochs >= target else "stopped"


def read_history(trial_dir: Path | str | None, keep: tuple[str, ...] = ()) -> list[dict[str, float]]:
    """Per-epoch reports of one trial, epoch order, the last report of each epoch kept; only `epoch`,
    `timestamp` and the numeric keys in `keep` (all numeric keys when `keep` is empty)."""
    if not trial_dir:
        return []
    path = Path(trial_dir) / "result.json"
    if not path.is_file():
        return []
    by_epoch: dict[int, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        try:
            report = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a killed driver
            continue
        if not isinstance(report, dict) or "epoch" not in report:
            continue
        row = {k: float(v) for k, v in report.items()
               if (not keep or k in keep or k in ("epoch", "timestamp"))
               and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))}
        by_epoch[int(report["epoch"])] = row
    return [by_epoch[e] for e in sorted(by_epoch)]


def trial_records(trials, keys: tuple[str, ...], target_of, digits: int, objective: str = "objective",
                  keep: tuple[str, ...] = ()) -> list[TrialRecord]:
    """Records of Tune `trials` (driver Trial objects or ExperimentAnalysis.trials), best first.

    `target_of(params)`: the epochs a full trial with these searched values trains; `digits`: width of
    the trial counter in names; `objective`: the per-epoch objective key of the reports.
    """
    from uwav.sweep.console import short_name, trial_number

    out = []
    for trial in trials:
        params = {k: trial.config[k] for k in keys if k in trial.config}
        history = read_history(getattr(trial, "path", None),  # the storage copy (local_path is Ray's staging)
                               keep=(objective, *keep))
        last = trial.last_result or {}
        epochs = int(max([last.get("epoch", 0) or 0] + [h["epoch"] for h in history]))
        scored = [h for h in history if objective in h]
        if scored:
            top = max(scored, key=lambda h: (h[objective], -h["epoch"]))
            best, best_epoch = top[objective], int(top["epoch"])
        else:
            best = last.get(f"best_{objective}") if f"best_{objective}" in last else None
            best_epoch = last.get("best_epoch")
        target = int(target_of(params))
        out.append(TrialRecord(
            trial_id=trial.trial_id, number=trial_number(trial),
            name=short_name(trial_number(trial), trial.trial_id, digits), params=params,
            status=status_of(trial.status, epochs, target), epochs=epochs, target_epochs=target,
            best_objective=best, best_epoch=best_epoch, history=history))
    out.sort(key=lambda r: (r.best_objective is None, -(r.best_objective or 0.0), r.number))
    return out


def spent_epochs_curve(records: list[TrialRecord], objective: str = "objective") -> list[tuple[int, float, str]]:
    """(trial-epochs spent, best-so-far objective of the sweep, trial name) after each epoch report, in
    the order the reports arrived (timestamp, then trial counter, then epoch)."""
    events = sorted(((h.get("timestamp", 0.0), r.number, h["epoch"], h.get(objective), r.name)
                     for r in records for h in r.history), key=lambda e: e[:3])
    curve, best = [], -math.inf
    for spent, (_, _, _, value, name) in enumerate(events, 1):
        if value is not None and value > best:
            best = value
        curve.append((spent, best, name))
    return [(s, b, n) for s, b, n in curve if b > -math.inf]
