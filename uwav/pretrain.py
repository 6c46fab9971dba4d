"""Stage 1: pre-train the pseudo-label generator on UnAV-100 (method.md §3).

UnAV videos last 10-60 s. The official code pads every video to 60 s and draws uniform random batches;
here batches are bucketed by length by default (videos of similar length share a batch, padded to the
batch's longest and masked), which computes the same per-second terms with much less wasted attention.

The official loss divides each batch by its own valid seconds × C. Kept with bucketed batches, that
would give a second of a short video up to 2.8× the official weight (a batch of 10-20 s videos has few
seconds). So bucketed batches weigh each video's seconds by `uniform_batch_second_weights`: the expected
official weight E[1 / (seconds of the uniform batch holding the video)] for its length, so in
expectation every second weighs what it weighs in the official code. What still differs is the spread:
a bucketed batch's total weight is its seconds over ~B·mean, so short-video batches give smaller
gradients and long-video ones larger, which Adam's moment estimates and the grad-norm clip see batch by
batch. `pretrain.bucket_by_length: false` runs the official batches and normalisation exactly.

The checkpoint with the best UnAV-val Seg-av (evaluation.md §11, strict improvement) is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from uwav import losses, metrics
from uwav.allocator import keep_freed_memory
from uwav.checkpoints import save_generator
from uwav.classes import UNAV_CLASSES
from uwav.data.features import load_text_embeddings
from uwav.data.unav import UnavSplit, load_unav_split
from uwav.errors import UwavError
from uwav.hardware import resolve_precision
from uwav.models.generator import Generator
from uwav.runtime import epoch_lr, resolve_device, seed_everything, send


@dataclass
class UnavData:
    train: UnavSplit
    val: UnavSplit
    text_audio: np.ndarray  # [100, 512] CLAP text embeddings
    text_visual: np.ndarray  # [100, 768] CLIP text embeddings


def load_unav_data(config) -> UnavData:
    p = config.paths
    if not p.unav_features or not p.unav_annotations:
        raise UwavError("config: paths.unav_features and paths.unav_annotations must be set for pre-training")
    limit = config.pretrain.max_videos or None
    train = load_unav_split(p.unav_features, p.unav_annotations, "train", max_videos=limit)
    val = load_unav_split(p.unav_features, p.unav_annotations, "validation", max_videos=limit)
    text_visual, text_audio = load_text_embeddings(p.unav_features, len(UNAV_CLASSES))
    return UnavData(train=train, val=val, text_audio=text_audio, text_visual=text_visual)


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, bucket: bool) -> list[np.ndarray]:
    """Video indices per batch for one epoch, shuffled, last partial batch kept (as the code does).

    With `bucket`, a shuffled pool of 50 batches is sorted by length before cutting, so each batch holds
    videos of similar length while the epoch's order stays random.
    """
    order = rng.permutation(lengths.size)
    if not bucket:
        return [order[i:i + batch_size] for i in range(0, order.size, batch_size)]
    pool = batch_size * 50
    batches = []
    for start in range(0, order.size, pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, chunk.size, batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def uniform_batch_second_weights(lengths: np.ndarray, batch_size: int) -> np.ndarray:
    """float64 [N]: each video's expected per-second loss weight under the official uniform batches.

    The official loader shuffles all N videos and cuts batches of `batch_size` (the last one holds
    r = N mod B); a batch's loss is divided by its valid seconds S (× C, applied in the loss). Video i's
    seconds therefore weigh E[1 / S], S = L_i + the lengths of the other videos of its batch, over the
    shuffle: with probability 1 − r/N it sits in a full batch (k = B − 1 others), else in the last one
    (k = r − 1). The k others are drawn without replacement from the N − 1 other videos, so with their
    mean μ and variance σ², E[S] = L_i + kμ and Var[S] = kσ²(N − 1 − k) / (N − 2); E[1/S] is taken to
    second order, 1/E[S] + Var[S]/E[S]³ (per length group within 1e-4 of a simulation of the shuffle on the
    real UnAV-100 train lengths, tests/test_pretrain.py). Summed over an epoch they give the official total.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    n = lengths.size
    if n == 1:
        return 1.0 / lengths
    others = n - 1
    mean = (lengths.sum() - lengths) / others
    var = np.maximum(((lengths ** 2).sum() - lengths ** 2) / others - mean ** 2, 0.0)

    def expected_inverse(k: int) -> np.ndarray:
        if k == 0:
            return 1.0 / lengths
        total = lengths + k * mean
        spread = k * var * (others - k) / max(others - 1, 1)
        return 1.0 / total + spread / total ** 3

    if n <= batch_size:  # one batch holds every video
        return expected_inverse(n - 1)
    rest = n % batch_size
    full = expected_inverse(batch_size - 1)
    if rest == 0:
        return full
    return (1.0 - rest / n) * full + (rest / n) * expected_inverse(rest - 1)


class GeneratorBatch(NamedTuple):
    clap: torch.Tensor  # [B, T, 512]
    clip: torch.Tensor  # [B, T, 768]
    labels: torch.Tensor  # [B, T, C] float
    valid: torch.Tensor  # bool [B, T]: the loss and the metrics read only these seconds
    mask: torch.Tensor | None  # what the generator's attention gets: `valid`, or None when nothing is padded


def batch_tensors(split, idx: np.ndarray, bucket: bool, device: torch.device) -> GeneratorBatch:
    """The batch's tensors, cut to its longest video when bucketing.

    Whether any second is padding is decided here from the host's lengths: asking the valid mask on
    the device would stall a GPU once per batch.
    """
    lengths = split.lengths[idx]
    t_max = int(lengths.max()) if bucket else split.clap.shape[1]
    clap = send(torch.from_numpy(split.clap[idx, :t_max]), device)
    clip = send(torch.from_numpy(split.clip[idx, :t_max]), device)
    labels = send(torch.from_numpy(split.labels[idx, :t_max]), device).float()
    valid = torch.arange(t_max, device=device)[None, :] < send(torch.from_numpy(lengths), device)[:, None]
    return GeneratorBatch(clap, clip, labels, valid, valid if int(lengths.min()) < t_max else None)


@torch.no_grad()
def evaluate_generator(model, split, text_audio: torch.Tensor, text_visual: torch.Tensor, device: torch.device,
                       batch_size: int = 64) -> dict[str, float]:
    """UnAV-val Seg-av / Ev-av (evaluation.md §11) over each video's valid seconds only."""
    model.eval()
    n, t_max = split.clap.shape[:2]
    num_classes = text_audio.shape[0]
    z_a = np.zeros((n, t_max, num_classes), dtype=np.float32)
    z_v = np.zeros_like(z_a)
    order = np.argsort(split.lengths, kind="stable")  # similar lengths together: less padding
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        batch = batch_tensors(split, idx, True, device)
        a, v = model(batch.clap, batch.clip, text_audio, text_visual, batch.mask)
        z_a[idx, : a.shape[1]] = a.float().cpu().numpy()
        z_v[idx, : v.shape[1]] = v.float().cpu().numpy()
    model.train()
    return metrics.unav_seg_av(z_a, z_v, split.labels, split.lengths)


@dataclass
class PretrainReport:
    epoch: int
    lr: float
    seconds: float
    loss: float
    val: dict[str, float]
    best_seg_av: float
    improved: bool


@dataclass
class PretrainResult:
    best_epoch: int
    best_seg_av: float
    checkpoint: Path
    history: list[PretrainReport] = field(default_factory=list)
    precision: str = "fp32"  # what pre-training ran in: `pretrain.precision` resolved ("fp32" or "bf16")


def pretrain_precision(config, where: str = "pretrain.precision") -> str:
    """`pretrain.precision` resolved for `pretrain.device`; UwavError for bf16 where it is the slow path."""
    device = resolve_device(config.pretrain.device, "pretrain.device")
    return resolve_precision(config.pretrain.precision, device, where)


def pretrain(config, data: UnavData | None = None, on_epoch: Callable[[PretrainReport], None] | None = None,
             progress: bool = True) -> PretrainResult:
    p = config.pretrain
    device = resolve_device(p.device, "pretrain.device")
    precision = pretrain_precision(config)  # before the UnAV features are read: a refusal costs nothing
    data = data or load_unav_data(config)
    if device.type == "cpu":
        keep_freed_memory()
    seed_everything(config.seed)
    model = Generator(config.generator).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr_max, betas=(p.beta1, 0.999), eps=1e-8,
                                  weight_decay=p.weight_decay, fused=True)  # see uwav.fit.Trainer
    text_a = torch.from_numpy(data.text_audio).to(device)
    text_v = torch.from_numpy(data.text_visual).to(device)
    rng = np.random.default_rng(config.seed)
    # Bucketed batches: each video's seconds get their official expected weight (module docstring);
    # uniform batches use the official per-batch normalisation itself.
    second_weights = None
    if p.bucket_by_length:
        second_weights = uniform_batch_second_weights(data.train.lengths, p.batch_size).astype(np.float32)
    checkpoint = Path(config.generator_checkpoint)
    best, best_epoch, history = -np.inf, 0, []
    bar = None
    if progress:
        bar = tqdm(total=p.epochs, desc="pretrain", unit="epoch", leave=False)
    for epoch in range(1, p.epochs + 1):
        lr = epoch_lr(epoch, p.epochs, p.warmup_epochs, p.lr_max, p.lr_min)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        model.train()
        # The loss sum stays on the device and is read once per epoch (a read per batch stalls a GPU).
        total, count = torch.zeros((), dtype=torch.float64, device=device), 0
        for idx in length_batches(data.train.lengths, p.batch_size, rng, p.bucket_by_length):
            batch = batch_tensors(data.train, idx, p.bucket_by_length, device)
            weight = None if second_weights is None else send(torch.from_numpy(second_weights[idx]), device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                z_a, z_v = model(batch.clap, batch.clip, text_a, text_v, batch.mask)
            loss = losses.pretrain_loss(z_a.float(), z_v.float(), batch.labels, batch.valid, p.pos_weight,
                                        second_weight=weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if p.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
            optimizer.step()
            total += loss.detach()
            count += 1
        val = evaluate_generator(model, data.val, text_a, text_v, device)
        improved = val["segment_audio_visual"] > best
        if improved:
            best, best_epoch = val["segment_audio_visual"], epoch
            save_generator(checkpoint, model, epoch, best)
        report = PretrainReport(epoch=epoch, lr=lr, seconds=time.perf_counter() - t0, loss=total.item() / max(count, 1),
                                val=val, best_seg_av=best, improved=improved)
        history.append(report)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{report.loss:.4f}", seg_av=f"{val['segment_audio_visual']:.2f}", best=f"{best:.2f}")
        if on_epoch is not None:
            on_epoch(report)
    if bar is not None:
        bar.close()
    return PretrainResult(best_epoch=best_epoch, best_seg_av=float(best), checkpoint=checkpoint, history=history,
                          precision=precision)
