"""Figures of diffusion schedules: the main curve of each run's degradation, and one
MNIST validation digit degraded at fractions of ``n_T`` below it."""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coldflow import hub
from coldflow.data import mnist_dataset
from coldflow.degradations import build_degradation
from coldflow.report.curves import ScheduleCurve, schedule_figure
from coldflow.report.html import Figure, save
from coldflow.report.style import save_figure
from coldflow.runs import RunDir
from coldflow.tasks.diffusion.config import DiffusionRunConfig

__all__ = [
    "STRIP_FRACTIONS",
    "plot_schedules",
    "schedule_curve",
    "schedule_figures",
    "schedules_caption",
    "strip_timesteps",
]

STRIP_FRACTIONS = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
"""Fractions of ``n_T`` at which the schedule figure shows a degraded digit."""

_DIGIT_INDEX = 0  # the first validation digit (held out of the training file), shown degraded


def strip_timesteps(n_T: int, fractions: Sequence[float] = STRIP_FRACTIONS) -> list[int]:
    """Timesteps at ``fractions`` of ``n_T``: 0 stays 0 (clean), others lie in 1..n_T.

    >>> strip_timesteps(1000)
    [0, 100, 200, 400, 600, 800, 1000]
    >>> strip_timesteps(3)
    [0, 1, 2, 3]
    """
    ts = [0 if f == 0 else min(n_T, max(1, round(f * n_T))) for f in fractions]
    return list(dict.fromkeys(ts))


def _degraded_strip(degradation: Any, x0: torch.Tensor, seed: int) -> tuple[torch.Tensor, list]:
    """``x0`` [C, H, W] at the strip timesteps; a noise argument is drawn from ``seed``."""
    ts = strip_timesteps(degradation.n_T)
    steps = [t for t in ts if t > 0]
    x = x0.unsqueeze(0).expand(len(steps), *x0.shape).contiguous()
    t = torch.tensor(steps, dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    if "noise" in inspect.signature(degradation.degrade).parameters:
        noise = torch.randn(x0.shape, generator=generator).expand_as(x).contiguous()
        degraded = degradation.degrade(x, t, noise=noise)
    else:  # a stochastic degradation still draws the same numbers every time
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            degraded = degradation.degrade(x, t)
    images = torch.cat([x0.unsqueeze(0), degraded.detach().cpu().float()]) if 0 in ts else degraded
    return images, ts


def _example_digit(value_range: Sequence[float]) -> torch.Tensor | None:
    """MNIST validation image ``_DIGIT_INDEX`` [1, 28, 28], or None when the files are not
    local (a run's figures never open the test digits: only evaluation does).

    The report never downloads: it uses the files only if :func:`hub.locate` finds them.
    """
    if hub.locate("mnist-train-images") is None or hub.locate("mnist-train-labels") is None:
        return None
    try:
        dataset = mnist_dataset("val", tuple(value_range), subset=_DIGIT_INDEX + 1)
    except (hub.HubError, ValueError, OSError) as e:
        warnings.warn(f"schedule figure without the digit strip: {e}", stacklevel=3)
        return None
    return dataset[_DIGIT_INDEX][0]


def schedule_curve(label: str, config: Any) -> tuple[ScheduleCurve, Any]:
    """The main (first) schedule curve of a run config or degradation config, and the
    degradation it was read from."""
    degradation = build_degradation(getattr(config, "degradation", config))
    name, (t, values) = next(iter(degradation.schedule_curves().items()))
    curve = ScheduleCurve(
        label=label,
        name=name,
        t=np.asarray(t, dtype=np.float64),
        values=np.asarray(values, dtype=np.float64),
        n_T=int(degradation.n_T),
    )
    return curve, degradation


def _pairs(labelled: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return list(labelled.items()) if isinstance(labelled, Mapping) else list(labelled)


def plot_schedules(
    labelled_configs: Mapping[str, Any] | Iterable[tuple[str, Any]], path: str | os.PathLike
) -> Path:
    """Draw the main schedule curve of several configs together and save the PNG.

    When all configs have the same ``n_T`` the curves share one axis of timestep ``t``.
    When ``n_T`` differ, the left panel shows them against ``t / n_T`` (so the shapes
    compare) and the right panel against absolute ``t``. Degradations whose main
    curves are different quantities (``alpha_bar``, ``sigma``) get one row each.

    Parameters
    ----------
    labelled_configs
        ``{label: config}`` or ``[(label, config), ...]``; a config is a
        :class:`~coldflow.config.DiffusionRunConfig` or a degradation config section.
    path
        Destination PNG.

    Returns
    -------
    Path
        ``path``.
    """
    curves = [schedule_curve(label, cfg)[0] for label, cfg in _pairs(labelled_configs)]
    return save_figure(schedule_figure(curves), path)


def schedules_caption(curves: Sequence[ScheduleCurve]) -> str:
    """The caption of several runs' schedules drawn together."""
    names = ", ".join(dict.fromkeys(c.name for c in curves))
    n_Ts = sorted({c.n_T for c in curves})
    if len(n_Ts) > 1:
        return (
            f"Main schedule curves ({names}) of every run: against normalised time t/n_T "
            f"(left, the shapes compare) and absolute timestep t (right), since n_T differ "
            f"({', '.join(map(str, n_Ts))})."
        )
    return f"Main schedule curves ({names}) of every run against timestep t (n_T = {n_Ts[0]})."


def schedule_figures(
    run: RunDir, config: DiffusionRunConfig | None, label: str, notes: list[str], out: list[Figure]
) -> None:
    """The schedule of one run, above a validation digit degraded along it (when MNIST is here),
    saved as ``figures/schedule.png`` and appended to ``out``."""
    if config is None:
        return
    value_range = tuple(config.data.range)
    curve, degradation = schedule_curve(label, config)
    digit = _example_digit(value_range)
    caption = f"Schedule {curve.name} against timestep t: {degradation.describe()}."
    if digit is None:
        make = lambda: schedule_figure([curve], title=label)  # noqa: E731
    else:
        strip, ts = _degraded_strip(degradation, digit, config.seed)
        caption += (
            f" Below: MNIST validation digit #{_DIGIT_INDEX} degraded at t = "
            f"{', '.join(map(str, ts))} (t=0 is the clean image; fixed seed; "
            "pixels clipped to the data range)."
        )

        def make() -> Any:
            return schedule_figure([curve], strip, ts, value_range, title=label)

    save(out, notes, run.figures_dir / "schedule.png", caption, make)
