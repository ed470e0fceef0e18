"""The one path from a config to a trained, evaluated and reported run, for every task.

``train`` checks what can fail, writes the run files, builds the task's model and data
set and trains them with the one :class:`~coldflow.training.trainer.Trainer`; ``load_run``
rebuilds a trained model (EMA weights when kept); ``evaluate`` writes
``evaluation.json``; ``report`` writes ``report.html`` (and compares several runs). What
differs between kinds of runs is asked of the task (:mod:`coldflow.tasks`).
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from coldflow.config import ConfigError, dump_yaml, load_config
from coldflow.errors import UserError
from coldflow.io import write_json
from coldflow.runs import RunDir
from coldflow.tasks import TASKS, LoadedRun, Task, kind_of
from coldflow.tasks.handle import check_counts, load_run, read_run_files
from coldflow.training.parts import resolve_device, seed_everything, trajectory_hash
from coldflow.training.trainer import Trainer

__all__ = [
    "LoadedRun",
    "check_counts",
    "evaluate",
    "load_config_file",
    "load_run",
    "report",
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


def sample(run_dir: str | Path, n: int = 16, device: str = "auto", **options: Any):
    """Draw ``n`` samples from a trained generative run (the config's sampler by default).

    Returns
    -------
    tuple
        ``(SampleResult, LoadedRun)``.
    """
    kind = kind_of(run_dir)
    task = TASKS[kind]
    if not hasattr(task, "sample"):
        raise UserError(
            f"{run_dir} is a {kind} run, which draws no samples; use `coldflow evaluate`"
        )
    check_counts(n=n, steps=options.get("steps"))
    opts = _options_for(task, "sample", options, kind)
    loaded = load_run(run_dir, device)
    return task.sample(loaded, n, **opts), loaded


def evaluate(run_dir: str | Path, device: str = "auto", **options: Any) -> dict[str, Any]:
    """Score a trained run with its task's evaluation; writes ``evaluation.json``.

    ``options`` are the task's evaluation options (``None`` values mean the default).
    """
    kind = kind_of(run_dir)
    task = TASKS[kind]
    check_counts(**{k: options.get(k) for k in ("n", "steps", "start")})
    opts = _options_for(task, "evaluate", options, kind)
    loaded = load_run(run_dir, device)
    t0 = time.perf_counter()
    result = task.evaluate(loaded, **opts)
    result |= {
        "task": kind,
        "epoch": loaded.epoch,
        "seconds": time.perf_counter() - t0,
        "device": str(loaded.device),
    }
    write_json(loaded.run.path / "evaluation.json", result)
    return result


def report(paths: list[str | Path], out: str | Path | None = None) -> list[Path]:
    """``report.html`` of every run, and a comparison page when there are several.

    Runs compared together must be of one task. Returns the pages written.
    """
    from coldflow.report import write_comparison

    runs = [Path(p) for p in paths]
    tasks = {}
    pages = []
    for p in runs:
        kind = kind_of(p)
        tasks[p] = TASKS[kind]
        pages.append(report_run(p))
    if len(runs) > 1:
        kinds = {t.kinds[0] for t in tasks.values()}
        if len(kinds) > 1:
            raise UserError(
                f"runs of different tasks ({', '.join(sorted(kinds))}) cannot be compared on "
                "one page; report them separately (or run a study)"
            )
        if out is None:
            raise UserError("give --out DIR for the comparison page of several runs")
        task = tasks[runs[0]]
        labels = [p.name for p in runs]  # directory names: unique, unlike config names
        extra = task.compare(runs, Path(out), labels)
        pages.append(write_comparison(runs, out, labels=labels, extra=extra, describe=_describe))
    return pages


def _config_of(run_dir: Path) -> BaseModel | None:
    try:
        return load_config(run_dir / "config.yaml", TASKS[kind_of(run_dir)].config_model)
    except (ConfigError, FileNotFoundError):
        return None


def _describe(run_dir: Path) -> str:
    cfg = _config_of(run_dir)
    return "" if cfg is None else _task(cfg).describe(cfg)


def report_run(run_dir: str | Path) -> Path:
    """Write ``report.html`` of one run (any task): curves, the task's figures, evaluation."""
    from coldflow.report import write_run_report

    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise FileNotFoundError(f"{run.path}: no such run directory")
    cfg = _config_of(run.path) if run.exists() else None
    notes: list[str] = []
    figures = [] if cfg is None else _task(cfg).figures(run, cfg, notes)
    if cfg is None:
        notes.append("config.yaml is missing or unreadable: task figures skipped")
    description = "" if cfg is None else _task(cfg).describe(cfg)
    label = cfg.name if cfg is not None else run.path.name
    epochs = None if cfg is None else cfg.training.epochs
    tables = [] if cfg is None else _task(cfg).run_tables(run, cfg)
    return write_run_report(
        run.path, label=label, description=description, figures=figures, notes=notes,
        epochs=epochs, tables=tables,
    )  # fmt: skip
