"""Hardware detection and precision resolution (uwav/hardware.py)."""

from __future__ import annotations

import contextlib
import json
import platform
from pathlib import Path

import pytest
import torch

from uwav import hardware
from uwav.errors import UwavError
from uwav.hardware import DeviceCapabilities, cpu_features, cuda_bf16, isa_level, resolve_precision

PROC = Path("/proc/cpuinfo")
EPYC = DeviceCapabilities(kind="cpu", name="AMD EPYC", vendor="AuthenticAMD", isa_level="AVX2/FMA",
                          bf16_fast=False, bf16_why="no bf16 matrix units (AVX-512 BF16 or AMX-BF16)",
                          features=("sse4_2", "avx", "avx2", "fma", "f16c"))
XEON = DeviceCapabilities(kind="cpu", name="Intel(R) Xeon(R) Platinum 8480C", vendor="GenuineIntel",
                          isa_level="AVX-512 BF16 + AMX", bf16_fast=True,
                          bf16_why="bf16 matrix units: avx512_bf16, amx_bf16",
                          features=("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"))


def _proc_fields() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in PROC.read_text().splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        out.setdefault(key.strip(), value.strip())
    return out


@pytest.mark.skipif(not PROC.exists() or platform.machine() != "x86_64", reason="needs Linux on x86-64")
def test_cpu_detection_agrees_with_proc_cpuinfo():
    fields = _proc_fields()
    flags = set(fields["flags"].split())
    caps = hardware.detect("cpu")
    assert caps.kind == "cpu"
    assert caps.name == fields["model name"]
    assert caps.vendor == fields["vendor_id"]
    assert caps.features == tuple(f for f in hardware.X86_FEATURES if f in flags)
    assert caps.bf16_fast == bool({"avx512_bf16", "amx_bf16"} & flags)
    if "avx512f" not in flags and "avx2" in flags and "fma" in flags:  # this project's AMD EPYC
        assert caps.isa_level == "AVX2/FMA"
        assert not caps.bf16_fast


@pytest.mark.skipif(not hasattr(torch.cpu, "get_capabilities") or not PROC.exists()
                    or platform.machine() != "x86_64", reason="needs torch.cpu.get_capabilities on Linux x86-64")
def test_torch_capability_report_agrees_with_the_kernel():
    flags = set(_proc_fields()["flags"].split())
    caps = torch.cpu.get_capabilities()
    for torch_name, kernel_name in (("avx2", "avx2"), ("fma3", "fma"), ("avx512_f", "avx512f"),
                                    ("avx512_bf16", "avx512_bf16"), ("amx_bf16", "amx_bf16")):
        assert bool(caps[torch_name]) == (kernel_name in flags), torch_name


def test_a_feature_counts_only_when_every_source_reporting_it_agrees():
    kernel = {"avx2", "fma", "avx512f", "avx512_bf16"}  # an old kernel: AMX not enabled
    torch_caps = {"avx2": True, "fma": True, "avx512f": True, "avx512_bf16": True, "amx_bf16": True}
    found = cpu_features(kernel, torch_caps, "x86")
    assert "amx_bf16" not in found and "avx512_bf16" in found
    assert cpu_features(kernel, None, "x86") == ("avx2", "fma", "avx512f", "avx512_bf16")
    assert cpu_features(None, {"avx2": True, "fma": False}, "x86") == ("avx2",)
    assert cpu_features(None, None, "x86") == ()


@pytest.mark.parametrize(("features", "family", "level"), [
    (("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"), "x86", "AVX-512 BF16 + AMX"),
    (("avx2", "fma", "avx512f", "avx512_bf16"), "x86", "AVX-512 BF16"),
    (("avx2", "fma", "avx512f"), "x86", "AVX-512"),
    (("sse4_2", "avx", "avx2", "fma", "f16c"), "x86", "AVX2/FMA"),
    (("sse4_2", "avx"), "x86", "AVX"),
    (("asimd", "sve", "sve2", "bf16"), "arm", "NEON + SVE2 + BF16"),
    (("asimd",), "arm", "NEON"),
])
def test_isa_level_names(features, family, level):
    assert isa_level(features, family) == level


def test_bf16_units_decide_bf16_fast():
    assert hardware._bf16_why(("avx2", "fma"), "x86")[0] is False
    assert hardware._bf16_why(("avx2", "amx_bf16"), "x86")[0] is True
    assert hardware._bf16_why(("avx512f", "avx512_bf16"), "x86")[0] is True
    assert hardware._bf16_why(("asimd", "bf16"), "arm")[0] is True


def test_bf16_on_a_cpu_without_bf16_units_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(hardware, "detect", lambda device: EPYC)
    with pytest.raises(UwavError) as err:
        resolve_precision("bf16", torch.device("cpu"), "configs/llp.yaml: train.precision")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("configs/llp.yaml: train.precision is bf16, but cpu AMD EPYC (AVX2/FMA): no bf16")
    assert "AMD EPYC (AVX2/FMA)" in message and "AVX-512 BF16" in message
    assert "use fp32" in message and "bf16_force" in message
    assert hardware.BF16_WITHOUT_UNITS in message  # the measured cost


def test_forced_bf16_and_auto_on_a_cpu_without_bf16_units(monkeypatch):
    monkeypatch.setattr(hardware, "detect", lambda device: EPYC)
    assert resolve_precision("bf16_force", "cpu", "train.precision") == "bf16"
    assert resolve_precision("auto", "cpu", "train.precision") == "fp32"
    assert resolve_precision("fp32", "cpu", "train.precision") == "fp32"


def test_bf16_and_auto_on_a_cpu_with_bf16_units(monkeypatch):
    monkeypatch.setattr(hardware, "detect", lambda device: XEON)
    assert resolve_precision("bf16", "cpu", "train.precision") == "bf16"
    assert resolve_precision("auto", "cpu", "train.precision") == "bf16"
    assert resolve_precision("fp32", "cpu", "train.precision") == "fp32"


def test_unknown_precision_names_the_setting():
    with pytest.raises(UwavError, match=r"pretrain\.precision must be one of fp32, bf16, bf16_force, auto; "
                                        r"found 'fp16'"):
        resolve_precision("fp16", "cpu", "pretrain.precision")


def test_cuda_bf16_needs_tensor_cores_and_torchs_word():
    assert cuda_bf16((8, 0), True)[0] is True
    assert cuda_bf16((9, 0), True)[0] is True
    assert cuda_bf16((7, 0), True) == (False, "no bf16 tensor cores (compute capability 7.0; they start at 8.0)")
    assert cuda_bf16((8, 6), False)[0] is False


@pytest.mark.parametrize(("capability", "native", "auto"), [((9, 0), True, "bf16"), ((7, 5), True, "fp32"),
                                                          ((8, 0), False, "fp32")])
def test_cuda_detection_with_a_faked_card(monkeypatch, capability, native, auto):
    """The CUDA reading and its precision choices, with torch.cuda's answers faked (no GPU needed)."""
    asked = {}

    def is_bf16_supported(including_emulation=True):
        asked["including_emulation"] = including_emulation
        return native or including_emulation

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "NVIDIA Fake")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "device", lambda index: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    device = torch.device("cuda", 0)
    caps = hardware.detect(device)
    assert asked["including_emulation"] is False  # emulated bf16 is not fast bf16
    assert (caps.kind, caps.name, caps.isa_level) == ("cuda", "NVIDIA Fake", f"sm_{capability[0]}{capability[1]}")
    assert resolve_precision("auto", device, "train.precision") == auto
    assert resolve_precision("bf16_force", device, "train.precision") == "bf16"
    if auto == "fp32":
        with pytest.raises(UwavError, match=r"train\.precision is bf16, but cuda NVIDIA Fake \(sm_\d\d\): no "):
            resolve_precision("bf16", device, "train.precision")
    else:
        assert resolve_precision("bf16", device, "train.precision") == "bf16"
    report = hardware.device_report(device)
    assert report["compute_capability"] == f"{capability[0]}.{capability[1]}" and "host_cpu" in report


def test_device_report_is_plain_json_of_the_detection(monkeypatch):
    report = hardware.device_report("cpu")
    assert json.loads(json.dumps(report)) == report
    caps = hardware.detect("cpu")
    assert (report["name"], report["isa_level"], report["bf16_fast"]) == (caps.name, caps.isa_level, caps.bf16_fast)
    assert report["torch"] == torch.__version__ and report["torch_threads"] == torch.get_num_threads()
    monkeypatch.setattr(hardware, "detect", lambda device: XEON)  # the report reads through the one function
    assert hardware.device_report("cpu")["isa_level"] == "AVX-512 BF16 + AMX"
