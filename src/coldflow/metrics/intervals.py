"""Confidence intervals of results over seeds and test samples, and what they allow saying.

Pure functions of arrays of numbers (one number per seed, per test simulation or per
sample), so a study can state how sure a comparison is:

- :func:`mean_interval`: the Student-t interval of a mean over a few seeds;
- :func:`bootstrap_interval`: the percentile bootstrap of a mean over many samples;
- :func:`paired_difference`: the mean difference of two methods scored on the same seeds
  and the same test simulations, with an interval that counts both sources of spread;
- :func:`verdict`: a sentence that says "beats" only when the interval excludes zero;
- :func:`format_interval`: ``"0.0312 ± 0.0041"`` for tables.

An interval is an :class:`Interval` ``(mean, low, high)``. Where the data cannot give one
(a single seed, a single sample) the bounds are ``-inf`` and ``inf``: an unknown spread is
never reported as a zero-width interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "Interval",
    "bootstrap_interval",
    "format_interval",
    "mean_interval",
    "paired_difference",
    "verdict",
]

ArrayLike = Sequence[float] | np.ndarray

_BOOT_CHUNK = 1024  # bootstrap resamples drawn per batch (bounds the memory, not the result)


class Interval(NamedTuple):
    """A mean and its confidence interval ``[low, high]``.

    Attributes
    ----------
    mean
        The estimate.
    low, high
        The bounds; ``-inf`` and ``inf`` where the data cannot bound it.
    """

    mean: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        """``(high - low) / 2``: the ``±`` of a symmetric interval (``inf`` if unbounded)."""
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        """Whether zero lies outside ``[low, high]`` (a difference that is not noise)."""
        return self.low > 0 or self.high < 0


def _vector(values: ArrayLike, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} needs a non-empty 1-D array of numbers, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: the values contain NaN or inf")
    return x


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")


def mean_interval(values: ArrayLike, level: float = 0.95) -> Interval:
    """Mean over a few independent repeats (seeds) with its Student-t interval.

    ``mean ± t_{(1 + level) / 2, n - 1} s / sqrt(n)`` with ``s`` the sample standard
    deviation (``ddof = 1``): the textbook interval for the mean of ``n`` normal values.

    Parameters
    ----------
    values
        One number per seed, ``[n]``.
    level
        Confidence level, e.g. 0.95.

    Returns
    -------
    Interval
        For ``n = 1`` the bounds are ``-inf`` and ``inf``: one seed says nothing about the
        spread over seeds. Equal values (``n >= 2``) give a point.
    """
    from scipy import stats  # lazily: scipy.stats is slow to import

    x = _vector(values, "mean_interval")
    _check_level(level)
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, -math.inf, math.inf)
    half = float(stats.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Interval(mean, mean - half, mean + half)


def bootstrap_interval(
    values: ArrayLike, level: float = 0.95, n_boot: int = 10000, seed: int = 0
) -> Interval:
    """Mean over many samples (test simulations, frames) with its percentile bootstrap.

    The samples are drawn ``n`` at a time with replacement ``n_boot`` times; the bounds are
    the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled means
    (Efron & Tibshirani 1993, percentile interval). It assumes nothing about the shape of
    the distribution, which per-sample errors (skewed, heavy-tailed) rarely follow.

    Parameters
    ----------
    values
        One number per sample, ``[n]``.
    level
        Confidence level.
    n_boot
        Number of resamples.
    seed
        Seed of the resampling: the same inputs and seed give the same interval.

    Returns
    -------
    Interval
        The mean of ``values`` and the bootstrap bounds. A constant input gives exactly
        the point ``(c, c, c)``; a single sample gives ``-inf`` and ``inf`` (its bootstrap
        would be a point, which is no evidence of a zero spread).
    """
    x = _vector(values, "bootstrap_interval")
    _check_level(level)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if x.size == 1:
        return Interval(float(x[0]), -math.inf, math.inf)
    if (x == x[0]).all():
        c = float(x[0])
        return Interval(c, c, c)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, _BOOT_CHUNK):
        rows = min(_BOOT_CHUNK, n_boot - start)
        means[start : start + rows] = x[rng.integers(0, x.size, size=(rows, x.size))].mean(1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(x.mean()), float(low), float(high))


def paired_difference(
    a: ArrayLike, b: ArrayLike, level: float = 0.95, n_boot: int = 10000, seed: int = 0
) -> Interval:
    """Mean of ``a - b`` over seeds and test simulations, with an interval for both spreads.

    ``a`` and ``b`` are the per-simulation scores of two methods, ``[seeds, simulations]``,
    paired: entry ``(s, j)`` of both comes from seed ``s`` and test simulation ``j`` (a 1-D
    input is one seed). Two sources make the mean difference uncertain, and the interval
    counts both:

    - the seeds (training randomness): the Student-t half-width of the per-seed mean
      differences (:func:`mean_interval`), ``h_seed``;
    - the test simulations (a finite test set): the percentile bootstrap over simulations
      of the seed-averaged differences (:func:`bootstrap_interval`), whose distances below
      and above the mean are ``h_low`` and ``h_high``.

    The two are independent and add in quadrature, on each side:
    ``[mean - sqrt(h_seed^2 + h_low^2), mean + sqrt(h_seed^2 + h_high^2)]``. For normal
    errors this is the interval of the sum of the two variance components (the
    seed-by-simulation interaction enters both terms, which errs on the wide side). Pairing
    removes what the two methods share: a hard test simulation is hard for both.

    Parameters
    ----------
    a, b
        Scores of one shape, ``[seeds, simulations]`` or ``[simulations]``.
    level, n_boot, seed
        As in :func:`bootstrap_interval`.

    Returns
    -------
    Interval
        Of ``a - b``. Identical runs (every paired difference exactly 0) give exactly
        ``(0, 0, 0)``. Otherwise one seed, or one simulation, leaves that source's spread
        unknown and the bounds are ``-inf`` and ``inf``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference needs a and b of one shape, got {a.shape}, {b.shape}")
    d = (a - b)[None] if a.ndim == 1 else a - b
    if d.ndim != 2 or d.size == 0:
        raise ValueError(
            f"paired_difference needs scores [seeds, simulations] or [simulations], got {a.shape}"
        )
    if not np.isfinite(d).all():
        raise ValueError("paired_difference: the scores contain NaN or inf")
    _check_level(level)
    if (d == 0).all():
        return Interval(0.0, 0.0, 0.0)
    mean = float(d.mean())
    h_seed = mean_interval(d.mean(axis=1), level).half_width
    sims = bootstrap_interval(d.mean(axis=0), level, n_boot, seed)
    h_low, h_high = max(mean - sims.low, 0.0), max(sims.high - mean, 0.0)
    return Interval(mean, mean - math.hypot(h_seed, h_low), mean + math.hypot(h_seed, h_high))


# --------------------------------------------------------------------------- wording


def _decimals(width: float) -> int:
    """Decimal places that show ``width`` to two significant digits (negative: tens...)."""
    return 1 - math.floor(math.log10(width))


def _exponent(values: Sequence[float]) -> int:
    """A shared power of ten for numbers too small or too large for plain decimals."""
    top = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    if top == 0 or 1e-3 <= top < 1e5:
        return 0
    return math.floor(math.log10(top))


def _number(x: float, decimals: int | None) -> str:
    """``x`` with ``decimals`` places (``None``: four significant digits)."""
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if decimals is None:
        return f"{x:.4g}"
    x = round(x, decimals)
    return f"{x:.{max(decimals, 0)}f}"


def _formatted(values: Sequence[float], width: float) -> list[str]:
    """``values`` as strings with the places that ``width`` (a half-width) warrants; numbers
    below ``1e-3`` or from ``1e5`` on are written with a shared power of ten."""
    exp = _exponent([*values, width])
    scale = 10.0**-exp
    w = width * scale
    decimals = _decimals(w) if math.isfinite(w) and w > 0 else None
    suffix = f"e{exp:+03d}" if exp else ""
    return [_number(v * scale, decimals) + (suffix if math.isfinite(v) else "") for v in values]


def format_interval(mean: float, half: float) -> str:
    """A mean and its half-width for a table: ``"0.0312 ± 0.0041"``.

    The half-width is shown to two significant digits and the mean to the same decimal
    place, so every cell of a table carries the digits its interval warrants. Numbers below
    ``1e-3`` or from ``1e5`` on share a power of ten: ``"(1.20 ± 0.30)e-05"``. A zero or
    infinite half-width (no interval) shows the mean to four significant digits:
    ``"0.03123 ± 0"``, ``"0.03123 ± inf"``.
    """
    if half < 0 or math.isnan(half):
        raise ValueError(f"format_interval needs a half-width >= 0, got {half}")
    if half < 1e-12 * abs(mean):  # below float rounding of the mean: no spread to show
        half = 0.0
    exp = _exponent([mean, half])
    m, h = (x * 10.0**-exp for x in (mean, half))
    decimals = _decimals(h) if 0 < h < math.inf else None
    text = f"{_number(m, decimals)} ± {'0' if h == 0 else _number(h, decimals)}"
    return f"({text})e{exp:+03d}" if exp else text


def verdict(
    name_a: str,
    name_b: str,
    diff_interval: Interval,
    metric_label: str,
    lower_is_better: bool = True,
) -> str:
    """What a paired difference allows saying, as one sentence.

    Parameters
    ----------
    name_a, name_b
        The two methods; ``diff_interval`` is of ``a - b`` (:func:`paired_difference`).
    diff_interval
        The mean difference and its interval.
    metric_label
        The metric's name in the sentence (e.g. its table label, ``"rel. L1"``).
    lower_is_better
        False for scores where higher is better (PSNR, SSIM, precision).

    Returns
    -------
    str
        ``"A beats B in rel. L1 (difference -0.012 [-0.020, -0.0040])"`` only when the
        interval excludes zero, with the difference written winner minus loser; otherwise
        ``"A and B cannot be told apart in rel. L1 at this size (difference d [lo, hi])"``
        with the difference ``a - b``.
    """
    mean, low, high = diff_interval
    if diff_interval.excludes_zero():
        a_wins = (high < 0) == lower_is_better
        if not a_wins:
            name_a, name_b, mean, low, high = name_b, name_a, -mean, -high, -low
        head = f"{name_a} beats {name_b} in {metric_label}"
    else:
        head = f"{name_a} and {name_b} cannot be told apart in {metric_label} at this size"
    d, lo, hi = _formatted([mean, low, high], (high - low) / 2)
    return f"{head} (difference {d} [{lo}, {hi}])"
