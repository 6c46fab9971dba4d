"""What bf16 autocast costs against fp32 on this machine: the parser's training step, alternated rounds.

Builds two uwav Trainers on the same in-memory random data (paper-size HAN by default, HAN-layout input
sizes), one per precision, and times `Trainer.step` in rounds fp32, bf16, fp32, bf16, ... in this one
process, so the ratio holds while other work shares the CPU. On a CPU with bf16 matrix units (AVX-512
BF16, AMX) bf16 is the faster one; without them it is the slow path, and this is the number
`uwav.hardware` quotes when it refuses `precision: bf16` (`--precision bf16_force` is implied: the
point is to measure it). No data on disk and no validation pass: bench_train.py covers those.

    python bench/bench_precision_speed.py [--batch-size 16] [--batches 2] [--rounds 2] [--threads 2] [--small]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import print_header  # noqa: E402

from uwav.config import config_from_dict  # noqa: E402
from uwav.data.dataset import ParserData, SplitArrays  # noqa: E402
from uwav.fit import Trainer  # noqa: E402

PAPER = {"d_model": 512, "layers": 5, "heads": 16, "ff": 2048, "dropout": 0.1}
SMALL = {"d_model": 128, "layers": 2, "heads": 4, "ff": 256, "dropout": 0.1}
T, C, AUDIO_DIM, VISUAL_DIM = 10, 25, 128, 2560  # LLP segments, classes; VGGish, ResNet-152 ++ R(2+1)D


def random_data(videos: int, seed: int = 0) -> ParserData:
    """A train split of random features, weak labels and generator logits, with θ = 0 for every class."""
    rng = np.random.default_rng(seed)
    weak = (rng.random((videos, C)) < 0.1).astype(np.float32)
    weak[np.arange(videos), rng.integers(0, C, videos)] = 1.0  # every video has a label
    train = SplitArrays(name="train", filenames=tuple(f"v{i}" for i in range(videos)), weak=weak,
                        audio=rng.normal(size=(videos, T, AUDIO_DIM)).astype(np.float32),
                        visual=rng.normal(size=(videos, T, VISUAL_DIM)).astype(np.float32),
                        logits_audio=rng.normal(0.0, 2.0, (videos, T, C)).astype(np.float32),
                        logits_visual=rng.normal(0.0, 2.0, (videos, T, C)).astype(np.float32))
    theta = {m: np.zeros(C, dtype=np.float32) for m in ("audio", "visual")}
    return ParserData(splits={"train": train}, thresholds={"classwise": theta})


def time_steps(trainer: Trainer, batches: int, batch_size: int, offset: int) -> tuple[float, float]:
    """(wall, process CPU) seconds per `Trainer.step` over `batches` consecutive batches from batch `offset`.

    CPU time counts only this process's cycles, so it moves less than wall time when other work shares
    the cores (with one thread it is close to what a quiet machine's wall time would be).
    """
    n = trainer.audio.shape[0]
    t0, c0 = time.perf_counter(), time.process_time()
    for b in range(offset, offset + batches):
        lo = (b * batch_size) % (n - batch_size + 1)
        trainer.step(torch.arange(lo, lo + batch_size))
    return (time.perf_counter() - t0) / batches, (time.process_time() - c0) / batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=16,
                    help="videos per step (16: a bf16 step at 64 takes ~90 s on a CPU without bf16 units)")
    ap.add_argument("--batches", type=int, default=2, help="timed steps per precision and round")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; the median round's ratio counts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--small", action="store_true", help="small parser instead of the paper's size")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print_header("cpu")
    parser_cfg = SMALL if args.small else PAPER
    data = random_data(args.batch_size * 4)
    base = {"paths": {"annotations": "-", "features": "-"}, "parser": parser_cfg,
            "train": {"device": "cpu", "batch_size": args.batch_size}}
    trainers = {p: Trainer(config_from_dict({**base, "train": {**base["train"], "precision": p}}), data,
                           torch.device("cpu"), keep_best=False) for p in ("fp32", "bf16")}
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:  # doubles as fp32's warm-up step
        trainers["fp32"].step(torch.arange(args.batch_size))
    flops = float(counter.get_total_flops())
    t0 = time.perf_counter()
    trainers["bf16"].step(torch.arange(args.batch_size))
    print(f"warm-up: one bf16 step {time.perf_counter() - t0:.1f}s", flush=True)
    timed: dict[str, list[tuple[float, float]]] = {"fp32": [], "bf16": []}
    for r in range(args.rounds):
        for p, trainer in trainers.items():
            timed[p].append(time_steps(trainer, args.batches, args.batch_size, offset=1 + r * args.batches))
        (f_wall, f_cpu), (b_wall, b_cpu) = timed["fp32"][-1], timed["bf16"][-1]
        print(f"round {r + 1}: fp32 {f_wall:.2f} s/step ({f_cpu:.2f} CPU s), bf16 {b_wall:.2f} s/step "
              f"({b_cpu:.2f} CPU s), bf16/fp32 {b_wall / f_wall:.1f}x wall, {b_cpu / f_cpu:.1f}x CPU", flush=True)
    print(f"\nparser {'small' if args.small else 'paper size'} {parser_cfg}, batch {args.batch_size}, "
          f"{args.threads} threads; {args.batches} steps per precision in each of {args.rounds} alternating "
          f"rounds (medians); one step = {flops / 1e9:.1f} GFLOP")
    sec = {}
    for p in ("fp32", "bf16"):
        sec[p] = float(np.median([wall for wall, _ in timed[p]]))
        cpu = float(np.median([c for _, c in timed[p]]))
        scaled = f" (~{sec[p] * 64 / args.batch_size:.1f} s per 64 videos, scaled)" if args.batch_size != 64 else ""
        print(f"  {p}: {sec[p]:.2f} s/step{scaled}, {flops / sec[p] / 1e9:.1f} GFLOP/s; {cpu:.2f} CPU s/step")
    for i, what in ((0, "wall"), (1, "CPU")):
        ratios = [b[i] / f[i] for f, b in zip(timed["fp32"], timed["bf16"], strict=True)]
        print(f"  bf16 / fp32 step {what} time: {np.median(ratios):.1f}x (median of the rounds' ratios; rounds: "
              f"{', '.join(f'{x:.1f}' for x in ratios)})")

if __name__ == "__main__":
    main()
