"""The correction network of Solver-in-the-Loop (Um et al. 2020).

A fully convolutional residual network on cell-centred fields: a ``k x k`` convolution to
``width`` channels with leaky ReLU, ``blocks`` residual blocks of two ``k x k``
convolutions with leaky ReLU, and a final ``k x k`` convolution to the output channels.
The paper's network is ``width=32, blocks=5, kernel_size=5`` (:func:`sol_resnet`); the
small variant (:func:`sol_resnet_small`) keeps the shape with fewer and narrower layers
for CPU runs. Inputs and outputs are normalised by the caller
(:class:`coldflow.methods.sol.SolverInTheLoop`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["KERAS_LEAKY_SLOPE", "LEAKY_SLOPE", "SolCorrectionNet", "sol_resnet", "sol_resnet_small"]

LEAKY_SLOPE = 0.01
"""Default negative slope of the leaky ReLUs (torch's default; every run so far used it)."""

KERAS_LEAKY_SLOPE = 0.3
"""The slope of Um et al.'s Keras code (``keras.layers.LeakyReLU()``'s default alpha)."""


class _ResidualBlock(nn.Module):
    """``x + act(conv(act(conv(x))))``."""

    def __init__(self, width: int, kernel_size: int, slope: float) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(width, width, kernel_size, padding=pad)
        self.conv2 = nn.Conv2d(width, width, kernel_size, padding=pad)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))


class SolCorrectionNet(nn.Module):
    """Residual CNN mapping ``[B, in_channels, H, W]`` to ``[B, out_channels, H, W]``.

    Parameters
    ----------
    in_channels
        Input channels (3 for a 2-D velocity plus the Reynolds-number channel).
    out_channels
        Output channels (2: the velocity correction at cell centres).
    width
        Channels of the hidden layers.
    blocks
        Number of residual blocks.
    kernel_size
        Odd kernel size of every convolution ("same" zero padding).
    slope
        Negative slope of the leaky ReLUs (:data:`LEAKY_SLOPE`; Um et al.'s code:
        :data:`KERAS_LEAKY_SLOPE`).
    zero_init
        Initialise the last convolution to zero, so that the untrained model is the
        uncorrected solver.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 2,
        width: int = 32,
        blocks: int = 5,
        kernel_size: int = 5,
        slope: float = LEAKY_SLOPE,
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        pad = kernel_size // 2
        self.head = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size, padding=pad), nn.LeakyReLU(slope)
        )
        self.blocks = nn.Sequential(
            *(_ResidualBlock(width, kernel_size, slope) for _ in range(blocks))
        )
        self.tail = nn.Conv2d(width, out_channels, kernel_size, padding=pad)
        if zero_init:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the correction ``[B, out_channels, H, W]`` for inputs ``[B, in, H, W]``."""
        return self.tail(self.blocks(self.head(x)))


def _options(defaults: dict, options: dict) -> dict:
    """``defaults`` updated by the options that are set (``None`` keeps the default)."""
    return {**defaults, **{k: v for k, v in options.items() if v is not None}}


def sol_resnet(in_channels: int = 3, out_channels: int = 2, **options) -> SolCorrectionNet:
    """The network of Um et al. 2020: 5x5 kernels, 32 channels, five residual blocks.

    ``options`` override :class:`SolCorrectionNet`'s (``None`` keeps the default).
    """
    defaults = {"width": 32, "blocks": 5, "kernel_size": 5}
    return SolCorrectionNet(in_channels, out_channels, **_options(defaults, options))


def sol_resnet_small(in_channels: int = 3, out_channels: int = 2, **options) -> SolCorrectionNet:
    """A CPU-sized variant: 16 channels, two residual blocks, 5x5 kernels."""
    defaults = {"width": 16, "blocks": 2, "kernel_size": 5}
    return SolCorrectionNet(in_channels, out_channels, **_options(defaults, options))
