"""Kinetic-energy spectra of several fields in one log-log figure, as a pure function.

The spectra come from :func:`coldflow.metrics.spectrum.energy_spectrum` (averaged over
frames or simulations by the caller); this module only draws them in the house style.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from coldflow.report.style import color, new_figure, styled

__all__ = ["spectrum_figure"]

REFERENCE_STYLE = {"color": "#000000", "linewidth": 2.0, "linestyle": "-"}
"""How the reference's line stands out from the others (black, thicker)."""


@styled
def spectrum_figure(
    spectra: Mapping[str, tuple[Any, Any]],
    reference: str | None = None,
    title: str | None = None,
    nyquist: float | None = None,
) -> Figure:
    """Energy spectra ``E(k)`` on log-log axes, one line each.

    Parameters
    ----------
    spectra
        ``label -> (k, E)``, e.g. the reference, the baselines and the models, in the order
        of the legend. The zero wavenumber (the mean flow) and empty shells are left out
        (a log axis cannot show them).
    reference
        The label drawn as the reference (black, thicker); default: none stands out.
    title
        Axes title.
    nyquist
        A wavenumber to mark with a dotted vertical line (the grid's Nyquist).
    """
    if not spectra:
        raise ValueError("no spectra to draw")
    if reference is not None and reference not in spectra:
        raise ValueError(f"reference {reference!r} is not one of the spectra {list(spectra)}")
    fig, ax = new_figure(width=4.6, height=3.0)
    others = 0
    for label, (k, energy) in spectra.items():
        k, energy = np.asarray(k, dtype=np.float64), np.asarray(energy, dtype=np.float64)
        if k.shape != energy.shape or k.ndim != 1:
            raise ValueError(
                f"spectrum {label!r} needs k and E of one 1-D shape, got {k.shape}, {energy.shape}"
            )
        shown = (k > 0) & (energy > 0)
        if label == reference:
            style = dict(REFERENCE_STYLE)
        else:
            style, others = {"color": color(others)}, others + 1
        ax.loglog(k[shown], energy[shown], label=label, **style)
    if nyquist is not None:
        ax.axvline(nyquist, color="#888888", linestyle=":", linewidth=1.0)
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log axis collide
    ax.set_xlabel("wavenumber k")
    ax.set_ylabel("energy per shell E(k)")
    if title:
        ax.set_title(title)
    if len(spectra) > 1:
        ax.legend()
    return fig
