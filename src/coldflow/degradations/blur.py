"""Gaussian blur degradation of cold diffusion (Bansal et al. 2022), optionally with noise.

``D(x0, t)`` blurs the clean image with a normalised Gaussian of width ``sigma_t``, applied
directly to ``x0`` (not step after step). The hybrid variant (the study's "future work")
adds Gaussian noise with its own linear schedule: ``x_t = blur(x0, sigma_t) + std_t * eps``.

The blur itself (separable, per-image kernels, padding folded into matrices) is
:mod:`coldflow.degradations.gaussian`. :class:`GaussianBlur` builds the matrices of all its
timesteps once per image size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from coldflow.degradations.gaussian import (
    PADDING_MODES,
    apply_matrices,
    blur,
    blur_by_convolution,
    blur_matrix,
    gaussian_kernel1d,
    use_matrices,
    whole_image_kernel_size,
)

__all__ = [
    "PADDING_MODES",
    "SIGMA_SCHEDULES",
    "GaussianBlur",
    "blur",
    "blur_by_convolution",
    "blur_matrix",
    "blur_sigma_schedule",
    "gaussian_kernel1d",
    "noise_std_schedule",
    "whole_image_kernel_size",
]


# largest timestep table of matrices GaussianBlur caches ((n_T + 1) n^2 elements)
_TABLE_MAX_ELEMENTS = 2**25


# ------------------------------------------------------------------------------ schedules


def _linear(u: torch.Tensor, s0: float, s1: float) -> torch.Tensor:
    return s0 + (s1 - s0) * u  # sigma_t = sigma_base + sigma_scale * t


def _exponential(u: torch.Tensor, s0: float, s1: float) -> torch.Tensor:
    if s0 <= 0:
        raise ValueError(f"the exponential blur schedule needs sigma_base > 0, got {s0}")
    return s0 * (s1 / s0) ** u  # geometric interpolation between the endpoints


def _cosine(u: torch.Tensor, s0: float, s1: float) -> torch.Tensor:
    return s0 + (s1 - s0) * (1 - torch.cos(0.5 * math.pi * u))  # slow start, zero slope at 0


# schedule name -> sigma(u, sigma_0, sigma_T) with u = t / n_T in [0, 1]
SIGMA_SCHEDULES: dict[str, Callable[[torch.Tensor, float, float], torch.Tensor]] = {
    "linear": _linear,
    "exponential": _exponential,
    "cosine": _cosine,
}


def blur_sigma_schedule(
    n_T: int, sigma_base: float = 0.02, sigma_scale: float = 0.01, schedule: str = "linear"
) -> torch.Tensor:
    """Blur widths ``sigma_t`` for t = 0..n_T (float64, length n_T + 1).

    All schedules share the endpoints of the linear one, ``sigma_0 = sigma_base`` and
    ``sigma_T = sigma_base + sigma_scale * n_T``, and increase strictly in between
    (u = t / n_T):

    - ``"linear"``: ``sigma_t = sigma_base + sigma_scale * t`` (the study);
    - ``"exponential"``: ``sigma_t = sigma_0 * (sigma_T / sigma_0) ** u``, a constant
      ratio per step (needs ``sigma_base > 0``);
    - ``"cosine"``: ``sigma_t = sigma_0 + (sigma_T - sigma_0) * (1 - cos(pi u / 2))``,
      a slow start (zero slope at t = 0) and the fastest growth near t = n_T.

    Parameters
    ----------
    n_T
        Number of steps.
    sigma_base, sigma_scale
        ``sigma_0`` and the per-step growth of the linear schedule.
    schedule
        A key of :data:`SIGMA_SCHEDULES`.

    Returns
    -------
    torch.Tensor
        ``[n_T + 1]`` float64; index 0 is the schedule's value at t = 0.
    """
    if schedule not in SIGMA_SCHEDULES:
        raise ValueError(f"unknown blur schedule {schedule!r}; use one of {list(SIGMA_SCHEDULES)}")
    if n_T < 1:
        raise ValueError(f"n_T must be >= 1, got {n_T}")
    if sigma_base < 0 or sigma_scale <= 0:
        raise ValueError(
            f"need sigma_base >= 0 and sigma_scale > 0, got {sigma_base} and {sigma_scale}"
        )
    u = torch.arange(n_T + 1, dtype=torch.float64) / n_T
    return SIGMA_SCHEDULES[schedule](u, sigma_base, sigma_base + sigma_scale * n_T)


def noise_std_schedule(n_T: int, start: float = 0.0, end: float = 0.0) -> torch.Tensor:
    """Std of the hybrid's added noise, ``std_t = start + (end - start) * t / n_T``.

    Returns
    -------
    torch.Tensor
        ``[n_T + 1]`` float64 for t = 0..n_T.
    """
    if start < 0 or end < 0:
        raise ValueError(f"noise stds must be >= 0, got noise_start={start}, noise_end={end}")
    t = torch.arange(n_T + 1, dtype=torch.float64)
    return start + (end - start) * t / n_T


class GaussianBlur:
    """Cold diffusion's blur ``D(x0, t) = blur(x0, sigma_t) + std_t * eps`` for t = 1..n_T.

    ``t = 0`` is the clean image: ``degrade(x0, 0)`` returns ``x0`` (no blur, no noise)
    whatever ``sigma_0`` and ``std_0`` in the tables are. With the default ``sigma_base =
    0.02`` the kernel of ``sigma_0`` is the identity anyway.

    Parameters
    ----------
    n_T
        Number of steps.
    sigma_base, sigma_scale
        ``sigma_0`` and the per-step growth: ``sigma_T = sigma_base + sigma_scale * n_T``
        (5.02 with the defaults) for every schedule.
    schedule
        ``"linear"``, ``"exponential"`` or ``"cosine"`` (see :func:`blur_sigma_schedule`).
    kernel_size
        Odd kernel length, or ``None`` for one covering the whole image (derived from the
        input at each call).
    padding
        ``"reflect"`` (default), ``"replicate"``, ``"circular"`` or ``"zeros"``.
    noise_start, noise_end
        Std of the added Gaussian noise at t = 0 and t = n_T, linear in between; both 0
        (default) is the pure blur of the study.
    """

    def __init__(
        self,
        n_T: int = 500,
        sigma_base: float = 0.02,
        sigma_scale: float = 0.01,
        schedule: str = "linear",
        kernel_size: int | None = None,
        padding: str = "reflect",
        noise_start: float = 0.0,
        noise_end: float = 0.0,
    ) -> None:
        if kernel_size is not None and (kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        if padding not in PADDING_MODES:
            raise ValueError(f"unknown padding {padding!r}; use one of {list(PADDING_MODES)}")
        self.n_T, self.schedule = n_T, schedule
        self.sigma_base, self.sigma_scale = sigma_base, sigma_scale
        self.kernel_size, self.padding = kernel_size, padding
        self.noise_start, self.noise_end = noise_start, noise_end
        self.sigma64 = blur_sigma_schedule(n_T, sigma_base, sigma_scale, schedule)
        self.noise_std64 = noise_std_schedule(n_T, noise_start, noise_end)
        self.has_noise = noise_start > 0 or noise_end > 0
        self._tables: dict[tuple, torch.Tensor] = {}

    def to(self, device: torch.device | str) -> GaussianBlur:
        """Place copies of the schedule tables on ``device`` (done lazily too); returns self."""
        device = torch.device(device)
        for name in ("sigma", "noise_std"):
            self._table(name, device)
        return self

    def _table(self, name: str, device: torch.device) -> torch.Tensor:
        key = (name, device)
        if key not in self._tables:
            table = self.sigma64 if name == "sigma" else self.noise_std64
            dtype = torch.float32 if device.type == "mps" else torch.float64  # no float64 on MPS
            self._tables[key] = table.to(dtype).to(device)
        return self._tables[key]

    def _check_timesteps(self, t: torch.Tensor) -> None:
        """Raise unless every t is in 0..n_T (checked on CPU only: no device sync)."""
        if t.device.type == "cpu" and t.numel():
            lo, hi = torch.aminmax(t)
            if lo < 0 or hi > self.n_T:
                raise ValueError(f"timesteps must be in 0..{self.n_T}, got {lo}..{hi}")

    def _lookup(self, name: str, t: torch.Tensor | int) -> torch.Tensor:
        t = torch.as_tensor(t)
        self._check_timesteps(t)
        return self._table(name, t.device)[t]

    def _matrices(self, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
        """Blur matrices of t = 0..n_T for an axis of ``n`` px, ``[n_T + 1, n, n]``, cached.

        Row 0 is the identity (``t = 0`` is the clean image). ``None`` where :func:`blur`
        would convolve instead, where the table would be too large, or where the kernel
        does not fit the padding (then :func:`blur` says why).
        """
        k = whole_image_kernel_size(n) if self.kernel_size is None else self.kernel_size
        too_large = (self.n_T + 1) * n * n > _TABLE_MAX_ELEMENTS
        if too_large or not use_matrices(n, k) or (self.padding == "reflect" and k // 2 >= n):
            return None
        key = ("matrices", n, dtype, device)
        if key not in self._tables:
            sigma = self._table("sigma", device).to(dtype).clone()
            sigma[0] = 0.0
            self._tables[key] = blur_matrix(sigma, n, k, self.padding)
        return self._tables[key]

    def sigma(self, t: torch.Tensor | int) -> torch.Tensor:
        """Blur width ``sigma_t`` (float64, on ``t``'s device) of integer timesteps ``t``."""
        return self._lookup("sigma", t)

    def noise_std(self, t: torch.Tensor | int) -> torch.Tensor:
        """Std ``std_t`` (float64, on ``t``'s device) of the added noise at timesteps ``t``."""
        return self._lookup("noise_std", t)

    def degrade(
        self, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Degrade clean images ``x0`` [B, C, H, W] to timesteps ``t``.

        Parameters
        ----------
        x0
            Clean images.
        t
            ``[B]`` integer timesteps in 0..n_T (0 returns the image unchanged), or one
            int for the whole batch.
        noise
            ``eps`` of the hybrid degradation, shaped like ``x0``; drawn with
            ``torch.randn_like`` when ``None`` and the noise schedule is not zero. Ignored
            for the pure blur.

        Returns
        -------
        torch.Tensor
            ``x_t``, same shape, dtype and device as ``x0``.
        """
        b = x0.shape[0]
        t = torch.as_tensor(t, device=x0.device)
        t = t.expand(b) if t.ndim == 0 else t
        if t.shape != (b,):
            raise ValueError(f"t must have shape [{b}] (one per image), got {tuple(t.shape)}")
        self._check_timesteps(t)  # once: the lookups below index the tables directly
        m_h = m_w = None
        if x0.ndim == 4:
            m_h, m_w = (self._matrices(n, x0.dtype, x0.device) for n in x0.shape[-2:])
        if m_h is not None and m_w is not None:
            # D(x0, t) = blur(x0, sigma_t), with the matrices of every t built once; a
            # square image needs one lookup (the cache hands out the same table twice)
            rows_h = m_h.index_select(0, t)
            rows_w = rows_h if m_w is m_h else m_w.index_select(0, t)
            x_t = apply_matrices(x0, rows_h, rows_w)
        else:
            sigma = self._table("sigma", t.device)[t].to(x0.dtype).masked_fill(t == 0, 0.0)
            x_t = blur(x0, sigma, self.kernel_size, self.padding)  # D(x0, t), applied to x0
        if not self.has_noise:
            return x_t
        std = self._table("noise_std", t.device)[t].to(x0.dtype).masked_fill(t == 0, 0.0)
        if noise is None:
            noise = torch.randn_like(x0)
        return x_t + std.view(-1, *([1] * (x0.ndim - 1))) * noise  # hybrid: + std_t * eps

    def schedule_curves(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Curves for the schedule figure: name -> (t, value), t = 0..n_T; ``sigma`` first."""
        t = torch.arange(self.n_T + 1)
        curves = {"sigma": (t, self.sigma64)}
        if self.has_noise:
            curves["noise_std"] = (t, self.noise_std64)
        return curves

    def describe(self) -> str:
        """One line: schedule, endpoints, kernel, padding and the noise if any."""
        kernel = "whole image" if self.kernel_size is None else str(self.kernel_size)
        text = (
            f"gaussian blur ({self.schedule}): sigma {self.sigma64[0].item():g} -> "
            f"{self.sigma64[-1].item():g}, n_T={self.n_T}, kernel {kernel}, {self.padding} padding"
        )
        if self.has_noise:
            text += f", noise std {self.noise_start:g} -> {self.noise_end:g}"
        return text
