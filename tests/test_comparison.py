"""uwav.sweep.comparison: the final report's JSON, console table and markdown from per-seed scores."""

from __future__ import annotations

import json
import math

import pytest

from uwav.metrics import METRIC_NAMES
from uwav.sweep.comparison import Configuration, build_report, format_console, format_markdown

SEEDS = (20001, 20002, 20003)
OBJECTIVE = "segment_type_at_av"


def _scores(objective: list[float], rest: float) -> dict[int, dict[str, float]]:
    return {s: {m: (objective[i] if m == OBJECTIVE else rest + i) for m in METRIC_NAMES}
            for i, s in enumerate(SEEDS)}


def _pair(winner_val, winner_test, ref_val, ref_test):
    winner = Configuration("rank1", "rank 1 (trial abc)", {"val": _scores(winner_val, 60.0),
                                                           "test": _scores(winner_test, 60.0)},
                           params={"loss.W": 0.3}, trial_id="abc")
    reference = Configuration("reference", "reference: paper (points_to_evaluate[0])",
                              {"val": _scores(ref_val, 59.0), "test": _scores(ref_test, 60.0)},
                              nickname="the paper's settings")
    return winner, reference


def test_report_numbers_and_sentences():
    # val: d = [1.0, 1.2, 0.8] (clearly better); test: d = [0.5, -0.5, 0.0] (no better).
    winner, reference = _pair([65.0, 65.2, 64.8], [64.5, 63.5, 64.0], [64.0, 64.0, 64.0], [64.0, 64.0, 64.0])
    report = build_report([winner], reference, "segment_type_at_av", seeds=list(SEEDS))
    json.dumps(report)
    conf = {c["key"]: c for c in report["configurations"]}
    assert conf["rank1"]["test"]["segment_type_at_av"] == {"mean": pytest.approx(64.0), "std": pytest.approx(0.5)}
    assert conf["reference"]["val_seeds"] == list(SEEDS)
    assert conf["rank1"]["val_per_seed"]["20002"]["segment_type_at_av"] == 65.2
    val, test = report["comparisons"]
    assert (val["split"], test["split"]) == ("val", "test")
    d = val["metrics"]["segment_type_at_av"]
    assert d["diff_mean"] == pytest.approx(1.0) and d["diff_std"] == pytest.approx(0.2)
    half = 4.302652729749464 * 0.2 / math.sqrt(3)  # t(0.975, 2)
    assert (d["ci_low"], d["ci_high"]) == (pytest.approx(1.0 - half), pytest.approx(1.0 + half))
    assert d["verdict"] == "better"
    assert val["sentence"].startswith("rank 1 beats the reference (the paper's settings) by +1.00 ± 0.20 "
                                      "Segment Type@AV on val")
    assert test["metrics"]["segment_type_at_av"]["verdict"] == "indistinguishable"
    assert test["metrics"]["segment_type_at_av"]["p_value"] == pytest.approx(1.0)
    assert test["sentence"].startswith("rank 1 is not distinguishable from the reference (the paper's settings) "
                                       "on Segment Type@AV on test: +0.00 ± 0.50")
    # val: every other metric differs by exactly 1 on every seed (zero variance); test: by 0.
    assert val["metrics"]["event_audio"]["zero_variance"] and val["metrics"]["event_audio"]["verdict"] == "better"
    assert test["metrics"]["event_audio"]["diff_mean"] == 0.0 and test["metrics"]["event_audio"]["p_value"] == 1.0

    text = format_console(report)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 120
    assert sum(line.startswith("Segment Type@AV") for line in lines) == 2
    test_block = text[text.index("test: rank 1"):]
    assert "not distinguishable" in test_block and "Segment Event@AV" in test_block
    assert lines[-1].endswith("verdict: p < 0.05")  # the test table and its sentence come last, then the legend
    md = format_markdown(report, ["seeds: fresh"])
    assert "| Segment Type@AV | 64.00 ± 0.50 | 64.00 ± 0.00 | +0.00 ± 0.50 |" in md and "seeds: fresh" in md


def test_without_reference_only_mean_std():
    winner, _ = _pair([65.0, 65.2, 64.8], [64.5, 63.5, 64.0], [0, 0, 0], [0, 0, 0])
    report = build_report([winner], None, "segment_type_at_av")
    assert report["comparisons"] == []
    text = format_console(report)
    assert "reference" not in text and "64.00 ± 0.50" in text


def test_ave_accuracy_is_listed_first():
    scores = {s: {"segment_audio": 1.0 + i, "accuracy": 70.0 + i} for i, s in enumerate(SEEDS)}
    a = Configuration("rank1", "rank 1", {"test": scores})
    b = Configuration("reference", "reference", {"test": {s: {k: v - 1 for k, v in m.items()}
                                                          for s, m in scores.items()}})
    report = build_report([a], b, "accuracy")
    (comp,) = report["comparisons"]
    assert list(comp["metrics"]) == ["accuracy", "segment_audio"]
    assert "Accuracy" in comp["sentence"] and "on test" in comp["sentence"]
