"""Figures of the diffusion runs: sample grids, trajectories, samples by epoch (the
schedules are drawn by :mod:`coldflow.tasks.diffusion.schedule_figures`).

:func:`run_figures` draws what one run directory's files allow (each figure only when
its inputs exist); :func:`comparison_figures` draws several runs together.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from coldflow.report.curves import schedule_figure
from coldflow.report.figures import (
    grids_figure,
    image_grid_figure,
    image_table_figure,
    trajectory_figure,
)
from coldflow.report.html import Figure, save
from coldflow.runs import RunDir, load_tensors
from coldflow.tasks.diffusion.config import DiffusionRunConfig
from coldflow.tasks.diffusion.schedule_figures import (
    schedule_curve,
    schedule_figures,
    schedules_caption,
)

__all__ = ["comparison_figures", "fid_text", "run_figures"]

GRID_SIZE = 16
"""Samples shown in a grid (4 x 4)."""

ROWS_SHOWN = 4
"""Samples shown as rows of the trajectory and samples-by-epoch figures."""


@dataclass
class _Run:
    """What the figures need from one run directory."""

    dir: RunDir
    config: DiffusionRunConfig | None
    label: str
    notes: list[str] = field(default_factory=list)

    @property
    def value_range(self) -> tuple[float, float]:
        return tuple(self.config.data.range) if self.config else (-0.5, 0.5)


def _variants(tensors: Mapping[str, torch.Tensor], prefix: str, ndim: int) -> dict[str, str]:
    """``{suffix: key}`` for keys ``prefix`` / ``prefix_<variant>`` holding ``ndim``-D tensors.

    The suffix is ``""`` or ``"_<variant>"``; it names the figure file too.
    """
    found = {}
    for key in sorted(tensors):
        m = re.fullmatch(rf"{prefix}(_[A-Za-z0-9][A-Za-z0-9_-]*)?", key)
        if m and tensors[key].ndim == ndim:
            found[m.group(1) or ""] = key
    return found


def _timesteps(tensors: Mapping[str, torch.Tensor], suffix: str) -> list[int] | None:
    for key in (f"timesteps{suffix}", f"trajectory_t{suffix}"):
        if key in tensors:
            return [int(t) for t in tensors[key].reshape(-1).tolist()]
    return None


def _sampler_text(cfg: DiffusionRunConfig | None, fid: bool = False) -> str:
    """The sampler of the final grids (or of the FID samples), with its settings."""
    if cfg is None:
        return "sampler unknown (no config.yaml)"
    s = cfg.evaluation.fid if fid else cfg.sampling
    if s.sampler == "ddim":
        steps = s.steps if fid else s.ddim_steps
        return f"DDIM sampler, {steps} steps, eta {s.eta:g}"
    if s.sampler == "ancestral":
        return f"ancestral sampler, {cfg.degradation.n_T} steps, result {cfg.method.result}"
    return f"{s.sampler} cold sampler, {cfg.degradation.n_T} steps, result {cfg.method.result}"


def fid_text(cfg: DiffusionRunConfig | None) -> str:
    """How the FID of a run is measured: samples, sampler, feature extractor."""
    if cfg is None:
        return "FID settings unknown (no config.yaml)"
    fid = cfg.evaluation.fid
    prior = f", {cfg.method.prior} start" if cfg.method.kind == "cold" else ""
    return (
        f"FID during training: {fid.n_samples} samples ({_sampler_text(cfg, fid=True)}{prior}) "
        f"against the 10,000 MNIST test images, {fid.extractor} features"
    )


def _grid_caption(key: str, shown: int, total: int, cfg: DiffusionRunConfig | None) -> str:
    """What a saved grid is: samples (sampler, start) or inputs and originals (not samples)."""
    n_T = cfg.degradation.n_T if cfg is not None else "n_T"
    sampler = _sampler_text(cfg)
    of = f"{shown} of {total} shown"
    prior = cfg.method.prior if cfg is not None and cfg.method.kind == "cold" else None
    captions = {
        "images": f"Final samples ({sampler}"
        + (f", {prior} start" if prior else ", start z_T ~ N(0, I)")
        + f"), {of}.",
        "images_black_start": f"Final unconditional samples from the black start ({sampler}; "
        f"the black image plus the symmetry noise), {of}.",
        "images_conditional": f"Conditional restorations ({sampler}) of held-out validation "
        f"digits degraded to t = {n_T}, {of}.",
        "images_conditional_input": f"Inputs of the conditional restorations: held-out "
        f"validation digits degraded to t = {n_T} (not samples), {of}.",
        "images_conditional_original": f"The original held-out validation digits of the "
        f"conditional restorations (not samples), {of}.",
    }
    return captions.get(key, f"Saved images ({key}), {of}.")


_GRID_NAMES = {
    "images": "Final samples (configured start)",
    "images_black_start": "Final unconditional samples from the black start",
    "images_conditional": "Conditional restorations of held-out validation digits",
    "images_conditional_input": "Inputs of the conditional restorations (not samples)",
    "images_conditional_original": "Original validation digits of the restorations (not samples)",
}


def _final_sample_figures(run: _Run, out: list[Figure], figs: Path | None = None) -> None:
    path = run.dir.samples_path()
    if not path.is_file():
        return
    tensors = load_tensors(path)
    vr, figs = run.value_range, figs or run.dir.figures_dir
    for suffix, key in _variants(tensors, "images", 4).items():
        images = tensors[key][:GRID_SIZE]
        ncol = min(4, len(images))
        title = f"{run.label}: {key}" if suffix else run.label
        caption = _grid_caption(key, len(images), len(tensors[key]), run.config)
        save(
            out,
            run.notes,
            figs / f"samples_grid{suffix}.png",
            caption,
            lambda im=images, c=ncol, t=title: image_grid_figure(im, vr, ncol=c, title=t),
        )
    for suffix, key in _variants(tensors, "trajectory", 5).items():
        traj = tensors[key]
        ts = _timesteps(tensors, suffix)
        if ts is None or len(ts) != len(traj):
            run.notes.append(f"{key}: no matching timesteps{suffix}; columns numbered instead")
            ts = None
        what = "conditional restoration" if "conditional" in suffix else "unconditional sampling"
        caption = (
            f"Sampling trajectory ({key}, {what}, {_sampler_text(run.config)}): rows are "
            "samples, columns the state x_t at the snapshot timesteps, from the start of "
            "sampling to the end."
        )
        save(
            out,
            run.notes,
            figs / f"trajectory{suffix}.png",
            caption,
            lambda tr=traj, t=ts, k=key: trajectory_figure(
                tr, t, vr, n_rows=ROWS_SHOWN, title=f"{run.label}: {k}"
            ),
        )


def _epoch_sample_figures(run: _Run, out: list[Figure], figs: Path | None = None) -> None:
    saved = run.dir.sample_epochs()
    if not saved:
        return
    wanted = run.config.evaluation.sample_epochs if run.config is not None else None
    epochs = [e for e in saved if e in set(wanted)] if wanted else saved
    if not epochs:
        run.notes.append(f"none of evaluation.sample_epochs {wanted} was saved; showing all")
        epochs = saved
    by_suffix: dict[str, dict[int, torch.Tensor]] = defaultdict(dict)
    for epoch in epochs:
        tensors = load_tensors(run.dir.samples_path(epoch))
        for suffix, key in _variants(tensors, "images", 4).items():
            by_suffix[suffix][epoch] = tensors[key]
    for suffix, samples in sorted(by_suffix.items()):
        n = min(ROWS_SHOWN, *(len(x) for x in samples.values()))
        shown = list(samples)
        what = "conditional restorations" if "conditional" in suffix else "samples"
        sampler = _sampler_text(run.config, fid=True)
        caption = (
            f"{what.capitalize()} (images{suffix}, {sampler}) at epochs "
            f"{', '.join(map(str, shown))}: the same {n} slots in each column."
        )

        def make(samples: dict = samples, n: int = n, suffix: str = suffix) -> Any:
            table = torch.stack([samples[e][:n] for e in samples], dim=1)  # [n, E, C, H, W]
            return image_table_figure(
                table,
                run.value_range,
                col_labels=[f"epoch {e}" for e in samples],
                row_labels=[f"#{i}" for i in range(n)],
                title=f"{run.label}: images{suffix}" if suffix else run.label,
            )

        figs = figs or run.dir.figures_dir
        save(out, run.notes, figs / f"samples_by_epoch{suffix}.png", caption, make)


def run_figures(run: RunDir, cfg: DiffusionRunConfig, notes: list[str]) -> list[Figure]:
    """Schedule, final samples, trajectories and samples by epoch of one run."""
    view = _Run(run, cfg, cfg.name, notes)
    if cfg.evaluation.fid.enabled:
        notes.append(fid_text(cfg) + ".")
    figures: list[Figure] = []
    schedule_figures(view.dir, view.config, view.label, view.notes, figures)
    _final_sample_figures(view, figures)
    _nearest_figure(view, figures)
    _epoch_sample_figures(view, figures)
    return figures


def _nearest_figure(run: _Run, out: list[Figure]) -> None:
    """Evaluation samples (top row) above their nearest training digits (bottom row)."""
    from coldflow.metrics.baselines import NEAREST_FILE

    path = run.dir.samples_dir / NEAREST_FILE
    if not path.is_file():
        return
    tensors = load_tensors(path)
    k = min(8, len(tensors["samples"]))
    pairs = torch.cat([tensors["samples"][:k], tensors["neighbours"][:k]])
    caption = (
        f"Memorisation check: {k} of the samples scored by coldflow evaluate (top row) above "
        "the training digit nearest to each in pixel space (bottom row). Copies would look "
        "alike; the distances are in the evaluation table."
    )
    save(
        out,
        run.notes,
        run.dir.figures_dir / "nearest_training_digits.png",
        caption,
        lambda: image_grid_figure(
            pairs, run.value_range, ncol=k, title=f"{run.label}: samples, nearest training digits"
        ),
    )


def comparison_figures(
    runs: Sequence[Path], labels: Sequence[str], figures_dir: Path, notes: list[str]
) -> list[Figure]:
    """The schedules of several runs together, each kind of final grid side by side, and
    every run's grids, trajectories and samples by epoch."""
    from coldflow.config import load_config

    configs = [load_config(Path(r) / "config.yaml", DiffusionRunConfig) for r in runs]
    figures: list[Figure] = []
    curves = [schedule_curve(lb, c)[0] for lb, c in zip(labels, configs, strict=True)]
    save(
        figures,
        notes,
        figures_dir / "schedules.png",
        schedules_caption(curves),
        lambda: schedule_figure(curves),
    )
    panels: dict[str, list] = defaultdict(list)
    for r, label, cfg in zip(runs, labels, configs, strict=True):
        path = RunDir(r).samples_path()
        if path.is_file():
            tensors = load_tensors(path)
            for key in _variants(tensors, "images", 4).values():
                panels[key].append((label, tensors[key][:GRID_SIZE], tuple(cfg.data.range)))
    for key, group in panels.items():
        what = _GRID_NAMES.get(key, f"Saved images ({key})")
        samplers = "; ".join(
            f"{lb}: {_sampler_text(c)}" for lb, c in zip(labels, configs, strict=True)
        )
        if key in ("images_conditional_input", "images_conditional_original"):
            samplers = "no sampler: test digits and their degradation to t = n_T"
        caption = f"{what} of each run, first {GRID_SIZE} of key {key} ({samplers})."
        name = "samples.png" if key == "images" else f"samples_{key[len('images_') :]}.png"
        save(figures, notes, figures_dir / name, caption, lambda g=group: grids_figure(g))
    notes += list(
        dict.fromkeys(f"{lb}: {fid_text(c)}." for lb, c in zip(labels, configs, strict=True))
    )
    for r, label, cfg in zip(runs, labels, configs, strict=True):
        view = _Run(RunDir(r), cfg, label, notes)
        own = figures_dir / label
        _final_sample_figures(view, figures, own)
        _epoch_sample_figures(view, figures, own)
    return figures
