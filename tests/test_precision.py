"""`train.precision` / `pretrain.precision` wired into training: resolved once, refused before any work,
recorded in what a run writes. The hardware is faked through `uwav.hardware.detect` (tests/test_hardware.py
covers the detection itself)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from uwav import hardware
from uwav.cli import main
from uwav.config import load_config, with_overrides
from uwav.data import dataset
from uwav.errors import UwavError
from uwav.fit import fit

NO_UNITS = hardware.DeviceCapabilities(kind="cpu", name="AMD EPYC", vendor="AuthenticAMD", isa_level="AVX2/FMA",
                                       bf16_fast=False, bf16_why="no bf16 matrix units (AVX-512 BF16 or AMX-BF16)")
WITH_UNITS = dataclasses.replace(NO_UNITS, name="Intel Xeon", isa_level="AVX-512 BF16 + AMX", bf16_fast=True,
                                 bf16_why="bf16 matrix units: avx512_bf16, amx_bf16")


def fake_cpu(monkeypatch, caps: hardware.DeviceCapabilities) -> None:
    monkeypatch.setattr(hardware, "detect", lambda device: caps)


def never(what: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} ran although the precision should have been refused first")
    return fail


@pytest.fixture(scope="module")
def setup(tiny_pipeline):
    config = with_overrides(load_config(tiny_pipeline), {"train.epochs": 1, "train.warmup_epochs": 0})
    return config, dataset.load_parser_data(config, include_test=False)


def test_fit_refuses_bf16_without_bf16_units_before_building_anything(setup, monkeypatch):
    config, data = setup
    fake_cpu(monkeypatch, NO_UNITS)
    import uwav.fit

    monkeypatch.setattr(uwav.fit, "build_parser", never("building the parser"))
    monkeypatch.setattr(uwav.fit, "prepare_targets", never("preparing the pseudo labels"))
    with pytest.raises(UwavError) as err:
        fit(with_overrides(config, {"train.precision": "bf16"}), data, progress=False)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("train.precision is bf16, but cpu AMD EPYC (AVX2/FMA)")


def test_forced_bf16_trains_in_bf16_and_auto_follows_the_hardware(setup, monkeypatch):
    config, data = setup
    fake_cpu(monkeypatch, NO_UNITS)
    fp32 = fit(config, data, progress=False, keep_best=False)
    forced = fit(with_overrides(config, {"train.precision": "bf16_force"}), data, progress=False, keep_best=False)
    auto = fit(with_overrides(config, {"train.precision": "auto"}), data, progress=False, keep_best=False)
    assert (fp32.precision, forced.precision, auto.precision) == ("fp32", "bf16", "fp32")
    # bf16 really ran (its rounding moves the losses); auto here is fp32 to the bit
    assert forced.history[0].losses != fp32.history[0].losses
    assert auto.history[0].losses == fp32.history[0].losses
    fake_cpu(monkeypatch, WITH_UNITS)
    auto_fast = fit(with_overrides(config, {"train.precision": "auto"}), data, progress=False, keep_best=False)
    assert auto_fast.precision == "bf16" and auto_fast.history[0].losses == forced.history[0].losses


def test_cli_train_refuses_bf16_in_one_line_before_loading_data(tiny_pipeline, monkeypatch):
    fake_cpu(monkeypatch, NO_UNITS)
    monkeypatch.setattr(dataset, "load_parser_data", never("loading the parser data"))
    result = CliRunner().invoke(main, ["train", str(tiny_pipeline), "--set", "train.precision=bf16"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"{tiny_pipeline}: train.precision is bf16, but cpu AMD EPYC" in lines[0]
    assert "bf16_force" in lines[0] and "use fp32" in lines[0]


def test_cli_train_records_the_resolved_precision(tiny_pipeline, tmp_path, monkeypatch):
    fake_cpu(monkeypatch, NO_UNITS)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(tiny_pipeline), "--out", str(run), "--set", "train.epochs=1",
                                       "--set", "train.warmup_epochs=0", "--set", "train.precision=auto"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "metrics.json").read_text())["precision"] == "fp32"
    assert "precision: fp32" in result.output


def test_pretrain_refuses_bf16_before_reading_unav(tiny_pipeline, tmp_path, monkeypatch):
    from uwav import pretrain as stage

    fake_cpu(monkeypatch, NO_UNITS)
    monkeypatch.setattr(stage, "load_unav_data", never("loading UnAV"))
    config = with_overrides(load_config(tiny_pipeline), {"paths.out": str(tmp_path), "pretrain.precision": "bf16"})
    with pytest.raises(UwavError, match=r"^pretrain\.precision is bf16, but cpu AMD EPYC"):
        stage.pretrain(config, progress=False)
    result = CliRunner().invoke(main, ["pretrain", str(tiny_pipeline), "--set", f"paths.out={tmp_path}",
                                       "--set", "pretrain.precision=bf16"])
    assert result.exit_code == 2 and f"{tiny_pipeline}: pretrain.precision is bf16" in result.output


def test_pretrain_forced_bf16_runs_and_says_so(tiny_pipeline, tmp_path, monkeypatch):
    from uwav.pretrain import pretrain

    fake_cpu(monkeypatch, NO_UNITS)
    config = with_overrides(load_config(tiny_pipeline), {"paths.out": str(tmp_path), "pretrain.epochs": 1,
                                                         "pretrain.warmup_epochs": 0})
    assert pretrain(config, progress=False).precision == "fp32"
    assert pretrain(with_overrides(config, {"pretrain.precision": "bf16_force"}), progress=False).precision == "bf16"


def test_a_local_sweep_refuses_bf16_before_loading_data_or_starting_ray(tmp_path, monkeypatch):
    from sweep_fixtures import write_sweep

    from uwav.sweep import tuner
    from uwav.sweep.spec import load_sweep

    fake_cpu(monkeypatch, NO_UNITS)
    monkeypatch.setattr(tuner, "load_parser_data", never("loading the sweep's data"))
    monkeypatch.setattr(tuner, "start_ray", never("starting Ray"))
    spec = load_sweep(write_sweep(tmp_path))
    spec = dataclasses.replace(spec, base=with_overrides(spec.base, {"train.precision": "bf16"}))
    with pytest.raises(UwavError, match=r"base\.yaml: train\.precision is bf16, but cpu AMD EPYC"):
        tuner.run_sweep(spec)
