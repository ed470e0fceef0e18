"""Config models of Solver-in-the-Loop runs (``configs/fluids/*_sol*.yaml``).

A run names a fluid data set file (made by ``coldflow simulate``), the correction
network, the method (``kind: sol``: unrolled steps ``m`` and the training loss) and the
common :class:`~coldflow.config.training.TrainingConfig`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from coldflow.config.base import OmitWhenDefault
from coldflow.config.fluids import FluidFileConfig, PressureSolverConfig, Strict
from coldflow.config.metric_defaults import DEFAULT_FIELD_METRICS
from coldflow.config.training import FieldLossConfig, OptimizerConfig, TrainingConfig

__all__ = [
    "SolDataConfig",
    "SolEvaluationConfig",
    "SolLossConfig",
    "SolMethodConfig",
    "SolNetConfig",
    "SolRunConfig",
]


class SolDataConfig(FluidFileConfig):
    """The training data: a fluid data set file and how windows are cut from it."""

    stride: int = Field(1, ge=1, description="frames between the starts of two windows")


class SolNetConfig(OmitWhenDefault):
    """The correction network (:mod:`coldflow.nets.sol`)."""

    # options added after runs existed: left out of the dump (and the run's hash) at default
    omit_at_default: ClassVar[tuple[str, ...]] = ("slope",)

    kind: Literal["sol_resnet", "sol_resnet_small"] = Field(
        "sol_resnet", description="sol_resnet: Um et al. 2020; sol_resnet_small: CPU variant"
    )
    kernel_size: int = Field(5, ge=1)
    width: int | None = Field(None, ge=1, description="hidden channels (null: the kind's)")
    blocks: int | None = Field(None, ge=0, description="residual blocks (null: the kind's)")
    zero_init: bool = Field(True, description="start as the uncorrected solver")
    # Default 0.01 (torch's LeakyReLU default), not the 0.3 of Um et al.'s Keras code
    # (keras.layers.LeakyReLU() defaults to alpha=0.3): every trained run and test used
    # 0.01, and a run must rebuild the network it was trained with. The paper does not
    # name the slope; with zero_init the first steps do not depend on it. Set 0.3 to
    # mirror the original code (configs/fluids/karman_sol_book.yaml does).
    slope: float = Field(
        0.01, ge=0, description="negative slope of the leaky ReLUs (Um et al.'s Keras code: 0.3)"
    )


SolLossConfig = FieldLossConfig  # the loss section is the same for every field task


class SolMethodConfig(OmitWhenDefault):
    """Solver-in-the-Loop training: ``m`` unrolled (solver step -> correction) steps."""

    # options added after runs existed: left out of the dump (and the run's hash) at default
    omit_at_default: ClassVar[tuple[str, ...]] = (
        "per_component_std", "net_faces", "solver", "density",
    )  # fmt: skip

    kind: Literal["sol"] = "sol"
    m: int = Field(4, ge=1, description="unrolled steps per window (1: the NON baseline)")
    loss: SolLossConfig = SolLossConfig()
    # Default false: one standard deviation over both velocity components, as every run so
    # far was trained (its data_stats.json holds one number). Um et al.'s code scales each
    # component by its own std (of |u|, over all frames), which matters where the two
    # differ a lot: the Kármán flow's streamwise component is ~U everywhere while the
    # cross-flow one is small, so one shared std under-scales the cross-flow input.
    per_component_std: bool = Field(
        False,
        description="scale the network's velocity input and output by one std per "
        "component (y, x), as Um et al.'s code; false: one std for both",
    )
    # Default "average": cell-centred face averages in, interpolated back to the faces out
    # (exact for linear fields, symmetric in the two faces of a cell), which every run so
    # far used. "lower" is Um et al.'s layout: each cell takes its lower y face and left
    # x face (the staggered grid's last face per axis is dropped, to_feature's x[:-1] /
    # y[:-1]) and its output corrects those faces (the last face padded with zero).
    net_faces: Literal["average", "lower"] = Field(
        "average",
        description="average: face averages at cell centres; lower: each cell's lower "
        "faces, the last face dropped (Um et al.'s code)",
    )
    # Default: the source solver's pressure solve is the data set's (scene.solver of its
    # stored config). Keys given here replace those of the data set, for training and for
    # the evaluation rollouts, e.g. method.solver.method=CG to train through the iterative
    # solve of a data set made with the direct one.
    # Default "carry": the density of a buoyant scene is advected by the solver but the
    # network never sees it (every plume run before the option). The plume's flow is
    # driven by its density, so a correction that can work sees it ("input") and may
    # correct it too ("correct": a third output channel, and the loss adds the density's
    # distance to the reference).
    density: Literal["carry", "input", "correct"] = Field(
        "carry",
        description="scenes with a density: carry (advected, unseen), input (the network "
        "also sees it) or correct (and corrects it; the loss includes it)",
    )
    solver: PressureSolverConfig | None = Field(
        None,
        description="pressure-solver settings replacing the data set's for the source "
        "solver (only the keys given); default: the data set's",
    )


class SolEvaluationConfig(OmitWhenDefault):
    """`coldflow evaluate` of a SOL run."""

    omit_at_default: ClassVar[tuple[str, ...]] = ("timing_repeats",)

    steps: int = Field(100, ge=1, description="rollout steps")
    start: int | None = Field(None, ge=0, description="first frame (default: data warm-up)")
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_FIELD_METRICS))
    timing_steps: int = Field(
        10, ge=1, description="steps of each solver per timed round (source, corrected, high-res)"
    )
    timing_repeats: int = Field(
        3, ge=1, description="interleaved timed rounds of the three solvers (median and spread)"
    )


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
