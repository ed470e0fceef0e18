"""Comparison of Solver-in-the-Loop runs: a table, error against step and snapshots.

Reads what :func:`coldflow.fluid_experiment.evaluate_sol` left in each run directory
(``evaluation.json`` and ``samples/rollout.safetensors``); draws nothing it has to compute.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coldflow.io import write_json, write_text
from coldflow.physics.diagnostics import vorticity
from coldflow.report.style import (
    DIVERGING_CMAP,
    FULL_WIDTH,
    color,
    new_figure,
    save_figure,
    style_context,
)
from coldflow.runs import load_tensors

__all__ = [
    "load_evaluations",
    "plot_error_vs_step",
    "plot_snapshots",
    "sol_table",
    "write_sol_report",
]


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


def _label(ev: dict[str, Any]) -> str:
    return f"{ev['loss']} (m={ev['m']})"


def sol_table(evaluations: Sequence[dict[str, Any]]) -> str:
    """Markdown table: source and each corrected run, mean of every metric over the
    rollout, the relative improvement in relative L1 and the time per step."""
    metrics = list(evaluations[0]["metrics"])
    head = ["model", *metrics, "rel_l1 vs source", "s/step"]
    rows = []
    src = evaluations[0]
    rows.append(
        ["source (no correction)"]
        + [f"{src['mean']['source'][m]:.4g}" for m in metrics]
        + ["", f"{src['seconds_per_step']['source']:.3g}"]
    )
    for ev in evaluations:
        gain = ev["improvement"].get("rel_l1")
        rows.append(
            [f"SOL {_label(ev)}"]
            + [f"{ev['mean']['corrected'][m]:.4g}" for m in metrics]
            + [
                "" if gain is None else f"{-100 * gain:+.1f} %",
                f"{ev['seconds_per_step']['corrected']:.3g}",
            ]
        )
    rows.append(
        ["reference (high-res solver)"]
        + ["0"] * len(metrics)
        + ["", f"{src['seconds_per_step']['reference_high']:.3g}"]
    )
    lines = [
        f"Rollouts of {src['steps']} steps from frame {src['start']} of "
        f"{len(src['simulations'])} test simulations of {src['data']} (means over steps and "
        "simulations; s/step for the whole batch).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_error_vs_step(
    evaluations: Sequence[dict[str, Any]], path: str | os.PathLike, metrics: Sequence[str] = ()
) -> Path:
    """One panel per metric: the source and every corrected run against the step."""
    metrics = list(metrics or evaluations[0]["metrics"])
    with style_context():
        fig, axes = new_figure(1, len(metrics), width=FULL_WIDTH, height=2.4)
        axes = np.asarray(axes).reshape(-1)
        for ax, metric in zip(axes, metrics, strict=True):
            src = evaluations[0]["per_step"]["source"][metric]
            steps = np.arange(1, len(src) + 1)
            ax.plot(steps, src, color="k", ls="--", label="source")
            for i, ev in enumerate(evaluations):
                ax.plot(
                    steps, ev["per_step"]["corrected"][metric], color=color(i), label=_label(ev)
                )
            ax.set_xlabel("step")
            ax.set_title(metric)
        axes[0].legend(fontsize="small")
        return save_figure(fig, path)


def plot_snapshots(
    runs: Sequence[str | os.PathLike],
    path: str | os.PathLike,
    steps: Sequence[int] | None = None,
    spacing: tuple[float, float] = (1.0, 1.0),
) -> Path:
    """Velocity magnitude and vorticity of reference, source and each corrected rollout
    (first test simulation) side by side, at a few steps."""
    rolls = [load_tensors(Path(r) / "samples" / "rollout.safetensors") for r in runs]
    evs = load_evaluations(runs)
    n = rolls[0]["reference"].shape[0] - 1
    steps = list(steps or sorted({max(1, n // 4), max(1, n // 2), n}))
    columns = [("reference", rolls[0]["reference"]), ("source", rolls[0]["source"])]
    columns += [(_label(ev), r["corrected"]) for ev, r in zip(evs, rolls, strict=True)]
    with style_context():
        fig, axes = new_figure(
            2 * len(steps), len(columns), width=FULL_WIDTH, height=1.6 * 2 * len(steps)
        )
        axes = np.asarray(axes).reshape(2 * len(steps), len(columns))
        for r, t in enumerate(steps):
            for c, (name, v) in enumerate(columns):
                frame = v[t : t + 1].float()
                vy, vx = frame[0, 0, :-1, :-1], frame[0, 1, :-1, :-1]
                speed = torch.sqrt(vy**2 + vx**2).numpy()
                curl = vorticity(frame, spacing)[0].numpy()
                lim = float(vorticity(columns[0][1][t : t + 1].float(), spacing).abs().max())
                axes[2 * r, c].imshow(speed, origin="lower", cmap="viridis")
                axes[2 * r + 1, c].imshow(
                    curl, origin="lower", cmap=DIVERGING_CMAP, vmin=-lim, vmax=lim
                )
                if r == 0:
                    axes[0, c].set_title(name, fontsize="small")
                for ax in (axes[2 * r, c], axes[2 * r + 1, c]):
                    ax.set_xticks([])
                    ax.set_yticks([])
            axes[2 * r, 0].set_ylabel(f"|v|, step {t}", fontsize="small")
            axes[2 * r + 1, 0].set_ylabel(f"curl, step {t}", fontsize="small")
        return save_figure(fig, path)


def write_sol_report(runs: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Write ``sol_table.md``, ``sol_comparison.json``, ``sol_error_vs_step.png`` and
    ``sol_snapshots.png`` for several evaluated SOL runs into ``out``; return the table."""
    out = Path(out)
    evs = load_evaluations(runs)
    table = sol_table(evs)
    write_text(out / "sol_table.md", table)
    write_json(
        out / "sol_comparison.json",
        {
            "runs": [str(r) for r in runs],
            "source": evs[0]["mean"]["source"],
            "corrected": {_label(e): e["mean"]["corrected"] for e in evs},
            "seconds_per_step": {_label(e): e["seconds_per_step"] for e in evs},
        },
    )
    plot_error_vs_step(evs, out / "sol_error_vs_step.png")
    plot_snapshots(runs, out / "sol_snapshots.png")
    return out / "sol_table.md"
