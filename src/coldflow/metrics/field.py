"""Scoring pairs of fields with the field metrics: per sample, in batches, on a device.

:func:`metric_functions` builds the named metrics (:mod:`coldflow.metrics.spec`) once;
:func:`score_fields` scores predictions against references with them, sample by sample.
Every evaluation of fields goes through these two: SOL rollouts, autoencoder and
super-resolution frames, the SOL + SR pipeline, :func:`evaluate_pairs` (in-memory arrays)
and :func:`coldflow.metrics.files.evaluate_fields` (two HDF5 files); each caller keeps
only what is its own (rollouts, upsampling, timing, reading files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from coldflow.errors import UserError
from coldflow.metrics.spec import FIELD_METRIC_SPECS, Metric, metric_specs

__all__ = [
    "FieldsInputError",
    "as_samples",
    "default_device",
    "evaluate_pairs",
    "metric_functions",
    "score_fields",
    "summarize",
]

LAYOUTS = ("NCHW", "NHWC")
GRIDS = ("centered", "staggered")
Array = np.ndarray | torch.Tensor


class FieldsInputError(UserError, ValueError):
    """Fields that cannot be compared: no metric, unknown layout or grid, files, shapes."""


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, or CUDA when available, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def metric_functions(
    names: Sequence[str],
    grid: str = "centered",
    *,
    faces: str = "keep",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Metric]:
    """Build the named field metrics once: ``{name: m(a, b) -> [batch]}``.

    Parameters
    ----------
    names
        Keys of :data:`coldflow.metrics.spec.FIELD_METRIC_SPECS`.
    grid, faces
        Field layout (see :mod:`coldflow.losses.vector`).
    options
        Per-metric options over the spec's defaults, e.g.
        ``{"lsim": {"fit": "resize", "min_size": 224}}``.
    device
        Where the metrics with weights are moved (default: where they are built, the CPU).

    Raises
    ------
    UnknownMetricError, FieldsInputError
        For an unknown name (the known ones are listed), no name, an unknown grid or
        options for a metric that is not built.
    coldflow.hub.HubError
        When a metric's pretrained weights are missing.
    """
    specs = metric_specs(names)
    if not specs:
        raise FieldsInputError(f"no field metrics given; known: {', '.join(FIELD_METRIC_SPECS)}")
    if grid not in GRIDS:
        raise FieldsInputError(f"grid must be one of {', '.join(GRIDS)}, got {grid!r}")
    options = dict(options or {})
    stray = sorted(set(options) - set(names))
    if stray:
        raise FieldsInputError(f"options given for metrics that are not evaluated: {stray}")
    metrics: dict[str, Metric] = {}
    for spec in specs:
        metric = spec.build(grid=grid, faces=faces, **options.get(spec.name, {}))
        if device is not None and isinstance(metric, torch.nn.Module):
            metric = metric.to(device)
        metrics[spec.name] = metric
    return metrics


def score_fields(
    metrics: Mapping[str, Metric],
    pred: Array,
    ref: Array,
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    mask: Array | None = None,
) -> dict[str, torch.Tensor]:
    """Score every prediction against its reference with every metric, per sample.

    Parameters
    ----------
    metrics
        ``{name: m(a, b) -> [batch]}``, from :func:`metric_functions`.
    pred, ref
        Predictions and references of one shape ``[N, ...]`` (the layout the metrics were
        built for), NumPy arrays or tensors; compared in float32.
    batch_size
        Samples per metric call (default: all ``N`` at once).
    device
        Where to compute (that of the metrics with weights); default: where the inputs are
        (NumPy arrays: the CPU).
    mask
        Boolean cells to score (``True``; e.g. the fluid outside an obstacle) of centred
        fields ``[N, C, H, W]``: ``[H, W]`` for every sample or ``[N, H, W]`` per sample,
        the same cells in every channel. Every metric ignores the other cells: pointwise
        ones (:attr:`~coldflow.metrics.spec.MetricSpec.pointwise`: MSE, MAE, rel. L1,
        PSNR) see only the scored values (means and sums over them; PSNR's peak is the
        range of the reference's scored values); all others (LSiM, LPIPS, VGG: they see
        images) get the prediction with the unscored cells set to the reference's values,
        so that there the two fields agree. Default: every cell.

    Returns
    -------
    dict
        ``{name: float64 tensor [N]}`` on the CPU, in the order of ``metrics``.
    """
    if tuple(pred.shape) != tuple(ref.shape):
        raise FieldsInputError(
            f"fields differ in shape: {tuple(pred.shape)} and {tuple(ref.shape)}"
        )
    keep = _cell_mask(mask, tuple(pred.shape))
    n = len(pred)
    size = batch_size or max(n, 1)
    out: dict[str, list[torch.Tensor]] = {name: [] for name in metrics}
    with torch.no_grad():
        for start in range(0, n, size):
            a = torch.as_tensor(pred[start : start + size], dtype=torch.float32, device=device)
            b = torch.as_tensor(ref[start : start + size], dtype=torch.float32, device=device)
            m = None if keep is None else keep[start : start + size] if len(keep) > 1 else keep
            for name, metric in metrics.items():
                values = metric(a, b) if m is None else _masked(name, metric, a, b, m.to(a.device))
                out[name].append(values.double().cpu())
    return {
        name: torch.cat(v) if v else torch.zeros(0, dtype=torch.float64) for name, v in out.items()
    }


def _cell_mask(mask: Array | None, shape: tuple[int, ...]) -> torch.Tensor | None:
    """``mask`` as a bool tensor ``[1 or N, 1, H, W]`` for fields of ``shape``, checked."""
    if mask is None:
        return None
    m = torch.as_tensor(mask)
    if m.dtype != torch.bool:
        raise FieldsInputError(f"mask must be boolean (True: score the cell), got {m.dtype}")
    if len(shape) != 4 or tuple(m.shape) not in (shape[-2:], (shape[0], *shape[-2:])):
        raise FieldsInputError(
            f"mask of shape {tuple(m.shape)} does not fit fields {shape}: give [H, W] or "
            "[N, H, W] for centred fields [N, C, H, W]"
        )
    m = m.reshape(-1, 1, *shape[-2:])
    if not m.flatten(1).any(1).all():
        raise FieldsInputError("mask scores no cell of some sample: nothing to compare")
    return m


def _masked(name: str, metric: Metric, a: torch.Tensor, b: torch.Tensor, m: torch.Tensor):
    """``metric`` on the cells ``m`` (``[1 or B, 1, H, W]``) of ``a`` and ``b`` only."""
    spec = FIELD_METRIC_SPECS.get(name)
    if spec is None or not spec.pointwise:  # images: no difference outside the mask
        return metric(torch.where(m, a, b), b)
    if len(m) == 1:  # the scored values of every channel as a [B, C, K, 1] field
        cells = m[0, 0]
        return metric(a[..., cells][..., None], b[..., cells][..., None])
    parts = [_masked(name, metric, a[i : i + 1], b[i : i + 1], m[i : i + 1]) for i in range(len(a))]
    return torch.cat(parts)


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


def summarize(values: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation, min and max of per-sample values."""
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


def evaluate_pairs(
    a: Array,
    b: Array,
    names: Sequence[str],
    *,
    layout: str = "NCHW",
    grid: str = "centered",
    faces: str = "keep",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    mask: Array | None = None,
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
    names, grid, faces, options
        See :func:`metric_functions`.
    batch_size
        Pairs per metric call.
    device
        Where to compute; default CUDA when available.
    mask
        Boolean cells to score, ``[H, W]`` or with the leading axes of ``a`` (folded
        like them), for ``grid="centered"``; see :func:`score_fields`.

    Returns
    -------
    dict
        ``{name: {"per_sample": ndarray [N], "mean": float}}`` in the order of ``names``.
    """
    a, b = as_samples(a, layout), as_samples(b, layout)
    if mask is not None:
        if grid != "centered":
            raise FieldsInputError("a mask applies to centred fields (grid='centered') only")
        mask = torch.as_tensor(mask)
        mask = mask.reshape(-1, *mask.shape[-2:]) if mask.ndim > 2 else mask
    device = default_device(device)
    metrics = metric_functions(names, grid, faces=faces, options=options, device=device)
    scores = score_fields(metrics, a, b, batch_size=batch_size, device=device, mask=mask)
    result = {}
    for name, values in scores.items():
        per_sample = values.numpy()
        result[name] = {"per_sample": per_sample, "mean": float(np.mean(per_sample))}
    return result
