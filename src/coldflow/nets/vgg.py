"""VGG-16 convolutional feature stack (Simonyan & Zisserman 2015) in torchvision's layout.

The module holds only the ``features`` part of torchvision's ``vgg16``: thirteen 3×3
convolutions with ReLUs and five max-pools, numbered exactly as torchvision numbers them,
so that the ImageNet checkpoint ``vgg16-397923af.pth`` loads into it key for key
(``features.0.weight`` … ``features.28.bias``). The classifier is not built.

Used by the ``vgg`` feature-reconstruction loss and by LPIPS with the ``vgg`` backbone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

__all__ = ["VGG16_LAYERS", "VGG16Features", "forward_taps", "load_torchvision_features"]

# torchvision's "D" configuration: output channels of each 3x3 conv, "M" for a 2x2 max-pool
_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip

# named activations -> index of their ReLU in ``features`` (torchvision numbering)
VGG16_LAYERS: dict[str, int] = {
    "relu1_2": 3,
    "relu2_2": 8,
    "relu3_3": 15,
    "relu4_3": 22,
    "relu5_3": 29,
}


def load_torchvision_features(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], arch: str
) -> None:
    """Load the ``features.*`` entries of a torchvision classifier checkpoint strictly.

    Parameters
    ----------
    module
        A feature stack whose only parameters live under ``features.``.
    state_dict
        A full torchvision state dict (``features.*`` and ``classifier.*``) or only its
        ``features.*`` part. ``classifier.*`` entries are ignored on purpose.
    arch
        Name used in error messages, e.g. ``"vgg16"``.

    Raises
    ------
    ValueError
        If a ``features`` key is missing, unexpected or has the wrong shape, or if the dict
        holds keys that belong to neither part (not a torchvision ``arch`` checkpoint).
    """
    foreign = [k for k in state_dict if not k.startswith(("features.", "classifier."))]
    if foreign:
        raise ValueError(
            f"not a torchvision {arch} state dict: unexpected keys {foreign[:5]} "
            "(expected only 'features.*' and 'classifier.*')"
        )
    features = {k: v for k, v in state_dict.items() if k.startswith("features.")}
    own = module.state_dict()
    missing = sorted(set(own) - set(features))
    unexpected = sorted(set(features) - set(own))
    wrong = [
        f"{k}: {tuple(features[k].shape)} != {tuple(own[k].shape)}"
        for k in own
        if k in features and features[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"torchvision {arch} features do not match: missing {missing}, "
            f"unexpected {unexpected}, wrong shapes {wrong}"
        )
    module.load_state_dict(features, strict=True)


class VGG16Features(nn.Module):
    """The convolutional part of VGG-16 with taps at named ReLU outputs.

    ``features`` is an ``nn.Sequential`` of 31 modules numbered as in torchvision, so
    ``VGG16Features().features[i]`` is ``torchvision.models.vgg16().features[i]``.
    Parameters are randomly initialised; call :meth:`load_torchvision` with the ImageNet
    checkpoint for the pretrained network.

    Inputs are ImageNet-normalised RGB batches ``[batch, 3, height, width]``.
    """

    layers = VGG16_LAYERS

    def __init__(self) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        channels = 3
        for item in _CONFIG:
            if item == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU()]
                channels = int(item)
        self.features = nn.Sequential(*modules)

    def load_torchvision(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load a torchvision ``vgg16`` state dict (see :func:`load_torchvision_features`)."""
        load_torchvision_features(self, state_dict, "vgg16")

    def forward(
        self, x: torch.Tensor, layers: Sequence[str] = tuple(VGG16_LAYERS)
    ) -> list[torch.Tensor]:
        """Return the activations at ``layers`` (names of :data:`VGG16_LAYERS`), in order.

        Parameters
        ----------
        x
            ``[batch, 3, height, width]``, ImageNet-normalised.
        layers
            Names of the taps to return; the stack stops after the deepest one.

        Returns
        -------
        list of torch.Tensor
            One activation per requested name, in the order requested.
        """
        return forward_taps(self.features, x, layers, VGG16_LAYERS)


def forward_taps(
    stack: nn.Sequential, x: torch.Tensor, layers: Sequence[str], taps: Mapping[str, int]
) -> list[torch.Tensor]:
    """Run ``stack`` on ``x`` and collect the outputs of the modules named by ``layers``.

    ``taps`` maps a layer name to the index of its module in ``stack``. The loop stops
    after the deepest requested module, so shallow taps cost only the shallow layers.
    """
    unknown = [name for name in layers if name not in taps]
    if unknown:
        raise ValueError(f"unknown layers {unknown}; known: {list(taps)}")
    wanted = {taps[name] for name in layers}
    found: dict[int, torch.Tensor] = {}
    for index, module in enumerate(stack):
        x = module(x)
        if index in wanted:
            found[index] = x
            if len(found) == len(wanted):
                break
    return [found[taps[name]] for name in layers]
