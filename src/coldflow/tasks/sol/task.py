"""Solver-in-the-Loop: a network corrects the low-resolution solver of a fluid data set.

The run keeps ``data_stats.json``: the standard deviations the network's inputs are
scaled by and the data set's own config, so that the trained run can rebuild its solver
and be evaluated on any compatible file without its training file. Evaluation rolls out
the source and the corrected solver from the same frame of every held-out simulation
and compares each state with the downsampled reference of its frame.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from coldflow.config import ConfigError
from coldflow.config.fluids import FluidDataConfig, PressureSolverConfig
from coldflow.data.store import FieldData, FieldWindows
from coldflow.losses import build_field_loss
from coldflow.methods.sol import SolverInTheLoop, net_channels
from coldflow.metrics import METRIC_COLUMNS, metric_functions
from coldflow.nets import NETS
from coldflow.physics import FluidState, Scene, build_scene
from coldflow.runs import read_evaluation, save_tensors
from coldflow.tasks.base import Comparison, LoadedRun, Prepared
from coldflow.tasks.fluid import (
    FluidTask,
    check_same_data_kind,
    data_config,
    data_config_from_text,
    data_config_text,
    validation_hooks,
)
from coldflow.tasks.sol.config import SolRunConfig

__all__ = [
    "STATS_FILE",
    "SolTask",
    "build_sol_model",
    "data_statistics",
    "low_scene",
    "source_scene",
    "with_solver",
]

STATS_FILE = "data_stats.json"

VALIDATION_WINDOWS = 64
"""Windows of the val simulations scored after every epoch (evenly spread over them)."""


def low_scene(path: str | Path) -> Scene:
    """The low-resolution scene (the source solver) of a data set file."""
    cfg = data_config(path)
    scene = build_scene(cfg, cfg.low_resolution)
    with FieldData(path) as data:
        stored = data.param_names
    if stored != list(scene.param_names):
        raise ConfigError(
            f"{path}: the data set stores the simulation parameters {stored}, but the "
            f"{scene.name} scene of this coldflow version takes {list(scene.param_names)}; "
            f"the file was made by an older version: generate it again with coldflow simulate"
        )
    return scene


def data_statistics(path: str | Path, split: str = "train") -> dict[str, Any]:
    """Standard deviations of the downsampled velocity and of each scene parameter.

    The velocity statistic runs over the faces the low-resolution solver evolves in all
    frames after the warm-up of the ``split`` simulations, for both components together
    (``velocity_std``) and per component (``velocity_std_components``: y, x); a
    parameter with a single value uses its magnitude (never zero). For a scene that
    carries a density, ``density_std`` is that of the downsampled density over the same
    frames. The data set's config is kept as ``data_config``.
    """
    scene = low_scene(path)
    mask = scene.free_faces().numpy().astype(bool)  # [2, H + 1, W + 1]
    total, total_sq, count = np.zeros(2), np.zeros(2), np.zeros(2)
    dens = np.zeros(3)  # sum, sum of squares, count
    with FieldData(path) as data:
        sims = data.simulations(split)
        if not sims:
            raise ConfigError(f"{path}: no simulations in split {split!r}")
        for sim in sims:
            v = data.read(sim, "downsampled", "velocity", slice(data.warmup, None))
            for c in range(2):
                values = v[:, c][:, mask[c]].astype(np.float64)
                total[c] += values.sum()
                total_sq[c] += (values**2).sum()
                count[c] += values.size
            if scene.has_density:
                d = data.read(sim, "downsampled", "density", slice(data.warmup, None))
                d = d.astype(np.float64)
                dens += (d.sum(), (d**2).sum(), d.size)
        names = data.param_names
        params = np.array([[s.params[n] for n in names] for s in sims], dtype=np.float64)

    def std(t: float, t2: float, n: float) -> float:
        return float(np.sqrt(max(t2 / n - (t / n) ** 2, 1e-12)))

    velocity_std = std(total.sum(), total_sq.sum(), count.sum())
    param_std = params.std(axis=0)
    param_std = np.where(param_std > 0, param_std, np.abs(params).mean(axis=0))
    param_std = np.where(param_std > 0, param_std, 1.0)
    extra = {"density_std": std(*dens)} if scene.has_density else {}
    return {
        "velocity_std": velocity_std,
        "velocity_std_components": [std(total[c], total_sq[c], count[c]) for c in range(2)],
        "param_names": names,
        "param_std": [float(s) for s in param_std],
        "split": split,
        "simulations": len(sims),
        "data": str(path),
        "data_config": data_config_text(path),
        **extra,
    }


def stored_data_config(cfg: SolRunConfig, stats: dict[str, Any]):
    text = stats.get("data_config")
    if text:
        return data_config_from_text(text, f"{STATS_FILE} (data_config)")
    return data_config(cfg.data.path)  # runs trained before the config was stored


def with_solver(dcfg: FluidDataConfig, override: PressureSolverConfig | None) -> FluidDataConfig:
    """``dcfg`` with the pressure-solver keys ``override`` gives (its fields set) in place
    of the data set's own; unchanged for ``None``."""
    if override is None:
        return dcfg
    given = {k: getattr(override, k) for k in override.model_fields_set}
    solver = dcfg.scene.solver.model_copy(update=given)
    return dcfg.model_copy(update={"scene": dcfg.scene.model_copy(update={"solver": solver})})


def source_scene(cfg: SolRunConfig, stats: dict[str, Any]) -> Scene:
    """The run's source solver: the data set's low-resolution scene, with the pressure
    solver settings of ``method.solver`` where the run gives them."""
    dcfg = with_solver(stored_data_config(cfg, stats), cfg.method.solver)
    return build_scene(dcfg, dcfg.low_resolution)


def build_sol_model(
    cfg: SolRunConfig, scene: Scene, stats: dict[str, Any], with_loss: bool = True
) -> SolverInTheLoop:
    """The :class:`SolverInTheLoop` module that ``cfg`` describes."""
    options = cfg.model.model_dump(exclude={"kind"})  # null width / blocks: the kind's own
    density = cfg.method.density
    if density != "carry" and not scene.has_density:
        raise ConfigError(
            f"method.density={density!r}: the {scene.name} scene carries no density; "
            "remove method.density (or set it to carry)"
        )
    n_in, n_out = net_channels(len(scene.param_names), density)
    net = NETS[cfg.model.kind](in_channels=n_in, out_channels=n_out, **options)
    loss = density_loss = None
    if with_loss:
        spec = cfg.method.loss
        loss = build_field_loss(
            spec.name, grid="staggered", faces=spec.faces, fit=spec.fit, pad_mode=spec.pad_mode,
            **spec.options,
        )  # fmt: skip
        if density == "correct":
            density_loss = build_field_loss(
                spec.name, grid="centered", fit=spec.fit, pad_mode=spec.pad_mode, **spec.options
            )
    density_std = None
    if density != "carry":
        if "density_std" not in stats:
            raise ConfigError(
                f"{STATS_FILE} of this run has no density_std (made before method.density); "
                "retrain the run"
            )
        density_std = stats["density_std"]
    std = stats["velocity_std"]
    if cfg.method.per_component_std:
        if "velocity_std_components" not in stats:
            raise ConfigError(
                f"{STATS_FILE} of this run predates method.per_component_std; retrain the run"
            )
        std = stats["velocity_std_components"]
    net_faces = cfg.method.net_faces
    return SolverInTheLoop(
        net, scene, loss, std, stats["param_std"], net_faces=net_faces, density=density,
        density_std=density_std, density_loss=density_loss,
    )  # fmt: skip


def _symmetric(cfg: Any) -> bool:
    """Whether the scene is mirror-symmetric about x = width / 2 (a centred cylinder)."""
    scene = cfg.scene
    return scene.kind == "karman" and scene.obstacle_center[1] == 50.0  # domain width 100


def _solver_timings(
    model: Any, low_start: tuple, high: Scene, high_state: FluidState, hp: Any, ev: Any
) -> dict[str, dict[str, Any]]:
    """Seconds per step (the whole batch) of the source solver, the corrected solver and
    the high-resolution solver, in ``ev.timing_repeats`` interleaved rounds of
    ``ev.timing_steps`` steps each (:func:`~coldflow.metrics.timing.interleaved_seconds`),
    so that the three times share the machine's load."""
    from coldflow.metrics.timing import interleaved_seconds

    v0, p, d0 = low_start
    steps = ev.timing_steps

    def low(correct: bool):
        def job() -> int:
            model.rollout(v0, p, steps, density=d0, correct=correct)
            return steps

        return job

    def reference_high() -> int:
        state = high_state
        with torch.no_grad():
            for _ in range(steps):
                state = high.step(state, hp)
        return steps

    jobs = {"source": low(False), "corrected": low(True), "reference_high": reference_high}
    return interleaved_seconds(jobs, ev.timing_repeats)


class SolTask(FluidTask):
    """Solver-in-the-Loop (Um et al. 2020) with any field loss."""

    kinds = ("sol",)
    config_model = SolRunConfig
    files = (STATS_FILE,)
    loss_grid = "staggered"

    def prepare(self, cfg: SolRunConfig, stored: dict[str, Any]) -> Prepared:
        stats = stored.get(STATS_FILE) or data_statistics(cfg.data.path, cfg.data.split)
        scene = source_scene(cfg, stats)
        fields = ("velocity", "density") if scene.has_density else ("velocity",)
        dataset = FieldWindows(
            cfg.data.path,
            cfg.method.m,
            split=cfg.data.split,
            kinds=("downsampled",),
            fields=fields,
            stride=cfg.data.stride,
        )
        model = build_sol_model(cfg, scene, stats)
        return Prepared(
            model, dataset, hooks=self._validation(cfg, fields), files={STATS_FILE: stats}
        )

    @staticmethod
    def _validation(cfg: SolRunConfig, fields: tuple[str, ...]) -> list[Any]:
        """The loss on windows of the data set's ``val`` simulations after every epoch
        (none when the data set has no val split)."""

        def windows() -> FieldWindows:
            return FieldWindows(
                cfg.data.path, cfg.method.m, split="val", kinds=("downsampled",), fields=fields
            )

        path, bs = cfg.data.path, cfg.training.batch_size
        return validation_hooks(path, windows, VALIDATION_WINDOWS, bs, "windows")

    def build(self, cfg: SolRunConfig, files: dict[str, Any]) -> nn.Module:
        stats = files.get(STATS_FILE)
        if stats is None:
            raise FileNotFoundError(f"{STATS_FILE} is missing from the run directory")
        return build_sol_model(cfg, source_scene(cfg, stats), stats, False)

    def describe(self, cfg: SolRunConfig) -> str:
        sees = {"carry": "", "input": ", sees density", "correct": ", corrects density"}
        return (
            f"Solver-in-the-Loop, {cfg.method.loss.name} loss, m = {cfg.method.m}"
            f"{sees[cfg.method.density]}"
        )

    def run_tables(self, run: Any, cfg: SolRunConfig) -> list[tuple[str, str]]:
        """The rollout errors of each test simulation, inside or outside the training range."""
        from coldflow.tasks.sol.figures import per_simulation_table

        ev = read_evaluation(run.path)
        if not (ev and ev.get("per_simulation") and ev.get("simulations")):
            return []
        return [("Per test simulation", per_simulation_table([ev], [cfg.name]))]

    def rollout(
        self,
        loaded: LoadedRun,
        velocity: torch.Tensor,
        params: torch.Tensor,
        steps: int,
        *,
        density: torch.Tensor | None = None,
        correct: bool = True,
    ) -> Any:
        """``steps`` steps of the corrected (or, ``correct=False``, the source) solver from
        a staggered ``velocity`` ``[B, 2, H + 1, W + 1]`` with scene parameters ``[B, P]``
        (:meth:`coldflow.methods.sol.SolverInTheLoop.rollout`)."""
        device = loaded.device
        return loaded.model.rollout(
            velocity.to(device), params.to(device), steps, correct=correct,
            density=None if density is None else density.to(device),
        )  # fmt: skip

    def evaluate(
        self,
        loaded: LoadedRun,
        data: str | Path | None = None,
        steps: int | None = None,
        start: int | None = None,
        metrics: list[str] | None = None,
        split: str = "test",
    ) -> dict[str, Any]:
        """Roll out the source and the corrected solver on held-out simulations.

        From frame ``start`` (default: ``evaluation.start``, else the data set's warm-up)
        of every ``split`` simulation of ``data`` (default: ``data.test_path`` or
        ``data.path``) both solvers run ``steps`` steps; each state is compared with the
        downsampled reference of its frame. Also writes ``samples/rollout.safetensors``
        (the rollouts of the first simulation).
        """
        from coldflow.tasks.sol.evaluation import evaluate_rollouts

        cfg = loaded.cfg
        data_path = Path(data or cfg.data.test_path or cfg.data.path)
        trained = stored_data_config(cfg, loaded.files[STATS_FILE])
        test_cfg = data_config(data_path)
        check_same_data_kind(trained, test_cfg, data_path)
        names = metrics or cfg.evaluation.metrics
        result, rollout = evaluate_rollouts(
            loaded.model,
            data_path,
            metric_functions(names, "staggered"),
            steps or cfg.evaluation.steps,
            start if start is not None else cfg.evaluation.start,
            split,
            loaded.device,
            mirror=_symmetric(test_cfg),
        )
        high = build_scene(data_config(data_path))
        v0, d0, params = rollout.pop("high_start")
        state = FluidState(v0.to(high.dtype), None if d0 is None else d0.to(high.dtype))
        hp = high.params_tensor({k: params[:, i] for i, k in enumerate(high.param_names)})
        timing = _solver_timings(
            loaded.model, rollout.pop("low_start"), high, state, hp, cfg.evaluation
        )
        result["seconds_per_step"] = {k: t["seconds"] for k, t in timing.items()}
        result["seconds_per_step_range"] = {k: [t["low"], t["high"]] for k, t in timing.items()}
        result["timing"] = {
            "repeats": cfg.evaluation.timing_repeats, "steps": cfg.evaluation.timing_steps,
        }  # fmt: skip
        result |= {
            "run": str(loaded.run.path),
            "name": cfg.name,
            "loss": cfg.method.loss.name,
            "m": cfg.method.m,
            "metrics": names,
            "resolution_high": list(high.resolution),
        }
        per_sim = rollout.pop("tensors")
        for k, (index, tensors) in enumerate(per_sim.items()):
            meta = {**rollout, "simulation": index}
            save_tensors(
                loaded.run.samples_dir / f"rollout_sim{index:04d}.safetensors", tensors, meta
            )
            if k == 0:  # the first test simulation: the figures' and the animation's
                save_tensors(loaded.run.samples_dir / "rollout.safetensors", tensors, meta)
                self._animate(loaded, tensors, result)
        return result

    @staticmethod
    def _animate(loaded: LoadedRun, tensors: dict, result: dict) -> None:
        """``samples/rollout.gif``: reference, source and corrected vorticity over time."""
        from coldflow.tasks.sol.figures import animate_rollout

        labels = ["reference", "source", f"corrected ({result['loss']})"]
        transpose = result.get("scene") == "karman"
        stride = max(1, result["steps"] // 50)  # about 50 frames
        animate_rollout(
            tensors, labels, loaded.run.samples_dir / "rollout.gif", transpose, stride=stride
        )

    def findings(self, runs: Sequence[Path], labels: Sequence[str]) -> list[str]:
        """Each evaluated run's verdict (against the source and the training baselines:
        the nearest training trajectory and, where the scene has an inflow speed, the
        rescaled one; it must beat the strongest), as its evaluation worded it."""
        out = []
        for run, label in zip(runs, labels, strict=True):
            path = Path(run) / "evaluation.json"
            if path.is_file():
                ev = json.loads(path.read_text())
                if ev.get("verdict"):
                    out.append(f"{label} ({ev['steps']} steps): {ev['verdict']}")
        return out

    def per_simulation(
        self, evaluation: dict[str, Any]
    ) -> tuple[str, dict[str, dict[str, list[float]]]] | None:
        """The corrected solver's and the baselines' rollout means per test simulation."""
        per_sim = evaluation.get("per_simulation")
        return ("corrected", per_sim) if per_sim and "corrected" in per_sim else None

    def summary(self, evaluation: dict[str, Any]) -> dict[str, float]:
        values = evaluation.get("mean", {}).get("corrected", {})
        out = {METRIC_COLUMNS.get(m, m): v for m, v in values.items()}
        seconds = evaluation.get("seconds_per_step", {})
        if "corrected" in seconds:
            out["time (s/step)"] = seconds["corrected"] / max(1, evaluation.get("batch", 1))
        return out

    def figures(self, run: Any, cfg: Any, notes: list[str]) -> list[Any]:
        from coldflow.tasks.sol.figures import run_figures

        return run_figures(run.path, notes)

    def compare(self, runs: Sequence[Path], out: Path, labels: Sequence[str]) -> Comparison:
        from coldflow.tasks.sol.figures import comparison

        return comparison(runs, out, labels)

    def key_figures(self, runs: Sequence[Path], out: Path) -> list[Any]:
        """The rollout snapshots of every run with their error maps, and the error against
        step, as :meth:`compare` drew them."""
        from coldflow.report.html import Figure

        figs = out / "figures"
        return [
            Figure(figs / "sol_snapshots.png", "Vorticity of a test rollout, errors below"),
            Figure(figs / "sol_error_vs_step.png", "Rollout error against step"),
        ]
