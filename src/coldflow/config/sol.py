"""Config models of Solver-in-the-Loop runs (``configs/fluids/*_sol_*.yaml``).

A run names a fluid data set file (made by ``coldflow simulate``), the correction
network, the method (``kind: sol``: unrolled steps ``m`` and the training loss) and the
common :class:`~coldflow.config.training.TrainingConfig`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from coldflow.config.base import Strict
from coldflow.config.training import FieldLossConfig, OptimizerConfig, TrainingConfig

__all__ = [
    "SolDataConfig",
    "SolEvaluationConfig",
    "SolLossConfig",
    "SolMethodConfig",
    "SolNetConfig",
    "SolRunConfig",
]


class SolDataConfig(Strict):
    """The training data: a fluid data set file and how windows are cut from it."""

    path: str = Field(description="HDF5 data set written by `coldflow simulate`")
    split: str = Field("train", description="simulations used for training")
    stride: int = Field(1, ge=1, description="frames between the starts of two windows")
    test_path: str | None = Field(
        None, description="data set of `coldflow evaluate` (default: path, test split)"
    )


class SolNetConfig(Strict):
    """The correction network (:mod:`coldflow.nets.sol`)."""

    kind: Literal["sol_resnet", "sol_resnet_small"] = Field(
        "sol_resnet", description="sol_resnet: Um et al. 2020; sol_resnet_small: CPU variant"
    )
    kernel_size: int = Field(5, ge=1)
    width: int | None = Field(None, ge=1, description="hidden channels (null: the kind's)")
    blocks: int | None = Field(None, ge=0, description="residual blocks (null: the kind's)")
    zero_init: bool = Field(True, description="start as the uncorrected solver")


SolLossConfig = FieldLossConfig  # the loss section is the same for every field task


class SolMethodConfig(Strict):
    """Solver-in-the-Loop training: ``m`` unrolled (solver step -> correction) steps."""

    kind: Literal["sol"] = "sol"
    m: int = Field(4, ge=1, description="unrolled steps per window (1: the NON baseline)")
    loss: SolLossConfig = SolLossConfig()


class SolEvaluationConfig(Strict):
    """`coldflow evaluate` of a SOL run."""

    steps: int = Field(100, ge=1, description="rollout steps")
    start: int | None = Field(None, ge=0, description="first frame (default: data warm-up)")
    metrics: list[str] = Field(default_factory=lambda: ["mse", "rel_l1", "lsim"])
    timing_steps: int = Field(10, ge=1, description="steps timed for the high-res solver")


class SolRunConfig(Strict):
    """One Solver-in-the-Loop training run."""

    name: str = "sol"
    seed: int = 0
    data: SolDataConfig
    model: SolNetConfig = SolNetConfig()
    method: SolMethodConfig = SolMethodConfig()
    training: TrainingConfig = TrainingConfig(
        epochs=10, batch_size=4, optimizer=OptimizerConfig(lr=1e-4), grad_clip=1.0
    )
    evaluation: SolEvaluationConfig = SolEvaluationConfig()
