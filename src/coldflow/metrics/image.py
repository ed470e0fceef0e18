"""Per-image reconstruction metrics: RMSE and SSIM (Wang et al. 2004)."""

from __future__ import annotations

import torch

__all__ = ["rmse", "ssim"]


def rmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Root mean squared error per sample of ``[B, ...]`` tensors -> ``[B]``."""
    return (a - b).double().pow(2).flatten(1).mean(1).sqrt()


def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _band(g: torch.Tensor, n: int) -> torch.Tensor:
    """``[n, n - len(g) + 1]`` matrix whose column j holds ``g`` at rows j ... j + len(g) - 1:
    ``x @ _band(g, n)`` is the valid correlation of the last axis of ``x`` with ``g``."""
    k = len(g)
    out = torch.zeros(n, n - k + 1, dtype=g.dtype, device=g.device)
    cols = torch.arange(n - k + 1, device=g.device)
    for i in range(k):
        out[cols + i, cols] = g[i]
    return out


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    data_range: float | torch.Tensor = 1.0,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity per sample of ``[B, C, H, W]`` images -> ``[B]``.

    The standard form: an 11x11 Gaussian window (sigma 1.5), constants
    C1 = (k1 L)^2 and C2 = (k2 L)^2 with L = ``data_range`` (one number, or one per
    sample as a ``[B]`` tensor), the SSIM map averaged over the valid (unpadded) positions
    and the channels. Images smaller than the window get a window of their smaller side.
    SSIM(x, x) = 1.
    """
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(
            f"ssim needs two [B, C, H, W] tensors of one shape, got {a.shape}, {b.shape}"
        )
    a, b = a.double(), b.double()
    window = min(window, a.shape[-1], a.shape[-2])
    g = _gaussian_window(window, sigma, a.dtype, a.device)
    # The 2-D Gaussian is separable, and a valid 1-D filtering is a product with a banded
    # matrix: rows, then columns, as two matrix products over the five maps at once (BLAS in
    # float64 is far faster than a grouped float64 convolution, and exact to rounding).
    maps = torch.stack([a, b, a * a, b * b, a * b])
    filtered = _band(g, a.shape[-2]).T @ maps @ _band(g, a.shape[-1])
    mu_a, mu_b, aa, bb, ab = filtered.unbind(0)
    var_a = aa - mu_a**2
    var_b = bb - mu_b**2
    cov = ab - mu_a * mu_b
    peak = torch.as_tensor(data_range, dtype=a.dtype, device=a.device)
    if peak.ndim:  # one range per sample
        peak = peak.reshape(-1, 1, 1, 1)
    c1, c2 = (k1 * peak) ** 2, (k2 * peak) ** 2
    # SSIM eq. (13) of Wang et al. 2004
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return s.flatten(1).mean(1)
