"""Per-image reconstruction metrics: RMSE and SSIM (Wang et al. 2004)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["rmse", "ssim"]


def rmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Root mean squared error per sample of ``[B, ...]`` tensors -> ``[B]``."""
    return (a - b).double().pow(2).flatten(1).mean(1).sqrt()


def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


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
    c = a.shape[1]
    window = min(window, a.shape[-1], a.shape[-2])
    g = _gaussian_window(window, sigma, a.dtype, a.device)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window)

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, kernel, groups=c)

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    peak = torch.as_tensor(data_range, dtype=a.dtype, device=a.device)
    if peak.ndim:  # one range per sample
        peak = peak.reshape(-1, 1, 1, 1)
    c1, c2 = (k1 * peak) ** 2, (k2 * peak) ** 2
    # SSIM eq. (13) of Wang et al. 2004
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return s.flatten(1).mean(1)
