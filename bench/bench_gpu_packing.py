"""Aggregate parser-training throughput with 1, 2, 4 and 8 trials packed on one GPU.

A sweep packs trials onto a GPU with fractional resources (`resources: {gpu: 0.25}` runs four per GPU);
each Ray Tune trial is its own process with its own CUDA context. This benchmark reproduces that without
Ray (whose own overhead `bench_sweep.py` measures): k processes on the same device, each running uwav's
`Trainer.step` on the paper-size HAN at batch 64 over LLP-shaped data held on the device (random values:
speed does not depend on them). Every process builds its trainer, warms up, waits at a barrier, then
times a fixed number of steps. Aggregate throughput = all processes' segments / (last end - first start);
the ratio column compares it with one trial alone, measured in the same run.

Also printed per k: the largest per-process peak of torch's reserved memory (what the caching allocator
holds: data + model + optimiser + activations), to which each process adds its CUDA context (~0.5 GiB,
read from `nvidia-smi` when it is installed).

    python bench/bench_gpu_packing.py [--trials 1 2 4 8] [--steps 40] [--precision fp32|bf16] [--small]
    python bench/bench_gpu_packing.py --device cpu --small --trials 1 2 --steps 2 --videos 256   # logic check
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_train import PAPER, SMALL  # noqa: E402  (the parser sizes every parser benchmark uses)
from machine import print_header  # noqa: E402

SEGMENTS, CLASSES, AUDIO_DIM, VISUAL_DIM = 10, 25, 128, 2560  # LLP, HAN layout (VGGish; ResNet ++ R(2+1)D)


def llp_shaped_data(videos: int, seed: int):
    """ParserData of random LLP-shaped arrays: `videos` training clips and a 64-clip val split."""
    import numpy as np

    from uwav.data.dataset import ParserData, SplitArrays

    rng = np.random.default_rng(seed)

    def split(name: str, n: int) -> SplitArrays:
        weak = (rng.random((n, CLASSES)) < 0.1).astype(np.float32)
        gt = rng.random((n, SEGMENTS, CLASSES)) < 0.05
        return SplitArrays(name=name, filenames=tuple(f"{name}{i:07d}" for i in range(n)), weak=weak,
                           audio=rng.standard_normal((n, SEGMENTS, AUDIO_DIM), dtype=np.float32),
                           visual=rng.standard_normal((n, SEGMENTS, VISUAL_DIM), dtype=np.float32),
                           gt_audio=gt, gt_visual=gt,
                           logits_audio=rng.normal(0, 2, (n, SEGMENTS, CLASSES)).astype(np.float32),
                           logits_visual=rng.normal(0, 2, (n, SEGMENTS, CLASSES)).astype(np.float32))

    theta = {m: np.zeros(CLASSES) for m in ("audio", "visual")}
    return ParserData(splits={"train": split("train", videos), "val": split("val", 64)},
                      thresholds={"classwise": theta})


def trial(rank: int, args: argparse.Namespace, barrier, results) -> None:
    """One packed trial: build, warm up, meet the others, time `args.steps` steps."""
    import torch

    from uwav.config import config_from_dict
    from uwav.fit import Trainer

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = llp_shaped_data(args.videos, seed=rank)
    config = config_from_dict({"seed": rank, "paths": {"annotations": "-", "features": "-"},
                               "parser": SMALL if args.small else PAPER,
                               "train": {"device": device.type, "batch_size": args.batch_size,
                                         "precision": args.precision}})
    trainer = Trainer(config, data, device, keep_best=False)
    n = trainer.audio.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(rank)).to(device)
    batches = [order[lo:lo + args.batch_size] for lo in range(0, n - args.batch_size + 1, args.batch_size)]
    for b in batches[:3]:  # warm-up: kernels chosen, allocator grown
        trainer.step(b)
    sync(device)
    barrier.wait()
    results.put(("started", rank))
    t0 = time.perf_counter()
    for s in range(args.steps):
        trainer.step(batches[s % len(batches)])
    sync(device)
    t1 = time.perf_counter()
    peak = torch.cuda.max_memory_reserved(device) if device.type == "cuda" else 0
    results.put(("done", rank, t0, t1, peak))


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def context_memory_mib() -> str:
    """Per-process GPU memory as the driver reports it (includes the CUDA context), or '-'."""
    if not shutil.which("nvidia-smi"):
        return "-"
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=False).stdout.split()
    return "/".join(out) if out else "-"


def run_packed(k: int, args: argparse.Namespace) -> dict:
    ctx = mp.get_context("spawn")  # a CUDA context cannot be forked
    barrier, results = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=trial, args=(r, args, barrier, results)) for r in range(k)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + args.setup_timeout
    started, got, smi = 0, [], "-"
    while len(got) < k:
        try:
            message = results.get(timeout=1.0)
        except queue.Empty:
            # A trial that died (out of memory, say) must end the run now, not after the whole timeout:
            # on a lent GPU every minute counts.
            failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                for p in procs:
                    p.terminate()
                raise SystemExit(f"{k} packed trials: " + (f"a trial exited with code {failed[0]}" if failed
                                                            else f"no result within {args.setup_timeout:.0f} s")
                                 ) from None
            continue
        if message[0] == "started":
            started += 1
            if started == k and args.device == "cuda":  # all k are training now
                smi = context_memory_mib()
        else:
            got.append(message[1:])
    for p in procs:
        p.join()
    start, end = min(g[1] for g in got), max(g[2] for g in got)
    segments = k * args.steps * args.batch_size * SEGMENTS
    return {"k": k, "seconds": end - start, "seg_per_s": segments / (end - start),
            "peak_mib": max(g[3] for g in got) / 2**20, "smi": smi}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, nargs="+", default=[1, 2, 4, 8], help="trials packed per run")
    ap.add_argument("--steps", type=int, default=40, help="timed training steps per trial")
    ap.add_argument("--videos", type=int, default=10_000, help="training clips each trial holds (LLP: 10,000)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per trial process")
    ap.add_argument("--small", action="store_true", help="small parser instead of the paper's size")
    ap.add_argument("--setup-timeout", type=float, default=600.0)
    args = ap.parse_args()
    if args.videos < args.batch_size:
        ap.error(f"--videos {args.videos} holds less than one batch of {args.batch_size}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda but torch sees no CUDA device (use --device cpu for a logic check)")
        where = torch.cuda.get_device_name(0)
    else:
        where = "CPU"
    print_header(args.device)
    rows = [run_packed(k, args) for k in args.trials]
    alone = next((r["seg_per_s"] for r in rows if r["k"] == 1), None)
    epoch_batches = 10_000 / args.batch_size
    print(f"\n{where}: parser {'small' if args.small else 'paper size'}, {args.precision}, batch {args.batch_size}, "
          f"{args.steps} timed steps per trial, {args.videos} clips held per trial")
    print(f"{'trials':>6}{'seconds':>9}{'agg seg/s':>11}{'vs 1 trial':>11}{'s per epoch each*':>19}"
          f"{'peak reserved MiB':>19}  nvidia-smi MiB per process")
    for r in rows:
        ratio = f"{r['seg_per_s'] / alone:10.2f}x" if alone else f"{'-':>11}"
        per_trial_epoch = epoch_batches * args.batch_size * SEGMENTS / (r["seg_per_s"] / r["k"])
        print(f"{r['k']:>6}{r['seconds']:9.2f}{r['seg_per_s']:11.0f}{ratio}{per_trial_epoch:19.1f}"
              f"{r['peak_mib']:19.0f}  {r['smi']}")
    print("* a 10,000-clip LLP training epoch of each packed trial, EXTRAPOLATED from the timed steps "
          "(validation not included)")


if __name__ == "__main__":
    main()
