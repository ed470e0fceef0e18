"""Config models of the field autoencoder and super-resolution runs.

``configs/fluids/{karman,plume}_{ae,sr}[_cpu].yaml`` (the loss by
``--set method.loss.name=...``): a run names a fluid data set
(made by ``coldflow simulate``), the network, the method (``kind: autoencoder`` or
``kind: superres`` with its training loss) and the common training section. Frames are
the cell-centred velocity (and the smoke density where the scene has one) after the
data set's warm-up, split into train and test by simulation exactly as the file is.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, model_validator

from coldflow.config.base import OmitWhenDefault, Strict
from coldflow.config.fluids import FluidFileConfig
from coldflow.config.metric_defaults import DEFAULT_FRAME_METRICS
from coldflow.config.training import FieldLossConfig, OptimizerConfig, TrainingConfig

__all__ = [
    "AutoencoderConfig",
    "DiffusionSRConfig",
    "DiffusionUNetConfig",
    "AutoencoderNetConfig",
    "FieldsDataConfig",
    "FieldsEvaluationConfig",
    "FieldsRunConfig",
    "SuperResConfig",
    "SourceInputConfig",
    "SuperResNetConfig",
]


class FieldsDataConfig(FluidFileConfig):
    """Frames of a fluid data set file."""

    stride: int = Field(1, ge=1, description="use every n-th frame after the warm-up")
    kind: Literal["reference", "downsampled"] = Field(
        "reference", description="autoencoder: which trajectory's frames are encoded"
    )
    density: bool = Field(True, description="include the smoke density where the scene has it")


class AutoencoderNetConfig(Strict):
    """Convolutional encoder-decoder (:mod:`coldflow.nets.autoencoder`)."""

    kind: Literal["field_autoencoder"] = "field_autoencoder"
    compression: int = Field(8, ge=1, description="input numbers / latent numbers")
    levels: int = Field(2, ge=1, description="stride-2 downsamplings (H, W divisible by 2^levels)")
    width: int = Field(32, ge=1, description="channels of the first level (doubled per level)")
    coarse: bool = Field(
        True,
        description="keep C latent channels as block averages, decoded bicubically plus a "
        "learned residual (false: every latent channel learned)",
    )


class SuperResNetConfig(Strict):
    """Residual super-resolution network over bicubic upsampling (:mod:`coldflow.nets.superres`)."""

    kind: Literal["field_superres"] = "field_superres"
    width: int = Field(32, ge=1)
    blocks: int = Field(4, ge=0, description="residual blocks")


class DiffusionUNetConfig(Strict):
    """U-Net of the diffusion super-resolution methods (:class:`coldflow.nets.unet.UNet`).

    H and W of the high-resolution frames must be divisible by ``2 ** (len(channels) - 1)``.
    """

    kind: Literal["unet"] = "unet"
    channels: tuple[int, ...] = Field((32, 64, 64), min_length=1, description="width per level")
    time_dim: int = Field(64, ge=2, description="width of the time embedding")


class AutoencoderConfig(Strict):
    """Reconstruct a frame through the bottleneck; the loss compares it with the input."""

    kind: Literal["autoencoder"] = "autoencoder"
    loss: FieldLossConfig = FieldLossConfig()


class SourceInputConfig(Strict):
    """Training inputs from the low-resolution solver (``method.input: source``): from
    ``starts`` frames of every training simulation the solver runs ``steps[1]`` steps from
    the downsampled reference, and ``per_start`` of its states, ``k`` steps in with ``k``
    drawn from ``steps[0] .. steps[1]`` (seeded by the run's seed), are paired with the
    reference at their frames."""

    steps: tuple[int, int] = Field((1, 50), description="range of solver steps k (inclusive)")
    starts: int = Field(60, ge=1, description="start frames per training simulation")
    per_start: int = Field(2, ge=1, description="states kept per start (distinct k)")

    @model_validator(mode="after")
    def _check(self) -> SourceInputConfig:
        lo, hi = self.steps
        if not 0 <= lo <= hi:
            raise ValueError(
                f"steps must be [k_min, k_max] with 0 <= k_min <= k_max, got {[lo, hi]}"
            )
        if self.per_start > hi - lo + 1:
            raise ValueError(
                f"per_start ({self.per_start}) exceeds the {hi - lo + 1} steps in {[lo, hi]}"
            )
        return self


class SuperResConfig(OmitWhenDefault):
    """Upsample a low-resolution frame to the reference resolution (the data set's factor).

    ``input`` says what the network is trained on: ``downsampled`` (the reference's face
    averages, as every run before the option) or ``source`` (the low-resolution solver's
    own states a few steps after a start on the downsampled reference: what an upsampler
    at the end of a cheap simulator meets, see :class:`SourceInputConfig`).
    """

    omit_at_default: ClassVar[tuple[str, ...]] = ("input", "source", "sol_run")

    kind: Literal["superres"] = "superres"
    loss: FieldLossConfig = FieldLossConfig()
    input: Literal["downsampled", "source", "sol"] = Field(
        "downsampled",
        description="training input: downsampled reference frames, the low-resolution "
        "solver's states (method.source), or the states of a Solver-in-the-Loop run's "
        "corrected solver (method.sol_run; starts and steps from method.source)",
    )
    source: SourceInputConfig = SourceInputConfig()
    sol_run: str | None = Field(
        None,
        description="input sol: the trained Solver-in-the-Loop run directory whose corrected "
        "solver makes the training inputs (relative paths: from the working directory)",
    )

    @model_validator(mode="after")
    def _check_sol_run(self) -> SuperResConfig:
        if self.input == "sol" and not self.sol_run:
            raise ValueError(
                "method.input sol needs method.sol_run: the Solver-in-the-Loop run directory "
                "whose corrected rollouts are the training inputs"
            )
        if self.sol_run and self.input != "sol":
            raise ValueError(
                f"method.sol_run is set but method.input is {self.input!r}: set "
                "method.input=sol to train on that run's corrected rollouts, or drop sol_run"
            )
        return self


class DiffusionSRConfig(SuperResConfig):
    """Super-resolution by diffusion (:mod:`coldflow.methods.diffusion_sr`).

    ``process: ddpm``: a conditional DDPM on the residual over bicubic, conditioned on the
    bicubic field, predicting the noise; sampled with DDIM (``steps``, ``eta``) or the
    ancestral sampler. ``process: cold``: cold diffusion whose degradation lowers the
    resolution step by step to the low grid (``n_T`` steps), restored from the bicubic
    field with the improved (Algorithm 2) or naive sampler. ``input`` and ``source`` are
    those of :class:`SuperResConfig` (cold diffusion trains on the reference frames alone:
    its degradation makes its inputs). The loss is the method's own: MSE on the noise
    (ddpm), MSE or MAE of the restoration (cold).
    """

    omit_at_default: ClassVar[tuple[str, ...]] = ("input", "source")

    kind: Literal["diffusion_sr"] = "diffusion_sr"  # type: ignore[assignment]
    process: Literal["ddpm", "cold"] = "ddpm"
    n_T: int | None = Field(
        None, ge=1, description="diffusion steps; default 1000 (ddpm) or 16 (cold)"
    )
    beta1: float = Field(1e-4, gt=0, lt=1, description="ddpm: first beta of the linear schedule")
    beta2: float = Field(0.02, gt=0, lt=1, description="ddpm: last beta")
    sampler: Literal["ddim", "ancestral", "improved", "naive"] | None = Field(
        None, description="default ddim (ddpm) or improved (cold)"
    )
    steps: int = Field(20, ge=1, description="ddpm with ddim: sampling steps")
    eta: float = Field(0.0, ge=0, description="ddpm with ddim: stochasticity (0: deterministic)")
    prediction: Literal["v", "eps"] = Field(
        "v", description="ddpm: the network predicts v (default) or the noise eps"
    )

    @model_validator(mode="after")
    def _check_process(self) -> DiffusionSRConfig:
        own = {"ddpm": ("ddim", "ancestral"), "cold": ("improved", "naive")}[self.process]
        if self.sampler is not None and self.sampler not in own:
            raise ValueError(
                f"method.sampler {self.sampler!r} is not a sampler of process "
                f"{self.process!r}; use one of {', '.join(own)}"
            )
        losses = ("mse",) if self.process == "ddpm" else ("mse", "mae")
        if self.loss.name not in losses:
            raise ValueError(
                f"method.loss.name {self.loss.name!r}: a {self.process} super-resolution "
                f"trains with its own objective; use {' or '.join(losses)}"
            )
        if self.process == "ddpm" and self.beta1 >= self.beta2:
            raise ValueError(f"method.beta1 ({self.beta1}) must be below beta2 ({self.beta2})")
        return self

    @property
    def steps_of_process(self) -> int:
        """DDIM steps (ddpm with ddim), or the n_T steps every other sampler takes."""
        if self.process == "ddpm" and self.chosen_sampler == "ddim":
            return self.steps
        return self.chosen_n_T

    @property
    def chosen_n_T(self) -> int:
        """``n_T``, or the process's default."""
        return self.n_T or (1000 if self.process == "ddpm" else 16)

    @property
    def chosen_sampler(self) -> str:
        """``sampler``, or the process's default."""
        return self.sampler or ("ddim" if self.process == "ddpm" else "improved")


class FieldsEvaluationConfig(OmitWhenDefault):
    """`coldflow evaluate` of an autoencoder or super-resolution run."""

    # options added after runs existed: left out of the dump at default
    omit_at_default: ClassVar[tuple[str, ...]] = (
        "solver_steps", "solver_starts", "samples", "sampling_steps", "sweep_frames",
    )  # fmt: skip

    metrics: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FRAME_METRICS),
        description="field metrics; lpips and vgg are added where their weights exist",
    )
    perceptual_if_available: bool = Field(
        True, description="also score lpips and vgg when their weights are present"
    )
    figure_frames: int = Field(3, ge=0, description="test frames drawn in the figures")
    solver_steps: int = Field(
        50,
        ge=0,
        description="super-resolution: also score the low-resolution solver's states "
        "1 .. solver_steps steps after starts on the downsampled test frames (0: not)",
    )
    solver_starts: int = Field(8, ge=1, description="start frames per test simulation")
    samples: int = Field(
        4, ge=1, description="diffusion SR: samples per test frame (their mean and spread)"
    )
    sampling_steps: list[int] = Field(
        default_factory=lambda: [5, 10, 20, 50],
        description="diffusion SR with DDIM: error and time per frame at each number of "
        "sampling steps (on sweep_frames test frames)",
    )
    sweep_frames: int = Field(32, ge=1, description="test frames of the sampling-steps sweep")
    batch_size: int = Field(32, ge=1)


FieldsNetConfig = Annotated[
    Union[AutoencoderNetConfig, SuperResNetConfig, DiffusionUNetConfig],  # noqa: UP007
    Field(discriminator="kind"),
]
FieldsMethodConfig = Annotated[
    Union[AutoencoderConfig, SuperResConfig, DiffusionSRConfig],  # noqa: UP007
    Field(discriminator="kind"),
]

_NET_OF = {
    "autoencoder": "field_autoencoder",
    "superres": "field_superres",
    "diffusion_sr": "unet",
}


class FieldsRunConfig(Strict):
    """One autoencoder or super-resolution training run."""

    name: str = "fields"
    seed: int = 0
    data: FieldsDataConfig
    model: FieldsNetConfig | None = None
    method: FieldsMethodConfig
    training: TrainingConfig = TrainingConfig(
        epochs=10, batch_size=16, optimizer=OptimizerConfig(lr=1e-3), grad_clip=1.0
    )
    evaluation: FieldsEvaluationConfig = FieldsEvaluationConfig()

    @model_validator(mode="before")
    @classmethod
    def _default_model(cls, data: Any) -> Any:
        # The network section defaults to the method's network; ``kind`` may be omitted.
        if isinstance(data, dict):
            method = data.get("method")
            kind = method.get("kind") if isinstance(method, dict) else None
            if kind in _NET_OF:
                model = data.get("model") or {}
                if isinstance(model, dict) and "kind" not in model:
                    data = {**data, "model": {"kind": _NET_OF[kind], **model}}
        return data

    @model_validator(mode="after")
    def _check_pair(self) -> FieldsRunConfig:
        wanted = _NET_OF[self.method.kind]
        if self.model is None or self.model.kind != wanted:
            got = None if self.model is None else self.model.kind
            raise ValueError(
                f"method {self.method.kind!r} needs model kind {wanted!r}, got {got!r}"
            )
        return self
