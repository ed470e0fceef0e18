"""Typed configuration: pydantic models for every config, YAML loading, ``--set`` overrides.

``base`` holds the loading machinery; each study has its own module of models.
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
    OptimizerConfig,
    RunConfig,
    SamplingConfig,
    SeedCNNConfig,
    StudyConfig,
    StudyRun,
    TrainingConfig,
    UNetConfig,
)

__all__ = [
    "SAMPLERS",
    "BlurConfig",
    "ColdConfig",
    "ConfigError",
    "DDPMConfig",
    "EvaluationConfig",
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
