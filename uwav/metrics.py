"""LLP segment- and event-level F-scores (evaluation.md), vectorised over all videos at once.

Every per-video score uses only the classes active in that video (predicted or in the GT), with the
1.0 rule when none is active; reported numbers are plain means over videos, times 100, in float64.
Events are maximal runs of positive segments matched at IoU >= 0.5 (inclusive). Boolean matrices are
[N, T, C] (videos, segments, classes) throughout.
"""

from __future__ import annotations

import numpy as np

from uwav.errors import UwavError

# One naming scheme for every score uwav reports (MLflow, leaderboards, `uwav eval --json`, results files):
# <level>_<column> with the paper's levels and columns, all in percent. README: "Metric glossary".
LEVELS = (("segment", "Segment"), ("event", "Event"))
COLUMNS = (("audio", "Audio"), ("visual", "Visual"), ("audio_visual", "AV"), ("type_at_av", "Type@AV"),
           ("event_at_av", "Event@AV"))
METRIC_NAMES: tuple[str, ...] = tuple(f"{level}_{column}" for level, _ in LEVELS for column, _ in COLUMNS)
TITLES: dict[str, str] = {f"{level}_{column}": f"{lt} {ct}" for level, lt in LEVELS for column, ct in COLUMNS}
TITLES.update(accuracy="Segment accuracy (AVE)")
# At most 8 characters, for tables that must fit 120 columns (`uwav pseudo`): "Seg Type" = Segment Type@AV.
SHORT_TITLES: dict[str, str] = {f"{level}_{column}": f"{short_level} {short}"
                                for (level, _), short_level in zip(LEVELS, ("Seg", "Ev"), strict=True)
                                for (column, _), short in zip(COLUMNS, ("A", "V", "AV", "Type", "Event"), strict=True)}
SHORT_TITLES.update(accuracy="Acc")
# The val metric that selects checkpoints and drives sweeps, per dataset: LLP's Segment Type@AV, AVE's
# segment accuracy (evaluation.md §12).
OBJECTIVES = {"llp": "segment_type_at_av", "ave": "accuracy"}
# The short names of uwav 0.1 (seg_type, ev_a, ...), still accepted when reading a score or a sweep file.
LEGACY_NAMES: dict[str, str] = {
    f"{short_level}_{short}": f"{level}_{column}"
    for (short_level, (level, _)) in zip(("seg", "ev"), LEVELS, strict=True)
    for short, (column, _) in zip(("a", "v", "av", "type", "event"), COLUMNS, strict=True)
}


def canonical_name(name: str) -> str:
    """A score name in the current scheme (legacy short names are translated; others returned as given)."""
    return LEGACY_NAMES.get(name, name)


class Scores(dict):
    """Scores by name (percent). Iterates and serialises with the current names only; looking a score up
    by its legacy short name (`scores["seg_type"]`) still works, so older scripts keep running."""

    def __missing__(self, key):
        if key in LEGACY_NAMES and LEGACY_NAMES[key] in self:
            return self[LEGACY_NAMES[key]]
        raise KeyError(key)

    def __contains__(self, key) -> bool:
        return dict.__contains__(self, key) or dict.__contains__(self, LEGACY_NAMES.get(key, key))

    def get(self, key, default=None):
        return self[key] if key in self else default

# Rows of up to this many segments use the (prediction code, GT code) lookup table for event counts.
_TABLE_BITS = 10
_event_table: np.ndarray | None = None  # uint8 [2^bits, 2^bits, 3] of (TP, FP, FN), built lazily


def _probabilities(audio_prob, visual_prob, video_prob) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As arrays, checked: audio and visual [N, T, C] of equal shape, video [N, C]."""
    audio_prob, visual_prob, video_prob = (np.asarray(x) for x in (audio_prob, visual_prob, video_prob))
    if audio_prob.ndim != 3 or audio_prob.shape != visual_prob.shape:
        raise UwavError(
            f"audio {audio_prob.shape} and visual {visual_prob.shape} probabilities: expected equal [N, T, C]"
        )
    n, _, c = audio_prob.shape
    if video_prob.shape != (n, c):
        raise UwavError(f"video probabilities have shape {video_prob.shape}; expected {(n, c)}")
    return audio_prob, visual_prob, video_prob


def binarize(
    audio_prob: np.ndarray, visual_prob: np.ndarray, video_prob: np.ndarray, tie_rule: str = "ge"
) -> tuple[np.ndarray, np.ndarray]:
    """Threshold segment probabilities [N, T, C] at 0.5 and gate both by the video output [N, C].

    tie_rule "ge" (reference AVVP / VALOR evaluators) keeps exact 0.5, "gt" (UWAV's code) drops it.
    """
    if tie_rule not in ("ge", "gt"):
        raise UwavError(f"tie_rule {tie_rule!r} is not supported; expected 'ge' or 'gt'")
    audio_prob, visual_prob, video_prob = _probabilities(audio_prob, visual_prob, video_prob)
    above = np.greater_equal if tie_rule == "ge" else np.greater
    gate = above(video_prob, 0.5)[:, None, :]
    return above(audio_prob, 0.5) & gate, above(visual_prob, 0.5) & gate


def f_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Per-video F: mean of 2TP/(2TP+FP+FN) over active classes, 1.0 if none. Counts [..., C] -> [...]."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    active = denom > 0
    f = np.divide(2 * tp, denom, out=np.zeros_like(denom), where=active)
    n_active = active.sum(axis=-1)
    return np.where(n_active > 0, f.sum(axis=-1) / np.maximum(n_active, 1), 1.0)


def segment_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment-level (TP, FP, FN) per video and class: bool [N, T, C] -> int [N, C] each."""
    return (
        (pred & gt).sum(axis=1),
        (pred & ~gt).sum(axis=1),
        (~pred & gt).sum(axis=1),
    )


def _run_event_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Event (TP, FP, FN) for each row of bool [R, T], any T, without a per-row loop.

    Every maximal run gets a global id; positions where both rows are 1 pair a predicted run with
    a GT run. The intersection of two intervals is itself an interval, so each overlapping pair's
    positions are consecutive in row-major order, and a change of pair marks a new pair.
    """
    r, _ = pred.shape

    def runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        starts = x.copy()
        starts[:, 1:] &= ~x[:, :-1]
        run_id = np.cumsum(starts.ravel()) - 1  # id of the run covering each position (where x)
        row_of_run = np.nonzero(starts.ravel())[0] // x.shape[1]
        length = np.bincount(run_id[x.ravel()], minlength=len(row_of_run))
        return run_id, row_of_run, length

    p_id, p_row, p_len = runs(pred)
    g_id, g_row, g_len = runs(gt)
    both = (pred & gt).ravel()
    pp, gg = p_id[both], g_id[both]
    new_pair = np.ones(len(pp), dtype=bool)
    new_pair[1:] = (pp[1:] != pp[:-1]) | (gg[1:] != gg[:-1])
    inter = np.bincount(np.cumsum(new_pair) - 1, minlength=int(new_pair.sum()))
    pp, gg = pp[new_pair], gg[new_pair]
    match = 2 * inter >= p_len[pp] + g_len[gg] - inter  # |P∩G| >= 0.5·|P∪G|, exact in integers
    p_hit = np.zeros(len(p_row), dtype=bool)
    g_hit = np.zeros(len(g_row), dtype=bool)
    p_hit[pp[match]] = True
    g_hit[gg[match]] = True
    tp = np.bincount(p_row[p_hit], minlength=r)
    fp = np.bincount(p_row, minlength=r) - tp
    fn = np.bincount(g_row[~g_hit], minlength=r)
    return tp, fp, fn


def _table() -> np.ndarray:
    global _event_table
    if _event_table is None:
        n = 1 << _TABLE_BITS
        rows = (np.arange(n)[:, None] >> np.arange(_TABLE_BITS)) & 1 == 1  # bit t = segment t
        table = np.empty((n, n, 3), dtype=np.uint8)
        chunk = 128  # bounds the memory of the run bookkeeping (~chunk * n * bits positions)
        for lo in range(0, n, chunk):
            p = np.repeat(rows[lo : lo + chunk], n, axis=0)
            g = np.tile(rows, (chunk, 1))
            counts = _run_event_counts(p, g)
            table[lo : lo + chunk] = np.stack(counts, axis=-1).reshape(chunk, n, 3)
        _event_table = table
    return _event_table


def event_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Event-level (TP, FP, FN) per video and class: bool [N, T, C] -> int [N, C] each."""
    n, t, c = pred.shape
    if t <= _TABLE_BITS:
        weights = (1 << np.arange(t, dtype=np.int64))[None, :, None]
        counts = _table()[(pred * weights).sum(axis=1), (gt * weights).sum(axis=1)]  # [N, C, 3]
        return counts[..., 0], counts[..., 1], counts[..., 2]
    flat = [np.ascontiguousarray(x.transpose(0, 2, 1)).reshape(n * c, t) for x in (pred, gt)]
    return tuple(x.reshape(n, c) for x in _run_event_counts(*flat))  # type: ignore[return-value]


def _check_bool(**arrays: np.ndarray) -> list[np.ndarray]:
    out = [np.asarray(a).astype(bool, copy=False) for a in arrays.values()]
    shapes = {a.shape for a in out}
    if len(shapes) != 1 or out[0].ndim != 3:
        found = ", ".join(f"{k} {np.shape(v)}" for k, v in arrays.items())
        raise UwavError(f"binary matrices have shapes {found}; expected one common [N, T, C]")
    return out


def per_video_scores(
    so_a: np.ndarray, so_v: np.ndarray, gt_a: np.ndarray, gt_v: np.ndarray
) -> dict[str, np.ndarray]:
    """The eight per-video F values (float64 [N], in [0, 1]) from binary predictions and GT [N, T, C].

    AV matrices are the AND of audio and visual; Event@AV pools audio and visual counts per class.
    """
    so_a, so_v, gt_a, gt_v = _check_bool(so_a=so_a, so_v=so_v, gt_a=gt_a, gt_v=gt_v)
    so_av, gt_av = so_a & so_v, gt_a & gt_v
    out: dict[str, np.ndarray] = {}
    for level, counts in (("segment", segment_counts), ("event", event_counts)):
        ca, cv, cav = counts(so_a, gt_a), counts(so_v, gt_v), counts(so_av, gt_av)
        out[f"{level}_audio"] = f_from_counts(*ca)
        out[f"{level}_visual"] = f_from_counts(*cv)
        out[f"{level}_audio_visual"] = f_from_counts(*cav)
        out[f"{level}_event_at_av"] = f_from_counts(*(x.astype(np.int64) + y for x, y in zip(ca, cv, strict=True)))
    return out


def llp_scores(so_a: np.ndarray, so_v: np.ndarray, gt_a: np.ndarray, gt_v: np.ndarray) -> dict[str, float]:
    """The ten LLP numbers in percent (flat names of METRIC_NAMES), means over all videos."""
    per_video = per_video_scores(so_a, so_v, gt_a, gt_v)
    if len(per_video["segment_audio"]) == 0:
        raise UwavError("cannot score an empty split (0 videos)")
    scores = {k: 100.0 * float(v.mean()) for k, v in per_video.items()}
    for level, _ in LEVELS:
        scores[f"{level}_type_at_av"] = (scores[f"{level}_audio"] + scores[f"{level}_visual"]
                                         + scores[f"{level}_audio_visual"]) / 3
    return Scores((k, scores[k]) for k in METRIC_NAMES)


def evaluate_probabilities(
    audio_prob: np.ndarray,
    visual_prob: np.ndarray,
    video_prob: np.ndarray,
    gt_a: np.ndarray,
    gt_v: np.ndarray,
    tie_rule: str = "ge",
) -> dict[str, float]:
    """Model outputs (probabilities [N, T, C] x2, video output [N, C]) -> the ten LLP numbers."""
    so_a, so_v = binarize(audio_prob, visual_prob, video_prob, tie_rule)
    return llp_scores(so_a, so_v, gt_a, gt_v)


def pseudo_label_scores(
    hard_a: np.ndarray, hard_v: np.ndarray, gt_a: np.ndarray, gt_v: np.ndarray
) -> dict[str, float]:
    """Quality of hard pseudo labels [N, T, C] (nonzero = positive): the ten numbers, no model gate.

    The gate is the true weak label, already applied when the labels were generated (evaluation.md §10).
    """
    return llp_scores(np.asarray(hard_a) != 0, np.asarray(hard_v) != 0, gt_a, gt_v)


def unav_seg_av(
    z_a: np.ndarray, z_v: np.ndarray, labels_av: np.ndarray, lengths: np.ndarray
) -> dict[str, float]:
    """UnAV-100 generator-selection metric (evaluation.md §11), in percent.

    z_a, z_v: logits [N, T, C]; labels_av: bool [N, T, C]; lengths: int [N] valid seconds per video.
    Prediction is sigmoid(z_a)·sigmoid(z_v) >= 0.5; positions at or past lengths[i] are ignored in
    both prediction and GT. Returns segment_audio_visual (Seg-av, used for selection) and event_audio_visual.
    """
    z_a, z_v = np.asarray(z_a, dtype=np.float64), np.asarray(z_v, dtype=np.float64)
    (labels,) = _check_bool(labels_av=labels_av)
    if z_a.shape != labels.shape or z_v.shape != labels.shape:
        raise UwavError(
            f"logits {z_a.shape} / {z_v.shape} and labels {labels.shape}: expected equal [N, T, C]"
        )
    n, t, _ = labels.shape
    lengths = np.asarray(lengths)
    if lengths.shape != (n,) or (lengths < 0).any() or (lengths > t).any():
        raise UwavError(f"lengths have shape {lengths.shape} or values outside 0..{t}; expected [N={n}]")
    valid = (np.arange(t)[None, :] < lengths[:, None])[:, :, None]
    # tanh form of the sigmoid: no overflow warnings for large |z|
    prob = 0.25 * (1 + np.tanh(z_a / 2)) * (1 + np.tanh(z_v / 2))
    pred = (prob >= 0.5) & valid
    gt = labels & valid
    if n == 0:
        raise UwavError("cannot score an empty split (0 videos)")
    return Scores(segment_audio_visual=100.0 * float(f_from_counts(*segment_counts(pred, gt)).mean()),
                  event_audio_visual=100.0 * float(f_from_counts(*event_counts(pred, gt)).mean()))


def ave_accuracy(pred_labels: np.ndarray, gt_labels: np.ndarray) -> float:
    """AVE segment accuracy in percent, pooled over all segments: int [N, T] labels (28 = background)."""
    pred_labels, gt_labels = np.asarray(pred_labels), np.asarray(gt_labels)
    if pred_labels.shape != gt_labels.shape or pred_labels.size == 0:
        raise UwavError(
            f"AVE labels: prediction {pred_labels.shape} vs GT {gt_labels.shape}; expected equal, non-empty"
        )
    return 100.0 * float((pred_labels == gt_labels).mean())


AVE_METRIC_NAMES: tuple[str, ...] = ("accuracy", *METRIC_NAMES)


def ave_segment_labels(
    audio_prob: np.ndarray, visual_prob: np.ndarray, video_prob: np.ndarray, threshold: float = 0.5
) -> np.ndarray:
    """Model outputs -> one AVE label per segment, int64 [N, T]; background = C (28 for AVE).

    evaluation.md §12's rule (a project choice, the paper's is unknown): the video's class is the argmax
    of its video-level probability [N, C] (one event per AVE clip, first index on ties); a segment gets
    that class when its audio AND visual probabilities [N, T, C] for it are >= `threshold`, else background.
    """
    audio_prob, visual_prob, video_prob = _probabilities(audio_prob, visual_prob, video_prob)
    n, _, c = audio_prob.shape
    cls = np.argmax(video_prob, axis=1) if n else np.zeros(0, dtype=np.int64)
    pick = cls[:, None, None]
    p_a = np.take_along_axis(audio_prob, pick, axis=2)[:, :, 0]
    p_v = np.take_along_axis(visual_prob, pick, axis=2)[:, :, 0]
    return np.where((p_a >= threshold) & (p_v >= threshold), cls[:, None], c).astype(np.int64)


def segment_labels_from_gt(gt: np.ndarray) -> np.ndarray:
    """Dense one-event GT bool [N, T, C] -> int64 [N, T] labels (class, or C for background).

    Like UWAV's AVE evaluator, more than one class in a segment is an error.
    """
    gt = np.asarray(gt).astype(bool, copy=False)
    if gt.ndim != 3:
        raise UwavError(f"AVE GT has shape {gt.shape}; expected [N, T, C]")
    count = gt.sum(axis=2)
    if (count > 1).any():
        n, t = np.argwhere(count > 1)[0]
        raise UwavError(f"AVE GT: video {n} segment {t} has {count[n, t]} classes; expected at most one")
    return np.where(count > 0, gt.argmax(axis=2), gt.shape[2]).astype(np.int64)


def evaluate_ave(
    audio_prob: np.ndarray,
    visual_prob: np.ndarray,
    video_prob: np.ndarray,
    gt: np.ndarray,
    tie_rule: str = "ge",
    threshold: float = 0.5,
) -> dict[str, float]:
    """AVE scores (AVE_METRIC_NAMES): segment accuracy (%) plus the ten LLP F-scores with gt_a = gt_v = gt.

    gt: the event mask bool [N, T, C] (AVE events are audio-visual). `tie_rule` applies to the F-scores'
    binarisation only; the accuracy labels use `ave_segment_labels` (>= threshold).
    """
    pred = ave_segment_labels(audio_prob, visual_prob, video_prob, threshold)
    scores = Scores(accuracy=ave_accuracy(pred, segment_labels_from_gt(gt)))
    scores.update(evaluate_probabilities(audio_prob, visual_prob, video_prob, gt, gt, tie_rule=tie_rule))
    return scores


def format_ave(scores: dict[str, float], title: str | None = None) -> str:
    """The accuracy line followed by the F-score table."""
    head = f"{title}: " if title else ""
    return f"{head}segment accuracy {scores['accuracy']:.2f}%\n" + format_table(scores)


def format_table(scores: dict[str, float], title: str | None = None) -> str:
    """Two-decimal table in the standard column order: rows Segment and Event."""
    lines = [title] if title else []
    lines.append(f"{'':<8}" + "".join(f"{h:>10}" for _, h in COLUMNS))
    for level, name in LEVELS:
        lines.append(f"{name:<8}" + "".join(f"{scores[f'{level}_{k}']:>10.2f}" for k, _ in COLUMNS))
    return "\n".join(lines)
