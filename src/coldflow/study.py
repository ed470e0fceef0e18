"""Studies: many runs of any tasks, trained, evaluated and compared on one page.

A study file lists runs (a config file and overrides each). ``run_study`` trains every
run that is not finished (resuming interrupted ones), evaluates it when asked, writes
its ``report.html``, and builds ``index.html`` and ``results.md``: one comparison per
task, with each run's headline numbers. ``shard=(i, n)`` runs only runs i, i + n, ...
(one job of a scheduler's array); ``collect`` builds the pages from finished runs only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from coldflow.config import StudyConfig, load_config
from coldflow.errors import UserError
from coldflow.experiment import evaluate, load_config_file, report_run, train
from coldflow.io import exclusive_lock, write_text
from coldflow.report import write_comparison
from coldflow.report.html import Figure, markdown_table, markdown_to_html, page, thumbnails_markdown
from coldflow.runs import RunDir
from coldflow.tasks import Task, task_for

__all__ = ["run_study"]


def _finished(run_dir: Path, cfg: BaseModel) -> bool:
    run = RunDir(run_dir)
    done = run.checkpoints() if run.exists() else []
    return bool(done) and done[-1] >= cfg.training.epochs and task_for(cfg).finished(run)


def run_study(
    path: str | Path,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    shard: tuple[int, int] = (0, 1),
    collect: bool = False,
    run_pipelines: bool = True,
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
    run_pipelines
        Evaluate every pipeline whose runs are finished (again when more have finished);
        False: show only the pipelines already evaluated on the current runs, and name the
        others on the page as not evaluated.

    Returns
    -------
    Path or None
        ``out/index.html``; None for a shard of several (collect afterwards).
    """
    path = Path(path)
    study = load_config(path, StudyConfig)
    out = Path(out) if out else Path("runs") / study.name
    index, count = shard
    configs = {}
    for spec in study.runs:  # validate every config before the first run starts
        cfg_path = (path.parent / spec.config).resolve()
        configs[spec.name] = load_config_file(cfg_path, [*overrides, *spec.set])
    skipped = {s.name: r for s in study.runs if (r := _cannot_run(configs[s.name]))}
    mine = [s for k, s in enumerate(study.runs) if k % count == index]
    if not collect:
        with _shard_lock(out, index, count):
            _print_plan(study, out, configs, mine, skipped)
            _make_data(study, path, sharded=count > 1)
            for spec in mine:
                if spec.name in skipped:
                    print(f"{spec.name}: skipped: {skipped[spec.name]}", flush=True)
                else:
                    _run(spec, configs[spec.name], out / spec.name)
    if count > 1 and not collect:
        print(f"shard {index}/{count} done; build the page with --collect once all are done")
        return None
    finished = [s for s in study.runs if _finished(out / s.name, configs[s.name])]
    missing = [s.name for s in study.runs if s not in finished and s.name not in skipped]
    training = {n: w for n in missing if (w := RunDir(out / n).writer())}
    for name in missing:
        state = f"still training, {training[name]}" if name in training else "not finished"
        print(f"{name}: {state}; not on the page", flush=True)
    if not finished:
        raise UserError(f"{out}: no run of the study is finished yet; train it first")
    groups: dict[str, list[Path]] = {}
    for spec in finished:
        cfg = configs[spec.name]
        groups.setdefault(task_for(cfg).group(cfg), []).append(out / spec.name)
    pipelines, pending = _pipelines(study, out, {s.name for s in finished}, run_pipelines)
    if pending:
        missing = [*missing, *(f"pipeline {p} (not evaluated: --no-pipelines)" for p in pending)]
    return write_study_page(study, out, groups, missing, configs, skipped, pipelines, training)


def _shard_lock(out: Path, index: int, count: int) -> contextlib.AbstractContextManager[None]:
    """The lock of one shard of a study: the same shard twice at once is refused."""
    name = f"{out.name}.lock" if count == 1 else f"{out.name}.shard-{index}-of-{count}.lock"
    what = f"study {out}" + (f" (shard {index}/{count})" if count > 1 else "")
    return exclusive_lock(out.parent / name, what)


def _print_plan(
    study: StudyConfig, out: Path, configs: dict, mine: list, skipped: dict[str, str]
) -> None:
    """What the study (this shard) will do, and how long a finished step took last time."""
    from coldflow.report.runs import training_time

    print(f"study {study.name}: {len(study.data)} data sets, {len(mine)} runs -> {out}")
    for spec in study.data:
        state = "exists (reused when complete)" if Path(spec.out).is_file() else "to simulate"
        took = _simulated_in(Path(spec.out))
        if took:
            state += f", simulated in {took}"
        print(f"  data {spec.out}: {state}", flush=True)
    skipped_seeds: dict[str, list[int]] = {}
    for spec in mine:
        if spec.name in skipped and spec.seed is not None:
            skipped_seeds.setdefault(spec.configuration, []).append(spec.seed)
    for spec in mine:
        run = RunDir(out / spec.name)
        done = run.checkpoints() if run.exists() else []
        epochs = configs[spec.name].training.epochs
        if spec.name in skipped and spec.seed is not None:  # once per configuration
            seeds = skipped_seeds.pop(spec.configuration, None)
            if seeds is not None:
                listed = ", ".join(map(str, seeds))
                print(f"  run {spec.configuration} (seeds {listed}): skipped (weights missing)")
            continue
        if spec.name in skipped:
            state = "skipped (weights missing)"
        elif done and done[-1] >= epochs:
            state = f"finished (trained in {training_time(run.read_metrics()) or 'unknown time'})"
        elif done:
            state = f"resumes at epoch {done[-1] + 1} of {epochs}"
        else:
            state = f"to train, {epochs} epochs"
        print(f"  run {spec.name}: {state}", flush=True)


def _simulated_in(path: Path) -> str:
    """How long the simulations of a data set took when it was made (``""``: unknown, e.g.
    made before coldflow recorded it, or not there)."""
    from coldflow.data.store import FieldData
    from coldflow.io import format_duration

    if not path.is_file():
        return ""
    try:
        with FieldData(path) as data:
            seconds = [s.attrs.get("simulate_seconds") for s in data.simulations()]
    except (OSError, UserError):
        return ""
    if not seconds or any(s is None for s in seconds):
        return ""
    return format_duration(sum(float(s) for s in seconds))


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
        simulate((path.parent / spec.config).resolve(), target, overrides=spec.set)


def _cannot_run(cfg: BaseModel) -> str:
    """Why a run cannot be trained here (pretrained weights missing), or ``""``."""
    from coldflow.hub import HubError

    try:
        task_for(cfg).check_weights(cfg)
    except HubError as e:
        return " ".join(str(e).split())
    return ""


def _run(spec: Any, cfg: BaseModel, run_dir: Path) -> None:
    """Train (or resume) one run unless finished, evaluate it once, write its page."""
    if _finished(run_dir, cfg):
        task_for(cfg).check_reusable(spec.name, cfg, RunDir(run_dir))
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


def _pipelines(
    study: StudyConfig, out: Path, finished: set[str], run: bool = True
) -> tuple[list[tuple[str, Path]], list[str]]:
    """Run every pipeline whose runs are finished (again when more of its runs have
    finished since it ran): ``(name, pipeline.md)`` each, and (``run`` False: none is
    evaluated) the names of those that would have been."""
    from coldflow.tasks.pipeline.evaluation import evaluate_pipeline

    done, pending = [], []
    for p in study.pipelines:
        target = out / "pipelines" / p.name
        sol = [n for n in p.sol if n in finished]
        sr = [n for n in p.sr if n in finished]
        if not sol:
            continue
        stored = target / "pipeline.json"
        ran = json.loads(stored.read_text()).get("runs") if stored.is_file() else None
        if ran != {"sol": sol, "sr": sr}:
            if not run:
                print(f"pipeline {p.name}: not evaluated (--no-pipelines)", flush=True)
                pending.append(p.name)
                continue
            print(f"pipeline {p.name}: {len(sol)} SOL x {len(sr)} SR runs", flush=True)
            evaluate_pipeline(
                [out / n for n in sol], [out / n for n in sr], target, steps=p.steps,
                metrics=p.metrics,
            )  # fmt: skip
        done.append((p.name, target / "pipeline.md"))
    return done, pending


def _summary_table(task: Task, runs: list[Path]) -> str:
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
            summary |= task.summary(json.loads(ev_path.read_text()))
        columns |= dict.fromkeys(summary)
        rows.append((run.name, summary))
    return markdown_table(
        ["run", *columns], [[name, *(s.get(c, "") for c in columns)] for name, s in rows]
    )


def _results_table(groups: dict[str, list[Path]], configs: dict) -> str:
    """One row per evaluated run of every task that has a row (:meth:`Task.results_row`):
    its headline numbers on its test data and its time cost."""
    rows = []
    for runs in groups.values():
        for run in runs:
            ev = run / "evaluation.json"
            cfg = configs[run.name]
            row = (
                task_for(cfg).results_row(cfg, json.loads(ev.read_text())) if ev.is_file() else None
            )
            if row is not None:
                rows.append((run.name, row))
    if not rows:
        return ""
    columns = list(dict.fromkeys(c for _, row in rows for c in row))
    return markdown_table(
        ["run", *columns], [[name, *(row.get(c, "") for c in columns)] for name, row in rows]
    )


def _href(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path, out)).as_posix()


def _thumbnails(figures: Sequence[Figure], runs: Sequence[Path], compared: Path, out: Path) -> str:
    """The markdown line of a group's key figures (:meth:`Task.key_figures`): a figure in
    a run's directory links to that run's ``report.html``, any other to the comparison
    page ``compared``."""
    items = []
    for f in figures:
        link = compared
        for run in runs:
            report = Path(run) / "report.html"
            if Path(f.path).resolve().is_relative_to(Path(run).resolve()) and report.is_file():
                link = report
        items.append((Path(f.path), f.caption, link))
    return thumbnails_markdown(items, out)


def _over_seeds(study: StudyConfig, task: Task, runs: list[Path], configs: dict) -> list[str]:
    """The markdown of a group's results over seeds: each configuration's mean with a 95 %
    interval over its seeds, and paired verdicts against the baselines and MSE."""
    from coldflow.report.seeds import (
        paired_rows,
        paired_table,
        seed_findings,
        seed_table,
        thesis_findings,
    )

    of = {name: c for c, names in study.seeds_of().items() for name in names}
    configurations: dict[str, list[Path]] = {}
    for run in runs:
        configurations.setdefault(of.get(run.name, run.name), []).append(run)
    md = []
    table = seed_table(task, configurations, configs)
    if table:
        md += ["### Over seeds: mean ± 95 % interval (Student t over seeds)", "", table]
    pairs = paired_rows(task, configurations, configs)
    if pairs:
        n = {name: len(r) for name, r in configurations.items()}
        md += [
            "### Paired differences over seeds and test simulations (95 %)",
            "",
            "Configuration minus what it is compared with, per metric, paired seed by seed "
            "and test simulation by test simulation; 'tie': the interval holds zero, so the "
            "two cannot be told apart at this size.",
            "",
            paired_table(pairs),
            "Verdicts (generated from the intervals):",
            *[f"- {f}" for f in seed_findings(pairs, n)],
            "",
        ]
        thesis = thesis_findings(pairs, configurations)
        if thesis:
            md += [
                "### The thesis's question: does a loss that judges structure beat MSE?",
                "",
                "On the metrics no loss is trained on, paired over seeds and test "
                "simulations (95 %), and at what cost in training time:",
                "",
                *[f"- {f}" for f in thesis],
                "",
            ]
    return md


def _pipelines_over_seeds(study: StudyConfig, pipelines: Sequence[tuple[str, Path]]) -> list[str]:
    """Markdown: each study pipeline run with several seeds, over its seeds
    (:func:`~coldflow.report.seeds.pipeline_seed_table`); nothing without seeds."""
    from coldflow.report.seeds import pipeline_seed_table

    of = {name: c for c, names in study.seeds_of().items() for name in names}
    by_base: dict[str, list[dict]] = {}
    for name, table_path in pipelines:  # seeded pipelines are named <name>_s<seed>
        base = m.group(1) if (m := re.fullmatch(r"(.+)_s\d+", name)) else name
        stored = table_path.parent / "pipeline.json"
        if stored.is_file():
            by_base.setdefault(base, []).append(json.loads(stored.read_text()))
    md = []
    for base, results in by_base.items():
        table, said = pipeline_seed_table(results, of)
        if table:
            md += [
                f"## Pipeline {base} over seeds: mean ± 95 % interval (Student t over seeds)",
                "",
                table,
                "",
                *[f"- {s}" for s in said],
                "",
            ]
    return md


def write_study_page(
    study: StudyConfig,
    out: Path,
    groups: dict[str, list[Path]],
    missing: list[str],
    configs: dict,
    skipped: dict[str, str] | None = None,
    pipelines: Sequence[tuple[str, Path]] = (),
    training: dict[str, str] | None = None,
) -> Path:
    """``out/results.md`` and the same page as ``out/index.html``; one comparison page per
    group of runs. The page is written once, in markdown, and rendered to HTML.

    Each group shows its task's key figures (:meth:`Task.key_figures`) as thumbnails
    linking to the full page; each pipeline its error against step and cost, linking
    to the full-size figures."""
    from coldflow.tasks.pipeline.figures import key_figures as pipeline_key_figures

    md = [f"# Study {study.name}", ""]
    if study.description:
        md += [study.description, ""]
    notes = []
    training = training or {}
    if [n for n in missing if n not in training]:
        notes.append(
            f"Not finished (not shown): {', '.join(n for n in missing if n not in training)}."
        )
    if training:
        notes.append(f"Still training (not shown): {', '.join(training)}.")
    by_reason: dict[str, list[str]] = {}
    for run, reason in (skipped or {}).items():
        by_reason.setdefault(reason, []).append(run)
    notes += [f"Skipped {', '.join(runs)}: {reason}" for reason, runs in by_reason.items()]
    md += [*(f"- {n}" for n in notes), ""] if notes else []
    results = _results_table(groups, configs)
    if results:
        title = "Results: every run on its test data (learned models)"
        md += [f"## {title}", "", results, "Baselines are in each task's table below.", ""]
    for group, runs in groups.items():
        task = task_for(configs[runs[0].name])
        labels = [r.name for r in runs]
        extra = task.compare(runs, out / group, labels)

        def describe(run: Path) -> str:
            cfg = configs[run.name]
            return task_for(cfg).describe(cfg)

        page_path = write_comparison(
            runs, out / group, labels=labels, extra=extra, describe=describe, title=f"{group} runs"
        )
        md += [f"## {group}", "", f"[Comparison page]({_href(page_path, out)})", ""]
        thumbs = _thumbnails(task.key_figures(runs, out / group), runs, page_path, out)
        md += [thumbs, ""] if thumbs else []
        findings = task.findings(runs, labels)
        if findings:
            md += ["Findings (generated from the numbers):", *[f"- {f}" for f in findings], ""]
        md.append(_summary_table(task, runs))
        if any(r.seed is not None for r in study.runs):
            md += _over_seeds(study, task, runs, configs)
        for caption, table in extra.tables:
            md += [f"### {caption}", "", table]
    across: list[str] = []
    for task in dict.fromkeys(task_for(configs[r[0].name]) for r in groups.values()):
        across += task.study_findings(groups)
    if across:
        md += ["## Across groups", "", "Findings (generated from the numbers):"]
        md += [*(f"- {f}" for f in across), ""]
    md += _pipelines_over_seeds(study, pipelines)
    for pname, table_path in pipelines:
        md += [f"## Pipeline {pname}: low-resolution solver + upsampling", ""]
        md += [table_path.read_text(), ""]
        figures = pipeline_key_figures(table_path.parent)
        thumbs = thumbnails_markdown([(f.path, f.caption, f.path) for f in figures], out)
        md += [thumbs, ""] if thumbs else []
    text = "\n".join(md)
    write_text(out / "results.md", text)
    index = out / "index.html"
    write_text(index, page(f"coldflow study {study.name}", markdown_to_html(text)))
    return index
