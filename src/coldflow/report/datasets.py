"""Figures of a fluid data set: snapshots side by side and the wake probe.

:func:`report_dataset` is what ``coldflow report DATA.h5`` draws for a data set:

- ``vorticity_sim<N>.png`` and ``density_sim<N>.png``: reference, downsampled reference
  and source at several frames, one row each, on a shared colour scale;
- ``probe_sim<N>.png``: the cross-flow velocity at the probe over time for the three
  trajectories, with its power spectrum, the dominant frequency, the peak's sharpness
  (power fraction, width at half maximum) and (for the Kármán flow) the Strouhal number
  ``f D / U``, analysed over the developed flow (after the warm-up, or from ``start``);
  a window spanning fewer than three periods is refused, and the figure says why;
- ``mass_sim<N>.png`` (plume): the smoke mass ``integral density dA`` of the three
  trajectories over time against what the source released (rate x area x time).

Figures are PNGs written atomically with the Agg backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coldflow.data.store import KINDS, FieldData, SimulationInfo
from coldflow.physics.diagnostics import (
    MIN_PERIODS,
    dominant_frequency,
    frequency_refusal,
    power_spectrum,
    probe_series,
    scalar_mass,
    settling,
    strouhal_number,
    vorticity,
)
from coldflow.report.style import FULL_WIDTH, new_figure, save_figure, styled

__all__ = ["mass_analysis", "probe_analysis", "report_dataset"]

LABELS = {"reference": "reference", "downsampled": "downsampled reference", "source": "source"}


def _save(fig: Any, path: Path) -> Path:
    """Save in the house style (atomic PNG)."""
    return save_figure(fig, path)


def _orient(data: FieldData, field: np.ndarray) -> np.ndarray:
    """Array for ``imshow(origin="lower")``: the Kármán flow runs left to right."""
    return field.T if data.scene == "karman" else field


def _frames(data: FieldData, n: int) -> list[int]:
    first = data.source_start
    return sorted({int(round(v)) for v in np.linspace(first, data.frames - 1, n)})


@styled
def _snapshots(
    data: FieldData, sim: SimulationInfo, quantity: str, frames: list[int], out: Path
) -> Path:
    rows = []
    for kind in KINDS:
        if quantity == "vorticity":
            v = torch.from_numpy(data.read(sim, kind, "velocity", frames))
            rows.append(vorticity(v, data.spacing(kind)).numpy())
        else:
            rows.append(data.read(sim, kind, "density", frames))
    if quantity == "vorticity":
        vmax = float(np.percentile(np.abs(rows[0]), 99.5)) or 1.0
        kw: dict[str, Any] = {"cmap": "RdBu_r", "vmin": -vmax, "vmax": vmax}
    else:
        kw = {"cmap": "magma", "vmin": 0.0, "vmax": float(rows[0].max()) or 1.0}
    Ly, Lx = data.attrs["domain_size"]
    extent = [0, Ly, 0, Lx] if data.scene == "karman" else [0, Lx, 0, Ly]
    aspect = extent[1] / extent[3]
    fig, axes = new_figure(
        len(KINDS),
        len(frames),
        width=2.2 * aspect * len(frames),
        height=2.3 * len(KINDS),
    )
    axes = np.asarray(axes).reshape(len(KINDS), len(frames))  # fmt: skip
    for r, kind in enumerate(KINDS):
        H, W = data.resolution(kind)
        solid = data.obstacle(kind) >= 0.5
        overlay = np.ma.masked_where(~_orient(data, solid), np.ones(_orient(data, solid).shape))
        for c, t in enumerate(frames):
            ax = axes[r, c]
            im = ax.imshow(_orient(data, rows[r][c]), origin="lower", extent=extent, **kw)
            if solid.any():  # grey obstacle
                ax.imshow(overlay, origin="lower", extent=extent, cmap="Greys", vmin=0, vmax=2)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {t} (t = {t * data.dt:g})", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{LABELS[kind]}\n{H}x{W}", fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8, label=quantity)
    params = ", ".join(f"{k} = {v:g}" for k, v in sim.params.items())
    fig.suptitle(
        f"{data.attrs.get('name', data.scene)}: simulation {sim.index} ({sim.split}, {params})"
    )
    return _save(fig, out)


def _simulation(data: FieldData, sim: SimulationInfo | int) -> SimulationInfo:
    return (
        sim
        if isinstance(sim, SimulationInfo)
        else next(s for s in data.simulations() if s.index == sim)
    )


def probe_analysis(
    data: FieldData,
    sim: SimulationInfo | int,
    kind: str = "reference",
    start: int | None = None,
    min_periods: float = MIN_PERIODS,
) -> dict[str, Any]:
    """Dominant frequency of the probe's cross-flow velocity over the developed flow.

    Parameters
    ----------
    data, sim
        The data set and one of its simulations.
    kind
        ``"reference"``, ``"downsampled"`` or ``"source"``.
    start
        First frame analysed (default: the data set's warm-up). The source trajectory
        starts no earlier than ``source_start``: before it, it is a copy of the
        downsampled reference.
    min_periods
        Fewest periods of the peak frequency the window must span; with fewer the
        frequency (and the Strouhal number) is refused.

    Returns
    -------
    dict
        ``series`` (the probe signal from ``start`` on), ``start``, ``frequency`` (cycles
        per unit time; the raw peak even when refused), ``power_fraction`` (share of the
        signal's power within one bin of the peak), ``width`` (full width at half maximum
        of the peak, cycles per unit time) and ``relative_width`` (``width / frequency``),
        ``periods`` (periods in the window), ``refused`` (``None``, or why the frequency
        cannot be trusted), ``strouhal`` (``f D / U``; Kármán scenes only, ``None`` when
        refused), ``component``, ``settling`` (period and amplitude of the window's two
        halves and whether they agree: :func:`~coldflow.physics.diagnostics.settling`).
    """
    sim = _simulation(data, sim)
    component = "x" if data.scene == "karman" else "y"
    first = data.warmup if start is None else int(start)
    if kind == "source":
        first = max(first, data.source_start)
    if not 0 <= first < data.frames:
        raise ValueError(f"start {first} is outside the {data.frames} frames of {data.path}")
    v = torch.from_numpy(data.read(sim, kind, "velocity", slice(first, None)))
    series = probe_series(v, data.spacing(kind), tuple(data.attrs["probe"]), component).numpy()
    peak = dominant_frequency(series, data.dt)
    refused = frequency_refusal(peak, min_periods)
    strouhal = None
    if data.scene == "karman" and refused is None:
        desc = data.scene_description
        speed = sim.params.get("inflow_speed", desc["inflow_speed"])
        strouhal = strouhal_number(peak.frequency, 2 * desc["obstacle_radius"], speed)
    return {
        "series": series,
        "start": first,
        "settling": settling(series, data.dt),
        "frequency": peak.frequency,
        "power_fraction": peak.power_fraction,
        "width": peak.width,
        "relative_width": peak.width / peak.frequency if peak.frequency else float("nan"),
        "periods": peak.periods,
        "refused": refused,
        "strouhal": strouhal,
        "component": component,
    }


@styled
def _probe_figure(data: FieldData, sim: SimulationInfo, out: Path, start: int | None) -> Path:
    fig, axes = new_figure(1, 2, width=FULL_WIDTH * 1.5, height=3.6)
    ax_t, ax_f = axes[0]
    refusals = []
    for kind, style in zip(KINDS, ("-", "--", ":"), strict=True):
        a = probe_analysis(data, sim, kind, start)
        t = (a["start"] + np.arange(len(a["series"]))) * data.dt
        label = LABELS[kind]
        ax_t.plot(t, a["series"], style, lw=1.2, label=label)
        freqs, power = power_spectrum(a["series"], data.dt)
        if a["refused"] is None:
            extra = f", St = {a['strouhal']:.3f}" if a["strouhal"] is not None else ""
            st = a["settling"]
            text = (
                f"{label}: f = {a['frequency']:.4f}{extra}, {a['periods']:.1f} periods, "
                f"peak {100 * a['power_fraction']:.0f} % of power, "
                f"FWHM {100 * a['relative_width']:.0f} % of f; halves: period "
                f"{st['period'][0]:.0f}/{st['period'][1]:.0f}, amplitude "
                f"{st['amplitude'][0]:.2f}/{st['amplitude'][1]:.2f}"
                + {True: "", False: " (not settled)", None: " (halves too short)"}[st["settled"]]
            )
        else:
            text = f"{label}: no frequency (refused)"
            refusals.append(f"{label}: {a['refused']}")
        ax_f.semilogy(freqs[1:], power[1:] + 1e-12, style, lw=1.2, label=text)
    y, x = data.attrs["probe"]
    ax_t.set_xlabel("time")
    ax_t.set_ylabel(f"v_{a['component']} at (y={y:g}, x={x:g})")
    ax_t.legend(fontsize=8)
    ax_f.set_xlabel("frequency (1 / time unit)")
    ax_f.set_ylabel("power (normalised)")
    ax_f.set_xlim(0, min(freqs[-1], 20 * max(a["frequency"], freqs[1])))
    ax_f.legend(fontsize=7)
    params = ", ".join(f"{k} = {v:g}" for k, v in sim.params.items())
    fig.suptitle(f"probe, simulation {sim.index} ({sim.split}, {params})")
    if refusals:
        fig.text(0.01, -0.02, "\n".join(refusals), fontsize=8, va="top", color="firebrick")
    return _save(fig, out)


def _source_inflow(data: FieldData) -> tuple[float, float] | None:
    """``(rate, area)`` of the plume's smoke source, ``None`` for other scenes."""
    desc = data.scene_description
    if "source_box" not in desc:
        return None
    (y0, y1), (x0, x1) = desc["source_box"]
    Ly, Lx = data.attrs["domain_size"]
    area = max(min(y1, Ly) - max(y0, 0.0), 0.0) * max(min(x1, Lx) - max(x0, 0.0), 0.0)
    return float(desc["source_rate"]), area


def mass_analysis(data: FieldData, sim: SimulationInfo | int) -> dict[str, Any]:
    """Smoke mass of a plume simulation against what its source released.

    Returns
    -------
    dict
        ``time`` ``(T,)``; ``mass`` per trajectory kind (``integral density dA`` of every
        frame); ``expected`` (``source_rate x source area x time``: the source adds its
        smoke after each step's advection and the closed box lets none out, so a
        conservative scheme keeps ``mass == expected``); ``loss`` per kind, the relative
        shortfall ``1 - mass / expected`` at the last frame; ``advection`` (the scheme).

    Raises
    ------
    ValueError
        For a data set without density or without a smoke source (the Kármán marker
        leaves the open domain, so its mass says nothing about the scheme).
    """
    inflow = _source_inflow(data)
    if inflow is None or not data.has("density"):
        raise ValueError(f"{data.path}: the mass diagnostic needs a plume data set")
    sim = _simulation(data, sim)
    time = np.arange(data.frames) * data.dt
    rate, area = inflow
    expected = rate * area * time
    mass = {k: scalar_mass(data.read(sim, k, "density"), data.spacing(k)) for k in KINDS}
    last = expected[-1] if expected[-1] > 0 else float("nan")
    return {
        "time": time,
        "mass": mass,
        "expected": expected,
        "loss": {k: float(1 - m[-1] / last) for k, m in mass.items()},
        "advection": data.scene_description.get("advection", "semi_lagrangian"),
    }


@styled
def _mass_figure(data: FieldData, sim: SimulationInfo, out: Path) -> Path:
    a = mass_analysis(data, sim)
    fig, axes = new_figure(1, 2, width=FULL_WIDTH * 1.5, height=3.4)
    ax_m, ax_r = axes[0]
    t = a["time"]
    ax_m.plot(t, a["expected"], color="k", lw=1, label="released by the source (rate x area x t)")
    ratio_t = t[1:]
    for kind, style in zip(KINDS, ("-", "--", ":"), strict=True):
        m = a["mass"][kind]
        label = f"{LABELS[kind]}: {100 * a['loss'][kind]:.1f} % lost by t = {t[-1]:g}"
        ax_m.plot(t, m, style, lw=1.2, label=label)
        ax_r.plot(ratio_t, 100 * (m[1:] / a["expected"][1:] - 1), style, lw=1.2, label=LABELS[kind])
    ax_m.set_xlabel("time")
    ax_m.set_ylabel("smoke mass, integral density dA")
    ax_m.legend(fontsize=8)
    ax_r.axhline(0, color="k", lw=0.8)
    ax_r.set_xlabel("time")
    ax_r.set_ylabel("mass / released - 1 (%)")
    ax_r.legend(fontsize=8)
    params = ", ".join(f"{k} = {v:g}" for k, v in sim.params.items())
    fig.suptitle(f"smoke mass, simulation {sim.index} ({sim.split}, {params})")
    scheme = a["advection"]
    if scheme == "finite_volume":
        note = "advection: finite_volume (conservative fluxes): mass should match the release."
    else:
        note = (
            f"advection: {scheme} (PhiFlow advect.{scheme}) is not mass-conserving: its "
            "interpolation weights do not sum to one where the flow converges into the "
            "rising plume, so smoke is lost (semi-Lagrangian) or gained (MacCormack); "
            "no smoke leaves the closed box. scene.advection: finite_volume conserves it."
        )
    fig.text(0.01, -0.02, note, fontsize=8, va="top", wrap=True)
    return _save(fig, out)


def report_dataset(
    h5_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    sims: list[int] | None = None,
    n_frames: int = 4,
    probe_start: int | None = None,
) -> list[Path]:
    """Draw the figures of a fluid data set.

    Parameters
    ----------
    h5_path
        Data set written by ``coldflow simulate``.
    out_dir
        Directory for the PNGs (created if needed).
    sims
        Simulation indices to draw (default: the first simulation of each split).
    n_frames
        Snapshot columns, evenly spaced from ``source_start`` to the last frame.
    probe_start
        First frame of the probe's spectral analysis (default: the warm-up).

    Returns
    -------
    list[Path]
        The written figures.
    """
    out_dir = Path(out_dir)
    written: list[Path] = []
    with FieldData(h5_path) as data:
        all_sims = data.simulations()
        if sims is None:
            chosen = [
                next(s for s in all_sims if s.split == sp)
                for sp in ("train", "test")
                if any(s.split == sp for s in all_sims)
            ]
        else:
            by_index = {s.index: s for s in all_sims}
            missing = [i for i in sims if i not in by_index]
            if missing:
                raise ValueError(f"{h5_path}: no simulations {missing}; it has {sorted(by_index)}")
            chosen = [by_index[i] for i in sims]
        frames = _frames(data, n_frames)
        for sim in chosen:
            written.append(
                _snapshots(
                    data, sim, "vorticity", frames, out_dir / f"vorticity_sim{sim.index}.png"
                )
            )
            if data.has("density"):
                written.append(
                    _snapshots(
                        data, sim, "density", frames, out_dir / f"density_sim{sim.index}.png"
                    )
                )
            written.append(
                _probe_figure(data, sim, out_dir / f"probe_sim{sim.index}.png", probe_start)
            )
            if _source_inflow(data) is not None and data.has("density"):
                written.append(_mass_figure(data, sim, out_dir / f"mass_sim{sim.index}.png"))
    return written
