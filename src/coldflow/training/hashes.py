"""Hashes of the config fields that determine a training trajectory, checked on resume.

A checkpoint stores :func:`trajectory_hash` of the config it was trained with; resuming
with a config of another hash raises :class:`ConfigMismatchError`. The settings in
:data:`RESUMABLE_TRAINING_FIELDS` may change between a run and its resumption.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from coldflow.config import ConfigError

__all__ = [
    "RESUMABLE_OPTIMIZER_FIELDS",
    "RESUMABLE_TRAINING_FIELDS",
    "ConfigMismatchError",
    "config_hash",
    "hash_matches",
    "trajectory_hash",
]

# training settings that may differ between a run and its resumption: they do not change
# the trajectory, or only its rounding (compile, channels_last, optimizer.fused); config
# hashes leave them out
RESUMABLE_TRAINING_FIELDS = frozenset(
    {
        "epochs",
        "progress",
        "device",
        "keep_checkpoints",
        "num_workers",
        "max_nonfinite_steps",
        "compile",
        "channels_last",
        "loggers",
        "wandb",
    }
)
# the same for fields of ``training.optimizer``
RESUMABLE_OPTIMIZER_FIELDS = frozenset({"fused"})


class ConfigMismatchError(ConfigError, RuntimeError):
    """A resumed run's config differs from the one its checkpoint was trained with."""


def config_hash(obj: Any) -> str:
    """Short stable hash of a JSON-serialisable object (a config dump)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def hash_matches(stored: str | None, current: str) -> bool:
    """Whether a checkpoint's stored trajectory hash allows the config hashing to
    ``current`` (checkpoints written before hashes were stored carry none)."""
    return stored in ("", None, current)


def trajectory_hash(cfg: Any, exclude: dict[str, Any] | None = None) -> str:
    """Hash of the config fields that determine a training trajectory.

    Leaves out the run's ``name``, its ``evaluation`` section, the
    :data:`RESUMABLE_TRAINING_FIELDS` (and ``RESUMABLE_OPTIMIZER_FIELDS``) and whatever
    ``exclude`` adds (pydantic's ``model_dump`` exclude syntax). Stored in checkpoints and
    checked on resume.
    """
    training = dict.fromkeys(RESUMABLE_TRAINING_FIELDS, True)
    training["optimizer"] = dict.fromkeys(RESUMABLE_OPTIMIZER_FIELDS, True)
    skip = {"name": True, "evaluation": True, "training": training}
    return config_hash(cfg.model_dump(mode="json", exclude=skip | (exclude or {})))
