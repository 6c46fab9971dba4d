"""Counting reads of tensor values back to the host during a piece of training.

`.item()`, `bool(t)`, `float(t)` and friends all end in `aten::_local_scalar_dense`. On a GPU each one
makes the host wait until every queued kernel has run, so a read per batch serialises the training loop.
The CPU has no queue to wait on, but the same op is dispatched, so tests on CPU can count them.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default}


class DeviceReads(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0
        self.paused = 0
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in _READS and not self.paused:
            self.count += 1
            self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))

    @contextlib.contextmanager
    def pause(self):
        """Reads that are by design (from a host-side tensor) are not counted inside this block."""
        self.paused += 1
        try:
            yield
        finally:
            self.paused -= 1
