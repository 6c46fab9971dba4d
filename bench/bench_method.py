"""The method on an LLP-scale synthetic set: pseudo-label quality and the five-row ablation (Table 4 analogue).

1. Writes the synthetic set at LLP scale (10,000 / 649 / 1,200 LLP videos, 6,489 / 2,134 UnAV videos, UWAV
   layout), pre-trains the generator, caches its logits and fits θ on val.
2. Prints the pseudo-label quality table (segment and event level) of the generator's labels next to the
   VALOR-style zero-shot baseline (thresholded text similarity of the raw features, θ fitted on val the
   same way), on val, test and train (synthetic train has dense labels).
3. Trains the parser once per ablation row (Binary, Soft, Soft + Re-weight, Soft + Mixup, full) and seed
   and prints test scores of each run's best-val epoch, as measured, whatever the ordering. With
   `--seeds N` each row is trained with N seeds (same data, generator and pseudo labels; the seed sets
   initialisation, data order, dropout and mixup draws): the table shows means, then each row's test Seg
   and Ev Type@AV as mean ± std and its paired difference from the Soft row (same seeds), the numbers
   that say whether a component's effect is larger than seed noise.

The paper-size generator (28.6 min/epoch here) and parser do not fit a CPU benchmark, so by default both
are reduced and trained for few epochs; every reduction is printed with the results. The parser reads
CLIP/CLAP features (the paper's Table A6 variant), the layout the LLP-scale synthetic set is written in.
Paper-size parser throughput is measured by bench/bench_train.py.

    python bench/bench_method.py [--data DIR] [--pretrain-epochs 6] [--epochs 10] [--size llp|medium]
                                 [--seeds 1]
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

from machine import print_header  # noqa: E402

from uwav.config import config_from_dict, with_overrides  # noqa: E402
from uwav.data.dataset import load_parser_data  # noqa: E402
from uwav.fit import evaluate_split, fit
from uwav.metrics import METRIC_NAMES, SHORT_TITLES  # noqa: E402
from uwav.pretrain import pretrain  # noqa: E402
from uwav.pseudo.run import run_pseudo  # noqa: E402
from uwav.runtime import resolve_device  # noqa: E402

ABLATIONS = {  # method.md §8 switches that give the rows of Table 4
    "Binary (hard labels)": {"loss.segment_target": "hard", "loss.reweight": False, "loss.mixup": False},
    "Soft": {"loss.reweight": False, "loss.mixup": False},
    "Soft + Re-weight": {"loss.mixup": False},
    "Soft + Mixup": {"loss.reweight": False},
    "Soft + Re-weight + Mixup (full)": {},
}


def row(label: str, scores: dict) -> str:
    return f"{label:<34}" + "".join(f"{scores[n]:10.2f}" for n in METRIC_NAMES)


def header(first: str) -> str:
    return f"{first:<34}" + "".join(f"{SHORT_TITLES[n]:>10}" for n in METRIC_NAMES)


def print_seed_spread(results: dict[str, list[dict]]) -> None:
    """Mean ± std (ddof 1) over seeds, and the paired per-seed difference from the Soft row."""
    keys = (("Seg Type", "segment_type_at_av"), ("Ev Type", "event_type_at_av"))
    print(f"\n{'config':<34}" + "".join(f"{k + ' mean ± std':>20}{'− Soft, paired':>20}" for k, _ in keys)
          + "   per seed (Seg Type)")
    soft = results["Soft"]
    for name, runs in results.items():
        line = f"{name:<34}"
        for _, metric in keys:
            vals = np.array([r["test"][metric] for r in runs])
            diff = vals - np.array([r["test"][metric] for r in soft])
            line += f"{vals.mean():12.2f} ± {vals.std(ddof=1):5.2f}{diff.mean():12.2f} ± {diff.std(ddof=1):5.2f}"
        print(line + "   " + " ".join(f"{r['test']['segment_type_at_av']:.2f}" for r in runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="", help="existing synthetic folder (else written to a temp dir)")
    ap.add_argument("--size", default="llp", choices=["llp", "medium", "small"])
    ap.add_argument("--pretrain-epochs", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=20000, help="first parser seed")
    ap.add_argument("--seeds", type=int, default=1, help="parser seeds per ablation row: seed, seed+1, ...")
    ap.add_argument("--json", default="", help="also write the tables as JSON (rewritten after every row)")
    ap.add_argument("--rows", default="", help="ablation rows to train, 1-5 comma-separated (default all; the "
                                               "paired table needs row 2, Soft)")
    args = ap.parse_args()
    names = list(ABLATIONS)
    try:
        picked = [names[int(i) - 1] for i in args.rows.split(",")] if args.rows else names
    except (ValueError, IndexError):
        ap.error(f"--rows {args.rows!r}: give row numbers 1-{len(names)}, comma-separated")
    print_header("cpu")
    tmp = tempfile.TemporaryDirectory(prefix="uwav-bench-method-")
    data_root = Path(args.data) if args.data else Path(tmp.name) / "data"
    t0 = time.perf_counter()
    if not (data_root / "llp").is_dir():
        from uwav.data.synthetic import generate

        generate(data_root, size=args.size, seed=0, layouts=("uwav",))
        print(f"synthetic {args.size} set written in {time.perf_counter() - t0:.0f}s -> {data_root}")
    llp = data_root / "llp"
    raw = {
        "seed": args.seed,
        "paths": {"annotations": str(llp / "annotations"), "features": str(llp), "layout": "uwav",
                  "generator_features": str(llp), "unav_features": str(data_root / "unav"),
                  "unav_annotations": str(data_root / "unav" / "unav100_annotations.json"),
                  "out": str(Path(tmp.name) / "run")},
        "generator": {"hidden": 256, "layers": 2, "heads": 4, "ff": 512, "dropout": 0.3},
        "pretrain": {"epochs": args.pretrain_epochs, "warmup_epochs": 1, "lr_max": 5e-4, "lr_min": 5e-5},
        "parser": {"d_model": 256, "layers": 2, "heads": 8, "ff": 1024, "dropout": 0.1},
        "train": {"epochs": args.epochs, "warmup_epochs": 2, "lr_max": 3e-4, "lr_min": 5e-6},
    }
    config = config_from_dict(raw, "bench_method")
    t0 = time.perf_counter()
    gen = pretrain(config, progress=False)
    print(f"generator (hidden 256, 2 layers, {args.pretrain_epochs} epochs — REDUCED from 1024 / 5 / 80): "
          f"best UnAV-val Seg-av {gen.best_seg_av:.2f} at epoch {gen.best_epoch}, {time.perf_counter() - t0:.0f}s")
    report = run_pseudo(config, progress=False)
    print("\nPseudo-label quality (protocol metrics of the hard pseudo labels; θ fitted on val, so val is optimistic)")
    print(header("labels / split"))
    for r in report["rows"]:
        print(row(f"{r['labels']} / {r['split']}", r))

    data = load_parser_data(config, include_test=True)
    device = resolve_device("cpu")
    seeds = [args.seed + i for i in range(args.seeds)]
    results: dict[str, list[dict]] = {}
    which = f"one seed {args.seed}" if len(seeds) == 1 else f"means over seeds {seeds[0]}-{seeds[-1]}"
    print(f"\nAblation (parser d 256, 2 layers, {args.epochs} epochs — REDUCED from 512 / 5 / 80; {which}; "
          f"test scores of the best val Seg Type@AV epoch)")
    print(header("config"))
    for name in picked:
        overrides = ABLATIONS[name]
        t0 = time.perf_counter()
        runs = []
        for seed in seeds:
            result = fit(with_overrides(config, {**overrides, "seed": seed}), data, progress=False)
            runs.append({"seed": seed, "test": evaluate_split(result.model, data.split("test"), device, config),
                         "best_val": result.best_val, "best_epoch": result.best_epoch})
        results[name] = runs
        mean = {n: float(np.mean([r["test"][n] for r in runs])) for n in METRIC_NAMES}
        epochs = ",".join(str(r["best_epoch"]) for r in runs)
        print(row(name, mean) + f"   (best epoch {epochs}, {time.perf_counter() - t0:.0f}s)", flush=True)
        if args.json:  # after every row, so an interrupted run keeps what it measured
            Path(args.json).write_text(json.dumps({"pseudo": report["rows"], "ablation": results}, indent=2))
    if len(seeds) > 1 and "Soft" in results:
        print_seed_spread(results)
    tmp.cleanup()


if __name__ == "__main__":
    main()
