"""Networks. ``NETS`` maps a config ``model.kind`` to a constructor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from coldflow.nets.seed_cnn import SeedCNN

NETS: dict[str, Callable[..., nn.Module]] = {
    "seed_cnn": SeedCNN,
}


def build_net(cfg: Any, in_channels: int, image_shape: tuple[int, int]) -> nn.Module:
    """Build the network named by ``cfg.kind`` for images of ``in_channels`` x ``image_shape``."""
    params = cfg.model_dump(exclude={"kind"})
    return NETS[cfg.kind](in_channels=in_channels, image_shape=image_shape, **params)


__all__ = ["NETS", "SeedCNN", "build_net"]
