"""What the fluid tasks share: reading a data set's own config and checking test data.

A data set file stores the config it was generated from (``config_yaml``); a run keeps
a copy of it, so that a trained run can be evaluated on another file without its
training file, and so that a test file of another scene or resolution is refused with a
message that says what differs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from coldflow.config import ConfigError, dump_yaml, parse_value, validate
from coldflow.config.fluids import FluidDataConfig
from coldflow.data.store import FieldData
from coldflow.errors import UserError
from coldflow.losses import build_field_loss
from coldflow.physics import FluidState
from coldflow.tasks.base import Task

__all__ = [
    "outside_training_range",
    "training_range",
    "FluidTask",
    "SourceRollouts",
    "check_same_data_kind",
    "data_config",
    "data_config_from_text",
    "data_config_text",
    "read_stacked",
    "rollout_starts",
    "source_rollouts",
    "validation_hooks",
]


class FluidTask(Task):
    """A task trained on a coldflow data set with a field loss (SOL, autoencoder, SR)."""

    loss_grid: ClassVar[str]
    """The grid the loss sees: ``staggered`` (SOL's solver state) or ``centered``."""
    hash_exclude: ClassVar[dict[str, Any]] = {"data": {"test_path"}, "evaluation": True}

    def check(self, cfg: Any) -> None:
        """The loss's weights are there and ``data.path`` is a readable coldflow data set."""
        self.check_weights(cfg)
        data_config(cfg.data.path)

    def check_weights(self, cfg: Any) -> None:
        """Build the configured loss once: a missing pretrained file raises ``HubError``."""
        spec = cfg.method.loss
        build_field_loss(spec.name, grid=self.loss_grid, **spec.options)

    def group(self, cfg: Any) -> str:
        """Runs of one task on one data set are compared together."""
        return f"{cfg.method.kind}_{Path(cfg.data.path).stem}"

    def results_row(self, cfg: Any, evaluation: dict[str, Any]) -> dict[str, Any] | None:
        """Task, loss and the learned model's headline numbers (:meth:`summary`)."""
        return {"task": cfg.method.kind, "loss": cfg.method.loss.name} | self.summary(evaluation)

    def check_reusable(self, name: str, cfg: Any, run: Any) -> None:
        """As :meth:`Task.check_reusable`, and refuse a run trained on an earlier version
        of its data set (the data set's stored config differs from the run's copy)."""
        super().check_reusable(name, cfg, run)
        data = Path(cfg.data.path)
        for file in self.files:
            stats_path = run.path / file
            if not (file.endswith(".json") and stats_path.is_file() and data.is_file()):
                continue
            trained_on = json.loads(stats_path.read_text()).get("data_config")
            # compared as configs: the text of an older run lacks keys added since (defaults)
            if trained_on and data_config_from_text(trained_on, str(stats_path)) != data_config(
                data
            ):
                raise UserError(
                    f"{name}: {run.path} was trained on an earlier version of {data} (the data "
                    f"set's config differs from the one in {stats_path}); delete {run.path} to "
                    "train it again on the current data, or use another --out"
                )


def training_range(data: FieldData) -> dict[str, list[float]]:
    """``{parameter: [min, max]}`` over the training simulations of an open data set
    (``{}`` without any)."""
    train = [t.params for t in data.simulations("train")]
    if not train:
        return {}
    return {k: [min(t[k] for t in train), max(t[k] for t in train)] for k in data.param_names}


def outside_training_range(sim: dict[str, Any], ranges: dict[str, list[float]]) -> list[str]:
    """The parameters of ``sim`` outside the training range ``ranges``, as words
    (``"U 1.3 > 1.2"``); ``[]`` inside it."""
    out = []
    for k, (lo, hi) in ranges.items():
        if k in sim and not lo <= sim[k] <= hi:
            out.append(
                f"{k} {sim[k]:g} {'<' if sim[k] < lo else '>'} {lo if sim[k] < lo else hi:g}"
            )
    return out


def data_config_from_text(text: str, source: str) -> FluidDataConfig:
    """Parse a stored data-set config (the ``config_yaml`` attribute of a file)."""
    return validate(parse_value(text), FluidDataConfig, source)


def data_config(path: str | Path) -> FluidDataConfig:
    """The :class:`FluidDataConfig` a data set file was generated from (its attribute)."""
    with FieldData(path) as data:
        text = data.attrs.get("config_yaml")
    if not text:
        raise ConfigError(f"{path}: the data set stores no config_yaml attribute; regenerate it")
    return data_config_from_text(text, f"{path} (config_yaml)")


def data_config_text(path: str | Path) -> str:
    """The data-set config of ``path`` as YAML text, to be stored with a run."""
    return dump_yaml(data_config(path))


def check_same_data_kind(trained: FluidDataConfig, test: FluidDataConfig, test_path: Any) -> None:
    """Refuse test data of another scene or resolution than the training data.

    Raises
    ------
    ConfigError
        Naming every property that differs, with both values.
    """
    checks = {
        "scene": (trained.scene.kind, test.scene.kind),
        "resolution (high)": (tuple(trained.resolution), tuple(test.resolution)),
        "factor (low = high / factor)": (trained.factor, test.factor),
        "scene.dt": (trained.scene.dt, test.scene.dt),
    }
    differ = [f"{k}: trained on {a}, test file has {b}" for k, (a, b) in checks.items() if a != b]
    if differ:
        raise ConfigError(
            f"{test_path}: the test data do not match the data the run was trained on ("
            + "; ".join(differ)
            + "); evaluate on a data set generated from a config with the same scene and "
            "resolutions"
        )


def validation_hooks(
    path: str | Path,
    items: Callable[[], Any],
    limit: int,
    batch_size: int,
    unit: str,
) -> list[Any]:
    """A :class:`~coldflow.training.validation.ValidationHook` on at most ``limit``
    evenly spread ``items()`` of the data set's ``val`` simulations (built only when the
    file has a val split: no hook otherwise), as the fluid tasks add to their runs."""
    from coldflow.training.validation import ValidationHook, spread_subset

    with FieldData(path) as data:
        n = len(data.simulations("val"))
    if not n:
        return []
    subset = spread_subset(items(), limit)
    return [ValidationHook(subset, batch_size, f"{len(subset)} {unit} of {n} val simulations")]


def read_stacked(data: FieldData, sims: list, kind: str, field: str, frames: Any) -> torch.Tensor:
    """One stored array of several simulations, stacked along a new axis 0 (``frames``: an
    index gives ``[B, ...]``, a slice ``[B, T, ...]``)."""
    return torch.stack([torch.from_numpy(data.read(s, kind, field, frames)) for s in sims])


@dataclass(frozen=True)
class SourceRollouts:
    """Short runs of the low-resolution solver started on downsampled reference frames,
    at cell centres (:func:`source_rollouts`).

    ``low`` ``[N, K + 1, C, h, w]`` are the solver's states (step 0: the downsampled
    reference it starts from), ``high`` ``[N, K + 1, C, H, W]`` the reference frames at
    the same times (``None`` unless asked for), ``sim`` and ``start`` ``[N]`` where each
    run starts. ``C`` follows :func:`coldflow.data.frames.channel_names`.
    """

    low: torch.Tensor
    high: torch.Tensor | None
    sim: torch.Tensor
    start: torch.Tensor

    @property
    def steps(self) -> int:
        return self.low.shape[1] - 1


def rollout_starts(first: int, last: int, count: int) -> list[int]:
    """``count`` start frames evenly spread over ``first .. last`` (fewer if the span is
    shorter), increasing and distinct."""
    if last < first:
        return []
    picks = np.linspace(first, last, max(1, count)).round().astype(int)
    return sorted(set(picks.tolist()))


def source_rollouts(
    path: str | Path,
    split: str,
    steps: int,
    starts: int,
    fields: Sequence[str] = ("velocity",),
    with_reference: bool = True,
    keep: Callable[[int], Sequence[int]] | None = None,
    stepper: Callable[[Any, dict[str, torch.Tensor]], Any] | None = None,
) -> SourceRollouts:
    """Run the data set's low-resolution solver ``steps`` steps from ``starts`` frames
    (evenly spread after the warm-up) of every ``split`` simulation.

    This is what an upsampler meets in use: the low-resolution solver's own states,
    which drift from the downsampled reference as it runs (numerical diffusion, phase
    error), rather than the downsampled reference itself.

    Parameters
    ----------
    path
        A data set written by ``coldflow simulate``.
    split
        ``"train"``, ``"val"`` or ``"test"``.
    steps
        Solver steps per run (``K``).
    starts
        Start frames per simulation, evenly spread over the frames after the warm-up
        that leave room for ``steps`` more.
    fields
        ``"velocity"`` and optionally ``"density"`` (carried by the solver either way
        where the scene has one).
    with_reference
        Also read the reference at every state's frame.
    keep
        ``keep(i)`` lists the steps of run ``i`` to keep (the others are dropped, to save
        memory); then ``low`` and ``high`` hold only those, ``[N, len(keep(i)), ...]``
        (the same length for every run). Default: every step ``0 .. K``.
    stepper
        ``stepper(state, params) -> state``: one step of another low-resolution solver,
        e.g. a Solver-in-the-Loop run's corrected one
        (:func:`coldflow.tasks.recon.source.sol_stepper`); ``params``
        is the scene's ``{name: [B] tensor}``. Default: the data set's own solver.
    """
    from coldflow.data.frames import channel_names, read_centered
    from coldflow.physics import build_scene, faces_to_centered

    cfg = data_config(path)
    scene = build_scene(cfg, cfg.low_resolution)
    channel_names(fields)  # checks them
    lows, highs, sim_ids, start_ids = [], [], [], []
    with FieldData(path) as data:
        sims = data.simulations(split)
        if not sims:
            raise ConfigError(f"{path}: no simulations in split {split!r}")
        frames = rollout_starts(data.warmup, data.frames - 1 - steps, starts)
        if not frames:
            raise ConfigError(
                f"{path}: runs of {steps} steps do not fit after frame {data.warmup} "
                f"({data.frames} frames); use fewer steps"
            )
        for sim in sims:
            v = torch.from_numpy(data.read(sim, "downsampled", "velocity", frames))
            density = None
            if scene.has_density or "density" in fields:  # a passive marker is advected too
                density = torch.from_numpy(data.read(sim, "downsampled", "density", frames))
            params = scene.params_tensor(
                {k: float(sim.params[k]) for k in scene.param_names}, batch_size=len(frames)
            )
            state = FluidState(
                v.to(scene.dtype), None if density is None else density.to(scene.dtype)
            )
            states = [state]
            with torch.no_grad():
                for _ in range(steps):
                    state = (stepper or scene.step)(state, params)
                    states.append(state)
            first = len(sim_ids)
            wanted = [keep(first + j) if keep else range(steps + 1) for j in range(len(frames))]
            for j, t in enumerate(frames):
                parts = []
                for k in wanted[j]:
                    s = states[k]
                    c = [faces_to_centered(s.velocity[j : j + 1].float())]
                    if "density" in fields:
                        c.append(s.density[j : j + 1, None].float())
                    parts.append(torch.cat(c, dim=1))
                lows.append(torch.cat(parts))
                if with_reference:
                    ref = read_centered(data, sim, "reference", [t + k for k in wanted[j]], fields)
                    highs.append(torch.from_numpy(ref))
                sim_ids.append(sim.index)
                start_ids.append(t)
    return SourceRollouts(
        torch.stack(lows),
        torch.stack(highs) if with_reference else None,
        torch.tensor(sim_ids),
        torch.tensor(start_ids),
    )
