"""The field metrics, one :class:`MetricSpec` each, and the default lists of them.

A spec says everything the package knows about a metric: how to build it, its column
label in results tables, whether higher is better, which pretrained files (hub
resources, :mod:`coldflow.hub`) its default build reads and the options it gets for
evaluation. A built metric is a callable ``m(a, b) -> [batch]`` on torch tensors in the
field layouts of :mod:`coldflow.losses.vector` (centred ``[batch, C, H, W]``, or
staggered); ``a`` is the prediction and ``b`` the reference where it matters.

==========  ============================================================  ======
name        metric                                                        better
==========  ============================================================  ======
``mse``     mean squared error                                            lower
``mae``     mean absolute error                                           lower
``rel_l1``  relative L1 error ``||a - b||_1 / ||b||_1``                   lower
``psnr``    peak signal-to-noise ratio in dB, peak = range of ``b``       higher
``lsim``    LSiM, summed over components (:mod:`coldflow.losses.lsim`)    lower
``lpips``   LPIPS, summed over components                                 lower
``vgg``     VGG-16 feature loss, summed over components                   lower
==========  ============================================================  ======

The pixel metrics use every value of every component (for staggered fields: every face).
The perceptual ones go through :func:`coldflow.losses.build_field_loss` with their
:attr:`MetricSpec.defaults` (:data:`EVALUATION_DEFAULTS`), chosen for fields in arbitrary
physical units: each pair is min-max scaled jointly per sample, so that a wrong magnitude
counts as an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any

import torch

from coldflow.config.metric_defaults import (
    DEFAULT_FIELD_METRICS,
    DEFAULT_FILE_METRICS,
    DEFAULT_FRAME_METRICS,
    PERCEPTUAL_IF_AVAILABLE,
)
from coldflow.errors import UserError
from coldflow.losses import build_field_loss, field_components, mae, mse

__all__ = [
    "DEFAULT_FIELD_METRICS",
    "DEFAULT_FILE_METRICS",
    "DEFAULT_FRAME_METRICS",
    "EVALUATION_DEFAULTS",
    "FIELD_METRICS",
    "FIELD_METRIC_SPECS",
    "METRIC_COLUMNS",
    "PERCEPTUAL_IF_AVAILABLE",
    "Metric",
    "MetricSpec",
    "UnknownMetricError",
    "metric_spec",
    "metric_specs",
    "psnr",
    "relative_l1",
]

Metric = Callable[[Any, Any], torch.Tensor]


class UnknownMetricError(UserError, ValueError):
    """A field-metric name without a spec; the message lists the known names."""


def relative_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a - b||_1 / ||b||_1`` per sample over all but the first axis.

    0 where both norms are 0; ``inf`` where only ``||b||_1`` is 0.
    """
    error = (a - b).abs().flatten(1).sum(dim=1)
    norm = b.abs().flatten(1).sum(dim=1)
    ratio = error / torch.where(norm > 0, norm, torch.ones_like(norm))
    return torch.where(norm > 0, ratio, torch.where(error > 0, torch.inf, 0.0))


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio ``10 log10(peak^2 / MSE)`` per sample, in dB.

    Parameters
    ----------
    a, b
        Prediction and reference, ``[batch, ...]``.
    data_range
        The peak; by default each reference's own range ``max(b) - min(b)``.

    Returns
    -------
    torch.Tensor
        ``[batch]``; ``inf`` for identical inputs.
    """
    error = mse(a, b)
    if data_range is None:
        flat = b.flatten(1)
        peak = flat.amax(dim=1) - flat.amin(dim=1)
    else:
        peak = torch.full_like(error, float(data_range))
    return 10 * torch.log10(peak**2 / error)


def _values(x: Any, grid: str, faces: str) -> torch.Tensor:
    return torch.cat([c.flatten(1) for c in field_components(x, grid, faces)], dim=1)


def _pixel(
    function: Callable[..., torch.Tensor], grid: str = "centered", faces: str = "keep", **options
) -> Metric:
    """``function`` on every value of every component of the two fields."""

    def metric(a: Any, b: Any) -> torch.Tensor:
        return function(_values(a, grid, faces), _values(b, grid, faces), **options)

    return metric


@dataclass(frozen=True)
class MetricSpec:
    """Everything about one field metric.

    Attributes
    ----------
    name
        The name configs and ``--metric`` use.
    label
        Its column label in results tables.
    description
        One line: what it measures.
    constructor
        ``constructor(grid=..., faces=..., **options) -> metric``; use :meth:`build`,
        which adds :attr:`defaults`.
    higher_is_better
        True where a larger value is better (PSNR); false for distances.
    weights
        Hub resources (:data:`coldflow.hub.RESOURCES`) its default build reads: building
        it raises :class:`coldflow.hub.HubError` when one is missing.
    defaults
        Options it gets for evaluation unless the caller overrides them.
    """

    name: str
    label: str
    description: str
    constructor: Callable[..., Metric]
    higher_is_better: bool = False
    weights: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def build(self, grid: str = "centered", faces: str = "keep", **options: Any) -> Metric:
        """The metric ``m(a, b) -> [batch]`` for fields on ``grid`` (see
        :mod:`coldflow.losses.vector`), with :attr:`defaults` updated by ``options``."""
        return self.constructor(grid=grid, faces=faces, **{**self.defaults, **options})

    def better(self, value: float, than: float) -> bool:
        """Whether ``value`` is strictly better than ``than`` for this metric."""
        return value > than if self.higher_is_better else value < than


def _perceptual(
    name: str, label: str, what: str, weights: tuple[str, ...], **defaults: Any
) -> MetricSpec:
    return MetricSpec(
        name, label, what, partial(build_field_loss, name), weights=weights, defaults=defaults
    )


FIELD_METRIC_SPECS: Mapping[str, MetricSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            MetricSpec("mse", "MSE", "mean squared error", partial(_pixel, mse)),
            MetricSpec("mae", "MAE", "mean absolute error", partial(_pixel, mae)),
            MetricSpec(
                "rel_l1", "rel. L1", "relative L1 error ||a - b||_1 / ||b||_1",
                partial(_pixel, relative_l1),
            ),
            MetricSpec(
                "psnr", "PSNR", "peak signal-to-noise ratio in dB, peak = range of b",
                partial(_pixel, psnr), higher_is_better=True,
            ),
            _perceptual("lsim", "LSiM", "LSiM, summed over components", ("lsim",),
                        scaling="joint"),
            _perceptual("lpips", "LPIPS", "LPIPS (AlexNet), summed over components",
                        ("alexnet", "lpips-alex"), input_range=None),
            _perceptual("vgg", "VGG", "VGG-16 feature loss, summed over components",
                        ("vgg16",), input_range=None),
        )
    }
)  # fmt: skip
"""Every field metric by name, in the order of results tables."""

FIELD_METRICS: Mapping[str, Callable[..., Metric]] = MappingProxyType(
    {name: spec.build for name, spec in FIELD_METRIC_SPECS.items()}
)
"""Metric name -> ``build(grid=..., faces=..., **options) -> metric(a, b) -> [batch]``."""

METRIC_COLUMNS: Mapping[str, str] = MappingProxyType(
    {name: spec.label for name, spec in FIELD_METRIC_SPECS.items()}
)
"""Metric name -> its column label in results tables."""

EVALUATION_DEFAULTS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {name: spec.defaults for name, spec in FIELD_METRIC_SPECS.items() if spec.defaults}
)
"""Options the perceptual metrics get for evaluation unless the caller overrides them."""


def metric_specs(names: Iterable[str]) -> list[MetricSpec]:
    """The specs of ``names``, in their order.

    Raises
    ------
    UnknownMetricError
        Naming every unknown name and listing the known ones.
    """
    names = list(names)
    unknown = [n for n in names if n not in FIELD_METRIC_SPECS]
    if unknown:
        raise UnknownMetricError(
            f"unknown metrics {unknown}; known: {', '.join(FIELD_METRIC_SPECS)}"
        )
    return [FIELD_METRIC_SPECS[n] for n in names]


def metric_spec(name: str) -> MetricSpec:
    """The spec of one metric (:class:`UnknownMetricError` for an unknown name)."""
    return metric_specs([name])[0]
