"""Config models of the MNIST diffusion study (training runs)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from coldflow.config.base import Strict
from coldflow.config.training import TrainingConfig
from coldflow.methods.ddpm import DDIM_STEPS

# ----------------------------------------------------------------------------- data


class MnistDataConfig(Strict):
    """MNIST images from the official IDX files."""

    kind: Literal["mnist"] = "mnist"
    range: tuple[float, float] = Field(
        (-0.5, 0.5), description="pixel range the images are scaled to (seed study: [-0.5, 0.5])"
    )
    train_subset: int | None = Field(
        None, ge=1, description="use only the first N training images (quick runs)"
    )
    test_subset: int | None = Field(None, ge=1, description="use only the first N test images")

    @model_validator(mode="after")
    def _check_range(self) -> MnistDataConfig:
        if not self.range[0] < self.range[1]:
            raise ValueError(f"range must be [low, high] with low < high, got {list(self.range)}")
        return self


# ---------------------------------------------------------------------- degradations


class LinearNoiseConfig(Strict):
    """DDPM linear beta schedule: beta_t = beta1 + (beta2 - beta1) * t / n_T."""

    kind: Literal["linear_noise"] = "linear_noise"
    beta1: float = Field(1e-4, gt=0, lt=1)
    beta2: float = Field(0.02, gt=0, lt=1)
    n_T: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _check_order(self) -> LinearNoiseConfig:
        if not self.beta1 < self.beta2:
            raise ValueError(f"beta1 ({self.beta1}) must be smaller than beta2 ({self.beta2})")
        return self


class BlurConfig(Strict):
    """Gaussian blur of cold diffusion: sigma_t from a schedule, optional added noise."""

    kind: Literal["blur"] = "blur"
    n_T: int = Field(500, ge=1)
    sigma_base: float = Field(0.02, ge=0)
    sigma_scale: float = Field(0.01, gt=0, description="linear: sigma_t = base + scale * t")
    schedule: Literal["linear", "exponential", "cosine"] = "linear"
    kernel_size: int | None = Field(None, description="odd; null covers the whole image")
    noise_start: float = Field(0.0, ge=0, description="std of added noise at t=0 (hybrid)")
    noise_end: float = Field(0.0, ge=0, description="std of added noise at t=n_T (hybrid)")

    @model_validator(mode="after")
    def _check_kernel(self) -> BlurConfig:
        if self.kernel_size is not None and (self.kernel_size < 1 or self.kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be a positive odd number, got {self.kernel_size}")
        return self


class ResolutionConfig(Strict):
    """Resolution lowering of cold diffusion's super-resolution: the image averaged onto a
    grid ``factor ** (t / n_T)`` times coarser, then bicubic back; ``D(x, n_T)`` is the
    bicubic-upsampled low-resolution image."""

    kind: Literal["resolution"] = "resolution"
    n_T: int = Field(20, ge=1)
    factor: int = Field(4, ge=2, description="the image size must be divisible by it")


DegradationConfig = Annotated[
    Union[LinearNoiseConfig, BlurConfig, ResolutionConfig],  # noqa: UP007
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------- networks


class SeedCNNConfig(Strict):
    """The seed study's CNN: 7x7 conv blocks with LayerNorm and GELU, time MLP."""

    kind: Literal["seed_cnn"] = "seed_cnn"
    hidden: tuple[int, ...] = (16, 32, 32, 16)
    kernel_size: int = 7
    last_kernel_size: int = 3
    time_embeddings: int = 16


class UNetConfig(Strict):
    """A compact U-Net: residual blocks with GroupNorm, one level per entry of ``channels``."""

    kind: Literal["unet"] = "unet"
    channels: tuple[int, ...] = (32, 64, 64)
    time_dim: int = 64


ModelConfig = Annotated[Union[SeedCNNConfig, UNetConfig], Field(discriminator="kind")]  # noqa: UP007


# ---------------------------------------------------------------------------- methods


class DDPMConfig(Strict):
    """Denoising diffusion (Ho et al. 2020), epsilon prediction."""

    kind: Literal["ddpm"] = "ddpm"
    result: Literal["x0_estimate", "last_step"] = Field(
        "x0_estimate",
        description="what the ancestral sampler returns: the noiseless x0 estimate at t=1 "
        "(default), or the seed's last step z_0, which keeps noise (alpha_bar_0 = 1 - beta_1)",
    )


class ColdConfig(Strict):
    """Cold diffusion (Bansal et al. 2022): a restorer R(x_t, t) ~ x0 trained with L2 or L1."""

    kind: Literal["cold"] = "cold"
    loss: Literal["mse", "l1"] = "mse"
    prior: Literal["gmm", "black"] = Field(
        "gmm",
        description="start of unconditional sampling: a Gaussian mixture fitted to fully "
        "degraded training images (in a PCA basis), or the black image of the study",
    )
    prior_components: int = Field(10, ge=1, description="mixture components")
    prior_dims: int = Field(32, ge=1, description="PCA dimensions the mixture lives in")
    prior_noise: float = Field(0.002, ge=0, description="std of noise added to the start")
    prior_fit_images: int = Field(10000, ge=10, description="training images used to fit")
    conditional_images: int = Field(
        1000, ge=1, description="held-out test images for conditional evaluation"
    )
    result: Literal["last_step", "restoration"] = Field(
        "last_step",
        description="what sampling returns: the state x_0 after the last step, as in the "
        "paper's Algorithms 1 and 2 (x_0 = x_1 - D(x0_hat, 1) + D(x0_hat, 0) for improved), "
        "or the last restoration R(x_1, 1)",
    )


MethodConfig = Annotated[Union[DDPMConfig, ColdConfig], Field(discriminator="kind")]  # noqa: UP007

SAMPLERS = {"ddpm": ("ancestral", "ddim"), "cold": ("naive", "improved")}
# defaults per method: (final samples, evaluation samples)
DEFAULT_SAMPLERS = {"ddpm": ("ancestral", "ddim"), "cold": ("improved", "improved")}
Sampler = Literal["ancestral", "ddim", "naive", "improved"]


class SamplingConfig(Strict):
    sampler: Sampler | None = Field(
        None, description="ddpm: ancestral|ddim; cold: naive|improved (null: method default)"
    )
    steps: int | None = Field(None, ge=1, description=f"DDIM steps (null: {DDIM_STEPS})")
    eta: float = Field(0.0, ge=0, description="DDIM eta (0: deterministic)")
    snapshot_timesteps: list[int] = Field(
        default_factory=list, description="timesteps at which the sampling trajectory is captured"
    )
    n_grid: int = Field(16, ge=1, description="samples drawn for grids")

    @property
    def ddim_steps(self) -> int:
        """The DDIM steps of these samples: ``steps``, or :data:`DDIM_STEPS` when null."""
        return self.steps or DDIM_STEPS


class FIDConfig(Strict):
    enabled: bool = True
    n_samples: int = Field(10000, ge=2)
    extractor: Literal["mnist_classifier", "inception"] = "mnist_classifier"
    sampler: Sampler | None = Field(None, description="null: ddim for ddpm, improved for cold")
    steps: int = Field(DDIM_STEPS, ge=1, description="sampler steps used for FID samples (DDIM)")
    eta: float = Field(0.0, ge=0, description="DDIM eta of the FID samples")
    batch_size: int | None = Field(
        None,
        ge=1,
        description="images per sampling call; null: 64 on a CPU (cache-sized, fastest there), "
        "500 on a GPU",
    )


class EvaluationConfig(Strict):
    interval: int = Field(9, ge=1, description="evaluate (FID, samples) every N epochs")
    fid: FIDConfig = FIDConfig()
    sample_epochs: list[int] | None = Field(
        None, description="epochs whose samples are shown side by side (default: eval epochs)"
    )


class DiffusionRunConfig(Strict):
    """A complete training run: data, degradation, network, method, training, evaluation."""

    name: str = "run"
    seed: int = 12042000
    data: MnistDataConfig = MnistDataConfig()
    degradation: DegradationConfig = LinearNoiseConfig()
    model: ModelConfig = SeedCNNConfig()
    method: MethodConfig = DDPMConfig()
    training: TrainingConfig = TrainingConfig()
    sampling: SamplingConfig = SamplingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @model_validator(mode="before")
    @classmethod
    def _default_kinds(cls, data: Any) -> Any:
        # A section without ``kind`` means the default kind of that section.
        if isinstance(data, dict):
            for key in ("data", "degradation", "model", "method"):
                section = data.get(key)
                if isinstance(section, dict) and "kind" not in section:
                    default = cls.model_fields[key].default
                    data = {**data, key: {"kind": default.kind, **section}}
        return data

    @model_validator(mode="after")
    def _check_combination(self) -> DiffusionRunConfig:
        pairs = {"ddpm": ("linear_noise",), "cold": ("blur", "resolution")}
        if self.degradation.kind not in pairs[self.method.kind]:
            raise ValueError(
                f"method {self.method.kind!r} needs degradation kind "
                f"{' or '.join(map(repr, pairs[self.method.kind]))}, got {self.degradation.kind!r}"
            )
        final, evaluation = DEFAULT_SAMPLERS[self.method.kind]
        if self.sampling.sampler is None:
            self.sampling.sampler = final
        if self.evaluation.fid.sampler is None:
            self.evaluation.fid.sampler = evaluation
        allowed = SAMPLERS[self.method.kind]
        for key, value in (
            ("sampling.sampler", self.sampling.sampler),
            ("evaluation.fid.sampler", self.evaluation.fid.sampler),
        ):
            if value not in allowed:
                raise ValueError(
                    f"{key} {value!r} does not apply to method {self.method.kind!r}; "
                    f"use one of {', '.join(allowed)}"
                )
        return self

    @model_validator(mode="after")
    def _check_snapshots(self) -> DiffusionRunConfig:
        n_T = self.degradation.n_T
        bad = [t for t in self.sampling.snapshot_timesteps if not 1 <= t <= n_T]
        if bad:
            raise ValueError(f"sampling.snapshot_timesteps {bad} lie outside 1..n_T = 1..{n_T}")
        return self
