"""LLP metrics: public test vectors (evaluation.md §13), edge cases (§7), and property tests against a
straightforward per-row reference implementation of event matching (§15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from uwav import metrics as M
from uwav.data.llp import load_llp_split, read_dense_csv
from uwav.errors import UwavError

LLP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "llp"

# split, audio GT file, scheme, then the ten numbers in METRIC_NAMES order (evaluation.md §13)
VECTOR_TABLE = """
val  AVVP_eval_audio.csv        empty     0.616333 10.785824 14.329738 8.577298 0
                                          0.616333 10.785824 14.329738 8.577298 0
val  AVVP_eval_audio.csv        weak_all  77.074772 58.654129 52.072682 62.600528 71.533565
                                          63.848656 53.475432 44.149118 53.824402 61.120711
test AVVP_eval_audio.csv        empty     0.5 10.083333 14.5 8.361111 0 0.5 10.083333 14.5 8.361111 0
test AVVP_eval_audio.csv        weak_all  76.117616 60.347996 52.610299 63.025304 71.725774
                                          63.027249 55.752712 44.692063 54.490675 61.601091
test legacy/AVVP_eval_audio.csv weak_all  76.080238 60.347996 52.607236 63.011823 71.702918
                                          63.027249 55.752712 44.692063 54.490675 61.603869
"""
_tokens = VECTOR_TABLE.split()
VECTORS = [
    (*_tokens[i : i + 3], [float(x) for x in _tokens[i + 3 : i + 13]]) for i in range(0, len(_tokens), 13)
]


@pytest.mark.parametrize(("split", "audio", "scheme", "expected"), VECTORS)
def test_public_vectors(split, audio, scheme, expected):
    llp = load_llp_split(LLP, split, eval_audio=LLP / audio)
    weak = np.repeat(llp.weak[:, None, :] > 0, 10, axis=1)
    so = weak if scheme == "weak_all" else np.zeros_like(weak)
    scores = M.llp_scores(so, so, llp.gt_audio, llp.gt_visual)
    assert list(scores) == list(M.METRIC_NAMES)
    assert [round(scores[k], 6) for k in M.METRIC_NAMES] == pytest.approx(expected, abs=1e-9)
    # the same numbers through the pseudo-label and probability entry points
    assert M.pseudo_label_scores(so.astype(np.float32), so, llp.gt_audio, llp.gt_visual) == scores
    prob = so.astype(np.float64)
    via_prob = M.evaluate_probabilities(prob, prob, llp.weak, llp.gt_audio, llp.gt_visual)
    assert via_prob == scores


# ---- edge cases (evaluation.md §7) -------------------------------------------------------------


def zeros(n=1, t=10, c=25) -> np.ndarray:
    return np.zeros((n, t, c), dtype=bool)


def test_empty_gt_empty_pred_scores_one_and_any_pred_scores_zero():
    per = M.per_video_scores(zeros(), zeros(), zeros(), zeros())
    assert all(v.tolist() == [1.0] for v in per.values())
    pred = zeros()
    pred[0, 3, 7] = True
    per = M.per_video_scores(pred, zeros(), zeros(), zeros())
    assert per["segment_audio"].tolist() == [0.0] and per["event_audio"].tolist() == [0.0]
    # AND is still empty
    assert per["segment_visual"].tolist() == [1.0] and per["segment_audio_visual"].tolist() == [1.0]
    assert per["segment_event_at_av"].tolist() == [0.0]


def test_perfect_prediction_scores_100():
    rng = np.random.default_rng(0)
    gt_a, gt_v = rng.random((2, 40, 10, 25)) < 0.2
    gt_a[:5] = False  # include videos with empty GT
    scores = M.llp_scores(gt_a, gt_v, gt_a, gt_v)
    assert all(v == 100.0 for v in scores.values())
    noisy = gt_a ^ (rng.random(gt_a.shape) < 0.05)
    assert M.llp_scores(noisy, gt_v, gt_a, gt_v)["segment_audio"] < 100.0


def test_event_at_av_pools_counts_per_class():
    gt = zeros()
    gt[0, :, 0] = True
    per = M.per_video_scores(gt, zeros(), gt, gt)  # audio perfect (TP=10), visual all missed (FN=10)
    assert per["segment_audio"][0] == 1.0 and per["segment_visual"][0] == 0.0
    assert per["segment_event_at_av"][0] == pytest.approx(20 / 30)  # not the mean 0.5
    assert per["event_event_at_av"][0] == pytest.approx(2 / 3)  # events: TP=1, FN=1


def test_active_classes_only_and_f_value():
    gt, pred = zeros(), zeros()
    gt[0, 0:4, 2] = True
    pred[0, 2:6, 2] = True  # TP 2, FP 2, FN 2 -> F = 0.5
    pred[0, 0:10, 5] = True  # a wrong class: F = 0
    per = M.per_video_scores(pred, zeros(), gt, zeros())
    assert per["segment_audio"][0] == pytest.approx((0.5 + 0.0) / 2)
    assert per["event_audio"][0] == pytest.approx(0.0)  # [2,6) vs [0,4): IoU 2/6 < 0.5, class 5 unmatched


def test_iou_exactly_half_matches_and_just_below_does_not():
    gt, pred = zeros(), zeros()
    gt[0, 0:4, 0] = True
    pred[0, 0:2, 0] = True  # |P∩G| = 2, |P∪G| = 4
    tp, fp, fn = (x[0, 0] for x in M.event_counts(pred, gt))
    assert (tp, fp, fn) == (1, 0, 0)
    gt[0, 4, 0] = True  # union 5: 2 < 2.5
    tp, fp, fn = (x[0, 0] for x in M.event_counts(pred, gt))
    assert (tp, fp, fn) == (0, 1, 1)


def test_touching_degenerate_reversed_and_orphan_rows(tmp_path):
    names = ["AAAAAAAAAAA_0_10", "BBBBBBBBBBB_0_10"]
    dense = tmp_path / "a.csv"
    dense.write_text(
        "filename\tonset\toffset\tevent_labels\n"
        "AAAAAAAAAAA_0_10\t0\t2\tDog\nAAAAAAAAAAA_0_10\t2\t10\tDog\n"  # touching: one event 0..10
        "BBBBBBBBBBB_0_10\t4\t4\tCat\nBBBBBBBBBBB_0_10\t9\t0\tCat\n"  # degenerate + reversed: nothing
        "BBBBBBBBBB_0_10\t0\t10\tCat\n"  # orphan
    )
    gt = read_dense_csv(dense, names)
    pred = zeros(2)
    pred[0, :, 3] = True  # one 0..10 Dog event; unmerged GT [0,2) would be missed (IoU 0.2)
    per = M.per_video_scores(pred, zeros(2), gt, zeros(2))
    assert per["event_audio"].tolist() == [1.0, 1.0]  # video B: nothing predicted, nothing in GT -> 1.0
    assert per["segment_audio"].tolist() == [1.0, 1.0]


def test_tie_rule_on_exact_half():
    prob = np.full((1, 10, 25), 0.5)
    video = np.full((1, 25), 0.5)
    a, v = M.binarize(prob, prob, video, "ge")
    assert a.all() and v.all()
    a, v = M.binarize(prob, prob, video, "gt")
    assert not a.any() and not v.any()
    a, _ = M.binarize(prob + 0.1, prob, np.full((1, 25), 0.49), "ge")
    assert not a.any()  # the video-level gate filters the segments
    with pytest.raises(UwavError, match="tie_rule 'gte'"):
        M.binarize(prob, prob, video, "gte")
    with pytest.raises(UwavError, match="video probabilities"):
        M.binarize(prob, prob, video[:, :3])


def test_video_gate_threshold_is_unclamped():
    prob = np.ones((1, 10, 25))
    a, _ = M.binarize(prob, prob, np.full((1, 25), 1.7))  # MMIL output lies in (0, 2)
    assert a.all()


def test_reporting_helpers():
    scores = dict(zip(M.METRIC_NAMES, np.arange(10) + 0.123456, strict=True))
    assert M.METRIC_NAMES[:5] == ("segment_audio", "segment_visual", "segment_audio_visual", "segment_type_at_av",
                                  "segment_event_at_av")
    assert M.TITLES["event_type_at_av"] == "Event Type@AV" and M.canonical_name("seg_type") == "segment_type_at_av"
    table = M.format_table(scores, title="T")
    lines = table.splitlines()
    assert lines[0] == "T" and lines[1].split() == ["Audio", "Visual", "AV", "Type@AV", "Event@AV"]
    assert lines[2].split() == ["Segment", "0.12", "1.12", "2.12", "3.12", "4.12"]
    assert lines[3].split() == ["Event", "5.12", "6.12", "7.12", "8.12", "9.12"]


def test_shape_errors():
    with pytest.raises(UwavError, match="expected one common"):
        M.llp_scores(zeros(2), zeros(3), zeros(2), zeros(2))


# ---- UnAV generator metric and AVE accuracy ----------------------------------------------------


def test_unav_seg_av_ignores_padding():
    rng = np.random.default_rng(1)
    n, t, c = 6, 30, 100
    lengths = np.array([30, 12, 7, 1, 0, 25])
    z_a, z_v = rng.normal(0, 3, (2, n, t, c))
    labels = rng.random((n, t, c)) < 0.05
    got = M.unav_seg_av(z_a, z_v, labels, lengths)
    # garbage in the padded tail must not change anything
    pad = np.arange(t)[None, :, None] >= lengths[:, None, None]
    got_garbage = M.unav_seg_av(np.where(pad, 50.0, z_a), np.where(pad, 50.0, z_v), labels | pad, lengths)
    assert got_garbage == got
    # reference: each video on its own valid prefix
    seg, ev = [], []
    for i in range(n):
        L = lengths[i]
        pred = (1 / (1 + np.exp(-z_a[i, :L])) * (1 / (1 + np.exp(-z_v[i, :L]))) >= 0.5)[None]
        gt = labels[i, :L][None]
        seg.append(M.f_from_counts(*M.segment_counts(pred, gt))[0])
        ev.append(M.f_from_counts(*(x for x in ref_event_counts(pred[0].T, gt[0].T)))[()])
    assert got["segment_audio_visual"] == pytest.approx(100 * np.mean(seg), abs=1e-12)
    assert got["event_audio_visual"] == pytest.approx(100 * np.mean(ev), abs=1e-12)
    assert set(got) == {"segment_audio_visual", "event_audio_visual"}
    perfect = M.unav_seg_av(np.where(labels, 9.0, -9.0), np.full((n, t, c), 9.0), labels, lengths)
    assert perfect == {"segment_audio_visual": 100.0, "event_audio_visual": 100.0}
    with pytest.raises(UwavError, match="lengths"):
        M.unav_seg_av(z_a, z_v, labels, lengths + 1)


def test_ave_accuracy_pooled():
    gt = np.array([[1] * 10, [28] * 5 + [3] * 5])
    pred = np.array([[1] * 9 + [28], [28] * 10])
    assert M.ave_accuracy(pred, gt) == pytest.approx(100 * 14 / 20)
    with pytest.raises(UwavError):
        M.ave_accuracy(pred[:1], gt)


# ---- property tests against a per-row reference ------------------------------------------------


def ref_runs(row) -> list[tuple[int, int]]:
    out, start = [], None
    for t, x in enumerate(list(row) + [False]):
        if x and start is None:
            start = t
        elif not x and start is not None:
            out.append((start, t))
            start = None
    return out


def ref_event_counts(pred_rows, gt_rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows [R, T] -> (TP, FP, FN) [R], following the evaluation.md §15 pseudo-code."""
    tp, fp, fn = [], [], []
    for p_row, g_row in zip(pred_rows, gt_rows, strict=True):
        pe, ge = ref_runs(p_row), ref_runs(g_row)

        def match(p, g):
            inter = max(0, min(p[1], g[1]) - max(p[0], g[0]))
            union = (p[1] - p[0]) + (g[1] - g[0]) - inter
            return inter >= 0.5 * union

        tp.append(sum(any(match(p, g) for g in ge) for p in pe))
        fp.append(len(pe) - tp[-1])
        fn.append(sum(not any(match(p, g) for p in pe) for g in ge))
    return np.array(tp), np.array(fp), np.array(fn)


def bool_mats(t_min, t_max):
    return st.integers(t_min, t_max).flatmap(
        lambda t: st.tuples(
            arrays(bool, (3, t, 4), elements=st.booleans()), arrays(bool, (3, t, 4), elements=st.booleans())
        )
    )


@settings(max_examples=150, deadline=None)
@given(bool_mats(1, 24))
def test_event_counts_match_reference(pg):
    pred, gt = pg  # T <= 10 uses the lookup table, longer rows the run-id path
    got = M.event_counts(pred, gt)
    want = ref_event_counts(
        pred.transpose(0, 2, 1).reshape(-1, pred.shape[1]), gt.transpose(0, 2, 1).reshape(-1, pred.shape[1])
    )
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(g).reshape(-1), w)


def test_event_table_exhaustive_against_reference_sample():
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 1024, size=(2, 3000))
    rows = (codes[..., None] >> np.arange(10)) & 1 == 1
    want = ref_event_counts(rows[0], rows[1])
    table = M._table()
    for k in range(3):
        np.testing.assert_array_equal(table[codes[0], codes[1], k], want[k])


@settings(max_examples=150, deadline=None)
@given(bool_mats(1, 16))
def test_f_rule_properties(pg):
    pred, gt = pg
    seg = M.f_from_counts(*M.segment_counts(pred, gt))
    ev_counts = M.event_counts(pred, gt)
    ev = M.f_from_counts(*ev_counts)
    for f in (seg, ev):
        assert ((f >= 0) & (f <= 1)).all()
    # segment F is 1 exactly when prediction equals GT; both are symmetric in (pred, GT)
    np.testing.assert_array_equal(seg == 1.0, (pred == gt).all(axis=(1, 2)))
    np.testing.assert_allclose(M.f_from_counts(*M.segment_counts(gt, pred)), seg, rtol=0, atol=1e-15)
    np.testing.assert_allclose(M.f_from_counts(*M.event_counts(gt, pred)), ev, rtol=0, atol=1e-15)
    # matching is one-to-one, so TP+FP counts predicted events and TP+FN counts GT events
    tp, fp, fn = (np.asarray(x) for x in ev_counts)
    n_runs = lambda x: (x & ~np.pad(x, ((0, 0), (1, 0), (0, 0)))[:, :-1]).sum(axis=1)  # noqa: E731
    np.testing.assert_array_equal(tp + fp, n_runs(pred))
    np.testing.assert_array_equal(tp + fn, n_runs(gt))
    # identical rows: event F is 1 as well
    assert (M.f_from_counts(*M.event_counts(gt, gt)) == 1.0).all()


def test_scores_keep_answering_to_their_legacy_short_names():
    scores = M.evaluate_probabilities(np.full((1, 10, 25), 0.9), np.full((1, 10, 25), 0.1), np.full((1, 25), 0.9),
                                      np.ones((1, 10, 25), bool), np.zeros((1, 10, 25), bool))
    assert list(scores) == list(M.METRIC_NAMES)  # serialised under the current names only
    assert scores["seg_a"] == scores["segment_audio"] == 100.0 and "ev_type" in scores
    assert scores.get("seg_v") == scores["segment_visual"] and scores.get("nope", -1) == -1
    with pytest.raises(KeyError):
        scores["seg_nope"]
