"""What the fluid tasks share: reading a data set's own config and checking test data.

A data set file stores the config it was generated from (``config_yaml``); a run keeps
a copy of it, so that a trained run can be evaluated on another file without its
training file, and so that a test file of another scene or resolution is refused with a
message that says what differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch

from coldflow.config import ConfigError, dump_yaml, parse_value, validate
from coldflow.config.fluids import FluidDataConfig
from coldflow.data.store import FieldData
from coldflow.errors import UserError
from coldflow.losses import build_field_loss
from coldflow.tasks.base import Task

__all__ = [
    "FluidTask",
    "check_same_data_kind",
    "data_config",
    "data_config_from_text",
    "data_config_text",
    "read_stacked",
]


class FluidTask(Task):
    """A task trained on a coldflow data set with a field loss (SOL, autoencoder, SR)."""

    loss_grid: ClassVar[str]
    """The grid the loss sees: ``staggered`` (SOL's solver state) or ``centered``."""
    hash_exclude: ClassVar[dict[str, Any]] = {"data": {"test_path"}, "evaluation": True}

    def check(self, cfg: Any) -> None:
        """The loss's weights are there and ``data.path`` is a readable coldflow data set."""
        self.check_weights(cfg)
        data_config(cfg.data.path)

    def check_weights(self, cfg: Any) -> None:
        """Build the configured loss once: a missing pretrained file raises ``HubError``."""
        spec = cfg.method.loss
        build_field_loss(spec.name, grid=self.loss_grid, **spec.options)

    def group(self, cfg: Any) -> str:
        """Runs of one task on one data set are compared together."""
        return f"{cfg.method.kind}_{Path(cfg.data.path).stem}"

    def results_row(self, cfg: Any, evaluation: dict[str, Any]) -> dict[str, Any] | None:
        """Task, loss and the learned model's headline numbers (:meth:`summary`)."""
        return {"task": cfg.method.kind, "loss": cfg.method.loss.name} | self.summary(evaluation)

    def check_reusable(self, name: str, cfg: Any, run: Any) -> None:
        """As :meth:`Task.check_reusable`, and refuse a run trained on an earlier version
        of its data set (the data set's stored config differs from the run's copy)."""
        super().check_reusable(name, cfg, run)
        data = Path(cfg.data.path)
        for file in self.files:
            stats_path = run.path / file
            if not (file.endswith(".json") and stats_path.is_file() and data.is_file()):
                continue
            trained_on = json.loads(stats_path.read_text()).get("data_config")
            # compared as configs: the text of an older run lacks keys added since (defaults)
            if trained_on and data_config_from_text(trained_on, str(stats_path)) != data_config(
                data
            ):
                raise UserError(
                    f"{name}: {run.path} was trained on an earlier version of {data} (the data "
                    f"set's config differs from the one in {stats_path}); delete {run.path} to "
                    "train it again on the current data, or use another --out"
                )


def data_config_from_text(text: str, source: str) -> FluidDataConfig:
    """Parse a stored data-set config (the ``config_yaml`` attribute of a file)."""
    return validate(parse_value(text), FluidDataConfig, source)


def data_config(path: str | Path) -> FluidDataConfig:
    """The :class:`FluidDataConfig` a data set file was generated from (its attribute)."""
    with FieldData(path) as data:
        text = data.attrs.get("config_yaml")
    if not text:
        raise ConfigError(f"{path}: the data set stores no config_yaml attribute; regenerate it")
    return data_config_from_text(text, f"{path} (config_yaml)")


def data_config_text(path: str | Path) -> str:
    """The data-set config of ``path`` as YAML text, to be stored with a run."""
    return dump_yaml(data_config(path))


def check_same_data_kind(trained: FluidDataConfig, test: FluidDataConfig, test_path: Any) -> None:
    """Refuse test data of another scene or resolution than the training data.

    Raises
    ------
    ConfigError
        Naming every property that differs, with both values.
    """
    checks = {
        "scene": (trained.scene.kind, test.scene.kind),
        "resolution (high)": (tuple(trained.resolution), tuple(test.resolution)),
        "factor (low = high / factor)": (trained.factor, test.factor),
        "scene.dt": (trained.scene.dt, test.scene.dt),
    }
    differ = [f"{k}: trained on {a}, test file has {b}" for k, (a, b) in checks.items() if a != b]
    if differ:
        raise ConfigError(
            f"{test_path}: the test data do not match the data the run was trained on ("
            + "; ".join(differ)
            + "); evaluate on a data set generated from a config with the same scene and "
            "resolutions"
        )


def read_stacked(data: FieldData, sims: list, kind: str, field: str, frames: Any) -> torch.Tensor:
    """One stored array of several simulations, stacked along a new axis 0 (``frames``: an
    index gives ``[B, ...]``, a slice ``[B, T, ...]``)."""
    return torch.stack([torch.from_numpy(data.read(s, kind, field, frames)) for s in sims])
