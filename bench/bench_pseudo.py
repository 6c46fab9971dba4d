"""θ fitting speed: all classes, both modalities, on an LLP-val-sized split, against a per-cut loop.

uwav sorts each class's values once and gets every cut's TP from one reversed cumulative sum. The
baseline evaluates each cut with a fresh sum over the sorted labels, as a direct reading of the
algorithm in method.md §4 does, over the cuts of `pseudo.threshold_cuts: finite` (float64 F1, first
maximiser, cuts from the first finite value), so it is compared with that rule; both must return
identical θ. The default `code` rule costs the same sort and sums and is timed alongside.

    python bench/bench_pseudo.py [--videos 649]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import print_header  # noqa: E402

from uwav.pseudo import fit_thresholds  # noqa: E402


def per_cut_loop(logits: np.ndarray, weak: np.ndarray, gt: np.ndarray) -> np.ndarray:
    theta = []
    for c in range(logits.shape[2]):
        values = np.where(weak[:, None, c] > 0, logits[:, :, c], -np.inf).ravel()
        labels = gt[:, :, c].ravel()
        order = np.argsort(values, kind="stable")
        v, lab = values[order], labels[order]
        n, positives = v.size, lab.sum()
        first = int(np.sum(np.isneginf(v)))
        best, best_i = -1.0, first
        for i in range(first, n):
            f1 = 2.0 * lab[i:].sum() / (positives + n - i)
            if f1 > best:
                best, best_i = f1, i
        theta.append(-np.inf if best_i == first else (v[best_i] + v[best_i - 1]) / 2.0)
    return np.asarray(theta, dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=649)
    args = ap.parse_args()
    print_header("cpu")
    rng = np.random.default_rng(0)
    n, t, c = args.videos, 10, 25
    weak = (rng.random((n, c)) < 0.07).astype(np.float32)
    weak[np.arange(n), rng.integers(0, c, n)] = 1.0
    inputs = []
    for _ in ("audio", "visual"):
        gt = (rng.random((n, t, c)) < 0.6) & (weak[:, None, :] > 0)
        inputs.append(((2.0 * gt + rng.normal(size=(n, t, c))).astype(np.float32), weak, gt))
    times, thetas = {}, {}
    rules = (("uwav finite (cumsums)", lambda *a: fit_thresholds(*a, cuts="finite")), ("per-cut loop", per_cut_loop),
             ("uwav code (cumsums)", lambda *a: fit_thresholds(*a, cuts="code")))
    for name, fn in rules:
        t0 = time.perf_counter()
        thetas[name] = [fn(*args) for args in inputs]
        times[name] = time.perf_counter() - t0
    same = all(np.array_equal(a, b) for a, b in zip(thetas["uwav finite (cumsums)"], thetas["per-cut loop"],
                                                   strict=True))
    base = times["per-cut loop"]
    print(f"θ fit, {c} classes x 2 modalities, {n} videos x {t} segments ({n * t} values per class)")
    for name, sec in times.items():
        print(f"  {name:<24} {sec * 1000:9.1f} ms   {base / sec:7.1f}x")
    print(f"  identical thresholds (finite vs per-cut loop): {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
