"""The CUDA branches the CPU suite cannot reach. Skipped without a GPU (CI has none); run on a GPU with
`python -m pytest tests/test_cuda.py` (bench/gpu_session.sh does, before the GPU benchmarks)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from uwav.config import ParserConfig, load_config, with_overrides
from uwav.data.dataset import load_parser_data
from uwav.fit import Trainer, predict
from uwav.models.attention import Attention
from uwav.models.dropout import FastDropout
from uwav.models.han import HAN

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def setup(tiny_pipeline):
    config = with_overrides(load_config(tiny_pipeline), {"train.device": "cuda"})
    return config, load_parser_data(config, include_test=False)


def test_attention_in_eval_matches_the_cpu_path():
    torch.manual_seed(0)
    att = Attention(64, 4, dropout=0.1).eval()
    q, k = torch.randn(3, 10, 64), torch.randn(3, 10, 64)
    cpu = att(q), att(q, k)
    gpu = att.to(CUDA)(q.to(CUDA)), att(q.to(CUDA), k.to(CUDA))
    for c, g in zip(cpu, gpu, strict=True):
        torch.testing.assert_close(g.cpu(), c, rtol=1e-4, atol=1e-5)


def test_attention_dropout_is_live_in_training_on_the_fused_kernel():
    torch.manual_seed(0)
    att = Attention(64, 4, dropout=0.5).to(CUDA).train()
    x = torch.randn(3, 10, 64, device=CUDA, requires_grad=True)
    a, b = att(x), att(x)
    assert not torch.equal(a, b)  # two dropout masks
    (a.sum() + b.sum()).backward()
    assert torch.isfinite(x.grad).all()
    att.eval()
    torch.testing.assert_close(att(x), att(x))


def test_fast_dropout_off_the_cpu_is_unbiased_dropout():
    drop = FastDropout(0.1).train()
    y = drop(torch.ones(1_000_000, device=CUDA))
    kept = (y > 0).float().mean().item()
    assert abs(kept - 0.9) < 0.003
    assert torch.allclose(y[y > 0], torch.tensor(1 / 0.9, device=CUDA))


def test_a_cpu_trained_parser_predicts_the_same_on_the_gpu(setup):
    config, data = setup
    torch.manual_seed(0)
    train = data.split("train")
    model = HAN(ParserConfig(d_model=32, layers=2, heads=2, ff=64), audio_dim=train.audio.shape[-1],
                visual_dim=train.visual.shape[-1])
    val = data.split("val")
    cpu = predict(model, val, torch.device("cpu"))
    gpu = predict(model.to(CUDA), val, CUDA)
    for key in ("audio", "visual", "video"):
        np.testing.assert_allclose(gpu[key], cpu[key], rtol=1e-4, atol=1e-5)


def test_a_training_step_never_waits_for_the_gpu(setup):
    """No host read per batch: with CUDA's sync debug mode set to error, any synchronising call raises."""
    config, data = setup
    trainer = Trainer(with_overrides(config, {"train.batch_size": 8}), data, CUDA, keep_best=False)
    order = torch.randperm(trainer.audio.shape[0]).to(CUDA)
    trainer.step(order[:8])  # first call: library handles, workspaces, lazy initialisation
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for start in (8, 16, 24):
            losses = trainer.step(order[start:start + 8])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert losses.device.type == "cuda" and torch.isfinite(losses).all()


def test_fit_on_the_gpu_trains_evaluates_and_resumes_its_rng(setup):
    config, data = setup
    trainer = Trainer(config, data, CUDA, keep_best=False)
    first = trainer.run_epoch()
    assert np.isfinite(first.objective) and all(np.isfinite(v) for v in first.losses.values())
    saved = io.BytesIO()
    torch.save(trainer.state_dict(), saved)  # the state's tensors are live: serialise before training on
    expected = trainer.run_epoch()
    saved.seek(0)
    state = torch.load(saved, map_location="cpu", weights_only=True)
    assert state["cuda_rng"] is not None
    resumed = Trainer(config, data, CUDA, keep_best=False)
    resumed.load_state_dict(state)
    again = resumed.run_epoch()
    # Same dropout masks and data order; the GPU's reductions need not be bit-identical.
    assert again.losses == pytest.approx(expected.losses, rel=1e-3)


def test_pretraining_runs_on_the_gpu(tiny_pipeline, tmp_path):
    from uwav.pretrain import pretrain

    config = with_overrides(load_config(tiny_pipeline), {"paths.out": str(tmp_path / "run"),
                                                         "train.device": "cuda", "pretrain.epochs": 1})
    result = pretrain(config, progress=False)
    assert result.checkpoint.is_file() and np.isfinite(result.history[0].loss)
