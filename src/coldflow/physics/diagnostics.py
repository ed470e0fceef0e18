"""Flow diagnostics on the padded staggered layout: vorticity, probes, spectra, mass."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "MIN_PERIODS",
    "Peak",
    "crossing_period",
    "settling",
    "dominant_frequency",
    "frequency_refusal",
    "scalar_mass",
    "power_spectrum",
    "probe_series",
    "strouhal_number",
    "vorticity",
]


def vorticity(velocity: torch.Tensor, spacing: tuple[float, float]) -> torch.Tensor:
    """Cell-centred vorticity ``w = dvx/dy - dvy/dx`` of a padded-layout velocity.

    Parameters
    ----------
    velocity
        ``(..., 2, H + 1, W + 1)``.
    spacing
        Cell size ``(dy, dx)``.

    Returns
    -------
    torch.Tensor
        ``(..., H, W)``.
    """
    H, W = velocity.shape[-2] - 1, velocity.shape[-1] - 1
    vy = 0.5 * (velocity[..., 0, :-1, :W] + velocity[..., 0, 1:, :W])  # cell centres
    vx = 0.5 * (velocity[..., 1, :H, :-1] + velocity[..., 1, :H, 1:])
    dy, dx = spacing
    (dvx_dy,) = torch.gradient(vx, spacing=dy, dim=-2)
    (dvy_dx,) = torch.gradient(vy, spacing=dx, dim=-1)
    return dvx_dy - dvy_dx


def probe_series(
    velocity: torch.Tensor, spacing: tuple[float, float], point: tuple[float, float], component: str
) -> torch.Tensor:
    """A velocity component at a point, bilinearly interpolated from its faces.

    Parameters
    ----------
    velocity
        ``(..., 2, H + 1, W + 1)``, e.g. a trajectory ``(T, 2, H + 1, W + 1)``.
    spacing
        Cell size ``(dy, dx)``.
    point
        ``(y, x)`` in domain units.
    component
        ``"y"`` or ``"x"``.

    Returns
    -------
    torch.Tensor
        The leading dimensions of ``velocity``, e.g. ``(T,)``.
    """
    H, W = velocity.shape[-2] - 1, velocity.shape[-1] - 1
    dy, dx = spacing
    y, x = point
    if component == "y":  # faces at (j dy, (i + 0.5) dx)
        grid, fj, fi = velocity[..., 0, :, :W], y / dy, x / dx - 0.5
    elif component == "x":  # faces at ((j + 0.5) dy, i dx)
        grid, fj, fi = velocity[..., 1, :H, :], y / dy - 0.5, x / dx
    else:
        raise ValueError(f"component must be 'y' or 'x', got {component!r}")
    ny, nx = grid.shape[-2:]
    j0 = int(np.clip(np.floor(fj), 0, ny - 2))
    i0 = int(np.clip(np.floor(fi), 0, nx - 2))
    ty, tx = float(np.clip(fj - j0, 0, 1)), float(np.clip(fi - i0, 0, 1))
    top = (1 - tx) * grid[..., j0, i0] + tx * grid[..., j0, i0 + 1]
    bottom = (1 - tx) * grid[..., j0 + 1, i0] + tx * grid[..., j0 + 1, i0 + 1]
    return (1 - ty) * top + ty * bottom


def power_spectrum(signal: np.ndarray | torch.Tensor, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided power spectrum of a real signal after removing its mean (Hann window).

    Returns
    -------
    frequencies, power
        ``frequencies`` in cycles per unit time, ``power`` normalised to sum to 1 (the
        zero frequency excluded).
    """
    x = np.asarray(signal, dtype=np.float64)
    x = (x - x.mean()) * np.hanning(len(x))
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), d=dt)
    power[0] = 0.0
    total = power.sum()
    return freqs, (power / total if total > 0 else power)


MIN_PERIODS = 3.0
"""Fewest periods of the dominant frequency a signal must span for the frequency to be
reported: with fewer, the peak sits in the first few FFT bins and the estimate is set
by the window length, not by the flow."""


class Peak(NamedTuple):
    """The dominant spectral peak of a signal."""

    frequency: float
    """Frequency in cycles per unit time (refined between bins)."""
    power_fraction: float
    """Share of the signal's (non-mean) power within one bin of the peak."""
    width: float = float("nan")
    """Full width at half maximum of the peak's power, in cycles per unit time (a pure
    tone under the Hann window: 1.44 bins, i.e. ``1.44 / (len * dt)``)."""
    periods: float = float("nan")
    """Periods of ``frequency`` the signal spans, ``frequency * len * dt``."""
    samples: int = 0
    """Length of the signal."""


def _half_maximum_width(freqs: np.ndarray, power: np.ndarray, k: int) -> float:
    """Width of the peak at bin ``k`` where its power falls to half (linear interpolation
    between bins; ``nan`` when a side never falls to half)."""
    half = 0.5 * power[k]
    edges = []
    for step in (-1, 1):
        j = k
        while 0 <= j + step < len(power) and power[j + step] > half:
            j += step
        if not 0 <= j + step < len(power):
            return float("nan")
        a, b = power[j], power[j + step]  # a > half >= b
        edges.append(freqs[j] + (a - half) / (a - b) * (freqs[j + step] - freqs[j]))
    return float(edges[1] - edges[0])


def dominant_frequency(signal: np.ndarray | torch.Tensor, dt: float) -> Peak:
    """The frequency of the strongest spectral peak, how much power it holds and how sharp
    it is.

    The peak bin is refined by fitting a parabola to the log power of it and its two
    neighbours. A clean oscillation gives a ``power_fraction`` close to 1 and a ``width``
    of about 1.44 bins, noise a small fraction and a wide peak. Check
    :func:`frequency_refusal` before using the frequency.
    """
    n = len(np.asarray(signal))
    freqs, power = power_spectrum(signal, dt)
    if len(power) < 3 or power.sum() == 0:
        return Peak(0.0, 0.0, float("nan"), 0.0, n)
    k = int(np.argmax(power))
    fraction = float(power[max(k - 1, 0) : k + 2].sum())
    frequency = float(freqs[k])
    if 0 < k < len(power) - 1 and np.all(power[k - 1 : k + 2] > 0):
        a, b, c = np.log(power[k - 1 : k + 2])
        denom = a - 2 * b + c
        if denom < 0:
            frequency += float(0.5 * (a - c) / denom * (freqs[1] - freqs[0]))
    width = _half_maximum_width(freqs, power, k)
    return Peak(frequency, fraction, width, float(frequency * n * dt), n)


def frequency_refusal(peak: Peak, min_periods: float = MIN_PERIODS) -> str | None:
    """Why ``peak.frequency`` cannot be trusted, or ``None`` when it can.

    Refused: a constant signal, and a signal spanning fewer than ``min_periods`` periods
    of its peak frequency (then the peak lies in the first FFT bins: a window of ``N``
    samples can only say that the period is about ``N dt`` or longer).
    """
    if peak.power_fraction == 0.0:
        return "the signal is constant: no oscillation"
    if not peak.periods >= min_periods:
        return (
            f"the window ({peak.samples} samples) spans {peak.periods:.1f} periods of the "
            f"peak, fewer than {min_periods:g}: the peak lies in the first spectral bins, "
            "too coarse to place it; use a longer trajectory or an earlier start"
        )
    return None


def crossing_period(signal: np.ndarray | torch.Tensor, dt: float) -> float:
    """Mean time between upward crossings of the signal's mean (``nan`` with fewer than
    two crossings). Unlike the spectral peak it needs no window of several periods."""
    x = np.asarray(signal, dtype=np.float64)
    x = x - x.mean()
    up = np.nonzero((x[:-1] < 0) & (x[1:] >= 0))[0]
    if len(up) < 2:
        return float("nan")
    exact = up + x[up] / (x[up] - x[up + 1])  # linear interpolation of each crossing
    return float(np.diff(exact).mean() * dt)


def settling(signal: np.ndarray | torch.Tensor, dt: float, tolerance: float = 0.05) -> dict:
    """Whether an oscillation has settled: period and amplitude of its two halves.

    Returns
    -------
    dict
        ``period`` and ``amplitude`` (half the peak-to-peak range), each a pair
        (first half, second half), and ``settled``: both pairs agree within
        ``tolerance`` (relative), ``None`` when a half spans fewer than two periods (its
        period cannot be measured). A wake still developing shows a growing amplitude
        or a shortening period.
    """
    x = np.asarray(signal, dtype=np.float64)
    halves = (x[: len(x) // 2], x[len(x) // 2 :])
    period = tuple(crossing_period(h, dt) for h in halves)
    amplitude = tuple(float(0.5 * (h.max() - h.min())) if len(h) else 0.0 for h in halves)

    def agree(a: float, b: float) -> bool:
        return bool(abs(a - b) <= tolerance * max(abs(a), abs(b)))

    settled = None if any(np.isnan(p) for p in period) else agree(*period) and agree(*amplitude)
    return {"period": period, "amplitude": amplitude, "settled": settled}


def strouhal_number(frequency: float, diameter: float, speed: float) -> float:
    """``St = f D / U``: shedding frequency made dimensionless with diameter and speed."""
    return frequency * diameter / speed


def scalar_mass(density: np.ndarray | torch.Tensor, spacing: tuple[float, float]) -> np.ndarray:
    """``integral density dA`` of each frame of a cell-centred scalar ``(..., H, W)``."""
    dy, dx = spacing
    x = np.asarray(density, dtype=np.float64)
    return x.sum(axis=(-2, -1)) * dy * dx
