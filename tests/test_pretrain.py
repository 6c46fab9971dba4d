"""Generator pre-training: length bucketing gives the same losses as padding to the longest video."""

from __future__ import annotations

import numpy as np
import torch
from click.testing import CliRunner

from uwav.checkpoints import load_generator
from uwav.cli import main
from uwav.config import GeneratorConfig, load_config
from uwav.losses import pretrain_loss
from uwav.models.generator import Generator
from uwav.pretrain import batch_tensors, length_batches, load_unav_data, pretrain


def test_length_batches_cover_every_video_once_and_bucket_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 61, size=500)
    plain = length_batches(lengths, 16, np.random.default_rng(1), bucket=False)
    bucketed = length_batches(lengths, 16, np.random.default_rng(1), bucket=True)
    for batches in (plain, bucketed):
        assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    spread = lambda bs: np.mean([np.ptp(lengths[b]) for b in bs])  # noqa: E731
    assert spread(bucketed) < 0.25 * spread(plain)
    # padded cells per batch: what bucketing saves
    waste = lambda bs, full: sum((full or lengths[b].max()) * b.size - lengths[b].sum() for b in bs)  # noqa: E731
    assert waste(bucketed, None) < 0.2 * waste(plain, 60)


def test_bucketed_batch_has_identical_loss_to_full_padding(tiny_pipeline):
    config = load_config(tiny_pipeline)
    data = load_unav_data(config)
    split = data.train
    torch.manual_seed(0)
    model = Generator(GeneratorConfig(hidden=32, layers=2, heads=2, ff=64, dropout=0.0)).eval()
    ta, tv = torch.from_numpy(data.text_audio), torch.from_numpy(data.text_visual)
    idx = np.argsort(split.lengths)[:8]  # the shortest videos: the most padding when not bucketed
    losses = {}
    for bucket in (True, False):
        clap, clip, labels, valid, mask = batch_tensors(split, idx, bucket, torch.device("cpu"))
        assert mask is valid  # these lengths differ, so even the bucketed batch has padding
        with torch.no_grad():
            z_a, z_v = model(clap, clip, ta, tv, mask)
        losses[bucket] = float(pretrain_loss(z_a, z_v, labels, valid, 5.0))
        assert clap.shape[1] == (split.lengths[idx].max() if bucket else split.clap.shape[1])
    assert abs(losses[True] - losses[False]) < 1e-6 * max(1.0, abs(losses[False]))


def test_pretrain_cli_writes_a_loadable_checkpoint(tiny_pipeline, tmp_path):
    out = tmp_path / "gen"
    result = CliRunner().invoke(main, ["pretrain", str(tiny_pipeline), "--set", f"paths.out={out}",
                                       "--set", "pretrain.epochs=1", "--set", "pretrain.warmup_epochs=0"])
    assert result.exit_code == 0, result.output
    assert "best UnAV-val Seg-av" in result.output
    model = load_generator(out / "generator" / "best.pt")
    assert not model.training
    ckpt = torch.load(out / "generator" / "best.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and 0.0 <= ckpt["val_segment_audio_visual"] <= 100.0


def _pretrain_reads(config, batch_size: int) -> int:
    from device_reads import DeviceReads

    from uwav.config import with_overrides

    reads = DeviceReads()
    with reads:
        pretrain(with_overrides(config, {"pretrain.epochs": 1, "pretrain.batch_size": batch_size}), progress=False)
    return reads.count


def test_pretraining_reads_nothing_back_from_the_device_per_batch(tiny_pipeline, tmp_path):
    """A read per batch (the loss, a padding check) would stall a GPU every step: the count must not
    grow with the number of batches."""
    from uwav.config import with_overrides

    config = with_overrides(load_config(tiny_pipeline), {"paths.out": str(tmp_path / "run")})  # own checkpoint
    n = len(load_unav_data(config).train.lengths)
    assert n > 4 * 4
    assert _pretrain_reads(config, 4) == _pretrain_reads(config, 64) <= 1


def test_a_batch_without_padding_gives_the_generator_no_mask(tiny_pipeline):
    split = load_unav_data(load_config(tiny_pipeline)).train
    same = np.flatnonzero(split.lengths == np.bincount(split.lengths).argmax())[:4]
    mixed = np.array([np.argmin(split.lengths), np.argmax(split.lengths)])
    assert split.lengths[mixed[0]] < split.lengths[mixed[1]]
    assert batch_tensors(split, same, True, torch.device("cpu")).mask is None
    padded = batch_tensors(split, mixed, True, torch.device("cpu"))
    assert padded.mask is padded.valid and not bool(padded.valid.all())
    assert batch_tensors(split, same, False, torch.device("cpu")).mask is not None  # padded to the longest
