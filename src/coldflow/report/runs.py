"""``report.html`` of one run and comparison pages of several, for runs of any task.

The generic part of every page is read from the run directory (see
:mod:`coldflow.runs`): the training-loss and evaluation curves of ``metrics.jsonl``, the
final metrics, ``evaluation.json`` and the resolved config. A task adds its own figures
(samples, rollouts, reconstructions) and comparison tables; they are passed in.
"""

from __future__ import annotations

import html
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from coldflow.io import write_text
from coldflow.report.curves import metric_figure
from coldflow.report.html import (
    Figure,
    evaluation_html,
    figures_html,
    format_duration,
    format_value,
    markdown_to_html,
    notes_html,
    page,
    save,
)
from coldflow.runs import RunDir

__all__ = ["loss_kind", "loss_panels", "metric_series", "write_comparison", "write_run_report"]


@dataclass
class _Run:
    """What a page needs from one run directory, read once."""

    dir: RunDir
    label: str
    events: list[dict[str, Any]]
    config_text: str
    notes: list[str] = field(default_factory=list)


def _read_run(path: str | os.PathLike, label: str | None = None) -> _Run:
    run = RunDir(path)
    if not run.path.is_dir():
        raise FileNotFoundError(f"{run.path}: no such run directory")
    text = run.config_path.read_text() if run.config_path.is_file() else ""
    return _Run(run, label or run.path.name, run.read_metrics(), text)


def metric_series(events: Iterable[dict], split: str, name: str) -> tuple[list[int], list[float]]:
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


def loss_kind(config_text: str) -> tuple[str, str]:
    """``(method.kind, loss name)`` of a resolved ``config.yaml``: the name is
    ``method.loss.name`` (field tasks), ``method.loss`` (cold diffusion) or ``""`` (the
    method has one fixed loss, e.g. DDPM's noise prediction); ``("", "")`` when the
    text is empty or no config."""
    try:
        config = yaml.safe_load(config_text) if config_text else None
    except yaml.YAMLError:
        config = None
    method = config.get("method") if isinstance(config, dict) else None
    if not isinstance(method, dict):
        return "", ""
    loss = method.get("loss")
    name = loss.get("name", "") if isinstance(loss, dict) else loss if isinstance(loss, str) else ""
    return str(method.get("kind", "")), str(name)


def loss_panels(kinds: dict[str, tuple[str, str]]) -> dict[str, list[str]] | None:
    """Which training-loss curves may share an axis: ``panel title -> run labels``, one
    panel per kind of loss (:func:`loss_kind`), or None when every run's loss is of one
    kind (one axis). Runs of one method are titled by their loss name (``mse``,
    ``lsim``), runs of several methods by method and loss (``cold mse``, ``ddpm``)."""
    if len(set(kinds.values())) <= 1:
        return None
    one_method = len({method for method, _ in kinds.values() if method}) <= 1
    panels: dict[str, list[str]] = {}
    for label, (method, name) in kinds.items():
        title = (name or method) if one_method else f"{method} {name}".strip()
        panels.setdefault(title or "loss of unknown kind (no config.yaml)", []).append(label)
    return panels


def _metric_file(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", name)
    return "fid.png" if name == "fid" else f"eval_{safe}.png"


def _metric_figures(runs: Sequence[_Run], figures_dir: Path, notes: list[str]) -> list[Figure]:
    """loss.png, fid.png and eval_<name>.png with one line per run."""
    out: list[Figure] = []
    loss = {r.label: metric_series(r.events, "train", "loss") for r in runs}
    if any(len(x) for x, _ in loss.values()):
        panels = loss_panels({r.label: loss_kind(r.config_text) for r in runs if loss[r.label][0]})
        caption = "Training loss (mean over each epoch's logged values) against epoch."
        if panels:
            caption += (
                f" One panel per kind of loss ({', '.join(panels)}): losses of different "
                "kinds are not comparable, so they never share an axis."
            )
        make = lambda: metric_figure(  # noqa: E731
            loss, "training loss", title="Training loss", panels=panels
        )
        save(out, notes, figures_dir / "loss.png", caption, make)
    names = list(dict.fromkeys(n for r in runs for n in _eval_names(r.events)))
    names.sort(key=lambda n: (n != "fid", n))
    for name in names:
        series = {r.label: metric_series(r.events, "eval", name) for r in runs}
        label = "FID" if name == "fid" else name
        caption = f"{label} on the evaluation samples against epoch" + (
            " (lower is better)." if name == "fid" else "."
        )
        make = lambda s=series, lb=label: metric_figure(s, lb, title=lb)  # noqa: E731
        save(out, notes, figures_dir / _metric_file(name), caption, make)
    return out


def training_time(events: Sequence[dict]) -> str:
    """Sum of the logged epoch durations; first-to-last event time for older runs."""
    per_epoch = dict(zip(*metric_series(events, "train", "epoch_seconds"), strict=True))
    if per_epoch:
        return format_duration(sum(per_epoch.values()))
    times = [float(e["time"]) for e in events if "time" in e]
    return format_duration(max(times) - min(times)) if times else ""


def _final_metrics(run: _Run, planned: int | None) -> list[tuple[str, str]]:
    """``(quantity, value)`` rows: last eval values, final loss, epochs, training time."""
    rows = []
    for name in _eval_names(run.events):
        epochs, values = metric_series(run.events, "eval", name)
        rows.append((f"{'FID' if name == 'fid' else name} (epoch {epochs[-1]})", values[-1]))
    epochs, losses = metric_series(run.events, "train", "loss")
    if epochs:
        rows.append((f"train loss (epoch {epochs[-1]}, mean)", losses[-1]))
    table = [(k, format_value(v)) for k, v in rows]
    logged = sorted({int(e["epoch"]) for e in run.events})
    if logged:
        of = f" of {planned}" if planned else ""
        table.append(("epochs logged", f"{len(logged)}{of} (epochs {logged[0]}-{logged[-1]})"))
        table.append(("training time (sum of epochs)", training_time(run.events)))
    return table


def write_run_report(
    run_dir: str | os.PathLike,
    *,
    label: str | None = None,
    description: str = "",
    figures: Sequence[Figure] = (),
    notes: Sequence[str] = (),
    epochs: int | None = None,
    tables: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write ``report.html`` of one run: metrics, evaluation, figures, config.

    Parameters
    ----------
    run_dir
        A run directory (``runs/<name>``).
    label, description
        Page title and subtitle (default: the directory name).
    figures
        The task's figures of this run (already saved under ``figures/``).
    notes
        Warnings to show (skipped figures, missing files).
    epochs
        The configured number of epochs (shown as "logged of configured").
    tables
        The task's ``(caption, markdown table)`` pairs, shown after the evaluation.

    Returns
    -------
    Path
        The written ``report.html``.
    """
    run = _read_run(run_dir, label)
    run.notes += list(notes)
    curves = _metric_figures([run], run.dir.figures_dir, run.notes)
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td class=num>{html.escape(v)}</td></tr>"
        for k, v in _final_metrics(run, epochs)
    )
    all_figures = [*curves, *figures]
    body = [
        f"<h1>{html.escape(run.label)}</h1>",
        f'<p class="sub">{html.escape(description)} &middot; run directory '
        f"<code>{html.escape(str(run.dir.path))}</code></p>",
        *notes_html(run.notes),
        "<h2>Final metrics</h2>",
        f"<table>{rows}</table>" if rows else "<p>No metrics logged yet.</p>",
        *evaluation_html(run.dir.path / "evaluation.json"),
        *(
            line
            for caption, table in tables
            for line in (f"<h2>{html.escape(caption)}</h2>", *markdown_to_html(table))
        ),
        "<h2>Figures</h2>",
        *(figures_html(all_figures, run.dir.path) or ["<p>No figures: nothing to plot yet.</p>"]),
        "<h2>Resolved config</h2>",
        f"<pre>{html.escape(run.config_text or 'config.yaml is missing')}</pre>",
    ]
    path = run.dir.path / "report.html"
    write_text(path, page(f"coldflow report: {run.label}", body))
    return path


def write_comparison(
    run_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    labels: Sequence[str] | None = None,
    extra: Any = None,
    describe: Callable[[Path], str] | None = None,
    title: str = "Comparison of runs",
) -> Path:
    """Compare several runs: loss and metric curves, a table, and the task's additions.

    Writes ``out_dir/index.html`` and ``out_dir/figures/*.png``: ``loss.png``, ``fid.png``
    and ``eval_<name>.png`` with one line per run, plus the tables, figures and notes of
    ``extra`` (a :class:`coldflow.tasks.base.Comparison`). Runs are labelled by
    ``labels`` (default: their directory names), each linking to its ``report.html``.

    Returns
    -------
    Path
        The written ``index.html``.
    """
    if not run_dirs:
        raise ValueError("write_comparison needs at least one run directory")
    labels = list(labels or [Path(p).name for p in run_dirs])
    runs = [_read_run(p, lb) for p, lb in zip(run_dirs, labels, strict=True)]
    out = Path(out_dir)
    notes: list[str] = []
    figures = _metric_figures(runs, out / "figures", notes)
    metric_names = list(dict.fromkeys(n for r in runs for n in _eval_names(r.events)))
    shown = ["FID" if m == "fid" else m for m in metric_names]
    header = ["run", "description", "epochs", "train loss", *shown, "train time"]
    lines = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for r in runs:
        report = r.dir.path / "report.html"
        name = html.escape(r.label)
        if report.is_file():
            href = html.escape(Path(os.path.relpath(report, out)).as_posix(), quote=True)
            name = f'<a href="{href}">{name}</a>'
        epochs = sorted({int(e["epoch"]) for e in r.events})
        loss = metric_series(r.events, "train", "loss")[1]
        cells = [str(len(epochs)) if epochs else "", format_value(loss[-1]) if loss else ""]
        for m in metric_names:
            values = metric_series(r.events, "eval", m)[1]
            cells.append(format_value(values[-1]) if values else "")
        cells.append(training_time(r.events))
        tds = "".join(f"<td class=num>{html.escape(c)}</td>" for c in cells)
        text = html.escape(describe(r.dir.path)) if describe else ""
        lines.append(f"<tr><td>{name}</td><td>{text}</td>{tds}</tr>")
    lines.append("</table>")
    tables: list[str] = []
    if extra is not None:
        notes += list(extra.notes)
        for caption, table in extra.tables:
            tables += [f"<h2>{html.escape(caption)}</h2>", *markdown_to_html(table)]
        figures += list(extra.figures)
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{len(runs)} runs: {html.escape(", ".join(labels))}</p>',
        *notes_html(notes),
        "<h2>Runs</h2>",
        *lines,
        *tables,
        "<h2>Figures</h2>",
        *figures_html(figures, out),
    ]
    path = out / "index.html"
    write_text(path, page(f"coldflow: {title}", body))
    return path
