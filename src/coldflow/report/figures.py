"""Figures of images (grids, labelled tables, trajectories), as pure functions of arrays
and tensors. Curves (schedules, metrics) are in :mod:`coldflow.report.curves`.

Each ``*_figure`` function takes data (NumPy arrays or torch tensors) and returns a
:class:`~matplotlib.figure.Figure` in the house style; it reads and writes no files.
:mod:`coldflow.report.runs` gathers the data from run directories and saves them.

Images are ``[n, C, H, W]`` with C = 1 (grey) or 3 (RGB) in the data range given by
``value_range``; they are mapped to [0, 1] (clamped) and drawn with fixed colour
limits and nearest-neighbour pixels, so a white pixel is always white.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from coldflow.data import from_range
from coldflow.report.style import new_figure, show_image, styled

__all__ = [
    "grids_figure",
    "image_grid_figure",
    "image_table_figure",
    "label_tiles",
    "tile_images",
    "to_unit",
    "trajectory_figure",
]

TILE_INCHES = 0.62
"""Displayed size of one image tile (28 px MNIST digits come out about 3x enlarged)."""

PAD_VALUE = 1.0
"""Brightness of the separators between tiles (white, like the page)."""


# ------------------------------------------------------------------------ images


def to_unit(images: Any, value_range: Sequence[float] = (0.0, 1.0)) -> np.ndarray:
    """Images in ``value_range`` as a float32 NumPy array in [0, 1] (clamped).

    Parameters
    ----------
    images
        Tensor or array of any shape.
    value_range
        ``(low, high)`` of the data; ``low`` maps to 0 (black), ``high`` to 1 (white).
    """
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    x = from_range(x.detach().to("cpu", torch.float32), tuple(value_range))
    return x.numpy()


def tile_images(
    images: np.ndarray, ncol: int, pad: int = 1, pad_value: float = PAD_VALUE
) -> np.ndarray:
    """Arrange images row by row into one mosaic with ``pad`` pixels between tiles.

    Parameters
    ----------
    images
        ``[n, C, H, W]`` with C = 1 or 3 (or ``[n, H, W]``), values in [0, 1].
    ncol
        Tiles per row; the mosaic has ``ceil(n / ncol)`` rows, and empty slots of the
        last row are filled with ``pad_value``.
    pad, pad_value
        Separator width in pixels and its value.

    Returns
    -------
    np.ndarray
        ``[rows * (H + pad) - pad, ncol * (W + pad) - pad]`` for grey images, with a
        trailing axis of 3 for RGB. Tile ``i`` starts at row ``(i // ncol) * (H + pad)``
        and column ``(i % ncol) * (W + pad)``.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images [n, 1 or 3, H, W], got shape {list(x.shape)}")
    n, c, h, w = x.shape
    if n == 0:
        raise ValueError("no images to tile")
    ncol = max(1, min(ncol, n))
    nrow = math.ceil(n / ncol)
    mosaic = np.full((c, nrow * (h + pad) - pad, ncol * (w + pad) - pad), pad_value, np.float32)
    for i in range(n):
        r, q = divmod(i, ncol)
        top, left = r * (h + pad), q * (w + pad)
        mosaic[:, top : top + h, left : left + w] = x[i]
    return mosaic[0] if c == 1 else mosaic.transpose(1, 2, 0)


def _wrap(title: str | None, width_inches: float) -> tuple[str | None, int]:
    """Wrap a title to the figure width (about 11 characters an inch); return its lines."""
    if not title:
        return None, 0
    lines = textwrap.wrap(title, max(8, int(width_inches * 11))) or [title]
    return "\n".join(lines), len(lines)


def label_tiles(
    ax: Axes,
    tile_shape: tuple[int, int],
    col_labels: Sequence[str] | None,
    row_labels: Sequence[str] | None,
    pad: int = 1,
) -> None:
    """Put column labels above and row labels left of a mosaic drawn by ``show_image``."""
    h, w = tile_shape
    if col_labels:
        ax.xaxis.tick_top()
        ax.set_xticks([i * (w + pad) + (w - 1) / 2 for i in range(len(col_labels))])
        ax.set_xticklabels(col_labels)
    if row_labels:
        ax.set_yticks([i * (h + pad) + (h - 1) / 2 for i in range(len(row_labels))])
        ax.set_yticklabels(row_labels)


@styled
def image_grid_figure(
    images: Any,
    value_range: Sequence[float] = (0.0, 1.0),
    ncol: int = 4,
    title: str | None = None,
) -> Figure:
    """A grid of samples, e.g. 16 images as 4 x 4.

    Parameters
    ----------
    images
        ``[n, C, H, W]`` in ``value_range``; all ``n`` are shown.
    value_range
        Data range of the pixels (config ``data.range``).
    ncol
        Images per row.
    title
        Figure title.
    """
    unit = to_unit(images, value_range)
    ncol = max(1, min(ncol, len(unit)))
    nrow = math.ceil(len(unit) / ncol)
    width = ncol * TILE_INCHES + 0.1
    title, lines = _wrap(title, width)
    fig, ax = new_figure(width=width, height=nrow * TILE_INCHES + 0.1 + 0.2 * lines)
    show_image(ax, tile_images(unit, ncol))
    if title:
        ax.set_title(title)
    return fig


@styled
def image_table_figure(
    table: Any,
    value_range: Sequence[float] = (0.0, 1.0),
    col_labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Images in labelled rows and columns (one mosaic, labels on its edges).

    Parameters
    ----------
    table
        ``[rows, cols, C, H, W]`` in ``value_range``.
    value_range
        Data range of the pixels.
    col_labels, row_labels
        One string per column (drawn above) and per row (drawn left).
    title
        Figure title.
    """
    unit = to_unit(table, value_range)
    if unit.ndim != 5:
        raise ValueError(f"expected an image table [rows, cols, C, H, W], got {list(unit.shape)}")
    rows, cols, _, h, w = unit.shape
    width = cols * TILE_INCHES + (0.4 if row_labels else 0.1)
    title, lines = _wrap(title, width)
    top = 0.1 + (0.22 if col_labels else 0) + 0.2 * lines
    fig, ax = new_figure(width=width, height=rows * TILE_INCHES + top)
    show_image(ax, tile_images(unit.reshape(rows * cols, *unit.shape[2:]), cols))
    label_tiles(ax, (h, w), col_labels, row_labels)
    if title:
        ax.set_title(title)
    return fig


def trajectory_figure(
    trajectory: Any,
    timesteps: Sequence[int] | Any | None,
    value_range: Sequence[float] = (0.0, 1.0),
    n_rows: int = 4,
    title: str | None = None,
) -> Figure:
    """Sampling trajectories: rows are samples, columns the captured timesteps.

    Parameters
    ----------
    trajectory
        ``[K, n, C, H, W]``: ``K`` snapshots of ``n`` samples.
    timesteps
        ``[K]`` timestep of each snapshot (columns are labelled ``t=...``); ``None``
        numbers the columns instead.
    value_range
        Data range of the pixels.
    n_rows
        How many of the ``n`` samples to show.
    title
        Figure title.
    """
    traj = (
        torch.as_tensor(np.asarray(trajectory)) if not torch.is_tensor(trajectory) else trajectory
    )
    if traj.ndim != 5:
        raise ValueError(f"trajectory must be [K, n, C, H, W], got shape {list(traj.shape)}")
    if timesteps is None:
        labels = [f"step {k}" for k in range(traj.shape[0])]
    else:
        labels = [f"t={int(t)}" for t in np.asarray(timesteps).reshape(-1)]
        if len(labels) != traj.shape[0]:
            raise ValueError(f"{len(labels)} timesteps for {traj.shape[0]} trajectory snapshots")
    n = min(n_rows, traj.shape[1])
    table = traj[:, :n].transpose(0, 1)  # [n, K, C, H, W]
    return image_table_figure(
        table,
        value_range,
        col_labels=labels,
        row_labels=[f"#{i}" for i in range(n)],
        title=title,
    )


@styled
def grids_figure(
    panels: Sequence[tuple[str, Any, Sequence[float]]], ncol: int = 4, per_row: int = 4
) -> Figure:
    """Several sample grids side by side, one titled panel per run.

    Parameters
    ----------
    panels
        ``(label, images [n, C, H, W], value_range)`` for each panel.
    ncol
        Images per row inside a panel.
    per_row
        Panels per figure row before wrapping.
    """
    if not panels:
        raise ValueError("no panels to draw")
    mosaics, shapes = [], []
    for _, images, value_range in panels:
        unit = to_unit(images, value_range)
        per_panel = max(1, min(ncol, len(unit)))
        mosaics.append(tile_images(unit, per_panel))
        shapes.append((math.ceil(len(unit) / per_panel), per_panel))
    cols = min(per_row, len(panels))
    rows = math.ceil(len(panels) / cols)
    panel_w = max(c for _, c in shapes) * TILE_INCHES
    panel_h = max(r for r, _ in shapes) * TILE_INCHES
    titles = [_wrap(label, panel_w) for label, _, _ in panels]
    lines = max(n for _, n in titles)
    fig, axes = new_figure(
        rows, cols, width=cols * (panel_w + 0.12), height=rows * (panel_h + 0.12 + 0.2 * lines)
    )
    axes = np.asarray(axes).reshape(-1)  # one panel: a single Axes
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, (label, _), mosaic in zip(axes, titles, mosaics, strict=False):
        show_image(ax, mosaic)
        ax.set_title(label)
    return fig
