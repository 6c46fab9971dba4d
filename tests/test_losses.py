import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uwav.errors import UwavError
from uwav.losses import (
    ave_mixup_targets,
    class_balance_weights,
    mixup_loss,
    pretrain_loss,
    sample_mixup,
    segment_loss,
    video_loss,
)

D = torch.float64


def bce(p: float, y: float) -> float:
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_video_loss_clamps_and_averages():
    p = torch.tensor([[0.2, 1.5], [0.0, 0.7]], dtype=D)
    y = torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=D)
    expected = (bce(0.2, 0) + bce(1 - 1e-7, 1) + bce(1e-7, 1) + bce(0.7, 1)) / 4
    assert video_loss(p, y).item() == pytest.approx(expected, rel=1e-12)


def test_class_balance_weights_code_and_paper():
    hard = np.zeros((2, 2, 3))
    hard[0, :, 0] = 1  # class 0 in 2 of 4 segments -> f = 0.5
    hard[1, 1, 1] = 1  # class 1 in 1 of 4 -> 0.25; class 2 never
    assert class_balance_weights(hard, 0.5, "code") == pytest.approx((1.125, 0.75))
    assert class_balance_weights(torch.tensor(hard), 0.5, "paper", 3) == pytest.approx((0.375, 0.25))
    w_pos, w_neg = class_balance_weights(hard, 0.5)
    assert isinstance(w_pos, float) and isinstance(w_neg, float)


@pytest.mark.parametrize(
    "args",
    [
        (np.zeros((2, 3)), 0.5, "code", None),
        (np.zeros((1, 2, 3)), 0.5, "code", 4),
        (np.zeros((1, 2, 3)), 0.5, "both", None),
    ],
)
def test_class_balance_weights_rejects_bad_input(args):
    with pytest.raises(UwavError):
        class_balance_weights(*args)


SEG_LOGITS = [[[0.5, -1.0], [2.0, 0.0]]]  # [B=1, T=2, C=2]
SEG_TARGETS = [[[0.8, 0.0], [0.3, 0.1]]]


def test_segment_loss_unweighted():
    s = torch.tensor(SEG_LOGITS, dtype=D)
    t = torch.tensor(SEG_TARGETS, dtype=D)
    weak = torch.tensor([[1.0, 0.0]], dtype=D)
    terms = [
        bce(sig(x), y)
        for xs, ys in zip(SEG_LOGITS[0], SEG_TARGETS[0], strict=True)
        for x, y in zip(xs, ys, strict=True)
    ]
    assert segment_loss(s, t, weak).item() == pytest.approx(sum(terms) / 4, rel=1e-12)


def test_segment_loss_weights_by_video_label_not_target():
    s = torch.tensor(SEG_LOGITS, dtype=D)
    t = torch.tensor(SEG_TARGETS, dtype=D)
    weak = torch.tensor([[1.0, 0.0]], dtype=D)
    # class 0 is in the weak label (weight 2 at both segments), class 1 is not (weight 0.5), whatever t is.
    expected = (
        2.0 * bce(sig(0.5), 0.8)
        + 0.5 * bce(sig(-1.0), 0.0)
        + 2.0 * bce(sig(2.0), 0.3)
        + 0.5 * bce(sig(0.0), 0.1)
    ) / 4
    assert segment_loss(s, t, weak, 2.0, 0.5).item() == pytest.approx(expected, rel=1e-12)


def make_mixup_case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(2, 3, 4, generator=g, dtype=D, requires_grad=True)
    targets = torch.rand(2, 3, 5, generator=g, dtype=D)
    lin = torch.nn.Linear(4, 5).to(D)
    return feats, targets, lin


def test_mixup_equals_bce_against_mixed_targets():
    feats, targets, lin = make_mixup_case()
    perm = torch.tensor([3, 0, 5, 1, 2, 4])
    lam = 0.3
    f = feats.reshape(6, 4)
    t = targets.reshape(6, 5)
    logits = lin(lam * f + (1 - lam) * f[perm])
    expected = F.binary_cross_entropy_with_logits(logits, lam * t + (1 - lam) * t[perm])
    loss = mixup_loss(feats, targets, lin, lam, perm)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)
    loss.backward()  # gradients reach the (non-detached) features
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_mixup_with_lambda_one_is_plain_bce():
    feats, targets, lin = make_mixup_case(1)
    perm = torch.randperm(6)
    expected = F.binary_cross_entropy_with_logits(lin(feats), targets)
    torch.testing.assert_close(mixup_loss(feats, targets, lin, 1.0, perm), expected, rtol=1e-12, atol=0)


def test_sample_mixup_reproducible_and_valid():
    a = sample_mixup(12, 1.7, torch.Generator().manual_seed(5))
    b = sample_mixup(12, 1.7, torch.Generator().manual_seed(5))
    c = sample_mixup(12, 1.7, torch.Generator().manual_seed(6))
    assert a[0] == b[0] and torch.equal(a[1], b[1])
    assert a[0] != c[0]
    assert 0 < a[0] < 1
    assert torch.equal(torch.sort(a[1]).values, torch.arange(12))
    assert a[1].dtype == torch.long


def test_sample_mixup_alpha_zero_gives_lambda_one():
    lam, perm = sample_mixup(8, 0.0, torch.Generator().manual_seed(0))
    assert lam == 1.0 and perm.shape == (8,)


def test_sample_mixup_follows_beta_distribution():
    g = torch.Generator().manual_seed(0)
    lams = np.array([sample_mixup(4, 1.7, g)[0] for _ in range(3000)])
    # Beta(1.7, 1.7): mean 0.5, variance 1 / (4 (2*1.7 + 1)) = 0.0568
    assert abs(lams.mean() - 0.5) < 0.02
    assert abs(lams.var() - 1 / 17.6) < 0.006


def test_ave_mixup_targets_modes():
    soft = torch.tensor([0.0, 0.3, 0.5, 0.6, 1.0])
    assert torch.equal(ave_mixup_targets(soft, "soft"), soft)
    assert torch.equal(ave_mixup_targets(soft, "ceil_literal"), torch.tensor([0.0, 1, 1, 1, 1]))
    assert torch.equal(ave_mixup_targets(soft, "round"), torch.tensor([0.0, 0, 1, 1, 1]))
    np.testing.assert_array_equal(ave_mixup_targets(soft.numpy(), "round"), [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(ave_mixup_targets(soft.numpy(), "ceil_literal"), [0, 1, 1, 1, 1])
    with pytest.raises(UwavError):
        ave_mixup_targets(soft, "floor")


def test_pretrain_loss_pos_weight_one_is_bce_on_product():
    g = torch.Generator().manual_seed(0)
    z_a = torch.randn(2, 4, 3, generator=g, dtype=D) * 3
    z_v = torch.randn(2, 4, 3, generator=g, dtype=D) * 3
    y = (torch.rand(2, 4, 3, generator=g) > 0.5).to(D)
    valid = torch.ones(2, 4, dtype=torch.bool)
    expected = F.binary_cross_entropy(torch.sigmoid(z_a) * torch.sigmoid(z_v), y)
    torch.testing.assert_close(pretrain_loss(z_a, z_v, y, valid, 1.0), expected, rtol=1e-10, atol=0)


def test_pretrain_loss_hand_computed_with_mask_and_pos_weight():
    # B=1, T=3 (last segment padded), C=2. Class 0 positive at t=0; class 1 positive only at the padded t=2.
    z_a = torch.tensor([[[1.0, -1.0], [0.5, 2.0], [9.0, 9.0]]], dtype=D)
    z_v = torch.tensor([[[2.0, 0.0], [-0.5, 1.0], [-9.0, -9.0]]], dtype=D)
    y = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]], dtype=D)
    valid = torch.tensor([[True, True, False]])

    def term(a, v, lab):
        return bce(sig(a) * sig(v), lab)

    expected = (
        5 * term(1.0, 2.0, 1) + 1 * term(-1.0, 0.0, 0) + 5 * term(0.5, -0.5, 0) + 1 * term(2.0, 1.0, 0)
    ) / (2 * 2)
    assert pretrain_loss(z_a, z_v, y, valid, 5.0).item() == pytest.approx(expected, rel=1e-12)
    # Padded positions contribute nothing, whatever their logits.
    z_a2 = z_a.clone()
    z_a2[0, 2] = -50.0
    assert pretrain_loss(z_a2, z_v, y, valid, 5.0).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pretrain_loss_extreme_logits_finite(dtype):
    z = torch.tensor([50.0, -50.0, 200.0, -200.0], dtype=dtype)
    z_a, z_v = torch.meshgrid(z, z, indexing="ij")
    z_a = z_a.reshape(1, 16, 1).clone().requires_grad_(True)
    z_v = z_v.reshape(1, 16, 1).clone().requires_grad_(True)
    for label in (0.0, 1.0):
        y = torch.full((1, 16, 1), label, dtype=dtype)
        loss = pretrain_loss(z_a, z_v, y, torch.ones(1, 16, dtype=torch.bool), 5.0)
        grads = torch.autograd.grad(loss, (z_a, z_v))
        assert torch.isfinite(loss)
        assert all(torch.isfinite(gr).all() for gr in grads)


def test_pretrain_loss_log_space_accuracy():
    # y = 0 with both logits at 50: 1 - p = 2e^-50 - e^-100, so -log(1 - p) ≈ 50 - ln 2, which a float
    # product of probabilities cannot resolve (p rounds to 1).
    z = torch.full((1, 1, 1), 50.0)
    loss = pretrain_loss(z, z, torch.zeros(1, 1, 1), torch.ones(1, 1, dtype=torch.bool), 1.0)
    assert loss.item() == pytest.approx(50 - math.log(2), rel=1e-6)
    # y = 1 with both logits at -60: log p = -120, floored at -100 like the reference.
    z = torch.full((1, 1, 1), -60.0)
    loss = pretrain_loss(z, z, torch.ones(1, 1, 1), torch.ones(1, 1, dtype=torch.bool), 1.0)
    assert loss.item() == pytest.approx(100.0)


def test_untied_beta_parameters_shift_the_mixup_weight():
    from uwav.losses import sample_mixup

    gen = torch.Generator().manual_seed(0)
    tied = [sample_mixup(4, 2.0, gen)[0] for _ in range(2000)]
    gen = torch.Generator().manual_seed(0)
    untied = [sample_mixup(4, 2.0, gen, beta=6.0)[0] for _ in range(2000)]
    assert abs(np.mean(tied) - 0.5) < 0.02  # Beta(2, 2): mean 1/2
    assert abs(np.mean(untied) - 0.25) < 0.02  # Beta(2, 6): mean 2/8
    gen = torch.Generator().manual_seed(0)
    same = [sample_mixup(4, 2.0, gen, beta=0.0)[0] for _ in range(5)]
    assert same == tied[:5]  # beta 0 means tied


def test_pretrain_loss_second_weight_weighs_each_video_and_reduces_to_batch_normaliser():
    # B=2, T=2, C=1; video 1 has one valid second. Per-video sums of w·BCE, each scaled by its weight.
    z_a = torch.tensor([[[1.0], [-2.0]], [[0.5], [3.0]]], dtype=D)
    z_v = torch.tensor([[[0.0], [1.0]], [[2.0], [-3.0]]], dtype=D)
    y = torch.tensor([[[1.0], [0.0]], [[0.0], [1.0]]], dtype=D)
    valid = torch.tensor([[True, True], [True, False]])
    video0 = 5 * bce(sig(1.0) * sig(0.0), 1) + 5 * bce(sig(-2.0) * sig(1.0), 0)  # class positive: w = 5
    video1 = 1 * bce(sig(0.5) * sig(2.0), 0)  # its positive second is padding: w = 1
    weights = torch.tensor([0.25, 2.0], dtype=D)
    got = pretrain_loss(z_a, z_v, y, valid, 5.0, second_weight=weights).item()
    assert got == pytest.approx(0.25 * video0 + 2.0 * video1, rel=1e-12)
    # 1 / (valid seconds of the batch) for every video is the official per-batch normalisation.
    batch = torch.full((2,), 1 / 3, dtype=D)
    assert pretrain_loss(z_a, z_v, y, valid, 5.0, second_weight=batch).item() == pytest.approx(
        pretrain_loss(z_a, z_v, y, valid, 5.0).item(), rel=1e-12)
