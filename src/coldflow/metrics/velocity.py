"""Fields derived from a 2-D velocity for metrics that no network trains on: vorticity and
divergence.

Layouts as in :mod:`coldflow.physics.grid`: spatial axes ``(y, x)`` = ``(H, W)``,
component 0 is ``v_y`` and component 1 ``v_x``; lengths are in cells unless ``spacing``
says otherwise. Pure tensor arithmetic on any leading axes.
"""

from __future__ import annotations

import torch

__all__ = ["centred_divergence", "face_divergence", "vorticity"]


def _check_centred(velocity: torch.Tensor, name: str) -> None:
    if velocity.ndim < 3 or velocity.shape[-3] != 2 or min(velocity.shape[-2:]) < 2:
        raise ValueError(
            f"{name} needs a cell-centred velocity (..., 2, H, W) with H, W >= 2 "
            f"(components v_y, v_x), got shape {tuple(velocity.shape)}"
        )


def vorticity(velocity: torch.Tensor, spacing: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
    """Vorticity ``w = d v_x / dy - d v_y / dx`` of a cell-centred velocity, ``(..., H, W)``.

    Central differences inside, one-sided ones on the border cells (``torch.gradient``);
    the sign convention of :func:`coldflow.physics.diagnostics.vorticity`, which gives the
    same numbers for a staggered velocity once its faces are averaged to the centres. A
    solid-body rotation ``(v_y, v_x) = Omega (-x, y)`` has ``w = 2 Omega`` everywhere.

    Parameters
    ----------
    velocity
        ``(..., 2, H, W)``.
    spacing
        Cell size ``(dy, dx)``.
    """
    _check_centred(velocity, "vorticity")
    dy, dx = spacing
    (dvx_dy,) = torch.gradient(velocity[..., 1, :, :], spacing=dy, dim=-2)
    (dvy_dx,) = torch.gradient(velocity[..., 0, :, :], spacing=dx, dim=-1)
    return dvx_dy - dvy_dx


def centred_divergence(
    velocity: torch.Tensor, spacing: tuple[float, float] = (1.0, 1.0)
) -> torch.Tensor:
    """Divergence ``d v_y / dy + d v_x / dx`` of a cell-centred velocity, ``(..., H, W)``.

    The differences of :func:`vorticity`. A velocity averaged from divergence-free faces is
    divergence-free here only up to the discretisation (the two stencils differ).
    """
    _check_centred(velocity, "centred_divergence")
    dy, dx = spacing
    (dvy_dy,) = torch.gradient(velocity[..., 0, :, :], spacing=dy, dim=-2)
    (dvx_dx,) = torch.gradient(velocity[..., 1, :, :], spacing=dx, dim=-1)
    return dvy_dy + dvx_dx


def face_divergence(
    v_y: torch.Tensor, v_x: torch.Tensor, spacing: tuple[float, float] = (1.0, 1.0)
) -> torch.Tensor:
    """Divergence of a staggered (MAC) velocity in each cell, ``(..., H, W)``.

    ``(v_y[j + 1, i] - v_y[j, i]) / dy + (v_x[j, i + 1] - v_x[j, i]) / dx``: the net outflow
    through the cell's faces, the discrete divergence that the pressure projection sets to
    zero.

    Parameters
    ----------
    v_y, v_x
        Face values ``(..., H + 1, W)`` and ``(..., H, W + 1)`` (the valid parts of the padded
        layout of :mod:`coldflow.physics.grid`).
    spacing
        Cell size ``(dy, dx)``.
    """
    h, w = v_x.shape[-2], v_y.shape[-1]
    if tuple(v_y.shape[-2:]) != (h + 1, w) or tuple(v_x.shape[-2:]) != (h, w + 1):
        raise ValueError(
            "face_divergence needs v_y (..., H + 1, W) and v_x (..., H, W + 1), got "
            f"{tuple(v_y.shape)} and {tuple(v_x.shape)}"
        )
    dy, dx = spacing
    return (v_y[..., 1:, :] - v_y[..., :-1, :]) / dy + (v_x[..., :, 1:] - v_x[..., :, :-1]) / dx
