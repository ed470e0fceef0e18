"""Separable Gaussian blur with a kernel per image.

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

import torch
import torch.nn.functional as F

__all__ = [
    "use_matrices",
    "apply_matrices",
    "PADDING_MODES",
    "blur",
    "blur_by_convolution",
    "blur_matrix",
    "gaussian_kernel1d",
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

# coldflow padding name -> torch.nn.functional.pad mode
PADDING_MODES: dict[str, str] = {
    "reflect": "reflect",
    "replicate": "replicate",
    "circular": "circular",
    "zeros": "constant",
}


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


def apply_matrices(x: torch.Tensor, m_h: torch.Tensor, m_w: torch.Tensor) -> torch.Tensor:
    """``M_h X M_w^T`` for every image: ``x`` [B, C, H, W], ``m_h`` [B, H, H], ``m_w`` [B, W, W]."""
    b, c, h, w = x.shape
    y = torch.bmm(x.reshape(b, c * h, w), m_w.transpose(1, 2))  # every row times M_w^T
    if c == 1:
        return torch.bmm(m_h, y.view(b, h, w)).view(b, c, h, w)
    return torch.matmul(m_h.unsqueeze(1), y.view(b, c, h, w))


def use_matrices(n: int, k: int) -> bool:
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
    if not (use_matrices(h, kh) and use_matrices(w, kw)):
        return _blur_by_convolution(x, sigma, kh, kw, padding)
    m_w = blur_matrix(sigma, w, kw, padding)
    m_h = m_w if (h, kh) == (w, kw) else blur_matrix(sigma, h, kh, padding)
    return apply_matrices(x, m_h, m_w)


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
