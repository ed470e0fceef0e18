"""Curves of runs, as pure functions of arrays: degradation schedules (optionally above
one image degraded at several timesteps) and metrics against epoch.

Each ``*_figure`` function returns a :class:`~matplotlib.figure.Figure` in the house
style; it reads and writes no files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from coldflow.report.figures import label_tiles, tile_images, to_unit
from coldflow.report.style import FULL_WIDTH, blank_figure, color, new_figure, show_image, styled

__all__ = ["ScheduleCurve", "metric_figure", "schedule_figure"]


# ---------------------------------------------------------------------- schedules


@dataclass(frozen=True)
class ScheduleCurve:
    """The main schedule curve of one degradation.

    Attributes
    ----------
    label
        Legend label (the run's name).
    name
        What the curve is, e.g. ``"alpha_bar"`` or ``"sigma"`` (the y-axis label).
    t, values
        Timesteps ``0..n_T`` and the curve's values there.
    n_T
        Number of timesteps of the degradation.
    """

    label: str
    name: str
    t: np.ndarray
    values: np.ndarray
    n_T: int


_SYMBOLS = {"alpha_bar": r"$\bar\alpha_t$", "beta": r"$\beta_t$", "sigma": r"$\sigma_t$"}


def _symbol(name: str) -> str:
    return _SYMBOLS.get(name, name)


@styled
def schedule_figure(
    curves: Sequence[ScheduleCurve],
    strip: Any | None = None,
    strip_t: Sequence[int] | None = None,
    value_range: Sequence[float] = (0.0, 1.0),
    title: str | None = None,
) -> Figure:
    """Schedule curves, and optionally one image degraded at several timesteps below.

    With one distinct ``n_T`` the x axis is the timestep ``t``. When the curves' ``n_T``
    differ, a left column shows them against normalised time ``t / n_T`` (the shapes
    compare) and a right column against absolute ``t``. Curves of different quantities
    (``alpha_bar`` of noise, ``sigma`` of blur) get one row each.

    Parameters
    ----------
    curves
        One :class:`ScheduleCurve` per run.
    strip
        ``[k, C, H, W]`` in ``value_range``: one image at the timesteps ``strip_t``.
    strip_t
        The timestep of each strip image (0 is the clean image).
    value_range
        Data range of the strip's pixels.
    title
        Figure title.
    """
    if not curves:
        raise ValueError("no schedule curves to draw")
    names = list(dict.fromkeys(c.name for c in curves))
    normalise = len({c.n_T for c in curves}) > 1
    ncols = 2 if normalise else 1
    rows_h = [2.3] * len(names)
    strip_h = 0.0
    if strip is not None:
        strip_h = FULL_WIDTH * 0.9 / len(strip) + 0.3
        rows_h.append(strip_h)
    width = FULL_WIDTH if ncols == 2 or strip is not None else 4.6
    fig = blank_figure(width, sum(rows_h) + (0.3 if title else 0.1))
    grid = fig.add_gridspec(len(rows_h), ncols, height_ratios=rows_h)
    for row, name in enumerate(names):
        for col in range(ncols):
            ax = fig.add_subplot(grid[row, col])
            for i, c in enumerate(curves):
                if c.name != name:
                    continue
                x = np.asarray(c.t, dtype=np.float64)
                if normalise and col == 0:
                    x = x / c.n_T
                ax.plot(x, np.asarray(c.values), color=color(i), label=c.label)
            if normalise and col == 0:
                ax.set_xlabel("t / n_T")
            else:
                ax.set_xlabel("timestep t")
                ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
            ax.set_ylabel(_symbol(name))
            if len(curves) > 1:
                ax.legend()
    if strip is not None:
        ax = fig.add_subplot(grid[len(names), :])
        unit = to_unit(strip, value_range)
        show_image(ax, tile_images(unit, len(unit)))
        label_tiles(ax, unit.shape[-2:], [f"t={t}" for t in strip_t or []], None)
    if title:
        fig.suptitle(title)
    return fig


# ------------------------------------------------------------------------ metrics


@styled
def metric_figure(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    ylabel: str,
    title: str | None = None,
    log_y: bool | None = None,
    panels: Mapping[str, Sequence[str]] | None = None,
) -> Figure:
    """Metric curves against epoch, one line per run; optionally one panel per group.

    Parameters
    ----------
    series
        ``label -> (epochs, values)``.
    ylabel
        Name of the metric.
    title
        Axes title (figure title with several panels).
    log_y
        Log scale on y; ``None`` chooses it, per panel, when the positive values span
        more than one decade.
    panels
        ``panel title -> labels``: curves that must not share an axis (losses of
        different kinds) get one panel each, side by side; a run keeps its colour in
        every panel. ``None``: every curve on one axis.
    """
    colours = {label: color(i) for i, label in enumerate(series)}
    series = {k: v for k, v in series.items() if len(v[0])}
    if not series:
        raise ValueError("no metric values to draw")
    groups = {t: [lb for lb in labels if lb in series] for t, labels in (panels or {}).items()}
    groups = {t: labels for t, labels in groups.items() if labels}
    if not groups:
        groups = {"": list(series)}
    unplaced = [lb for lb in series if not any(lb in g for g in groups.values())]
    if unplaced:
        raise ValueError(f"curves in no panel: {', '.join(unplaced)}")
    n = len(groups)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    width = 4.6 if n == 1 else FULL_WIDTH
    fig, axes = new_figure(nrows, ncols, width=width, height=2.8 if n == 1 else 2.6 * nrows)
    axes = np.asarray(axes).reshape(-1)
    for ax, (panel, labels) in zip(axes, groups.items(), strict=False):
        for label in labels:
            x, y = series[label]
            marker = "o" if len(x) <= 30 else None
            ax.plot(np.asarray(x), np.asarray(y), color=colours[label], marker=marker,
                    label=label)  # fmt: skip
        values = np.concatenate([np.asarray(series[lb][1], dtype=np.float64) for lb in labels])
        log = log_y
        if log is None:
            finite = values[np.isfinite(values)]
            log = bool(len(finite)) and finite.min() > 0 and finite.max() / finite.min() > 10
        if log:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if panel or title:
            ax.set_title(panel or title)
        if len(labels) > 1 or n > 1:  # with panels, each says whose curves it holds
            ax.legend()
    for ax in axes[n:]:
        ax.set_visible(False)
    if title and "" not in groups:
        fig.suptitle(title)
    return fig
