"""Re-evaluate a sweep's top trials with extra seeds, on val, before the winner is chosen.

A search over a flat, noisy surface (UWAV's LLP knobs move Seg Type@AV by well under a point) picks
the trial whose one seed was luckiest. With `finish: {top_k: K, seeds: S}` in the sweep file, `uwav
sweep` trains each of the K best trials S more times, with fresh seeds (uwav.sweep.seeds), after the
Tune search has finished, and ranks those K by the mean of their best-so-far val objective over the S
seeds. That ranking decides best_config.yaml, the leaderboard's order and what `uwav train --best`
takes as rank 1. The search trial's own number is kept beside it but not averaged in (it is the
maximum of a noisy search, so it is biased upwards).

Only train and val are loaded (the sweep's data; test never); each run is `uwav.fit.fit` for the
configuration's full `train.epochs` (no early stopping), as Ray tasks with the sweep's per-trial
resources, at most `trials.max_concurrent` at a time. Cost: K × S full trainings, i.e. as much as
K × S complete trials. Results are saved per (trial, seed) under <sweep>/reevaluation/, so an
interrupted re-evaluation continues where it stopped on `uwav sweep --resume`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from uwav.errors import UwavError
from uwav.fit import fit
from uwav.io import write_json
from uwav.stats import mean_std
from uwav.sweep.seeds import fresh_seeds, trial_seeds
from uwav.sweep.spec import SweepSpec

REEVAL_DIR = "reevaluation"
REEVAL_FILE = "reevaluation.json"


def train_seed(data, config, metric: str, threads: int) -> dict[str, Any]:
    """One full training on train + val; its best-so-far val `metric` and the best epoch's val scores."""
    if "test" in data.splits:
        raise UwavError("re-evaluation was given the test split; it selects on val only")
    torch.set_num_threads(max(1, threads))
    result = fit(config, data, keep_best=False, progress=False)
    return {"objective": max(h.val[metric] for h in result.history), "best_epoch": result.best_epoch,
            "val": dict(result.best_val), "epochs": len(result.history)}


def _job_file(exp_dir: Path, trial_id: str, seed: int) -> Path:
    return exp_dir / REEVAL_DIR / trial_id / f"seed{seed}.json"


def _run_jobs(spec: SweepSpec, data, jobs: list[tuple[dict, int]], exp_dir: Path, echo: Callable) -> None:
    """Train each (leaderboard row, seed) as a Ray task; write each result as soon as it is back."""
    import ray  # after uwav.sweep.tuner.start_ray, which sets Ray's environment before its import

    task = ray.remote(train_seed).options(num_cpus=spec.cpu, num_gpus=spec.gpu, max_retries=spec.max_failures)
    data_ref = ray.put(data)
    pending: dict[Any, tuple[dict, int]] = {}
    queue = list(jobs)
    while queue or pending:
        while queue and len(pending) < spec.max_concurrent:
            row, seed = queue.pop(0)
            config = spec.trial_config({**row["params"], "seed": seed})
            pending[task.remote(data_ref, config, spec.metric, max(1, int(spec.cpu)))] = (row, seed)
        done, _ = ray.wait(list(pending), num_returns=1)
        row, seed = pending.pop(done[0])
        try:
            result = ray.get(done[0])
        except Exception as err:  # the task's own error, re-raised by Ray
            raise UwavError(f"{spec.path}: finish re-evaluation of trial {row['trial_id']} with seed {seed} failed "
                            f"({type(err).__name__}); the search results are kept, rerun with --resume") from err
        write_json(_job_file(exp_dir, row["trial_id"], seed), {"trial_id": row["trial_id"], "seed": seed, **result})
        echo(f"re-evaluation: trial {row['trial_id']} seed {seed}: val {spec.metric} {result['objective']:.2f}")


def reevaluate(spec: SweepSpec, board: list[dict], data, exp_dir: Path, echo: Callable = print) -> dict | None:
    """Re-train the `finish.top_k` best trials with `finish.seeds` fresh seeds; None when not asked for.

    Returns (and writes to reevaluation.json) {"metric", "top_k", "seeds", "trial_seeds", "trainings",
    "trials": [{"trial_id", "params", "search_objective", "per_seed", "mean", "std"}, ...]}, best first.
    """
    settings = spec.finish
    if settings.top_k == 0:
        return None
    usable = [r for r in board if r["status"] != "error" and r["best_objective"] is not None]
    top = usable[:settings.top_k]
    searched = sorted(trial_seeds(spec.base, board))
    seeds = fresh_seeds(searched, settings.seeds)
    jobs = [(row, seed) for row in top for seed in seeds if not _job_file(exp_dir, row["trial_id"], seed).is_file()]
    if jobs:
        echo(f"re-evaluating the top {len(top)} trials with seeds {seeds} on val ({len(jobs)} trainings of "
             f"{len(top) * len(seeds)} left; the search used seeds {searched})")
        _run_jobs(spec, data, jobs, exp_dir, echo)
    trials = []
    for row in top:
        per_seed = {s: json.loads(_job_file(exp_dir, row["trial_id"], s).read_text()) for s in seeds}
        mean, std = mean_std([per_seed[s]["objective"] for s in seeds])
        trials.append({"trial_id": row["trial_id"], "params": row["params"], "search_objective": row["best_objective"],
                       "per_seed": {str(s): per_seed[s]["objective"] for s in seeds},
                       "val_per_seed": {str(s): per_seed[s]["val"] for s in seeds}, "mean": mean, "std": std})
    trials.sort(key=lambda t: -t["mean"])  # stable: equal means keep the search's order
    summary = {"metric": spec.metric, "top_k": len(top), "seeds": seeds, "trial_seeds": searched,
               "trainings": len(top) * len(seeds), "trials": trials}
    write_json(exp_dir / REEVAL_FILE, summary)
    return summary


def rerank(board: list[dict], summary: dict | None) -> list[dict]:
    """The leaderboard with the re-evaluated trials first, by mean over the fresh seeds; the rest after."""
    if not summary:
        return board
    by_id = {r["trial_id"]: r for r in board}
    first = []
    for t in summary["trials"]:
        row = dict(by_id[t["trial_id"]])
        row["reeval"] = {"mean": t["mean"], "std": t["std"], "seeds": summary["seeds"], "per_seed": t["per_seed"]}
        first.append(row)
    chosen = {t["trial_id"] for t in summary["trials"]}
    return first + [r for r in board if r["trial_id"] not in chosen]


def read_summary(exp_dir: Path) -> dict | None:
    path = Path(exp_dir) / REEVAL_FILE
    return json.loads(path.read_text()) if path.is_file() else None
