"""Config model of a study: many runs of any tasks, trained, evaluated and compared."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from coldflow.config.base import Strict

__all__ = ["StudyConfig", "StudyRun"]


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


class StudyConfig(Strict):
    """Several runs trained one after another, then compared in one report."""

    name: str = "study"
    runs: list[StudyRun] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> StudyConfig:
        names = [r.name for r in self.runs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"run names must be unique; repeated: {', '.join(repeated)}")
        return self
