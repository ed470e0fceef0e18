"""The one path from a config to a trained, evaluated and reported run, for every task.

``train`` checks what can fail, writes the run files, builds the task's model and data
set and trains them with the one :class:`~coldflow.training.trainer.Trainer`; ``load_run``
rebuilds a trained model (EMA weights when kept); ``evaluate`` writes
``evaluation.json``; ``report`` writes ``report.html`` (and compares several runs). What
differs between kinds of runs is asked of the task (:mod:`coldflow.tasks`).
"""

from __future__ import annotations

import inspect
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from coldflow.config import ConfigError, dump_yaml, load_config
from coldflow.errors import UserError
from coldflow.io import write_json
from coldflow.runs import RunDir
from coldflow.tasks import TASKS, LoadedRun, Task, kind_of, task_of
from coldflow.tasks.handle import RunHandle, check_counts, load_run, open_run, read_run_files
from coldflow.training.device import resolve_device, seed_everything
from coldflow.training.hashes import trajectory_hash
from coldflow.training.trainer import Trainer

__all__ = [
    "LoadedRun",
    "RunHandle",
    "check_counts",
    "evaluate",
    "load_config_file",
    "load_run",
    "open_run",
    "report",
    "report_configs",
    "report_paths",
    "resume_hint",
    "sample",
    "train",
]


def load_config_file(path: str | Path, overrides: list[str] | None = None) -> BaseModel:
    """Validate a config file (any task) against its task's model, with ``--set`` overrides."""
    return load_config(path, TASKS[kind_of(path)].config_model, overrides)


def _task(cfg: BaseModel) -> Task:
    return TASKS[cfg.method.kind]


def train(
    config: BaseModel | str | Path,
    run_dir: str | Path,
    *,
    overrides: list[str] | None = None,
    resume: bool = False,
    finish: bool = True,
) -> RunDir:
    """Train the run described by ``config`` into ``run_dir``.

    Parameters
    ----------
    config
        A validated config of any task, or the path of a YAML file (then ``overrides``
        apply).
    run_dir
        Output directory. It must not hold checkpoints of another run unless ``resume``.
    resume
        Continue from the latest checkpoint of ``run_dir``.
    finish
        After training, let the task finish the run (e.g. draw the final samples).

    Returns
    -------
    RunDir
        The run directory.
    """
    cfg = config if isinstance(config, BaseModel) else load_config_file(config, overrides)
    task = _task(cfg)
    run = RunDir(run_dir)
    run.check_can_train(resume)
    resolve_device(cfg.training.device)  # a missing GPU fails before anything is written
    task.check(cfg)
    if os.environ.get("RANK", "0") != "0":  # other ranks of a multi-process run write nothing
        return _train(cfg, task, run, resume, finish)
    created = not run.path.exists()
    try:
        with run.writing():
            run.check_can_train(resume)  # again: another process may have trained meanwhile
            return _train(cfg, task, run, resume, finish)
    except BaseException:
        if created and {p.name for p in run.path.iterdir()} <= {run.lock_path.name}:
            shutil.rmtree(run.path, ignore_errors=True)  # a failed start leaves nothing
        raise


def _train(cfg: BaseModel, task: Task, run: RunDir, resume: bool, finish: bool) -> RunDir:
    stored = read_run_files(run, task.files) if resume else {}
    seed_everything(cfg.seed)  # the initial weights depend on the seed alone
    prepared = task.prepare(cfg, stored)
    if run.write:
        for name, content in prepared.files.items():
            write_json(run.path / name, content)
    trainer = Trainer(
        prepared.model,
        prepared.dataset,
        cfg.training,
        run,
        cfg.seed,
        hooks=prepared.hooks,
        config_text=dump_yaml(cfg),
        config_hash=trajectory_hash(cfg, task.hash_exclude),
    )
    try:
        trainer.fit(resume=resume)
        if finish and trainer.rank == 0:
            loaded = LoadedRun(
                cfg, run, trainer.eval_model, trainer.epoch, trainer.device, prepared.files
            )
            task.finish(loaded)
    finally:
        trainer.close()
    return run


def _options_for(task: Task, method: str, options: dict[str, Any], kind: str) -> dict[str, Any]:
    """The options a task's ``method`` accepts; a given option it does not take is an error."""
    accepted = set(inspect.signature(getattr(task, method)).parameters) - {"loaded"}
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - accepted)
    if unknown:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in unknown)
        raise UserError(
            f"{flags} does not apply to {kind} runs; their {method} takes "
            + (", ".join(f"--{k.replace('_', '-')}" for k in sorted(accepted)) or "no options")
        )
    return given


def sample(run_dir: str | Path | RunHandle, n: int = 16, device: str = "auto", **options: Any):
    """Draw ``n`` samples from a trained generative run (the config's sampler by default).

    Returns
    -------
    tuple
        ``(SampleResult, LoadedRun)``.
    """
    handle = open_run(run_dir)
    if not handle.task.draws_samples:
        raise UserError(
            f"{run_dir} is a {handle.kind} run, which draws no samples; use `coldflow evaluate`"
        )
    check_counts(n=n, steps=options.get("steps"))
    opts = _options_for(handle.task, "sample", options, handle.kind)
    loaded = load_run(handle, device)
    return handle.task.sample(loaded, n, **opts), loaded


def evaluate(
    run_dir: str | Path | RunHandle, device: str = "auto", **options: Any
) -> dict[str, Any]:
    """Score a trained run with its task's evaluation; writes ``evaluation.json``.

    ``options`` are the task's evaluation options (``None`` values mean the default).
    """
    handle = open_run(run_dir)
    check_counts(**{k: options.get(k) for k in ("n", "steps", "start")})
    opts = _options_for(handle.task, "evaluate", options, handle.kind)
    loaded = load_run(handle, device)
    writer = handle.run.writer()
    if writer is not None:  # a reader does not wait, but says what it reads
        print(
            f"note: {handle.path} is still training ({writer}); evaluating its latest "
            f"checkpoint, epoch {loaded.epoch}",
            flush=True,
        )
    t0 = time.perf_counter()
    result = handle.task.evaluate(loaded, **opts)
    result |= {
        "task": handle.kind,
        "epoch": loaded.epoch,
        "seconds": time.perf_counter() - t0,
        "device": str(loaded.device),
    } | ({"still_training": True} if writer is not None else {})
    write_json(loaded.run.path / "evaluation.json", result)
    return result


def report(paths: list[str | Path], out: str | Path | None = None) -> list[Path]:
    """``report.html`` of every run, and a comparison page when there are several.

    Runs compared together must be of one task. Returns the pages written.
    """
    from coldflow.report import write_comparison

    runs = [Path(p) for p in paths]
    kinds = {}
    pages = []
    for p in runs:
        kinds[p] = kind_of(p)
        pages.append(report_run(p))
    if len(runs) > 1:
        if len(set(kinds.values())) > 1:
            raise UserError(
                f"runs of different tasks ({', '.join(sorted(set(kinds.values())))}) cannot "
                "be compared on one page; report them separately (or run a study)"
            )
        if out is None:
            raise UserError("give --out DIR for the comparison page of several runs")
        task = TASKS[kinds[runs[0]]]
        labels = [p.name for p in runs]  # directory names: unique, unlike config names
        extra = task.compare(runs, Path(out), labels)
        pages.append(write_comparison(runs, out, labels=labels, extra=extra, describe=_describe))
    return pages


def report_paths(paths: Sequence[str | Path], out: str | Path | None = None) -> list[str]:
    """``coldflow report``: pages of run directories (:func:`report`), figures of config
    files (:func:`report_configs`) and of fluid data sets (``.h5``). One line per output.
    """
    from coldflow.report.datasets import report_dataset

    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or run directory")
    configs = [p for p in paths if p.suffix in (".yaml", ".yml")]
    datasets = [p for p in paths if p.suffix in (".h5", ".hdf5")]
    runs = [p for p in paths if p not in configs and p not in datasets]
    lines = [f"figure: {f}" for f in report_configs(configs, out or Path("runs") / "schedules")]
    for p in datasets:
        target = Path(out) / p.stem if out else p.with_name(f"{p.stem}_figures")
        lines.append(f"{p}: {len(report_dataset(p, target))} figures in {target}")
    if runs:
        lines += [f"report: {page}" for page in report(runs, out)]
    return lines


def report_configs(paths: Sequence[str | Path], out: str | Path) -> list[Path]:
    """Figures of config files (e.g. the schedules of diffusion configs), into ``out``.

    Configs validated by one config model are drawn together (DDPM and cold diffusion
    schedules on one figure); a task with nothing to draw says so.
    """
    by_model: dict[type, tuple[Task, list[Path]]] = {}
    for p in map(Path, paths):
        task = task_of(p)
        by_model.setdefault(task.config_model, (task, []))[1].append(p)
    figures = []
    for task, files in by_model.values():
        figure = task.draw_configs([(p.stem, load_config_file(p)) for p in files], Path(out))
        if figure is None:
            raise UserError(
                f"{', '.join(map(str, files))}: {task.kinds[0]} configs have no figure of "
                "their own; train a run and report its directory"
            )
        figures.append(figure)
    return figures


def _handle(run_dir: Path) -> RunHandle | None:
    try:
        return open_run(run_dir)
    except (ConfigError, FileNotFoundError):
        return None


def _describe(run_dir: Path) -> str:
    handle = _handle(run_dir)
    return "" if handle is None else handle.task.describe(handle.cfg)


def report_run(run_dir: str | Path) -> Path:
    """Write ``report.html`` of one run (any task): curves, the task's figures, evaluation."""
    from coldflow.report import write_run_report

    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise FileNotFoundError(f"{run.path}: no such run directory")
    handle = _handle(run.path) if run.exists() else None
    if handle is None:
        return write_run_report(
            run.path, label=run.path.name,
            notes=["config.yaml is missing or unreadable: task figures skipped"],
        )  # fmt: skip
    cfg, task = handle.cfg, handle.task
    notes: list[str] = []
    figures = task.figures(run, cfg, notes)
    return write_run_report(
        run.path, label=cfg.name, description=task.describe(cfg), figures=figures, notes=notes,
        epochs=cfg.training.epochs, tables=task.run_tables(run, cfg),
    )  # fmt: skip


def resume_hint(run_dir: Path) -> str:
    """What an interrupted ``train`` kept in ``run_dir`` and the command that continues."""
    epochs = RunDir(run_dir).checkpoints()
    if not epochs:
        return (
            f"no checkpoint yet in {run_dir} (one is written after every epoch); "
            "the same command starts the run again"
        )
    return (
        f"the last checkpoint is epoch {epochs[-1]} in {run_dir}; "
        f"continue with: coldflow train --resume --run-dir {run_dir}"
    )
