"""Distances for training and evaluation: ``F(a, b) -> [batch]``, differentiable in both.

Every entry of :data:`LOSSES` builds an ``nn.Module`` whose ``forward(a, b)`` takes two
tensors ``[batch, C, H, W]`` and returns one distance per sample (reduce it yourself), on
whatever device the module and inputs are on. Pretrained networks are frozen: gradients
reach the inputs, never the weights. Each module has ``min_size``, the smallest height
and width it accepts; :class:`FieldDistance` applies a distance to the components of a
vector field and pads or resizes them up to that size.

=========  ===========================================================  ==============
name       distance                                                     input channels
=========  ===========================================================  ==============
``mse``    mean squared error                                           any
``mae``    mean absolute error                                          any
``vgg``    VGG-16 feature reconstruction (Johnson et al. 2016)          1 or 3
``lpips``  LPIPS v0.1, AlexNet or VGG backbone (Zhang et al. 2018)      1 or 3
``lsim``   LSiM learned simulation metric (Kohl et al. 2020)            1 or 3
=========  ===========================================================  ==============
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from coldflow.losses.lpips import LPIPS
from coldflow.losses.lsim import LSiM
from coldflow.losses.pixel import MAE, MSE, mae, mse
from coldflow.losses.vector import FieldDistance, field_components
from coldflow.losses.vgg import VGGFeatureLoss

# config name -> constructor taking the loss's options
LOSSES: dict[str, Callable[..., nn.Module]] = {
    "mse": MSE,
    "mae": MAE,
    "vgg": VGGFeatureLoss,
    "lpips": LPIPS,
    "lsim": LSiM,
}


def build_loss(name: str, **options: Any) -> nn.Module:
    """Build the distance registered as ``name`` with its ``options``.

    Parameters
    ----------
    name
        A key of :data:`LOSSES`.
    **options
        Keyword arguments of that distance's constructor (e.g. ``layers`` for ``vgg``,
        ``net`` for ``lpips``, ``scaling`` for ``lsim``).

    Raises
    ------
    ValueError
        For an unknown name or option; the message lists what is accepted.
    coldflow.hub.HubError
        When the distance needs weights that are missing (the message names the file and
        where to put it).
    """
    try:
        constructor = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}") from None
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(constructor).parameters.values()
    accepted = [p.name for p in parameters if p.kind in named]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"loss {name!r} got unknown options {unknown}; accepted: {accepted or 'none'}"
        )
    return constructor(**options)


def build_field_loss(
    name: str,
    *,
    grid: str = "centered",
    faces: str = "keep",
    fit: str | None = None,
    pad_mode: str = "edge",
    min_size: int | None = None,
    **options: Any,
) -> FieldDistance:
    """Build ``name`` with ``options`` and wrap it in :class:`FieldDistance`.

    ``grid``, ``faces``, ``fit`` (default: the distance's own, ``resize`` for LSiM, else
    ``pad``), ``pad_mode`` and ``min_size`` configure the adapter; everything else goes
    to :func:`build_loss`.
    """
    return FieldDistance(
        build_loss(name, **options),
        grid=grid,
        faces=faces,
        fit=fit,
        pad_mode=pad_mode,
        min_size=min_size,
    )


__all__ = [
    "LOSSES",
    "LPIPS",
    "MAE",
    "MSE",
    "FieldDistance",
    "LSiM",
    "VGGFeatureLoss",
    "build_field_loss",
    "build_loss",
    "field_components",
    "mae",
    "mse",
]
