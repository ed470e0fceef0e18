"""Config model of a study: many runs of any tasks, trained, evaluated and compared.

A run may carry a ``matrix`` of config keys and values; validating the study file
expands it into one run per combination (:func:`expand_matrix`), so everything
downstream sees a flat list of :class:`StudyRun`.
"""

from __future__ import annotations

import itertools
import json
import re
import string
from typing import Any

import yaml
from pydantic import Field, field_validator, model_validator

from coldflow.config.base import Strict, parse_value
from coldflow.config.metric_defaults import DEFAULT_FIELD_METRICS

__all__ = [
    "StudyConfig",
    "StudyData",
    "StudyPipeline",
    "StudyRun",
    "expand_matrix",
    "expand_seeds",
    "seeded_name",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SCALARS = (str, int, float, bool, type(None))


class StudyRun(Strict):
    """One run of a study: a config file (relative to the study file) and overrides.

    With a ``matrix`` (config key -> list of values) the entry stands for one run per
    combination of values (the cartesian product; the first key varies slowest), each
    named by ``name`` with ``{placeholder}`` s filled in and trained with
    ``name=<run name>``, then ``set``, then ``key=value`` for each key of the matrix.
    A key's placeholder is its last segment, or the segment before a last ``name`` or
    ``kind`` (``{loss}`` for ``method.loss.name``, ``{lr}`` for ``training.optimizer.lr``),
    or the whole key (``{method.loss.name}``); a format spec may follow (``{lr:g}``).
    """

    name: str = Field(
        description="run name (letters, digits, '_', '.', '-'); with a matrix, a template "
        "such as karman_sr_{loss}"
    )
    config: str
    set: list[str] = Field(default_factory=list, description="--set overrides for this run")
    matrix: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="config key -> values: one run per combination, e.g. "
        "{method.loss.name: [mse, lsim]} with name karman_sr_{loss}",
    )
    evaluate: bool | int = Field(
        False,
        description="after training, `coldflow evaluate` the run: true with the task's "
        "defaults, a number: with this many samples (diffusion runs)",
    )
    evaluate_options: dict[str, Any] = Field(
        default_factory=dict, description="options of `coldflow evaluate`, e.g. {steps: 50}"
    )
    seeds: list[int] | None = Field(
        None,
        description="train this entry once per seed (the config's `seed` set to each), "
        "instead of the study's `seeds`; [] trains it once with its config's own seed",
    )
    configuration: str | None = Field(
        None,
        description="set by the study, not in a file: the name the seeds of one "
        "configuration share (the run's name without its _s<seed> suffix)",
    )
    seed: int | None = Field(None, description="set by the study, not in a file: this run's seed")

    @model_validator(mode="after")
    def _check_evaluate(self) -> StudyRun:
        if self.evaluate is not True and self.evaluate is not False and self.evaluate < 2:
            raise ValueError(f"evaluate must be true, false or a number >= 2, got {self.evaluate}")
        return self

    @model_validator(mode="after")
    def _check_name_and_matrix(self) -> StudyRun:
        if self.matrix or "matrix" in self.model_fields_set:
            _combinations(self)  # raises on any problem of the matrix or the template
        elif not _NAME.fullmatch(self.name):
            raise ValueError(
                f"run {self.name!r}: a run name is letters, digits, '_', '.' and '-'"
                + (" ({...} placeholders need a matrix)" if "{" in self.name else "")
            )
        return self


def _placeholder(key: str) -> str:
    parts = key.split(".")
    return parts[-2] if len(parts) > 1 and parts[-1] in ("name", "kind") else parts[-1]


def _set_text(value: Any) -> str:
    """``value`` as the text of a ``--set`` value that parses back to it (YAML)."""
    dumped = yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n").strip()
    for text in (dumped, json.dumps(value)):
        back = parse_value(text)
        if type(back) is type(value) and back == value:
            return text
    raise ValueError(f"{value!r} cannot be written as a --set value")


def _name_part(value: Any, spec: str, where: str) -> str:
    """A matrix value as it appears in run names: as written, or through a format spec."""
    if not spec:
        return value if isinstance(value, str) else _set_text(value)
    try:
        return format(value, spec)
    except ValueError as e:
        raise ValueError(f"{where}: format spec {spec!r} does not fit {value!r} ({e})") from None


def _template_fields(run: StudyRun) -> list[tuple[str, str]]:
    """``(field, format spec)`` of each placeholder of the run's name."""
    try:
        parsed = list(string.Formatter().parse(run.name))
    except ValueError as e:
        raise ValueError(f"run {run.name!r}: the name is not a valid template ({e})") from None
    fields = []
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if conversion or not field:
            raise ValueError(f"run {run.name!r}: write placeholders as {{loss}} or {{lr:g}}")
        fields.append((field, spec or ""))
    return fields


def _check_values(where: str, key: str, values: list[Any]) -> None:
    """Refuse a matrix key that is no dotted key, and values that are missing, no scalars
    or repeated."""
    if not _KEY.fullmatch(key):
        raise ValueError(
            f"{where}: matrix key {key!r} is no config key; write a dotted key as for --set, "
            "e.g. method.loss.name"
        )
    if not values:
        raise ValueError(
            f"{where}: matrix key {key!r} has no values; list at least one, e.g. "
            f"{key}: [a, b], or drop the key"
        )
    for v in values:
        if not isinstance(v, _SCALARS):
            raise ValueError(
                f"{where}: matrix key {key!r}: {v!r} is no scalar; values are strings, "
                f"numbers, true/false or null (vary a section one key at a time, e.g. "
                f"{key}.<option>: [...])"
            )
    try:
        texts = [_set_text(v) for v in values]
    except ValueError as e:
        raise ValueError(f"{where}: matrix key {key!r}: {e}; quote it as a string") from None
    repeated = sorted({t for t in texts if texts.count(t) > 1})
    if repeated:
        raise ValueError(
            f"{where}: matrix key {key!r} lists {', '.join(repeated)} more than once; "
            "list each value once"
        )


def _placeholders(run: StudyRun) -> dict[str, str]:
    """Placeholder -> matrix key: every key, and each short name no other key shares."""
    short = [_placeholder(k) for k in run.matrix]
    unique = {s: k for s, k in zip(short, run.matrix, strict=True) if short.count(s) == 1}
    return unique | {k: k for k in run.matrix}


def _check_template(run: StudyRun, known: dict[str, str]) -> None:
    """Every placeholder of the name is known, and every key with several values has one."""
    where = f"run {run.name!r}"
    fields = [field for field, _ in _template_fields(run)]
    for field in fields:
        shared = [k for k in run.matrix if _placeholder(k) == field]
        if field not in known and len(shared) > 1:
            raise ValueError(
                f"{where}: placeholder {{{field}}} is ambiguous ({', '.join(shared)}); write "
                f"the whole key, e.g. {{{shared[0]}}}"
            )
        if field not in known:
            offered = ", ".join(f"{{{p}}}" for p in known)
            raise ValueError(
                f"{where}: unknown placeholder {{{field}}}; this matrix offers {offered}"
            )
    named = {known[f] for f in fields}
    for key, values in run.matrix.items():
        if len(values) > 1 and key not in named:
            hint = _placeholder(key) if known.get(_placeholder(key)) == key else key
            raise ValueError(
                f"{where}: the name has no placeholder for matrix key {key!r} ({len(values)} "
                f"values), so its runs would share one name; name it e.g. {run.name}_{{{hint}}}"
            )


def _combinations(run: StudyRun) -> list[tuple[str, list[str]]]:
    """``(run name, matrix overrides)`` of each combination of ``run.matrix``, in order.

    Raises
    ------
    ValueError
        Naming the run, the key and the fix (empty matrix or list, a value that is no
        scalar, a placeholder missing or unknown, a name that is no valid run name).
    """
    where = f"run {run.name!r}"
    if not run.matrix:
        raise ValueError(
            f"{where}: the matrix is empty; give a key and its values, e.g. "
            "matrix: {method.loss.name: [mse, lsim]}, or leave matrix out"
        )
    for key, values in run.matrix.items():
        _check_values(where, key, values)
    known = _placeholders(run)
    _check_template(run, known)
    out = []
    for combo in itertools.product(*run.matrix.values()):
        value_of = dict(zip(run.matrix, combo, strict=True))
        name = "".join(
            literal + ("" if field is None else _name_part(value_of[known[field]], spec, where))
            for literal, field, spec, _ in string.Formatter().parse(run.name)
        )
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"{where}: expands to {name!r}, which is no run name (letters, digits, '_', "
                "'.', '-'); change the template or the values"
            )
        out.append((name, [f"{k}={_set_text(v)}" for k, v in value_of.items()]))
    return out


def expand_matrix(run: StudyRun) -> list[StudyRun]:
    """The runs ``run`` stands for: itself without a matrix, else one per combination.

    Each expanded run trains with ``name=<its name>``, then the entry's own ``set``, then
    the matrix's ``key=value`` overrides (so the matrix wins over ``set``).
    """
    if not run.matrix:
        return [run]
    return [
        run.model_copy(
            update={
                "name": name,
                "matrix": {},
                "set": [f"name={_set_text(name)}", *run.set, *overrides],
            }
        )
        for name, overrides in _combinations(run)
    ]


def _check_seeds(seeds: list[int] | None, where: str) -> None:
    if seeds is None:
        return
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"{where}: seeds lists {repeated} more than once; list each seed once")
    negative = [s for s in seeds if s < 0]
    if negative:
        raise ValueError(f"{where}: seeds must be >= 0, got {negative}")


def seeded_name(name: str, seed: int) -> str:
    """The run name of seed ``seed`` of the configuration ``name``: ``name_s<seed>``."""
    return f"{name}_s{seed}"


def expand_seeds(runs: list[StudyRun], seeds: list[int]) -> list[StudyRun]:
    """One run per configuration and seed, the seed outermost (every configuration of the
    first seed trains before any of the second, so a study stopped early still compares
    every configuration once). A run's own ``seeds`` replace the study's; a run without
    seeds keeps its name and its config's seed."""
    own = {id(r): seeds if r.seeds is None else r.seeds for r in runs}
    every = list(dict.fromkeys(s for r in runs for s in own[id(r)]))
    out = [r for r in runs if not own[id(r)]]
    for seed in every:
        for r in runs:
            if seed in own[id(r)]:
                name = seeded_name(r.name, seed)
                out.append(
                    r.model_copy(
                        update={
                            "name": name,
                            "configuration": r.name,
                            "seed": seed,
                            "set": [*r.set, f"seed={seed}"],
                        }
                    )
                )
    return out


class StudyData(Strict):
    """A fluid data set the study's runs need: generated, or reused when complete."""

    config: str = Field(description="data-set config, relative to the study file")
    out: str = Field(description="the .h5 file the run configs name (relative to the cwd)")
    set: list[str] = Field(default_factory=list, description="--set overrides")


class StudyPipeline(Strict):
    """A SOL + super-resolution comparison at high resolution (``evaluate-pipeline``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    sol: list[str] = Field(min_length=1, description="names of SOL runs of the study")
    sr: list[str] = Field(default_factory=list, description="names of SR runs of the study")
    steps: int = Field(50, ge=1)
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_FIELD_METRICS))


def _seeded_pipelines(p: StudyPipeline, runs: list[StudyRun]) -> list[StudyPipeline]:
    """A pipeline of seeded runs, once per seed: ``<name>_s<seed>`` pairs the SOL and SR
    runs of that seed. Unseeded runs join every seed as they are."""
    of = {(r.configuration, r.seed): r.name for r in runs if r.seed is not None}
    seeds = list(dict.fromkeys(r.seed for r in runs if r.configuration in [*p.sol, *p.sr]))
    plain = {r.name for r in runs if r.seed is None}
    if not seeds:
        return [p]

    def pick(names: list[str], seed: int) -> list[str]:
        return [n if n in plain else of[(n, seed)] for n in names if n in plain or (n, seed) in of]

    out = []
    for seed in seeds:
        sol = pick(p.sol, seed)
        if sol:
            update = {"name": seeded_name(p.name, seed), "sol": sol, "sr": pick(p.sr, seed)}
            out.append(p.model_copy(update=update))
    return out


class StudyConfig(Strict):
    """Several runs trained one after another, then compared in one report."""

    name: str = "study"
    description: str = Field("", description="one paragraph for the top of the page")
    data: list[StudyData] = Field(default_factory=list)
    seeds: list[int] = Field(
        default_factory=list,
        description="train every run once per seed (its config's `seed` set to each), as "
        "runs <name>_s<seed>; the pages give each configuration's mean over its seeds with "
        "an interval. [] (the default): each run once with its config's seed",
    )
    runs: list[StudyRun] = Field(min_length=1)
    pipelines: list[StudyPipeline] = Field(default_factory=list)

    @field_validator("runs")
    @classmethod
    def _expand_matrices(cls, runs: list[StudyRun]) -> list[StudyRun]:
        for run in runs:
            if run.configuration is not None or run.seed is not None:
                raise ValueError(
                    f"run {run.name!r}: configuration and seed are set by the study; give "
                    "seeds: [...] (of the study or of the run) instead"
                )
            _check_seeds(run.seeds, f"run {run.name!r}")
        return [expanded for run in runs for expanded in expand_matrix(run)]

    def seeds_of(self) -> dict[str, list[str]]:
        """Configuration name -> the names of its runs (one per seed; itself unseeded)."""
        out: dict[str, list[str]] = {}
        for r in self.runs:
            out.setdefault(r.configuration or r.name, []).append(r.name)
        return out

    @model_validator(mode="after")
    def _pipelines_name_runs(self) -> StudyConfig:
        names = {r.name for r in self.runs}
        for p in self.pipelines:
            unknown = [n for n in [*p.sol, *p.sr] if n not in names]
            if unknown:
                raise ValueError(f"pipeline {p.name!r} names runs not in the study: {unknown}")
        return self

    @model_validator(mode="after")
    def _expand_seeds(self) -> StudyConfig:
        _check_seeds(self.seeds, "the study")
        if self.seeds or any(r.seeds for r in self.runs):
            runs = expand_seeds(self.runs, self.seeds)
            pipelines = [q for p in self.pipelines for q in _seeded_pipelines(p, runs)]
            self.__dict__["runs"] = runs  # no re-validation: it would expand again
            self.__dict__["pipelines"] = pipelines
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> StudyConfig:
        names = [r.name for r in self.runs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"run names must be unique; repeated: {', '.join(repeated)}")
        return self
