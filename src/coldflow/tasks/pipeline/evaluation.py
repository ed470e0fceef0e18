"""The cheap simulator: the low-resolution solver (plain or corrected), then upsampling.

From the same start frame of every test simulation, each pipeline rolls out at the low
resolution and upsamples every frame to the high resolution, where it is compared with
the high-resolution reference of that frame:

- ``source -> bicubic``, ``source -> SR``: the uncorrected solver;
- ``SOL -> bicubic``, ``SOL -> SR``: the solver corrected by a Solver-in-the-Loop run.

Wall time per simulated frame of each pipeline (solver step + upsampling, per simulation)
is measured in the same process as the high-resolution solver's, in ``repeats``
interleaved rounds (:func:`~coldflow.metrics.timing.interleaved_seconds`): every solver,
every upsampler and the high-resolution solver run once per round, so a load spike on a
shared machine hits all of them alike. A pipeline's time is its solver's median plus its
upsampler's, its speed-up the high-resolution solver's median over that; the spread is
the lowest and highest round. ``coldflow evaluate-pipeline`` writes ``pipeline.json``,
``pipeline.md`` and the figures error against step and error against cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from coldflow.data.frames import read_centered
from coldflow.data.store import FieldData
from coldflow.errors import UserError
from coldflow.io import write_json, write_text
from coldflow.methods.superres import upsample
from coldflow.metrics import DEFAULT_FIELD_METRICS, metric_functions, score_fields
from coldflow.metrics.spec import perfect_score
from coldflow.metrics.timing import interleaved_seconds
from coldflow.physics import FluidState, build_scene, faces_to_centered
from coldflow.report.html import markdown_table
from coldflow.tasks.fluid import check_same_data_kind, data_config, read_stacked
from coldflow.tasks.handle import check_counts, load_run, open_run
from coldflow.tasks.sol.task import STATS_FILE, stored_data_config

__all__ = ["SR_KINDS", "evaluate_pipeline", "score_upsampled"]

SR_KINDS = ("superres", "diffusion_sr")
"""Kinds of run a pipeline may use as its upsampler."""


def score_upsampled(
    low: torch.Tensor,
    high: torch.Tensor,
    upscale: Callable[[torch.Tensor], torch.Tensor],
    fns: dict[str, Callable],
) -> tuple[dict[str, list[float]], float]:
    """Upsample low-resolution frames and score them against the high-resolution ones.

    Parameters
    ----------
    low
        ``[T, B, C, h, w]`` centred frames (steps x simulations).
    high
        ``[T, B, C, H, W]`` the reference at the same frames.
    upscale
        ``[B, C, h, w] -> [B, C, H, W]``.
    fns
        Field metrics ``m(a, b) -> [B]`` on centred fields
        (:func:`coldflow.metrics.metric_functions`).

    Returns
    -------
    tuple
        ``({metric: per-step means over simulations}, seconds per upsampled frame)``.
    """
    scores: dict[str, list[float]] = {n: [] for n in fns}
    seconds = 0.0
    for t in range(low.shape[0]):
        t0 = time.perf_counter()
        with torch.no_grad():
            up = upscale(low[t]).cpu().float()
        seconds += time.perf_counter() - t0
        for name, values in score_fields(fns, up, high[t]).items():
            scores[name].append(float(values.mean()))
    return scores, seconds / (low.shape[0] * low.shape[1])


def _centred(velocity: torch.Tensor, density: torch.Tensor | None) -> torch.Tensor:
    """``[T, B, 2, h + 1, w + 1]`` staggered (+ ``[T, B, h, w]``) -> ``[T, B, C, h, w]``."""
    out = faces_to_centered(velocity.float())
    return out if density is None else torch.cat((out, density[:, :, None].float()), 2)


def _load(runs: Sequence[Path], kinds: tuple[str, ...], device: str) -> list[Any]:
    loaded = []
    for run in runs:
        handle = open_run(run)
        if handle.kind not in kinds:
            raise UserError(f"{run} is a {handle.kind} run, not a {' or '.join(kinds)} run")
        loaded.append(load_run(handle, device))
    return loaded


def evaluate_pipeline(
    sol_runs: Sequence[Path],
    sr_runs: Sequence[Path],
    out: Path,
    data: Path | None = None,
    steps: int = 50,
    start: int | None = None,
    metrics: Sequence[str] = DEFAULT_FIELD_METRICS,
    device: str = "cpu",
    repeats: int = 3,
    timing_steps: int = 10,
) -> dict[str, Any]:
    """Roll out every pipeline on the test simulations and compare at high resolution.

    ``repeats`` interleaved rounds of ``timing_steps`` steps (or upsampled frames) of
    every solver and upsampler give the times. Returns the content of
    ``out/pipeline.json``.
    """
    if not sol_runs:
        raise UserError("give at least one Solver-in-the-Loop run (--sol)")
    check_counts(steps=steps, start=start, repeats=repeats, timing_steps=timing_steps)
    sols, srs = _load(sol_runs, ("sol",), device), _load(sr_runs, SR_KINDS, device)
    path = Path(data or sols[0].cfg.data.test_path or sols[0].cfg.data.path)
    test_cfg = data_config(path)
    for run in sols:
        check_same_data_kind(stored_data_config(run.cfg, run.files[STATS_FILE]), test_cfg, path)
    uses_density = sols[0].model.scene.has_density
    channels = 3 if uses_density else 2
    for run in srs:
        stats = run.files["field_stats.json"]
        if stats["shape"][0] != channels or stats["factor"] != test_cfg.factor:
            raise UserError(
                f"{run.run.path}: the SR run upsamples {stats['shape'][0]} channels by "
                f"{stats['factor']}, the pipeline needs {channels} channels (velocity"
                f"{' + density' if uses_density else ''}) by {test_cfg.factor}; train it with "
                f"data.density: {str(uses_density).lower()}"
            )
    fns = metric_functions(list(metrics), "centered")
    fields = ("velocity", "density") if uses_density else ("velocity",)
    with FieldData(path) as data_file:
        sims = data_file.simulations("test")
        if not sims:
            raise UserError(f"{path}: no test simulations")
        first = data_file.warmup if start is None else start
        n = min(steps, data_file.frames - 1 - first)
        if n < 1:
            raise UserError(f"{path}: no frames after start frame {first}")
        frames = list(range(first + 1, first + n + 1))
        high_frames = torch.stack(
            [
                torch.from_numpy(read_centered(data_file, s, "reference", frames, fields))
                for s in sims
            ],
            1,
        )  # [T, B, C, H, W]
        v0 = read_stacked(data_file, sims, "downsampled", "velocity", first)
        hv0 = read_stacked(data_file, sims, "reference", "velocity", first)
        d0 = hd0 = None
        if uses_density:
            d0 = read_stacked(data_file, sims, "downsampled", "density", first)
            hd0 = read_stacked(data_file, sims, "reference", "density", first)
        params = torch.tensor([[s.params[k] for k in data_file.param_names] for s in sims])
    dev = sols[0].device
    p, v0, d0 = params.to(dev), v0.to(dev), None if d0 is None else d0.to(dev)
    solvers = {"source": (sols[0].model, False)}
    solvers |= {f"SOL {run.run.path.name}": (run.model, True) for run in sols}
    rollouts = {
        name: model.rollout(v0, p, n, density=d0, correct=correct)
        for name, (model, correct) in solvers.items()
    }
    upscalers: dict[str, Callable] = {"bicubic": lambda x: upsample(x, test_cfg.factor, "bicubic")}
    for run in srs:
        upscalers[f"SR {run.run.path.name}"] = lambda x, m=run.model: m.upscale(x.to(dev))
    lows = {
        name: _centred(roll.velocity[1:], None if roll.density is None else roll.density[1:])
        for name, roll in rollouts.items()
    }
    timing = _timings(
        solvers, upscalers, build_scene(test_cfg), (hv0, hd0, params), (v0, p, d0),
        lows["source"], min(n, timing_steps), repeats,
    )  # fmt: skip
    high = timing["high-resolution solver"]
    rows: dict[str, dict[str, Any]] = {}
    for solver, low in lows.items():
        step = timing[f"solver {solver}"]
        for up_name, up in upscalers.items():
            per_step, _ = score_upsampled(low, high_frames, up, fns)
            upsampling = timing[f"upsampling {up_name}"]
            cost = step["seconds"] + upsampling["seconds"]
            per_round = [
                h / (a + b)
                for h, a, b in zip(
                    high["rounds"], step["rounds"], upsampling["rounds"], strict=True
                )
            ]
            rows[f"{solver} -> {up_name}"] = {
                "solver": solver,
                "upsampling": up_name,
                "per_step": per_step,
                "mean": {m: sum(v) / len(v) for m, v in per_step.items()},
                "seconds_per_frame": cost,
                "seconds_range": [
                    step["low"] + upsampling["low"],
                    step["high"] + upsampling["high"],
                ],
                "speedup": high["seconds"] / cost,
                "speedup_range": [min(per_round), max(per_round)],
            }
    result = {
        "data": str(path),
        "start": first,
        "steps": n,
        "simulations": [s.index for s in sims],
        "metrics": list(metrics),
        "channels": ["v_y", "v_x", *(["density"] if uses_density else [])],
        "high_res_seconds_per_frame": high["seconds"],
        "high_res_seconds_range": [high["low"], high["high"]],
        "timing": {"repeats": repeats, "steps": min(n, timing_steps), "jobs": timing},
        "runs": {"sol": [r.run.path.name for r in sols], "sr": [r.run.path.name for r in srs]},
        "pipelines": rows,
        "device": str(dev),
    }
    out = Path(out)
    write_json(out / "pipeline.json", result)
    write_text(out / "pipeline.md", pipeline_table(result))
    from coldflow.tasks.pipeline.figures import write_figures

    write_figures(result, out / "figures")
    return result


def _timings(
    solvers: dict[str, tuple[Any, bool]],
    upscalers: dict[str, Callable],
    high_scene: Any,
    high_start: tuple,
    low_start: tuple,
    low: torch.Tensor,
    steps: int,
    repeats: int,
) -> dict[str, dict[str, Any]]:
    """Seconds per frame and simulation of the high-resolution solver, of every
    low-resolution solver and of every upsampler (on ``steps`` frames of ``low``), in
    interleaved rounds (:func:`~coldflow.metrics.timing.interleaved_seconds`)."""
    hv0, hd0, params = high_start
    v0, p, d0 = low_start
    batch = len(v0)
    hp = high_scene.params_tensor({k: params[:, i] for i, k in enumerate(high_scene.param_names)})
    h0 = FluidState(hv0.to(high_scene.dtype), None if hd0 is None else hd0.to(high_scene.dtype))

    def high_solver() -> int:
        state = h0
        with torch.no_grad():
            for _ in range(steps):
                state = high_scene.step(state, hp)
        return steps * batch

    def solver(model: Any, correct: bool) -> Callable[[], int]:
        def job() -> int:
            model.rollout(v0, p, steps, density=d0, correct=correct)
            return steps * batch

        return job

    def upsampler(up: Callable) -> Callable[[], int]:
        def job() -> int:
            with torch.no_grad():
                for t in range(steps):
                    up(low[t]).cpu()
            return steps * batch

        return job

    jobs: dict[str, Callable[[], int]] = {"high-resolution solver": high_solver}
    jobs |= {f"solver {name}": solver(m, c) for name, (m, c) in solvers.items()}
    jobs |= {f"upsampling {name}": upsampler(up) for name, up in upscalers.items()}
    return interleaved_seconds(jobs, repeats)


def pipeline_table(result: dict[str, Any]) -> str:
    """Markdown: every pipeline's mean errors at high resolution, cost and speed-up, in the
    order the pipelines were built (solver by solver), each time with its spread over the
    interleaved rounds where they were recorded."""
    metrics = result["metrics"]

    def spread(value: float, span: list[float] | None, fmt: str, unit: str = "") -> str:
        text = f"{value:{fmt}}{unit}"
        return f"{text} ({span[0]:{fmt}}-{span[1]:{fmt}})" if span else text

    rows = [
        [
            name,
            *(row["mean"][m] for m in metrics),
            spread(row["seconds_per_frame"], row.get("seconds_range"), ".4g"),
            spread(row["speedup"], row.get("speedup_range"), ".2g", "x"),
        ]
        for name, row in result["pipelines"].items()
    ]
    rows.append(
        [
            "high-resolution solver (reference)",
            *[perfect_score(m) for m in metrics],
            spread(
                result["high_res_seconds_per_frame"], result.get("high_res_seconds_range"), ".4g"
            ),
            "1x",
        ]
    )
    timing = result.get("timing")
    how = (
        f"median of {timing['repeats']} interleaved rounds of {timing['steps']} steps of every "
        "solver and upsampler in one process (lowest-highest round in brackets); speed-up: "
        "the high-resolution solver's median over the pipeline's"
        if timing
        else "measured in one process"
    )
    intro = (
        f"{result['steps']} steps from frame {result['start']} of the test simulations "
        f"{result['simulations']} of {result['data']}, compared with the high-resolution "
        f"reference at every step ({', '.join(result['channels'])}; means over steps and "
        "simulations). s/frame: wall time per simulated frame and simulation, solver step "
        f"plus upsampling, {how}."
    )
    return "\n".join(
        [intro, "", markdown_table(["pipeline", *metrics, "s/frame", "speed-up"], rows)]
    )
