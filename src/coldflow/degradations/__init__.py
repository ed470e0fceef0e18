"""Degradations: forward processes ``degrade(x0, t) -> x_t`` with timesteps 1..n_T."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coldflow.degradations.blur import GaussianBlur, blur, gaussian_kernel1d
from coldflow.degradations.noise import LinearNoise, linear_beta_schedule
from coldflow.degradations.resolution import ResolutionLowering

# config ``degradation.kind`` -> constructor taking the config's fields (without ``kind``)
DEGRADATIONS: dict[str, Callable[..., Any]] = {
    "linear_noise": LinearNoise,
    "blur": GaussianBlur,
    "resolution": ResolutionLowering,
}


def build_degradation(cfg: Any) -> Any:
    """Build the degradation named by ``cfg.kind`` from a degradation config section."""
    params = cfg.model_dump(exclude={"kind"})
    return DEGRADATIONS[cfg.kind](**params)


__all__ = [
    "DEGRADATIONS",
    "GaussianBlur",
    "LinearNoise",
    "ResolutionLowering",
    "blur",
    "build_degradation",
    "gaussian_kernel1d",
    "linear_beta_schedule",
]
