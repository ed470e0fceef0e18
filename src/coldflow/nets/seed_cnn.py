"""The seed study's small CNN for 28x28 diffusion: 7x7 conv blocks, LayerNorm, GELU."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["CNNBlock", "SeedCNN"]


class CNNBlock(nn.Module):
    """Conv2d(k, pad=k//2) -> LayerNorm over (C, H, W) -> GELU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        image_shape: tuple[int, int],
        kernel_size: int = 7,
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.LayerNorm((out_channels, *image_shape)),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SeedCNN(nn.Module):
    """Noise/clean-image predictor ``g(z_t, t / n_T)`` of the seed study.

    Blocks ``in -> hidden[0] -> ... -> hidden[-1]``, then a last convolution back to the
    input channels. The normalised time ``t / n_T`` is encoded with sinusoidal features,
    passed through an MLP and added after the first block.

    Parameters
    ----------
    in_channels
        Image channels (1 for MNIST).
    image_shape
        (H, W); LayerNorm normalises over (C, H, W), so the shape is fixed.
    hidden
        Channels of the conv blocks; the seed uses (16, 32, 32, 16).
    kernel_size, last_kernel_size
        7 and 3 in the seed study.
    time_embeddings
        Number of sinusoidal frequencies.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_shape: tuple[int, int] = (28, 28),
        hidden: tuple[int, ...] = (16, 32, 32, 16),
        kernel_size: int = 7,
        last_kernel_size: int = 3,
        time_embeddings: int = 16,
    ) -> None:
        super().__init__()
        channels = [in_channels, *hidden]
        self.blocks = nn.ModuleList(
            CNNBlock(c_in, c_out, tuple(image_shape), kernel_size)
            for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
        )
        self.last = nn.Conv2d(
            hidden[-1], in_channels, last_kernel_size, padding=last_kernel_size // 2
        )
        self.time_embed = nn.Sequential(
            nn.Linear(2 * time_embeddings, 128),
            nn.GELU(),
            nn.Linear(128, 128),
            nn.GELU(),
            nn.Linear(128, 128),
            nn.GELU(),
            nn.Linear(128, hidden[0]),
        )
        # frequencies 0 and 2*pi*1.5^k, as in the seed study
        freqs = [0.0] + [2 * math.pi * 1.5**k for k in range(time_embeddings - 1)]
        self.register_buffer("frequencies", torch.tensor(freqs), persistent=False)

    def time_encoding(self, t: torch.Tensor) -> torch.Tensor:
        """Sinusoidal features of ``t`` in [0, 1] -> [B, hidden[0], 1, 1]."""
        phases = t[:, None].float() * self.frequencies[None, :]
        feats = torch.cat((torch.sin(phases), torch.cos(phases) - 1), dim=1)
        return self.time_embed(feats)[:, :, None, None]

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predict from images ``x`` [B, C, H, W] at normalised times ``t`` [B]."""
        h = self.blocks[0](x) + self.time_encoding(t)
        for block in self.blocks[1:]:
            h = block(h)
        return self.last(h)
