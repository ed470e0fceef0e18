"""Networks. ``NETS`` maps a config ``model.kind`` to a generative-model constructor.

Feature networks (the FID classifier and Inception-v3, the VGG-16 and AlexNet stacks of
the perceptual losses) are not configurable models and live outside the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from coldflow.nets.alexnet import ALEXNET_LAYERS, AlexNetFeatures
from coldflow.nets.inception import FIDInceptionV3, load_fid_inception
from coldflow.nets.mnist_classifier import MNISTClassifier
from coldflow.nets.seed_cnn import SeedCNN
from coldflow.nets.sol import SolCorrectionNet, sol_resnet, sol_resnet_small
from coldflow.nets.unet import UNet
from coldflow.nets.vgg import VGG16_LAYERS, VGG16Features, load_torchvision_features

NETS: dict[str, Callable[..., nn.Module]] = {
    "seed_cnn": SeedCNN,
    "unet": UNet,
    "sol_resnet": sol_resnet,
    "sol_resnet_small": sol_resnet_small,
}


def build_net(cfg: Any, in_channels: int, image_shape: tuple[int, int]) -> nn.Module:
    """Build the network named by ``cfg.kind`` for images of ``in_channels`` x ``image_shape``."""
    params = cfg.model_dump(exclude={"kind"})
    return NETS[cfg.kind](in_channels=in_channels, image_shape=image_shape, **params)


__all__ = [
    "ALEXNET_LAYERS",
    "NETS",
    "VGG16_LAYERS",
    "AlexNetFeatures",
    "FIDInceptionV3",
    "MNISTClassifier",
    "SeedCNN",
    "SolCorrectionNet",
    "UNet",
    "VGG16Features",
    "build_net",
    "load_fid_inception",
    "load_torchvision_features",
]
