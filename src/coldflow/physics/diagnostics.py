"""Flow diagnostics on the padded staggered layout: vorticity, probes, spectra."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "Peak",
    "dominant_frequency",
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


class Peak(NamedTuple):
    """The dominant spectral peak of a signal."""

    frequency: float
    """Frequency in cycles per unit time (refined between bins)."""
    power_fraction: float
    """Share of the signal's (non-mean) power within one bin of the peak."""


def dominant_frequency(signal: np.ndarray | torch.Tensor, dt: float) -> Peak:
    """The frequency of the strongest spectral peak and how much power it holds.

    The peak bin is refined by fitting a parabola to the log power of it and its two
    neighbours. A clean oscillation gives a ``power_fraction`` close to 1, noise a small
    one.
    """
    freqs, power = power_spectrum(signal, dt)
    if len(power) < 3 or power.sum() == 0:
        return Peak(0.0, 0.0)
    k = int(np.argmax(power))
    fraction = float(power[max(k - 1, 0) : k + 2].sum())
    frequency = float(freqs[k])
    if 0 < k < len(power) - 1 and np.all(power[k - 1 : k + 2] > 0):
        a, b, c = np.log(power[k - 1 : k + 2])
        denom = a - 2 * b + c
        if denom < 0:
            frequency += 0.5 * (a - c) / denom * (freqs[1] - freqs[0])
    return Peak(frequency, fraction)


def strouhal_number(frequency: float, diameter: float, speed: float) -> float:
    """``St = f D / U``: shedding frequency made dimensionless with diameter and speed."""
    return frequency * diameter / speed
