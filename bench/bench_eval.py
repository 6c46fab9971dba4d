"""Benchmark: vectorised LLP evaluation (uwav.metrics) vs a straightforward per-video loop.

The loop follows the evaluation.md §15 reference pseudo-code, including filtering the dense rows of
every video on each evaluation like the reference evaluators. Both must give the same ten numbers.

    python bench/bench_eval.py [--annotations DIR] [--split test] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from machine import print_header

from uwav.classes import LLP_CLASSES
from uwav.data.llp import EVAL_AUDIO, EVAL_VISUAL, load_llp_split
from uwav.metrics import METRIC_NAMES, _table, evaluate_probabilities

DEFAULT_LLP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "llp"


# ---- the per-video reference ------------------------------------------------------------------


def read_rows(path: Path) -> list[tuple[str, str, str, str]]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    cols = [header.index(c) for c in ("filename", "onset", "offset", "event_labels")]
    return [tuple(line.split("\t")[i] for i in cols) for line in lines[1:] if line]


def runs(row) -> list[tuple[int, int]]:
    out, start = [], None
    for t, x in enumerate(list(row) + [0]):
        if x and start is None:
            start = t
        elif not x and start is not None:
            out.append((start, t))
            start = None
    return out


def f_from_counts(tp, fp, fn) -> float:
    f = [
        2 * tp[c] / (2 * tp[c] + fp[c] + fn[c])
        for c in range(len(tp))
        if tp[c] + fp[c] > 0 or tp[c] + fn[c] > 0
    ]
    return float(np.mean(f)) if f else 1.0


def seg_counts(p, g):
    return (p * g).sum(1), (p * (1 - g)).sum(1), ((1 - p) * g).sum(1)


def event_counts(p, g):
    tp, fp, fn = np.zeros(len(p)), np.zeros(len(p)), np.zeros(len(p))
    for c in range(len(p)):
        pe, ge = runs(p[c]), runs(g[c])

        def match(a, b):
            inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
            return inter >= 0.5 * ((a[1] - a[0]) + (b[1] - b[0]) - inter)

        tp[c] = sum(any(match(a, b) for b in ge) for a in pe)
        fp[c] = len(pe) - tp[c]
        fn[c] = sum(not any(match(a, b) for a in pe) for b in ge)
    return tp, fp, fn


def loop_evaluate(
    filenames, audio_prob, visual_prob, video_prob, audio_rows, visual_rows
) -> dict[str, float]:
    cls = {name: i for i, name in enumerate(LLP_CLASSES)}
    per = {f"{level}_{col}": [] for level in ("segment", "event")
           for col in ("audio", "visual", "audio_visual", "event_at_av")}
    for i, name in enumerate(filenames):
        gate = video_prob[i] >= 0.5
        so_a = ((audio_prob[i] >= 0.5) & gate).T.astype(int)  # 25 x 10 like the reference
        so_v = ((visual_prob[i] >= 0.5) & gate).T.astype(int)
        gt_a, gt_v = np.zeros((25, 10), dtype=int), np.zeros((25, 10), dtype=int)
        for gt, rows in ((gt_a, audio_rows), (gt_v, visual_rows)):
            for _name, onset, offset, label in (r for r in rows if r[0] == name):  # the per-video filter
                gt[cls[label], int(float(onset)) : int(float(offset))] = 1
        so_av, gt_av = so_a * so_v, gt_a * gt_v
        for level, counts in (("segment", seg_counts), ("event", event_counts)):
            ca, cv, cav = counts(so_a, gt_a), counts(so_v, gt_v), counts(so_av, gt_av)
            per[f"{level}_audio"].append(f_from_counts(*ca))
            per[f"{level}_visual"].append(f_from_counts(*cv))
            per[f"{level}_audio_visual"].append(f_from_counts(*cav))
            per[f"{level}_event_at_av"].append(f_from_counts(*(x + y for x, y in zip(ca, cv, strict=True))))
    scores = {k: 100 * float(np.mean(v)) for k, v in per.items()}
    for level in ("segment", "event"):
        scores[f"{level}_type_at_av"] = (scores[f"{level}_audio"] + scores[f"{level}_visual"]
                                         + scores[f"{level}_audio_visual"]) / 3
    return {k: scores[k] for k in METRIC_NAMES}


# ---- benchmark --------------------------------------------------------------------------------


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=DEFAULT_LLP)
    parser.add_argument("--split", choices=["val", "test"], default="test")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print_header("cpu")

    llp = load_llp_split(args.annotations, args.split)
    rng = np.random.default_rng(0)
    weak = llp.weak.astype(np.float64)
    # weak_all plus noise: probabilities around 0.5 so both gating and thresholds matter
    audio = np.clip(0.3 * weak[:, None, :] + rng.random((len(llp), 10, 25)) * 0.6, 0, 1)
    visual = np.clip(0.3 * weak[:, None, :] + rng.random((len(llp), 10, 25)) * 0.6, 0, 1)
    video = np.clip(0.6 * weak + rng.random(weak.shape) * 0.4, 0, 2)

    start = time.perf_counter()
    _table()
    table_s = time.perf_counter() - start
    vec_s, vec = best_time(
        lambda: evaluate_probabilities(audio, visual, video, llp.gt_audio, llp.gt_visual), args.repeats
    )
    audio_rows = read_rows(args.annotations / EVAL_AUDIO)
    visual_rows = read_rows(args.annotations / EVAL_VISUAL)
    loop_s, ref = best_time(
        lambda: loop_evaluate(llp.filenames, audio, visual, video, audio_rows, visual_rows),
        max(1, args.repeats // 2),
    )
    for k in METRIC_NAMES:  # only summation order differs, so agreement is to rounding error
        assert abs(vec[k] - ref[k]) < 1e-9, (k, vec[k], ref[k])

    print(f"LLP {args.split}: {len(llp)} videos; scores agree to 1e-9 on all ten metrics")
    print("  ".join(f"{k}={vec[k]:.3f}" for k in METRIC_NAMES))
    print(f"event table build (once per process): {table_s * 1e3:8.1f} ms")
    print(f"vectorised evaluate_probabilities:    {vec_s * 1e3:8.1f} ms (best of {args.repeats})")
    print(f"per-video loop reference:             {loop_s * 1e3:8.1f} ms")
    print(f"speed-up: {loop_s / vec_s:.0f}x")


if __name__ == "__main__":
    main()
