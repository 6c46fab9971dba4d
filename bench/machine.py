"""The machine header every benchmark prints first: what the numbers below it were measured on.

Benchmark ratios move with the machine (the same parser step is 2.75x faster in bf16 on a Xeon with AMX
and ~50x slower on an EPYC without bf16 units), so each output starts with the CPU model, its ISA level,
torch's build and threads, the load on the machine, and the fp32 matrix-product ceiling measured now at
the parser's shape (and the bf16 one where bf16 has native units; elsewhere one bf16 product would take
seconds and says nothing new). About a second.

    python bench/machine.py [--device cuda]     # the header alone
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uwav.hardware import describe, detect, device_report  # noqa: E402

# [B*T, d] @ [d, ff] of the paper-size parser at batch 64: the FFN's first product, its largest.
SHAPE = (640, 512, 2048)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(dtype: torch.dtype, device: torch.device, shape: tuple[int, int, int] = SHAPE,
                  seconds: float = 0.25, windows: int = 3) -> list[float]:
    """GFLOP/s of `a @ b` at `shape` (m, k, n), once per timing window of about `seconds`."""
    m, k, n = shape
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    a @ b
    _sync(device)
    reps = max(1, int(seconds / max(time.perf_counter() - t0, 1e-6)))
    rates = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        rates.append(2 * m * k * n * reps / (time.perf_counter() - t0) / 1e9)
    return rates


def _ceiling(dtype: torch.dtype, device: torch.device) -> str:
    rates = sorted(matmul_gflops(dtype, device))
    return f"{rates[len(rates) // 2]:.0f} GFLOP/s (windows {rates[0]:.0f}-{rates[-1]:.0f})"


def header(device: torch.device | str = "cpu") -> str:
    """The header lines: machine, torch, load and matmul ceilings on `device`."""
    device = torch.device(device)
    caps, report = detect(device), device_report(device)
    lines = [f"machine: {report['kind']} {describe(caps)}, vendor {caps.vendor or '?'}; {caps.bf16_why}"]
    if caps.kind == "cpu":
        lines.append(f"  torch kernels {caps.torch_kernels or '?'}; features {' '.join(caps.features) or '-'}")
    else:
        lines.append(f"  host CPU {report['host_cpu']}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    busy = " (over the CPU count: other work shares the CPUs, timings drift)" if load > (report["cpus"] or 1) else ""
    lines.append(f"  torch {report['torch']}, {report['torch_threads']} threads, {report['cpus']} CPUs, "
                 f"load average {load:.1f}{busy}")
    m, k, n = SHAPE
    ceilings = f"fp32 {_ceiling(torch.float32, device)}"
    if caps.bf16_fast:
        ceilings += f", bf16 {_ceiling(torch.bfloat16, device)}"
    else:
        ceilings += ", bf16 not measured (no native bf16 units: the slow path)"
    lines.append(f"  matmul ceiling at [{m}x{k}]@[{k}x{n}]: {ceilings}")
    return "\n".join(lines)


def print_header(device: torch.device | str = "cpu") -> None:
    print(header(device), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print_header(args.device)


if __name__ == "__main__":
    main()
