"""Opening a run directory: its config and task (a :class:`RunHandle`, parsed once and
passed down), its files, its trained model, the counts a command asks for.

Used by :mod:`coldflow.experiment`, :mod:`coldflow.study` and by tasks that read other
runs (the pipeline).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from coldflow.config import load_config
from coldflow.errors import UserError
from coldflow.runs import RunDir
from coldflow.tasks.base import LoadedRun, Task
from coldflow.training.device import resolve_device

__all__ = ["RunHandle", "check_counts", "load_run", "open_run", "read_run_files"]


@dataclass(frozen=True)
class RunHandle:
    """A run directory with its parsed ``config.yaml`` and its task."""

    run: RunDir
    cfg: BaseModel
    task: Task

    @property
    def path(self) -> Path:
        """The run directory."""
        return self.run.path

    @property
    def kind(self) -> str:
        """The task's ``method.kind``."""
        return self.task.kinds[0]


def open_run(path: str | Path | RunHandle) -> RunHandle:
    """Parse a run directory's ``config.yaml`` with its task's model (a handle: itself).

    Raises
    ------
    FileNotFoundError
        If ``path`` is no run directory (no ``config.yaml``).
    ConfigError
        If its config does not validate.
    """
    if isinstance(path, RunHandle):
        return path
    from coldflow.tasks import TASKS, kind_of

    task = TASKS[kind_of(path)]  # the errors of a path that is no run directory
    run = RunDir(path)
    if not run.exists():
        raise FileNotFoundError(f"{run.path}: not a run directory (no config.yaml)")
    return RunHandle(run, load_config(run.config_path, task.config_model), task)


def read_run_files(run: RunDir, names: tuple[str, ...]) -> dict[str, Any]:
    """The JSON run files ``names`` that exist in ``run`` (a task's :attr:`Task.files`)."""
    out = {}
    for name in names:
        path = run.path / name
        if path.is_file():
            try:
                out[name] = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise UserError(f"{path}: unreadable ({e}); the run cannot be resumed") from None
    return out


def load_run(
    run_dir: str | Path | RunHandle, device: str = "auto", epoch: int | None = None
) -> LoadedRun:
    """Load a run's config, files and checkpoint (EMA weights when the run kept them)."""
    handle = open_run(run_dir)
    run, cfg, task = handle.run, handle.cfg, handle.task
    files = read_run_files(run, task.files)
    tensors, sidecar = run.load_checkpoint(epoch)
    model = task.build(cfg, files)
    prefix = "ema." if any(k.startswith("ema.") for k in tensors) else "model."
    model.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    dev = resolve_device(device)
    return LoadedRun(cfg, run, model.to(dev).eval(), sidecar["epoch"], dev, files, task)


def check_counts(**values: int | None) -> None:
    """Counts of an evaluation or sampling: ``n`` and ``steps`` at least 1, ``start`` at
    least 0 (``None``: the default). Checked before a run is loaded.

    Raises
    ------
    UserError
        Naming the option and its value.
    """
    for name, value in values.items():
        least = 0 if name == "start" else 1
        if value is not None and value < least:
            raise UserError(f"--{name} must be at least {least}, got {value}")
