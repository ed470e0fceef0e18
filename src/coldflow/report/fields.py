"""Figures of a fluid data set: snapshots side by side and the wake probe.

:func:`report_dataset` is what ``coldflow report DATA.h5`` draws for a data set:

- ``vorticity_sim<N>.png`` and ``density_sim<N>.png``: reference, downsampled reference
  and source at several frames, one row each, on a shared colour scale;
- ``probe_sim<N>.png``: the cross-flow velocity at the probe over time for the three
  trajectories, with its power spectrum, the dominant frequency and (for the Kármán
  flow) the Strouhal number ``f D / U``.

Figures are PNGs written atomically with the Agg backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from coldflow.data.fields import KINDS, FieldData, SimulationInfo  # noqa: E402
from coldflow.io import atomic_path  # noqa: E402
from coldflow.physics.diagnostics import (  # noqa: E402
    dominant_frequency,
    power_spectrum,
    probe_series,
    strouhal_number,
    vorticity,
)

__all__ = ["probe_analysis", "report_dataset"]

LABELS = {"reference": "reference", "downsampled": "downsampled reference", "source": "source"}


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _orient(data: FieldData, field: np.ndarray) -> np.ndarray:
    """Array for ``imshow(origin="lower")``: the Kármán flow runs left to right."""
    return field.T if data.scene == "karman" else field


def _frames(data: FieldData, n: int) -> list[int]:
    first = data.source_start
    return sorted({int(round(v)) for v in np.linspace(first, data.frames - 1, n)})


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
    fig, axes = plt.subplots(
        len(KINDS),
        len(frames),
        figsize=(2.2 * aspect * len(frames), 2.3 * len(KINDS)),
        squeeze=False,
    )
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


def probe_analysis(data: FieldData, sim: SimulationInfo | int, kind: str = "reference") -> dict:
    """Dominant frequency of the probe's cross-flow velocity after ``source_start``.

    Returns
    -------
    dict
        ``series`` (the probe signal from ``source_start`` on), ``frequency`` (cycles
        per unit time), ``power_fraction`` (share of the signal's power in the peak),
        ``strouhal`` (``f D / U``; Kármán scenes only, else ``None``), ``component``.
    """
    if isinstance(sim, int):
        sim = next(s for s in data.simulations() if s.index == sim)
    component = "x" if data.scene == "karman" else "y"
    start = data.source_start
    v = torch.from_numpy(data.read(sim, kind, "velocity", slice(start, None)))
    series = probe_series(v, data.spacing(kind), tuple(data.attrs["probe"]), component).numpy()
    peak = dominant_frequency(series, data.dt)
    strouhal = None
    if data.scene == "karman":
        desc = data.scene_description
        strouhal = strouhal_number(
            peak.frequency, 2 * desc["obstacle_radius"], desc["inflow_speed"]
        )
    return {
        "series": series,
        "frequency": peak.frequency,
        "power_fraction": peak.power_fraction,
        "strouhal": strouhal,
        "component": component,
    }


def _probe_figure(data: FieldData, sim: SimulationInfo, out: Path) -> Path:
    fig, (ax_t, ax_f) = plt.subplots(1, 2, figsize=(11, 3.4))
    start = data.source_start
    for kind, style in zip(KINDS, ("-", "--", ":"), strict=True):
        a = probe_analysis(data, sim, kind)
        t = (start + np.arange(len(a["series"]))) * data.dt
        label = LABELS[kind]
        ax_t.plot(t, a["series"], style, lw=1.2, label=label)
        freqs, power = power_spectrum(a["series"], data.dt)
        extra = f", St = {a['strouhal']:.3f}" if a["strouhal"] is not None else ""
        ax_f.semilogy(
            freqs[1:],
            power[1:] + 1e-12,
            style,
            lw=1.2,
            label=f"{label}: f = {a['frequency']:.4f}{extra}",
        )
    y, x = data.attrs["probe"]
    ax_t.set_xlabel("time")
    ax_t.set_ylabel(f"v_{a['component']} at (y={y:g}, x={x:g})")
    ax_t.legend(fontsize=8)
    ax_f.set_xlabel("frequency (1 / time unit)")
    ax_f.set_ylabel("power (normalised)")
    ax_f.set_xlim(0, min(freqs[-1], 20 * max(a["frequency"], freqs[1])))
    ax_f.legend(fontsize=8)
    params = ", ".join(f"{k} = {v:g}" for k, v in sim.params.items())
    fig.suptitle(f"probe, simulation {sim.index} ({sim.split}, {params})")
    return _save(fig, out)


def report_dataset(
    h5_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    sims: list[int] | None = None,
    n_frames: int = 4,
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
            written.append(_probe_figure(data, sim, out_dir / f"probe_sim{sim.index}.png"))
    return written
