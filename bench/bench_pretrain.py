"""Generator pre-training speed: length-bucketed batches against padding every video to the longest (60 s).

The official code pads every UnAV video to 60 s. uwav groups videos of similar length into a batch and
pads only to that batch's longest, with the same padding mask semantics, so the loss of a batch is the
same either way (checked here on one batch, dropout off). The bucketed variant is timed with the
objective `uwav pretrain` uses: each video's seconds weighted by their official expected weight
(`uwav.pretrain.uniform_batch_second_weights`); the padded one with the official per-batch normaliser.
Video lengths are drawn from the REAL UnAV-100 train durations (../shared/data/unav100, T' =
ceil(duration)); features are random (speed does not depend on their values). A fixed number of batches
is timed per variant and extrapolated to an epoch of the 6,489 train videos (labelled as such). The last
line prints the speed-up (padded s/batch over bucketed s/batch).

    python bench/bench_pretrain.py [--batches 3] [--small] [--threads 2]
    python bench/bench_pretrain.py --small --batches 1   # quickest smoke run
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import print_header  # noqa: E402

from uwav.config import GeneratorConfig  # noqa: E402
from uwav.data.unav import num_seconds, read_unav_json  # noqa: E402
from uwav.losses import pretrain_loss  # noqa: E402
from uwav.models.generator import Generator  # noqa: E402
from uwav.pretrain import batch_tensors, length_batches, uniform_batch_second_weights  # noqa: E402

UNAV_JSON = Path(__file__).resolve().parents[2] / "shared" / "data" / "unav100" / "unav100_annotations.json"


@dataclass
class FakeSplit:
    clap: np.ndarray
    clip: np.ndarray
    labels: np.ndarray
    lengths: np.ndarray


def make_split(lengths: np.ndarray, classes: int, rng: np.random.Generator) -> FakeSplit:
    n, t_max = lengths.size, 60
    valid = np.arange(t_max)[None, :] < lengths[:, None]
    clap = rng.normal(size=(n, t_max, 512)).astype(np.float32) * valid[..., None]
    clip = rng.normal(size=(n, t_max, 768)).astype(np.float32) * valid[..., None]
    labels = (rng.random((n, t_max, classes)) < 0.03) & valid[..., None]
    return FakeSplit(clap, clip, labels, lengths)


def time_variant(model, split, batches, bucket: bool, text, steps: int,
                 second_weights: np.ndarray | None) -> tuple[float, float]:
    """Seconds per optimiser step and the fraction of padded token slots, over `steps` batches."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    model.train()
    device = torch.device("cpu")
    padded = real = 0
    times = []
    for i, idx in enumerate(batches[: steps + 1]):
        clap, clip, labels, valid, mask = batch_tensors(split, idx, bucket, device)
        t0 = time.perf_counter()
        weight = None if second_weights is None else torch.from_numpy(second_weights[idx])
        z_a, z_v = model(clap, clip, text[0], text[1], mask)
        loss = pretrain_loss(z_a, z_v, labels, valid, 5.0, second_weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        if i > 0:  # the first batch warms the allocator up
            times.append(time.perf_counter() - t0)
            padded += valid.numel()
            real += int(valid.sum())
    return float(np.mean(times)), 1.0 - real / padded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=3, help="timed batches per variant")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--small", action="store_true", help="hidden 256, 2 layers instead of the paper's size")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print_header("cpu")
    videos = read_unav_json(UNAV_JSON)
    train_lengths = np.array([num_seconds(v.duration) for v in videos.values() if v.subset == "train"])
    rng = np.random.default_rng(0)
    # A pool big enough for the bucketing of one 50-batch window: lengths sampled from the real ones.
    pool = rng.choice(train_lengths, size=args.batch_size * 50)
    split = make_split(pool, 100, rng)
    cfg = GeneratorConfig(hidden=256, layers=2, heads=4, ff=512) if args.small else GeneratorConfig()
    text = (torch.nn.functional.normalize(torch.randn(100, 512), dim=-1),
            torch.nn.functional.normalize(torch.randn(100, 768), dim=-1))

    # Same batch, same weights, dropout off: identical loss whether padded to 60 or to the batch's longest.
    torch.manual_seed(0)
    check = Generator(GeneratorConfig(**{**vars(cfg), "dropout": 0.0})).eval()
    idx = np.argsort(pool)[: args.batch_size // 2]
    with torch.no_grad():
        loss = {}
        for bucket in (True, False):
            clap, clip, labels, valid, mask = batch_tensors(split, idx, bucket, torch.device("cpu"))
            loss[bucket] = float(pretrain_loss(*check(clap, clip, text[0], text[1], mask), labels, valid, 5.0))
    same = math.isclose(loss[True], loss[False], rel_tol=1e-5)

    results = {}
    weights = uniform_batch_second_weights(split.lengths, args.batch_size).astype(np.float32)  # as uwav pretrain
    for bucket in (False, True):
        torch.manual_seed(0)
        model = Generator(cfg)
        batches = length_batches(split.lengths, args.batch_size, np.random.default_rng(1), bucket)
        results[bucket] = time_variant(model, split, batches, bucket, text, args.batches, weights if bucket else None)
    per_epoch = math.ceil(train_lengths.size / args.batch_size)
    print(f"generator {'small' if args.small else 'paper size'} (hidden {cfg.hidden}, {cfg.layers} layers), "
          f"batch {args.batch_size}, torch {torch.__version__}, {args.threads} threads")
    print(f"lengths: real UnAV train durations, mean T' {train_lengths.mean():.2f} s, max {train_lengths.max()}")
    print(f"same-batch loss: bucketed {loss[True]:.8f} vs padded-to-60 {loss[False]:.8f} -> "
          f"{'identical' if same else 'DIFFERENT'}")
    print(f"timed {args.batches} batches per variant; epoch = {per_epoch} batches, EXTRAPOLATED")
    print("bucketed: per-second weights = official expected weights (uwav pretrain's objective); "
          "padded: official per-batch normaliser")
    print(f"{'variant':<28}{'s/batch':>9}{'min/epoch':>11}{'padding':>9}{'speed-up':>10}")
    for name, key in (("pad every video to 60 s", False), ("bucket by length", True)):
        sec, waste = results[key]
        print(f"{name:<28}{sec:9.2f}{sec * per_epoch / 60:11.1f}{waste:9.1%}{results[False][0] / sec:9.2f}x")
    print(f"bucketing speed-up (corrected objective): {results[False][0] / results[True][0]:.2f}x")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
