"""The Task interface: what one kind of run needs beyond the generic run machinery.

Everything every run shares (the run directory, seeding, resume, EMA, checkpoints,
``evaluation.json``, ``report.html``) lives in :mod:`coldflow.experiment`. A task says
only what differs: its config model, how to build its model and data set, what to do
after training, how to evaluate a trained model and which figures to draw. Tasks are
registered by ``method.kind`` in :data:`coldflow.tasks.TASKS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel
from torch import nn
from torch.utils.data import Dataset

from coldflow.errors import UserError
from coldflow.report.html import Comparison, Figure
from coldflow.runs import RunDir

__all__ = ["Comparison", "LoadedRun", "Prepared", "Task"]

Hook = Callable[[Any, int], None]


@dataclass
class Prepared:
    """What training a run needs, built by :meth:`Task.prepare`.

    ``files`` are JSON documents the run keeps next to its config (e.g. the data-set
    statistics a network's inputs are scaled by); they are written before training
    starts and handed back to :meth:`Task.build` when the run is loaded.
    """

    model: nn.Module
    dataset: Dataset
    hooks: list[Hook] = field(default_factory=list)
    files: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedRun:
    """A trained run: its config, directory, model (EMA weights when kept) and files.

    It offers what its task does: :meth:`sample` (diffusion), :meth:`rollout`
    (Solver-in-the-Loop) and :meth:`evaluate` (every task).
    """

    cfg: Any
    run: RunDir
    model: nn.Module
    epoch: int
    device: torch.device
    files: dict[str, Any] = field(default_factory=dict)
    task: Task | None = None

    def _task(self) -> Task:
        from coldflow.tasks import task_for

        return self.task or task_for(self.cfg)

    def sample(self, n: int = 16, **options: Any) -> Any:
        """Draw ``n`` samples (the config's sampler unless ``options`` say otherwise,
        e.g. ``sampler="ddim", steps=25``); a ``SampleResult`` with ``.images``."""
        task = self._task()
        if not task.draws_samples:
            raise UserError(f"{self.run.path} is a {task.kinds[0]} run, which draws no samples")
        return task.sample(self, n, **options)

    def rollout(self, *args: Any, **kwargs: Any) -> Any:
        """Roll the trained model's solver out (Solver-in-the-Loop runs)."""
        return self._task().rollout(self, *args, **kwargs)

    def evaluate(self, **options: Any) -> dict[str, Any]:
        """Score the run with its task's evaluation (returned, not written to a file;
        :func:`coldflow.evaluate` also writes ``evaluation.json``)."""
        return self._task().evaluate(self, **options)


class Task:
    """One kind of run. Subclasses set the class attributes and override the hooks.

    Attributes
    ----------
    kinds
        The ``method.kind`` values the task serves.
    config_model
        Pydantic model of its config files.
    files
        Names of the JSON files :meth:`prepare` stores in the run directory.
    hash_exclude
        Config fields that do not change the training trajectory (a resumed run may
        change them), in the form of :func:`coldflow.training.hashes.trajectory_hash`.
    """

    kinds: ClassVar[tuple[str, ...]] = ()
    config_model: ClassVar[type[BaseModel]]
    files: ClassVar[tuple[str, ...]] = ()
    hash_exclude: ClassVar[dict[str, Any]] = {}
    draws_samples: ClassVar[bool] = False
    """Whether :meth:`sample` draws samples (generative tasks)."""

    def check(self, cfg: Any) -> None:
        """Fail before anything is written when the run cannot start (data, weights)."""
        self.check_weights(cfg)

    def check_weights(self, cfg: Any) -> None:
        """Raise :class:`coldflow.hub.HubError` when pretrained weights it needs are missing."""

    def prepare(self, cfg: Any, stored: dict[str, Any]) -> Prepared:
        """Model, data set, hooks and run files of a training run.

        ``stored`` holds the run files of an interrupted run being resumed (reuse them,
        so that the resumed run scales its data exactly as before), else is empty.
        """
        raise NotImplementedError

    def build(self, cfg: Any, files: dict[str, Any]) -> nn.Module:
        """The model of a trained run, before its weights are loaded."""
        raise NotImplementedError

    def finish(self, loaded: LoadedRun) -> None:
        """After training (rank 0): e.g. draw the final samples."""

    def finished(self, run: RunDir) -> bool:
        """Whether :meth:`finish` has left its files (training itself is complete)."""
        return True

    def evaluate(self, loaded: LoadedRun, **options: Any) -> dict[str, Any]:
        """Score a trained run; the result becomes ``evaluation.json``."""
        raise NotImplementedError

    def describe(self, cfg: Any) -> str:
        """One line for report subtitles and tables."""
        return str(cfg.method.kind)

    def figures(self, run: RunDir, cfg: Any, notes: list[str]) -> list[Any]:
        """The task's figures of one run directory (report.html adds the curves)."""
        return []

    def run_tables(self, run: RunDir, cfg: Any) -> list[tuple[str, str]]:
        """The task's ``(caption, markdown table)`` pairs for one run's report.html."""
        return []

    def compare(self, runs: Sequence[Path], out: Path, labels: Sequence[str]) -> Comparison:
        """Tables and figures comparing several runs of this task."""
        return Comparison()

    def key_figures(self, runs: Sequence[Path], out: Path) -> list[Figure]:
        """The few figures a study's front page shows of these runs, as thumbnails.

        Called after :meth:`compare` and the comparison page in ``out`` are written (and
        every run's ``report.html``): it picks among the files those wrote, most telling
        first, and draws nothing. A figure under a run's directory links to that run's
        ``report.html``, any other to the comparison page; files that do not exist are
        left off the page.

        Parameters
        ----------
        runs
            The run directories of one group of the study.
        out
            The folder of their comparison page (``out/figures/`` holds its figures).

        Returns
        -------
        list of Figure
            ``(path, caption)`` each, the caption a few words; none by default.
        """
        return []

    def findings(self, runs: Sequence[Path], labels: Sequence[str]) -> list[str]:
        """Sentences stating what the numbers of several finished runs support, generated
        from their files (never written by hand); shown on a study's page."""
        return []

    def study_findings(self, groups: dict[str, list[Path]]) -> list[str]:
        """Sentences comparing runs across a study's groups (``{group: [run dirs]}``, every
        group of the study, of any task), e.g. one method against another task's runs;
        shown once per task on the study's page. None by default."""
        return []

    def summary(self, evaluation: dict[str, Any]) -> dict[str, float]:
        """The headline numbers of an ``evaluation.json`` for a study's results table."""
        return {}

    def per_simulation(
        self, evaluation: dict[str, Any]
    ) -> tuple[str, dict[str, dict[str, list[float]]]] | None:
        """``(model row, {row: {metric: [one score per test simulation]}})`` of an
        ``evaluation.json``, for paired comparisons over seeds and test simulations
        (:mod:`coldflow.report.seeds`); None where the task has no such scores."""
        return None

    def results_row(self, cfg: Any, evaluation: dict[str, Any]) -> dict[str, Any] | None:
        """This run's row in a study's table of every run (None: the task has no row)."""
        return None

    def group(self, cfg: Any) -> str:
        """Runs of a study compared together share this name (default: the task)."""
        return str(cfg.method.kind)

    def check_reusable(self, name: str, cfg: Any, run: RunDir) -> None:
        """Refuse to reuse a finished run trained with another config than ``cfg``
        (fields outside :attr:`hash_exclude`, e.g. ``training.epochs``, may differ).

        Raises
        ------
        UserError
            Naming the run, the directory and what to do.
        """
        from coldflow.training.hashes import hash_matches, trajectory_hash

        stored = run.sidecar(run.checkpoints()[-1]).get("config_hash")
        if not hash_matches(stored, trajectory_hash(cfg, self.hash_exclude)):
            raise UserError(
                f"{name}: {run.path} was trained with a different config than the study's "
                f"(compare {run.config_path} with the study's config); delete {run.path} to "
                "train it again, or use another --out"
            )

    def draw_configs(self, labelled: list[tuple[str, Any]], out: Path) -> Path | None:
        """A figure of several configs of this task into ``out`` (``coldflow report
        config.yaml ...``); its path, or None when the task draws no configs."""
        return None

    def sample(self, loaded: LoadedRun, n: int, **options: Any) -> Any:
        """Draw ``n`` samples from a trained run (tasks with :attr:`draws_samples`)."""
        raise NotImplementedError

    def rollout(self, loaded: LoadedRun, *args: Any, **kwargs: Any) -> Any:
        """Roll a trained solver out (tasks whose model is a solver)."""
        raise UserError(f"{loaded.run.path} is a {self.kinds[0]} run, which has no rollout")

    def sample_title(self, cfg: Any, **options: Any) -> str:
        """A title for a grid of samples drawn with ``options`` (``None``: the config's)."""
        return str(cfg.name)
