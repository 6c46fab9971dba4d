"""Search efficiency: TPE + ASHA against a 64-trial random search, counted in trial-epochs.

Both searches explore the space of `sweeps/demo.yaml` with the same `fit` on the same synthetic data and
cached generator logits. Random search trains 64 trials to the full epoch budget. TPE (Optuna, multivariate,
the same startup trials as the sweep file) with ASHA (Optuna's asynchronous successive halving: grace period
and reduction factor from the sweep file) reports val Seg Type@AV (best so far) every epoch and stops weak
trials early. The question the issue asks: how many trial-epochs does TPE + ASHA need to reach the best
val score the random search found in all its 64 trials? Target: at most half of the random search's.

It runs in-process (no Ray) so only the search algorithms differ; Ray's own overhead is measured by
bench/bench_sweep.py. Several seeds; the curve is best-so-far val score against trial-epochs.

    python bench/bench_search.py [--seeds 3] [--trials 64] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402
from machine import print_header  # noqa: E402
from pipeline_fixture import prepare  # noqa: E402

from uwav.config import with_overrides  # noqa: E402
from uwav.fit import fit  # noqa: E402
from uwav.sweep.spec import load_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def distributions(spec) -> dict:
    out = {}
    for p in spec.space:
        if p.type == "uniform":
            out[p.key] = optuna.distributions.FloatDistribution(p.low, p.high)
        elif p.type == "loguniform":
            out[p.key] = optuna.distributions.FloatDistribution(p.low, p.high, log=True)
        elif p.type == "int":
            out[p.key] = optuna.distributions.IntDistribution(p.low, p.high, log=p.log)
        else:
            out[p.key] = optuna.distributions.CategoricalDistribution(list(p.values))
    return out


class Budget:
    """Counts trial-epochs and records the best-so-far val score after each one."""

    def __init__(self):
        self.epochs = 0
        self.best = -np.inf
        self.curve: list[float] = []

    def tick(self, score: float) -> None:
        self.epochs += 1
        self.best = max(self.best, score)
        self.curve.append(self.best)


class Pruned(Exception):
    pass


def run_trial(trial, config, data, budget: Budget, target: float | None) -> float | None:
    """Train one trial, reporting best-so-far each epoch; None when ASHA (or reaching the target) stops it."""
    history: list[float] = []

    def on_epoch(report, trainer):
        history.append(report.objective)
        budget.tick(report.objective)
        trial.report(max(history), report.epoch)
        if trial.should_prune() or (target is not None and budget.best >= target):
            raise Pruned

    try:
        fit(config, data, on_epoch=on_epoch, keep_best=False, progress=False)
    except Pruned:
        return None
    return max(history)


def run_search(kind: str, spec, base, data, seed: int, trials: int, max_epochs: int, budget_cap: int | None,
               target: float | None) -> Budget:
    dists = distributions(spec)
    if kind == "random":
        sampler, pruner = optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner()
    else:
        s = spec.search
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.n_startup_trials,
                                             multivariate=s.multivariate, group=s.group)
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=spec.asha.grace_period,
                                                        reduction_factor=int(spec.asha.reduction_factor))
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    budget = Budget()
    for _ in range(trials):
        if budget_cap is not None and budget.epochs >= budget_cap:
            break
        if target is not None and budget.best >= target:
            break
        trial = study.ask(dists)
        value = run_trial(trial, with_overrides(base, trial.params, "bench_search"), data, budget, target)
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return budget


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--data", default="", help="existing synthetic folder (else written to a temp dir)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    print_header("cpu")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_sweep(ROOT / "sweeps" / "demo.yaml")
    tmp = tempfile.TemporaryDirectory(prefix="uwav-bench-search-")
    data_dir = Path(args.data) if args.data else Path(tmp.name) / "data"
    t0 = time.perf_counter()
    base, data = prepare(data_dir, Path(tmp.name) / "run", spec.base)
    max_epochs = base.train.epochs
    print(f"space of sweeps/demo.yaml ({len(spec.space)} keys), {max_epochs} epochs per trial, ASHA grace "
          f"{spec.asha.grace_period}, reduction {spec.asha.reduction_factor}; data and logits ready in "
          f"{time.perf_counter() - t0:.0f}s")
    full = args.trials * max_epochs
    rows = []
    print(f"{'seed':>4} {'random best':>12} {'its epochs':>11} {'TPE+ASHA epochs to reach it':>28} {'fraction':>9}")
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        rand = run_search("random", spec, base, data, seed, args.trials, max_epochs, None, None)
        target = rand.best
        reached_at = int(np.argmax(np.array(rand.curve) >= target)) + 1
        tpe = run_search("tpe", spec, base, data, seed, 10 * args.trials, max_epochs, full, target)
        hit = tpe.best >= target
        fraction = tpe.epochs / full if hit else float("nan")
        rows.append({"seed": seed, "random_best": target, "random_epochs": full, "random_reached_at": reached_at,
                     "tpe_asha_epochs": tpe.epochs if hit else None, "tpe_asha_best": tpe.best,
                     "fraction_of_random": fraction, "random_curve": rand.curve, "tpe_asha_curve": tpe.curve,
                     "seconds": time.perf_counter() - t0})
        shown = f"{tpe.epochs:>28}" if hit else f"{'not within ' + str(full):>28}"
        print(f"{seed:>4} {target:12.2f} {full:>11} {shown} {fraction:9.2f}   "
              f"(random first reached it at epoch {reached_at}; {time.perf_counter() - t0:.0f}s)")
    fractions = [r["fraction_of_random"] for r in rows]
    print(f"TPE + ASHA trial-epochs / random's {full}: " + ", ".join(f"{f:.2f}" for f in fractions) +
          f"  (mean {np.nanmean(fractions):.2f}; target <= 0.50)")
    print("best-so-far curve (trial-epochs: random / TPE+ASHA), mean over seeds:")
    for point in (full // 16, full // 8, full // 4, full // 2, full):
        r = np.mean([row["random_curve"][min(point, len(row["random_curve"])) - 1] for row in rows])
        t = np.mean([row["tpe_asha_curve"][min(point, len(row["tpe_asha_curve"])) - 1] for row in rows])
        print(f"  {point:>5}: {r:6.2f} / {t:6.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
