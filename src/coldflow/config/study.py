"""Config model of a study: many runs of any tasks, trained, evaluated and compared."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from coldflow.config.base import Strict

__all__ = ["StudyConfig", "StudyData", "StudyPipeline", "StudyRun"]


class StudyRun(Strict):
    """One run of a study: a config file (relative to the study file) and overrides."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    config: str
    set: list[str] = Field(default_factory=list, description="--set overrides for this run")
    evaluate: bool | int = Field(
        False,
        description="after training, `coldflow evaluate` the run: true with the task's "
        "defaults, a number: with this many samples (diffusion runs)",
    )
    evaluate_options: dict[str, Any] = Field(
        default_factory=dict, description="options of `coldflow evaluate`, e.g. {steps: 50}"
    )

    @model_validator(mode="after")
    def _check_evaluate(self) -> StudyRun:
        if self.evaluate is not True and self.evaluate is not False and self.evaluate < 2:
            raise ValueError(f"evaluate must be true, false or a number >= 2, got {self.evaluate}")
        return self


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
    metrics: list[str] = Field(default_factory=lambda: ["mse", "rel_l1", "lsim"])


class StudyConfig(Strict):
    """Several runs trained one after another, then compared in one report."""

    name: str = "study"
    description: str = Field("", description="one paragraph for the top of the page")
    data: list[StudyData] = Field(default_factory=list)
    runs: list[StudyRun] = Field(min_length=1)
    pipelines: list[StudyPipeline] = Field(default_factory=list)

    @model_validator(mode="after")
    def _pipelines_name_runs(self) -> StudyConfig:
        names = {r.name for r in self.runs}
        for p in self.pipelines:
            unknown = [n for n in [*p.sol, *p.sr] if n not in names]
            if unknown:
                raise ValueError(f"pipeline {p.name!r} names runs not in the study: {unknown}")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> StudyConfig:
        names = [r.name for r in self.runs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"run names must be unique; repeated: {', '.join(repeated)}")
        return self
