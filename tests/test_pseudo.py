"""θ fitting, hard and soft pseudo labels, on cases computed by hand (method.md §4-§5)."""

import numpy as np
import pytest
import torch

from uwav.errors import UwavError
from uwav.pseudo import (
    THRESHOLD_CUTS,
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


def test_videos_without_the_class_count_in_p_but_are_never_predicted_by_theta():
    # A third video lacks the class: its values become −∞, its GT positive still counts in P (P = 4),
    # which lowers every finite cut's F equally and leaves the argmax where it was (F = 2·3/(4 + 4) = 3/4).
    # code also scores the cuts inside the −∞ block; the best of them predicts all nine items,
    # F = 2·4/(4 + 9) = 8/13 < 3/4, so every rule gives the same θ.
    z, weak, gt = _one_class([[1, 2, 3], [4, 5, 6], [9, 9, 9]], [[0, 0, 1], [0, 1, 1], [1, 0, 0]], [1, 1, 0])
    for cuts in THRESHOLD_CUTS:
        assert fit_thresholds(z, weak, gt, cuts=cuts).tolist() == [2.5]


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


# ---- which cuts the f1 fit scores (pseudo.threshold_cuts) -------------------------------------------------


def _official_theta(values: torch.Tensor, labels: torch.Tensor) -> float:
    """The official fit's formula, written out here in torch float32 with a stable sort.

    Cut i of the ascending values predicts items i … n−1: p = TP/(n − i), r = TP/P, F = 2pr/max(p + r, 1e-12),
    the first maximum of F wins and θ is the midpoint of v_i and v_{i−1} (v_{−1} = −∞).
    """
    v, order = torch.sort(values, stable=True)
    lab = labels[order].to(torch.float32)
    tp = torch.flip(torch.cumsum(torch.flip(lab, (0,)), 0), (0,))
    predicted = float(len(v)) - torch.arange(len(v), dtype=torch.float32)
    precision, recall = tp / predicted, tp / tp[0].item()
    score = 2 * precision * recall / torch.clamp(precision + recall, min=1e-12)
    best = int(torch.argmax(score))
    below = v[best - 1] if best > 0 else torch.tensor(-np.inf, dtype=torch.float32)
    return float((v[best] + below) / 2)


def test_code_cuts_break_exact_f1_ties_as_float32_does():
    # Values 1 … 21 (three videos of seven segments), positives at 7, 13 and 14, P = 3.
    # θ = 6.5: TP 3 of 15 predicted, F1 = 2·3/(3 + 15) = 1/3; θ = 12.5: TP 2 of 9, F1 = 2·2/(3 + 9) = 1/3.
    # Exactly equal, so the float64 first maximiser (finite) keeps 6.5; in float32, 2pr/(p + r) rounds
    # the second (p = 2/9, r = 2/3) above the first (p = 1/5, r = 1), so the official argmax takes 12.5.
    values = np.arange(1, 22, dtype=np.float32)
    labels = np.isin(values, [7, 13, 14])
    z, weak, gt = _one_class(values.reshape(3, 7), labels.reshape(3, 7), [1, 1, 1])
    f32 = {}
    for cut, tp, predicted in ((6, 3, 15), (12, 2, 9)):
        p, r = np.float32(tp) / np.float32(predicted), np.float32(tp) / np.float32(3)
        f32[cut] = np.float32(2) * p * r / (p + r)
    assert f32[12] > f32[6]  # the tie the two rules break differently
    assert fit_thresholds(z, weak, gt, cuts="code").tolist() == [12.5]
    assert fit_thresholds(z, weak, gt, cuts="finite").tolist() == [6.5]
    assert fit_thresholds(z, weak, gt, cuts="realisable").tolist() == [6.5]
    assert _official_theta(torch.from_numpy(values), torch.from_numpy(labels)) == 12.5


def test_a_cut_inside_the_minus_infinity_block_gives_minus_infinity_only_under_code():
    # Video 1 holds the class (logits 1, 2; GT 0, 1); video 2 does not, yet its dense GT marks both
    # segments. Pooled: −∞ (1), −∞ (1), 1 (0), 2 (1), P = 3. Cut 0 (inside the −∞ block) predicts all four:
    # F1 = 2·3/(3 + 4) = 6/7, above every finite cut (θ = −∞ over the finite items: 2·1/(3 + 2) = 2/5;
    # θ = 1.5: 2·1/(3 + 1) = 1/2).
    z, weak, gt = _one_class([[1, 2], [5, 5]], [[0, 1], [1, 1]], [1, 0])
    assert np.isneginf(fit_thresholds(z, weak, gt, cuts="code")[0])
    assert fit_thresholds(z, weak, gt, cuts="finite").tolist() == [1.5]
    assert fit_thresholds(z, weak, gt, cuts="realisable").tolist() == [1.5]
    # θ = −∞ makes every segment of video 1 positive, θ = 1.5 only its second
    assert hard_labels(z, fit_thresholds(z, weak, gt, cuts="code"), weak)[0, :, 0].tolist() == [1, 1]
    assert hard_labels(z, fit_thresholds(z, weak, gt, cuts="realisable"), weak)[0, :, 0].tolist() == [0, 1]


def test_cuts_inside_tied_logits():
    # A still-image video: four identical logits 5 (GT 0 0 1 1), and a video with logits −7, −7, 1, 2 and
    # no positive. Pooled (stable): −7, −7, 1, 2 (all 0), then 5 5 5 5 in segment order (0 0 1 1), P = 2.
    # code: the cut after the first two 5s predicts exactly the two positives, F1 = 2·2/(2 + 2) = 1, and
    # its θ is the tied value 5, which predicts none of the block. realisable scores only the cuts that
    # z > θ can make: θ = −∞, −3, 1.5, 3.5 (F1 = 2·2/(2 + n) for n = 8, 6, 5, 4 predicted) -> 3.5.
    z, weak, gt = _one_class([[-7, -7, 1, 2], [5, 5, 5, 5]], [[0, 0, 0, 0], [0, 0, 1, 1]], [1, 1])
    assert fit_thresholds(z, weak, gt, cuts="code").tolist() == [5.0]
    assert fit_thresholds(z, weak, gt, cuts="finite").tolist() == [5.0]
    assert fit_thresholds(z, weak, gt, cuts="realisable").tolist() == [3.5]
    assert hard_labels(z, np.array([5.0], np.float32), weak)[1, :, 0].tolist() == [0, 0, 0, 0]
    # The same video with GT 1 1 0 0: now every cut inside the block predicts the negatives first, so code
    # stops at the block's edge. The tied logits cannot tell these two videos apart; realisable is unmoved.
    gt_swapped = gt.copy()
    gt_swapped[1, :, 0] = [True, True, False, False]
    assert fit_thresholds(z, weak, gt_swapped, cuts="code").tolist() == [3.5]
    assert fit_thresholds(z, weak, gt_swapped, cuts="realisable").tolist() == [3.5]


def _random_case(rng, videos=30, segments=10, classes=4):
    """Logits rounded to a coarse grid (ties), still-image videos (ten equal logits), weak labels that
    miss some dense-GT positives (GT inside the −∞ block) and one class absent from the dense GT."""
    z = np.round(rng.normal(size=(videos, segments, classes)) * 2) / 2
    still = rng.random(videos) < 0.3
    z[still] = z[still, :1]
    weak = (rng.random((videos, classes)) < 0.5).astype(np.float32)
    gt = (rng.random((videos, segments, classes)) < np.where(weak[:, None, :] > 0, 0.5, 0.05))
    gt[:, :, classes - 1] = False
    return z.astype(np.float32), weak, gt


def test_code_cuts_match_the_official_formula_on_random_logits():
    rng = np.random.default_rng(3)
    departures = 0
    for _ in range(20):
        z, weak, gt = _random_case(rng)
        values = torch.from_numpy(np.where(weak[:, None, :] > 0, z, -np.inf).astype(np.float32))
        labels = torch.from_numpy(gt)
        # The code pools a class's videos × segments, and all classes class-major for classagnostic.
        expected = [_official_theta(values[:, :, c].reshape(-1), labels[:, :, c].reshape(-1))
                    for c in range(z.shape[2])]
        theta = fit_thresholds(z, weak, gt, "classwise", cuts="code")
        assert theta.tolist() == expected
        pooled = _official_theta(values.permute(2, 0, 1).reshape(-1), labels.permute(2, 0, 1).reshape(-1))
        assert fit_thresholds(z, weak, gt, "classagnostic", cuts="code").tolist() == [pooled] * z.shape[2]
        assert np.isneginf(theta[-1])  # P = 0: F is NaN everywhere, the first cut wins
        departures += int((theta != fit_thresholds(z, weak, gt, "classwise", cuts="realisable")).sum())
    assert departures > 0  # the cases do reach −∞-block and tie-block cuts, where the rules part


def test_realisable_cuts_maximise_the_f1_of_the_labels_they_produce():
    # By brute force: every θ that z > θ can distinguish (−∞ and the midpoints of distinct logits),
    # scored by the F1 of its actual hard labels; realisable must return the lowest best one.
    rng = np.random.default_rng(4)
    for _ in range(10):
        z, weak, gt = _random_case(rng)
        theta = fit_thresholds(z, weak, gt, "classwise", cuts="realisable")
        for c in range(z.shape[2]):
            finite = np.unique(z[:, :, c][weak[:, c] > 0])
            candidates = [-np.inf, *((finite[:-1] + finite[1:]) / np.float32(2)).tolist()]
            scores = []
            for t in candidates:
                pred = hard_labels(z[:, :, c:c + 1], np.array([t], np.float32), weak[:, c:c + 1])[:, :, 0] > 0
                tp = float((pred & gt[:, :, c]).sum())
                scores.append(2 * tp / (gt[:, :, c].sum() + pred.sum()))
            assert theta[c] == np.float32(candidates[int(np.argmax(scores))])


def test_unknown_cut_rule_is_refused_and_the_config_offers_exactly_the_rules():
    from uwav.config import PseudoConfig, field_kind

    z, weak, gt = _one_class([[1, 2]], [[0, 1]], [1])
    with pytest.raises(UwavError, match="threshold cuts must be one of code, finite, realisable"):
        fit_thresholds(z, weak, gt, cuts="all")
    assert field_kind("pseudo.threshold_cuts")[1].metadata["choices"] == THRESHOLD_CUTS
    assert PseudoConfig().threshold_cuts == "code"
