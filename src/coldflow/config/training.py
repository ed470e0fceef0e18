"""Config sections shared by every kind of run: optimisation and the field losses."""

from __future__ import annotations

import copy
import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from coldflow.config.base import OmitWhenDefault, Strict

__all__ = [
    "DEFAULT_LOSS_FIT",
    "DEFAULT_LOSS_OPTIONS",
    "FieldLossConfig",
    "OptimizerConfig",
    "TrainingConfig",
    "WandbConfig",
]


class OptimizerConfig(Strict):
    """Adam or AdamW with a constant learning rate."""

    kind: Literal["adam", "adamw"] = "adam"
    lr: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    fused: bool | None = Field(
        None,
        description=(
            "fused optimizer kernel; null = automatic: fused on CUDA, torch's default "
            "elsewhere (changes only rounding)"
        ),
    )


class WandbConfig(Strict):
    """Where the ``wandb`` logger of ``training.loggers`` sends a run (Weights & Biases)."""

    project: str = Field("coldflow", min_length=1, description="W&B project of the run")
    entity: str | None = Field(None, description="W&B user or team; null: W&B's default")
    mode: Literal["offline", "online", "disabled"] | None = Field(
        None,
        description="null: $WANDB_MODE when set, else offline (sync later with `wandb sync`)",
    )


class TrainingConfig(OmitWhenDefault):
    """What the one trainer (:class:`~coldflow.training.trainer.Trainer`) needs: epochs,
    batches, optimiser, and where its metrics go besides ``metrics.jsonl``."""

    # added after runs existed: left out of the dump (and so of config.yaml) at their default
    omit_at_default: ClassVar[tuple[str, ...]] = ("loggers", "wandb")

    epochs: int = Field(100, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    ema: float | None = Field(
        None, ge=0, lt=1, description="EMA decay of the weights (e.g. 0.999); null disables"
    )
    grad_clip: float | None = Field(None, gt=0, description="max global gradient norm")
    amp: Literal["none", "bf16"] = Field("none", description="bf16 autocast for forward passes")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    num_workers: int = Field(0, ge=0)
    keep_checkpoints: int = Field(2, ge=1, description="how many recent checkpoints to keep")
    max_nonfinite_steps: int = Field(
        0, ge=0, description="non-finite losses skipped (no update) before training stops"
    )
    progress: bool = True
    compile: bool = Field(
        False,
        description=(
            "torch.compile the model's forward and loss (falls back to eager with a warning "
            "where compiling is unavailable; changes only rounding)"
        ),
    )
    channels_last: bool = Field(
        False, description="channels-last memory format for weights and 4-D batches"
    )
    loggers: list[Literal["jsonl", "tensorboard", "wandb"]] = Field(
        ["jsonl"],
        description=(
            "where metrics go: jsonl (metrics.jsonl, always on: every page reads it), "
            "tensorboard (RUN/tensorboard/, pip install 'coldflow[tensorboard]'), wandb "
            "(offline unless training.wandb.mode or $WANDB_MODE say otherwise, pip install "
            "'coldflow[wandb]')"
        ),
    )
    wandb: WandbConfig | None = Field(
        None, description="W&B project, entity and mode of the wandb logger; null: defaults"
    )

    @field_validator("loggers", mode="before")
    @classmethod
    def _split_loggers(cls, value: Any) -> Any:
        if isinstance(value, str):  # --set training.loggers=jsonl,tensorboard
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("loggers")
    @classmethod
    def _check_loggers(cls, value: list[str]) -> list[str]:
        if "jsonl" not in value:
            raise ValueError(
                "must include jsonl: metrics.jsonl is what every report page reads; "
                f"write e.g. training.loggers=[{', '.join(['jsonl', *value])}]"
            )
        return list(dict.fromkeys(value))  # each logger once, in the order given

    @model_validator(mode="after")
    def _check_device(self) -> TrainingConfig:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        return self


#: The ``options`` a loss section gets when it leaves them out (``--set
#: method.loss.name=lsim`` then trains the studies' LSiM: one min-max scale over both
#: fields, not LSiM's own default ``separate``). ``options: {}`` keeps the distance's
#: own defaults.
DEFAULT_LOSS_OPTIONS: dict[str, dict[str, Any]] = {"lsim": {"scaling": "joint"}}

#: The ``fit`` a loss section gets when it leaves it out: the distance's own (``LSiM.fit``
#: in coldflow.losses.lsim, which says why LSiM resizes), else ``pad``. Run directories
#: store their resolved config, so runs trained before LSiM resized keep ``fit: pad``.
DEFAULT_LOSS_FIT: dict[str, str] = {"lsim": "resize"}


class FieldLossConfig(Strict):
    """A distance of :data:`coldflow.losses.LOSSES` through the vector-field adapter.

    Left out, ``options`` is the loss's entry of :data:`DEFAULT_LOSS_OPTIONS` (or none)
    and ``fit`` its entry of :data:`DEFAULT_LOSS_FIT` (or ``pad``).
    """

    name: Literal["mse", "mae", "vgg", "lpips", "lsim"] = "mse"
    fit: Literal["pad", "resize"] = Field(
        "pad", description="how small components are enlarged; left out: lsim resize, else pad"
    )
    pad_mode: Literal["edge", "reflect", "constant"] = "edge"
    faces: Literal["keep", "center"] = Field(
        "keep", description="staggered fields only: compare faces as stored or cell centres"
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="options of the distance, e.g. {scaling: joint}; left out: the "
        "loss's DEFAULT_LOSS_OPTIONS (lsim: {scaling: joint})",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_options(cls, data: Any) -> Any:
        if isinstance(data, dict) and "options" not in data:
            name = data.get("name", cls.model_fields["name"].default)
            default = DEFAULT_LOSS_OPTIONS.get(name, {}) if isinstance(name, str) else {}
            data = {**data, "options": copy.deepcopy(default)}
        if isinstance(data, dict) and "fit" not in data:
            name = data.get("name", cls.model_fields["name"].default)
            if isinstance(name, str) and name in DEFAULT_LOSS_FIT:
                data = {**data, "fit": DEFAULT_LOSS_FIT[name]}
        return data
