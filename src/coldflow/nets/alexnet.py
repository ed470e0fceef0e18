"""AlexNet convolutional feature stack (Krizhevsky et al. 2012) in torchvision's layout.

Only the ``features`` part of torchvision's ``alexnet`` (the "one weird trick" variant
with 64/192/384/256/256 channels), numbered as torchvision numbers it, so that the
ImageNet checkpoint ``alexnet-owt-7be5be79.pth`` loads key for key. Used as the LPIPS
``alex`` backbone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from coldflow.nets.vgg import forward_taps, load_torchvision_features

__all__ = ["ALEXNET_LAYERS", "AlexNetFeatures"]

# named activations -> index of their ReLU in ``features`` (torchvision numbering)
ALEXNET_LAYERS: dict[str, int] = {
    "relu1": 1,
    "relu2": 4,
    "relu3": 7,
    "relu4": 9,
    "relu5": 11,
}


class AlexNetFeatures(nn.Module):
    """The convolutional part of AlexNet with taps after each of its five ReLUs.

    ``features`` is an ``nn.Sequential`` of 13 modules numbered as in torchvision:
    conv 11×11/4 (64), pool, conv 5×5 (192), pool, conv 3×3 (384), conv 3×3 (256),
    conv 3×3 (256), pool. Randomly initialised; call :meth:`load_torchvision` with the
    ImageNet checkpoint for the pretrained network.
    """

    layers = ALEXNET_LAYERS

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )

    def load_torchvision(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load a torchvision ``alexnet`` state dict; ``classifier.*`` entries are ignored."""
        load_torchvision_features(self, state_dict, "alexnet")

    def forward(
        self, x: torch.Tensor, layers: Sequence[str] = tuple(ALEXNET_LAYERS)
    ) -> list[torch.Tensor]:
        """Return the activations at ``layers`` (names of :data:`ALEXNET_LAYERS`), in order.

        Parameters
        ----------
        x
            ``[batch, 3, height, width]``, normalised as the caller's metric requires.
        layers
            Names of the taps to return; the stack stops after the deepest one.
        """
        return forward_taps(self.features, x, layers, ALEXNET_LAYERS)
