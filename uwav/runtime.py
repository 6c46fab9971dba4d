"""Run-time helpers shared by both training loops (generator pre-training and the parser's `fit`).

Seeding, the device, the learning-rate schedule and host-to-device transfers. No stage imports this
module's callers: it sits below them.
"""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import torch

from uwav.errors import UwavError


def seed_everything(seed: int) -> None:
    """One seed for python, numpy and torch (method.md: the config's `seed`)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str, key: str = "train.device") -> torch.device:
    """`auto` (CUDA when available), `cpu` or `cuda`; `key` names the config value in the error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UwavError(f"config: {key} is cuda but no CUDA device is available")
    return torch.device(name)


def epoch_lr(epoch: int, epochs: int, warmup: int, lr_max: float, lr_min: float) -> float:
    """Learning rate for 1-based `epoch` (method.md §9.4): linear warm-up, then cosine to lr_min."""
    if epoch < warmup:
        return lr_max * epoch / warmup
    if epochs == warmup:
        return lr_max
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * (epoch - warmup) / (epochs - warmup)))


def tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Zero-copy on CPU, also for the read-only arrays Ray's object store hands out (never written)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array).to(device)


def send(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor made inside a training loop (indices, a mixup permutation, a pre-training batch) to
    `device`.

    A plain `.to("cuda")` from pageable memory synchronises the stream, so every batch would wait for
    the GPU to drain. From pinned memory the copy is queued like a kernel; torch's pinned-memory cache
    keeps the host block alive until the copy has run. On CPU it is the tensor itself.
    """
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)
