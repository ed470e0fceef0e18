"""Methods: what a training step and a sample mean. ``METHODS`` maps ``method.kind``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from coldflow.methods.cold import ColdDiffusion, fit_gmm, fit_prior
from coldflow.methods.ddpm import DDPM, SampleResult, ddim_timesteps
from coldflow.methods.sol import SolverInTheLoop

# method.kind -> constructor. Diffusion methods take (net, degradation, **options,
# **data context) through build_method; Solver-in-the-Loop takes (net, scene, loss, ...)
# and is built by coldflow.fluid_experiment.build_sol_model.
METHODS: dict[str, Callable[..., nn.Module]] = {
    "ddpm": DDPM,
    "cold": ColdDiffusion,
    "sol": SolverInTheLoop,
}


def build_method(cfg: Any, net: nn.Module, degradation: Any, **context: Any) -> nn.Module:
    """Build the method named by ``cfg.kind`` around a network and a degradation.

    ``context`` carries facts about the data (``black``: the darkest pixel value,
    ``image_shape``) that a method may use and others ignore.
    """
    return METHODS[cfg.kind](net, degradation, **cfg.model_dump(exclude={"kind"}), **context)


__all__ = [
    "DDPM",
    "METHODS",
    "ColdDiffusion",
    "SampleResult",
    "SolverInTheLoop",
    "build_method",
    "ddim_timesteps",
    "fit_gmm",
    "fit_prior",
]
