"""Pixel-wise distances: mean squared and mean absolute error per sample."""

from __future__ import annotations

import torch
from torch import nn

from coldflow.losses._common import check_pair

__all__ = ["MAE", "MSE", "mae", "mse"]


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all but the first axis: ``[batch, ...] -> [batch]``."""
    return (a - b).square().flatten(1).mean(dim=1)


def mae(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all but the first axis: ``[batch, ...] -> [batch]``."""
    return (a - b).abs().flatten(1).mean(dim=1)


class MSE(nn.Module):
    """Mean squared error per sample of ``[batch, C, H, W]`` tensors (any C and size)."""

    min_size = 1

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Return ``[batch]`` mean squared errors."""
        check_pair(a, b, "mse")
        return mse(a, b)


class MAE(nn.Module):
    """Mean absolute error per sample of ``[batch, C, H, W]`` tensors (any C and size)."""

    min_size = 1

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Return ``[batch]`` mean absolute errors."""
        check_pair(a, b, "mae")
        return mae(a, b)
