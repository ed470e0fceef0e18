"""Figures of the SOL + super-resolution pipelines: error against step and against cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from coldflow.report.html import Figure
from coldflow.report.style import FULL_WIDTH, color, new_figure, save_figure, style_context

__all__ = ["error_vs_cost_figure", "error_vs_step_figure", "key_figures", "write_figures"]


def _style(name: str) -> dict[str, Any]:
    return {"ls": "--" if name.startswith("source") else "-"}


def error_vs_step_figure(result: dict[str, Any]):
    """One panel per metric: every pipeline's error at high resolution per step."""
    metrics = result["metrics"]
    with style_context():
        fig, axes = new_figure(1, len(metrics), width=FULL_WIDTH, height=2.6)
        axes = np.asarray(axes).reshape(-1)
        for ax, metric in zip(axes, metrics, strict=True):
            for i, (name, row) in enumerate(result["pipelines"].items()):
                values = row["per_step"][metric]
                ax.plot(range(1, len(values) + 1), values, color=color(i), label=name,
                        **_style(name))  # fmt: skip
            ax.set_xlabel("step")
            ax.set_title(metric)
        axes[0].legend(fontsize="x-small")
    return fig


def error_vs_cost_figure(result: dict[str, Any], metric: str | None = None):
    """Mean error against wall time per frame (log), one point per pipeline; the
    high-resolution solver is the vertical line at zero error's cost."""
    metric = metric or result["metrics"][0]
    with style_context():
        fig, ax = new_figure(1, 1, width=FULL_WIDTH * 0.6, height=3.0)
        solvers = list(dict.fromkeys(r["solver"] for r in result["pipelines"].values()))
        ups = list(dict.fromkeys(r["upsampling"] for r in result["pipelines"].values()))
        for name, row in result["pipelines"].items():
            ax.scatter(
                row["seconds_per_frame"],
                row["mean"][metric],
                color=color(ups.index(row["upsampling"])),  # colour: the upsampling
                marker="osD^v<>"[solvers.index(row["solver"]) % 7],  # marker: the solver
                label=name,
            )
        ax.axvline(result["high_res_seconds_per_frame"], color="k", ls=":", label="high-res solver")
        ax.set_xscale("log")
        ax.set_xlabel("seconds per simulated frame (log)")
        ax.set_ylabel(f"mean {metric} at high resolution")
        ax.legend(fontsize="x-small")
    return fig


def write_figures(result: dict[str, Any], figures: Path) -> list[Path]:
    """``pipeline_error_vs_step.png`` and ``pipeline_error_vs_cost.png`` in ``figures``."""
    return [
        save_figure(error_vs_step_figure(result), figures / "pipeline_error_vs_step.png"),
        save_figure(error_vs_cost_figure(result), figures / "pipeline_error_vs_cost.png"),
    ]


def key_figures(pipeline_dir: Path) -> list[Figure]:
    """The figures of a pipeline a study's front page shows (as :func:`write_figures`
    wrote them under ``pipeline_dir/figures``): error against step, then against cost."""
    figs = Path(pipeline_dir) / "figures"
    return [
        Figure(figs / "pipeline_error_vs_step.png", "Error of every pipeline against step"),
        Figure(figs / "pipeline_error_vs_cost.png", "Mean error against cost"),
    ]
