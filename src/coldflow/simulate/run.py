"""Generate a fluid data set: reference, downsampled reference and source trajectories.

:func:`simulate` is what ``coldflow simulate CONFIG --out FILE`` runs. Simulations run
in batches (one PhiFlow batch dimension, ``batch_size`` simulations at a time); each
simulation streams into its own part file beside the output, which appears atomically
when the simulation is complete. A rerun skips complete parts, so an interrupted run
resumes; ``shard=(i, n)`` runs only the simulations ``index % n == i`` (cluster arrays).
When all parts exist, they are assembled into the data set file (atomically) and,
unless sharded, the parts are removed.

Within a batch, every ``checkpoint_every`` frames (default 50) the frames computed since
the last checkpoint and the full solver state (velocity, density and the pressure that
warm-starts the next solve) are written atomically beside the parts, with a manifest of
their checksums; a killed run resumes from the last one and produces bit for bit the
file an uninterrupted run would, losing at most ``checkpoint_every`` frames of work.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from coldflow.config.base import ConfigError, load_config
from coldflow.config.fluids import FluidDataConfig
from coldflow.data.store_writer import SimulationWriter, merge_parts, part_attrs
from coldflow.errors import UserError, raise_if_interrupted
from coldflow.io import exclusive_lock, lock_holder
from coldflow.physics import (
    FluidState,
    Scene,
    SolverError,
    build_scene,
    downsample_centered,
    downsample_velocity,
)
from coldflow.simulate.checkpoint import BatchCheckpoint, disk_full_names
from coldflow.simulate.files import (
    dataset_attrs,
    part_path,
    parts_dir,
    remove_stale_temporaries,
    stored_prefix,
    up_to_date,
)
from coldflow.simulate.specs import SimulationSpec, physics_hash, simulation_specs
from coldflow.training.progress import Progress

__all__ = ["DEFAULT_CHECKPOINT_EVERY", "SimulationError", "generate", "simulate"]


DEFAULT_CHECKPOINT_EVERY = 50  # frames; $COLDFLOW_CHECKPOINT_FRAMES overrides, 0 disables


class SimulationError(UserError, RuntimeError):
    """A simulation produced NaN or a failed pressure solve; names simulation, frame, params."""


def console_print(message: str) -> None:
    """A line on stderr (where ``coldflow simulate`` reports when no log is given)."""
    from rich.console import Console

    Console(stderr=True).print(message, highlight=False)


@dataclass
class BatchRun:
    """What every batch of one :func:`generate` call shares."""

    progress: Progress
    say: Callable[[str], None]
    checkpoint_every: int


def _checkpoint_every(cfg: FluidDataConfig, every: int | None) -> int:
    if every is None:
        every = getattr(cfg, "checkpoint_every", None)
    if every is None:
        env = os.environ.get("COLDFLOW_CHECKPOINT_FRAMES", "")
        try:
            every = int(env) if env else DEFAULT_CHECKPOINT_EVERY
        except ValueError:
            raise ConfigError(
                f"COLDFLOW_CHECKPOINT_FRAMES={env!r}: expected a whole number of frames"
            ) from None
    if every < 0:
        raise ConfigError(f"checkpoint_every={every}: expected >= 0 frames (0 disables)")
    return int(every)


# ---------------------------------------------------------------------------- driver


def simulate(
    config_path: str | Path,
    out: str | Path,
    shard: tuple[int, int] = (0, 1),
    overrides: list[str] | None = None,
    progress: bool = True,
    checkpoint_every: int | None = None,
) -> Path | None:
    """Generate the data set a config describes (``coldflow simulate``).

    Parameters
    ----------
    config_path
        A ``configs/fluids/*.yaml`` file.
    out
        The ``.h5`` data set file to write.
    shard
        ``(i, n)``: run only simulations with ``index % n == i``.
    overrides
        ``--set`` style ``key=value`` strings, e.g. ``["frames=100"]``.
    progress
        Show a progress bar with frames/s and ETA (a plain line every 5 % when stderr
        is not a terminal, e.g. in cluster logs).
    checkpoint_every
        Save a running batch every this many frames so that a killed run resumes from
        there (0 disables). Default: the config's ``checkpoint_every`` if it has one,
        else ``$COLDFLOW_CHECKPOINT_FRAMES``, else 50.

    Returns
    -------
    Path or None
        ``out`` once the data set is complete; ``None`` when this shard is done but
        others are still missing.

    Raises
    ------
    ConfigError
        For an invalid config or parts left by a different config.
    SimulationError
        When a simulation diverges (NaN or a failed pressure solve); it names the
        simulation, the frame and the parameters. Completed simulations are kept.
    DiskFullError
        When the disk runs out; it names the file. Files already complete are kept.
    """
    cfg = load_config(config_path, FluidDataConfig, overrides)
    return generate(
        cfg,
        out,
        shard=shard,
        progress=progress,
        source=str(config_path),
        checkpoint_every=checkpoint_every,
    )


def generate(
    cfg: FluidDataConfig,
    out: str | Path,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
    source: str = "<config>",
    log: Callable[[str], None] | None = None,
    checkpoint_every: int | None = None,
) -> Path | None:
    """:func:`simulate` for a validated config object."""
    out = Path(out)
    i, n = shard
    if not 0 <= i < n:
        raise ConfigError(f"shard {i}/{n}: need 0 <= i < n")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    say = log or console_print
    every = _checkpoint_every(cfg, checkpoint_every)
    specs = simulation_specs(cfg)
    scene = build_scene(cfg)
    low = build_scene(cfg, cfg.low_resolution)

    base = 0  # simulations a complete file already holds (the config only added some)
    if out.exists():
        if up_to_date(cfg, out, specs):
            say(f"{cfg.name}: {out} is complete and matches the config; nothing to do")
            return out
        base = stored_prefix(cfg, out, specs)
        if base is None:
            raise ConfigError(
                f"{out} exists but was not made by this config ({source}); delete it or "
                "choose another --out"
            )
        say(
            f"{cfg.name}: {out} holds the first {base} of the config's {len(specs)} "
            f"simulations; adding the other {len(specs) - base}"
        )
    new = specs[base:]
    with exclusive_lock(lock_path(out, i, n), f"data set {out} (shard {i}/{n})"):
        remove_stale_temporaries(out, new[i::n])
        todo = []
        for spec in new[i::n]:
            attrs = part_attrs(part_path(out, spec.index))
            if attrs is None:
                todo.append(spec)
            elif attrs.get("physics_hash") != physics_hash(cfg, spec):
                raise ConfigError(
                    f"{part_path(out, spec.index)}: this part was made with a different config "
                    f"than {source}; delete {parts_dir(out)} (or use another --out) and rerun"
                )
        if todo:
            say(
                f"{cfg.name}: {len(todo)} of {len(specs)} simulations to run "
                f"(shard {i}/{n}), {scene.name} {cfg.resolution[0]}x{cfg.resolution[1]} -> "
                f"{cfg.low_resolution[0]}x{cfg.low_resolution[1]}, {cfg.frames} frames"
            )
        batches = [todo[k : k + cfg.batch_size] for k in range(0, len(todo), cfg.batch_size)]
        steps = cfg.spin_up + (cfg.frames - 1) + (cfg.frames - 1 - cfg.start)
        total = sum(len(b) for b in batches) * steps
        bar = Progress(
            progress, say, unit="frames", columns=("{task.fields[rate]:.1f} frames/s",),
            line_marks=20, stream=sys.stderr,
        )  # fmt: skip
        with bar:
            bar.start("simulate", total, rate=0.0)
            for batch in batches:
                _run_batch(cfg, scene, low, batch, out, BatchRun(bar, say, every))

        parts = [part_path(out, s.index) for s in new]
        if not all(part_attrs(p) is not None for p in parts):
            missing = sum(part_attrs(p) is None for p in parts)
            say(f"{cfg.name}: shard {i}/{n} done; {missing} simulations still missing")
            return None
        shared = {
            "obstacle/high": scene.obstacle_mask().numpy(),
            "obstacle/low": low.obstacle_mask().numpy(),
        }
        attrs = dataset_attrs(cfg, scene, len(specs))
        merge_parts(parts, out, attrs, shared, existing=out if base else None)
        if n == 1:
            shutil.rmtree(parts_dir(out), ignore_errors=True)
        for k in range(n):  # the data set is complete: no shard has anything left to hold
            if k == i or lock_holder(lock_path(out, k, n)) is None:
                lock_path(out, k, n).unlink(missing_ok=True)
        say(f"{cfg.name}: wrote {out}")
        return out


def lock_path(out: Path, index: int, count: int) -> Path:
    """The lock of one writer of ``out`` (one per shard: shards run side by side)."""
    suffix = ".lock" if count == 1 else f".shard-{index}-of-{count}.lock"
    return out.with_name(out.name + suffix)


def _run_batch(
    cfg: FluidDataConfig,
    scene: Scene,
    low: Scene,
    batch: Sequence[SimulationSpec],
    out: Path,
    run: BatchRun,
) -> None:
    """Simulate one batch into its part files, resuming from its checkpoint if any.

    The work is a sequence of positions: ``0 .. S-1`` are the spin-up steps (not stored;
    position 0 is the initial state), ``S .. S+T-1`` the reference frames ``0 .. T-1``,
    ``S+T ..`` the source frames ``start+1 .. T-1``.
    """
    bar, say, checkpoint_every = run.progress, run.say, run.checkpoint_every
    S, T, start, f = cfg.spin_up, cfg.frames, cfg.start, cfg.factor
    params = {k: [s.params[k] for s in batch] for k in scene.param_names}
    H, W = cfg.resolution
    h, w = cfg.low_resolution
    shapes = {
        "reference/velocity": (T, 2, H + 1, W + 1),
        "reference/density": (T, H, W),
        "downsampled/velocity": (T, 2, h + 1, w + 1),
        "downsampled/density": (T, h, w),
        "source/velocity": (T, 2, h + 1, w + 1),
        "source/density": (T, h, w),
    }
    ckpt = BatchCheckpoint(parts_dir(out), batch, [physics_hash(cfg, s) for s in batch], say)
    writers: list[SimulationWriter] = []
    try:
        for s in batch:
            attrs = {
                "index": s.index,
                "split": s.split,
                "seed": s.seed,
                **s.params,
                **scene.derived_params(s.params),
                "physics_hash": physics_hash(cfg, s),
            }
            part = part_path(out, s.index)
            with disk_full_names(part):
                writers.append(SimulationWriter(part, attrs, shapes, cfg.compression))

        def store(name: str, frame: int, array: np.ndarray) -> None:
            for b, wr in enumerate(writers):
                with disk_full_names(wr.path):
                    wr.write(name, frame, array[b])

        pending: dict[str, list[tuple[int, np.ndarray]]] = {}

        def record(kind: str, frame: int, state: FluidState) -> None:
            for field, value in (("velocity", state.velocity), ("density", state.density)):
                # the conversion SimulationWriter.write makes, once for the whole batch
                array = np.asarray(value.detach().cpu().numpy(), dtype=np.float32)
                store(f"{kind}/{field}", frame, array)
                pending.setdefault(f"{kind}/{field}", []).append((frame, array))

        def advance(sc: Scene, state: FluidState, frame: int, run: str) -> FluidState:
            try:
                return sc.step(state, params)
            except SolverError as e:
                bad = [batch[k] for k in e.samples] or list(batch)
                when = f"frame {frame}" if frame >= 0 else f"spin-up step {S + frame} of {S}"
                raise SimulationError(
                    f"{out}: {run} run at {sc.resolution[0]}x{sc.resolution[1]} failed at "
                    f"{when}: " + "; ".join(s.describe() for s in bad) + f"\n{e}"
                ) from e

        pos0, state, start_state = 0, None, None
        restored = ckpt.restore(store) if checkpoint_every else None
        if restored is not None:
            pos0, state, start_state = restored
            for sc, first in ((scene, 1), (low, S + T)):  # steps taken before the kill
                if pos0 > first:
                    _warm_up(sc, params, [s.seed for s in batch])
            bar.skip(max(pos0 - 1, 0) * len(batch))
            say(f"{ckpt.describe()}: resumed at {_describe_position(pos0, S, T, start)}")
        else:
            ckpt.clear()
            state = scene.initial_state(params, [s.seed for s in batch])
        positions = S + T + (T - 1 - start)
        since, started = 0, time.perf_counter()
        for pos in range(pos0, positions):
            raise_if_interrupted()
            if pos < S + T:  # the reference run, and the source run up to its start
                t = pos - S
                if pos > 0:
                    state = advance(scene, state, t, "reference")
                    bar.advance(len(batch))
                if t >= 0:  # spin-up steps (t < 0) are not stored
                    down = FluidState(
                        downsample_velocity(state.velocity, f),
                        downsample_centered(state.density, f),
                    )
                    record("reference", t, state)
                    record("downsampled", t, down)
                    if t <= start:
                        record("source", t, down)
                    if t == start:
                        start_state = FluidState(
                            down.velocity.to(low.dtype), down.density.to(low.dtype)
                        )
            else:  # the source run from its start
                t = start + 1 + (pos - S - T)
                if pos == S + T:
                    state = start_state
                state = advance(low, state, t, "source")
                record("source", t, state)
                bar.advance(len(batch))
            since += 1
            if checkpoint_every and since >= checkpoint_every and pos + 1 < positions:
                ckpt.save(pos + 1, pending, state, start_state)
                pending.clear()
                since = 0
    except BaseException:
        for wr in writers:
            wr.abort()
        raise
    # this batch's time, scaled up to the whole run when it resumed part-way, shared out:
    # the sum over a data set's simulations is what its data step takes (the study's plan)
    elapsed = (time.perf_counter() - started) * positions / max(positions - pos0, 1)
    for wr in writers:
        with disk_full_names(wr.path):
            wr.commit(simulate_seconds=elapsed / len(batch))
    ckpt.clear()


_WARM: set[tuple[int, int]] = set()


def _warm_up(scene: Scene, params: dict[str, list[float]], seeds: list[int]) -> None:
    """Take (and discard) the first step of ``scene`` at this batch size in this process.

    The first call of a compiled step traces it and rounds differently (~1e-5) from the
    compiled calls after it. A batch resumed past its first step takes that call here,
    so that its next frames come from compiled calls as in the uninterrupted run.
    """
    key = (id(scene), len(seeds))
    if key not in _WARM:
        scene.step(scene.initial_state(params, seeds), params)
        _WARM.add(key)


def _describe_position(pos: int, spin_up: int, frames: int, start: int) -> str:
    if pos < spin_up:
        return f"spin-up step {pos} of {spin_up}"
    if pos < spin_up + frames:
        return f"reference frame {pos - spin_up} of {frames}"
    return f"source frame {start + 1 + pos - spin_up - frames} of {frames}"
