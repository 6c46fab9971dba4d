"""What the device a run uses can do, and the training precision that follows from it.

bf16 autocast is only fast where the hardware multiplies bf16 matrices natively: on a CPU with AVX-512
BF16 or AMX-BF16 (x86) or the BF16 extension (Arm), on a CUDA device of compute capability 8.0 or newer.
Anywhere else torch takes a slow, mostly single-threaded path and the "fast" mode is the slowest one: on an
AMD EPYC with AVX2/FMA only, a paper-size parser step took 50-65x as long in bf16 as in fp32
(`BF16_WITHOUT_UNITS`). So a requested precision is resolved against the device once, before training:

    fp32        fp32 (the default: the paper's numbers)
    bf16        bf16 autocast where it can be fast; elsewhere a UwavError saying why and what to use
    bf16_force  bf16 autocast on any device (to measure the slow path, or on hardware detection misreads)
    auto        bf16 where it can be fast, fp32 elsewhere

`detect(device)` is the one place that reads the hardware; tests replace it to fake a machine.
`device_report(device)` is the same reading as plain JSON for provenance and benchmark headers.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from uwav.errors import UwavError

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that read the hardware: uwav.config takes PRECISIONS from here,
# and reading or validating a config (`uwav config`, the CLI's start) should not pay for importing torch.

PRECISIONS = ("fp32", "bf16", "bf16_force", "auto")

# What bf16 costs without bf16 matrix units: `python bench/bench_precision_speed.py --batch-size 64
# --batches 1 --rounds 2` (fp32 and bf16 steps alternated in one process; 2 rounds 81 / 101 s against
# 1.65 / 1.57 s). Quoted by the refusal below and by the README.
BF16_WITHOUT_UNITS = ("a paper-size parser step at batch 64 took 81-101 s against 1.6 s in fp32 (50-65x) on an "
                      "AMD EPYC with AVX2/FMA, 2 threads")

# The CPU features a report lists, spelled as Linux's /proc/cpuinfo spells them. x86: the vector levels
# torch's kernels and oneDNN dispatch on, plus the ones that hold bf16 matrix units; Arm: the same idea.
X86_FEATURES = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
                "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16")
ARM_FEATURES = ("asimd", "sve", "sve2", "bf16", "svebf16", "i8mm")
# Features whose presence means bf16 matrix products run natively (at or above fp32 speed). x86: measured
# (bench/README.md: 1.9x faster than fp32 with AMX, 50-65x slower without); Arm: the architecture's bf16
# matrix instructions (BFMMLA), not measured by this project.
BF16_UNITS = {"x86": ("avx512_bf16", "amx_bf16"), "arm": ("bf16", "svebf16")}
BF16_UNIT_NAMES = {"x86": "AVX-512 BF16 or AMX-BF16", "arm": "the Arm BF16 extension"}

# torch.cpu.get_capabilities() names a few features differently from the kernel.
_TORCH_SPELLING = {"fma3": "fma", "avx512_f": "avx512f", "avx512_bw": "avx512bw", "avx512_vl": "avx512vl",
                   "neon": "asimd", "sve_bf16": "svebf16"}

CUDA_BF16_MIN_CAPABILITY = (8, 0)  # Ampere: the first bf16 tensor cores; older cards emulate bf16


@dataclass(frozen=True)
class DeviceCapabilities:
    """What one device offers for training; `detect` fills it, tests build their own."""

    kind: str  # "cpu", "cuda", or another torch device type (nothing detected there)
    name: str  # CPU model name or GPU name
    vendor: str  # GenuineIntel, AuthenticAMD, ... ; NVIDIA / AMD for GPUs
    isa_level: str  # CPU: the top vector level, e.g. "AVX2/FMA", "AVX-512 BF16 + AMX"; CUDA: "sm_90"
    bf16_fast: bool  # bf16 matrix products run on native units
    bf16_why: str  # one phrase: which units give bf16 speed, or which are missing
    features: tuple[str, ...] = ()  # CPU features present (X86_FEATURES / ARM_FEATURES, kernel spelling)
    source: str = ""  # where the features were read
    torch_kernels: str = ""  # CPU: torch.backends.cpu.get_cpu_capability(), the SIMD level torch dispatches to
    compute_capability: str = ""  # CUDA: "8.0", ...


# ---- CPU -----------------------------------------------------------------------------------------


def _read_proc_cpuinfo(path: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first processor block of /proc/cpuinfo as {key: value}; {} where the file does not exist."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # every core repeats the block; the first one describes them all
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _torch_cpu_capabilities() -> Mapping | None:
    """torch's own CPUID reading (torch.cpu.get_capabilities, in torch 2.13), with the kernel's spelling;
    None where this torch has no such function."""
    import torch

    get = getattr(getattr(torch, "cpu", None), "get_capabilities", None)
    if get is None:
        return None
    try:
        caps = get()
    except RuntimeError:
        return None
    return {_TORCH_SPELLING.get(k, k): v for k, v in caps.items()}


def _arch_family(machine: str) -> str:
    m = machine.lower()
    if m in ("x86_64", "amd64", "i386", "i686", "x86"):
        return "x86"
    if m.startswith(("aarch64", "arm64", "arm")):
        return "arm"
    return m or "unknown"


def cpu_features(kernel_flags: set[str] | None, torch_caps: Mapping | None, family: str) -> tuple[str, ...]:
    """The listed features present on this CPU.

    A feature counts when every source that reports on it says yes: the kernel lists what it enabled
    (an old kernel leaves AMX off even where CPUID has it), torch what its CPUID and XGETBV checks found.
    """
    names = X86_FEATURES if family == "x86" else ARM_FEATURES if family == "arm" else ()
    present = []
    for name in names:
        votes = []
        if kernel_flags is not None:
            votes.append(name in kernel_flags)
        if torch_caps is not None and name in torch_caps:
            votes.append(bool(torch_caps[name]))
        if votes and all(votes):
            present.append(name)
    return tuple(present)


def isa_level(features: tuple[str, ...], family: str) -> str:
    """A short name for the CPU's top vector level, as bench/README.md's machine tables use it."""
    f = set(features)
    if family == "x86":
        if "avx512_bf16" in f and "amx_bf16" in f:
            return "AVX-512 BF16 + AMX"
        if "avx512_bf16" in f:
            return "AVX-512 BF16"
        if "avx512f" in f:
            return "AVX-512 + AMX" if "amx_bf16" in f else "AVX-512"
        if "avx2" in f:
            return "AVX2/FMA" if "fma" in f else "AVX2"
        if "avx" in f:
            return "AVX"
        return "SSE4.2" if "sse4_2" in f else "x86-64 baseline"
    if family == "arm":
        parts = ["NEON" if "asimd" in f else "Armv8"]
        parts += [x for x, key in (("SVE2", "sve2"), ("SVE", "sve")) if key in f][:1]
        parts += ["BF16"] if {"bf16", "svebf16"} & f else []
        return " + ".join(parts)
    return family


def _bf16_why(features: tuple[str, ...], family: str) -> tuple[bool, str]:
    units = BF16_UNITS.get(family, ())
    found = [u for u in units if u in features]
    if found:
        return True, "bf16 matrix units: " + ", ".join(found)
    if not units:
        return False, f"no bf16 detection for {family} CPUs"
    return False, f"no bf16 matrix units ({BF16_UNIT_NAMES[family]})"


@lru_cache(maxsize=1)
def _detect_cpu() -> DeviceCapabilities:
    import torch

    info = _read_proc_cpuinfo()
    torch_caps = _torch_cpu_capabilities()
    family = _arch_family(str((torch_caps or {}).get("architecture") or platform.machine()))
    # x86 kernels list "flags", Arm kernels "Features".
    raw_flags = info.get("flags", info.get("Features"))
    kernel_flags = set(raw_flags.split()) if raw_flags is not None else None
    features = cpu_features(kernel_flags, torch_caps, family)
    fast, why = _bf16_why(features, family)
    sources = [s for s, got in (("torch.cpu.get_capabilities", torch_caps is not None),
                                ("/proc/cpuinfo", kernel_flags is not None)) if got]
    name = info.get("model name") or str((torch_caps or {}).get("cpu_name") or "") or platform.processor()
    vendor = info.get("vendor_id") or info.get("CPU implementer", "")
    get_level = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    return DeviceCapabilities(kind="cpu", name=name or "unknown CPU", vendor=vendor,
                              isa_level=isa_level(features, family), bf16_fast=fast, bf16_why=why,
                              features=features, source=" and ".join(sources) or "nothing readable",
                              torch_kernels=get_level() if get_level else "")


# ---- CUDA ----------------------------------------------------------------------------------------


def cuda_bf16(capability: tuple[int, int], torch_says: bool) -> tuple[bool, str]:
    """bf16 is fast on a CUDA device with bf16 tensor cores that torch also reports as native."""
    cc = f"{capability[0]}.{capability[1]}"
    if tuple(capability) < CUDA_BF16_MIN_CAPABILITY:
        need = ".".join(map(str, CUDA_BF16_MIN_CAPABILITY))
        return False, f"no bf16 tensor cores (compute capability {cc}; they start at {need})"
    if not torch_says:
        return False, f"no native bf16 in torch (compute capability {cc}, but torch.cuda.is_bf16_supported(" \
                      f"including_emulation=False) is False)"
    return True, f"bf16 tensor cores (compute capability {cc})"


def _detect_cuda(device: torch.device) -> DeviceCapabilities:
    import torch

    index = device.index if device.index is not None else torch.cuda.current_device()
    capability = torch.cuda.get_device_capability(index)
    with torch.cuda.device(index):
        try:
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch before 2.3 had no emulation switch
            native = torch.cuda.is_bf16_supported()
    fast, why = cuda_bf16(capability, native)
    return DeviceCapabilities(kind="cuda", name=torch.cuda.get_device_name(index),
                              vendor="AMD" if torch.version.hip else "NVIDIA",
                              isa_level=f"sm_{capability[0]}{capability[1]}", bf16_fast=fast, bf16_why=why,
                              source="torch.cuda", compute_capability=f"{capability[0]}.{capability[1]}")


# ---- the public readings -------------------------------------------------------------------------


def detect(device: torch.device | str) -> DeviceCapabilities:
    """What `device` can do. The single hardware reading of the package (tests monkeypatch it)."""
    import torch

    device = torch.device(device)
    if device.type == "cpu":
        return _detect_cpu()
    if device.type == "cuda":
        return _detect_cuda(device)
    return DeviceCapabilities(kind=device.type, name=device.type, vendor="", isa_level="unknown", bf16_fast=False,
                              bf16_why=f"no bf16 detection for {device.type} devices")


def device_report(device: torch.device | str) -> dict:
    """`detect(device)` plus the torch build and thread count, as plain JSON-able values.

    For provenance records and benchmark headers. A CUDA report also names the host CPU.
    """
    import torch

    caps = detect(device)
    report = asdict(caps)
    report["features"] = list(caps.features)
    report.update(torch=torch.__version__, torch_threads=torch.get_num_threads(), cpus=os.cpu_count())
    if caps.kind != "cpu":
        host = detect("cpu")
        report["host_cpu"] = f"{host.name} ({host.isa_level})"
    return report


def describe(caps: DeviceCapabilities) -> str:
    """One phrase naming the device: 'AMD EPYC (AVX2/FMA)', 'NVIDIA H100 (sm_90)'."""
    return f"{caps.name} ({caps.isa_level})"


def resolve_precision(requested: str, device: torch.device | str, where: str) -> str:
    """The precision a run trains in, "fp32" or "bf16", from the config's choice (PRECISIONS).

    `where` names the setting for the error, e.g. "configs/llp.yaml: train.precision". Raises UwavError
    for bf16 on a device without bf16 units (one line: why, and what to set instead).
    """
    if requested == "fp32":
        return "fp32"
    if requested == "bf16_force":
        return "bf16"
    if requested not in PRECISIONS:
        raise UwavError(f"{where} must be one of {', '.join(PRECISIONS)}; found {requested!r}")
    caps = detect(device)
    if caps.bf16_fast:
        return "bf16"
    if requested == "auto":
        return "fp32"
    cost = f", where bf16 autocast is the slow path: {BF16_WITHOUT_UNITS}" if caps.kind == "cpu" else ""
    raise UwavError(f"{where} is bf16, but {caps.kind} {describe(caps)}: {caps.bf16_why}{cost}; use fp32 (or auto, "
                    f"which picks fp32 here), or bf16_force to run bf16 anyway")
