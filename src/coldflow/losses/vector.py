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

__all__ = ["FIT_MODES", "GRIDS", "FieldDistance", "field_components"]

GRIDS = ("centered", "staggered")
FACES = ("keep", "center")
FIT_MODES = ("pad", "resize", "none")
PAD_MODES = ("edge", "constant")

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


def _fit(x: torch.Tensor, min_size: int, fit: str, pad_mode: str, name: str) -> torch.Tensor:
    height, width = x.shape[-2:]
    if height >= min_size and width >= min_size:
        return x
    if fit == "pad":
        dh, dw = max(0, min_size - height), max(0, min_size - width)
        padding = (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)
        return F.pad(x, padding, mode="replicate" if pad_mode == "edge" else "constant")
    if fit == "resize":
        factor = min_size / min(height, width)
        size = (max(min_size, math.ceil(height * factor)), max(min_size, math.ceil(width * factor)))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    raise ValueError(
        f"{name} needs fields of at least {min_size}x{min_size} pixels, got {height}x{width}; "
        "build the field distance with fit='pad' (pad_mode 'edge' or 'constant') or "
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
        What to do with components smaller than the minimum size: ``"pad"`` (default),
        ``"resize"`` (bilinear, aspect ratio kept) or ``"none"`` (raise ``ValueError``).
    pad_mode
        ``"edge"`` (repeat border values, default) or ``"constant"`` (zeros).
    min_size
        Override of the distance's own ``min_size`` (e.g. 224 to feed LSiM at its
        training resolution).
    """

    def __init__(
        self,
        distance: nn.Module,
        grid: str = "centered",
        faces: str = "keep",
        fit: str = "pad",
        pad_mode: str = "edge",
        min_size: int | None = None,
    ) -> None:
        super().__init__()
        for value, allowed, option in (
            (grid, GRIDS, "grid"),
            (faces, FACES, "faces"),
            (fit, FIT_MODES, "fit"),
            (pad_mode, PAD_MODES, "pad_mode"),
        ):
            if value not in allowed:
                raise ValueError(f"{option} must be one of {allowed}, got {value!r}")
        self.distance = distance
        self.grid, self.faces, self.fit, self.pad_mode = grid, faces, fit, pad_mode
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
            xa = _fit(xa, self.min_size, self.fit, self.pad_mode, name)
            xb = _fit(xb, self.min_size, self.fit, self.pad_mode, name)
            d = self.distance(xa, xb)
            total = total + d.view(len(indices), -1).sum(dim=0)
        return total
