"""uwav.allocator: freed training-size blocks are reused instead of re-faulted from the kernel."""

import os
import subprocess
import sys

import pytest

PROBE = r"""
import sys
import torch
from uwav.allocator import keep_freed_memory

def resident_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

applied = keep_freed_memory() if sys.argv[1] == "tune" else None
blocks = [torch.ones(640, 1024) for _ in range(40)]  # 100 MiB of step-sized activations (2.5 MiB each)
peak = resident_mib()
del blocks
print(applied, round(peak - resident_mib()))  # MiB handed back to the kernel when they were freed
"""


def run_probe(mode: str, **env_overrides) -> tuple[bool | None, int]:
    """(tuning applied, MiB returned to the kernel on freeing 100 MiB of blocks) in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "UWAV_MALLOC_TUNING"}
    env.update(env_overrides)
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True)
    applied, released = out.stdout.split()
    return {"True": True, "False": False, "None": None}[applied], int(released)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_tuning_keeps_freed_activations_for_reuse():
    # glibc's defaults unmap blocks this size on free, so the next step faults every page in again
    # (13,700-49,000 minor faults per 3 paper-width HAN steps here); tuned, the heap keeps them.
    _, released_default = run_probe("default")
    applied, released_tuned = run_probe("tune")
    assert applied is True
    assert released_default > 90
    assert released_tuned < 5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_tuning_respects_opt_out_and_user_settings():
    applied, released = run_probe("tune", UWAV_MALLOC_TUNING="0")
    assert applied is False and released > 90
    assert run_probe("tune", MALLOC_TRIM_THRESHOLD_="1000000")[0] is False
