"""`fit`: schedule, determinism, resume, the ablation switches and the run files (tiny synthetic data)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from uwav.cli import main
from uwav.config import load_config, with_overrides
from uwav.data.dataset import load_parser_data
from uwav.fit import Trainer, fit
from uwav.metrics import METRIC_NAMES
from uwav.runtime import epoch_lr, resolve_device


def test_epoch_lr_matches_the_documented_schedule():
    # method.md §9.4 with E = 80, Wu = 10: e = 1 -> 0.1·max, e = 10 -> max, e = 80 -> min
    assert epoch_lr(1, 80, 10, 1e-4, 5e-6) == pytest.approx(1e-5)
    assert epoch_lr(10, 80, 10, 1e-4, 5e-6) == pytest.approx(1e-4)
    assert epoch_lr(45, 80, 10, 1e-4, 5e-6) == pytest.approx(5e-6 + 0.5 * (1e-4 - 5e-6))
    assert epoch_lr(80, 80, 10, 1e-4, 5e-6) == pytest.approx(5e-6)
    assert epoch_lr(3, 3, 3, 1e-3, 0.0) == pytest.approx(1e-3)


@pytest.fixture(scope="module")
def setup(tiny_pipeline):
    config = load_config(tiny_pipeline)
    return config, load_parser_data(config, include_test=False)


def test_sweep_style_loading_never_holds_the_test_split(setup):
    _, data = setup
    assert set(data.splits) == {"train", "val"}
    from uwav.errors import UwavError

    with pytest.raises(UwavError, match="test split is not loaded"):
        data.split("test")


def test_same_seed_gives_bit_identical_runs(setup):
    config, data = setup
    a = fit(config, data, progress=False, keep_best=False)
    b = fit(config, data, progress=False, keep_best=False)
    assert [h.losses for h in a.history] == [h.losses for h in b.history]
    assert [h.val for h in a.history] == [h.val for h in b.history]
    c = fit(with_overrides(config, {"seed": 8}), data, progress=False, keep_best=False)
    assert [h.losses for h in c.history] != [h.losses for h in a.history]


def test_resume_continues_bit_identically(setup):
    config, data = setup
    straight = fit(config, data, progress=False, keep_best=False)
    import io

    saved = io.BytesIO()

    def save_after_first_epoch(report, trainer):
        # serialise at once, as a checkpoint does: state_dict() holds live tensors
        if report.epoch == 1:
            torch.save(trainer.state_dict(), saved)

    fit(config, data, progress=False, keep_best=False, on_epoch=save_after_first_epoch)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    resumed = fit(config, data, progress=False, keep_best=False, resume_state=state)
    assert [h.losses for h in resumed.history] == [h.losses for h in straight.history]
    assert resumed.best_val == straight.best_val


@pytest.mark.parametrize(
    "overrides",
    [
        {"loss.segment_target": "hard", "loss.reweight": False, "loss.mixup": False},  # Binary
        {"loss.reweight": False, "loss.mixup": False},  # Soft
        {"loss.mixup": False},  # Soft + Re-weight
        {"loss.reweight": False},  # Soft + Mixup
        {"pseudo.inf_threshold_policy": "global_min", "pseudo.threshold_mode": "classagnostic"},
        {"train.precision": "bf16_force"},  # the bf16 code path, on any CPU (tiny model: cheap)
        {"train.train_fraction": 0.5},
    ],
)
def test_switches_train_and_report_all_metrics(setup, overrides):
    config, data = setup
    result = fit(with_overrides(config, {**overrides, "train.epochs": 2}), data, progress=False)
    assert len(result.history) == 2
    assert set(METRIC_NAMES) <= set(result.best_val)
    losses = result.history[-1].losses
    assert all(np.isfinite(v) for v in losses.values())
    if overrides.get("loss.mixup") is False:
        assert losses["mixup"] == 0.0
    else:
        assert losses["mixup"] > 0.0


def test_reweighting_changes_the_segment_loss(setup):
    config, data = setup
    trainer_off = Trainer(with_overrides(config, {"loss.reweight": False}), data, resolve_device("cpu"))
    trainer_on = Trainer(config, data, resolve_device("cpu"))
    assert trainer_off.targets.w_pos["audio"] is None
    w_pos, w_neg = trainer_on.targets.w_pos["audio"], trainer_on.targets.w_neg["audio"]
    # code scale: w_pos = (C − Σ f_c)·W, w_neg = Σ f_c, with f_c the hard-label class frequencies
    density = trainer_on.targets.hard_fraction["audio"]
    num_classes = data.num_classes
    assert w_neg == pytest.approx(density * num_classes, rel=1e-5)
    assert w_pos == pytest.approx((num_classes - w_neg) * config.loss.W, rel=1e-5)


def test_cli_train_writes_checkpoints_metrics_and_eval_format_predictions(tiny_pipeline, tmp_path):
    config = load_config(tiny_pipeline)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(tiny_pipeline), "--test", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "Type@AV" in result.output
    for name in ("best.pt", "last.pt", "history.json", "metrics.json", "predictions_test.npz"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "metrics.json").read_text())
    assert set(summary["test"]) >= set(METRIC_NAMES) and summary["tie_rule"] == config.eval.tie_rule
    # the predictions score the same through `uwav eval`
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(main, ["eval", str(run / "predictions_test.npz"), "--annotations",
                                       config.paths.annotations, "--split", "test", "--tie-rule",
                                       config.eval.tie_rule, "--json", str(out)])
    assert result.exit_code == 0, result.output
    scored = json.loads(out.read_text())
    assert scored["segment_type_at_av"] == pytest.approx(summary["test"]["segment_type_at_av"], abs=1e-4)
    assert scored["event_event_at_av"] == pytest.approx(summary["test"]["event_event_at_av"], abs=1e-4)
    # checkpoints load with weights_only
    torch.load(run / "best.pt", weights_only=True)
    # --resume after completion trains no further epoch and reproduces the same best
    result = CliRunner().invoke(main, ["train", str(tiny_pipeline), "--resume", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "metrics.json").read_text())["val"] == summary["val"]


def test_pseudo_reuses_cached_logits_until_the_checkpoint_changes(tiny_pipeline):
    from uwav.pseudo.generate import cache_is_current
    from uwav.pseudo.run import run_pseudo

    config = load_config(tiny_pipeline)
    assert cache_is_current(config)
    report = run_pseudo(config, progress=False)
    assert report["regenerated_logits"] is False
    rows = {(r["labels"], r["split"]) for r in report["rows"]}
    assert rows == {(src, s) for src in ("generator", "zero_shot") for s in ("train", "val", "test")}
    with open(config.generator_checkpoint, "ab") as fh:  # any change of the checkpoint bytes
        fh.write(b"\0")
    try:
        assert not cache_is_current(config)
    finally:
        with open(config.generator_checkpoint, "rb+") as fh:
            fh.truncate(fh.seek(0, 2) - 1)
    assert cache_is_current(config)


def test_theta_records_its_cut_rule_and_training_refuses_theta_of_another(tiny_pipeline, tmp_path):
    import shutil

    from uwav.errors import UwavError

    config = load_config(tiny_pipeline)
    meta = json.loads((config.logits_file.parent / "thresholds.json").read_text())
    assert meta["threshold_fit"] == "f1" and meta["threshold_cuts"] == "code"
    # A copy of the artefact, once as `uwav pseudo` wrote it and once as written before the rule was
    # recorded (those θ were fitted with the finite rule).
    copy = with_overrides(config, {"paths.out": str(tmp_path / "run")})
    shutil.copytree(config.logits_file.parent, copy.logits_file.parent)
    data = load_parser_data(copy, include_test=False)
    assert data.meta["threshold_cuts"] == "code"
    with pytest.raises(UwavError, match="pseudo.threshold_cuts is 'realisable' but θ was fitted with 'code'"):
        fit(with_overrides(copy, {"pseudo.threshold_cuts": "realisable"}), data, progress=False)
    del meta["threshold_cuts"]
    (copy.logits_file.parent / "thresholds.json").write_text(json.dumps(meta))
    old = load_parser_data(copy, include_test=False)
    assert old.meta["threshold_cuts"] == "finite"
    with pytest.raises(UwavError, match="rerun `uwav pseudo`"):
        fit(copy, old, progress=False)


def _reads_per_epoch(config, data, batch_size, monkeypatch) -> int:
    from device_reads import DeviceReads

    from uwav import fit as train
    from uwav import losses

    trainer = Trainer(with_overrides(config, {"train.batch_size": batch_size}), data, torch.device("cpu"),
                      keep_best=False)
    reads = DeviceReads()
    draw = losses.sample_mixup

    def host_draw(*args, **kwargs):
        # λ's seed is read from the trainer's generator, which lives on the host by construction.
        assert trainer.rng.device.type == "cpu"
        with reads.pause():
            return draw(*args, **kwargs)

    monkeypatch.setattr(train.losses, "sample_mixup", host_draw)
    with reads:
        means = trainer.train_epoch()
    assert set(means) == set(Trainer.LOSS_NAMES) and all(math.isfinite(v) for v in means.values())
    return reads.count


def test_a_training_epoch_reads_nothing_back_from_the_device_per_batch(setup, monkeypatch):
    """Each value read back per batch would stall a GPU once per step: the count must not grow with the
    number of batches (and stays at the one read of the epoch's loss sums)."""
    config, data = setup
    config = with_overrides(config, {"pseudo.inf_threshold_policy": "batch_min"})  # the −∞ θ branch too
    few = _reads_per_epoch(config, data, 64, monkeypatch)
    many = _reads_per_epoch(config, data, 8, monkeypatch)
    assert len(data.split("train")) > 8 * 4  # at least four times the batches
    assert few == many <= 1


def test_loss_means_are_the_float64_means_of_the_per_batch_losses(setup):
    config, data = setup
    trainer = Trainer(config, data, torch.device("cpu"), keep_best=False)
    rng_state, torch_state = trainer.rng.get_state(), torch.get_rng_state()
    n, bs = trainer.audio.shape[0], config.train.batch_size
    means = trainer.train_epoch()
    replay = Trainer(config, data, torch.device("cpu"), keep_best=False)
    replay.rng.set_state(rng_state)
    torch.set_rng_state(torch_state)
    order = torch.randperm(n, generator=replay.rng)
    per_batch = [replay.step(order[s:s + bs]).tolist() for s in range(0, n, bs)]
    expected = [sum(b[i] for b in per_batch) / len(per_batch) for i in range(len(Trainer.LOSS_NAMES))]
    assert [means[k] for k in Trainer.LOSS_NAMES] == pytest.approx(expected, rel=1e-12, abs=0)
