"""Studies: many runs of any tasks, trained, evaluated and compared on one page.

A study file lists runs (a config file and overrides each). ``run_study`` trains every
run that is not finished (resuming interrupted ones), evaluates it when asked, writes
its ``report.html``, and builds ``index.html`` and ``results.md``: one comparison per
task, with each run's headline numbers. ``shard=(i, n)`` runs only runs i, i + n, ...
(one job of a scheduler's array); ``collect`` builds the pages from finished runs only.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from coldflow.config import StudyConfig, load_config
from coldflow.errors import UserError
from coldflow.experiment import evaluate, load_config_file, report_run, train
from coldflow.io import write_text
from coldflow.report import write_comparison
from coldflow.report.html import (
    Figure,
    figures_html,
    markdown_table,
    markdown_to_html,
    notes_html,
    page,
)
from coldflow.runs import RunDir
from coldflow.simulate.run import parse_shard
from coldflow.tasks import TASKS, kind_of
from coldflow.tasks.fluid import data_config, data_config_from_text
from coldflow.training.parts import hash_matches, trajectory_hash

__all__ = ["parse_shard", "run_study"]


def _finished(run_dir: Path, epochs: int) -> bool:
    run = RunDir(run_dir)
    done = run.checkpoints() if run.exists() else []
    return bool(done) and done[-1] >= epochs and TASKS[kind_of(run_dir)].finished(run)


def run_study(
    path: str | Path,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    shard: tuple[int, int] = (0, 1),
    collect: bool = False,
) -> Path | None:
    """Train, evaluate and report every run of the study file ``path`` into ``out``.

    Parameters
    ----------
    path
        Study YAML (:class:`~coldflow.config.StudyConfig`).
    out
        Output directory (default ``runs/<study name>``); run ``r`` goes to ``out/r``.
    overrides
        ``--set`` overrides applied to every run (a run's own ``set`` wins).
    shard
        ``(i, n)``: handle only runs ``i, i + n, ...``.
    collect
        Train nothing; build the pages from the runs that are finished.

    Returns
    -------
    Path or None
        ``out/index.html``; None for a shard of several (collect afterwards).
    """
    path = Path(path)
    study = load_config(path, StudyConfig)
    out = Path(out) if out else Path("runs") / study.name
    index, count = shard
    if not collect:
        _make_data(study, path, sharded=count > 1)
    configs = {}
    for spec in study.runs:  # validate every config before the first run starts
        cfg_path = (path.parent / spec.config).resolve()
        configs[spec.name] = load_config_file(cfg_path, [*overrides, *spec.set])
    skipped: dict[str, str] = {}
    for k, spec in enumerate(study.runs):
        cfg = configs[spec.name]
        reason = _cannot_run(cfg)
        if reason:
            skipped[spec.name] = reason
            if not collect and k % count == index:
                print(f"{spec.name}: skipped: {reason}", flush=True)
            continue
        if collect or k % count != index:
            continue
        _run(spec, cfg, out / spec.name)
    if count > 1 and not collect:
        print(f"shard {index}/{count} done; build the page with --collect once all are done")
        return None
    finished = [s for s in study.runs if _finished(out / s.name, configs[s.name].training.epochs)]
    missing = [s.name for s in study.runs if s not in finished and s.name not in skipped]
    if not finished:
        raise UserError(f"{out}: no run of the study is finished yet; train it first")
    groups: dict[str, list[Path]] = {}
    for spec in finished:
        groups.setdefault(_group(configs[spec.name]), []).append(out / spec.name)
    pipelines = _pipelines(study, out, {s.name for s in finished})
    return write_study_page(study, out, groups, missing, configs, skipped, pipelines)


def _group(cfg: BaseModel) -> str:
    """Runs compared together: one task, on one data set (fluid tasks)."""
    path = getattr(getattr(cfg, "data", None), "path", None)
    return cfg.method.kind + (f"_{Path(path).stem}" if path else "")


def _make_data(study: StudyConfig, path: Path, sharded: bool) -> None:
    """Generate the data sets the study needs, or reuse them when complete and matching."""
    from coldflow.simulate.run import simulate

    for spec in study.data:
        target = Path(spec.out)
        if sharded and not target.is_file():
            raise UserError(
                f"{target} does not exist: generate the data sets before the study's shards "
                f"(`coldflow simulate {(path.parent / spec.config).resolve()} --out {target}`, "
                "itself shardable), or run the study once without --shard"
            )
        print(f"data: {target}", flush=True)
        simulate((path.parent / spec.config).resolve(), target, overrides=spec.set,
                 progress=False)  # fmt: skip


def _cannot_run(cfg: BaseModel) -> str:
    """Why a run cannot be trained here (pretrained weights missing), or ``""``."""
    from coldflow.hub import HubError

    try:
        TASKS[cfg.method.kind].check_weights(cfg)
    except HubError as e:
        return " ".join(str(e).split())
    return ""


def _check_same_config(name: str, cfg: BaseModel, run_dir: Path) -> None:
    """A finished run is reused only when its config is the study's (epochs aside)."""
    run = RunDir(run_dir)
    stored = run.sidecar(run.checkpoints()[-1]).get("config_hash")
    task = TASKS[cfg.method.kind]
    if not hash_matches(stored, trajectory_hash(cfg, task.hash_exclude)):
        raise UserError(
            f"{name}: {run_dir} was trained with a different config than the study's "
            f"(compare {run.config_path} with the study's config); delete {run_dir} to "
            "train it again, or use another --out"
        )
    data = getattr(getattr(cfg, "data", None), "path", None)
    for name_ in task.files:
        stats_path = run_dir / name_
        if not (name_.endswith(".json") and stats_path.is_file() and data and Path(data).is_file()):
            continue
        trained_on = json.loads(stats_path.read_text()).get("data_config")
        # compared as configs: the text of an older run lacks keys added since (defaults)
        if trained_on and data_config_from_text(trained_on, str(stats_path)) != data_config(data):
            raise UserError(
                f"{name}: {run_dir} was trained on an earlier version of {data} (the data "
                f"set's config differs from the one in {stats_path}); delete {run_dir} to "
                "train it again on the current data, or use another --out"
            )


def _run(spec: Any, cfg: BaseModel, run_dir: Path) -> None:
    """Train (or resume) one run unless finished, evaluate it once, write its page."""
    if _finished(run_dir, cfg.training.epochs):
        _check_same_config(spec.name, cfg, run_dir)
        print(f"{spec.name}: already trained", flush=True)
    else:
        resume = bool(RunDir(run_dir).checkpoints())
        print(f"{spec.name}: {'resuming' if resume else 'training'} {spec.config}", flush=True)
        train(cfg, run_dir, resume=resume)
    if spec.evaluate and not (run_dir / "evaluation.json").is_file():
        options = dict(spec.evaluate_options)
        if spec.evaluate is not True:
            options["n"] = spec.evaluate
        print(f"{spec.name}: evaluating", flush=True)
        evaluate(run_dir, device=cfg.training.device, **options)
    report_run(run_dir)


def _pipelines(study: StudyConfig, out: Path, finished: set[str]) -> list[tuple[str, Path]]:
    """Run every pipeline whose runs are finished (once); ``(name, pipeline.md)`` each."""
    from coldflow.tasks.pipeline.evaluation import evaluate_pipeline

    done = []
    for p in study.pipelines:
        target = out / "pipelines" / p.name
        sol = [n for n in p.sol if n in finished]
        sr = [n for n in p.sr if n in finished]
        if not sol:
            continue
        if not (target / "pipeline.json").is_file():
            print(f"pipeline {p.name}: {len(sol)} SOL x {len(sr)} SR runs", flush=True)
            evaluate_pipeline(
                [out / n for n in sol], [out / n for n in sr], target, steps=p.steps,
                metrics=p.metrics,
            )  # fmt: skip
        done.append((p.name, target / "pipeline.md"))
    return done


def _summary_table(kind: str, runs: list[Path]) -> str:
    """Each run's training outcome (epochs, final loss, last logged evaluation metrics)
    and the headline numbers of its ``evaluation.json`` (the task's summary)."""
    from coldflow.report.runs import metric_series

    rows, columns = [], {}
    for run in runs:
        events = RunDir(run).read_metrics()
        epochs, losses = metric_series(events, "train", "loss")
        summary: dict = {
            "epochs": epochs[-1] if epochs else "",
            "train loss": losses[-1] if losses else "",
        }
        for name in sorted({e["name"] for e in events if e.get("split") == "eval"}):
            summary[f"{name} (last epoch)"] = metric_series(events, "eval", name)[1][-1]
        ev_path = run / "evaluation.json"
        if ev_path.is_file():
            summary |= TASKS[kind].summary(json.loads(ev_path.read_text()))
        columns |= dict.fromkeys(summary)
        rows.append((run.name, summary))
    return markdown_table(
        ["run", *columns], [[name, *(s.get(c, "") for c in columns)] for name, s in rows]
    )


_FLUID_COLUMNS = ("MSE", "MAE", "rel. L1", "PSNR", "LSiM", "LPIPS", "VGG")


def _results_table(groups: dict[str, list[Path]], configs: dict) -> str:
    """The fluid study's results table: rows task x loss (one per run), columns the
    field metrics of each learned model on its test data and its time cost."""
    rows, times = [], {}
    for runs in groups.values():
        for run in runs:
            ev = run / "evaluation.json"
            cfg = configs[run.name]
            kind = cfg.method.kind
            loss = getattr(getattr(cfg.method, "loss", None), "name", None)
            if loss is None or not ev.is_file():
                continue
            summary = TASKS[kind].summary(json.loads(ev.read_text()))
            times |= dict.fromkeys(k for k in summary if k.startswith("time"))
            rows.append((run.name, kind, loss, summary))
    if not rows:
        return ""
    columns = [c for c in _FLUID_COLUMNS if any(c in r[3] for r in rows)] + list(times)
    return markdown_table(
        ["run", "task", "loss", *columns],
        [[name, kind, loss, *(s.get(c, "") for c in columns)] for name, kind, loss, s in rows],
    )


def write_study_page(
    study: StudyConfig,
    out: Path,
    groups: dict[str, list[Path]],
    missing: list[str],
    configs: dict,
    skipped: dict[str, str] | None = None,
    pipelines: Sequence[tuple[str, Path]] = (),
) -> Path:
    """``out/index.html`` and ``out/results.md``; one comparison page per task."""
    name = study.name
    md = [f"# Study {name}", ""]
    body = [f"<h1>Study {html.escape(name)}</h1>"]
    if study.description:
        md += [study.description, ""]
        body.append(f"<p>{html.escape(study.description)}</p>")
    notes = []
    if missing:
        notes.append(f"Not finished (not shown): {', '.join(missing)}.")
    by_reason: dict[str, list[str]] = {}
    for run, reason in (skipped or {}).items():
        by_reason.setdefault(reason, []).append(run)
    notes += [f"Skipped {', '.join(runs)}: {reason}" for reason, runs in by_reason.items()]
    md += [*(f"- {n}" for n in notes), ""] if notes else []
    body += notes_html(notes)
    results = _results_table(groups, configs)
    if results:
        title = "Results: every task x loss on its test simulations (learned models)"
        md += [f"## {title}", "", results, "Baselines are in each task's table below.", ""]
        body += [f"<h2>{html.escape(title)}</h2>", *markdown_to_html(results)]
    for group, runs in groups.items():
        kind = configs[runs[0].name].method.kind
        task = TASKS[kind]
        labels = [r.name for r in runs]
        extra = task.compare(runs, out / group, labels)

        def describe(run: Path) -> str:
            cfg = configs[run.name]
            return TASKS[cfg.method.kind].describe(cfg)

        page_path = write_comparison(
            runs, out / group, labels=labels, extra=extra, describe=describe, title=f"{group} runs"
        )
        summary = _summary_table(kind, runs)
        findings = task.findings(runs, labels)
        md += [f"## {group}", "", *[f"- {f}" for f in findings], "" if findings else "", summary]
        for caption, table in extra.tables:
            md += [f"### {caption}", "", table]
        href = html.escape(Path(os.path.relpath(page_path, out)).as_posix(), quote=True)
        body += [f'<h2>{html.escape(group)}: <a href="{href}">comparison page</a></h2>']
        if findings:
            items = "".join(f"<li>{html.escape(f)}</li>" for f in findings)
            body.append(f"<p>Findings (generated from the numbers):</p><ul>{items}</ul>")
        body += markdown_to_html(summary)
        for caption, table in extra.tables:
            body += [f"<h3>{html.escape(caption)}</h3>", *markdown_to_html(table)]
    for pname, table_path in pipelines:
        table = table_path.read_text()
        md += [f"## Pipeline {pname}: low-resolution solver + upsampling", "", table]
        body += [f"<h2>Pipeline {html.escape(pname)}: low-resolution solver + upsampling</h2>"]
        body += markdown_to_html(table)
        figs = [
            Figure(table_path.parent / "figures" / f, c)
            for f, c in (
                ("pipeline_error_vs_cost.png", "Mean error at high resolution against cost."),
                ("pipeline_error_vs_step.png", "Error of every pipeline against step."),
            )
        ]
        body += figures_html(figs, out)
    write_text(out / "results.md", "\n".join(md))
    index = out / "index.html"
    write_text(index, page(f"coldflow study {name}", body))
    return index
