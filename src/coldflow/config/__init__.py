"""Typed configuration: pydantic models for every config, YAML loading, ``--set`` overrides.

``base`` holds the loading machinery, ``training`` the sections every run shares,
``study`` the study files and ``fluids`` the fluid data sets. The config model of each
task lives with its task (``coldflow.tasks.<study>.config``).
"""

from coldflow.config.base import (
    ConfigError,
    Strict,
    apply_overrides,
    dump_yaml,
    load_config,
    load_yaml,
    parse_value,
    validate,
)
from coldflow.config.study import StudyConfig, StudyRun
from coldflow.config.training import FieldLossConfig, OptimizerConfig, TrainingConfig

__all__ = [
    "ConfigError",
    "FieldLossConfig",
    "OptimizerConfig",
    "Strict",
    "StudyConfig",
    "StudyRun",
    "TrainingConfig",
    "apply_overrides",
    "dump_yaml",
    "load_config",
    "load_yaml",
    "parse_value",
    "validate",
]
