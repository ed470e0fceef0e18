"""The simulation domain and the padded tensor layout of staggered (MAC) velocity fields.

PhiFlow stores a staggered velocity as one array per component whose size depends on
the boundary: a face on the domain boundary is stored only where the boundary leaves
it free (open sides), not where the boundary fixes it (walls, inflow). coldflow stores
and trains on one fixed layout instead, so that every resolution and scene has the same
shape rules:

``velocity``: ``(..., 2, H + 1, W + 1)``, channel 0 is the y component, channel 1 the x
component (y is the first spatial axis: the flow direction of the Kármán scene and
"up" in the plume scene).

- ``velocity[..., 0, j, i]`` for ``j in 0..H``, ``i in 0..W-1`` is the y velocity on the
  face at ``y = j * dy``, ``x = (i + 0.5) * dx``. Column ``W`` is padding (always 0).
- ``velocity[..., 1, j, i]`` for ``j in 0..H-1``, ``i in 0..W`` is the x velocity on the
  face at ``y = (j + 0.5) * dy``, ``x = i * dx``. Row ``H`` is padding (always 0).
- Faces on a side the boundary fixes hold the boundary's normal velocity (0 on a wall,
  the inflow speed on an inflow side); on an open side they hold the simulated value.

Scalar fields (smoke density, pressure, masks) are cell-centred, ``(..., H, W)``.

Networks see velocities at cell centres, ``(..., 2, H, W)``: :func:`faces_to_centered`
and :func:`centered_to_faces` are the one conversion between the two layouts.

Everything here is pure tensor arithmetic or PhiFlow field construction: nothing reads
or writes files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # PhiFlow is imported lazily: it is slow to import and only the solver needs it
    from phi.field import Field

__all__ = [
    "AXES",
    "BATCH",
    "box_fraction",
    "Domain",
    "Side",
    "centered_to_faces",
    "centered_to_tensor",
    "downsample_centered",
    "downsample_velocity",
    "faces_to_centered",
    "fixed_face_values",
    "free_face_mask",
    "tensor_to_centered",
    "tensor_to_staggered",
    "staggered_to_tensor",
]

AXES = ("y", "x")
"""Spatial axes in storage order."""

BATCH = "b"
"""Name of the PhiFlow batch dimension that holds the simulations of a batch."""

Side = float | None
"""A boundary side: ``None`` is open (zero-gradient velocity, zero pressure); a number is
a Dirichlet side whose normal velocity is that number (``0.0`` is a no-slip wall, ``1.0``
an inflow at unit speed) and whose tangential velocity is zero."""


@dataclass(frozen=True)
class Domain:
    """A rectangular 2-D domain discretised on a regular grid.

    Attributes
    ----------
    size
        Physical extent ``(Ly, Lx)``.
    resolution
        Cells ``(H, W)`` along ``(y, x)``.
    boundary
        ``((y_lower, y_upper), (x_lower, x_upper))``, each a :data:`Side`.
    """

    size: tuple[float, float]
    resolution: tuple[int, int]
    boundary: tuple[tuple[Side, Side], tuple[Side, Side]]

    def __post_init__(self) -> None:
        if any(r < 2 for r in self.resolution):
            raise ValueError(f"resolution must be at least 2x2 cells, got {self.resolution}")

    @property
    def spacing(self) -> tuple[float, float]:
        """Cell size ``(dy, dx)``."""
        return self.size[0] / self.resolution[0], self.size[1] / self.resolution[1]

    @property
    def closed(self) -> bool:
        """True when no side is open: the pressure is then defined up to a constant."""
        return all(side is not None for pair in self.boundary for side in pair)

    @property
    def velocity_shape(self) -> tuple[int, int, int]:
        """Shape of one velocity sample in the padded layout, ``(2, H + 1, W + 1)``."""
        H, W = self.resolution
        return 2, H + 1, W + 1

    def scaled(self, resolution: tuple[int, int]) -> Domain:
        """The same physical domain at another resolution."""
        return Domain(self.size, tuple(resolution), self.boundary)  # type: ignore[arg-type]

    def velocity_extrapolation(self):
        """The PhiFlow extrapolation of the velocity for :attr:`boundary`."""
        from phi import math
        from phiml.math import extrapolation as ext

        def side(value: Side, axis: str):
            if value is None:
                return ext.ZERO_GRADIENT
            if value == 0:
                return ext.ZERO
            normal = {a: (float(value) if a == axis else 0.0) for a in AXES}
            return ext.ConstantExtrapolation(math.vec(**normal))

        return ext.combine_sides(
            **{
                axis: (side(lo, axis), side(hi, axis))
                for axis, (lo, hi) in zip(AXES, self.boundary, strict=True)
            }
        )

    def scalar_extrapolation(self):
        """Extrapolation of advected scalars: zero-gradient on open sides, zero elsewhere."""
        from phiml.math import extrapolation as ext

        def side(value: Side):
            return ext.ZERO_GRADIENT if value is None else ext.ZERO

        return ext.combine_sides(
            **{
                axis: (side(lo), side(hi))
                for axis, (lo, hi) in zip(AXES, self.boundary, strict=True)
            }
        )

    def phi_kwargs(self) -> dict:
        """``bounds`` and ``resolution`` keyword arguments for PhiFlow grid constructors."""
        from phi.geom import Box
        from phiml.math import spatial

        H, W = self.resolution
        Ly, Lx = self.size
        return {"bounds": Box(y=Ly, x=Lx), "resolution": spatial(y=H, x=W)}

    def stored_faces(self, axis: str) -> tuple[bool, bool]:
        """Whether PhiFlow stores the (lower, upper) boundary faces normal to ``axis``."""
        return self.velocity_extrapolation().valid_outer_faces(axis)


# ------------------------------------------------------------------ layout conversion


def _side_value(domain: Domain, axis: int, upper: bool) -> float:
    value = domain.boundary[axis][int(upper)]
    return 0.0 if value is None else float(value)


def staggered_to_tensor(grid: Field, domain: Domain) -> torch.Tensor:
    """Convert a PhiFlow staggered velocity to the padded layout.

    Parameters
    ----------
    grid
        Staggered velocity on ``domain``, optionally with the batch dimension
        :data:`BATCH`.
    domain
        The grid's domain; decides which boundary faces PhiFlow stores.

    Returns
    -------
    torch.Tensor
        ``(B, 2, H + 1, W + 1)``; ``B = 1`` when ``grid`` has no batch dimension.
        Differentiable with respect to the grid's values.
    """
    H, W = domain.resolution
    comps = []
    for axis, name in enumerate(AXES):
        values = torch.as_tensor(grid.vector[name].values.native([BATCH, *AXES]))  # (B, ny, nx)
        lo, hi = domain.stored_faces(name)
        B = values.shape[0]
        pieces = []
        shape = (B, 1, W) if axis == 0 else (B, H, 1)
        if not lo:
            pieces.append(values.new_full(shape, _side_value(domain, axis, upper=False)))
        pieces.append(values)
        if not hi:
            pieces.append(values.new_full(shape, _side_value(domain, axis, upper=True)))
        full = torch.cat(pieces, dim=1 + axis)  # (B, H+1, W) or (B, H, W+1)
        pad = (0, 1, 0, 0) if axis == 0 else (0, 0, 0, 1)  # F.pad: (x_lo, x_hi, y_lo, y_hi)
        comps.append(F.pad(full, pad))
    return torch.stack(comps, dim=1)


def tensor_to_staggered(velocity: torch.Tensor, domain: Domain) -> Field:
    """Convert a padded-layout velocity tensor to a PhiFlow ``StaggeredGrid``.

    Parameters
    ----------
    velocity
        ``(B, 2, H + 1, W + 1)``. Boundary faces that the domain fixes and the padding
        are ignored (the boundary condition decides them).
    domain
        Domain of the grid.

    Returns
    -------
    Field
        Staggered grid with batch dimension :data:`BATCH` of size ``B``.
    """
    from phi.field import StaggeredGrid
    from phiml import math
    from phiml.math import batch, dual, spatial

    H, W = domain.resolution
    if velocity.ndim != 4 or tuple(velocity.shape[1:]) != domain.velocity_shape:
        raise ValueError(
            f"velocity must have shape (B, {', '.join(map(str, domain.velocity_shape))}) "
            f"for a {H}x{W} domain, got {tuple(velocity.shape)}"
        )
    comps = {}
    for axis, name in enumerate(AXES):
        lo, hi = domain.stored_faces(name)
        n = H if axis == 0 else W
        start, stop = (0 if lo else 1), (n + 1 if hi else n)
        values = velocity[:, 0, start:stop, :W] if axis == 0 else velocity[:, 1, :H, start:stop]
        comps[name] = math.wrap(values, batch(BATCH), spatial(*AXES))
    values = math.stack(comps, dual(vector=",".join(AXES)))
    return StaggeredGrid(values, domain.velocity_extrapolation(), **domain.phi_kwargs())


def centered_to_tensor(grid: Field) -> torch.Tensor:
    """Values of a PhiFlow centred scalar grid as ``(B, H, W)``."""
    return torch.as_tensor(grid.values.native([BATCH, *AXES]))


def tensor_to_centered(values: torch.Tensor, domain: Domain, extrapolation=None) -> Field:
    """Wrap ``(B, H, W)`` values as a PhiFlow ``CenteredGrid`` on ``domain``.

    ``extrapolation`` defaults to :meth:`Domain.scalar_extrapolation`.
    """
    from phi.field import CenteredGrid
    from phiml import math
    from phiml.math import batch, spatial

    if values.ndim != 3 or tuple(values.shape[1:]) != tuple(domain.resolution):
        raise ValueError(
            f"scalar field must have shape (B, {domain.resolution[0]}, {domain.resolution[1]}), "
            f"got {tuple(values.shape)}"
        )
    ext = domain.scalar_extrapolation() if extrapolation is None else extrapolation
    return CenteredGrid(math.wrap(values, batch(BATCH), spatial(*AXES)), ext, **domain.phi_kwargs())


def free_face_mask(domain: Domain, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(2, H + 1, W + 1)`` mask: 1 on faces the solver evolves, 0 on fixed boundary faces
    and on the padding."""
    H, W = domain.resolution
    mask = torch.zeros(domain.velocity_shape, dtype=dtype)
    for axis, name in enumerate(AXES):
        lo, hi = domain.stored_faces(name)
        n = H if axis == 0 else W
        start, stop = (0 if lo else 1), (n + 1 if hi else n)
        if axis == 0:
            mask[0, start:stop, :W] = 1
        else:
            mask[1, :H, start:stop] = 1
    return mask


def fixed_face_values(domain: Domain, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(2, H + 1, W + 1)``: the boundary's normal velocity on fixed faces, 0 elsewhere."""
    H, W = domain.resolution
    out = torch.zeros(domain.velocity_shape, dtype=dtype)
    (ylo, yhi), (xlo, xhi) = domain.boundary
    if ylo is not None:
        out[0, 0, :W] = ylo
    if yhi is not None:
        out[0, H, :W] = yhi
    if xlo is not None:
        out[1, :H, 0] = xlo
    if xhi is not None:
        out[1, :H, W] = xhi
    return out


def box_fraction(
    domain: Domain, box: tuple[tuple[float, float], tuple[float, float]]
) -> torch.Tensor:
    """``(H, W)`` exact fraction of each cell inside the box ``((y0, y1), (x0, x1))``."""
    parts = []
    for (lo, hi), n, d in zip(box, domain.resolution, domain.spacing, strict=True):
        edges = torch.arange(n + 1, dtype=torch.float64) * d
        overlap = torch.clamp(
            torch.minimum(edges[1:], torch.tensor(float(hi)))
            - torch.maximum(edges[:-1], torch.tensor(float(lo))),
            min=0,
        )
        parts.append(overlap / d)
    return parts[0][:, None] * parts[1][None, :]


# ---------------------------------------------------------- staggered <-> cell-centred


def faces_to_centered(velocity: torch.Tensor) -> torch.Tensor:
    """Average the two faces of each cell: ``(..., 2, H + 1, W + 1)`` -> ``(..., 2, H, W)``.

    The y component of cell ``(j, i)`` is the mean of its lower and upper y faces, the x
    component the mean of its left and right x faces; the padding is never read. A
    constant field stays constant and a linear field is sampled exactly at the centres.
    """
    if velocity.ndim < 3 or velocity.shape[-3] != 2:
        raise ValueError(
            f"a staggered velocity must be (..., 2, H + 1, W + 1), got {tuple(velocity.shape)}"
        )
    vy = velocity[..., 0, :, :-1]  # (..., H + 1, W)
    vx = velocity[..., 1, :-1, :]  # (..., H, W + 1)
    return torch.stack(
        (0.5 * (vy[..., :-1, :] + vy[..., 1:, :]), 0.5 * (vx[..., :-1] + vx[..., 1:])), dim=-3
    )


def centered_to_faces(centered: torch.Tensor) -> torch.Tensor:
    """Interpolate cell values ``(..., 2, H, W)`` to the padded layout ``(..., 2, H + 1, W + 1)``.

    Interior faces get the mean of their two cells, boundary faces the value of their one
    cell; the padding column / row is zero. :func:`faces_to_centered` of the result
    returns the input exactly for fields that are linear along each component's axis.
    """
    if centered.ndim < 3 or centered.shape[-3] != 2:
        raise ValueError(f"a centred velocity must be (..., 2, H, W), got {tuple(centered.shape)}")
    cy, cx = centered[..., 0, :, :], centered[..., 1, :, :]
    ey = torch.cat((cy[..., :1, :], cy, cy[..., -1:, :]), dim=-2)  # (..., H + 2, W)
    ex = torch.cat((cx[..., :1], cx, cx[..., -1:]), dim=-1)  # (..., H, W + 2)
    fy = 0.5 * (ey[..., :-1, :] + ey[..., 1:, :])  # (..., H + 1, W)
    fx = 0.5 * (ex[..., :-1] + ex[..., 1:])  # (..., H, W + 1)
    return torch.stack((F.pad(fy, (0, 1)), F.pad(fx, (0, 0, 0, 1))), dim=-3)


# ------------------------------------------------------------------------ downsampling


def downsample_velocity(velocity: torch.Tensor, factor: int) -> torch.Tensor:
    """Restrict a padded-layout velocity to a grid ``factor`` times coarser.

    Each coarse face lies on a line of fine faces and covers ``factor`` of them; its
    value is their average (the face-averaged flux). A divergence-free fine field thus
    gives a divergence-free coarse field, and constant or linear fields are reproduced
    exactly.

    Parameters
    ----------
    velocity
        ``(..., 2, H + 1, W + 1)`` with ``H`` and ``W`` divisible by ``factor``.
    factor
        Integer coarsening factor.

    Returns
    -------
    torch.Tensor
        ``(..., 2, H // factor + 1, W // factor + 1)``.
    """
    H, W = velocity.shape[-2] - 1, velocity.shape[-1] - 1
    f = int(factor)
    if f < 1 or H % f or W % f:
        raise ValueError(f"resolution {H}x{W} is not divisible by the factor {factor}")
    h, w = H // f, W // f
    lead = velocity.shape[:-3]
    vy = velocity[..., 0, ::f, :W].reshape(*lead, h + 1, w, f).mean(-1)  # rows 0, f, ..., H
    vx = velocity[..., 1, :H, ::f].reshape(*lead, h, f, w + 1).mean(-2)  # cols 0, f, ..., W
    return torch.stack([F.pad(vy, (0, 1, 0, 0)), F.pad(vx, (0, 0, 0, 1))], dim=-3)


def downsample_centered(values: torch.Tensor, factor: int) -> torch.Tensor:
    """Block-average cell-centred ``(..., H, W)`` values onto a ``factor``-times coarser grid."""
    H, W = values.shape[-2:]
    f = int(factor)
    if f < 1 or H % f or W % f:
        raise ValueError(f"resolution {H}x{W} is not divisible by the factor {factor}")
    lead = values.shape[:-2]
    return values.reshape(*lead, H // f, f, W // f, f).mean(dim=(-3, -1))
