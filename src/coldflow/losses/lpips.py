"""LPIPS v0.1, the learned perceptual image patch similarity of Zhang et al. (CVPR 2018).

Inputs in [-1, 1] pass the scaling layer (a fixed per-channel shift and scale), an
ImageNet backbone (AlexNet or VGG-16) gives activations at five layers, each activation
is normalised to unit length over channels, the squared differences are weighted by the
learned non-negative 1×1 "linear" layers of v0.1, averaged over space and summed over
the layers.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
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
from coldflow.nets.alexnet import ALEXNET_LAYERS, AlexNetFeatures
from coldflow.nets.vgg import VGG16_LAYERS, VGG16Features

__all__ = ["LPIPS", "LPIPS_BACKBONES", "lpips_head", "unit_normalise"]

# backbone name -> (feature stack, taps, channels per tap, hub backbone, hub linear layers,
#                   smallest input with a non-empty deepest tap, rounded up)
LPIPS_BACKBONES: dict[str, tuple] = {
    "alex": (AlexNetFeatures, tuple(ALEXNET_LAYERS), (64, 192, 384, 256, 256), "alexnet", 32),
    "vgg": (VGG16Features, tuple(VGG16_LAYERS), (64, 128, 256, 512, 512), "vgg16", 16),
}

# the scaling layer of LPIPS v0.1: (x - shift) / scale, for inputs in [-1, 1]
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPSILON = 1e-10


def unit_normalise(feature: torch.Tensor) -> torch.Tensor:
    """Divide each feature vector (over the channel axis) by its Euclidean length."""
    norm = torch.sqrt(torch.sum(feature**2, dim=1, keepdim=True))
    return feature / (norm + _EPSILON)


def lpips_head(
    features_a: list[torch.Tensor],
    features_b: list[torch.Tensor],
    weights: list[torch.Tensor],
) -> torch.Tensor:
    """LPIPS from backbone activations: one value per sample.

    d(a, b) = sum_l mean_hw( w_l . (u(f_l(a)) - u(f_l(b)))^2 )   (Zhang et al. 2018, eq. 1)

    with ``u`` the channel-wise unit normalisation and ``w_l`` ``[1, C_l, 1, 1]``.
    """
    total = torch.zeros(features_a[0].shape[0], device=features_a[0].device)
    for fa, fb, w in zip(features_a, features_b, weights, strict=True):
        diff = (unit_normalise(fa) - unit_normalise(fb)) ** 2
        total = total + F.conv2d(diff, w).mean(dim=(2, 3))[:, 0]
    return total


class LPIPS(nn.Module):
    """LPIPS v0.1 distance per sample, with frozen backbone and linear layers.

    Parameters
    ----------
    net
        Backbone: ``"alex"`` (default, the authors' recommendation for a loss) or ``"vgg"``.
    pretrained
        Load the torchvision ImageNet backbone (hub ``"alexnet"`` or ``"vgg16"``). If it
        is missing, construction raises :class:`coldflow.hub.HubError` naming the file and
        where to put it. ``False`` keeps a random backbone (tests, timing).
    calibrated
        Load the v0.1 linear layers (hub ``"lpips-alex"`` / ``"lpips-vgg"``); ``False``
        uses unit weights (the uncalibrated "baseline" variant of the paper).
    input_range
        ``(low, high)`` of the input values, mapped linearly to [-1, 1] (default
        ``(-1, 1)``, no change). ``None`` maps each sample's joint min-max over both inputs.

    Notes
    -----
    Inputs are ``[batch, C, H, W]`` with C = 1 (repeated) or 3 and at least
    :attr:`min_size` pixels high and wide.
    """

    def __init__(
        self,
        net: str = "alex",
        pretrained: bool = True,
        calibrated: bool = True,
        input_range: tuple[float, float] | None = (-1.0, 1.0),
    ) -> None:
        super().__init__()
        if net not in LPIPS_BACKBONES:
            raise ValueError(f"lpips net must be one of {list(LPIPS_BACKBONES)}, got {net!r}")
        stack, taps, channels, backbone_resource, min_size = LPIPS_BACKBONES[net]
        backbone = load_checkpoint(backbone_resource) if pretrained else None
        linear = load_checkpoint(f"lpips-{net}") if calibrated else None
        self.net_name = net
        self.taps = taps
        self.min_size = min_size
        self.input_range = None if input_range is None else tuple(map(float, input_range))
        self.net = stack()
        if backbone is not None:
            self.net.load_torchvision(backbone)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        for lin in self.lins:
            nn.init.ones_(lin.weight)
        if linear is not None:
            self.load_linear(linear)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        freeze(self)

    def load_linear(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load official v0.1 linear layers (keys ``lin{i}.model.1.weight``) strictly."""
        expected = {f"lin{i}.model.1.weight": f"{i}.weight" for i in range(len(self.lins))}
        if set(state_dict) != set(expected):
            raise ValueError(
                f"not LPIPS v0.1 {self.net_name} linear layers: keys {sorted(state_dict)}, "
                f"expected {sorted(expected)}"
            )
        self.lins.load_state_dict({expected[k]: v for k, v in state_dict.items()}, strict=True)

    def compare(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """LPIPS of prepared inputs ``[batch, 3, H, W]`` in [-1, 1]: shape [batch]."""
        features = self.net((torch.cat([a, b]) - self.shift) / self.scale, self.taps)
        batch = a.shape[0]
        return lpips_head(
            [f[:batch] for f in features],
            [f[batch:] for f in features],
            [lin.weight for lin in self.lins],
        )

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Return ``[batch]`` LPIPS distances of ``a`` and ``b``, differentiable in both."""
        check_pair(a, b, "lpips")
        check_min_size(a, self.min_size, f"lpips ({self.net_name})")
        a, b = to_rgb(a, "lpips"), to_rgb(b, "lpips")
        if self.input_range is not None:
            a = map_range(a, self.input_range, (-1, 1))
            b = map_range(b, self.input_range, (-1, 1))
        else:
            a, b = joint_minmax_scale(a, b, (-1, 1))
        return self.compare(a, b)
