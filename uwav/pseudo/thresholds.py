"""Class-wise thresholds θ fitted on val (method.md §4), their offsets and the −∞ replacement (§5, §14).

Pure functions of cached logits z [N, T, C], weak labels y [N, C] and dense GT. θ may be −∞ ("every
segment of every video with this class is positive"); it stays −∞ under offsets and is replaced only
where a soft label needs a finite value (`fill_infinite_thresholds`, uwav.pseudo.targets).
"""

from __future__ import annotations

import numpy as np

from uwav.errors import UwavError

# VALOR's hand-set zero-shot thresholds in LLP class order (method.md §10.1), for real VALOR-style
# CLIP/CLAP features only: they are meaningless on features from another extractor.
VALOR_THRESHOLDS_CLIP = np.array([20, 15, 18, 14, 15, 18, 18, 15, 15, 15, 15, 18, 15, 15, 15, 15, 15, 15, 15,
                                  16, 14, 15, 15, 15, 18], dtype=np.float32)
VALOR_THRESHOLDS_CLAP = np.array([0, 0, 1, 4, 6, -2, 4, 4, 2, 2, 2, 1, 2, 3, 0, 2, 2, 2, 0, 2, -1, 2, 3, 3, 0],
                                 dtype=np.float32)

# Which cuts of the sorted val logits the f1 fit scores, and how it scores them (`pseudo.threshold_cuts`).
THRESHOLD_CUTS = ("code", "finite", "realisable")


def _code_cut(values: np.ndarray, labels: np.ndarray) -> float:
    """θ by the official fit (`get_best_f_threshold` of the UWAV code), computed as it computes it.

    values: [n] float32, −inf for items that can never be predicted (class not in the weak label).
    The values are sorted ascending (stably: ties keep their pooled order); cut i predicts items i … n−1
    and scores F = 2pr/(p + r), p = TP_i/(n − i), r = TP_i/P, every operation in float32 as torch does;
    the first maximum of F wins (a NaN, from P = 0, counts as the maximum, as in torch's argmax) and
    θ = (v_i + v_{i−1})/2 in float32 with v_{−1} = −∞. Every cut is scored: those inside the −∞ block
    (they count the block's dense-GT positives, which 1[z > θ] can never predict, and give θ = −∞) and
    those inside a block of tied values (their F depends on the labels' order within the block, and
    their θ is the tied value itself, which predicts none of the block). The code sorts unstably, so on
    ties (the −∞ block's included) its result depends on the sort; the stable sort is what it gives
    whenever no values tie, and deterministic when they do. Division is IEEE-exact as on the CPU (on a GPU
    torch computes TP/P as TP·(1/P), which may differ by one ulp).
    """
    order = np.argsort(values, kind="stable")
    v = values[order].astype(np.float32)
    lab = labels[order].astype(np.float32)
    n = v.size
    tp = np.cumsum(lab[::-1], dtype=np.float32)[::-1]  # integer counts, exact in float32 below 2^24
    predicted = np.float32(n) - np.arange(n, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = tp / predicted
        r = tp / tp[0]
        f = np.float32(2.0) * p * r / np.maximum(p + r, np.float32(1e-12))
    i = int(np.argmax(f))
    below = v[i - 1] if i > 0 else np.float32(-np.inf)
    return float((v[i] + below) / np.float32(2.0))


def _sorted_pool(values: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The pooled items in stable ascending order (float64 values and labels), their count and the index
    of the first finite value (the −∞ block comes first)."""
    order = np.argsort(values, kind="stable")
    v = values[order].astype(np.float64)
    return v, labels[order].astype(np.float64), v.size, int(np.searchsorted(v, -np.inf, side="right"))


def _finite_cut(values: np.ndarray, labels: np.ndarray) -> float:
    """θ maximising 2·TP/(P + predicted) over the cuts at or after the first finite value (uwav's rule before
    `pseudo.threshold_cuts` existed; still a choice).

    values: [n] with −inf for items that can never be predicted (class not in the weak label). In float64,
    equal F1 are equal; the first maximising cut (the lowest θ) wins. Cuts inside the −∞ block are not
    scored, so this can pick a finite θ where the code picks −∞ (a −∞-block cut with a higher F, possible
    only when the block holds dense-GT positives). Cuts inside blocks of tied values are scored, in the
    stable order of the pooled items, as the code does.
    """
    v, lab, n, first_finite = _sorted_pool(values, labels)
    if first_finite >= n:
        # No val video carries the class: nothing to fit, fall back to the weak label everywhere.
        return float("-inf")
    positives = lab.sum()
    tp = np.cumsum(lab[::-1])[::-1][first_finite:]  # TP_i = Σ labels[i:], i = first_finite … n−1
    predicted = n - np.arange(first_finite, n, dtype=np.float64)
    f1 = 2.0 * tp / (positives + predicted)
    i = first_finite + int(np.argmax(f1))  # argmax returns the first maximiser
    if i == first_finite:
        return float("-inf")  # midpoint with the −inf below it (or with values[−1] = −∞)
    return float((v[i] + v[i - 1]) / 2.0)


def _realisable_cut(values: np.ndarray, labels: np.ndarray) -> float:
    """θ maximising 2·TP/(P + predicted) over the cuts that `values > θ` can realise.

    Those are the cut before the first finite value (θ = −∞: every finite item predicted) and the cuts
    between two distinct finite values; a cut inside the −∞ block or inside a block of ties predicts part
    of the block, which no θ does. F1 is exact in float64 (distinct ratios of counts below 2^26 stay
    distinct); the first maximiser (the lowest θ) wins. The result does not depend on the pooled order.
    """
    v, lab, n, first_finite = _sorted_pool(values, labels)
    if first_finite >= n:
        return float("-inf")
    tp_all = np.cumsum(lab[::-1])[::-1]
    later = np.arange(first_finite + 1, n)
    cuts = np.concatenate([[first_finite], later[v[later] > v[later - 1]]])
    f1 = 2.0 * tp_all[cuts] / (lab.sum() + (n - cuts))
    i = int(cuts[int(np.argmax(f1))])
    if i == first_finite:
        return float("-inf")
    return float((v[i] + v[i - 1]) / 2.0)


_CUT_RULES = {"code": _code_cut, "finite": _finite_cut, "realisable": _realisable_cut}


GRID_POINTS = 100


def _grid_cut(values: np.ndarray, labels: np.ndarray, points: int = GRID_POINTS) -> float:
    """θ from a grid of `points` thresholds maximising segment F1 of `values > θ` (the AVE option).

    The code's "grid search over 100 thresholds, AVE only" is not released, so this is a project choice:
    the grid is θ_0 = −∞ (every segment of a video with the class is positive, as the f1 fit may also
    choose) and θ_k = lo + k/points · (hi − lo), k = 1 … points−1, with lo / hi the min / max of the
    finite values (the class's logits on val videos whose weak label holds it). The lowest maximising θ
    wins, as in `_finite_cut`. No finite value: −∞.
    """
    finite = np.isfinite(values)
    if not finite.any():
        return float("-inf")
    lo, hi = float(values[finite].min()), float(values[finite].max())
    grid = np.concatenate([[-np.inf], lo + np.arange(1, points) / points * (hi - lo)])
    lab = labels.astype(bool)
    pred = values[None, :] > grid[:, None]  # [points, n]
    tp = (pred & lab[None, :]).sum(axis=1).astype(np.float64)
    denom = lab.sum() + pred.sum(axis=1).astype(np.float64)
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(grid[int(np.argmax(f1))])


def fit_thresholds(logits: np.ndarray, weak: np.ndarray, gt: np.ndarray, mode: str = "classwise",
                   method: str = "f1", cuts: str = "code") -> np.ndarray:
    """Fit θ [C] float32 on one modality of the val split.

    logits: [N, T, C] generator logits; weak: [N, C] 0/1; gt: [N, T, C] dense 0/1 of this modality.
    mode: classwise (one θ per class, the code) or classagnostic (one θ for all classes).
    method: f1 (best cut, method.md §4) or grid (100 thresholds, `_grid_cut`; the AVE option).
    cuts: for f1, which cuts are scored and how (`THRESHOLD_CUTS`): code (`_code_cut`, the official
    computation), finite (`_finite_cut`) or realisable (`_realisable_cut`). The rules differ only where
    F1 ties, where a cut inside the −∞ block wins, or where a cut inside a block of tied logits wins.
    """
    if method not in ("f1", "grid"):
        raise UwavError(f"threshold fit method must be f1 or grid, found {method!r}")
    if cuts not in _CUT_RULES:
        raise UwavError(f"threshold cuts must be one of {', '.join(THRESHOLD_CUTS)}, found {cuts!r}")
    if logits.shape != gt.shape or logits.shape[0] != weak.shape[0] or logits.shape[2] != weak.shape[1]:
        raise UwavError(f"fit_thresholds: shapes differ: logits {logits.shape}, weak {weak.shape}, gt {gt.shape}")
    present = np.broadcast_to(weak[:, None, :] > 0, logits.shape)
    if method == "grid":
        cut, values = _grid_cut, np.where(present, logits.astype(np.float64), -np.inf)
    else:
        cut, values = _CUT_RULES[cuts], np.where(present, logits.astype(np.float32), np.float32(-np.inf))
    labels = gt.astype(bool)
    num_classes = logits.shape[2]
    if mode == "classwise":
        # Pooled video-major (videos × segments), as the code concatenates a class's videos.
        theta = [cut(values[:, :, c].ravel(), labels[:, :, c].ravel()) for c in range(num_classes)]
        return np.asarray(theta, dtype=np.float32)
    if mode == "classagnostic":
        # The code pools its [C, videos × segments] tensor class-major; with ties the pooled order decides
        # which tied item a cut inside the tie block predicts, so `code` keeps that order. The other rules
        # keep uwav's earlier [N, T, C] order (realisable does not depend on it).
        if method == "f1" and cuts == "code":
            return np.full(num_classes, cut(values.transpose(2, 0, 1).ravel(), labels.transpose(2, 0, 1).ravel()),
                           dtype=np.float32)
        return np.full(num_classes, cut(values.ravel(), labels.ravel()), dtype=np.float32)
    raise UwavError(f"threshold mode must be classwise or classagnostic, found {mode!r}")


def shift_thresholds(theta: np.ndarray, offset: float) -> np.ndarray:
    """θ + δ; −∞ stays −∞ (method.md §14)."""
    return (theta.astype(np.float32) + np.float32(offset)).astype(np.float32)


def fill_infinite_thresholds(theta: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Replace −∞ in θ by (minimum logit of that class over `logits`) − 1.

    With `logits` = the whole training split this is the deterministic `global_min` policy; with the
    logits of one batch it is the code's `batch_min` policy (method.md §5). Shape-agnostic over the
    leading axes of `logits` [..., C].
    """
    inf = np.isneginf(theta)
    if not inf.any():
        return theta
    class_min = logits.reshape(-1, logits.shape[-1]).min(axis=0)
    return np.where(inf, class_min - 1.0, theta).astype(np.float32)


THRESHOLD_MODES = ("classwise", "classagnostic")


def fit_all_thresholds(logits_a: np.ndarray, logits_v: np.ndarray, weak: np.ndarray, gt_a: np.ndarray,
                       gt_v: np.ndarray, method: str = "f1", cuts: str = "code"
                       ) -> dict[str, dict[str, np.ndarray]]:
    """θ of both modalities in both threshold modes: {mode: {"audio": [C], "visual": [C]}}.

    What `uwav pseudo` stores (uwav.pseudo.run) and training reads back; val logits, weak and dense GT.
    """
    return {mode: {"audio": fit_thresholds(logits_a, weak, gt_a, mode, method, cuts),
                   "visual": fit_thresholds(logits_v, weak, gt_v, mode, method, cuts)} for mode in THRESHOLD_MODES}
