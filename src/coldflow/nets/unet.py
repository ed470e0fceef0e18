"""A compact U-Net for small images: residual blocks, time embedding, skip connections.

Cheaper per image than the seed CNN (most of the work happens at 1/2 and 1/4 resolution)
and much faster to train, which is what a CPU-sized run needs.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["UNet", "sinusoidal_embedding"]


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 1000.0) -> torch.Tensor:
    """Transformer-style features of ``t`` in [0, 1] (scaled by ``max_period``) -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * max_period * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with the most groups, up to 8, that divide ``channels`` (8 for the usual
    multiples of 8; a skip concatenation such as 8 + 4 = 12 channels gets 6)."""
    groups = max(g for g in range(1, min(8, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, plus the time embedding, twice; residual connection."""

    def __init__(self, c_in: int, c_out: int, t_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """U-Net ``g(x, t / n_T)`` with one residual block per level on each side.

    Parameters
    ----------
    in_channels
        Input channels (the image, plus conditioning channels where a method adds them).
    image_shape
        (H, W); each side must be divisible by 2 ** (len(channels) - 1).
    channels
        Width at each resolution level, e.g. (32, 64, 64): 28 -> 14 -> 7 for MNIST.
    time_dim
        Width of the time embedding.
    out_channels
        Output channels; ``None``: as many as ``in_channels`` (an unconditional model's
        image). A conditional model predicts fewer than it reads.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_shape: tuple[int, int] = (28, 28),
        channels: tuple[int, ...] = (32, 64, 64),
        time_dim: int = 64,
        out_channels: int | None = None,
    ) -> None:
        super().__init__()
        factor = 2 ** (len(channels) - 1)
        if any(s % factor for s in image_shape):
            raise ValueError(
                f"image shape {tuple(image_shape)} is not divisible by {factor}, as "
                f"{len(channels)} U-Net levels need; use fewer model.channels"
            )
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(time_dim, 4 * time_dim), nn.SiLU(), nn.Linear(4 * time_dim, time_dim)
        )
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        c_prev = channels[0]
        for i, c in enumerate(channels):
            self.down.append(ResBlock(c_prev, c, time_dim))
            if i < len(channels) - 1:
                self.pool.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
            c_prev = c
        self.mid = ResBlock(c_prev, c_prev, time_dim)
        self.up = nn.ModuleList()
        for c in reversed(channels):
            self.up.append(ResBlock(c_prev + c, c, time_dim))
            c_prev = c
        self.out = nn.Sequential(
            _norm(c_prev), nn.SiLU(), nn.Conv2d(c_prev, out_channels or in_channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predict from images ``x`` [B, C, H, W] at normalised times ``t`` [B]."""
        temb = self.time_mlp(sinusoidal_embedding(t, self.time_dim))
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, temb)
            skips.append(h)
            if i < len(self.pool):
                h = self.pool[i](h)
        h = self.mid(h, temb)
        for block in self.up:
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), temb)
        return self.out(h)
