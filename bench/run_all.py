"""Run every benchmark in one go (CPU, reduced sizes so the whole run stays under about 20 minutes).

Each benchmark prints its own ratio against a baseline measured in the same process; this driver only runs
them one after another (never in parallel: they would slow each other down) and reports wall times.

    python bench/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL = [
    ("bench_eval.py", []),
    ("bench_pseudo.py", []),
    ("bench_train.py", ["--train-videos", "640", "--val-videos", "649", "--batches", "4", "--rounds", "3"]),
    ("bench_pretrain.py", ["--batches", "2"]),
    ("bench_sweep.py", []),
    ("bench_precision.py", []),
    ("bench_search.py", ["--seeds", "3"]),
    ("bench_method.py", ["--size", "medium", "--pretrain-epochs", "4", "--epochs", "6"]),
]
QUICK = [
    ("bench_eval.py", []),
    ("bench_pseudo.py", []),
    ("bench_train.py", ["--small", "--train-videos", "256", "--val-videos", "100", "--batches", "3"]),
    ("bench_pretrain.py", ["--small", "--batches", "2"]),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small models only (a couple of minutes)")
    args = ap.parse_args()
    failed = []
    start = time.perf_counter()
    for script, extra in QUICK if args.quick else FULL:
        print(f"\n=== {script} {' '.join(extra)}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script), *extra])
        print(f"--- {script}: exit {code}, {time.perf_counter() - t0:.0f}s", flush=True)
        if code:
            failed.append(script)
    verdict = f"; FAILED: {', '.join(failed)}" if failed else ""
    print(f"\nall benchmarks: {time.perf_counter() - start:.0f}s{verdict}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
