"""Typed configuration: pydantic models for every config, YAML loading, ``--set`` overrides.

``base`` holds the loading machinery, ``training`` the sections every run shares,
``study`` the study files; each task has its own module of models (``mnist``, ``sol``,
``fields``; ``fluids`` for the data sets).
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
from coldflow.config.mnist import (
    SAMPLERS,
    BlurConfig,
    ColdConfig,
    DDPMConfig,
    EvaluationConfig,
    FIDConfig,
    LinearNoiseConfig,
    MnistDataConfig,
    RunConfig,
    SamplingConfig,
    SeedCNNConfig,
    UNetConfig,
)
from coldflow.config.study import StudyConfig, StudyRun
from coldflow.config.training import FieldLossConfig, OptimizerConfig, TrainingConfig

__all__ = [
    "SAMPLERS",
    "BlurConfig",
    "ColdConfig",
    "ConfigError",
    "DDPMConfig",
    "EvaluationConfig",
    "FieldLossConfig",
    "FIDConfig",
    "LinearNoiseConfig",
    "MnistDataConfig",
    "OptimizerConfig",
    "RunConfig",
    "SamplingConfig",
    "SeedCNNConfig",
    "Strict",
    "StudyConfig",
    "StudyRun",
    "TrainingConfig",
    "UNetConfig",
    "apply_overrides",
    "dump_yaml",
    "load_config",
    "load_yaml",
    "parse_value",
    "validate",
]
