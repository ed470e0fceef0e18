"""Typed configuration: pydantic models, YAML loading and ``--set a.b=c`` overrides.

Every config file is validated against a pydantic model (``DiffusionRunConfig`` for training
runs, the fluid data-set and study models elsewhere in this package). Unknown or
mistyped keys raise :class:`ConfigError`, whose message names the file, the key, the
value and what was expected.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, ClassVar, Union

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, model_serializer

from coldflow.errors import UserError

__all__ = [
    "ConfigError",
    "OmitWhenDefault",
    "Strict",
    "load_config",
    "load_yaml",
    "apply_overrides",
    "parse_value",
    "validate",
    "dump_yaml",
]


class ConfigError(UserError, ValueError):
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
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        raise ConfigError(f"{path}: the config file is empty; write its keys (see configs/)")
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
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"{source}--set {item!r}: {where} is {child!r}, not a section")
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
        raw = tuple(str(p) for p in e["loc"])
        loc = _clean_loc(model, raw)
        key = ".".join(loc) or "<top level>"
        if e["type"] == "extra_forbidden":
            # the raw location keeps a discriminated union's tag (e.g. scene.karman.x):
            # the valid keys are then those of the selected kind only
            valid = _fields_at(model, raw[:-1])
            lines.append(f"  {key}: unknown key; valid keys here: {', '.join(valid)}")
        elif e["type"] == "union_tag_invalid":
            lines.append(f"  {key}: {e['msg']}")
        else:
            value = e.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            lines.append(f"  {key}: {e['msg']}{shown}")
    return f"{source}: invalid config:\n" + "\n".join(lines)


M = typing.TypeVar("M", bound=BaseModel)


def validate(data: dict[str, Any], model: type[M], source: str = "<config>") -> M:
    """Validate a dict against ``model``; raise :class:`ConfigError` with readable messages."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as e:
        raise ConfigError(_format_errors(e, model, source)) from None


def load_config(path: str | Path, model: type[M], overrides: list[str] | None = None) -> M:
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


class OmitWhenDefault(Strict):
    """A config section whose options added after runs and data sets existed are left out
    of its dump while they hold their default.

    The dump is what run and data-set hashes (``trajectory_hash``, the data set's
    ``physics_hash``) and the stored ``config.yaml`` are made of: an option added later
    must not change the hash of what was made before it existed, and a default dump
    must read back as before. Subclasses name such options in ``omit_at_default``.
    """

    omit_at_default: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_defaults(self, handler) -> dict[str, Any]:
        data = handler(self)
        fields = type(self).model_fields
        for name in self.omit_at_default:
            if name in data and getattr(self, name) == fields[name].get_default(
                call_default_factory=True
            ):
                del data[name]
        return data
