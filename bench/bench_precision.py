"""bf16 autocast against float32: the same training, several seeds; is the val score within seed noise?

Trains the demo parser (configs/demo.yaml's sizes) on the synthetic small set with generator pseudo labels,
once per seed in each precision, and prints best val Seg Type@AV mean ± std and the time per epoch of
each. Speed at the paper's size is measured by bench/bench_train.py (and bench_precision_speed.py on CPUs
without bf16 units); this one answers the quality half of the bf16 target. On a CPU without bf16 units the
bf16 runs are the slow path, so they are skipped unless --force (then as `train.precision: bf16_force`).

    python bench/bench_precision.py [--seeds 3] [--data DIR] [--force]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import print_header  # noqa: E402
from pipeline_fixture import prepare  # noqa: E402

from uwav.config import load_config, with_overrides  # noqa: E402
from uwav.fit import fit  # noqa: E402
from uwav.hardware import describe, detect  # noqa: E402
from uwav.runtime import resolve_device  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data", default="")
    ap.add_argument("--force", action="store_true", help="run bf16 also on a device without bf16 units (slow)")
    args = ap.parse_args()
    device = resolve_device(load_config(ROOT / "configs" / "demo.yaml").train.device)
    print_header(device)
    caps = detect(device)
    if not caps.bf16_fast and not args.force:
        print(f"skipped: {describe(caps)} has {caps.bf16_why}, so bf16 would be the slow path and "
              "`train.precision: bf16` refuses it; --force runs the comparison anyway (as bf16_force)")
        return
    bf16 = "bf16" if caps.bf16_fast else "bf16_force"
    tmp = tempfile.TemporaryDirectory(prefix="uwav-bench-precision-")
    data_dir = Path(args.data) if args.data else Path(tmp.name) / "data"
    config, data = prepare(data_dir, Path(tmp.name) / "run", load_config(ROOT / "configs" / "demo.yaml"))
    scores: dict[str, list[float]] = {"fp32": [], "bf16": []}
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for seed in range(args.seeds):
        for precision in ("fp32", "bf16"):
            requested = bf16 if precision == "bf16" else precision
            cfg = with_overrides(config, {"seed": config.seed + seed, "train.precision": requested})
            t0 = time.perf_counter()
            result = fit(cfg, data, keep_best=False, progress=False)
            seconds[precision].append((time.perf_counter() - t0) / cfg.train.epochs)
            scores[precision].append(result.best_objective)
    p = config.parser
    print(f"parser d {p.d_model}, {p.layers} layers, {config.train.epochs} epochs; {args.seeds} seeds; "
          f"synthetic small set ({len(data.split('train'))} train / {len(data.split('val'))} val videos)")
    for precision in ("fp32", "bf16"):
        s = np.array(scores[precision])
        print(f"  {precision}: best val Seg Type@AV {s.mean():.2f} ± {s.std(ddof=1):.2f}  "
              f"(per seed {', '.join(f'{x:.2f}' for x in s)}); {np.mean(seconds[precision]):.2f} s/epoch")
    diff = np.array(scores["bf16"]) - np.array(scores["fp32"])
    noise = np.std(scores["fp32"], ddof=1)
    print(f"  bf16 − fp32 per seed: {', '.join(f'{d:+.2f}' for d in diff)}; mean {diff.mean():+.2f} vs fp32 "
          f"seed std {noise:.2f} -> {'within' if abs(diff.mean()) <= noise else 'OUTSIDE'} seed noise")
    tmp.cleanup()


if __name__ == "__main__":
    main()
