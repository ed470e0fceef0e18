"""Helpers shared by the distances: input checks, value scaling, resizing, weight loading."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from coldflow import hub

__all__ = [
    "check_min_size",
    "check_pair",
    "freeze",
    "joint_minmax_scale",
    "load_checkpoint",
    "map_range",
    "minmax_scale",
    "safe_sqrt",
    "to_rgb",
    "zoom_like_scipy",
]


def check_pair(a: torch.Tensor, b: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` are equal-shaped ``[batch, C, H, W]``."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        raise TypeError(f"{name}: expected two torch tensors, got {type(a)} and {type(b)}")
    if a.ndim != 4 or a.shape != b.shape:
        raise ValueError(
            f"{name}: expected two tensors of the same shape [batch, channels, height, width], "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_min_size(x: torch.Tensor, min_size: int, name: str) -> None:
    """Raise a ``ValueError`` that says what to do when ``x`` is smaller than ``min_size``."""
    height, width = x.shape[-2:]
    if height < min_size or width < min_size:
        raise ValueError(
            f"{name} needs inputs of at least {min_size}x{min_size} pixels, got "
            f"{height}x{width}. Pad or resize the fields first, e.g. with "
            f"coldflow.losses.FieldDistance(..., fit='pad') or fit='resize'."
        )


def to_rgb(x: torch.Tensor, name: str) -> torch.Tensor:
    """Repeat a single channel to three; pass three channels through; reject the rest."""
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] == 3:
        return x
    raise ValueError(
        f"{name} compares 1- or 3-channel images, got {x.shape[1]} channels. Compare vector "
        "fields component by component with coldflow.losses.FieldDistance."
    )


def map_range(x: torch.Tensor, source: Sequence[float], target: Sequence[float]) -> torch.Tensor:
    """Map values linearly from the interval ``source`` onto ``target``."""
    (s0, s1), (t0, t1) = source, target
    if (s0, s1) == (t0, t1):
        return x
    if s1 <= s0:
        raise ValueError(f"input_range must be (low, high) with low < high, got {source}")
    return (x - s0) * ((t1 - t0) / (s1 - s0)) + t0


def minmax_scale(
    x: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    target: Sequence[float],
) -> torch.Tensor:
    """Scale ``x`` from ``[low, high]`` (broadcastable tensors) onto ``target``.

    Where ``high == low`` (a constant field) the values are only shifted by ``-low`` and
    not scaled, as the LSiM reference implementation does; the result has no division by
    zero and a finite gradient.
    """
    t0, t1 = target
    span = high - low
    constant = span == 0
    safe_span = torch.where(constant, torch.ones_like(span), span)
    scaled = (t1 - t0) * ((x - low) / safe_span) + t0
    return torch.where(constant, x - low, scaled)


def joint_minmax_scale(
    a: torch.Tensor, b: torch.Tensor, target: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Map each sample of ``a`` and ``b`` onto ``target`` with their joint min-max.

    The minimum and maximum run over all channels and pixels of both inputs of one sample,
    so the two inputs share one linear map and their difference keeps its meaning.
    """
    dims = tuple(range(1, a.ndim))
    low = torch.minimum(a.amin(dim=dims, keepdim=True), b.amin(dim=dims, keepdim=True))
    high = torch.maximum(a.amax(dim=dims, keepdim=True), b.amax(dim=dims, keepdim=True))
    return minmax_scale(a, low, high, target), minmax_scale(b, low, high, target)


class _SafeSqrt(torch.autograd.Function):
    """``sqrt`` whose gradient at zero is zero instead of infinity (identical inputs)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = torch.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return torch.where(y > 0, grad / (2 * y.clamp_min(torch.finfo(y.dtype).tiny)), 0 * grad)


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """Square root with the exact forward value and a zero (not NaN) gradient at 0."""
    return _SafeSqrt.apply(x)


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients to every parameter of ``module`` and put it in evaluation mode."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def load_checkpoint(resource: str) -> dict:
    """Resolve ``resource`` through :func:`coldflow.hub.resolve` and ``torch.load`` it on CPU.

    Raises
    ------
    coldflow.hub.HubError
        From :func:`~coldflow.hub.resolve` when the file is missing (the message names the
        file and where to put it), or when the verified file cannot be unpickled.
    """
    path = hub.resolve(resource)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a torch pickle that does not load is a broken file
        raise hub.HubError(
            f"{path}: cannot be read as a torch checkpoint for {resource} ({error}). "
            f"Delete it and run `coldflow weights fetch {resource}`."
        ) from error


def _zoom_axis(x: torch.Tensor, size: int, dim: int, order: int) -> torch.Tensor:
    n = x.shape[dim]
    if size == n:
        return x  # zoom factor 1: scipy samples the grid points exactly
    # scipy (grid_mode=False): output sample k sits at input coordinate k * (n - 1) / (size - 1),
    # computed in double precision; mode="constant" gives cval = 0 beyond [0, n - 1], which
    # includes coordinates that overshoot n - 1 by rounding.
    scale = (n - 1) / (size - 1) if size > 1 else 1.0
    coords = np.arange(size, dtype=np.float64) * scale
    inside = torch.as_tensor(coords <= n - 1, device=x.device)
    shape = [1] * x.ndim
    shape[dim] = size
    inside = inside.view(shape)
    if order == 0:
        index = np.clip(np.floor(coords + 0.5), 0, n - 1).astype(np.int64)
        out = x.index_select(dim, torch.as_tensor(index, device=x.device))
    else:
        low = np.clip(np.floor(coords), 0, n - 1).astype(np.int64)
        high = np.minimum(low + 1, n - 1)
        frac = torch.as_tensor(coords - low, dtype=x.dtype, device=x.device).view(shape)
        x_low = x.index_select(dim, torch.as_tensor(low, device=x.device))
        x_high = x.index_select(dim, torch.as_tensor(high, device=x.device))
        out = x_low * (1 - frac) + x_high * frac
    return torch.where(inside, out, torch.zeros((), dtype=out.dtype, device=out.device))


def zoom_like_scipy(x: torch.Tensor, size: tuple[int, int], order: int) -> torch.Tensor:
    """Resize ``[batch, C, H, W]`` to ``size`` exactly as ``scipy.ndimage.zoom`` does.

    Reproduces ``scipy.ndimage.zoom(x, (1, size[0] / H, size[1] / W, 1), order=order)`` on a
    channels-last array (defaults ``mode="constant"``, ``grid_mode=False``), including the
    zero that scipy returns where a coordinate overshoots the last input sample by
    floating-point rounding. Interpolation runs in float64 and the result has ``x``'s dtype,
    as scipy's output has the input's dtype. Works on any device.

    Parameters
    ----------
    x
        Floating-point tensor ``[batch, channels, height, width]``.
    size
        Output ``(height, width)``.
    order
        0 (nearest) or 1 (linear). Higher spline orders need scipy's prefilter.
    """
    if order not in (0, 1):
        raise ValueError(f"zoom_like_scipy supports order 0 and 1, got {order}")
    out = x.to(torch.float64)
    out = _zoom_axis(out, size[0], 2, order)
    out = _zoom_axis(out, size[1], 3, order)
    return out.to(x.dtype)
