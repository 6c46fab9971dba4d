"""uwav.stats: the t distribution against closed forms and t-table values, the paired comparison by hand."""

from __future__ import annotations

import math

import pytest

from uwav.errors import UwavError
from uwav.stats import (
    compare_runs,
    format_p,
    mean_std,
    paired_difference,
    regularized_beta,
    sentence,
    t_cdf,
    t_quantile,
    t_two_sided_p,
)


def _t4_cdf(t: float) -> float:
    """Student t CDF with 4 degrees of freedom in closed form."""
    u = t * t / 4.0
    return 0.5 + 3.0 / 8.0 * t / math.sqrt(1.0 + u) * (1.0 - u / (3.0 * (1.0 + u)))


@pytest.mark.parametrize("t", [-7.0, -1.3, 0.0, 0.4, 1.0, 2.5, 9.0, 40.0])
def test_t_cdf_matches_closed_forms(t):
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-13)  # Cauchy
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2.0 * math.sqrt(2.0 + t * t)), abs=1e-13)
    assert t_cdf(t, 4) == pytest.approx(_t4_cdf(t), abs=1e-13)


def test_regularized_beta_known_values():
    assert regularized_beta(1.0, 1.0, 0.3) == pytest.approx(0.3, abs=1e-14)  # uniform
    assert regularized_beta(2.0, 3.0, 0.4) == pytest.approx(0.5248, abs=1e-12)  # P(Binomial(4, 0.4) >= 2)
    a, b, x = 2.5, 0.5, 0.7
    assert regularized_beta(a, b, x) == pytest.approx(1.0 - regularized_beta(b, a, 1.0 - x), abs=1e-14)


# Two-sided 5 % and 1 % critical values of a printed t table (three decimals).
T_TABLE_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 29: 2.045}
T_TABLE_995 = {1: 63.657, 4: 4.604, 9: 3.250}


@pytest.mark.parametrize("df", sorted(T_TABLE_975))
def test_quantiles_and_p_values_reproduce_the_t_table(df):
    assert round(t_quantile(0.975, df), 3) == T_TABLE_975[df]
    # The table value rounded to 3 decimals moves p by less than this.
    assert t_two_sided_p(T_TABLE_975[df], df) == pytest.approx(0.05, abs=2e-4)
    assert t_two_sided_p(-T_TABLE_975[df], df) == pytest.approx(0.05, abs=2e-4)


@pytest.mark.parametrize("df", sorted(T_TABLE_995))
def test_one_percent_critical_values(df):
    assert round(t_quantile(0.995, df), 3) == T_TABLE_995[df]
    assert t_two_sided_p(T_TABLE_995[df], df) == pytest.approx(0.01, abs=1e-4)
    assert t_quantile(0.005, df) == pytest.approx(-t_quantile(0.995, df))


def test_winner_that_beats_the_reference_matches_a_hand_computation():
    # d = [0.8, 0.6, 0.5, 0.9, 0.6]: mean 0.68, squared deviations sum 0.108, var 0.027.
    winner, reference = [65.0, 65.5, 64.8, 65.3, 65.1], [64.2, 64.9, 64.3, 64.4, 64.5]
    d = paired_difference("segment_type_at_av", [7, 8, 9, 10, 11], winner, reference)
    sd = math.sqrt(0.027)
    t = 0.68 / (sd / math.sqrt(5))
    assert d.winner_mean == pytest.approx(65.14) and d.reference_mean == pytest.approx(64.46)
    assert d.winner_std == pytest.approx(math.sqrt(0.292 / 4))  # deviations -.14 .36 -.34 .16 -.04
    assert d.diff_mean == pytest.approx(0.68) and d.diff_std == pytest.approx(sd)
    assert d.t == pytest.approx(t)
    assert d.p_value == pytest.approx(2.0 * (1.0 - _t4_cdf(t)), rel=1e-9)
    half = 2.7764451051977934 * sd / math.sqrt(5)  # t(0.975, 4)
    assert (d.ci_low, d.ci_high) == (pytest.approx(0.68 - half), pytest.approx(0.68 + half))
    assert d.verdict == "better" and d.n == 5
    text = sentence("rank 1", d, "test", label="Segment Type@AV")
    assert text.startswith("rank 1 beats the reference by +0.68 ± 0.16 Segment Type@AV on test")
    assert "p < 0.001" in text and "5 seeds" in text and "+0.48 to +0.88" in text


def test_winner_no_better_says_so():
    # d = [-0.5, 0.4, 0.1]: mean 0, so t = 0 and p = 1.
    d = paired_difference("segment_type_at_av", [1, 2, 3], [64.0, 65.0, 64.5], [64.5, 64.6, 64.4])
    assert d.diff_mean == pytest.approx(0.0, abs=1e-12)
    assert d.diff_std == pytest.approx(math.sqrt((0.25 + 0.16 + 0.01) / 2))
    assert d.p_value == pytest.approx(1.0)
    assert d.ci_low < 0 < d.ci_high
    assert d.verdict == "indistinguishable"
    text = sentence("rank 1", d, "val", label="Segment Type@AV")
    assert text.startswith("rank 1 is not distinguishable from the reference on Segment Type@AV on val: +0.00 ± 0.46")
    assert "p = 1.00, 3 seeds" in text


def test_a_positive_but_noisy_difference_is_not_distinguishable():
    # d = [1.0, -0.4, 0.9]: mean 0.5 but the interval holds 0.
    d = paired_difference("event_audio", [1, 2, 3], [60.0, 59.6, 60.9], [59.0, 60.0, 60.0])
    assert d.diff_mean == pytest.approx(0.5)
    assert d.ci_low < 0 < d.ci_high and d.p_value > 0.05
    assert d.verdict == "indistinguishable"
    assert "is not distinguishable" in sentence("rank 2", d, "test")


def test_worse_winner():
    d = paired_difference("segment_audio", [1, 2, 3, 4], [60.0, 60.1, 59.9, 60.2], [61.0, 61.3, 60.8, 61.1])
    assert d.diff_mean == pytest.approx(-1.0)
    assert d.verdict == "worse" and d.p_value < 0.05 and d.ci_high < 0
    text = sentence("rank 1", d, "test", label="Segment Audio")
    assert text.startswith("rank 1 is worse than the reference by -1.00 ± ") and "Segment Audio on test" in text


def test_p_value_and_interval_agree_at_five_percent():
    # Same mean difference, growing noise: the verdict flips exactly where the interval reaches 0.
    for spread in (0.1, 0.3, 0.6, 0.9, 1.2, 2.0):
        d = paired_difference("segment_type_at_av", [1, 2, 3, 4], [1.0 + spread, 1.0 - spread, 1.0, 1.0], [0.0] * 4)
        assert (d.p_value < 0.05) == (d.ci_low > 0)


def test_one_seed_has_no_interval_and_no_verdict():
    d = paired_difference("segment_type_at_av", [5], [66.0], [65.0])
    assert d.diff_mean == pytest.approx(1.0)
    assert d.diff_std is None and d.ci_low is None and d.p_value is None and d.winner_std is None
    assert d.verdict == "indistinguishable"
    text = sentence("rank 1", d, "test", label="Segment Type@AV")
    assert "not distinguishable" in text and "1 seed," in text and "2 or more seeds" in text
    assert d.to_json()["p_value"] is None


def test_zero_variance_differences():
    same = paired_difference("segment_type_at_av", [1, 2, 3], [65.0, 65.0, 65.0], [65.0, 65.0, 65.0])
    assert (same.diff_std, same.p_value, same.verdict, same.zero_variance) == (0.0, 1.0, "indistinguishable", True)
    # A constant shift with float noise in the differences (65.3 - 64.5 is not exactly 0.8 every time).
    shifted = paired_difference("segment_type_at_av", [1, 2, 3], [65.3, 66.3, 64.3], [64.5, 65.5, 63.5])
    assert shifted.zero_variance and shifted.diff_std == 0.0
    assert shifted.p_value == 0.0 and shifted.verdict == "better"
    assert shifted.ci_low == shifted.ci_high == pytest.approx(0.8)
    assert "identical for every seed" in sentence("rank 1", shifted, "test")
    assert shifted.to_json()["t"] == "inf"


def test_compare_runs_pairs_by_seed_not_by_position():
    t, e = "segment_type_at_av", "event_audio"
    winner = {11: {t: 65.0, e: 1.0}, 10: {t: 66.0, e: 2.0}}
    reference = {10: {t: 65.5, e: 2.0}, 11: {t: 64.0, e: 1.0}}
    out = compare_runs(winner, reference)
    assert list(out) == ["segment_type_at_av", "event_audio"]
    assert out["segment_type_at_av"].seeds == (10, 11)
    assert out["segment_type_at_av"].diff_mean == pytest.approx((0.5 + 1.0) / 2)
    assert out["event_audio"].diff_mean == 0.0 and out["event_audio"].zero_variance
    with pytest.raises(UwavError, match="same seeds"):
        compare_runs(winner, {10: reference[10], 12: reference[11]})
    with pytest.raises(UwavError, match="missing for seed"):
        compare_runs(winner, reference, metrics=["segment_type_at_av", "accuracy"])


def test_small_helpers():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([4.0]) == (4.0, None)
    assert format_p(0.0004) == "p < 0.001" and format_p(0.021) == "p = 0.021" and format_p(0.68) == "p = 0.68"
    with pytest.raises(UwavError):
        paired_difference("segment_type_at_av", [1, 2], [1.0, 2.0], [1.0])
    with pytest.raises(UwavError):
        mean_std([float("nan"), 1.0])
