"""Methods: what a training step and a sample mean.

Each task builds its method explicitly, naming the class and passing each option
(``coldflow.tasks.diffusion``: :class:`DDPM`, :class:`ColdDiffusion`; ``tasks.sol`` and
``tasks.recon``: :class:`SolverInTheLoop`, :class:`FieldAutoencoder`,
:class:`FieldSuperResolution`).

``METHODS`` and :func:`build_method` build any of them from a ``method`` config section
and the objects the caller holds (``context``); each constructor receives the names it
declares (:func:`coldflow.nets.call_with_context`):

===============  ============================================================
kind             context it uses
===============  ============================================================
``ddpm``         ``degradation``
``cold``         ``degradation``, ``black``, ``image_shape``
``sol``          ``scene``, ``loss`` (staggered field distance), ``velocity_std``,
                 ``param_std``
``autoencoder``  ``loss`` (centred field distance), ``scale``
``superres``     ``loss`` (centred field distance), ``scale``, ``factor``
===============  ============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from coldflow.methods.autoencoder import FieldAutoencoder
from coldflow.methods.cold import ColdDiffusion, fit_gmm, fit_prior
from coldflow.methods.common import SampleResult, snapshot_steps
from coldflow.methods.ddpm import DDPM, ddim_timesteps
from coldflow.methods.sol import SolverInTheLoop
from coldflow.methods.superres import FieldSuperResolution, upsample
from coldflow.nets import call_with_context, kind_and_options

METHODS: dict[str, Callable[..., nn.Module]] = {
    "ddpm": DDPM,
    "cold": ColdDiffusion,
    "sol": SolverInTheLoop,
    "autoencoder": FieldAutoencoder,
    "superres": FieldSuperResolution,
}


def build_method(cfg: Any, net: nn.Module, degradation: Any = None, /, **context: Any) -> nn.Module:
    """Build the method named by ``cfg.kind`` around ``net``.

    Parameters
    ----------
    cfg
        The ``method`` config section (a pydantic model or a mapping with ``kind``); its
        options go to the constructor where it names them.
    net
        The network.
    degradation
        The diffusion methods' degradation, positional for the diffusion callers
        (the same as ``degradation=...`` in ``context``).
    **context
        Objects and facts the caller holds (see the module docstring); a name the
        constructor does not declare is left out, and a context value wins over a
        config option of the same name (e.g. the built ``loss`` over its config spec).

    Examples
    --------
    ``build_method(cfg.method, net, degradation, black=-0.5, image_shape=(1, 28, 28))``,
    ``build_method(cfg.method, net, scene=scene, loss=loss, velocity_std=0.3,
    param_std=[2e5])``, ``build_method(cfg.method, net, loss=loss, scale=std,
    factor=2)``.
    """
    kind, options = kind_and_options(cfg)
    if kind not in METHODS:
        raise ValueError(f"unknown method kind {kind!r}; known: {', '.join(METHODS)}")
    if degradation is not None:
        context["degradation"] = degradation
    return call_with_context(
        METHODS[kind], net, options=options, context=context, what=f"method {kind!r}"
    )


__all__ = [
    "DDPM",
    "METHODS",
    "ColdDiffusion",
    "FieldAutoencoder",
    "FieldSuperResolution",
    "SampleResult",
    "SolverInTheLoop",
    "build_method",
    "ddim_timesteps",
    "fit_gmm",
    "fit_prior",
    "snapshot_steps",
    "upsample",
]
