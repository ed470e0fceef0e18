"""Super-resolution of fields: reconstruct a high-resolution frame from its
downsampled version.

As for the autoencoder (:mod:`coldflow.methods.autoencoder`), fields are divided
channel-wise by the data's standard deviation before the network and multiplied back
after; the loss compares the upscaled and the reference frames in that space,

    L = mean_b F(SR(low_b / s), high_b / s).

:func:`upsample` (bicubic, bilinear, nearest) gives the interpolation baselines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from coldflow.methods.common import Unowned, channel_scale
from coldflow.nets.superres import UPSAMPLE_MODES, upsample

__all__ = ["UPSAMPLE_MODES", "FieldSuperResolution", "upsample"]


class FieldSuperResolution(nn.Module):
    """A super-resolution network with its normalisation and training loss.

    Parameters
    ----------
    net
        Network ``[B, C, h, w] -> [B, C, h f, w f]`` (e.g.
        :class:`coldflow.nets.FieldSuperResolutionNet`).
    loss
        Field distance ``F(a, b) -> [B]`` on centred fields; ``None`` for evaluation only.
        Not part of ``state_dict``.
    scale
        ``[C]`` per-channel scale (standard deviation) in physical units; ``None``: ones.
    factor
        Upsampling factor; must match the network's ``factor`` where it has one.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module | None = None,
        scale: torch.Tensor | Sequence[float] | None = None,
        factor: int = 2,
    ) -> None:
        super().__init__()
        net_factor = getattr(net, "factor", factor)
        if int(net_factor) != int(factor):
            raise ValueError(
                f"the network upsamples by {net_factor} but the data needs factor {factor}; "
                "set the model's factor to the data set's"
            )
        self.net = net
        self.factor = int(factor)
        self.shared = Unowned(loss=loss)
        self.register_buffer("scale", channel_scale(scale, net))

    def _s(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale.to(x.dtype)[:, None, None]

    def upscale(self, low: torch.Tensor) -> torch.Tensor:
        """High-resolution ``[B, C, h f, w f]`` from ``low`` ``[B, C, h, w]``, physical units.

        Differentiable; wrap in ``torch.no_grad()`` for evaluation.
        """
        s = self._s(low)
        return self.net(low / s) * s

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Training loss of ``{"low": [B, C, h, w], "high": [B, C, h f, w f]}``, a scalar."""
        loss_fn = self.shared.loss
        if loss_fn is None:
            raise RuntimeError(
                "this FieldSuperResolution was built without a loss (evaluation only)"
            )
        low, high = batch["low"], batch["high"]
        if tuple(high.shape[-2:]) != (low.shape[-2] * self.factor, low.shape[-1] * self.factor):
            raise ValueError(
                f"high {tuple(high.shape)} is not low {tuple(low.shape)} times {self.factor}"
            )
        loss_fn.to(low.device)
        s = self._s(low)
        return loss_fn(self.net(low / s), high / s).mean()

    def extra_repr(self) -> str:
        return f"factor={self.factor}, scale={[round(v, 6) for v in self.scale.tolist()]}"
