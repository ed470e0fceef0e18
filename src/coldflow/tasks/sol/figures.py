"""Figures and tables of Solver-in-the-Loop runs: error against step, snapshots, a table.

Reads what the SOL task's evaluation left in each run directory (``evaluation.json`` and
``samples/rollout.safetensors``); draws nothing it has to compute.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coldflow.errors import UserError
from coldflow.metrics.spec import perfect_score
from coldflow.physics.diagnostics import vorticity
from coldflow.report.html import Comparison, Figure, markdown_table, save
from coldflow.report.style import DIVERGING_CMAP, FULL_WIDTH, color, new_figure, style_context
from coldflow.runs import load_tensors
from coldflow.tasks.fluid import outside_training_range

__all__ = [
    "animate_rollout",
    "comparison",
    "load_evaluations",
    "plot_error_vs_step",
    "run_figures",
    "sol_table",
]

ANIMATED = ("reference", "source", "corrected")
"""Rollout entries :func:`animate_rollout` draws, in this order, where present."""

_ROWS = {
    "source": "source (no correction)",
    "nearest_training": "nearest training trajectory",
    "rescaled_training": "rescaled nearest training trajectory (U / U')",
}
"""The baselines' rows in :func:`sol_table`, where the evaluation has them."""

_COPIES = ("nearest_training", "rescaled_training")
"""The baselines that copy training data (``evaluation.training_baselines``)."""


def load_evaluations(runs: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """``evaluation.json`` of each run (run ``coldflow evaluate`` first)."""
    out = []
    for run in runs:
        path = Path(run) / "evaluation.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: missing; run `coldflow evaluate {run} --data <test.h5>` first"
            )
        out.append(json.loads(path.read_text()))
    return out


def _check_comparable(evaluations: Sequence[dict[str, Any]], labels: Sequence[str]) -> None:
    """Runs in one table must have been evaluated on the same data, frames and steps."""
    keys = ("data", "split", "start", "steps")
    first = {k: evaluations[0].get(k) for k in keys}
    for ev, label in zip(evaluations[1:], labels[1:], strict=True):
        differ = [f"{k} {ev.get(k)!r} vs {first[k]!r}" for k in keys if ev.get(k) != first[k]]
        if differ:
            raise UserError(
                f"{label} was evaluated differently from {labels[0]} ({'; '.join(differ)}); "
                "evaluate every run with the same --data and --steps before comparing"
            )


def sol_table(evaluations: Sequence[dict[str, Any]], labels: Sequence[str]) -> str:
    """Markdown table: source, the training baselines and each corrected run.

    Means of every metric over steps and simulations, the change of relative L1 against
    the source, and each run's own time per step and simulation (the median of its
    interleaved timing rounds, lowest-highest round in brackets, where they were recorded).
    """
    _check_comparable(evaluations, labels)
    src = evaluations[0]
    metrics = list(src["metrics"])
    head = ["model", *metrics, "rel_l1 vs source", "s/step"]
    rows: list[list[Any]] = []
    for kind, name in _ROWS.items():
        if kind in src["mean"]:
            rows.append([name, *(src["mean"][kind][m] for m in metrics), "", _seconds(src, kind)])
    for ev, label in zip(evaluations, labels, strict=True):
        gain = ev["improvement"].get("rel_l1")
        rows.append(
            [f"SOL {label} ({ev['loss']}, m={ev['m']})"]
            + [ev["mean"]["corrected"][m] for m in metrics]
            + ["" if gain is None else f"{-100 * gain:+.1f} %", _seconds(ev, "corrected")]
        )
    rows.append(
        [
            "reference (high-res solver)",
            *[perfect_score(m) for m in metrics],
            "",
            _seconds(src, "reference_high"),
        ]
    )
    timing = src.get("timing")
    how = (
        f"s/step per simulation, median of {timing['repeats']} interleaved rounds of "
        f"{timing['steps']} steps of the three solvers"
        if timing
        else "s/step per simulation, one timed rollout each"
    )
    intro = (
        f"Rollouts of {src['steps']} steps from frame {src['start']} of "
        f"{len(src['simulations'])} {src['split']} simulations of {src['data']} (means over "
        f"steps and simulations; {how})."
    )
    verdicts = [
        f"{lb}: {ev['verdict']}"
        for ev, lb in zip(evaluations, labels, strict=True)
        if ev.get("verdict")
    ]
    out = "\n".join([intro, "", markdown_table(head, rows), *verdicts]) + "\n"
    if src.get("per_simulation") and src.get("simulations"):
        out += "\n" + per_simulation_table(evaluations, labels)
    return out


def _seconds(ev: dict[str, Any], kind: str) -> str | float:
    """Seconds per step and simulation of one solver of an evaluation (``""``: not timed),
    with the spread of its timing rounds where it was recorded."""
    seconds = ev.get("seconds_per_step", {}).get(kind)
    if seconds is None:
        return ""
    batch = ev.get("batch") or len(ev.get("simulations") or [None])
    span = ev.get("seconds_per_step_range", {}).get(kind)
    if not span:
        return seconds / batch
    return f"{seconds / batch:.4g} ({span[0] / batch:.4g}-{span[1] / batch:.4g})"


def per_simulation_table(
    evaluations: Sequence[dict[str, Any]], labels: Sequence[str], metric: str = "rel_l1"
) -> str:
    """Markdown table of ``metric`` per test simulation, and what it supports in words.

    Rows are the test simulations with their parameters, whether they lie inside the
    training range, and the training flows the baselines copy; columns the source, the
    nearest training trajectory, the rescaled one (where the evaluation has it) and each
    run. A run generalises to a simulation where it beats every baseline.
    """
    src = evaluations[0]
    if metric not in src["per_simulation"]["source"]:
        metric = next(iter(src["per_simulation"]["source"]))
    ranges = src.get("training_range", {})
    copies = [k for k in _COPIES if k in src["per_simulation"]]
    nearest = src["per_simulation"].get("nearest_training")
    rescaled = "rescaled_training" in copies
    head = ["simulation", "training range", "nearest training"]
    head += ["rescaled training"] if rescaled else []
    head += ["source"]
    head += ["nearest"] if nearest else []
    head += ["rescaled"] if rescaled else []
    head += [f"SOL {lb}" for lb in labels]
    rows = []
    counts = {lb: {"inside": [0, 0], "outside": [0, 0], "unknown": [0, 0]} for lb in labels}
    for j, sim in enumerate(src["simulations"]):
        params = ", ".join(f"{k} {v:g}" for k, v in sim.items() if k not in ("index", "seed"))
        out = outside_training_range(sim, ranges)
        where = "outside" if out else "inside" if ranges else "unknown"
        row = [f"{sim['index']} ({params})", "; ".join(out) or where]
        row += [src["nearest_training"][j] if src.get("nearest_training") else ""]
        row += [src["rescaled_training"][j]] if rescaled else []
        row += [src["per_simulation"]["source"][metric][j]]
        row += [src["per_simulation"][k][metric][j] for k in copies]
        for ev, lb in zip(evaluations, labels, strict=True):
            value = ev["per_simulation"]["corrected"][metric][j]
            row.append(value)
            best = min(
                ev["per_simulation"]["source"][metric][j],
                *(src["per_simulation"][k][metric][j] for k in copies),
            )
            counts[lb][where][0] += value < best
            counts[lb][where][1] += 1
        rows.append(row)
    words = []
    for lb in labels:
        parts = [
            f"{won} of {n} "
            + (f"{where} the training range" if where != "unknown" else "(range not recorded)")
            for where, (won, n) in counts[lb].items()
            if n
        ]
        beaten = (
            "the source and both nearest training trajectories (as stored and rescaled)"
            if rescaled
            else "the source and the nearest training trajectory"
        )
        words.append(f"{lb}: beats {beaten} in {metric} on " + " and ".join(parts) + ".")
    title = f"{metric} per test simulation (mean over the rollout's steps):"
    return "\n".join([title, "", markdown_table(head, rows).rstrip("\n"), "", *words]) + "\n"


def plot_error_vs_step(evaluations: Sequence[dict[str, Any]], labels: Sequence[str]):
    """One panel per metric: source, the training baselines and every corrected run per
    step."""
    metrics = list(evaluations[0]["metrics"])
    with style_context():
        fig, axes = new_figure(1, len(metrics), width=FULL_WIDTH, height=2.4)
        axes = np.asarray(axes).reshape(-1)
        for ax, metric in zip(axes, metrics, strict=True):
            per_step = evaluations[0]["per_step"]
            steps = np.arange(1, len(per_step["source"][metric]) + 1)
            ax.plot(steps, per_step["source"][metric], color="k", ls="--", label="source")
            if "nearest_training" in per_step:
                ax.plot(steps, per_step["nearest_training"][metric], color="0.5", ls=":",
                        label="nearest training")  # fmt: skip
            if "rescaled_training" in per_step:
                ax.plot(steps, per_step["rescaled_training"][metric], color="0.5", ls="-.",
                        label="rescaled training")  # fmt: skip
            for i, (ev, label) in enumerate(zip(evaluations, labels, strict=True)):
                ax.plot(steps, ev["per_step"]["corrected"][metric], color=color(i), label=label)
            ax.set_xlabel("step")
            ax.set_title(metric)
        axes[0].legend(fontsize="small")
    return fig


def plot_snapshots(
    rollouts: Sequence[dict[str, torch.Tensor]],
    labels: Sequence[str],
    transpose: bool,
    steps: Sequence[int] | None = None,
):
    """Vorticity of reference, source and each corrected rollout (first test simulation)
    at a few steps, and below each its error against the reference, with colour bars."""
    n = rollouts[0]["reference"].shape[0] - 1
    steps = list(steps or sorted({max(1, n // 4), max(1, n // 2), n}))
    ref = rollouts[0]["reference"]
    columns = [("reference", ref), ("source", rollouts[0]["source"])]
    columns += [(lb, r["corrected"]) for lb, r in zip(labels, rollouts, strict=True)]

    def curl(v: torch.Tensor, t: int) -> np.ndarray:
        w = vorticity(v[t : t + 1].float(), (1.0, 1.0))[0].numpy()
        return w.T if transpose else w

    with style_context():
        rows = 2 * len(steps)
        fig, axes = new_figure(rows, len(columns), width=FULL_WIDTH, height=1.5 * rows)
        axes = np.asarray(axes).reshape(rows, len(columns))
        for r, t in enumerate(steps):
            truth = curl(ref, t)
            lim = float(np.abs(truth).max()) or 1.0
            for c, (name, v) in enumerate(columns):
                w = curl(v, t)
                top, bottom = axes[2 * r, c], axes[2 * r + 1, c]
                im = top.imshow(w, origin="lower", cmap=DIVERGING_CMAP, vmin=-lim, vmax=lim)
                err = bottom.imshow(w - truth, origin="lower", cmap=DIVERGING_CMAP,
                                    vmin=-lim, vmax=lim)  # fmt: skip
                if r == 0:
                    top.set_title(name, fontsize="small")
                for ax in (top, bottom):
                    ax.set_xticks([])
                    ax.set_yticks([])
            fig.colorbar(im, ax=axes[2 * r, :].tolist(), shrink=0.8, label="vorticity")
            fig.colorbar(err, ax=axes[2 * r + 1, :].tolist(), shrink=0.8, label="error")
            axes[2 * r, 0].set_ylabel(f"step {t}", fontsize="small")
            axes[2 * r + 1, 0].set_ylabel(f"error, step {t}", fontsize="small")
    return fig


def animate_rollout(
    rollout: dict[str, torch.Tensor],
    labels: Sequence[str],
    path: str | os.PathLike,
    transpose: bool,
    *,
    fps: int = 10,
    stride: int = 1,
) -> Path:
    """Write a GIF of the vorticity of a rollout: reference, source and corrected side by side.

    Parameters
    ----------
    rollout
        Velocities ``[T, 2, H + 1, W + 1]`` (padded staggered layout) under the keys
        ``reference``, ``source`` and ``corrected`` (those present are drawn, in this
        order, e.g. ``samples/rollout.safetensors`` of an evaluated run).
    labels
        One panel title per drawn entry.
    path
        The ``.gif`` to write (atomically; the parent directory is created).
    transpose
        Draw the transposed field (the Kármán flow runs along y: left to right).
    fps, stride
        Frames per second of the GIF, and every ``stride``-th rollout step drawn.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        For a rollout with none of the entries, labels of another length, or entries of
        different lengths.
    UserError
        When Pillow (matplotlib's GIF writer) is not installed.
    """
    from matplotlib import animation

    from coldflow.io import atomic_path

    if not animation.PillowWriter.isAvailable():
        raise UserError("writing a GIF needs Pillow: pip install pillow")
    keys = [k for k in ANIMATED if k in rollout]
    if not keys:
        raise ValueError(f"the rollout has none of {ANIMATED}; it has {sorted(rollout)}")
    if len(labels) != len(keys):
        raise ValueError(f"{len(labels)} labels for {len(keys)} panels ({', '.join(keys)})")
    lengths = {k: int(rollout[k].shape[0]) for k in keys}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"rollout entries differ in length: {lengths}")
    steps = list(range(0, lengths[keys[0]], max(1, int(stride))))
    fields = {}
    for k in keys:
        w = vorticity(rollout[k][steps].float(), (1.0, 1.0)).numpy()
        fields[k] = np.swapaxes(w, -1, -2) if transpose else w
    lim = float(np.percentile(np.abs(fields[keys[0]]), 99.5)) or 1.0
    with style_context():
        fig, axes = new_figure(1, len(keys), width=FULL_WIDTH, height=2.6)
        axes = np.asarray(axes).reshape(-1)
        images = []
        for ax, k, label in zip(axes, keys, labels, strict=True):
            images.append(
                ax.imshow(fields[k][0], origin="lower", cmap=DIVERGING_CMAP, vmin=-lim, vmax=lim)
            )
            ax.set_title(label, fontsize="small")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(images[-1], ax=axes.tolist(), shrink=0.8, label="vorticity")
        title = fig.suptitle("step 0", fontsize="small")

        def draw(i: int) -> list:
            for im, k in zip(images, keys, strict=True):
                im.set_data(fields[k][i])
            title.set_text(f"step {steps[i]}")
            return [*images, title]

        anim = animation.FuncAnimation(fig, draw, frames=len(steps), blit=False)
        with atomic_path(path) as tmp:
            anim.save(tmp, writer=animation.PillowWriter(fps=fps))
    return Path(path)


def _rollout(run: Path) -> dict[str, torch.Tensor] | None:
    path = Path(run) / "samples" / "rollout.safetensors"
    return load_tensors(path) if path.is_file() else None


def _transpose(evaluation: dict[str, Any]) -> bool:
    """The Kármán flow runs along y: draw it left to right, like the data-set figures."""
    return evaluation.get("scene") == "karman"


def run_figures(run: Path, notes: list[str]) -> list[Figure]:
    """Error against step and snapshots of one evaluated run (nothing before evaluation)."""
    path = Path(run) / "evaluation.json"
    if not path.is_file():
        notes.append("not evaluated yet: run `coldflow evaluate` for rollout figures")
        return []
    ev = json.loads(path.read_text())
    figures: list[Figure] = []
    figs = Path(run) / "figures"
    caption = (
        f"Error of the rollouts against the downsampled reference per step, mean over "
        f"{len(ev['simulations'])} {ev['split']} simulations from frame {ev['start']}."
    )
    save(figures, notes, figs / "error_vs_step.png", caption,
         lambda: plot_error_vs_step([ev], [ev["name"]]))  # fmt: skip
    gif = Path(run) / "samples" / "rollout.gif"
    if gif.is_file():
        figures.append(
            Figure(gif, "Animation of the first test simulation: reference, source, corrected.")
        )
    roll = _rollout(run)
    if roll is not None:
        caption = "Vorticity of the first test simulation and its error against the reference."
        save(figures, notes, figs / "snapshots.png", caption,
             lambda: plot_snapshots([roll], [ev["name"]], _transpose(ev)))  # fmt: skip
    return figures


def comparison(runs: Sequence[Path], out: Path, labels: Sequence[str]) -> Comparison:
    """The SOL table, error against step and snapshots of several evaluated runs."""
    evs = load_evaluations(runs)
    result = Comparison(tables=[("Rollout errors", sol_table(evs, labels))])
    figs = Path(out) / "figures"
    caption = (
        "Error against step of every run, the source and the training baselines (the "
        "nearest training trajectory, and rescaled to the test inflow speed where the "
        "scene has one)."
    )
    save(result.figures, result.notes, figs / "sol_error_vs_step.png", caption,
         lambda: plot_error_vs_step(evs, labels))  # fmt: skip
    rolls = [_rollout(r) for r in runs]
    if all(r is not None for r in rolls):
        caption = "Vorticity of the first test simulation for every run, errors below."
        save(result.figures, result.notes, figs / "sol_snapshots.png", caption,
             lambda: plot_snapshots(rolls, labels, _transpose(evs[0])))  # fmt: skip
    return result
