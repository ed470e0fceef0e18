"""Super-resolution of cell-centred fields: the interpolation baselines and a small
residual network on top of them.

:func:`upsample` is the baseline every super-resolution result is compared with.
:class:`FieldSuperResolutionNet` (SRResNet-style, Ledig et al. 2017, with the sub-pixel
convolution of ESPCN, Shi et al. 2016) learns what bicubic interpolation misses,

    y = bicubic(x) + R(x),

where bicubic is Keys' cubic convolution (:func:`upsample`) and the last layer of ``R``
is zero-initialised, so the untrained network is exactly the bicubic baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "KEYS_A",
    "UPSAMPLE_MODES",
    "FieldSuperResolutionNet",
    "cubic_resampling",
    "cubic_weights",
    "upsample",
]

UPSAMPLE_MODES = ("bicubic", "bilinear", "nearest")
FACTORS = (2, 4)


KEYS_A = -0.5
"""Keys' cubic-convolution parameter: the one value that reproduces linear fields (and
converges with third order); torch's ``mode="bicubic"`` uses -0.75, which does not."""


def cubic_weights(n: int, factor: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """``[n f, n]`` matrix of cubic-convolution interpolation from ``n`` cells to ``n f``.

    Row ``j`` holds the weights of the four coarse cells around fine centre
    ``u = (j + 1/2) / f - 1/2`` (coarse-cell units); indices beyond the border are
    clamped to it (the border cell repeats), so every row sums to one.
    """
    return cubic_resampling(n, n * factor, dtype, device)


def cubic_resampling(n: int, m: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """``[m, n]`` matrix of cubic-convolution interpolation of ``n`` cells onto ``m``
    cells covering the same interval, for any ratio ``m / n`` (cell-centred: fine centre
    ``j`` sits at ``u = (j + 1/2) n / m - 1/2`` in coarse-cell units). ``m = n`` gives the
    identity; ``m = n f`` is :func:`cubic_weights`."""
    j = torch.arange(m, dtype=torch.float64)
    u = (j + 0.5) * n / m - 0.5
    i0 = torch.floor(u)
    matrix = torch.zeros(m, n, dtype=torch.float64)
    a = KEYS_A
    for k in (-1, 0, 1, 2):
        s = (u - (i0 + k)).abs()
        # Keys 1981, eq. (15): the cubic-convolution kernel
        w = torch.where(
            s <= 1,
            (a + 2) * s**3 - (a + 3) * s**2 + 1,
            a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a,
        )
        idx = (i0 + k).clamp(0, n - 1).long()
        matrix.index_put_((j.long(), idx), w, accumulate=True)
    return matrix.to(dtype=dtype, device=device)


def upsample(x: torch.Tensor, factor: int, mode: str = "bicubic") -> torch.Tensor:
    """Interpolate cell-centred fields ``[B, C, h, w]`` to ``[B, C, h f, w f]``.

    Cell-centred: the centre of coarse cell ``i`` lies at fine position ``f (i + 1/2)``
    (``align_corners=False``). ``"bicubic"`` is Keys' cubic convolution with a = -0.5
    (:func:`cubic_weights`), separable, with the border cells repeated outside the grid:
    it reproduces linear fields exactly except within two coarse cells of the border.
    ``"bilinear"`` and ``"nearest"`` are torch's.

    Parameters
    ----------
    x
        Fields ``[B, C, h, w]``.
    factor
        Integer upsampling factor.
    mode
        ``"bicubic"``, ``"bilinear"`` or ``"nearest"``.
    """
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"mode must be one of {UPSAMPLE_MODES}, got {mode!r}")
    if int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    factor = int(factor)
    if mode == "bicubic":
        rows = cubic_weights(x.shape[-2], factor, x.dtype, x.device)
        cols = cubic_weights(x.shape[-1], factor, x.dtype, x.device)
        return rows @ x @ cols.T
    corners = None if mode == "nearest" else False
    return F.interpolate(x, scale_factor=factor, mode=mode, align_corners=corners)


class _ResidualBlock(nn.Module):
    """``x + conv(act(conv(x)))`` (SRResNet without batch norm, as in EDSR)."""

    def __init__(self, width: int, kernel_size: int, slope: float) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(width, width, kernel_size, padding=pad),
            nn.LeakyReLU(slope),
            nn.Conv2d(width, width, kernel_size, padding=pad),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FieldSuperResolutionNet(nn.Module):
    """Residual super-resolution ``[B, C, h, w] -> [B, C, h f, w f]`` around bicubic.

    Parameters
    ----------
    in_channels
        Field channels C.
    width
        Channels of the hidden layers.
    blocks
        Number of residual blocks at the low resolution.
    factor
        Upsampling factor, 2 or 4 (one or two sub-pixel stages of 2).
    kernel_size
        Odd kernel size of the convolutions.
    slope
        Negative slope of the leaky ReLUs.
    """

    def __init__(
        self,
        in_channels: int = 2,
        width: int = 32,
        blocks: int = 4,
        factor: int = 2,
        kernel_size: int = 3,
        slope: float = 0.2,
    ) -> None:
        super().__init__()
        if factor not in FACTORS:
            raise ValueError(f"factor must be one of {FACTORS}, got {factor}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.in_channels, self.factor = int(in_channels), int(factor)
        pad = kernel_size // 2
        self.head = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size, padding=pad), nn.LeakyReLU(slope)
        )
        self.blocks = nn.Sequential(
            *(_ResidualBlock(width, kernel_size, slope) for _ in range(blocks)),
            nn.Conv2d(width, width, kernel_size, padding=pad),
        )
        stages: list[nn.Module] = []
        for _ in range(self.factor.bit_length() - 1):  # log2(factor) stages of x2
            stages += [
                nn.Conv2d(width, 4 * width, kernel_size, padding=pad),
                nn.PixelShuffle(2),
                nn.LeakyReLU(slope),
            ]
        self.upsampler = nn.Sequential(*stages)
        self.tail = nn.Conv2d(width, in_channels, kernel_size, padding=pad)
        nn.init.zeros_(self.tail.weight)  # untrained: exactly bicubic
        nn.init.zeros_(self.tail.bias)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The learned part ``R(x)`` ``[B, C, h f, w f]``."""
        features = self.head(x)
        features = features + self.blocks(features)  # SRResNet's long skip
        return self.tail(self.upsampler(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``bicubic(x) + R(x)`` for fields ``[B, C, h, w]``."""
        return upsample(x, self.factor, "bicubic") + self.residual(x)

    def extra_repr(self) -> str:
        return f"factor={self.factor}"
