"""The one figure style of coldflow: fonts, sizes, colours, image display and saving.

Every figure of the package is made the same way::

    with style_context():
        fig, ax = new_figure(width=FULL_WIDTH, height=2.5)
        ax.plot(x, y, color=color(0))
    save_figure(fig, "figures/loss.png")

Figures are plain :class:`matplotlib.figure.Figure` objects drawn on the Agg canvas
(rasterising, no display). They are never registered with ``pyplot``, so making
figures changes no global backend and leaks no open windows; the ``rcParams`` of the
style apply only inside :func:`style_context` (or a function decorated with
:func:`styled`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from coldflow.io import atomic_path

__all__ = [
    "COLUMN_WIDTH",
    "DIVERGING_CMAP",
    "DPI",
    "FULL_WIDTH",
    "IMAGE_CMAP",
    "PALETTE",
    "RC_PARAMS",
    "SEQUENTIAL_CMAP",
    "blank_figure",
    "color",
    "new_figure",
    "save_figure",
    "show_image",
    "style_context",
    "styled",
]

DPI = 150
"""Resolution of every saved PNG (dots per inch)."""

COLUMN_WIDTH = 3.4
"""Width in inches of a figure meant for one column of a page."""

FULL_WIDTH = 7.0
"""Width in inches of a figure spanning the page."""

PALETTE = (
    "#0072B2",  # blue
    "#D55E00",  # vermilion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow (last: weak on white)
)
"""Line colours in order of use (Okabe & Ito's colour-blind-safe palette)."""

IMAGE_CMAP = "gray"
"""Colour map for single-channel images (black = low end of the range)."""

DIVERGING_CMAP = "RdBu_r"
"""Colour map for signed fields (vorticity, velocity components, differences)."""

SEQUENTIAL_CMAP = "viridis"
"""Colour map for non-negative scalar fields (density, speed, error magnitude)."""

RC_PARAMS: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.titlesize": 11,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "axes.prop_cycle": matplotlib.cycler(color=list(PALETTE)),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.5,
    "lines.markersize": 4,
    "image.cmap": IMAGE_CMAP,
    "image.interpolation": "nearest",
}
"""The matplotlib settings of the style (applied by :func:`style_context`)."""

P = ParamSpec("P")
R = TypeVar("R")


def color(i: int) -> str:
    """The ``i``-th colour of :data:`PALETTE` (cycling)."""
    return PALETTE[i % len(PALETTE)]


@contextmanager
def style_context() -> Iterator[None]:
    """Apply :data:`RC_PARAMS` for the duration of the block (restored afterwards)."""
    with matplotlib.rc_context(RC_PARAMS):
        yield


def styled(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run a figure-making function inside :func:`style_context`."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with style_context():
            return func(*args, **kwargs)

    return wrapper


def blank_figure(width: float = COLUMN_WIDTH, height: float = 2.4) -> Figure:
    """An empty figure (``width`` x ``height`` inches) on the Agg canvas, constrained layout.

    For layouts that :func:`new_figure` does not cover (``fig.add_gridspec`` etc.).
    """
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    width: float = COLUMN_WIDTH,
    height: float = 2.4,
    **subplot_kw: Any,
) -> tuple[Figure, Any]:
    """A figure on the Agg canvas with constrained layout and ``nrows x ncols`` axes.

    Parameters
    ----------
    nrows, ncols
        Grid of axes; passed to :meth:`Figure.subplots` with ``squeeze=False`` when
        either is larger than one, so the axes come back as a 2-D array.
    width, height
        Size in inches; the saved PNG is ``width * DPI`` by ``height * DPI`` pixels.
    **subplot_kw
        Further keywords for :meth:`Figure.subplots` (``sharex``, ``gridspec_kw``...).

    Returns
    -------
    fig, axes
        The figure and one :class:`~matplotlib.axes.Axes` (or an array of them).
    """
    fig = blank_figure(width, height)
    squeeze = nrows == 1 and ncols == 1
    axes = fig.subplots(nrows, ncols, squeeze=squeeze, **subplot_kw)
    return fig, axes


def show_image(
    ax: Axes,
    image: np.ndarray,
    vmin: float = 0.0,
    vmax: float = 1.0,
    cmap: str = IMAGE_CMAP,
) -> Any:
    """Draw an image with fixed colour limits and no smoothing; hide the frame.

    Parameters
    ----------
    ax
        Target axes.
    image
        ``[H, W]`` (shown with ``cmap``) or ``[H, W, 3]`` RGB in [0, 1].
    vmin, vmax
        Fixed colour limits (never autoscaled, so equal values look equal everywhere).
    cmap
        Colour map for single-channel images.

    Returns
    -------
    matplotlib.image.AxesImage
    """
    im = ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.grid(False)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG atomically and release it.

    Parameters
    ----------
    fig
        The figure (from :func:`new_figure` or from ``pyplot``).
    path
        Destination ``.png``; parent directories are created.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        if fig.canvas.manager is not None:  # a pyplot figure: close its window
            import matplotlib.pyplot as plt

            plt.close(fig)
        fig.clear()
    return path
