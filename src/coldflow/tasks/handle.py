"""Opening a run directory: its files, its trained model, the counts a command asks for.

Used by :mod:`coldflow.experiment` and by tasks that read other runs (the pipeline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coldflow.config import load_config
from coldflow.errors import UserError
from coldflow.runs import RunDir
from coldflow.tasks.base import LoadedRun
from coldflow.training.parts import resolve_device

__all__ = ["check_counts", "load_run", "read_run_files"]


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


def load_run(run_dir: str | Path, device: str = "auto", epoch: int | None = None) -> LoadedRun:
    """Load a run's config, files and checkpoint (EMA weights when the run kept them)."""
    from coldflow.tasks import TASKS, kind_of

    run = RunDir(run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run.path}: not a run directory (no config.yaml)")
    task = TASKS[kind_of(run.path)]
    cfg = load_config(run.config_path, task.config_model)
    files = read_run_files(run, task.files)
    tensors, sidecar = run.load_checkpoint(epoch)
    model = task.build(cfg, files)
    prefix = "ema." if any(k.startswith("ema.") for k in tensors) else "model."
    model.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    dev = resolve_device(device)
    return LoadedRun(cfg, run, model.to(dev).eval(), sidecar["epoch"], dev, files)


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
