"""Paired comparison of two configurations trained with the same seeds: is the winner better at all?

Both configurations are trained once per seed with identical seeds, so seed s of the winner and seed s
of the reference share the data order and the initialisation draw. The per-seed differences
d_s = winner_s - reference_s remove the part of the seed noise the two share, and the question becomes
whether the mean of d differs from 0:

  mean ± std      each configuration's mean and sample standard deviation (ddof = 1) over the seeds
  difference      mean(d) ± std(d): the paired difference and its sample standard deviation
  95% interval   mean(d) ± t(0.975, n-1) · std(d) / sqrt(n): Student's t interval on the paired
                  differences (assumes d is roughly normal; with 3-5 seeds nothing better is checkable)
  p-value         two-sided paired t-test of mean(d) = 0, t = mean(d) / (std(d) / sqrt(n)), n-1 degrees
                  of freedom; below 0.05 exactly when the 95% interval excludes 0

Degenerate cases: with one seed there is no spread, so no interval and no p-value (the verdict is "not
distinguishable"); when every seed gives the same difference (zero variance, e.g. training that ignores
the seed) a non-zero difference has p = 0 and a zero-width interval, and the result says the seeds did
not vary it. The t distribution's CDF is computed here (regularized incomplete beta by a continued
fraction), numpy only: scipy is not a dependency.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from uwav.errors import UwavError

CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE  # the verdict's significance level, tied to the interval
INTERVAL_METHOD = "Student t on the paired per-seed differences"
TEST_METHOD = "two-sided paired t-test"

# ---- Student's t distribution ---------------------------------------------------------------------


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), valid for x < (a + 1) / (a + b + 2)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        # even step, then odd step of the fraction's coefficients
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= c * d
        if abs(c * d - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta did not converge (a={a}, b={b}, x={x})")


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0) or not 0.0 <= x <= 1.0:
        raise ValueError(f"regularized_beta needs a, b > 0 and 0 <= x <= 1; got a={a}, b={b}, x={x}")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(log_front)
    # The fraction converges fast only on one side of the mean; use the symmetry I_x(a,b) = 1 - I_1-x(b,a).
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"t distribution needs df > 0; got {df}")
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    # P(|T| > |t|) = I_{df / (df + t²)}(df / 2, 1 / 2)
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_cdf(t: float, df: float) -> float:
    return 1.0 - t_sf(t, df)


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|)."""
    return min(1.0, 2.0 * t_sf(abs(t), df))


def t_quantile(p: float, df: float) -> float:
    """The t value with P(T <= t) = p (bisection on the CDF; monotone, so exact to ~1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile needs 0 < p < 1; got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ---- summaries --------------------------------------------------------------------------------------


def _values(values: Sequence[float], what: str) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise UwavError(f"{what}: no values (0 seeds)")
    if not all(math.isfinite(v) for v in out):
        raise UwavError(f"{what}: non-finite value in {out}")
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """(mean, sample standard deviation); the std is None for a single value (undefined, not 0)."""
    v = _values(values, "mean_std")
    mean = math.fsum(v) / len(v)
    if len(v) < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in v) / (len(v) - 1))


def _is_zero_spread(std: float, values: Sequence[float]) -> bool:
    # Differences of scores like 65.3 - 64.5 carry float noise of ~1e-14; treat that as no spread.
    scale = max([1.0, *(abs(x) for x in values)])
    return std <= 1e-12 * scale


@dataclass(frozen=True)
class PairedDifference:
    """One metric: winner and reference over the same seeds, and the paired winner - reference."""

    metric: str
    seeds: tuple[int, ...]
    winner_mean: float
    winner_std: float | None
    reference_mean: float
    reference_std: float | None
    diff_mean: float
    diff_std: float | None  # None with one seed
    ci_low: float | None  # the 95% t interval of the mean difference; None with one seed
    ci_high: float | None
    t: float | None  # the paired t statistic; inf when the difference does not vary but is not 0
    p_value: float | None  # two-sided; None with one seed
    verdict: str  # "better", "worse" or "indistinguishable" (at the 5% level, i.e. the interval and 0)
    zero_variance: bool  # every seed gave the same difference (the t-test is degenerate)

    @property
    def n(self) -> int:
        return len(self.seeds)

    def to_json(self) -> dict:
        out = asdict(self)
        out["seeds"] = list(self.seeds)
        out["n"] = self.n
        if self.t is not None and math.isinf(self.t):
            out["t"] = "inf" if self.t > 0 else "-inf"  # JSON has no infinity
        return out


def paired_difference(metric: str, seeds: Sequence[int], winner: Sequence[float],
                      reference: Sequence[float], confidence: float = CONFIDENCE) -> PairedDifference:
    """Compare `winner` and `reference`, given per seed in the order of `seeds`."""
    w, r = _values(winner, f"{metric} winner"), _values(reference, f"{metric} reference")
    if not len(w) == len(r) == len(seeds):
        raise UwavError(f"{metric}: {len(w)} winner and {len(r)} reference values for {len(seeds)} seeds; a "
                        f"paired comparison needs one of each per seed")
    d = [a - b for a, b in zip(w, r, strict=True)]
    w_mean, w_std = mean_std(w)
    r_mean, r_std = mean_std(r)
    d_mean, d_std = mean_std(d)
    n = len(d)
    if d_std is None:  # one seed: a difference, but nothing to measure its noise with
        return PairedDifference(metric, tuple(seeds), w_mean, w_std, r_mean, r_std, d_mean, None, None, None,
                                None, None, "indistinguishable", False)
    zero = _is_zero_spread(d_std, d)
    if zero:
        d_std = 0.0
        if _is_zero_spread(abs(d_mean), d):
            t, p = 0.0, 1.0
        else:
            t, p = math.copysign(math.inf, d_mean), 0.0
        low = high = d_mean
    else:
        se = d_std / math.sqrt(n)
        t = d_mean / se
        p = t_two_sided_p(t, n - 1)
        half = t_quantile(0.5 + confidence / 2.0, n - 1) * se
        low, high = d_mean - half, d_mean + half
    alpha = 1.0 - confidence
    verdict = "indistinguishable" if p >= alpha else ("better" if d_mean > 0 else "worse")
    return PairedDifference(metric, tuple(seeds), w_mean, w_std, r_mean, r_std, d_mean, d_std, low, high, t, p,
                            verdict, zero)


def compare_runs(winner: Mapping[int, Mapping[str, float]], reference: Mapping[int, Mapping[str, float]],
                 metrics: Sequence[str] | None = None) -> dict[str, PairedDifference]:
    """{metric: PairedDifference} from per-seed scores {seed: {metric: value}} of both configurations.

    Pairs by seed: both must hold the same seeds. `metrics` defaults to the metrics both report, in the
    winner's order.
    """
    if set(winner) != set(reference):
        only_w, only_r = sorted(set(winner) - set(reference)), sorted(set(reference) - set(winner))
        raise UwavError(f"paired comparison needs the same seeds on both sides; winner only: {only_w}, "
                        f"reference only: {only_r}")
    if not winner:
        raise UwavError("paired comparison of 0 seeds")
    seeds = sorted(winner)
    if metrics is None:
        first_w, first_r = winner[seeds[0]], reference[seeds[0]]
        metrics = [k for k in first_w if k in first_r]
    out = {}
    for m in metrics:
        missing = [s for s in seeds if m not in winner[s] or m not in reference[s]]
        if missing:
            raise UwavError(f"metric {m} is missing for seed(s) {missing}")
        out[m] = paired_difference(m, seeds, [winner[s][m] for s in seeds], [reference[s][m] for s in seeds])
    return out


# ---- words -----------------------------------------------------------------------------------------


def format_p(p: float | None) -> str:
    if p is None:
        return "p n/a"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def _signed(x: float, digits: int = 2) -> str:
    x = 0.0 if abs(x) < 0.5 * 10**-digits else x  # no "-0.00"
    return f"{x:+.{digits}f}"


def sentence(who: str, diff: PairedDifference, split: str, against: str = "the reference",
             label: str | None = None) -> str:
    """The plain verdict, e.g. "rank 1 beats the reference by +0.80 ± 0.30 Segment Type@AV on test
    (95% CI +0.43 to +1.17, p = 0.021, 5 seeds)"; `label` names the metric (default: its key)."""
    label = label or diff.metric
    seeds = f"{diff.n} seed{'s' if diff.n != 1 else ''}"
    if diff.diff_std is None:
        return (f"{who} is not distinguishable from {against} on {label} on {split}: {_signed(diff.diff_mean)} "
                f"from {seeds}, which gives no spread, interval or p-value (use 2 or more seeds)")
    amount = f"{_signed(diff.diff_mean)} ± {diff.diff_std:.2f}"
    detail = (f"{round(100 * CONFIDENCE)}% CI {_signed(diff.ci_low)} to {_signed(diff.ci_high)}, "
              f"{format_p(diff.p_value)}, {seeds}")
    if diff.zero_variance and diff.diff_std == 0.0:
        detail += "; the difference was identical for every seed, so the seeds did not vary it"
    if diff.verdict == "better":
        return f"{who} beats {against} by {amount} {label} on {split} ({detail})"
    if diff.verdict == "worse":
        return f"{who} is worse than {against} by {amount} {label} on {split} ({detail})"
    return f"{who} is not distinguishable from {against} on {label} on {split}: {amount} ({detail})"
