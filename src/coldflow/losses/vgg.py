"""Feature reconstruction loss of Johnson, Alahi and Fei-Fei (ECCV 2016) on ImageNet VGG-16.

Both inputs are mapped to [0, 1], normalised with the ImageNet mean and standard
deviation, passed through VGG-16, and compared by the mean squared difference of their
activations at one or more layers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from coldflow.losses._common import (
    check_min_size,
    check_pair,
    freeze,
    joint_minmax_scale,
    load_checkpoint,
    map_range,
    to_rgb,
)
from coldflow.nets.vgg import VGG16_LAYERS, VGG16Features

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "VGGFeatureLoss"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_weights(layers: str | Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    if isinstance(layers, str):
        chosen = {layers: 1.0}
    elif isinstance(layers, Mapping):
        chosen = {str(k): float(v) for k, v in layers.items()}
    else:
        chosen = {str(k): 1.0 for k in layers}
    unknown = [name for name in chosen if name not in VGG16_LAYERS]
    if not chosen or unknown:
        raise ValueError(f"vgg layers must be among {list(VGG16_LAYERS)}, got {list(chosen)}")
    return chosen


class VGGFeatureLoss(nn.Module):
    """VGG-16 feature reconstruction distance per sample.

    l(a, b) = sum_j w_j / (C_j H_j W_j) * ||phi_j(a) - phi_j(b)||_2^2   (Johnson et al. 2016, eq. 2)

    Parameters
    ----------
    layers
        One layer name (default ``"relu3_3"``), several names (equal weights), or a
        mapping from names to weights. Names: ``relu1_2``, ``relu2_2``, ``relu3_3``,
        ``relu4_3``, ``relu5_3``.
    pretrained
        Load the torchvision ImageNet weights (hub resource ``"vgg16"``). If they are
        missing, construction raises :class:`coldflow.hub.HubError` naming the file and
        where to put it. ``False`` keeps random weights (tests, timing).
    input_range
        ``(low, high)`` of the input values, mapped linearly to [0, 1] (default
        ``(-1, 1)``). ``None`` maps each sample's joint min-max over both inputs to [0, 1].

    Notes
    -----
    Inputs are ``[batch, C, H, W]`` with C = 1 (repeated to 3 channels) or 3, and at
    least :attr:`min_size` pixels high and wide (one pixel left at the deepest layer).
    """

    def __init__(
        self,
        layers: str | Sequence[str] | Mapping[str, float] = "relu3_3",
        pretrained: bool = True,
        input_range: tuple[float, float] | None = (-1.0, 1.0),
    ) -> None:
        super().__init__()
        self.weights = _layer_weights(layers)
        checkpoint = load_checkpoint("vgg16") if pretrained else None
        self.input_range = None if input_range is None else tuple(map(float, input_range))
        self.net = VGG16Features()
        if checkpoint is not None:
            self.net.load_torchvision(checkpoint)
        freeze(self.net)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        deepest = max(VGG16_LAYERS[name] for name in self.weights)
        pools = sum(isinstance(m, nn.MaxPool2d) for m in self.net.features[:deepest])
        self.min_size = 2**pools

    def _to_unit(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.input_range is not None:
            return map_range(a, self.input_range, (0, 1)), map_range(b, self.input_range, (0, 1))
        return joint_minmax_scale(a, b, (0, 1))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Return the ``[batch]`` feature reconstruction distances of ``a`` and ``b``."""
        check_pair(a, b, "vgg")
        check_min_size(a, self.min_size, "vgg")
        a, b = self._to_unit(to_rgb(a, "vgg"), to_rgb(b, "vgg"))
        x = (torch.cat([a, b]) - self.mean) / self.std
        names = list(self.weights)
        batch = a.shape[0]
        total = torch.zeros(batch, device=a.device, dtype=a.dtype)
        for name, feature in zip(names, self.net(x, names), strict=True):
            diff = feature[:batch] - feature[batch:]
            total = total + self.weights[name] * diff.square().flatten(1).mean(dim=1)
        return total
