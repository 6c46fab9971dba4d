"""Calibrate synthetic world version 2 to the real LLP, and print real target vs synthetic value side by side.

    python bench/calibrate_synthetic.py              # --check: the committed constants, side by side (~15 s)
    python bench/calibrate_synthetic.py --fit        # re-measure the label model, re-run the searches (~3 min)
    python bench/calibrate_synthetic.py --fit --write  # ... and write the constants into uwav/data/synthetic.py
    python bench/calibrate_synthetic.py --measure    # only print the label parameters measured from the CSVs

What is calibrated, and on what (never on the generator's, the parser's or the ablation's scores):
1. The label model (uwav.data.synthetic.V2_LABELS) is measured from the real CSVs in ../shared/data/llp:
   labels per video, Speech's share per label count and class frequencies (train weak labels; val + test
   for the eval splits), and from the val + test dense GT, per kind of video (S.LABEL_BUCKETS) and class
   the audio-only / visual-only / no-event shares and the whole-clip share of each modality, the count,
   lengths, gaps and clip-edge placement of the other events, how audio and visual extents nest, and the
   events outside the weak labels. Per-class shares and means are shrunk towards the all-class value with
   LABEL_PRIOR_WEIGHT pseudo-rows (so a class seen in 19 videos gets no 0 or 1). Where the model's
   realised statistic differs from the drawn one (events that do not fit are dropped), a few parameters
   (per-class tilts, show_one) are searched on that label statistic itself (fit_labels).
2. The two evidence strengths (V2_STRENGTH: how strongly an active event moves a segment's CLAP / CLIP
   feature, against the scene and noise of V2_FEATURES) are searched so that zero-shot pseudo labels
   (VALOR-style cosine scores, θ fitted per class on synthetic val, scored on synthetic test, LLP size)
   reach the VALOR row of UWAV Table 3, averaged over world seeds SEEDS: Seg A for audio, Seg V and Seg AV
   together for visual. Every other mechanism (V2_FEATURES) is set a priori (uwav/data/synthetic.py).
   Those two baselines cannot tell "features carry little" from "text reads them badly"; the split is the
   a priori alignment ranges of V2_FEATURES (CLIP's sound-event prompts read frames worse than CLAP's read
   sounds), and the generator's standing against zero-shot depends on it.
The weak-label-everywhere baseline has no free parameter: it follows from the label model, and is checked
against the real test value computed here from the real CSVs.

Features are generated in memory with the same functions `uwav data synth` writes them with (only the
val and test splits, CLIP + CLAP), so nothing is written to disk.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The zero-shot pipeline pieces `uwav pseudo` uses, in one place.
from uwav.data import synthetic as S  # noqa: E402
from uwav.data.llp import load_llp_split  # noqa: E402
from uwav.metrics import pseudo_label_scores  # noqa: E402
from uwav.pseudo import (  # noqa: E402
    CLAP_ZERO_SHOT_SCALE,
    CLIP_ZERO_SHOT_SCALE,
    fit_thresholds,
    pseudo_quality,
    zero_shot_scores,
)

SHARED_LLP = Path(__file__).resolve().parents[2] / "shared" / "data" / "llp"
SEEDS = (0, 1, 2, 3, 4)  # world seeds averaged by the strength search (seed 0: what the benchmarks write)
TOLERANCE = 3.0  # points: every baseline number must be this close to its target
FITTED_LABELS = ("count_tilt", "length_tilt", "gap_tilt", "show_one")  # searched by fit_labels, not measured
LABEL_PRIOR_WEIGHT = 5.0  # pseudo-rows of the all-class share added to each class's measured share
SEG = ("seg_a", "seg_v", "seg_av", "seg_type", "seg_event")
SEG_TITLES = ("A", "V", "AV", "Type@AV", "Event@AV")
# UWAV paper Table 3 (method.md §12.3), LLP test, segment level: VALOR's zero-shot CLIP/CLAP pseudo labels
# (hand-set θ; here θ is fitted on val, which the issue allows to be a little higher).
ZERO_SHOT_TARGET = {"seg_a": 80.5, "seg_v": 61.7, "seg_av": 55.7, "seg_type": 66.0, "seg_event": 74.6}


# ---- label statistics: one function for the real CSVs and the synthetic labels ---------------------------


def _runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of bool rows [R, T]: (row index, onset, offset) per run."""
    padded = np.zeros((len(rows), rows.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = rows
    d = np.diff(padded, axis=1)
    r_on, on = np.nonzero(d == 1)
    _, off = np.nonzero(d == -1)
    return r_on, on, off


def _buckets(weak: np.ndarray):
    """(name, bool [N]) of the kinds of video the label model tells apart (S.LABEL_BUCKETS)."""
    bucket = S.label_bucket(weak.sum(1), weak[:, 0] > 0)
    return ((name, bucket == i) for i, name in enumerate(S.LABEL_BUCKETS))


def label_stats(weak_train: np.ndarray, weak: np.ndarray, gt_a: np.ndarray, gt_v: np.ndarray) -> dict:
    """Everything the label model reproduces, measured on train weak labels and eval (val + test) labels.

    weak_train: [Ntrain, C]; weak: [N, C] and gt_a / gt_v: bool [N, T, C] of the eval videos.
    """
    out: dict = {}
    w = weak > 0
    for name, x in (("train", weak_train > 0), ("eval", w)):
        count = np.minimum(x.sum(1), 5)  # 5 or more labels: one bin (4 eval videos have 5, one has 7)
        out[f"labels_per_video_{name}"] = np.bincount(count, minlength=6)[1:] / len(x)
        out[f"labels_mean_{name}"] = float(x.sum(1).mean())
        out[f"speech_rate_{name}"] = float(x[:, 0].mean())
        # Speech is mostly the second label of a video: its rate per label count (an empty bin gets the last
        # filled bin's rate; it is never drawn).
        rate = [float(x[count == k, 0].mean()) if (count == k).any() else None for k in range(1, 6)]
        out[f"speech_by_count_{name}"] = [r if r is not None else next(q for q in rate[i::-1] if q is not None)
                                          for i, r in enumerate(rate)]
        out[f"class_counts_{name}"] = x.sum(0)
        for bucket, sel in _buckets(x):
            out[f"class_counts_{name}_{bucket}"] = x[sel].sum(0)
    has = {"audio": gt_a.any(1), "visual": gt_v.any(1)}
    a, v = has["audio"] & w, has["visual"] & w
    kinds = {"a_only": a & ~v, "v_only": ~a & v, "av": a & v, "none": w & ~has["audio"] & ~has["visual"]}
    out["modality_type_all"] = {k: float(m.sum() / w.sum()) for k, m in kinds.items()}
    for bucket, sel in _buckets(w):
        mask = sel[:, None]
        out[f"modality_type_{bucket}"] = np.stack([(kinds[k] & mask).sum(0) for k in ("a_only", "v_only", "none")], 1)
        out[f"class_rows_{bucket}"] = (w & mask).sum(0)
    out["outside_weak"] = {m: float((has[m] & ~w).sum() / len(w)) for m in has}
    for m, gt in (("audio", gt_a), ("visual", gt_v)):
        outside = has[m] & ~w
        out[f"outside_{m}"] = {
            "rate": [float(outside[sel].sum() / max(sel.sum(), 1)) for _, sel in _buckets(w)],
            "speech": float(outside[:, 0].sum() / max(outside.sum(), 1)),
            "full": float(gt.transpose(0, 2, 1)[outside].all(1).mean()),
        }
    for m, gt in (("audio", gt_a), ("visual", gt_v)):
        rows = gt.transpose(0, 2, 1)  # [N, C, T]
        present = has[m] & w
        full = rows.all(2)
        for bucket, sel in _buckets(w):
            hit = present & sel[:, None]
            out[f"full_{m}_{bucket}"] = (full & hit).sum(0), hit.sum(0)  # per class: full rows, rows
        r = rows[present]
        out[f"density_{m}"] = float(r.mean())  # positive share of the segments of weak classes with an event
        out[f"density_weak_{m}"] = float(rows[w].mean())  # ... of all weak classes
        nonfull = r[~r.all(1)]
        row, on, off = _runs(nonfull)
        k = np.bincount(row, minlength=len(nonfull))
        out[f"events_per_row_{m}"] = np.bincount(np.minimum(k, 4), minlength=5)[1:] / len(nonfull)
        single = k == 1
        one = single[row]
        out[f"event_length_{m}"] = np.bincount(off[one] - on[one], minlength=10)[1:10] / one.sum()
        out[f"event_length_multi_{m}"] = np.bincount(off[~one] - on[~one], minlength=10)[1:10] / (~one).sum()
        cls_of_row = np.nonzero(present)[1][~r.all(1)]  # class of each non-full row
        out[f"partial_length_{m}"] = (np.bincount(cls_of_row[row], weights=off - on, minlength=weak.shape[1]),
                                      np.bincount(cls_of_row[row], minlength=weak.shape[1]))  # sum, events
        out[f"partial_count_{m}"] = (np.bincount(cls_of_row, weights=np.minimum(k, 4), minlength=weak.shape[1]),
                                     np.bincount(cls_of_row, minlength=weak.shape[1]))  # sum of counts, rows
        first, last = on[np.r_[True, row[1:] != row[:-1]]], off[np.r_[row[1:] != row[:-1], True]]
        inner = row[1:] == row[:-1]
        out[f"inner_gap_{m}"] = np.bincount(on[1:][inner] - off[:-1][inner], minlength=9)[1:9] / inner.sum()
        out[f"edge_{m}"] = (  # first event starts at 0 / last ends at 10, single-event rows then multi
            float((first[single] == 0).mean()), float((last[single] == 10).mean()),
            float((first[~single] == 0).mean()), float((last[~single] == 10).mean()))
        total, events = out[f"partial_length_{m}"]
        out[f"partial_mean_{m}"] = (total[0] / events[0], total[1:].sum() / events[1:].sum())
        row_all, on_all, off_all = _runs(r)
        out[f"length_all_{m}"] = np.bincount(off_all - on_all, minlength=11)[1:] / len(on_all)
        out[f"length_mean_{m}"] = float((off_all - on_all).mean())
        out[f"events_per_class_{m}"] = float(len(on_all) / len(r))
        out[f"empty_videos_{m}"] = float((~gt.any((1, 2))).mean())
    both = a & v
    ra, rv = gt_a.transpose(0, 2, 1)[both], gt_v.transpose(0, 2, 1)[both]
    same = (ra == rv).all(1)
    out["same_extent"] = float(same.mean())
    iou = (ra & rv).sum(1) / np.maximum((ra | rv).sum(1), 1)
    out["iou_av"] = float(iou.mean())
    out["iou_av_different"] = float(iou[~same].mean())
    longer, shorter = ((ra | rv) == rv).all(1) & ~same, ((ra | rv) == ra).all(1) & ~same
    out["visual_longer"] = float(longer.sum() / (longer.sum() + shorter.sum()))  # of the nested pairs
    out["nested_share"] = float((longer.sum() + shorter.sum()) / max((~same).sum(), 1))
    for bucket in ("single", "multi"):
        sel = (w.sum(1) == 1) if bucket == "single" else (w.sum(1) > 1)
        out[f"empty_{bucket}"] = {m: float((~has[m][sel].any(1)).mean()) for m in has}
    return out


def class_means(sums: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, float]:
    """Per-class means (shrunk towards the all-class mean by LABEL_PRIOR_WEIGHT pseudo-items) and that mean."""
    total, items = sums
    overall = total.sum() / items.sum()
    return (total + LABEL_PRIOR_WEIGHT * overall) / (items + LABEL_PRIOR_WEIGHT), float(overall)


def label_parameters(stats: dict) -> dict:
    """The V2_LABELS constants implied by measured statistics (rounded as committed)."""
    def shrunk(hits: np.ndarray, rows: np.ndarray) -> list[float]:
        overall = hits.sum() / rows.sum()
        return [round(float(x), 3) for x in (hits + LABEL_PRIOR_WEIGHT * overall) / (rows + LABEL_PRIOR_WEIGHT)]

    def tilt(values: np.ndarray, p: np.ndarray, sums: tuple[np.ndarray, np.ndarray]) -> list[float]:
        """Per class, the exponential tilt of the all-class distribution p over `values` whose mean is the
        class's measured mean (the start of fit_labels' refinement, which matches realised means)."""
        target, overall = class_means(sums)

        def mean(t: float) -> float:
            w = p * np.exp(t * values)
            return float((w * values).sum() / w.sum())

        base = mean(0.0)  # the all-class distribution's own mean: a class at `overall` gets tilt 0
        return [round(bisect(mean, -3.0, 3.0, base * x / overall, 30), 3) for x in target]

    def length_tilt(m: str) -> list[float]:
        single = stats[f"events_per_row_{m}"][0]
        p = single * stats[f"event_length_{m}"] + (1 - single) * stats[f"event_length_multi_{m}"]
        return tilt(np.arange(1, 10), p, stats[f"partial_length_{m}"])

    def count_tilt(m: str) -> list[float]:
        return tilt(np.arange(1, 5), stats[f"events_per_row_{m}"], stats[f"partial_count_{m}"])

    def dist(x) -> list[float]:
        return [round(float(p), 4) for p in x]

    return {
        "labels_per_video": {k: dist(stats[f"labels_per_video_{k}"]) for k in ("train", "eval")},
        "speech_by_count": {k: [round(x, 3) for x in stats[f"speech_by_count_{k}"]] for k in ("train", "eval")},
        "class_counts": {k: {b: [int(x) for x in stats[f"class_counts_{k}_{b}"]] for b in S.LABEL_BUCKETS}
                         for k in ("train", "eval")},
        "modality_type": {
            b: [list(t) for t in zip(*(shrunk(stats[f"modality_type_{b}"][:, j], stats[f"class_rows_{b}"])
                                       for j in range(3)), strict=True)]
            for b in S.LABEL_BUCKETS},
        "full_clip": {b: {m: shrunk(*stats[f"full_{m}_{b}"]) for m in ("audio", "visual")} for b in S.LABEL_BUCKETS},
        "events_per_row": {m: dist(stats[f"events_per_row_{m}"]) for m in ("audio", "visual")},
        "event_length": {m: dist(stats[f"event_length_{m}"]) for m in ("audio", "visual")},
        "event_length_multi": {m: dist(stats[f"event_length_multi_{m}"]) for m in ("audio", "visual")},
        "count_tilt": {m: count_tilt(m) for m in ("audio", "visual")},
        "length_tilt": {m: length_tilt(m) for m in ("audio", "visual")},
        "inner_gap": {m: dist(stats[f"inner_gap_{m}"]) for m in ("audio", "visual")},
        "edge": {m: [round(x, 3) for x in stats[f"edge_{m}"]] for m in ("audio", "visual")},
        "visual_longer": round(stats["visual_longer"], 3),
        "outside_weak": {m: {"rate": [round(x, 4) for x in stats[f"outside_{m}"]["rate"]],
                             "speech": round(stats[f"outside_{m}"]["speech"], 3),
                             "full": round(stats[f"outside_{m}"]["full"], 3)} for m in ("audio", "visual")},
    }


def real_llp() -> dict:
    """The real CSVs: train weak labels, and val + test dense GT (HEAD audio file)."""
    if not (SHARED_LLP / "AVVP_train.csv").is_file():
        raise SystemExit(f"{SHARED_LLP}: the real LLP CSVs are not there (expected ../shared/data/llp)")
    return {s: load_llp_split(SHARED_LLP, s) for s in ("train", "val", "test")}


def real_stats(real: dict) -> dict:
    ev = [real["val"], real["test"]]
    return label_stats(real["train"].weak, np.concatenate([s.weak for s in ev]),
                       np.concatenate([s.gt_audio for s in ev]), np.concatenate([s.gt_visual for s in ev]))


def weak_all(weak: np.ndarray, gt_a: np.ndarray, gt_v: np.ndarray) -> dict[str, float]:
    """The "weak label on every segment" scores (evaluation.md §13) of one split."""
    every = np.broadcast_to(weak[:, None, :] > 0, gt_a.shape)
    return pseudo_label_scores(every, every, gt_a, gt_v)


# ---- the synthetic world, in memory -------------------------------------------------------------------


def synthetic_labels(seed: int, split: str, n: int, params: dict | None = None):
    """The labels `uwav data synth` writes for a split (same random stream), optionally other parameters."""
    return S.LLPLabelsV2(S._rng(seed, "llp-labels", split), n, split, params)


def synthetic_stats(seed: int, scale: int = 1, params: dict | None = None) -> dict:
    """Label statistics of a synthetic world at LLP size (scale > 1: that many times more eval videos)."""
    sizes = S.SIZES["llp"]
    train = synthetic_labels(seed, "train", sizes["train"], params)
    ev = [synthetic_labels(seed, s, sizes[s] * scale, params) for s in ("val", "test")]
    return label_stats(train.weak, np.concatenate([x.weak for x in ev]),
                       np.concatenate([x.gt["audio"] for x in ev]), np.concatenate([x.gt["visual"] for x in ev]))


def zero_shot(seed: int, strength: dict[str, float] | None = None) -> dict[str, dict[str, float]]:
    """Zero-shot and weak-label-everywhere scores on LLP-size synthetic test, θ fitted on synthetic val.

    Exactly what `uwav pseudo` computes for its zero-shot row on the files `uwav data synth --size llp`
    writes (same labels, features and text embeddings), without writing them.
    """
    world = S.WorldV2(seed, strength=strength)
    splits = {}
    for split in ("val", "test"):
        labels = synthetic_labels(seed, split, S.SIZES["llp"][split])
        feats = S.llp_uwav_features(world, seed, split, labels)
        z_a = zero_shot_scores(feats["clap"], world.text["llp", "clap"], CLAP_ZERO_SHOT_SCALE)
        z_v = zero_shot_scores(feats["clip"], world.text["llp", "clip"], CLIP_ZERO_SHOT_SCALE)
        splits[split] = (labels, z_a, z_v)
    val, z_a, z_v = splits["val"]
    theta_a = fit_thresholds(z_a, val.weak, val.gt["audio"])
    theta_v = fit_thresholds(z_v, val.weak, val.gt["visual"])
    test, z_a, z_v = splits["test"]
    return {"zero_shot": pseudo_quality(z_a, z_v, theta_a, theta_v, test.weak, test.gt["audio"], test.gt["visual"]),
            "weak_all": weak_all(test.weak, test.gt["audio"], test.gt["visual"])}


def mean_over_seeds(rows: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {k: {m: float(np.mean([r[k][m] for r in rows])) for m in rows[0][k]} for k in rows[0]}


# ---- the fit ---------------------------------------------------------------------------------------------


def bisect(f, lo: float, hi: float, target: float, steps: int) -> float:
    """x in [lo, hi] with f(x) ~ target for an increasing f (common random numbers make f deterministic)."""
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return round(0.5 * (lo + hi), 4)


def fit_labels(stats: dict) -> dict:
    """V2_LABELS from the real statistics, refined where the realised statistic is not the drawn one, and
    searched on the label statistics they set (LLP-size val + test times 8, seed 0): the per-class tilts of
    event lengths and counts so each class's realised means are its measured ones (and one tilt per modality
    for the gaps between events), then show_one so the synthetic multi-label videos with nothing visible
    have the real share."""
    params = label_parameters(stats)
    params["show_one"] = 0.0
    params["gap_tilt"] = {"audio": 0.0, "visual": 0.0}
    # The tilts start from the drawn distributions' means; events that do not fit are dropped and pinned
    # rows stretched, so the realised per-class means differ a little: a few Newton steps on them.
    for _ in range(6):
        synth = synthetic_stats(0, scale=8, params=params)
        for m in ("audio", "visual"):
            for name, key in (("length_tilt", "partial_length"), ("count_tilt", "partial_count")):
                target, _ = class_means(stats[f"{key}_{m}"])
                total, items = synth[f"{key}_{m}"]
                realised = total / np.maximum(items, 1)
                values = np.arange(1, 10 if name == "length_tilt" else 5)
                p = np.asarray(stats[f"events_per_row_{m}"] if name == "count_tilt" else stats[f"event_length_{m}"])
                variance = float((p * values**2).sum() / p.sum() - ((p * values).sum() / p.sum()) ** 2)
                step = np.where(items > 0, (target - realised) / variance, 0.0)
                params[name][m] = [round(float(np.clip(t + d, -3, 3)), 3) for t, d in zip(params[name][m], step,
                                                                                         strict=True)]
            p = stats[f"inner_gap_{m}"]
            values = np.arange(1, 9)
            variance = float((p * values**2).sum() - (p * values).sum() ** 2)
            realised, target = (synth[f"inner_gap_{m}"] * values).sum(), (p * values).sum()
            params["gap_tilt"][m] = round(float(params["gap_tilt"][m] + (target - realised) / variance), 3)

    def empty_visual(show: float) -> float:
        trial = {**params, "show_one": show}
        return -synthetic_stats(0, scale=8, params=trial)["empty_multi"]["visual"]

    params["show_one"] = round(bisect(empty_visual, 0.0, 1.0, -stats["empty_multi"]["visual"], 10), 3)
    return params


def fit_strength(log) -> dict[str, float]:
    """V2_STRENGTH: zero-shot scores, mean over SEEDS, on target: the audio strength sets Seg A (it moves
    nothing else but Seg AV); the visual strength sets Seg V and Seg AV together (the sum of their errors is
    zero: one strength cannot meet both exactly). Each modality's zero-shot labels depend only on its own
    strength (no random draw depends on either), so these are two one-dimensional searches."""
    strength = dict(S.V2_STRENGTH)
    for modality, metrics in (("audio", ("seg_a",)), ("visual", ("seg_v", "seg_av"))):
        def error(x: float, modality: str = modality, metrics: tuple[str, ...] = metrics) -> float:
            trial = {**strength, modality: x}
            mean = mean_over_seeds([zero_shot(seed, trial) for seed in SEEDS])["zero_shot"]
            value = sum(mean[m] - ZERO_SHOT_TARGET[m] for m in metrics)
            log(f"  {modality} strength {x:.4f}: zero-shot " + ", ".join(f"{m} {mean[m]:.2f}" for m in metrics)
                + f" (targets {', '.join(str(ZERO_SHOT_TARGET[m]) for m in metrics)})")
            return value

        strength[modality] = bisect(error, 0.0, 3.0, 0.0, 12)
    return strength


def format_constants(labels: dict, strength: dict[str, float]) -> dict[str, str]:
    """The two calibrated blocks of uwav/data/synthetic.py, as source text."""
    import pprint

    body = pprint.pformat(labels, width=116, compact=True, sort_dicts=False)
    return {"V2_LABELS": "V2_LABELS: dict = " + body + "\n",
            "V2_STRENGTH": "V2_STRENGTH: dict = " + pprint.pformat(strength, sort_dicts=False) + "\n"}


def write_constants(blocks: dict[str, str]) -> Path:
    """Replace the marked blocks (`# >>> calibrated NAME` ... `# <<< calibrated NAME`) in synthetic.py."""
    path = Path(S.__file__)
    text = path.read_text()
    for name, block in blocks.items():
        start, end = f"# >>> calibrated {name}\n", f"# <<< calibrated {name}\n"
        i, j = text.index(start) + len(start), text.index(end)
        text = text[:i] + block + text[j:]
    path.write_text(text)
    return path


# ---- the report ------------------------------------------------------------------------------------------


def _fmt(x) -> str:
    if isinstance(x, dict):
        return " ".join(f"{k} {_fmt(v)}" for k, v in x.items())
    if isinstance(x, list | tuple | np.ndarray):
        return "[" + " ".join(f"{float(v):.3f}" for v in x) + "]"
    return f"{float(x):.3f}"


# (statistic key, title) of the label statistics printed side by side
LABEL_ROWS = (
    ("labels_per_video_train", "train: videos with 1..5 labels"),
    ("labels_mean_train", "train: labels per video"),
    ("labels_per_video_eval", "val+test: videos with 1..5 labels"),
    ("labels_mean_eval", "val+test: labels per video"),
    ("speech_rate_train", "train: Speech share of videos"),
    ("speech_rate_eval", "val+test: Speech share of videos"),
    ("modality_type_all", "(video, weak class): audio-only / visual-only / AV / none"),
    ("length_all_audio", "audio event length 1..10 (share of events)"),
    ("length_mean_audio", "audio mean event length"),
    ("length_all_visual", "visual event length 1..10"),
    ("length_mean_visual", "visual mean event length"),
    ("partial_mean_audio", "audio: mean length of partial events, Speech / others"),
    ("partial_mean_visual", "visual: mean length of partial events, Speech / others"),
    ("inner_gap_audio", "audio: gaps between events of a row, 1..8"),
    ("inner_gap_visual", "visual: gaps between events of a row, 1..8"),
    ("events_per_class_audio", "audio events per (video, class)"),
    ("events_per_class_visual", "visual events per (video, class)"),
    ("density_weak_audio", "audio: positive share of weak-class segments"),
    ("density_weak_visual", "visual: positive share of weak-class segments"),
    ("empty_videos_audio", "videos with no audio event"),
    ("empty_videos_visual", "videos with no visual event"),
    ("empty_single", "one-label videos with no event in a modality"),
    ("empty_multi", "videos with more labels and no event in a modality"),
    ("same_extent", "AV pairs: same extent in both"),
    ("iou_av", "AV pairs: mean IoU of the two extents"),
    ("outside_weak", "events per video outside the weak labels"),
)


def class_share_error(real: dict, synth: dict, key: str) -> float:
    """Largest |difference| of a class's share of the eval videos (class frequencies)."""
    r, s_ = real[key], synth[key]
    return float(np.abs(r / r.sum() - s_ / s_.sum()).max())


def print_report(real: dict, synth: dict, real_test: dict, baselines: list[dict], seeds) -> bool:
    print("\nLabel statistics: real LLP (train weak; val + test dense GT) vs synthetic world 2, seed "
          f"{seeds[0]}, LLP size (10,000 / 649 / 1,200)")
    print(f"{'statistic':<58}{'real':>34}   synthetic")
    for key, title in LABEL_ROWS:
        print(f"{title:<58}{_fmt(real[key]):>34}   {_fmt(synth[key])}")
    for key in ("class_counts_train", "class_counts_eval"):
        r, x = real[key] / real[key].sum(), synth[key] / synth[key].sum()
        print(f"{key + ': class shares, max |diff| / corr':<58}{'':>34}   "
              f"{np.abs(r - x).max():.3f} / {np.corrcoef(r, x)[0, 1]:.3f}")
    ok = True
    print(f"\nPseudo-label quality, LLP-size synthetic test (θ fitted on synthetic val), segment level; pass = "
          f"within ±{TOLERANCE:g} of the target for world seed {seeds[0]} (what `uwav data synth --size llp` and the "
          f"benchmarks write) and for the mean over the seeds (what the search fits); '!' marks a miss")
    print(f"{'':<44}" + "".join(f"{t:>10}" for t in SEG_TITLES))
    mean = mean_over_seeds(baselines)
    for name, target, label in (("weak_all", real_test, "weak label everywhere"),
                                ("zero_shot", ZERO_SHOT_TARGET, "zero-shot CLIP/CLAP")):
        tgt = "real LLP test" if name == "weak_all" else "VALOR, UWAV Table 3"
        print(f"{label + ', target (' + tgt + ')':<44}" + "".join(f"{target[m]:>10.2f}" for m in SEG))
        for seed, row in zip(seeds, baselines, strict=True):
            line = f"{'  synthetic, world seed ' + str(seed):<44}"
            for m in SEG:
                passed = seed != seeds[0] or abs(row[name][m] - target[m]) <= TOLERANCE
                ok &= passed
                line += f"{row[name][m]:>9.2f}{'' if passed else '!'}"
            print(line)
        line = f"{'  synthetic, mean over seeds ' + f'{seeds[0]}-{seeds[-1]}':<44}"
        for m in SEG:
            passed = abs(mean[name][m] - target[m]) <= TOLERANCE
            ok &= passed
            line += f"{mean[name][m]:>9.2f}{'' if passed else '!'}"
        print(line)
        spread = {m: float(np.std([row[name][m] for row in baselines], ddof=1)) for m in SEG}
        print(f"{'  std over world seeds (information)':<44}" + "".join(f"{spread[m]:>10.2f}" for m in SEG))
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify the committed constants (the default)")
    mode.add_argument("--fit", action="store_true", help="re-measure the label model and re-run the strength search")
    mode.add_argument("--measure", action="store_true", help="only print the label parameters measured from the CSVs")
    ap.add_argument("--write", action="store_true", help="with --fit: write the constants into uwav/data/synthetic.py")
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"CPU: {cpu_model()}; {os.cpu_count()} logical cores visible; Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    real = real_llp()
    stats = real_stats(real)
    real_test = weak_all(real["test"].weak, real["test"].gt_audio, real["test"].gt_visual)
    measured = label_parameters(stats)
    if args.measure:
        print(format_constants(measured, S.V2_STRENGTH)["V2_LABELS"])
        return
    for m in SEG:  # the committed weak-label target is the real CSVs' value
        if abs(real_test[m] - S.V2_TARGETS["weak_all"][m]) > 0.005:
            raise SystemExit(f"V2_TARGETS weak_all {m} {S.V2_TARGETS['weak_all'][m]} differs from the CSVs' "
                             f"{real_test[m]:.2f}")
    if args.fit:
        print("fitting the label model (copy_extent) ...", flush=True)
        labels = fit_labels(stats)
        S.V2_LABELS.clear()
        S.V2_LABELS.update(labels)
        print("searching the evidence strengths ...", flush=True)
        strength = fit_strength(lambda line: print(line, flush=True))
        S.V2_STRENGTH.update(strength)
        blocks = format_constants(labels, strength)
        if args.write:
            print(f"wrote the calibrated constants into {write_constants(blocks)}")
        else:
            print("calibrated constants (paste into uwav/data/synthetic.py, or rerun with --write):")
            print("".join(blocks.values()))
    else:
        stale = [k for k in measured if k not in FITTED_LABELS and measured[k] != S.V2_LABELS.get(k)]
        if stale:
            print(f"WARNING: V2_LABELS differ from what the CSVs give for: {', '.join(stale)} (rerun --fit)")
    synth = synthetic_stats(SEEDS[0])
    baselines = [zero_shot(seed) for seed in SEEDS]
    ok = print_report(stats, synth, real_test, baselines, SEEDS)
    print(f"\n{'PASS' if ok else 'FAIL'}: every weak-label-everywhere and zero-shot number within ±{TOLERANCE:g} "
          f"of its target (world seed {SEEDS[0]} and the mean over seeds); {time.perf_counter() - t0:.0f} s")
    if not ok:
        sys.exit(1)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
