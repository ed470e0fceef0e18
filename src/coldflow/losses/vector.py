"""The vector-field adapter: image distances applied to velocity fields component-wise.

A 2-D velocity field is compared as the sum over its components (y, x),

    F(a, b) = sum_c F(a_c, b_c),

where each component ``a_c`` is treated as a single-channel image (the image distances
repeat it to 3 channels) and, if it is smaller than the distance supports, padded or
resized up to that minimum first.

Layouts (channels first, component order and face layout as in
:mod:`coldflow.physics.grid`: spatial axes ``(y, x)`` = ``(H, W)``, component ``c`` is the
velocity along spatial axis ``c``):

- ``grid="centered"``: ``[batch, C, H, W]``, C components sampled at cell centres
  (component 0 = y, 1 = x for a velocity). Any C works, e.g. 1 for a scalar field.
- ``grid="staggered"``: face-centred (MAC) velocity with one extra face per axis, given
  either as coldflow's padded tensor ``[batch, 2, H + 1, W + 1]`` (channel 0: y faces,
  valid ``[:, 0, :, :W]``; channel 1: x faces, valid ``[:, 1, :H, :]``; the padding
  column / row is ignored) or as the pair ``(v_y, v_x)`` with ``v_y`` ``[batch, H + 1, W]``
  and ``v_x`` ``[batch, H, W + 1]``. ``faces="keep"`` compares the face values as they
  are (each component with its own shape); ``faces="center"`` first averages the two
  faces of each cell to the cell centre.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from coldflow.physics.grid import faces_to_centered

__all__ = ["FIT_MODES", "GRIDS", "PAD_MODES", "RESIZE_MODES", "FieldDistance", "field_components"]

GRIDS = ("centered", "staggered")
FACES = ("keep", "center")
FIT_MODES = ("pad", "resize", "none")
PAD_MODES = ("edge", "reflect", "constant", "masked")
RESIZE_MODES = ("bilinear", "bicubic")

Field = torch.Tensor | Sequence[torch.Tensor]


def _staggered_faces(x: Field) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(v_y [B, H+1, W], v_x [B, H, W+1])`` from a padded tensor or a pair."""
    if isinstance(x, torch.Tensor):
        if x.ndim != 4 or x.shape[1] != 2:
            raise ValueError(
                "a staggered velocity tensor must be [batch, 2, H + 1, W + 1] (y faces, x faces), "
                f"got {tuple(x.shape)}"
            )
        return x[:, 0, :, :-1], x[:, 1, :-1, :]
    vy, vx = (c[:, 0] if c.ndim == 4 else c for c in x)
    h1, w = vy.shape[-2:]
    if tuple(vx.shape[-2:]) != (h1 - 1, w + 1) or vy.shape[0] != vx.shape[0]:
        raise ValueError(
            "staggered components must be v_y [batch, H + 1, W] and v_x [batch, H, W + 1], "
            f"got {tuple(vy.shape)} and {tuple(vx.shape)}"
        )
    return vy, vx


def field_components(x: Field, grid: str = "centered", faces: str = "keep") -> list[torch.Tensor]:
    """Split a field into single-channel images ``[batch, 1, h, w]``, one per component.

    Parameters
    ----------
    x
        The field in one of the layouts of this module's docstring.
    grid
        ``"centered"`` or ``"staggered"``.
    faces
        For staggered fields: ``"keep"`` the face values or ``"center"`` them.

    Returns
    -------
    list of torch.Tensor
        Centred and centred-from-faces fields give C tensors of equal shape; kept faces
        give ``v_y`` ``[batch, 1, H + 1, W]`` and ``v_x`` ``[batch, 1, H, W + 1]``.
    """
    if grid == "centered":
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            raise ValueError("a centred field must be a tensor [batch, components, H, W]")
        return [x[:, c : c + 1] for c in range(x.shape[1])]
    if grid != "staggered":
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    vy, vx = _staggered_faces(x)
    if faces == "center":
        padded = torch.stack((F.pad(vy, (0, 1)), F.pad(vx, (0, 0, 0, 1))), dim=1)
        centered = faces_to_centered(padded)
        return [centered[:, 0:1], centered[:, 1:2]]
    if faces != "keep":
        raise ValueError(f"faces must be one of {FACES}, got {faces!r}")
    return [vy[:, None], vx[:, None]]


def _reflect(x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """Mirror padding (about the border sample) by any amount: in rounds of at most the
    size minus one, so that fields narrower than the padding are mirrored again."""
    left, right, top, bottom = padding
    while left or right or top or bottom:
        h, w = x.shape[-2:]
        step = (min(left, w - 1), min(right, w - 1), min(top, h - 1), min(bottom, h - 1))
        if not any(step):  # a single row or column: nothing to mirror
            return F.pad(x, (left, right, top, bottom), mode="replicate")
        x = F.pad(x, step, mode="reflect")
        left, right, top, bottom = (
            p - q for p, q in zip((left, right, top, bottom), step, strict=True)
        )
    return x


def _fit(
    x: torch.Tensor, min_size: int, fit: str, pad_mode: str, resize_mode: str, name: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``x`` enlarged to ``min_size``, and for ``pad_mode="masked"`` the mask of its own
    pixels ``[batch, 1, h, w]`` (1 inside, 0 in the padding); else ``None``."""
    height, width = x.shape[-2:]
    if height >= min_size and width >= min_size:
        return x, None
    if fit == "pad":
        dh, dw = max(0, min_size - height), max(0, min_size - width)
        padding = (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)
        if pad_mode == "edge":
            return F.pad(x, padding, mode="replicate"), None
        if pad_mode == "reflect":
            return _reflect(x, padding), None
        padded = F.pad(x, padding, mode="constant")
        if pad_mode == "constant":
            return padded, None
        mask = F.pad(torch.ones_like(x[:, :1]), padding, mode="constant")
        return padded, mask
    if fit == "resize":
        factor = min_size / min(height, width)
        size = (max(min_size, math.ceil(height * factor)), max(min_size, math.ceil(width * factor)))
        return F.interpolate(x, size=size, mode=resize_mode, align_corners=False), None
    raise ValueError(
        f"{name} needs fields of at least {min_size}x{min_size} pixels, got {height}x{width}; "
        f"build the field distance with fit='pad' (pad_mode one of {PAD_MODES}) or "
        "fit='resize' to enlarge them."
    )


class FieldDistance(nn.Module):
    """Sum of an image distance over the components of a vector field.

    Parameters
    ----------
    distance
        Any distance module of :data:`coldflow.losses.LOSSES` (``F(a, b) -> [batch]`` on
        ``[batch, 1, h, w]`` images) with a ``min_size`` attribute.
    grid, faces
        Field layout, see the module docstring.
    fit
        What to do with components smaller than the minimum size: ``"pad"``,
        ``"resize"`` (aspect ratio kept) or ``"none"`` (raise ``ValueError``). Default:
        the distance's own ``fit`` attribute, else ``"pad"``. LSiM, the only distance
        whose minimum (64) the study's 64x32 fields miss, resizes: padding to 64x64
        copies each wall column up to 17 times, and edge padding then weights a wall
        perturbation 1.68x an interior one of the same energy where LSiM on the unpadded
        128x64 field gives 0.44x (reflect 0.62x, zeros 0.62x, resize 0.46x; Spearman
        with the unpadded metric 0.926 edge, 0.986 reflect, 0.999 resize;
        docs/results/lsim_padding.md, :class:`~coldflow.losses.LSiM`).
    pad_mode
        ``"edge"`` (repeat border values, default), ``"reflect"`` (mirror about the border
        sample), ``"constant"`` (zeros) or ``"masked"`` (zeros, and the distance averages
        over the field's own pixels only: for distances with ``supports_mask``, LSiM).
    resize_mode
        Interpolation of ``fit="resize"``: ``"bilinear"`` (default) or ``"bicubic"``.
    min_size
        Override of the distance's own ``min_size`` (e.g. 224 to feed LSiM at its
        training resolution).
    """

    def __init__(
        self,
        distance: nn.Module,
        grid: str = "centered",
        faces: str = "keep",
        fit: str | None = None,
        pad_mode: str = "edge",
        min_size: int | None = None,
        resize_mode: str = "bilinear",
    ) -> None:
        super().__init__()
        fit = fit if fit is not None else getattr(distance, "fit", "pad")
        for value, allowed, option in (
            (grid, GRIDS, "grid"),
            (faces, FACES, "faces"),
            (fit, FIT_MODES, "fit"),
            (pad_mode, PAD_MODES, "pad_mode"),
            (resize_mode, RESIZE_MODES, "resize_mode"),
        ):
            if value not in allowed:
                raise ValueError(f"{option} must be one of {allowed}, got {value!r}")
        if fit == "pad" and pad_mode == "masked" and not getattr(distance, "supports_mask", False):
            raise ValueError(
                f"pad_mode 'masked' needs a distance that averages over a mask (lsim); "
                f"{type(distance).__name__} does not: use pad_mode 'edge', 'reflect' or "
                "'constant', or fit 'resize'"
            )
        self.distance = distance
        self.grid, self.faces, self.fit, self.pad_mode = grid, faces, fit, pad_mode
        self.resize_mode = resize_mode
        self.min_size = int(min_size if min_size is not None else getattr(distance, "min_size", 1))

    def forward(self, a: Field, b: Field) -> torch.Tensor:
        """Return ``[batch]`` distances, summed over the field components."""
        parts_a = field_components(a, self.grid, self.faces)
        parts_b = field_components(b, self.grid, self.faces)
        if [p.shape for p in parts_a] != [p.shape for p in parts_b]:
            raise ValueError("the two fields have different shapes")
        name = type(self.distance).__name__
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, part in enumerate(parts_a):
            groups.setdefault(tuple(part.shape), []).append(index)
        total = torch.zeros(parts_a[0].shape[0], device=parts_a[0].device)
        for indices in groups.values():
            # components of equal shape go through the distance as one batch
            xa = torch.cat([parts_a[i] for i in indices])
            xb = torch.cat([parts_b[i] for i in indices])
            xa, mask = _fit(xa, self.min_size, self.fit, self.pad_mode, self.resize_mode, name)
            xb, _ = _fit(xb, self.min_size, self.fit, self.pad_mode, self.resize_mode, name)
            d = self.distance(xa, xb) if mask is None else self.distance(xa, xb, mask=mask)
            total = total + d.view(len(indices), -1).sum(dim=0)
        return total
