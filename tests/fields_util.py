"""Test inputs shared by the loss and metric tests."""

from __future__ import annotations

import math

import torch


def smooth_fields(n: int, size: int = 64, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """Random smooth fields [n, channels, size, size]: sums of a few low-frequency waves."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = torch.zeros(n, channels, size, size)
    for _ in range(4):
        kx, ky, phase = torch.rand(3, n, channels, 1, 1, generator=g) * torch.tensor(
            [6.0, 6.0, 2 * math.pi]
        ).view(3, 1, 1, 1, 1)
        out += torch.rand(n, channels, 1, 1, generator=g) * torch.sin(kx * x + ky * y + phase)
    return out
