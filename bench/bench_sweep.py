"""Benchmark: what Ray Tune costs a sweep, in time and in memory.

1. Overhead: the same trials (same configs, one thread each, one at a time) run by calling `fit`
   directly and through `run_sweep` (Tuner + OptunaSearch + the MLflow callback + per-epoch
   checkpoints). Prints the extra seconds per trial and that overhead as a fraction of trial time,
   also extrapolated to one-minute trials (the overhead is per trial and per epoch, not per second).
2. Memory per extra concurrent trial: trials run two at a time on HAN-sized features shared through
   the object store; every trial process records its own memory after each epoch
   (/proc/self/smaps_rollup). Private memory (what a trial adds) is compared with the feature bytes
   (what a copy per trial would add); the features appear only as shared pages.

    python bench/bench_sweep.py [--trials 4] [--epochs 3] [--videos 1500]

Ray is started once before timing (about 4 s, paid once per sweep, not per trial).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from machine import print_header

from uwav.data.dataset import ParserData, SplitArrays
from uwav.pseudo import fit_all_thresholds

C, T, DA, DV = 25, 10, 128, 2560  # LLP classes, segments; VGGish and ResNet-152 ++ R(2+1)D widths


def synthetic(n: int, name: str, rng: np.random.Generator) -> SplitArrays:
    gt_a, gt_v = rng.random((n, T, C)) < 0.1, rng.random((n, T, C)) < 0.1
    return SplitArrays(
        name=name, filenames=tuple(f"{name}{i}" for i in range(n)),
        weak=(gt_a | gt_v).any(axis=1).astype(np.float32),
        audio=rng.standard_normal((n, T, DA), dtype=np.float32),
        visual=rng.standard_normal((n, T, DV), dtype=np.float32),
        gt_audio=gt_a, gt_visual=gt_v,
        logits_audio=(4.0 * gt_a - 2 + rng.standard_normal(gt_a.shape)).astype(np.float32),
        logits_visual=(4.0 * gt_v - 2 + rng.standard_normal(gt_v.shape)).astype(np.float32))


def make_data(videos: int) -> ParserData:
    rng = np.random.default_rng(0)
    splits = {"train": synthetic(videos, "train", rng), "val": synthetic(max(64, videos // 5), "val", rng)}
    val = splits["val"]
    thresholds = fit_all_thresholds(val.logits_audio, val.logits_visual, val.weak, val.gt_audio, val.gt_visual)
    return ParserData(splits=splits, thresholds=thresholds, meta={"audio_gt_file": "synthetic", "threshold_fit": "f1"})


def write_spec(tmp: Path, name: str, epochs: int, trials: int, concurrent: int):
    from uwav.sweep.spec import load_sweep

    base = {"seed": 1, "paths": {"annotations": "unused", "features": "unused", "out": str(tmp / "out")},
            "parser": {"d_model": 128, "layers": 2, "heads": 4, "ff": 256},
            "train": {"epochs": epochs, "warmup_epochs": 1, "batch_size": 64, "lr_max": 1e-3, "lr_min": 1e-5,
                      "device": "cpu"}}
    (tmp / "base.yaml").write_text(yaml.safe_dump(base))
    values = [round(0.3 + 0.2 * i, 2) for i in range(trials)]
    sweep = {"name": name, "base": "base.yaml", "space": {"loss.W": {"type": "choice", "values": values}},
             "points_to_evaluate": [{"loss.W": v} for v in values], "scheduler": {"type": "fifo"},
             "resources": {"cpu": 1}, "trials": {"num_samples": trials, "max_concurrent": concurrent},
             "storage": {"path": str(tmp / "sweeps")}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return load_sweep(path)


def memory_trial(log: Path):
    """sweep_trial that appends its process's memory (kB) to `log` after every epoch."""

    def trial(params, **kwargs):
        import os

        from uwav import fit as train
        from uwav.sweep.trainable import sweep_trial

        original = train.Trainer.run_epoch

        def record(when: str) -> None:
            fields = {}
            for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
                key, value = line.split(":", 1)
                fields[key] = int(value.split()[0])
            private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
            shared = fields.get("Shared_Clean", 0) + fields.get("Shared_Dirty", 0)
            with open(log, "a") as fh:
                fh.write(json.dumps({"pid": os.getpid(), "when": when, "rss": fields["Rss"], "pss": fields["Pss"],
                                     "private": private, "shared": shared}) + "\n")

        def run_epoch(self):
            report = original(self)
            record("epoch")
            return report

        record("start")  # torch imported, data mapped from the object store, no model yet
        train.Trainer.run_epoch = run_epoch
        try:
            sweep_trial(params, **kwargs)
        finally:
            train.Trainer.run_epoch = original

    return trial


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--videos", type=int, default=1500, help="training videos (HAN-size features)")
    args = ap.parse_args()
    print_header("cpu")

    import ray
    import torch

    from uwav.fit import fit
    from uwav.sweep.tuner import ray_environment, run_sweep

    data = make_data(args.videos)
    mb = data.nbytes() / 2**20
    print(f"data: {args.videos} train + {len(data.split('val'))} val videos, {mb:.0f} MiB "
          f"(features [N, {T}, {DA}] + [N, {T}, {DV}], logits, labels)")
    ray_environment(local=True)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=int(2 * data.nbytes() + (256 << 20)))
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            # -- 1. per-trial overhead, sequential trials with one thread each
            spec = write_spec(tmp, "overhead", args.epochs, args.trials, concurrent=1)
            torch.set_num_threads(1)
            t0 = time.perf_counter()
            direct_epochs = []
            for point in spec.points_to_evaluate:
                result = fit(spec.trial_config(point), data, keep_best=False, progress=False)
                direct_epochs += [h.seconds for h in result.history]
            direct = time.perf_counter() - t0
            t0 = time.perf_counter()
            run_sweep(spec, data=data, verbose=0)
            tuned = time.perf_counter() - t0
            per_trial = (tuned - direct) / args.trials
            trial_s = direct / args.trials
            print(f"\n{args.trials} trials x {args.epochs} epochs, one at a time, 1 thread each")
            print(f"  direct fit:      {direct:7.1f} s ({trial_s:.1f} s per trial, "
                  f"{np.mean(direct_epochs):.2f} s per epoch)")
            print(f"  through run_sweep: {tuned:5.1f} s (Tune + Optuna + MLflow + a checkpoint every epoch)")
            print(f"  overhead: {per_trial:.2f} s per trial = {per_trial / trial_s:.1%} of this trial time; "
                  f"for one-minute trials: {per_trial / 60:.1%}")

            # -- 2. memory per extra concurrent trial, at two data sizes: what a trial adds must not grow
            # with the data (features are shared pages of the object store, not private copies)
            print("\n2 concurrent trials per data size; MiB per trial process: private at start (torch "
                  "imported, data mapped), added by training (peak private - start), shared at peak")
            print(f"  {'data':>8} {'pid':>8} {'private':>8} {'added':>8} {'shared':>8}")
            added_by_size = {}
            for scale in (1, 2):
                big = data if scale == 1 else make_data(args.videos * scale)
                size = big.nbytes() / 2**20
                log = tmp / f"memory{scale}.jsonl"
                spec = write_spec(tmp, f"memory{scale}", args.epochs, 2, concurrent=2)
                run_sweep(spec, data=big, verbose=0, trainable=memory_trial(log))
                rows = [json.loads(line) for line in log.read_text().splitlines()]
                start = {r["pid"]: r for r in rows if r["when"] == "start"}
                peak: dict[int, dict] = {}
                for r in rows:
                    if r["when"] == "epoch" and r["private"] >= peak.get(r["pid"], r)["private"]:
                        peak[r["pid"]] = r
                added = []
                for pid, r in peak.items():
                    added.append((r["private"] - start[pid]["private"]) / 1024)
                    print(f"  {size:8.0f} {pid:>8} {start[pid]['private'] / 1024:8.0f} {added[-1]:8.0f} "
                          f"{r['shared'] / 1024:8.0f}")
                added_by_size[size] = max(added)
                del big
            (s1, a1), (s2, a2) = added_by_size.items()
            print(f"  memory per extra trial: {a1:.0f} MiB at {s1:.0f} MiB of data, {a2:.0f} MiB at {s2:.0f} MiB "
                  f"(model, optimiser, activations, allocator); a copy per trial would add "
                  f"{s1:.0f} / {s2:.0f} MiB. Growth with the data: {(a2 - a1) / (s2 - s1):.0%} of it")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
