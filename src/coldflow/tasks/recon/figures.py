"""Figures and tables of the autoencoder and super-resolution runs.

Reads what their evaluation left in a run directory (``evaluation.json`` and
``samples/reconstruction.safetensors`` or ``samples/superres.safetensors``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coldflow.report.html import Comparison, Figure, markdown_table, save
from coldflow.report.style import DIVERGING_CMAP, FULL_WIDTH, new_figure, style_context
from coldflow.runs import load_tensors

__all__ = ["comparison", "field_panels_figure", "run_figures", "results_table"]

_FILES = {"autoencoder": "reconstruction.safetensors", "superres": "superres.safetensors"}
_COLUMNS = {
    "autoencoder": [("input", "input"), ("autoencoder", "reconstruction"),
                    ("baseline", "resampled + bicubic")],
    "superres": [("bicubic", "bicubic"), ("superres", "super-resolution"),
                 ("reference", "reference")],
}  # fmt: skip


def field_panels_figure(
    panels: Sequence[tuple[str, torch.Tensor]],
    truth: str,
    channels: Sequence[str],
    transpose: bool,
    title: str = "",
):
    """One row per channel: each panel ``[C, H, W]`` and, right of them, the error of every
    other panel against the panel named ``truth``; shared colour scales with colour bars."""
    reference = dict(panels)[truth]
    errors = [(f"error {name}", p - reference) for name, p in panels if name != truth]
    columns = [*panels, *errors]
    with style_context():
        fig, axes = new_figure(
            len(channels), len(columns), width=FULL_WIDTH, height=1.7 * len(channels) + 0.4
        )
        axes = np.asarray(axes).reshape(len(channels), len(columns))
        for r, channel in enumerate(channels):
            lim = float(reference[r].abs().max()) or 1.0
            elim = max(float(e[r].abs().max()) for _, e in errors) if errors else lim
            for c, (name, values) in enumerate(columns):
                v = values[r].numpy()
                v = v.T if transpose else v
                is_err = c >= len(panels)
                bound = elim if is_err else lim
                im = axes[r, c].imshow(
                    v, origin="lower", cmap=DIVERGING_CMAP, vmin=-bound, vmax=bound
                )
                axes[r, c].set_xticks([])
                axes[r, c].set_yticks([])
                if r == 0:
                    axes[r, c].set_title(name, fontsize="small")
                if c in (len(panels) - 1, len(columns) - 1):
                    fig.colorbar(im, ax=axes[r, c], shrink=0.8)
            axes[r, 0].set_ylabel(channel, fontsize="small")
        if title:
            fig.suptitle(title, fontsize="small")
    return fig


def run_figures(run: Path, mode: str, notes: list[str]) -> list[Figure]:
    """Input, output and error maps of the stored test frames of one evaluated run."""
    ev_path = Path(run) / "evaluation.json"
    path = Path(run) / "samples" / _FILES[mode]
    if not ev_path.is_file() or not path.is_file():
        notes.append("not evaluated yet: run `coldflow evaluate` for the field figures")
        return []
    ev = json.loads(ev_path.read_text())
    tensors = load_tensors(path)
    truth_key = "input" if mode == "autoencoder" else "reference"
    truth = dict(_COLUMNS[mode])[truth_key]  # its panel title
    figures: list[Figure] = []
    for i in range(len(tensors[truth_key])):
        panels = [(label, tensors[key][i]) for key, label in _COLUMNS[mode]]
        target = Path(run) / "figures" / f"{mode}_frame{i}.png"
        caption = (
            f"Test frame {i + 1} of {len(tensors[truth_key])} ({ev['data']}, {ev['split']} "
            "split): the fields, then each one's error against "
            f"{'the input' if mode == 'autoencoder' else 'the high-resolution reference'}."
        )
        save(figures, notes, target, caption,
             lambda p=panels: field_panels_figure(
                 p, truth, ev["channels"], ev.get("scene") == "karman"))  # fmt: skip
    return figures


def results_table(evaluations: Sequence[dict[str, Any]], labels: Sequence[str]) -> str:
    """Markdown: the baselines once, then every run's model row, all metrics; time per frame."""
    metrics = list(
        dict.fromkeys(m for ev in evaluations for row in ev["mean"].values() for m in row)
    )
    rows: list[list[Any]] = []
    model_rows = ("autoencoder", "super-resolution", "source, super-resolved")
    first = evaluations[0]
    for row, values in first["mean"].items():
        if row not in model_rows:
            rows.append(
                [
                    row,
                    *(values.get(m, "") for m in metrics),
                    first["seconds_per_frame"].get(row, ""),
                ]
            )
    for ev, label in zip(evaluations, labels, strict=True):
        for row in model_rows:
            if row in ev["mean"]:
                values = ev["mean"][row]
                t = ev["seconds_per_frame"].get(row, "")
                rows.append(
                    [f"{label}: {row} ({ev['loss']})", *(values.get(m, "") for m in metrics), t]
                )
    intro = (
        f"{first['frames']} frames of the {first['split']} simulations "
        f"{first['simulations']} of {first['data']}."
    )
    skipped = {k: v for ev in evaluations for k, v in ev.get("skipped_metrics", {}).items()}
    lines = [intro, "", markdown_table(["model", *metrics, "s/frame"], rows)]
    lines += [f"Not scored: {k} ({_short_reason(v)})." for k, v in skipped.items()]
    return "\n".join(lines) + "\n"


def _short_reason(reason: str) -> str:
    """A hub error's first clause: no addresses or local paths (evaluation.json has it all)."""
    return re.split(r":? https?://|\. ", reason, maxsplit=1)[0].rstrip(" :.")


def comparison(runs: Sequence[Path], out: Path, labels: Sequence[str], mode: str) -> Comparison:
    """The results table of several evaluated runs of one task."""
    evs, notes = [], []
    for run, label in zip(runs, labels, strict=True):
        path = Path(run) / "evaluation.json"
        if path.is_file():
            evs.append((json.loads(path.read_text()), label))
        else:
            notes.append(f"{label}: not evaluated; run `coldflow evaluate {run}`")
    result = Comparison(notes=notes)
    if evs:
        table = results_table([e for e, _ in evs], [lb for _, lb in evs])
        result.tables.append((f"{mode} on test frames", table))
    return result
