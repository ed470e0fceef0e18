"""Figures and static HTML reports of training runs, built from their run directories.

:func:`write_run_report` reads one run directory (see :mod:`coldflow.runs` for the
layout) and writes every figure its files allow into ``figures/`` plus ``report.html``;
:func:`write_comparison` puts several runs side by side. Figures whose inputs are
missing (no FID logged, no samples saved yet) are skipped, not errors.

The HTML pages reference their figures by relative path (``figures/...``): they are
self-contained in the sense of needing no server, scripts or network, and they stay
small; move a page together with its ``figures/`` folder.
"""

from __future__ import annotations

import html
import inspect
import json
import math
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coldflow import hub
from coldflow.config import ConfigError, RunConfig, load_config
from coldflow.data import mnist_dataset
from coldflow.degradations import build_degradation
from coldflow.io import write_text
from coldflow.report.figures import (
    ScheduleCurve,
    grids_figure,
    image_grid_figure,
    image_table_figure,
    metric_figure,
    schedule_figure,
    trajectory_figure,
)
from coldflow.report.style import save_figure
from coldflow.runs import RunDir, load_tensors

__all__ = [
    "STRIP_FRACTIONS",
    "plot_schedules",
    "strip_timesteps",
    "write_comparison",
    "write_run_report",
]

STRIP_FRACTIONS = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
"""Fractions of ``n_T`` at which the schedule figure shows a degraded test digit."""

GRID_SIZE = 16
"""Samples shown in a grid (4 x 4)."""

ROWS_SHOWN = 4
"""Samples shown as rows of the trajectory and samples-by-epoch figures."""

_DIGIT_INDEX = 0  # the MNIST test image shown degraded (a 7)


# ------------------------------------------------------------------------ reading


@dataclass
class _Run:
    """What a report needs from one run directory, read once."""

    dir: RunDir
    config: RunConfig | None
    config_text: str
    label: str
    events: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def value_range(self) -> tuple[float, float]:
        return tuple(self.config.data.range) if self.config else (-0.5, 0.5)


def _read_run(path: str | os.PathLike) -> _Run:
    run = RunDir(path)
    if not run.path.is_dir():
        raise FileNotFoundError(f"{run.path}: no such run directory")
    config, text, notes = None, "", []
    if run.config_path.is_file():
        text = run.config_path.read_text()
        try:
            config = load_config(run.config_path, RunConfig)
        except ConfigError as e:
            notes.append(f"config.yaml could not be read as a run config: {e}")
    else:
        notes.append("config.yaml is missing: no schedule figure")
    label = config.name if config is not None else run.path.name
    return _Run(run, config, text, label, run.read_metrics(), notes)


def _unique_labels(runs: Sequence[_Run]) -> None:
    """Make run labels unique by appending the directory name to repeated ones."""
    counts: dict[str, int] = defaultdict(int)
    for r in runs:
        counts[r.label] += 1
    for r in runs:
        if counts[r.label] > 1:
            r.label = f"{r.label} ({r.dir.path.name})"


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


def _series(events: Iterable[dict], split: str, name: str) -> tuple[list[int], list[float]]:
    """``(epochs, values)`` of one metric; several events in an epoch are averaged."""
    by_epoch: dict[int, list[float]] = defaultdict(list)
    for e in events:
        if e.get("split") == split and e.get("name") == name:
            by_epoch[int(e["epoch"])].append(float(e["value"]))
    epochs = sorted(by_epoch)
    return epochs, [float(np.mean(by_epoch[k])) for k in epochs]


def _eval_names(events: Iterable[dict]) -> list[str]:
    """Eval metric names in the log, FID first, then alphabetical."""
    names = {e["name"] for e in events if e.get("split") == "eval"}
    return sorted(names, key=lambda n: (n != "fid", n))


def _metric_file(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", name)
    return "fid.png" if name == "fid" else f"eval_{safe}.png"


# ---------------------------------------------------------------------- schedules


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
    """MNIST test image ``_DIGIT_INDEX`` [1, 28, 28], or None when the files are not local.

    The report never downloads: it uses the files only if :func:`hub.locate` finds them.
    """
    if hub.locate("mnist-test-images") is None or hub.locate("mnist-test-labels") is None:
        return None
    try:
        dataset = mnist_dataset("test", tuple(value_range), subset=_DIGIT_INDEX + 1)
    except (hub.HubError, ValueError, OSError) as e:
        warnings.warn(f"schedule figure without the digit strip: {e}", stacklevel=3)
        return None
    return dataset[_DIGIT_INDEX][0]


def _schedule_curve(label: str, config: Any) -> tuple[ScheduleCurve, Any]:
    """The main (first) schedule curve of a run config or degradation config."""
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
        :class:`~coldflow.config.RunConfig` or a degradation config section.
    path
        Destination PNG.

    Returns
    -------
    Path
        ``path``.
    """
    curves = [_schedule_curve(label, cfg)[0] for label, cfg in _pairs(labelled_configs)]
    return save_figure(schedule_figure(curves), path)


def _schedules_caption(curves: Sequence[ScheduleCurve]) -> str:
    names = ", ".join(dict.fromkeys(c.name for c in curves))
    n_Ts = sorted({c.n_T for c in curves})
    if len(n_Ts) > 1:
        return (
            f"Main schedule curves ({names}) of every run: against normalised time t/n_T "
            f"(left, the shapes compare) and absolute timestep t (right), since n_T differ "
            f"({', '.join(map(str, n_Ts))})."
        )
    return f"Main schedule curves ({names}) of every run against timestep t (n_T = {n_Ts[0]})."


# ------------------------------------------------------------------------ figures


@dataclass
class _Figure:
    path: Path
    caption: str


def _save(
    out: list[_Figure], notes: list[str], path: Path, caption: str, make: Callable[[], Any]
) -> None:
    """Make and save one figure; a figure whose data are malformed becomes a note."""
    try:
        fig = make()
    except ValueError as e:
        notes.append(f"{path.name} skipped: {e}")
        warnings.warn(f"{path}: skipped: {e}", stacklevel=2)
        return
    out.append(_Figure(save_figure(fig, path), caption))


def _schedule_figures(run: _Run, out: list[_Figure]) -> None:
    if run.config is None:
        return
    curve, degradation = _schedule_curve(run.label, run.config)
    digit = _example_digit(run.value_range)
    caption = f"Schedule {curve.name} against timestep t: {degradation.describe()}."
    if digit is None:
        make = lambda: schedule_figure([curve], title=run.label)  # noqa: E731
    else:
        strip, ts = _degraded_strip(degradation, digit, run.config.seed)
        caption += (
            f" Below: MNIST test digit #{_DIGIT_INDEX} degraded at t = "
            f"{', '.join(map(str, ts))} (t=0 is the clean image; fixed seed; "
            "pixels clipped to the data range)."
        )

        def make() -> Any:
            return schedule_figure([curve], strip, ts, run.value_range, title=run.label)

    _save(out, run.notes, run.dir.figures_dir / "schedule.png", caption, make)


def _final_sample_figures(run: _Run, out: list[_Figure]) -> None:
    path = run.dir.samples_path()
    if not path.is_file():
        return
    tensors = load_tensors(path)
    vr, figs = run.value_range, run.dir.figures_dir
    for suffix, key in _variants(tensors, "images", 4).items():
        images = tensors[key][:GRID_SIZE]
        ncol = min(4, len(images))
        title = f"{run.label}: {key}" if suffix else run.label
        caption = f"Final samples ({key}), {len(images)} of {len(tensors[key])} shown."
        _save(
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
        caption = (
            f"Sampling trajectory ({key}): rows are samples, columns the state at "
            "decreasing timestep t, from the start of sampling to the end."
        )
        _save(
            out,
            run.notes,
            figs / f"trajectory{suffix}.png",
            caption,
            lambda tr=traj, t=ts, k=key: trajectory_figure(
                tr, t, vr, n_rows=ROWS_SHOWN, title=f"{run.label}: {k}"
            ),
        )


def _epoch_sample_figures(run: _Run, out: list[_Figure]) -> None:
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
        caption = (
            f"Samples (images{suffix}) at epochs {', '.join(map(str, shown))}: "
            f"the same {n} sample slots in each column."
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

        _save(out, run.notes, run.dir.figures_dir / f"samples_by_epoch{suffix}.png", caption, make)


def _metric_figures(runs: Sequence[_Run], figures_dir: Path, out: list[_Figure]) -> None:
    """loss.png, fid.png and eval_<name>.png with one line per run."""
    notes = runs[0].notes if len(runs) == 1 else []
    loss = {r.label: _series(r.events, "train", "loss") for r in runs}
    if any(len(x) for x, _ in loss.values()):
        caption = "Training loss (mean over each epoch's logged values) against epoch."
        _save(
            out,
            notes,
            figures_dir / "loss.png",
            caption,
            lambda: metric_figure(loss, "training loss", title="Training loss"),
        )
    names = list(dict.fromkeys(n for r in runs for n in _eval_names(r.events)))
    names.sort(key=lambda n: (n != "fid", n))
    for name in names:
        series = {r.label: _series(r.events, "eval", name) for r in runs}
        label = "FID" if name == "fid" else name
        caption = f"{label} on the evaluation samples against epoch" + (
            " (lower is better)." if name == "fid" else "."
        )
        _save(
            out,
            notes,
            figures_dir / _metric_file(name),
            caption,
            lambda s=series, lb=label: metric_figure(s, lb, title=lb),
        )


# ------------------------------------------------------------------------- tables


def _format_value(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _format_duration(seconds: float) -> str:
    """``"42.0 s"``, ``"3 min 05 s"`` or ``"2 h 07 min"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _training_time(events: Sequence[dict]) -> str:
    """Sum of the logged epoch durations; first-to-last event time for older runs."""
    per_epoch = dict(zip(*_series(events, "train", "epoch_seconds"), strict=True))
    if per_epoch:
        return _format_duration(sum(per_epoch.values()))
    times = [float(e["time"]) for e in events if "time" in e]
    return _format_duration(max(times) - min(times)) if times else ""


def _final_metrics(run: _Run) -> list[tuple[str, str]]:
    """``(quantity, value)`` rows: last eval values, final loss, epochs, training time."""
    rows = []
    for name in _eval_names(run.events):
        epochs, values = _series(run.events, "eval", name)
        rows.append((f"{'FID' if name == 'fid' else name} (epoch {epochs[-1]})", values[-1]))
    epochs, losses = _series(run.events, "train", "loss")
    if epochs:
        rows.append((f"train loss (epoch {epochs[-1]}, mean)", losses[-1]))
    table = [(k, _format_value(v)) for k, v in rows]
    logged = sorted({int(e["epoch"]) for e in run.events})
    if logged:
        of = f" of {run.config.training.epochs}" if run.config is not None else ""
        table.append(("epochs logged", f"{len(logged)}{of} (epochs {logged[0]}-{logged[-1]})"))
    if run.events:
        table.append(("training time (sum of epochs)", _training_time(run.events)))
    return table


# --------------------------------------------------------------------------- html

_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; max-width: 62rem;
       margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.8rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #444; font-size: 0.9rem; margin-top: 0.3rem; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
.note { color: #8a5300; }
""".strip()


def _page(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>\n{_CSS}\n</style>",
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


def _figures_html(figures: Sequence[_Figure], base: Path) -> list[str]:
    out = []
    for f in figures:
        src = html.escape(Path(os.path.relpath(f.path, base)).as_posix(), quote=True)
        alt = html.escape(f.path.stem, quote=True)
        out += [
            "<figure>",
            f'<img src="{src}" alt="{alt}">',
            f"<figcaption>{html.escape(f.caption)}</figcaption>",
            "</figure>",
        ]
    return out


def _notes_html(notes: Sequence[str]) -> list[str]:
    if not notes:
        return []
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return [f'<ul class="note">{items}</ul>']


def write_run_report(run_dir: str | os.PathLike) -> Path:
    """Write every figure of one run into ``figures/`` and its ``report.html``.

    Figures (each only when its inputs exist): ``schedule.png`` (main schedule curve and
    a test digit degraded at several timesteps), ``samples_grid[_<variant>].png`` and
    ``trajectory[_<variant>].png`` from ``samples/final.safetensors``,
    ``samples_by_epoch[_<variant>].png`` from ``samples/epoch_NNNN.safetensors``,
    ``loss.png``, ``fid.png`` and ``eval_<name>.png`` from ``metrics.jsonl``.

    Parameters
    ----------
    run_dir
        A run directory (``runs/<name>``).

    Returns
    -------
    Path
        The written ``report.html`` (it references the figures as ``figures/<file>``).

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` does not exist.
    """
    run = _read_run(run_dir)
    figures: list[_Figure] = []
    _schedule_figures(run, figures)
    _final_sample_figures(run, figures)
    _epoch_sample_figures(run, figures)
    _metric_figures([run], run.dir.figures_dir, figures)

    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td class=num>{html.escape(v)}</td></tr>"
        for k, v in _final_metrics(run)
    )
    subtitle = html.escape(_describe(run.config) if run.config is not None else "")
    body = [
        f"<h1>{html.escape(run.label)}</h1>",
        f'<p class="sub">{subtitle} &middot; run directory '
        f"<code>{html.escape(str(run.dir.path))}</code></p>",
        *_notes_html(run.notes),
        "<h2>Final metrics</h2>",
        f"<table>{rows}</table>" if rows else "<p>No metrics logged yet.</p>",
        *_evaluation_html(run.dir.path / "evaluation.json"),
        "<h2>Figures</h2>",
        *(_figures_html(figures, run.dir.path) or ["<p>No figures: nothing to plot yet.</p>"]),
        "<h2>Resolved config</h2>",
        f"<pre>{html.escape(run.config_text)}</pre>",
    ]
    path = run.dir.path / "report.html"
    write_text(path, _page(f"coldflow report: {run.label}", body))
    return path


def _evaluation_html(path: Path) -> list[str]:
    """``evaluation.json`` (written by ``coldflow evaluate``) as tables."""
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return [f'<p class="note">{html.escape(str(path))} is unreadable.</p>']

    def cell(v: Any) -> str:
        text = _format_value(v) if isinstance(v, float) else str(v)
        return f"<td class=num>{html.escape(text)}</td>"

    out = ["<h2>Evaluation</h2>"]
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for name, section in data.items():
        if not isinstance(section, dict):
            continue
        if all(isinstance(v, dict) for v in section.values()):  # rows x columns
            cols = sorted({c for row in section.values() for c in row})
            head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
            rows = "".join(
                f"<tr><th>{html.escape(r)}</th>{''.join(cell(row.get(c, '')) for c in cols)}</tr>"
                for r, row in section.items()
            )
            out.append(f"<h3>{html.escape(name)}</h3><table><tr><th></th>{head}</tr>{rows}</table>")
        else:
            scalars |= {f"{name} {k}": v for k, v in section.items()}
    rows = "".join(f"<tr><th>{html.escape(k)}</th>{cell(v)}</tr>" for k, v in scalars.items())
    out.append(f"<table>{rows}</table>")
    return out


def _describe(config: RunConfig) -> str:
    return f"{config.method.kind} with {build_degradation(config.degradation).describe()}"


# --------------------------------------------------------------------- comparison


def write_comparison(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> Path:
    """Compare several runs: shared schedule, loss and metric plots, samples side by side.

    Writes into ``out_dir``: ``figures/schedules.png`` (main schedule curves of all
    runs), ``figures/loss.png``, ``figures/fid.png`` and ``figures/eval_<name>.png``
    (one line per run), ``figures/samples.png`` (each run's final ``images`` as a
    titled grid) and ``index.html`` with a table of final metrics linking to each
    run's ``report.html`` (when it exists). Runs are labelled by their config ``name``
    (or directory name), made unique by the directory name where names repeat.

    Parameters
    ----------
    run_dirs
        Run directories to compare.
    out_dir
        Output directory (created).

    Returns
    -------
    Path
        The written ``index.html``.
    """
    if not run_dirs:
        raise ValueError("write_comparison needs at least one run directory")
    runs = [_read_run(p) for p in run_dirs]
    _unique_labels(runs)
    out = Path(out_dir)
    figs_dir = out / "figures"
    figures: list[_Figure] = []
    notes: list[str] = []

    curves = [_schedule_curve(r.label, r.config)[0] for r in runs if r.config is not None]
    if curves:
        _save(
            figures,
            notes,
            figs_dir / "schedules.png",
            _schedules_caption(curves),
            lambda: schedule_figure(curves),
        )

    panels = []
    for r in runs:
        if r.dir.samples_path().is_file():
            tensors = load_tensors(r.dir.samples_path())
            variants = _variants(tensors, "images", 4)
            if variants:
                key = variants.get("", next(iter(variants.values())))
                panels.append((r.label, tensors[key][:GRID_SIZE], r.value_range))
    if panels:
        _save(
            figures,
            notes,
            figs_dir / "samples.png",
            "Final samples of each run (first 16 of samples/final.safetensors, key images).",
            lambda: grids_figure(panels),
        )

    _metric_figures(runs, figs_dir, figures)

    metric_names = list(dict.fromkeys(n for r in runs for n in _eval_names(r.events)))
    metric_names.sort(key=lambda n: (n != "fid", n))
    shown_names = ["FID" if m == "fid" else m for m in metric_names]
    header = ["run", "method / degradation", "epochs", "train loss", *shown_names, "train time"]
    lines = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for r in runs:
        report = r.dir.path / "report.html"
        name = html.escape(r.label)
        if report.is_file():
            href = html.escape(Path(os.path.relpath(report, out)).as_posix(), quote=True)
            name = f'<a href="{href}">{name}</a>'
        epochs = sorted({int(e["epoch"]) for e in r.events})
        loss = _series(r.events, "train", "loss")[1]
        describe = html.escape(_describe(r.config)) if r.config is not None else ""
        cells = [
            str(len(epochs)) if epochs else "",
            _format_value(loss[-1]) if loss else "",
        ]
        for m in metric_names:
            values = _series(r.events, "eval", m)[1]
            cells.append(_format_value(values[-1]) if values else "")
        cells.append(_training_time(r.events))
        tds = "".join(f"<td class=num>{html.escape(c)}</td>" for c in cells)
        lines.append(f"<tr><td>{name}</td><td>{describe}</td>{tds}</tr>")
    lines.append("</table>")

    body = [
        "<h1>Comparison of runs</h1>",
        f'<p class="sub">{len(runs)} runs: {html.escape(", ".join(r.label for r in runs))}</p>',
        *_notes_html(notes + [f"{r.label}: {n}" for r in runs for n in r.notes]),
        "<h2>Final metrics</h2>",
        *lines,
        "<h2>Figures</h2>",
        *_figures_html(figures, out),
    ]
    path = out / "index.html"
    write_text(path, _page("coldflow comparison", body))
    return path
