"""Gaussian blur degradation of cold diffusion (Bansal et al. 2022), optionally with noise.

``D(x0, t)`` blurs the clean image with a normalised Gaussian of width ``sigma_t``, applied
directly to ``x0`` (not step after step). The hybrid variant (the study's "future work")
adds Gaussian noise with its own linear schedule: ``x_t = blur(x0, sigma_t) + std_t * eps``.

The blur is separable: one 1-D pass along the width, one along the height, and every image
carries its own kernel, so a batch with a different ``t`` per image is one call. Each pass is
a matrix: along an axis of ``n`` pixels the padded convolution is ``y = M x`` with ``M`` an
``n x n`` banded matrix in which the padding is folded in (a reflected tap adds its weight to
the pixel it mirrors). The 2-D blur of one image is ``M_h X M_w^T``, two batched matmuls for
the whole batch (:func:`blur_matrix`). For images much wider than the kernel the matrices
are mostly zeros, and the blur falls back to the two grouped 1-D convolutions
(:func:`blur_by_convolution`, also the reference the matmul form is tested against).
:class:`GaussianBlur` builds the matrices of all its timesteps once per image size.

Reflect padding and the image mean
----------------------------------
The blur never changes a constant image, but it does not preserve the mean of every
image exactly. PyTorch's ``"reflect"`` pads ``x_1, x_2, ...`` before ``x_0`` (the edge
pixel is not repeated), so along one axis of length ``N`` the padded row is a window of a
periodic signal of period ``2N - 2`` in which the two edge pixels appear once and every
interior pixel twice. A normalised kernel preserves the sum over a period, hence for one
1-D pass of a kernel no wider than ``2N - 1``

    sum(y) - sum(x) = ((y_0 - x_0) + (y_{N-1} - x_{N-1})) / 2,

half of what the blur changes at the two edge pixels. Content that stays away from the
border (edge pixels still ~0 after blurring) keeps its mean to rounding error; content
touching the border gains (mostly) or loses mass at the edges. Relative change of the
mean, measured on the first 256 MNIST test digits in [0, 1] (``tests/test_blur.py``):

- digit in the middle of a 64 x 64 canvas (18-pixel margin): < 1e-15 for sigma <= 2,
  7e-11 at sigma = 3, 1e-5 at sigma_500 = 5.02;
- the 28 x 28 digits as they are (ink reaches rows/columns 2..27): at most 1.7 % for
  sigma = 2 and 5.2 % at sigma = 5.02 (median 3.5 %);
- each digit shifted to touch the left border: at most 12.7 % (sigma = 2) and 9.2 % at
  sigma = 5.02 (median 4.9 %).

``padding="circular"`` preserves the mean exactly (a convolution on the torus), at the price
of mixing opposite borders.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

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

# below this sigma the kernel is the identity (a delta); avoids 0/0 at sigma = 0
_SIGMA_MIN = 1e-6

# the matmul form costs ~2n multiply-adds per pixel and axis, the convolution ~2k at a much
# lower rate (one group per image, and oneDNN slows down sharply for long kernels): matrices
# unless the axis is more than this many times longer than the kernel (measured on CPU:
# n = 4k about break-even, whole-image kernels 1.7x at 28 px to 14x at 512 px faster)
_MATRIX_MAX_N_OVER_K = 4
# ...and never matrices for an axis longer than this (B n^2 memory)
_MATRIX_MAX_N = 2048
# largest timestep table of matrices GaussianBlur caches ((n_T + 1) n^2 elements)
_TABLE_MAX_ELEMENTS = 2**25

# coldflow padding name -> torch.nn.functional.pad mode
PADDING_MODES: dict[str, str] = {
    "reflect": "reflect",
    "replicate": "replicate",
    "circular": "circular",
    "zeros": "constant",
}


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


# --------------------------------------------------------------------------------- kernel


def gaussian_kernel1d(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised, sampled 1-D Gaussians, one per entry of ``sigma``.

    ``k_b[i] = exp(-d_i^2 / (2 sigma_b^2)) / sum_j exp(-d_j^2 / (2 sigma_b^2))`` with
    ``d = -(size // 2) .. size // 2``. The centre weight is 1 before normalising, so the
    sum never underflows; ``sigma < 1e-6`` (including 0) gives the delta kernel exactly.

    Parameters
    ----------
    sigma
        ``[B]`` widths in pixels; the kernels take its dtype and device.
    size
        Odd kernel length.

    Returns
    -------
    torch.Tensor
        ``[B, size]``, each row symmetric and summing to 1.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd number, got {size}")
    sigma = torch.as_tensor(sigma)
    if not sigma.is_floating_point():
        sigma = sigma.double()
    half = size // 2
    d = torch.arange(-half, half + 1, dtype=sigma.dtype, device=sigma.device)
    s = sigma.reshape(-1, 1).clamp(min=_SIGMA_MIN)
    k = torch.exp(-(d**2) / (2 * s**2))
    return k / k.sum(dim=1, keepdim=True)


def whole_image_kernel_size(n: int) -> int:
    """Odd kernel length covering an axis of ``n`` pixels: ``2 * (n // 2) + 1``."""
    return 2 * (n // 2) + 1


def _kernel_sizes(kernel_size: int | tuple[int, int] | None, h: int, w: int) -> tuple[int, int]:
    if kernel_size is None:
        return whole_image_kernel_size(h), whole_image_kernel_size(w)
    if isinstance(kernel_size, int):
        return kernel_size, kernel_size
    kh, kw = kernel_size
    return int(kh), int(kw)


# ----------------------------------------------------------------------------------- blur


@functools.lru_cache(maxsize=64)
def _source_index(
    n: int, k: int, padding: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Which pixel tap ``d`` of output ``i`` reads, after padding: ``[n, k]`` indices in 0..n-1.

    Also a ``[n, k]`` mask of the taps that read a real pixel (``None`` unless zero padding).
    """
    half = k // 2
    src = torch.arange(n, device=device)[:, None] + torch.arange(-half, half + 1, device=device)
    if padding == "reflect":  # mirror without repeating the edge: period 2n - 2
        period = max(2 * n - 2, 1)
        src = src.remainder(period)
        return torch.where(src >= n, period - src, src), None
    if padding == "replicate":
        return src.clamp(0, n - 1), None
    if padding == "circular":
        return src.remainder(n), None
    inside = (src >= 0) & (src < n)  # zeros
    return src.clamp(0, n - 1), inside


def blur_matrix(
    sigma: torch.Tensor, n: int, kernel_size: int | None = None, padding: str = "reflect"
) -> torch.Tensor:
    """The 1-D padded Gaussian blur of an axis of ``n`` pixels as matrices, one per sigma.

    ``M_b[i, j]`` is the summed weight of the kernel taps of output ``i`` that read pixel
    ``j`` once the axis is padded, so ``M_b @ x`` equals padding ``x`` and convolving it with
    :func:`gaussian_kernel1d` ``(sigma_b)``. Rows sum to 1 except with zero padding.

    Parameters
    ----------
    sigma
        ``[B]`` widths in pixels; the matrices take its dtype and device.
    n
        Pixels along the axis.
    kernel_size
        Odd kernel length; ``None`` covers the axis (``2 * (n // 2) + 1``).
    padding
        A key of :data:`PADDING_MODES`.

    Returns
    -------
    torch.Tensor
        ``[B, n, n]``.
    """
    k = whole_image_kernel_size(n) if kernel_size is None else kernel_size
    sigma = torch.as_tensor(sigma)
    kern = gaussian_kernel1d(sigma, k)  # [B, k]
    src, inside = _source_index(n, k, padding, kern.device)
    taps = kern[:, None, :].expand(-1, n, k)
    if inside is not None:
        taps = taps * inside
    m = torch.zeros(len(kern), n, n, dtype=kern.dtype, device=kern.device)
    return m.scatter_add_(2, src.expand(len(kern), n, k), taps)


def _apply_matrices(x: torch.Tensor, m_h: torch.Tensor, m_w: torch.Tensor) -> torch.Tensor:
    """``M_h X M_w^T`` for every image: ``x`` [B, C, H, W], ``m_h`` [B, H, H], ``m_w`` [B, W, W]."""
    b, c, h, w = x.shape
    y = torch.bmm(x.reshape(b, c * h, w), m_w.transpose(1, 2))  # every row times M_w^T
    if c == 1:
        return torch.bmm(m_h, y.view(b, h, w)).view(b, c, h, w)
    return torch.matmul(m_h.unsqueeze(1), y.view(b, c, h, w))


def _use_matrices(n: int, k: int) -> bool:
    return n <= _MATRIX_MAX_N and n <= _MATRIX_MAX_N_OVER_K * k


def _blur_axis(x: torch.Tensor, kernels: torch.Tensor, axis: int, mode: str) -> torch.Tensor:
    """One 1-D pass: ``x`` [1, G, H, W], ``kernels`` [G, K], along H (axis 2) or W (axis 3)."""
    g, k = kernels.shape
    half = k // 2
    if half == 0:
        return x
    if axis == 3:
        pad, weight = (half, half, 0, 0), kernels.view(g, 1, 1, k)
    else:
        pad, weight = (0, 0, half, half), kernels.view(g, 1, k, 1)
    return F.conv2d(F.pad(x, pad, mode=mode), weight, groups=g)


def _check_blur_args(
    x: torch.Tensor,
    sigma: torch.Tensor | float,
    kernel_size: int | tuple[int, int] | None,
    padding: str,
) -> tuple[torch.Tensor, int, int]:
    """Validate ``blur``'s arguments; returns sigma as ``[B]`` in ``x``'s dtype, k_h, k_w."""
    if x.ndim != 4:
        raise ValueError(f"blur expects images [B, C, H, W], got shape {tuple(x.shape)}")
    if padding not in PADDING_MODES:
        raise ValueError(f"unknown padding {padding!r}; use one of {list(PADDING_MODES)}")
    b, _, h, w = x.shape
    kh, kw = _kernel_sizes(kernel_size, h, w)
    for name, k, n in (("height", kh, h), ("width", kw, w)):
        if k < 1 or k % 2 == 0:
            raise ValueError(f"kernel_size must be positive and odd, got {k} for the {name}")
        if padding == "reflect" and k // 2 >= n:
            raise ValueError(
                f"kernel of size {k} is too large for reflect padding of the {name} ({n} px): "
                f"use kernel_size <= {whole_image_kernel_size(n)} or kernel_size=None"
            )
    sigma = torch.as_tensor(sigma, device=x.device)
    sigma = sigma.to(x.dtype).reshape(-1).expand(b) if sigma.numel() == 1 else sigma.to(x.dtype)
    if sigma.shape != (b,):
        raise ValueError(f"sigma must have shape [{b}] (one per image), got {tuple(sigma.shape)}")
    return sigma, kh, kw


def blur(
    x: torch.Tensor,
    sigma: torch.Tensor | float,
    kernel_size: int | tuple[int, int] | None = None,
    padding: str = "reflect",
) -> torch.Tensor:
    """Blur every image of a batch with its own Gaussian, separably.

    ``M_h X M_w^T`` with per-image blur matrices (:func:`blur_matrix`), two batched
    matmuls; for an axis much longer than its kernel, two 1-D grouped convolutions instead
    (:func:`blur_by_convolution`, same result to rounding). No loop over images.
    Differentiable w.r.t. ``x``; works on any device and floating dtype (the kernels use
    ``x``'s).

    Parameters
    ----------
    x
        ``[B, C, H, W]`` images.
    sigma
        ``[B]`` widths in pixels, or one number for the whole batch. ``sigma < 1e-6``
        returns the image unchanged.
    kernel_size
        Odd length of the 1-D kernels (an int for both axes or ``(k_h, k_w)``); ``None``
        covers the whole image, ``2 * (n // 2) + 1`` per axis (29 for 28 x 28).
    padding
        A key of :data:`PADDING_MODES`. ``"reflect"`` needs ``k // 2 < n`` per axis. See
        the module docstring for what each does to the image mean.

    Returns
    -------
    torch.Tensor
        Blurred images, same shape and dtype as ``x``.
    """
    sigma, kh, kw = _check_blur_args(x, sigma, kernel_size, padding)
    _, _, h, w = x.shape
    if not (_use_matrices(h, kh) and _use_matrices(w, kw)):
        return _blur_by_convolution(x, sigma, kh, kw, padding)
    m_w = blur_matrix(sigma, w, kw, padding)
    m_h = m_w if (h, kh) == (w, kw) else blur_matrix(sigma, h, kh, padding)
    return _apply_matrices(x, m_h, m_w)


def blur_by_convolution(
    x: torch.Tensor,
    sigma: torch.Tensor | float,
    kernel_size: int | tuple[int, int] | None = None,
    padding: str = "reflect",
) -> torch.Tensor:
    """:func:`blur` as two 1-D grouped convolutions on ``[1, B * C, H, W]``, one group per image.

    The form :func:`blur` uses for axes much longer than their kernel, and the reference
    the matmul form is tested against. Same arguments and result as :func:`blur`.
    """
    sigma, kh, kw = _check_blur_args(x, sigma, kernel_size, padding)
    return _blur_by_convolution(x, sigma, kh, kw, padding)


def _blur_by_convolution(
    x: torch.Tensor, sigma: torch.Tensor, kh: int, kw: int, padding: str
) -> torch.Tensor:
    b, c, h, w = x.shape
    mode = PADDING_MODES[padding]
    k_w = gaussian_kernel1d(sigma, kw).repeat_interleave(c, dim=0)  # [B * C, kw]
    k_h = k_w if kh == kw else gaussian_kernel1d(sigma, kh).repeat_interleave(c, dim=0)
    g = _blur_axis(x.reshape(1, b * c, h, w), k_w, 3, mode)
    return _blur_axis(g, k_h, 2, mode).reshape(b, c, h, w)


# ---------------------------------------------------------------------------- degradation


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

    def _lookup(self, name: str, t: torch.Tensor | int) -> torch.Tensor:
        t = torch.as_tensor(t)
        if t.device.type == "cpu" and t.numel() and (t.min() < 0 or t.max() > self.n_T):
            raise ValueError(f"timesteps must be in 0..{self.n_T}, got {t.min()}..{t.max()}")
        return self._table(name, t.device)[t]

    def _matrices(self, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
        """Blur matrices of t = 0..n_T for an axis of ``n`` px, ``[n_T + 1, n, n]``, cached.

        Row 0 is the identity (``t = 0`` is the clean image). ``None`` where :func:`blur`
        would convolve instead, where the table would be too large, or where the kernel
        does not fit the padding (then :func:`blur` says why).
        """
        k = whole_image_kernel_size(n) if self.kernel_size is None else self.kernel_size
        too_large = (self.n_T + 1) * n * n > _TABLE_MAX_ELEMENTS
        if too_large or not _use_matrices(n, k) or (self.padding == "reflect" and k // 2 >= n):
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
        clean = t == 0
        sigma = self.sigma(t).to(x0.dtype).masked_fill(clean, 0.0)
        m_h = m_w = None
        if x0.ndim == 4:
            m_h, m_w = (self._matrices(n, x0.dtype, x0.device) for n in x0.shape[-2:])
        if m_h is not None and m_w is not None:
            # D(x0, t) = blur(x0, sigma_t), with the matrices of every t built once
            x_t = _apply_matrices(x0, m_h.index_select(0, t), m_w.index_select(0, t))
        else:
            x_t = blur(x0, sigma, self.kernel_size, self.padding)  # D(x0, t), applied to x0
        if not self.has_noise:
            return x_t
        std = self.noise_std(t).to(x0.dtype).masked_fill(clean, 0.0)
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
