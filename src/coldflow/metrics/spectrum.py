"""Kinetic-energy spectra of 2-D velocity fields and the log-spectral error between two.

A network trained on a pixel loss tends to reproduce the large eddies and smear the small
ones; its error per wavenumber band shows where. Pure functions of NumPy arrays or torch
tensors (batched on any leading axes).

Wavenumbers. A field of ``H x W`` cells of size ``dx`` has Fourier modes ``(i_y, i_x)``
(integers from ``fftfreq``), wave vector ``2 pi (i_y / (H dx), i_x / (W dx))``. Its
length is measured in units of the fundamental of the longer side,
``dk = 2 pi / (max(H, W) dx)``, and rounded to the nearest integer: the *shell*
``n = round(sqrt((i_y L / H)^2 + (i_x L / W)^2))`` with ``L = max(H, W)``. On a square grid
these are the usual integer shells; on a non-square one the modes along the shorter side
fall in every ``L / H``-th shell, and every shell from 0 to the Nyquist shell
``L // 2`` (the same for both axes in these units) holds at least one mode. Shells above
``L // 2`` hold the corner modes only. Because ``n`` counts waves per longer side, the same
flow on a finer grid of the same domain has the same ``n``; ``k = n dk`` is the angular
wavenumber in units of ``1 / dx``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "energy_spectrum",
    "log_spectral_error",
    "nyquist_shell",
    "octave_bands",
    "spectral_shells",
    "top_octave_error",
]

Band = tuple[int, int]

RELATIVE_FLOOR = 1e-10
"""Floor added to both spectra before the log: this fraction of the reference's energy
in the shells from 1 up (its fluctuation energy), so that empty shells do not make the
log infinite."""


def _as_tensor(x: Any) -> tuple[torch.Tensor, bool]:
    """``(float64 tensor, was it NumPy)``."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64), False
    return torch.as_tensor(np.asarray(x), dtype=torch.float64), True


def _check_velocity(v: torch.Tensor, name: str) -> None:
    if v.ndim < 3 or v.shape[-3] != 2:
        raise ValueError(
            f"{name} needs a cell-centred velocity (..., 2, H, W) (components v_y, v_x), "
            f"got shape {tuple(v.shape)}"
        )


def spectral_shells(height: int, width: int, device: Any = None) -> torch.Tensor:
    """The shell ``n`` of every Fourier mode of an ``H x W`` grid, ``[H, W]`` (int64).

    The layout of :func:`torch.fft.fft2` (zero frequency first); see the module docstring.
    """
    longest = max(height, width)
    ky = torch.fft.fftfreq(height, device=device, dtype=torch.float64) * longest
    kx = torch.fft.fftfreq(width, device=device, dtype=torch.float64) * longest
    radius = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    return torch.floor(radius + 0.5).to(torch.int64)  # round half up, not to even


def nyquist_shell(height: int, width: int) -> int:
    """The highest shell every direction reaches: ``max(H, W) // 2``."""
    return max(height, width) // 2


def energy_spectrum(velocity: Any, dx: float = 1.0) -> tuple[Any, Any]:
    """Kinetic energy per wavenumber shell of a cell-centred velocity.

    ``E(n) = sum over modes in shell n of 0.5 (|u_hat|^2 + |v_hat|^2)`` with the
    forward-normalised transform ``u_hat = fft2(u) / (H W)``. By Parseval,
    ``sum_n E(n) = 0.5 mean(u^2 + v^2)``, the mean kinetic energy per unit mass of the
    grid, whatever the grid's size or shape; ``E`` is energy per shell (not per unit
    wavenumber). Shell 0 is the mean flow ``0.5 (mean(u)^2 + mean(v)^2)``, kept so that the
    sum holds; it is no part of any band of :func:`log_spectral_error`. The transform
    treats the field as periodic, as every FFT spectrum does.

    Parameters
    ----------
    velocity
        ``(..., 2, H, W)`` NumPy array or torch tensor (any leading axes: a batch).
    dx
        Cell size; it sets the units of ``k`` only, not ``E``.

    Returns
    -------
    k, E
        ``k`` ``[S]``: the shells' angular wavenumbers ``n * 2 pi / (max(H, W) dx)`` for
        ``n = 0 .. S - 1``; ``E`` ``(..., S)``: energy per shell. float64, NumPy for a NumPy
        input, otherwise tensors on the input's device.
    """
    v, numpy = _as_tensor(velocity)
    _check_velocity(v, "energy_spectrum")
    if dx <= 0:
        raise ValueError(f"energy_spectrum needs a cell size dx > 0, got {dx}")
    height, width = v.shape[-2:]
    modes = torch.fft.fft2(v, norm="forward")  # sum_ij |modes|^2 = mean(v^2) (Parseval)
    energy = 0.5 * modes.abs().square().sum(dim=-3)  # (..., H, W)
    shells = spectral_shells(height, width, v.device).flatten()
    count = int(shells.max()) + 1
    flat = energy.flatten(-2)
    spectrum = torch.zeros(*flat.shape[:-1], count, dtype=flat.dtype, device=flat.device)
    spectrum.index_add_(-1, shells, flat)
    k = torch.arange(count, dtype=torch.float64, device=v.device)
    k = k * (2 * math.pi / (max(height, width) * dx))
    return (k.cpu().numpy(), spectrum.cpu().numpy()) if numpy else (k, spectrum)


def octave_bands(height: int, width: int) -> list[Band]:
    """Octaves of shells ``[1, 2), [2, 4), [4, 8), ...``, the last one up to Nyquist.

    The last band starts at the largest power of two not above half the Nyquist shell
    ``N = max(H, W) // 2`` and includes ``N``: one octave ``[N / 2, N]`` when ``N`` is a power
    of two, up to two octaves otherwise. Bands are ``(first, stop)`` with ``stop``
    exclusive.

    Raises
    ------
    ValueError
        For grids with ``max(H, W) < 4`` (no shell above the first).
    """
    top = nyquist_shell(height, width)
    if top < 2:
        raise ValueError(f"octave_bands needs max(H, W) >= 4, got {height}x{width}")
    bands, first = [], 1
    while 4 * first <= top:
        bands.append((first, 2 * first))
        first *= 2
    bands.append((first, top + 1))
    return bands


def log_spectral_error(
    pred: Any,
    ref: Any,
    bands: Sequence[Band] | None = None,
    floor: float = RELATIVE_FLOOR,
) -> Any:
    """Mean ``|log E_pred(n) - log E_ref(n)|`` over the shells of each band, per sample.

    Parameters
    ----------
    pred, ref
        Cell-centred velocities of one shape ``(..., 2, H, W)``.
    bands
        ``(first, stop)`` shell ranges (``stop`` exclusive); default :func:`octave_bands`.
    floor
        Added to both spectra before the log, as a fraction of the reference's energy in
        shells ``>= 1`` (per sample; plus ``1e-300`` so that a constant reference stays
        finite). It keeps shells with (almost) no energy from dominating.

    Returns
    -------
    Array
        ``(..., len(bands))``: 0 where ``pred`` has the reference's spectrum; ``log 2`` in a
        band where it has twice (or half) the reference's energy. NumPy for NumPy inputs.
    """
    p, numpy = _as_tensor(pred)
    r, _ = _as_tensor(ref)
    if p.shape != r.shape:
        raise ValueError(
            f"log_spectral_error needs fields of one shape, got {tuple(p.shape)}, {tuple(r.shape)}"
        )
    _check_velocity(p, "log_spectral_error")
    height, width = p.shape[-2:]
    bands = list(bands) if bands is not None else octave_bands(height, width)
    _, e_pred = energy_spectrum(p)
    _, e_ref = energy_spectrum(r.to(p.device))
    for first, stop in bands:
        if not 1 <= first < stop <= e_ref.shape[-1]:
            raise ValueError(f"band ({first}, {stop}) lies outside shells 1..{e_ref.shape[-1] - 1}")
    eps = floor * e_ref[..., 1:].sum(dim=-1, keepdim=True) + 1e-300
    gap = (torch.log(e_pred + eps) - torch.log(e_ref + eps)).abs()
    out = torch.stack([gap[..., first:stop].mean(dim=-1) for first, stop in bands], dim=-1)
    return out.cpu().numpy() if numpy else out


def top_octave_error(pred: Any, ref: Any, floor: float = RELATIVE_FLOOR) -> Any:
    """The last band of :func:`log_spectral_error` with :func:`octave_bands`: ``(...)``,
    how far the smallest resolved scales are from the reference's energy."""
    return log_spectral_error(pred, ref, floor=floor)[..., -1]
