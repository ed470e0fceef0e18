"""Intervals over seeds and samples, paired differences, verdicts and table formatting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coldflow.metrics.intervals import (
    Interval,
    bootstrap_interval,
    format_interval,
    mean_interval,
    paired_difference,
    verdict,
)


def test_the_t_interval_of_a_known_sample_is_the_textbook_value() -> None:
    # 1..5: mean 3, s = sqrt(2.5), t_{0.975, 4} = 2.7764451, half = t s / sqrt(5)
    ci = mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert ci.mean == 3.0
    assert ci.half_width == pytest.approx(2.7764451052 * math.sqrt(2.5) / math.sqrt(5), rel=1e-9)
    assert ci.low == pytest.approx(1.0367568, abs=1e-6)
    # two values: t_{0.975, 1} = 12.7062047 times s / sqrt(2) = |a - b| / 2
    assert mean_interval([0.0, 2.0]).half_width == pytest.approx(12.7062047362, rel=1e-9)
    assert mean_interval([1.0, 2.0, 3.0, 4.0, 5.0], level=0.5).half_width < ci.half_width


def test_one_seed_gives_an_unbounded_interval_not_a_zero_one() -> None:
    ci = mean_interval([0.25])
    assert ci.mean == 0.25 and ci.low == -math.inf and ci.high == math.inf
    assert not ci.excludes_zero()
    assert mean_interval([0.5, 0.5, 0.5]) == Interval(0.5, 0.5, 0.5)


def test_a_bootstrap_of_a_constant_is_exactly_a_point() -> None:
    ci = bootstrap_interval(np.full(37, 0.1))
    assert ci == Interval(0.1, 0.1, 0.1)
    one = bootstrap_interval([3.0])
    assert (one.low, one.high) == (-math.inf, math.inf)


def test_the_bootstrap_is_seeded_and_matches_the_normal_interval_for_many_samples() -> None:
    x = np.random.default_rng(1).normal(2.0, 1.0, size=400)
    a, b = bootstrap_interval(x, seed=7), bootstrap_interval(x, seed=7)
    assert a == b and a != bootstrap_interval(x, seed=8)
    assert a.mean == pytest.approx(x.mean()) and a.low < a.mean < a.high
    # the mean of 400 values: half-width about 1.96 s / sqrt(n)
    normal = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert a.half_width == pytest.approx(normal, rel=0.1)


def test_a_paired_difference_of_identical_runs_is_exactly_zero() -> None:
    a = np.random.default_rng(2).uniform(size=(3, 10))
    assert paired_difference(a, a.copy()) == Interval(0.0, 0.0, 0.0)
    assert paired_difference(a[0], a[0]) == Interval(0.0, 0.0, 0.0)  # one seed as well


def test_a_paired_difference_counts_the_seed_spread_and_the_simulation_spread() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(1, 2, size=(1, 40)).repeat(4, axis=0)  # hard simulations are hard for both
    a = base + 0.1 + rng.normal(0, 0.01, size=(4, 40))
    ci = paired_difference(a, base)
    assert ci.mean == pytest.approx((a - base).mean())
    assert ci.low < ci.mean < ci.high and ci.low > 0  # the 0.1 offset is detected
    # an offset per seed: the seed term alone (the simulations agree within each seed)
    offsets = np.array([[0.1], [0.3], [-0.1], [0.2]])
    seeds_only = paired_difference(base + offsets, base)
    expected = mean_interval(offsets[:, 0])
    assert seeds_only.mean == pytest.approx(expected.mean)
    assert seeds_only.low == pytest.approx(expected.low) and seeds_only.high == pytest.approx(
        expected.high
    )
    # one seed with a non-zero difference: its seed spread is unknown
    single = paired_difference(a[:1], base[:1])
    assert (single.low, single.high) == (-math.inf, math.inf)
    with pytest.raises(ValueError, match="one shape"):
        paired_difference(a, base[:2])


def test_a_verdict_says_beats_only_when_the_interval_excludes_zero() -> None:
    rng = np.random.default_rng(4)
    ref = rng.uniform(1, 2, size=(3, 30))
    better = paired_difference(ref - 0.2 + rng.normal(0, 0.01, ref.shape), ref)
    text = verdict("SOL", "source", better, "rel. L1")
    assert text.startswith("SOL beats source in rel. L1 (difference -0.19")
    # the same interval for a score where higher is better: the other one wins
    flipped = verdict("SOL", "source", better, "SSIM", lower_is_better=False)
    assert flipped.startswith("source beats SOL in SSIM (difference 0.19")
    noise = paired_difference(ref + rng.normal(0, 0.2, ref.shape), ref)
    assert noise.low < 0 < noise.high
    assert verdict("SOL", "source", noise, "rel. L1").startswith(
        "SOL and source cannot be told apart in rel. L1 at this size (difference "
    )
    assert verdict("A", "B", Interval(-0.0312, -0.0353, -0.0271), "MSE") == (
        "A beats B in MSE (difference -0.0312 [-0.0353, -0.0271])"
    )
    assert verdict("A", "B", Interval(0.5, -math.inf, math.inf), "MSE") == (
        "A and B cannot be told apart in MSE at this size (difference 0.5 [-inf, inf])"
    )


def test_format_interval_shows_the_digits_the_half_width_warrants() -> None:
    assert format_interval(0.031234, 0.004123) == "0.0312 ± 0.0041"
    assert format_interval(0.5, 0.25) == "0.50 ± 0.25"
    assert format_interval(12.3456, 1.234) == "12.3 ± 1.2"
    assert format_interval(45678.0, 1234.0) == "45700 ± 1200"
    assert format_interval(1.2e-5, 3.0e-6) == "(1.20 ± 0.30)e-05"
    assert format_interval(0.031234, 0.0) == "0.03123 ± 0"
    assert format_interval(0.031234, math.inf) == "0.03123 ± inf"
    # seeds that agree to the last bits: a rounding-level spread is shown as none
    assert format_interval(0.21337586611509321, 8.3e-17) == "0.2134 ± 0"
    with pytest.raises(ValueError, match="half-width"):
        format_interval(1.0, -0.1)
