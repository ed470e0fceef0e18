"""Methods: what a training step and a sample mean. ``METHODS`` maps ``method.kind``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from coldflow.methods.ddpm import DDPM, SampleResult, ddim_timesteps

# method.kind -> constructor(net, degradation, **method options)
METHODS: dict[str, Callable[..., nn.Module]] = {
    "ddpm": DDPM,
}


def build_method(cfg: Any, net: nn.Module, degradation: Any) -> nn.Module:
    """Build the method named by ``cfg.kind`` around a network and a degradation."""
    return METHODS[cfg.kind](net, degradation, **cfg.model_dump(exclude={"kind"}))


__all__ = ["DDPM", "METHODS", "SampleResult", "build_method", "ddim_timesteps"]
