"""A convolutional autoencoder for cell-centred fields ``[B, C, H, W]``.

The encoder halves the resolution ``levels`` times with stride-2 convolutions and ends in
a linear bottleneck of ``latent_channels`` channels; the decoder mirrors it with
resize-convolutions (upsample by 2, then a 3x3 convolution), which avoid the
checkerboard artefacts of transposed convolutions (Odena et al. 2016). No skip
connection bypasses the bottleneck, so the latent tensor is all the decoder sees.

The compression ratio is the number of input values per latent value,

    compression = C H W / (latent_channels (H / 2^L) (W / 2^L)) = C 4^L / latent_channels,

so ``latent_channels`` follows from ``compression`` and must come out a whole number.

With ``coarse=True`` the first C latent channels are not learned: they are the field
averaged over blocks of ``2^L x 2^L`` cells, and the decoder adds its learned output to
their bicubic upsampling,

    decode(z) = bicubic(z[:C]) + D(z),    z = [avgpool(x), E(x)],

with the last layer of ``D`` zero at the start. The untrained network is then the
linear "average, store, interpolate" codec, and training only has to learn what the
remaining ``latent_channels - C`` channels add. Every stored number is still in ``z``.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from coldflow.nets.superres import upsample

__all__ = ["FieldAutoencoderNet", "latent_channels_for"]

UPSAMPLE_MODES = ("nearest", "bilinear")


def latent_channels_for(channels: int, levels: int, compression: float) -> int:
    """Bottleneck channels that give ``compression`` input values per latent value.

    Raises
    ------
    ValueError
        When ``channels * 4**levels / compression`` is not a whole number of at least 1;
        the message lists the compressions that work for these ``levels``.
    """
    if levels < 0:
        raise ValueError(f"levels must be at least 0, got {levels}")
    if compression <= 0:
        raise ValueError(f"compression must be positive, got {compression}")
    per_cell = channels * 4**levels  # input values per latent cell
    latent = Fraction(per_cell) / Fraction(compression).limit_denominator(10**6)
    if latent.denominator != 1 or latent < 1:
        divisors = [per_cell // k for k in range(1, per_cell + 1) if per_cell % k == 0]
        raise ValueError(
            f"compression={compression:g} with levels={levels} and {channels} channels gives "
            f"{float(latent):g} latent channels ({channels} x 4^{levels} / compression); "
            f"choose a compression that divides {per_cell}, e.g. one of {sorted(divisors)[:12]}, "
            "or change levels"
        )
    return int(latent)


class FieldAutoencoderNet(nn.Module):
    """Encoder-decoder ``[B, C, H, W] -> [B, C, H, W]`` through a compressed latent.

    Parameters
    ----------
    in_channels
        Field channels C (2 for a velocity, 3 with density).
    width
        Channels of the first level; each level doubles them up to ``4 * width``.
    levels
        Number of stride-2 downsamplings; H and W must be divisible by ``2**levels``.
    compression
        Input values per latent value (see the module docstring).
    slope
        Negative slope of the leaky ReLUs.
    upsample
        ``"nearest"`` or ``"bilinear"``: the resize of the resize-convolutions.
    image_shape
        Optional ``(H, W)`` to check against ``levels`` when the net is built.
    """

    def __init__(
        self,
        in_channels: int = 2,
        width: int = 32,
        levels: int = 3,
        compression: float = 16,
        slope: float = 0.2,
        upsample: str = "nearest",
        image_shape: tuple[int, int] | None = None,
        coarse: bool = False,
    ) -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.in_channels, self.levels = int(in_channels), int(levels)
        self.compression = float(compression)
        self.latent_channels = latent_channels_for(self.in_channels, self.levels, compression)
        self.upsample = upsample
        self.coarse = bool(coarse)
        learned = self.latent_channels - (self.in_channels if self.coarse else 0)
        if learned < 1:
            raise ValueError(
                f"coarse=True keeps {self.in_channels} averaged channels in the latent, so it "
                f"needs more than {self.in_channels} latent channels; compression={compression:g}"
                f" with levels={levels} gives {self.latent_channels}: lower the compression"
            )
        if image_shape is not None:
            self._check_shape(tuple(image_shape))
        widths = [width * min(2**i, 4) for i in range(self.levels + 1)]
        act = nn.LeakyReLU(slope)

        encoder: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1), act]
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True):
            encoder += [nn.Conv2d(w_in, w_out, 3, stride=2, padding=1), act]
            encoder += [nn.Conv2d(w_out, w_out, 3, padding=1), act]
        encoder.append(nn.Conv2d(widths[-1], learned, 3, padding=1))  # linear
        self.encoder = nn.Sequential(*encoder)

        self.decoder_head = nn.Sequential(
            nn.Conv2d(self.latent_channels, widths[-1], 3, padding=1), act
        )
        self.decoder_levels = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(w_in, w_out, 3, padding=1),
                act,
                nn.Conv2d(w_out, w_out, 3, padding=1),
                act,
            )
            for w_in, w_out in zip(widths[::-1][:-1], widths[::-1][1:], strict=True)
        )
        self.decoder_tail = nn.Conv2d(widths[0], in_channels, 3, padding=1)
        if self.coarse:  # untrained: exactly the interpolated block averages
            nn.init.zeros_(self.decoder_tail.weight)
            nn.init.zeros_(self.decoder_tail.bias)

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        H, W = shape[-2:]
        k = 2**self.levels
        if H % k or W % k:
            raise ValueError(
                f"the autoencoder with levels={self.levels} needs H and W divisible by {k}, "
                f"got {H}x{W}; lower levels or crop the fields"
            )

    def latent_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """``(latent_channels, H / 2^L, W / 2^L)`` for inputs of ``shape`` (``(..., H, W)``)."""
        self._check_shape(tuple(shape))
        k = 2**self.levels
        return self.latent_channels, shape[-2] // k, shape[-1] // k

    def latent_numbers(self, shape: tuple[int, ...]) -> int:
        """Numbers in the latent code of one field of ``shape`` (``(..., H, W)``)."""
        c, h, w = self.latent_shape(shape)
        return c * h * w

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> latent ``[B, latent_channels, H / 2^L, W / 2^L]``."""
        self._check_shape(tuple(x.shape))
        z = self.encoder(x)
        if self.coarse:
            z = torch.cat((F.avg_pool2d(x, 2**self.levels), z), dim=1)
        return z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``[B, latent_channels, h, w]`` -> ``[B, C, h 2^L, w 2^L]``."""
        y = self.decoder_head(z)
        for level in self.decoder_levels:
            corners = False if self.upsample == "bilinear" else None
            y = level(F.interpolate(y, scale_factor=2, mode=self.upsample, align_corners=corners))
        y = self.decoder_tail(y)
        if self.coarse:
            y = y + upsample(z[:, : self.in_channels], 2**self.levels, "bicubic")
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``decode(encode(x))`` of ``[B, C, H, W]``."""
        return self.decode(self.encode(x))

    def extra_repr(self) -> str:
        return (
            f"channels={self.in_channels}, levels={self.levels}, "
            f"latent_channels={self.latent_channels}, compression={self.compression:g}, "
            f"coarse={self.coarse}"
        )
