"""Tasks: one per kind of run, behind the small :class:`~coldflow.tasks.base.Task` interface.

``TASKS`` maps a config's ``method.kind`` to its task; :func:`task_of` finds the task of
a config file or a run directory. Adding a kind of run is one new module and one line
here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coldflow.config import ConfigError, load_yaml
from coldflow.tasks.base import Comparison, LoadedRun, Prepared, Task
from coldflow.tasks.diffusion.cold import ColdTask
from coldflow.tasks.diffusion.ddpm import DDPMTask
from coldflow.tasks.recon.diffusion import DiffusionSRTask
from coldflow.tasks.recon.task import AutoencoderTask, SuperResTask
from coldflow.tasks.sol.task import SolTask

__all__ = ["TASKS", "Comparison", "LoadedRun", "Prepared", "Task", "kind_of", "task_for", "task_of"]

TASKS: dict[str, Task] = {
    task.kinds[0]: task
    for task in (
        DDPMTask(),
        ColdTask(),
        SolTask(),
        AutoencoderTask(),
        SuperResTask(),
        DiffusionSRTask(),
    )
}

_DEFAULT_KIND = "ddpm"  # a diffusion config may leave out its method section


def kind_of(path: str | Path) -> str:
    """``method.kind`` of a YAML config, or of a run directory's ``config.yaml``.

    Raises
    ------
    FileNotFoundError
        If a run directory (a path without a ``.yaml`` suffix) does not exist or has no
        config.yaml.
    ConfigError
        If a config file does not exist or is no config (empty, not YAML, not a mapping),
        or if the kind is not one of :data:`TASKS`.
    """
    path = Path(path)
    if not path.exists() and path.suffix not in (".yaml", ".yml"):
        raise FileNotFoundError(f"{path}: no such run directory or config file")
    file = path / "config.yaml" if path.is_dir() else path
    if path.is_dir() and not file.is_file():
        raise FileNotFoundError(f"{path}: not a run directory (no config.yaml)")
    data = load_yaml(file)
    method = data.get("method")
    kind = method.get("kind", _DEFAULT_KIND) if isinstance(method, dict) else _DEFAULT_KIND
    if kind not in TASKS:
        raise ConfigError(f"{file}: method.kind {kind!r} is unknown; known: {', '.join(TASKS)}")
    return kind


def task_of(path: str | Path) -> Task:
    """The task of a config file or run directory."""
    return TASKS[kind_of(path)]


def task_for(cfg: Any) -> Task:
    """The task of a validated config (its ``method.kind``)."""
    return TASKS[cfg.method.kind]
