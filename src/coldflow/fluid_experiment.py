"""Training and evaluation of Solver-in-the-Loop runs, from a config to a run directory.

The glue the CLI calls for configs whose ``method.kind`` is ``sol``: it reads the fluid
data set, rebuilds its low-resolution scene, computes the data-set statistics the
network's inputs are scaled by (stored with the run as ``data_stats.json`` and in every
checkpoint), trains :class:`~coldflow.methods.sol.SolverInTheLoop` with the one
:class:`~coldflow.trainer.Trainer`, and evaluates rollouts of the source and the
corrected solver against the downsampled reference (``evaluation.json``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coldflow.config import ConfigError, dump_yaml, load_config, parse_value, validate
from coldflow.config.fluids import FluidDataConfig
from coldflow.config.sol import SolRunConfig
from coldflow.data.fields import FieldData, FieldWindows
from coldflow.io import write_json
from coldflow.losses import build_field_loss
from coldflow.methods.sol import SolverInTheLoop
from coldflow.nets import NETS
from coldflow.physics import FluidState, Scene
from coldflow.runs import RunDir, save_tensors
from coldflow.simulate import build_scene
from coldflow.trainer import Trainer, resolve_device, seed_everything, trajectory_hash

__all__ = [
    "LoadedSolRun",
    "build_sol_model",
    "data_config",
    "data_statistics",
    "evaluate_sol",
    "load_sol_run",
    "low_scene",
    "train_sol",
]

STATS_FILE = "data_stats.json"


def data_config(path: str | Path) -> FluidDataConfig:
    """The :class:`FluidDataConfig` a data set file was generated from (its attribute)."""
    with FieldData(path) as data:
        text = data.attrs.get("config_yaml")
    if not text:
        raise ConfigError(f"{path}: the data set stores no config_yaml attribute; regenerate it")
    return validate(parse_value(text), FluidDataConfig, f"{path} (config_yaml)")


def low_scene(path: str | Path) -> Scene:
    """The low-resolution scene (the source solver) of a data set file."""
    cfg = data_config(path)
    return build_scene(cfg, cfg.low_resolution)


def data_statistics(path: str | Path, split: str = "train") -> dict[str, Any]:
    """Standard deviations of the downsampled velocity and of each scene parameter.

    The velocity statistic runs over the faces the low-resolution solver evolves in all
    frames after the warm-up of the ``split`` simulations; a parameter with a single value
    uses its magnitude (never zero).
    """
    scene = low_scene(path)
    mask = scene.free_faces().numpy().astype(bool)
    total, total_sq, count = 0.0, 0.0, 0
    with FieldData(path) as data:
        sims = data.simulations(split)
        if not sims:
            raise ConfigError(f"{path}: no simulations in split {split!r}")
        for sim in sims:
            v = data.read(sim, "downsampled", "velocity", slice(data.warmup, None))
            values = v[:, mask].astype(np.float64)
            total += values.sum()
            total_sq += (values**2).sum()
            count += values.size
        names = data.param_names
        params = np.array([[s.params[n] for n in names] for s in sims], dtype=np.float64)
    mean = total / count
    velocity_std = float(np.sqrt(max(total_sq / count - mean**2, 1e-12)))
    param_std = params.std(axis=0)
    param_std = np.where(param_std > 0, param_std, np.abs(params).mean(axis=0))
    param_std = np.where(param_std > 0, param_std, 1.0)
    return {
        "velocity_std": velocity_std,
        "param_names": names,
        "param_std": [float(s) for s in param_std],
        "split": split,
        "simulations": len(sims),
        "data": str(path),
    }


def build_sol_model(
    cfg: SolRunConfig, scene: Scene, stats: dict[str, Any], with_loss: bool = True
) -> SolverInTheLoop:
    """The :class:`SolverInTheLoop` module that ``cfg`` describes."""
    options = cfg.model.model_dump(exclude={"kind"})  # null width / blocks: the kind's own
    n_params = len(scene.param_names)
    net = NETS[cfg.model.kind](in_channels=2 + n_params, out_channels=2, **options)
    loss = None
    if with_loss:
        spec = cfg.method.loss
        loss = build_field_loss(
            spec.name,
            grid="staggered",
            faces=spec.faces,
            fit=spec.fit,
            pad_mode=spec.pad_mode,
            **spec.options,
        )
    return SolverInTheLoop(net, scene, loss, stats["velocity_std"], stats["param_std"])


def _load_cfg(config: SolRunConfig | str | Path, overrides: list[str] | None) -> SolRunConfig:
    if isinstance(config, SolRunConfig):
        return config
    return load_config(config, SolRunConfig, overrides)


def train_sol(
    config: SolRunConfig | str | Path,
    run_dir: str | Path,
    *,
    overrides: list[str] | None = None,
    resume: bool = False,
) -> RunDir:
    """Train the Solver-in-the-Loop run described by ``config`` into ``run_dir``.

    Parameters
    ----------
    config
        A config or the path of a YAML file (then ``overrides`` apply).
    run_dir
        Output directory; it must not hold checkpoints unless ``resume``.
    overrides
        ``--set`` style ``key=value`` strings.
    resume
        Continue from the latest checkpoint of ``run_dir``.

    Returns
    -------
    RunDir
        The run directory (config, metrics, checkpoints, ``data_stats.json``).
    """
    cfg = _load_cfg(config, overrides)
    run = RunDir(run_dir)
    run.check_can_train(resume)
    stats_path = run.path / STATS_FILE
    if resume and stats_path.is_file():
        stats = json.loads(stats_path.read_text())
    else:
        stats = data_statistics(cfg.data.path, cfg.data.split)
        run.path.mkdir(parents=True, exist_ok=True)
        write_json(stats_path, stats)
    scene = low_scene(cfg.data.path)
    fields = ("velocity", "density") if _needs_density(scene) else ("velocity",)
    dataset = FieldWindows(
        cfg.data.path,
        cfg.method.m,
        split=cfg.data.split,
        kinds=("downsampled",),
        fields=fields,
        stride=cfg.data.stride,
    )
    seed_everything(cfg.seed)  # the initial weights depend on the seed alone
    model = build_sol_model(cfg, scene, stats)
    trainer = Trainer(
        model,
        dataset,
        cfg.training,
        run,
        cfg.seed,
        config_text=dump_yaml(cfg),
        config_hash=trajectory_hash(cfg, {"data": {"test_path"}}),
    )
    try:
        trainer.fit(resume=resume)
    finally:
        trainer.close()
    return run


def _needs_density(scene: Scene) -> bool:
    """Whether the scene's velocity depends on its density (buoyancy), so that the
    solver must carry the density along."""
    return "buoyancy" in scene.param_names


@dataclass
class LoadedSolRun:
    """A trained SOL run ready for rollouts."""

    cfg: SolRunConfig
    run: RunDir
    model: SolverInTheLoop
    stats: dict[str, Any]
    epoch: int
    device: torch.device


def load_sol_run(
    run_dir: str | Path, device: str = "cpu", epoch: int | None = None
) -> LoadedSolRun:
    """Load a SOL run's config, statistics and checkpoint (EMA weights if kept)."""
    run = RunDir(run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run.path}: not a run directory (no config.yaml)")
    cfg = load_config(run.config_path, SolRunConfig)
    stats_path = run.path / STATS_FILE
    if not stats_path.is_file():
        raise FileNotFoundError(f"{stats_path}: missing; the run was not trained by train_sol")
    stats = json.loads(stats_path.read_text())
    tensors, sidecar = run.load_checkpoint(epoch)
    model = build_sol_model(cfg, low_scene(cfg.data.path), stats, with_loss=False)
    prefix = "ema." if any(k.startswith("ema.") for k in tensors) else "model."
    model.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    dev = resolve_device(device)
    return LoadedSolRun(cfg, run, model.to(dev).eval(), stats, sidecar["epoch"], dev)


def _metric_fns(names: list[str]) -> dict[str, Any]:
    from coldflow.metrics.fields import FIELD_METRICS

    unknown = [n for n in names if n not in FIELD_METRICS]
    if unknown:
        raise ConfigError(f"unknown metrics {unknown}; known: {', '.join(FIELD_METRICS)}")
    return {n: FIELD_METRICS[n](grid="staggered") for n in names}


def _time_steps(scene: Scene, state: FluidState, params: dict, steps: int) -> float:
    """Seconds per step of ``scene`` (one untimed step first: tracing)."""
    with torch.no_grad():
        state = scene.step(state, params)
        t0 = time.perf_counter()
        for _ in range(steps):
            state = scene.step(state, params)
    return (time.perf_counter() - t0) / steps


def evaluate_sol(
    run_dir: str | Path,
    data_path: str | Path | None = None,
    steps: int | None = None,
    *,
    start: int | None = None,
    metrics: list[str] | None = None,
    device: str = "cpu",
    split: str = "test",
) -> dict[str, Any]:
    """Roll out the source and the corrected solver on held-out simulations and score them.

    From frame ``start`` of every ``split`` simulation of ``data_path``, both solvers run
    ``steps`` steps; each state is compared with the downsampled reference of its frame.
    Writes ``evaluation.json`` (and ``samples/rollout.safetensors`` with the rollouts of
    the first simulation) into the run directory.

    Parameters
    ----------
    run_dir
        A run trained by :func:`train_sol`.
    data_path
        Test data set (default: the config's ``data.test_path`` or ``data.path``).
    steps
        Rollout length (default: ``evaluation.steps``; shortened to the frames stored).
    start
        First frame (default: ``evaluation.start``, else the data set's warm-up).
    metrics
        Names of :data:`coldflow.metrics.fields.FIELD_METRICS` (default: the config's).
    device
        Where the rollouts run.
    split
        Simulations to evaluate on.

    Returns
    -------
    dict
        ``per_step[kind][metric]`` (lists over steps 1..N, averaged over simulations),
        ``mean[kind][metric]``, ``per_simulation``, ``seconds_per_step`` (source,
        corrected, reference high-resolution solver) and the settings.
    """
    loaded = load_sol_run(run_dir, device)
    cfg, model = loaded.cfg, loaded.model
    data_path = Path(data_path or cfg.data.test_path or cfg.data.path)
    metric_names = metrics or cfg.evaluation.metrics
    fns = _metric_fns(metric_names)
    scene = model.scene
    with FieldData(data_path) as data:
        sims = data.simulations(split)
        if not sims:
            raise ConfigError(f"{data_path}: no simulations in split {split!r}")
        first = start if start is not None else (cfg.evaluation.start or data.warmup)
        n = min(steps or cfg.evaluation.steps, data.frames - 1 - first)
        if n < 1:
            raise ConfigError(f"{data_path}: no frames after start frame {first}")
        frames = slice(first, first + n + 1)
        ref = torch.stack(
            [torch.from_numpy(data.read(s, "downsampled", "velocity", frames)) for s in sims], 1
        )
        high0 = torch.stack(
            [torch.from_numpy(data.read(s, "reference", "velocity", first)) for s in sims]
        )
        params = torch.tensor([[s.params[k] for k in data.param_names] for s in sims])
        density = high_density = None
        if _needs_density(scene):
            density, high_density = (
                torch.stack([torch.from_numpy(data.read(s, kind, "density", first)) for s in sims])
                for kind in ("downsampled", "reference")
            )
        hcfg = data_config(data_path)
    dev = loaded.device
    v0 = ref[0].to(dev)
    p = params.to(dev)
    d0 = None if density is None else density.to(dev)
    with torch.no_grad():  # trace the step once before timing
        model.step(FluidState(v0, d0), p.to(v0.dtype))
    rollouts = {
        "source": model.rollout(v0, p, n, density=d0, correct=False),
        "corrected": model.rollout(v0, p, n, density=d0, correct=True),
    }
    per_step: dict[str, dict[str, list[float]]] = {}
    per_sim: dict[str, dict[str, list[float]]] = {}
    mean: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for kind, roll in rollouts.items():
            per_step[kind], per_sim[kind], mean[kind] = {}, {}, {}
            for name, fn in fns.items():
                values = torch.stack(
                    [fn(roll.velocity[t].float(), ref[t].float()).cpu() for t in range(1, n + 1)]
                ).double()  # [steps, sims]
                per_step[kind][name] = values.mean(1).tolist()
                per_sim[kind][name] = values.mean(0).tolist()
                mean[kind][name] = float(values.mean())
    high = build_scene(hcfg)
    hp = high.params_tensor({k: params[:, i] for i, k in enumerate(high.param_names)})
    high_state = FluidState(
        high0.to(high.dtype), None if high_density is None else high_density.to(high.dtype)
    )
    timing = {
        "source": float(np.mean(rollouts["source"].step_seconds)),
        "corrected": float(np.mean(rollouts["corrected"].step_seconds)),
        "reference_high": _time_steps(high, high_state, hp, cfg.evaluation.timing_steps),
    }
    result = {
        "run": str(loaded.run.path),
        "name": cfg.name,
        "loss": cfg.method.loss.name,
        "m": cfg.method.m,
        "epoch": loaded.epoch,
        "data": str(data_path),
        "split": split,
        "simulations": [{"index": s.index, "seed": s.seed, **s.params} for s in sims],
        "start": first,
        "steps": n,
        "metrics": metric_names,
        "per_step": per_step,
        "per_simulation": per_sim,
        "mean": mean,
        "improvement": {
            name: 1 - mean["corrected"][name] / mean["source"][name]
            for name in metric_names
            if mean["source"][name] > 0
        },
        "seconds_per_step": timing,
        "batch": len(sims),
        "device": str(dev),
        "resolution_low": list(scene.resolution),
        "resolution_high": list(high.resolution),
    }
    save_tensors(
        loaded.run.samples_dir / "rollout.safetensors",
        {
            "reference": ref[:, 0],
            "source": rollouts["source"].velocity[:, 0],
            "corrected": rollouts["corrected"].velocity[:, 0],
        },
        meta={"start": first, "simulation": sims[0].index, "data": str(data_path)},
    )
    write_json(loaded.run.path / "evaluation.json", result)
    return result
