"""The field metrics, one :class:`MetricSpec` each, and the default lists of them.

A spec says everything the package knows about a metric: how to build it, its column
label in results tables, whether higher is better, which pretrained files (hub
resources, :mod:`coldflow.hub`) its default build reads and the options it gets for
evaluation. A built metric is a callable ``m(a, b) -> [batch]`` on torch tensors in the
field layouts of :mod:`coldflow.losses.vector` (centred ``[batch, C, H, W]``, or
staggered); ``a`` is the prediction and ``b`` the reference where it matters.

===========  ============================================================  ======
name         metric                                                        better
===========  ============================================================  ======
``mse``      mean squared error                                            lower
``mae``      mean absolute error                                           lower
``rel_l1``   relative L1 error ``||a - b||_1 / ||b||_1``                   lower
``psnr``     peak signal-to-noise ratio in dB, peak = range of ``b``       higher
``vort_l1``  relative L1 error of the vorticity                            lower
``div``      mean excess ``|div a| - |div b|`` over cells (>= 0 each)      lower
``ssim``     SSIM per component (Gaussian window), mean over components    higher
``lse_top``  log-spectral error of the kinetic energy, top octave          lower
``lsim``     LSiM, summed over components (:mod:`coldflow.losses.lsim`)    lower
``lpips``    LPIPS, summed over components                                 lower
``vgg``      VGG-16 feature loss, summed over components                   lower
===========  ============================================================  ======

The pixel metrics use every value of every component (for staggered fields: every face).

The perceptual ones go through :func:`coldflow.losses.build_field_loss` with their
:attr:`MetricSpec.defaults` (:data:`EVALUATION_DEFAULTS`), chosen for fields in arbitrary
physical units: each pair is min-max scaled jointly per sample, so that a wrong magnitude
counts as an error.

The four after PSNR are metrics that no loss of the package trains on, to check what a
loss may trade away. ``vort_l1``, ``div`` and ``lse_top`` read channels 0 and 1 as the
velocity ``(v_y, v_x)`` (the layout of :mod:`coldflow.data.frames`; further channels, e.g.
density, are ignored), lengths in cells:

- ``vort_l1``: ``||w(a) - w(b)||_1 / ||w(b)||_1`` with ``w`` the vorticity of the cell-centred
  velocity by central differences (:func:`coldflow.metrics.velocity.vorticity`; a staggered
  velocity is first averaged to the cell centres).
- ``div``: the prediction's divergence in excess of the reference's, cell by cell,
  ``mean over cells of max(|div a| - |div b|, 0)``: 0 for the reference itself, and for any
  field no more divergent than it anywhere. On a staggered grid with ``faces="keep"`` the
  divergence is the net outflow of each cell through its faces
  (:func:`coldflow.metrics.velocity.face_divergence`, what the pressure projection makes
  zero); otherwise central differences of the centred velocity
  (:func:`coldflow.metrics.velocity.centred_divergence`). The excess, not ``|div a|``
  alone, because the reference is not divergence-free everywhere: central differences of
  centred velocities leave a discretisation floor, and the fluid cells at an obstacle's
  surface carry its boundary fluxes; what counts is the divergence a prediction adds.
- ``ssim``: :func:`coldflow.metrics.image.ssim` (11x11 Gaussian window, sigma 1.5, the
  window shrunk to the smaller side of smaller fields) of each component, velocity and
  density alike (staggered faces as :func:`coldflow.losses.field_components` gives them),
  averaged over the components. The data range of each component is the reference's,
  ``max(b_c) - min(b_c)`` per sample (``max |b_c|``, else 1, for a constant reference).
- ``lse_top``: :func:`coldflow.metrics.spectrum.top_octave_error`, the mean
  ``|log E_a(k) - log E_b(k)|`` of the kinetic-energy spectra over the top octave of
  wavenumbers up to Nyquist: whether the smallest resolved scales have the right energy.
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
from coldflow.metrics.image import ssim
from coldflow.metrics.spectrum import top_octave_error
from coldflow.metrics.velocity import centred_divergence, face_divergence, vorticity

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
    "perfect_score",
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


def _velocity(x: Any, grid: str) -> torch.Tensor:
    """The cell-centred velocity ``[batch, 2, H, W]`` of a field: channels 0 and 1 of a
    centred one, the faces of a staggered one averaged to the centres."""
    parts = field_components(x, grid, "center")
    if len(parts) < 2:
        raise ValueError(
            f"this metric needs a velocity (v_y, v_x) in channels 0 and 1, got {len(parts)} "
            "channel(s)"
        )
    return torch.cat(parts[:2], dim=1)


def _vorticity_l1(grid: str = "centered", faces: str = "keep") -> Metric:
    """Relative L1 error of the vorticity (``faces`` does not matter: always centred)."""

    def metric(a: Any, b: Any) -> torch.Tensor:
        return relative_l1(vorticity(_velocity(a, grid)), vorticity(_velocity(b, grid)))

    return metric


def _divergence(grid: str = "centered", faces: str = "keep") -> Metric:
    """Mean over cells of ``max(|div a| - |div b|, 0)`` per sample; the face divergence
    for staggered fields with kept faces, else central differences of the centres."""

    def div(x: Any) -> torch.Tensor:
        if grid == "staggered" and faces == "keep":
            v_y, v_x = (c[:, 0] for c in field_components(x, grid, faces))
            return face_divergence(v_y, v_x)
        return centred_divergence(_velocity(x, grid))

    def metric(a: Any, b: Any) -> torch.Tensor:
        excess = div(a).abs() - div(b).abs()
        return excess.clamp(min=0).flatten(1).mean(dim=1)

    return metric


def _reference_range(b: torch.Tensor) -> torch.Tensor:
    """``max - min`` per sample; ``max |b|`` (else 1) where the reference is constant."""
    flat = b.flatten(1)
    spread = flat.amax(dim=1) - flat.amin(dim=1)
    scale = flat.abs().amax(dim=1)
    return torch.where(spread > 0, spread, torch.where(scale > 0, scale, torch.ones_like(scale)))


def _ssim(grid: str = "centered", faces: str = "keep") -> Metric:
    """SSIM of each component with the reference's data range, mean over components."""

    def metric(a: Any, b: Any) -> torch.Tensor:
        pairs = zip(field_components(a, grid, faces), field_components(b, grid, faces), strict=True)
        scores = [ssim(ca, cb, data_range=_reference_range(cb)) for ca, cb in pairs]
        return torch.stack(scores).mean(dim=0)

    return metric


def _spectral_top(grid: str = "centered", faces: str = "keep") -> Metric:
    """Top-octave log-spectral error of the kinetic energy (always centred velocity)."""

    def metric(a: Any, b: Any) -> torch.Tensor:
        return top_octave_error(_velocity(a, grid), _velocity(b, grid))

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

    @property
    def pointwise(self) -> bool:
        """Whether the metric sees only the values of the two fields, not the images they
        form (built on :func:`_pixel`): scoring part of a field selects its values."""
        return isinstance(self.constructor, partial) and self.constructor.func is _pixel


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
            MetricSpec(
                "vort_l1", "vort. rel. L1",
                "relative L1 error of the vorticity (central differences, cell centres)",
                _vorticity_l1,
            ),
            MetricSpec(
                "div", "excess |div|",
                "mean excess of |divergence| over the reference's, cell by cell (>= 0)",
                _divergence,
            ),
            MetricSpec(
                "ssim", "SSIM", "SSIM per component, data range of b, mean over components",
                _ssim, higher_is_better=True,
            ),
            MetricSpec(
                "lse_top", "log-spec. top",
                "mean |log E_a - log E_b| of the kinetic-energy spectra, top octave",
                _spectral_top,
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


def perfect_score(metric: str) -> str:
    """A field metric of the reference against itself, for a table's reference row: 0 for
    an error or distance, 1 for SSIM, inf for PSNR."""
    spec = FIELD_METRIC_SPECS.get(metric)
    if spec is None or not spec.higher_is_better:
        return "0"
    return "inf" if metric == "psnr" else "1"
