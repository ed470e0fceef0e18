"""Error metrics for pairs of fields, reported per sample and averaged.

:data:`FIELD_METRICS` maps a metric name to a constructor; each built metric is a callable
``m(a, b) -> [batch]`` on torch tensors in the field layouts of
:mod:`coldflow.losses.vector` (centred ``[batch, C, H, W]``, or staggered). ``a`` is the
prediction and ``b`` the reference where it matters (relative L1, PSNR).

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
The perceptual ones go through :func:`coldflow.losses.build_field_loss` with
:data:`EVALUATION_DEFAULTS`, chosen for fields in arbitrary physical units: each pair is
min-max scaled jointly per sample, so that a wrong magnitude counts as an error.

:func:`evaluate_pairs` works on in-memory arrays;
:func:`coldflow.metrics.files.evaluate_fields` on two HDF5 files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from coldflow.errors import UserError
from coldflow.losses import build_field_loss, field_components, mae, mse

__all__ = [
    "EVALUATION_DEFAULTS",
    "FIELD_METRICS",
    "FieldEvaluator",
    "FieldsInputError",
    "evaluate_pairs",
    "psnr",
    "relative_l1",
]

Metric = Callable[[Any, Any], torch.Tensor]
LAYOUTS = ("NCHW", "NHWC")
GRIDS = ("centered", "staggered")


class FieldsInputError(UserError, ValueError):
    """Fields that cannot be compared: unknown metric or layout, files, shapes that differ."""


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


def _pixel(function: Callable[..., torch.Tensor]) -> Callable[..., Metric]:
    def build(grid: str = "centered", faces: str = "keep", **options: Any) -> Metric:
        def metric(a: Any, b: Any) -> torch.Tensor:
            return function(_values(a, grid, faces), _values(b, grid, faces), **options)

        return metric

    return build


def _perceptual(name: str) -> Callable[..., Metric]:
    def build(**options: Any) -> Metric:
        return build_field_loss(name, **{**EVALUATION_DEFAULTS.get(name, {}), **options})

    return build


# options the perceptual metrics get unless the caller overrides them
EVALUATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "lsim": {"scaling": "joint"},
    "lpips": {"input_range": None},
    "vgg": {"input_range": None},
}

# metric name -> constructor(grid=..., faces=..., **options) -> metric(a, b) -> [batch]
FIELD_METRICS: dict[str, Callable[..., Metric]] = {
    "mse": _pixel(mse),
    "mae": _pixel(mae),
    "rel_l1": _pixel(relative_l1),
    "psnr": _pixel(psnr),
    "lsim": _perceptual("lsim"),
    "lpips": _perceptual("lpips"),
    "vgg": _perceptual("vgg"),
}


def as_samples(x: np.ndarray | torch.Tensor, layout: str) -> np.ndarray | torch.Tensor:
    """Bring ``x`` to ``[N, C, H, W]``: add a channel to ``[N, H, W]``, fold leading axes."""
    if layout not in LAYOUTS:
        raise FieldsInputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if x.ndim < 3:
        raise FieldsInputError(
            f"expected fields [N, C, H, W] or [N, H, W, C], got shape {tuple(x.shape)}"
        )
    if x.ndim == 3:
        x = x[:, None] if layout == "NCHW" else x[..., None]
    x = x.reshape(-1, *x.shape[-3:])
    if layout == "NHWC":
        x = x.permute(0, 3, 1, 2) if isinstance(x, torch.Tensor) else x.transpose(0, 3, 1, 2)
    return x


class FieldEvaluator:
    """Builds the named metrics once and applies them to batches of field pairs.

    Parameters
    ----------
    names
        Keys of :data:`FIELD_METRICS`.
    grid, faces
        Field layout (see :mod:`coldflow.losses.vector`).
    options
        Per-metric options, e.g. ``{"lsim": {"fit": "resize", "min_size": 224}}``.
    device
        Where to compute; default CUDA when available.
    """

    def __init__(
        self,
        names: Sequence[str],
        grid: str = "centered",
        faces: str = "keep",
        options: Mapping[str, Mapping[str, Any]] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        unknown = [n for n in names if n not in FIELD_METRICS]
        if unknown or not names:
            raise FieldsInputError(f"unknown metrics {unknown}; known: {', '.join(FIELD_METRICS)}")
        if grid not in GRIDS:
            raise FieldsInputError(f"grid must be one of {', '.join(GRIDS)}, got {grid!r}")
        options = dict(options or {})
        stray = sorted(set(options) - set(names))
        if stray:
            raise FieldsInputError(f"options given for metrics that are not evaluated: {stray}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.metrics: dict[str, Metric] = {}
        for name in names:
            metric = FIELD_METRICS[name](grid=grid, faces=faces, **options.get(name, {}))
            if isinstance(metric, torch.nn.Module):
                metric = metric.to(self.device)
            self.metrics[name] = metric

    @torch.inference_mode()
    def __call__(self, a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> dict:
        """Per-sample values of every metric for one batch ``[N, C, H, W]``: name -> array."""
        ta = torch.as_tensor(a, dtype=torch.float32, device=self.device)
        tb = torch.as_tensor(b, dtype=torch.float32, device=self.device)
        return {name: m(ta, tb).double().cpu().numpy() for name, m in self.metrics.items()}


def summarize(values: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation, min and max of per-sample values."""
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


def evaluate_pairs(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    names: Sequence[str],
    *,
    layout: str = "NCHW",
    grid: str = "centered",
    faces: str = "keep",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int = 16,
    device: str | torch.device | None = None,
) -> dict[str, dict[str, Any]]:
    """Compare two stacks of fields pair by pair with the named metrics.

    Parameters
    ----------
    a, b
        Prediction and reference of equal shape: ``[N, C, H, W]`` (``layout="NCHW"``,
        default; a velocity's components (y, x) as channels, as in
        :mod:`coldflow.physics.grid`) or ``[N, H, W, C]`` (``layout="NHWC"``).
        ``[N, H, W]`` is a scalar field; more leading axes (e.g. ``[simulation, frame,
        ...]``) are folded into N. For ``grid="staggered"`` the arrays are the padded face
        tensors ``[N, 2, H + 1, W + 1]`` of :mod:`coldflow.physics.grid` (or NHWC).
    names
        Keys of :data:`FIELD_METRICS`.
    layout, grid, faces, options, device
        See :class:`FieldEvaluator`.
    batch_size
        Pairs per metric call.

    Returns
    -------
    dict
        ``{name: {"per_sample": ndarray [N], "mean": float}}`` in the order of ``names``.
    """
    a, b = as_samples(a, layout), as_samples(b, layout)
    if tuple(a.shape) != tuple(b.shape):
        raise FieldsInputError(f"fields differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    evaluator = FieldEvaluator(names, grid, faces, options, device)
    chunks = [
        evaluator(a[i : i + batch_size], b[i : i + batch_size])
        for i in range(0, len(a), batch_size)
    ]
    result = {}
    for name in evaluator.metrics:
        values = np.concatenate([chunk[name] for chunk in chunks])
        result[name] = {"per_sample": values, "mean": float(np.mean(values))}
    return result
