"""θ fitting, hard and soft pseudo labels, on cases computed by hand (method.md §4-§5)."""

import numpy as np
import torch

from uwav.pseudo import (
    batch_targets,
    fill_infinite_thresholds,
    fit_thresholds,
    hard_labels,
    shift_thresholds,
    zero_shot_scores,
)


def _one_class(z, gt, weak):
    """Wrap per-video rows of one class into [N, T, 1] / [N, 1] arrays."""
    z = np.asarray(z, dtype=np.float32)[:, :, None]
    gt = np.asarray(gt, dtype=bool)[:, :, None]
    return z, np.asarray(weak, dtype=np.float32)[:, None], gt


def test_threshold_fit_toy_case_by_hand():
    # sorted values 1..6 with labels 0 0 1 0 1 1, P = 3: F_i = 6/9, 6/8, 6/7, 4/6, 4/5, 2/4 -> i = 2,
    # θ = (3 + 2) / 2.
    z, weak, gt = _one_class([[1, 2, 3], [4, 5, 6]], [[0, 0, 1], [0, 1, 1]], [1, 1])
    theta = fit_thresholds(z, weak, gt)
    assert theta.tolist() == [2.5]
    assert hard_labels(z, theta, weak)[:, :, 0].tolist() == [[0, 0, 1], [1, 1, 1]]


def test_videos_without_the_class_never_count_as_predicted():
    # A third video lacks the class: its values become −∞, its GT positive still counts in P
    # (P = 4), which lowers every F equally and leaves the argmax where it was.
    z, weak, gt = _one_class([[1, 2, 3], [4, 5, 6], [9, 9, 9]], [[0, 0, 1], [0, 1, 1], [1, 0, 0]], [1, 1, 0])
    assert fit_thresholds(z, weak, gt).tolist() == [2.5]


def test_minus_infinity_when_every_weak_segment_is_positive():
    z, weak, gt = _one_class([[1, 2], [3, 0.5], [7, 7]], [[1, 1], [1, 1], [0, 0]], [1, 1, 0])
    theta = fit_thresholds(z, weak, gt)
    assert np.isneginf(theta[0])
    # hard labels are then the weak label on every segment
    assert hard_labels(z, theta, weak)[:, :, 0].tolist() == [[1, 1], [1, 1], [0, 0]]
    # offsets keep −∞
    assert np.isneginf(shift_thresholds(theta, 2.0)[0])


def test_first_maximiser_wins_on_ties():
    # values 1, 2 labels 1, 0 -> F_0 = 2/3 (predict both), F_1 = 0 -> θ = −∞ (first cut);
    # values 1, 2 labels 0, 1 -> F_0 = 2/3, F_1 = 1 -> θ = 1.5
    z, weak, gt = _one_class([[1, 2]], [[0, 1]], [1])
    assert fit_thresholds(z, weak, gt).tolist() == [1.5]


def test_classagnostic_pools_all_classes():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20, 10, 4)).astype(np.float32)
    weak = np.ones((20, 4), dtype=np.float32)
    gt = z > 0.3
    per_class = fit_thresholds(z, weak, gt, "classwise")
    pooled = fit_thresholds(z, weak, gt, "classagnostic")
    assert np.all(pooled == pooled[0])
    assert np.all((per_class > 0.0) & (per_class < 0.6)) and 0.0 < pooled[0] < 0.6


def test_soft_labels_match_the_formula_and_respect_weak_labels():
    z = torch.tensor([[[0.0, 4.0], [2.0, -2.0]]])  # [1, 2, 2]
    weak = torch.tensor([[1.0, 0.0]])
    theta = torch.tensor([1.0, 0.0])
    soft, hard = batch_targets(z, theta, weak, temperature=2.0)
    expected0 = 1 / (1 + np.exp(-(np.array([0.0, 2.0]) - 1.0) / 2.0))
    np.testing.assert_allclose(soft[0, :, 0].numpy(), expected0, rtol=1e-6)
    assert torch.all(soft[0, :, 1] == 0) and torch.all(hard[0, :, 1] == 0)  # outside the weak label: exactly 0
    assert hard[0, :, 0].tolist() == [0.0, 1.0]  # strict z > θ
    # the same hard labels from numpy, through the one implementation
    assert hard_labels(z.numpy(), theta.numpy(), weak.numpy()).astype(np.float32).tolist() == hard.tolist()


def test_infinite_threshold_policies():
    z = np.array([[[1.0, 5.0], [3.0, 2.0]], [[-4.0, 0.0], [2.0, 9.0]]], dtype=np.float32)
    theta = np.array([-np.inf, 1.0], dtype=np.float32)
    filled = fill_infinite_thresholds(theta, z)
    assert filled.tolist() == [-5.0, 1.0]  # global minimum of class 0 (−4) minus 1
    # the per-batch (code) policy does the same on the batch's own logits, inside training
    weak = torch.ones(2, 2)
    soft, hard = batch_targets(torch.from_numpy(z[:1]), torch.from_numpy(theta), weak[:1], 1.0)
    np.testing.assert_allclose(soft[0, :, 0].numpy(), 1 / (1 + np.exp(-(np.array([1.0, 3.0]) - 0.0))), rtol=1e-6)
    assert hard[0, :, 0].tolist() == [1.0, 1.0]


def test_zero_shot_scores_are_scaled_cosines():
    f = np.array([[[3.0, 4.0]]], dtype=np.float32)
    t = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    np.testing.assert_allclose(zero_shot_scores(f, t, 100.0)[0, 0], [60.0, 80.0], rtol=1e-6)
