"""Typed configuration: pydantic models, YAML loading and ``--set a.b=c`` overrides.

Every config file is validated against :class:`RunConfig` (training runs) or a
study/data-set model. Unknown or mistyped keys raise :class:`ConfigError`, whose
message names the file, the key, the value and what was expected.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ConfigError",
    "RunConfig",
    "load_config",
    "load_yaml",
    "apply_overrides",
    "parse_value",
    "validate",
    "dump_yaml",
]


class ConfigError(ValueError):
    """A config file or override is invalid. The message says where and how to fix it."""


class _Loader(yaml.SafeLoader):
    """YAML loader that reads ``1e-5`` as a float (YAML 1.1 wants ``1.0e-5``)."""


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


class Strict(BaseModel):
    """Base for all config sections: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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


DegradationConfig = Annotated[Union[LinearNoiseConfig], Field(discriminator="kind")]  # noqa: UP007


# --------------------------------------------------------------------------- networks


class SeedCNNConfig(Strict):
    """The seed study's CNN: 7x7 conv blocks with LayerNorm and GELU, time MLP."""

    kind: Literal["seed_cnn"] = "seed_cnn"
    hidden: tuple[int, ...] = (16, 32, 32, 16)
    kernel_size: int = 7
    last_kernel_size: int = 3
    time_embeddings: int = 16


ModelConfig = Annotated[Union[SeedCNNConfig], Field(discriminator="kind")]  # noqa: UP007


# ---------------------------------------------------------------------------- methods


class DDPMConfig(Strict):
    """Denoising diffusion (Ho et al. 2020), epsilon prediction."""

    kind: Literal["ddpm"] = "ddpm"


MethodConfig = Annotated[Union[DDPMConfig], Field(discriminator="kind")]  # noqa: UP007


# --------------------------------------------------------------------------- training


class OptimizerConfig(Strict):
    kind: Literal["adam", "adamw"] = "adam"
    lr: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)


class TrainingConfig(Strict):
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
    progress: bool = True

    @model_validator(mode="after")
    def _check_device(self) -> TrainingConfig:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        return self


class SamplingConfig(Strict):
    sampler: Literal["ancestral", "ddim"] = "ancestral"
    steps: int | None = Field(None, ge=1, description="DDIM steps (default: 50)")
    eta: float = Field(0.0, ge=0, description="DDIM eta (0: deterministic)")
    snapshot_timesteps: list[int] = Field(
        default_factory=list, description="timesteps at which the sampling trajectory is captured"
    )
    n_grid: int = Field(16, ge=1, description="samples drawn for grids")


class FIDConfig(Strict):
    enabled: bool = True
    n_samples: int = Field(10000, ge=2)
    extractor: Literal["mnist_classifier", "inception"] = "mnist_classifier"
    sampler: Literal["ancestral", "ddim"] = "ddim"
    steps: int = Field(50, ge=1, description="sampler steps used for FID samples (DDIM)")
    batch_size: int = Field(500, ge=1)


class EvaluationConfig(Strict):
    interval: int = Field(9, ge=1, description="evaluate (FID, samples) every N epochs")
    fid: FIDConfig = FIDConfig()
    sample_epochs: list[int] | None = Field(
        None, description="epochs whose samples are shown side by side (default: eval epochs)"
    )


class RunConfig(Strict):
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
    def _check_snapshots(self) -> RunConfig:
        n_T = self.degradation.n_T
        bad = [t for t in self.sampling.snapshot_timesteps if not 1 <= t <= n_T]
        if bad:
            raise ValueError(f"sampling.snapshot_timesteps {bad} lie outside 1..n_T = 1..{n_T}")
        return self


# ------------------------------------------------------------------------ loading


def parse_value(text: str) -> Any:
    """Parse an override value the way YAML would, with ``1e-5`` read as a float.

    >>> parse_value("1e-5"), parse_value("3"), parse_value("[1, 2]"), parse_value("abc")
    (1e-05, 3, [1, 2], 'abc')
    """
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error for missing files and bad syntax."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys, got {type(data).__name__}"
        )
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str] | None, source: str = "") -> dict:
    """Apply ``a.b=c`` overrides to a nested dict (a copy is returned).

    Raises
    ------
    ConfigError
        For an override without ``=`` or one that descends into a non-mapping.
    """
    import copy

    out = copy.deepcopy(data)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. training.epochs=5")
        node = out
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"{source}--set {item!r}: {'.'.join(parts[: i + 1])} is {child!r}, not a section"
                )
            node = child
        node[parts[-1]] = parse_value(value)
    return out


def _unwrap(annotation: Any) -> list[Any]:
    """The BaseModel classes a field annotation may hold."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _unwrap(a)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Names of the valid keys of the section at ``loc`` (best effort)."""
    current: list[type[BaseModel]] = [model]
    for part in loc:
        nxt: list[type[BaseModel]] = []
        for m in current:
            if part in m.model_fields:
                nxt.extend(_unwrap(m.model_fields[part].annotation))
            else:  # a discriminated-union tag in the location
                nxt.extend(
                    [m]
                    if m.model_fields.get("kind") and m.model_fields["kind"].default == part
                    else []
                )
        current = nxt or current
    names: list[str] = []
    for m in current:
        names.extend(n for n in m.model_fields if n not in names)
    return names


def _clean_loc(model: type[BaseModel], loc: tuple) -> tuple:
    """Drop the discriminated-union tags pydantic puts into error locations."""
    out: list[str] = []
    current: list[type[BaseModel]] = [model]
    for part in loc:
        if any(part in m.model_fields for m in current):
            out.append(part)
            current = [
                a
                for m in current
                if part in m.model_fields
                for a in _unwrap(m.model_fields[part].annotation)
            ] or current
        elif not any(
            "kind" in m.model_fields and m.model_fields["kind"].default == part for m in current
        ):
            out.append(part)
    return tuple(out)


def _format_errors(err: pydantic.ValidationError, model: type[BaseModel], source: str) -> str:
    lines = []
    for e in err.errors():
        loc = _clean_loc(model, tuple(str(p) for p in e["loc"]))
        key = ".".join(loc) or "<top level>"
        if e["type"] == "extra_forbidden":
            valid = _fields_at(model, loc[:-1])
            lines.append(f"  {key}: unknown key; valid keys here: {', '.join(valid)}")
        elif e["type"] == "union_tag_invalid":
            lines.append(f"  {key}: {e['msg']}")
        else:
            value = e.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            lines.append(f"  {key}: {e['msg']}{shown}")
    return f"{source}: invalid config:\n" + "\n".join(lines)


M = typing.TypeVar("M", bound=BaseModel)


def validate(data: dict[str, Any], model: type[M] = RunConfig, source: str = "<config>") -> M:
    """Validate a dict against ``model``; raise :class:`ConfigError` with readable messages."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as e:
        raise ConfigError(_format_errors(e, model, source)) from None


def load_config(
    path: str | Path, overrides: list[str] | None = None, model: type[M] = RunConfig
) -> M:
    """Load a YAML config, apply ``--set`` overrides and validate it.

    Parameters
    ----------
    path
        YAML file.
    overrides
        ``["training.epochs=5", "degradation.beta1=1e-5"]``; values are typed as YAML.
    model
        The pydantic model to validate against.

    Raises
    ------
    ConfigError
        Naming the file, the key and what was expected.
    """
    data = apply_overrides(load_yaml(path), overrides, source=f"{path}: ")
    return validate(data, model, source=str(path))


def dump_yaml(cfg: BaseModel) -> str:
    """Serialise a config (all defaults resolved) as YAML."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
