"""Parser training and validation speed: uwav's `fit` loop against a plain PyTorch baseline, same process.

The baseline is the usual way to write it (and what the official code does): a per-item `Dataset` that
reads one `.npy` per feature and per pseudo-label file for every video, a `DataLoader` with workers, and
a separate validation pass at batch size 1. uwav keeps each split as in-memory tensors, gathers batches
by index and validates in large batches with the vectorised metrics. Both train the same HAN (paper size
by default) with the same UWAV losses on the same synthetic LLP-layout data written to disk here.

A fixed number of training batches is timed and extrapolated to a 10,000-video LLP epoch (labelled as
such); validation is timed in full on 649 videos. Prints achieved GFLOP/s next to the machine's matmul
ceiling measured at the parser's shapes, after the machine header (bench/machine.py). The bf16 variant is
timed only where the device has bf16 units unless --bf16 force: elsewhere it is the slow path.

    python bench/bench_train.py [--train-videos 640] [--batches 4] [--rounds 3] [--threads 2] [--small]
                                [--device cuda] [--bf16 auto|force|skip]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import matmul_gflops, print_header  # noqa: E402

from uwav import losses  # noqa: E402
from uwav.allocator import keep_freed_memory  # noqa: E402
from uwav.config import config_from_dict  # noqa: E402
from uwav.data.dataset import ParserData, SplitArrays  # noqa: E402
from uwav.data.features import parser_inputs  # noqa: E402
from uwav.data.llp import load_llp_split  # noqa: E402
from uwav.fit import Trainer, build_parser, evaluate_split  # noqa: E402
from uwav.hardware import describe, detect  # noqa: E402
from uwav.metrics import evaluate_probabilities  # noqa: E402
from uwav.models.han import HAN  # noqa: E402
from uwav.pseudo import batch_targets, fit_all_thresholds  # noqa: E402

LLP_TRAIN_VIDEOS = 10_000
PAPER = {"d_model": 512, "layers": 5, "heads": 16, "ff": 2048, "dropout": 0.1}
SMALL = {"d_model": 128, "layers": 2, "heads": 4, "ff": 256, "dropout": 0.1}


def make_dataset(root: Path, train_videos: int, val_videos: int, seed: int = 0) -> None:
    from uwav.data.synthetic import generate

    generate(root, size="small", seed=seed, layouts=("han",),
             overrides={"train": train_videos, "val": val_videos, "test": 1, "unav_train": 1,
                        "unav_validation": 1})


def write_logits(root: Path, split: str, ids: list[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-video logits files, as UWAV's stage 2 writes them (a_/v_segmentwise_logits/<id>.npy)."""
    arrays = {}
    for m in ("a", "v"):
        z = rng.normal(0.0, 2.0, size=(len(ids), 10, 25)).astype(np.float32)
        folder = root / f"{m}_segmentwise_logits"
        folder.mkdir(exist_ok=True)
        for vid, zi in zip(ids, z, strict=True):
            np.save(folder / f"{vid}.npy", zi)
        arrays[m] = z
    return arrays


class PerVideoDataset(torch.utils.data.Dataset):
    """The baseline's data path: five .npy reads and label construction per item."""

    def __init__(self, root: Path, ids: list[str], weak: np.ndarray, theta: dict[str, np.ndarray], tau: float):
        self.root, self.ids, self.weak, self.theta, self.tau = root, ids, weak, theta, tau

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        vid = self.ids[i]
        audio = np.load(self.root / "feats/vggish" / f"{vid}.npy")
        res152 = np.load(self.root / "feats/res152" / f"{vid}.npy").reshape(10, 8, 2048).mean(axis=1)
        r2p1d = np.load(self.root / "feats/r2plus1d_18" / f"{vid}.npy")
        visual = np.concatenate([res152, r2p1d], axis=1).astype(np.float32)
        weak = self.weak[i]
        targets = []
        for m in ("a", "v"):
            z = torch.from_numpy(np.load(self.root / f"{m}_segmentwise_logits" / f"{vid}.npy"))[None]
            soft, _ = batch_targets(z, torch.from_numpy(self.theta[m]), torch.from_numpy(weak)[None], self.tau)
            targets.append(soft[0].numpy())  # the −∞ θ of one video: its own class minimum − 1, as the code
        return audio, visual, weak, targets[0], targets[1]


def plain_han(model: HAN) -> HAN:
    """The baseline model: the same HAN with the plain layer (uwav.models.han.HANLayer), same weights."""
    plain = HAN(model.config, **model.dims, layer_impl="plain")
    plain.load_state_dict(model.state_dict())
    return plain


def sync(device: torch.device) -> None:
    """Wait for queued GPU work before reading a clock (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def baseline_step(model, optimizer, batch, w, alpha, gen) -> None:
    device = next(model.parameters()).device
    audio, visual, weak, t_a, t_v = (t.to(device, non_blocking=True) for t in batch)
    out = model(audio, visual)
    loss = losses.video_loss(out.video_prob, weak)
    streams = ((out.seg_logits_a, out.feats_a, t_a, "a"), (out.seg_logits_v, out.feats_v, t_v, "v"))
    for seg_logits, feats, target, m in streams:
        loss = loss + losses.segment_loss(seg_logits, target, weak, w[m][0], w[m][1])
        lam, perm = losses.sample_mixup(feats.shape[0] * feats.shape[1], alpha, gen)
        loss = loss + losses.mixup_loss(feats, target, model.classify, lam, perm)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def minor_faults() -> int:
    """Minor page faults of this process so far (pages the kernel had to map on first touch)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_baseline(root: Path, model, ids, weak, theta, batches: int, batch_size: int, workers: int
                  ) -> tuple[float, float]:
    """(seconds, page faults) per training batch of the per-item Dataset + DataLoader baseline."""
    ds = PerVideoDataset(root, ids, weak, theta, tau=2.0)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         persistent_workers=False, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(0)
    w = {"a": (11.9, 1.1), "v": (11.9, 1.1)}
    model.train()
    device = next(model.parameters()).device
    it = iter(loader)
    baseline_step(model, optimizer, next(it), w, 1.7, gen)  # warm-up (workers start, allocator warms)
    sync(device)
    f0, t0 = minor_faults(), time.perf_counter()
    for _ in range(batches):
        baseline_step(model, optimizer, next(it), w, 1.7, gen)
    sync(device)
    return (time.perf_counter() - t0) / batches, (minor_faults() - f0) / batches


@torch.no_grad()
def baseline_validation(root: Path, model, val_ids, gt_a, gt_v) -> float:
    """The official code's validation: batch size 1, one forward per video, then the metrics."""
    model.eval()
    device = next(model.parameters()).device
    t0 = time.perf_counter()
    probs = {"a": [], "v": [], "p": []}
    for vid in val_ids:
        audio = torch.from_numpy(np.load(root / "feats/vggish" / f"{vid}.npy"))[None].to(device)
        res152 = np.load(root / "feats/res152" / f"{vid}.npy").reshape(10, 8, 2048).mean(axis=1)
        r2p1d = np.load(root / "feats/r2plus1d_18" / f"{vid}.npy")
        visual = torch.from_numpy(np.concatenate([res152, r2p1d], axis=1).astype(np.float32))[None].to(device)
        out = model(audio, visual)
        probs["a"].append(torch.sigmoid(out.seg_logits_a)[0].cpu().numpy())
        probs["v"].append(torch.sigmoid(out.seg_logits_v)[0].cpu().numpy())
        probs["p"].append(out.video_prob[0].cpu().numpy())
    evaluate_probabilities(np.stack(probs["a"]), np.stack(probs["v"]), np.stack(probs["p"]), gt_a, gt_v)
    model.train()
    return time.perf_counter() - t0


def time_ours(trainer: Trainer, batches: int, batch_size: int) -> tuple[float, float]:
    """(seconds, page faults) per training batch of uwav's Trainer.step (after one warm-up batch)."""
    order = torch.randperm(trainer.audio.shape[0], generator=torch.Generator().manual_seed(0))
    trainer.model.train()
    order = order.to(trainer.device)
    trainer.step(order[:batch_size])  # warm-up
    sync(trainer.device)
    f0, t0 = minor_faults(), time.perf_counter()
    for b in range(batches):
        lo = (b * batch_size) % (order.numel() - batch_size)
        trainer.step(order[lo:lo + batch_size])
    sync(trainer.device)
    return (time.perf_counter() - t0) / batches, (minor_faults() - f0) / batches


def step_flops(trainer: Trainer, batch_size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    idx = torch.arange(batch_size, device=trainer.device)
    with FlopCounterMode(display=False) as counter:
        trainer.step(idx)
    return float(counter.get_total_flops())


# Dense datasheet peaks in TFLOP/s (fp32 without tensor cores, bf16 tensor cores with fp32 accumulation),
# for model FLOP utilisation: the small product `matmul_ceiling` times is no ceiling for a data-centre GPU.
DATASHEET_TFLOPS = {"H200": (67.0, 989.0), "H100": (67.0, 989.0), "A100": (19.5, 312.0),
                    "RTX 3090": (35.6, 71.0), "L40S": (91.6, 362.0), "A10G": (31.2, 70.0)}


def datasheet_peak(device_name: str) -> tuple[float, float] | None:
    return next((v for k, v in DATASHEET_TFLOPS.items() if k in device_name), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-videos", type=int, default=640)
    ap.add_argument("--val-videos", type=int, default=649)
    ap.add_argument("--batches", type=int, default=4, help="timed training batches per variant and round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of all variants; medians count")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="baseline DataLoader workers")
    ap.add_argument("--small", action="store_true", help="small parser instead of the paper's size")
    ap.add_argument("--data", type=str, default="", help="reuse a data folder written by a previous run")
    ap.add_argument("--device", type=str, default="cpu", help="cpu or cuda (both variants run there)")
    ap.add_argument("--bf16", choices=("auto", "force", "skip"), default="auto",
                    help="time the bf16 variant: auto = only where the device has bf16 units (elsewhere one "
                         "step takes ~50x fp32's; bench_precision_speed.py measures that), force, or skip")
    args = ap.parse_args()
    if args.train_videos < (args.batches + 1) * args.batch_size:
        ap.error(f"--train-videos {args.train_videos} holds fewer than the {args.batches} timed batches plus one "
                 f"warm-up batch of {args.batch_size} (the baseline's loader takes them from one pass)")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    print_header(device)
    with_bf16 = args.bf16 == "force" or (args.bf16 == "auto" and detect(device).bf16_fast)
    precisions = {"fp32": "fp32", **({"bf16": "bf16_force" if args.bf16 == "force" else "bf16"} if with_bf16 else {})}
    parser_cfg = SMALL if args.small else PAPER

    tmp = tempfile.TemporaryDirectory(prefix="uwav-bench-train-") if not args.data else None
    root = Path(args.data or tmp.name)
    if not (root / "llp").is_dir():
        t0 = time.perf_counter()
        make_dataset(root, args.train_videos, args.val_videos)
        print(f"wrote {args.train_videos}+{args.val_videos} synthetic videos (HAN layout) in "
              f"{time.perf_counter() - t0:.1f}s")
    llp = root / "llp"
    ann = {s: load_llp_split(llp / "annotations", s) for s in ("train", "val")}
    rng = np.random.default_rng(0)
    splits = {}
    for s in ("train", "val"):
        ids = list(ann[s].ids)
        z = write_logits(llp, s, ids, rng)
        audio, visual = parser_inputs(llp, "han", ids)
        splits[s] = SplitArrays(name=s, filenames=tuple(ann[s].filenames), weak=ann[s].weak, audio=audio,
                                visual=visual, gt_audio=ann[s].gt_audio, gt_visual=ann[s].gt_visual,
                                logits_audio=z["a"], logits_visual=z["v"])
    val = splits["val"]
    thresholds = fit_all_thresholds(val.logits_audio, val.logits_visual, val.weak, val.gt_audio, val.gt_visual)
    theta = thresholds["classwise"]
    data = ParserData(splits=splits, thresholds=thresholds, meta={"threshold_fit": "f1"})
    base = {"paths": {"annotations": "-", "features": "-"}, "parser": parser_cfg,
            "train": {"device": device.type, "batch_size": args.batch_size}}

    # Both variants run on the same malloc settings: uwav's Trainer tunes glibc malloc for the whole process
    # (uwav/allocator.py), so the bench applies it first and the ratios below exclude that gain. Run with
    # UWAV_MALLOC_TUNING=0 to compare both on glibc's defaults (faults/batch shows the difference).
    tuned = keep_freed_memory()
    config = config_from_dict(base)
    torch.manual_seed(0)
    model = plain_han(build_parser(config, data, torch.device("cpu"))).to(device)
    theta_ab = {"a": theta["audio"], "v": theta["visual"]}
    trainers = {p: Trainer(config_from_dict({**base, "train": {**base["train"], "precision": value}}), data, device)
                for p, value in precisions.items()}
    flops = step_flops(trainers["fp32"], args.batch_size)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:  # also builds the metrics' event table once
        evaluate_split(trainers["fp32"].model, val, device, trainers["fp32"].config, "fp32")
    val_flops = float(counter.get_total_flops())
    # Rounds A B C A B C ...: this shared machine's speed drifts by 10-20 % over minutes, so each variant
    # is timed in every round and the median round counts.
    timed: dict[str, list[tuple[float, float]]] = {"baseline": [], **{p: [] for p in trainers}}
    val_ours: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        timed["baseline"].append(time_baseline(llp, model, list(ann["train"].ids), ann["train"].weak, theta_ab,
                                               args.batches, args.batch_size, args.workers))
        for p, trainer in trainers.items():
            timed[p].append(time_ours(trainer, args.batches, args.batch_size))
        for p, trainer in trainers.items():
            t0 = time.perf_counter()
            evaluate_split(trainer.model, val, device, trainer.config, trainer.precision)
            val_ours.setdefault(p, []).append(time.perf_counter() - t0)
    results = {k: float(np.median([sec for sec, _ in v])) for k, v in timed.items()}
    faults = {k: float(np.median([f for _, f in v])) for k, v in timed.items()}
    results["val_ours"] = float(np.median(val_ours["fp32"]))
    if with_bf16:
        results["val_bf16"] = float(np.median(val_ours["bf16"]))
    results["val_baseline"] = baseline_validation(llp, model, list(ann["val"].ids), val.gt_audio, val.gt_visual)

    per_epoch = LLP_TRAIN_VIDEOS / args.batch_size
    ceiling32 = float(np.median(matmul_gflops(torch.float32, device)))
    ceiling16 = float(np.median(matmul_gflops(torch.bfloat16, device))) if with_bf16 else None
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} threads"
    print(f"\nparser {'small' if args.small else 'paper size'} {parser_cfg}, batch {args.batch_size}, "
          f"torch {torch.__version__}, {where}, {os.cpu_count()} CPUs")
    print(f"timed {args.batches} batches per variant in each of {args.rounds} alternating rounds (median round); "
          f"epoch = {LLP_TRAIN_VIDEOS} videos ({per_epoch:.0f} batches), EXTRAPOLATED from the timed batches; "
          f"malloc tuning {'on for both variants' if tuned else 'off (glibc defaults)'}")
    print(f"{'variant':<34}{'s/batch':>9}{'s/epoch':>10}{'seg/s':>9}{'GFLOP/s':>9}{'faults/batch':>14}"
          f"{'vs baseline':>13}")
    for name, key in (("baseline (Dataset+DataLoader)", "baseline"), ("uwav fit, fp32", "fp32"),
                      ("uwav fit, bf16 autocast", "bf16")):
        if key not in results:
            print(f"{name:<34}  not timed: --bf16 {args.bf16} and {describe(detect(device))} has "
                  f"{'bf16 units' if detect(device).bf16_fast else 'no bf16 units'}")
            continue
        sec = results[key]
        print(f"{name:<34}{sec:9.3f}{sec * per_epoch:10.1f}{args.batch_size * 10 / sec:9.0f}"
              f"{flops / sec / 1e9:9.1f}{faults[key]:14.0f}{results['baseline'] / sec:12.2f}x")
    bf16_ceiling = f"bf16 {ceiling16:.0f} GFLOP/s" if ceiling16 is not None else "bf16 not measured"
    print(f"matmul ceiling at [640x512]@[512x2048]: fp32 {ceiling32:.0f} GFLOP/s, {bf16_ceiling}; "
          f"one training step = {flops / 1e9:.1f} GFLOP")
    print(f"validation pass ({len(val)} videos, inference + metrics): baseline batch-1 "
          f"{results['val_baseline']:.2f}s, uwav {results['val_ours']:.2f}s (median round) -> "
          f"{results['val_baseline'] / results['val_ours']:.1f}x"
          + (f"; bf16 autocast {results['val_bf16']:.2f}s" if with_bf16 else ""))
    print(f"validation pass = {val_flops / 1e9:.0f} GFLOP: at the measured fp32 ceiling that is "
          f"{val_flops / ceiling32 / 1e9:.2f}s of matrix products alone; uwav's fp32 pass runs at "
          f"{val_flops / results['val_ours'] / 1e9:.0f} GFLOP/s")
    epoch = {k: results[k] * per_epoch + results[f"val_{v}"] for k, v in (("baseline", "baseline"), ("fp32", "ours"))}
    print(f"fp32 epoch incl. its validation pass (EXTRAPOLATED training + measured validation): baseline "
          f"{epoch['baseline']:.1f}s, uwav {epoch['fp32']:.1f}s -> {epoch['baseline'] / epoch['fp32']:.2f}x")
    peak = datasheet_peak(where) if device.type == "cuda" else None
    if peak:
        bf16_step = f"bf16 step {flops / results['bf16'] / 1e12 / peak[1]:.1%}, " if with_bf16 else ""
        print(f"model FLOP utilisation against {where}'s dense datasheet peak ({peak[0]:.0f} fp32 / {peak[1]:.0f} "
              f"bf16 TFLOP/s): fp32 step {flops / results['fp32'] / 1e12 / peak[0]:.1%}, {bf16_step}fp32 validation "
              f"{val_flops / results['val_ours'] / 1e12 / peak[0]:.1%}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
