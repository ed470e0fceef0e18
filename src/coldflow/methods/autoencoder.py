"""Autoencoding of fields: compress a frame to a latent code and reconstruct it.

Fields are divided channel-wise by a fixed scale (the training data's standard
deviation of each channel) before the network and multiplied back after, so every
channel weighs alike in the loss and the network works on numbers of order one. The
training loss is the field distance in that normalised space,

    L = mean_b F(AE(x_b / s) , x_b / s),

with ``F`` any :class:`coldflow.losses.FieldDistance` (MSE, VGG, LPIPS, LSiM).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from coldflow.methods.common import Unowned, channel_scale

__all__ = ["FieldAutoencoder"]


class FieldAutoencoder(nn.Module):
    """A field autoencoder with its normalisation and training loss.

    Parameters
    ----------
    net
        Encoder-decoder ``[B, C, H, W] -> [B, C, H, W]`` with ``encode`` / ``decode``
        (e.g. :class:`coldflow.nets.FieldAutoencoderNet`).
    loss
        Field distance ``F(a, b) -> [B]`` on centred fields; ``None`` for evaluation only.
        Not part of ``state_dict``.
    scale
        ``[C]`` per-channel scale (standard deviation) of the data, in physical units;
        saved with the weights. ``None``: ones.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module | None = None,
        scale: torch.Tensor | Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.shared = Unowned(loss=loss)
        self.register_buffer("scale", channel_scale(scale, net))

    def _s(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale.to(x.dtype)[:, None, None]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent code of fields ``x`` ``[B, C, H, W]`` in physical units."""
        return self.net.encode(x / self._s(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Fields in physical units from latent codes."""
        out = self.net.decode(z)
        return out * self._s(out)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``: the reconstruction of ``[B, C, H, W]``, physical units.

        Differentiable; wrap in ``torch.no_grad()`` for evaluation.
        """
        return self.decode(self.encode(x))

    def latent_numbers(self, shape: Sequence[int]) -> int:
        """Numbers in the latent code of one field of ``shape`` (``(..., H, W)``)."""
        return int(self.net.latent_numbers(tuple(shape)))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Training loss of a batch ``{"x": [B, C, H, W]}`` (physical units), a scalar."""
        loss_fn = self.shared.loss
        if loss_fn is None:
            raise RuntimeError("this FieldAutoencoder was built without a loss (evaluation only)")
        x = batch["x"]
        loss_fn.to(x.device)
        target = x / self._s(x)
        return loss_fn(self.net(target), target).mean()

    def extra_repr(self) -> str:
        return f"scale={[round(v, 6) for v in self.scale.tolist()]}"
