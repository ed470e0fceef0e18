"""Super-resolution on what the low-resolution solver gives it.

An upsampler at the end of a cheap simulator never meets the downsampled reference: it
meets the low-resolution solver's own states, which drift from the reference as the
solver runs (numerical diffusion, phase error). Two things here use such states:

- :func:`source_training_frames`: training pairs (solver state ``k`` steps after a start
  on the downsampled reference, reference at that frame), ``method.input: source``;
- the same pairs from a Solver-in-the-Loop run's corrected solver (``method.input: sol``,
  :func:`sol_stepper`): what an upsampler at the end of SOL meets;
- :func:`solver_output_scores`: the evaluation of any upsampler on short solver runs
  from the test frames, error against ``k`` (``evaluation.solver_steps``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coldflow.config import ConfigError
from coldflow.data.frames import channel_names, channel_std
from coldflow.data.store import FieldData
from coldflow.tasks.fluid import data_config, source_rollouts
from coldflow.tasks.recon.config import SourceInputConfig

__all__ = ["SourceFrames", "sol_stepper", "solver_output_scores", "source_training_frames"]


class SourceFrames:
    """Super-resolution pairs ``{"low": [C, h, w], "high": [C, H, W]}`` from the
    low-resolution solver, with the interface of :class:`coldflow.data.frames.FieldFrames`
    that training uses (``tensors``, ``channels``, ``shape``, ``factor``,
    ``channel_std``, ``sim``, ``frame``); ``k`` holds each pair's solver steps."""

    mode = "superres"

    def __init__(
        self,
        low: torch.Tensor,
        high: torch.Tensor,
        sim: torch.Tensor,
        frame: torch.Tensor,
        k: torch.Tensor,
        fields: Sequence[str],
        factor: int,
        split: str,
    ) -> None:
        self.tensors = {"low": low, "high": high}
        self.sim, self.frame, self.k = sim, frame, k
        self.fields, self.factor, self.split = tuple(fields), int(factor), split

    @property
    def channels(self) -> list[str]:
        return channel_names(self.fields)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.tensors["high"].shape[1:])  # type: ignore[return-value]

    def channel_std(self) -> torch.Tensor:
        """``[C]`` standard deviation of each reference channel (1 where constant)."""
        return channel_std(self.tensors["high"])

    def __len__(self) -> int:
        return len(self.sim)


def _draw_steps(cfg: SourceInputConfig, runs: int, seed: int) -> list[list[int]]:
    """For each run, ``per_start`` distinct steps in ``cfg.steps``, increasing."""
    rng = np.random.default_rng(seed)
    lo, hi = cfg.steps
    pool = np.arange(lo, hi + 1)
    return [sorted(rng.choice(pool, cfg.per_start, replace=False).tolist()) for _ in range(runs)]


def sol_stepper(run_dir: str | Path, path: str | Path) -> Callable[[Any, dict], Any]:
    """One step of a trained Solver-in-the-Loop run's corrected solver (solver step, then
    its learned correction), as ``stepper(state, params)`` for
    :func:`coldflow.tasks.fluid.source_rollouts` on the data set ``path``.

    Raises
    ------
    ConfigError
        When ``run_dir`` holds no trained run, is not a Solver-in-the-Loop run, or its
        solver has another scene or resolution than the low resolution of ``path``.
    """
    from coldflow.tasks.handle import load_run

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "checkpoints").is_dir():
        raise ConfigError(
            f"method.sol_run {run_dir}: no trained run there; train the Solver-in-the-Loop "
            "run first, or fix the path"
        )
    loaded = load_run(run_dir, device="cpu")
    kind = getattr(loaded.cfg.method, "kind", None)
    if kind != "sol":
        raise ConfigError(
            f"method.sol_run {run_dir}: a {kind} run, not a Solver-in-the-Loop run "
            "(method.kind sol)"
        )
    model, dcfg = loaded.model, data_config(path)
    ours = (dcfg.scene.kind, tuple(dcfg.low_resolution))
    theirs = (model.scene.name, tuple(model.scene.resolution))
    if ours != theirs:
        raise ConfigError(
            f"method.sol_run {run_dir}: its solver runs scene {theirs[0]} at {theirs[1]}, "
            f"the data set {path} has {ours[0]} at low resolution {ours[1]}; use a SOL run "
            "trained on this data set"
        )
    names = model.scene.param_names

    def step(state: Any, params: dict[str, torch.Tensor]) -> Any:
        with torch.no_grad():
            return model.step(state, torch.stack([params[n] for n in names], dim=1))

    return step


def source_training_frames(
    path: str | Path,
    split: str,
    fields: Sequence[str],
    cfg: SourceInputConfig,
    seed: int,
    stepper: Callable[[Any, dict], Any] | None = None,
) -> SourceFrames:
    """Training pairs for ``method.input: source`` (see :class:`SourceInputConfig`), or,
    with ``stepper`` (:func:`sol_stepper`), for ``method.input: sol``.

    The steps kept from each start are drawn with ``numpy.random.default_rng(seed)``, so
    the same run always trains on the same pairs (an interrupted run resumes exactly).
    """
    with FieldData(path) as data:
        n_runs = cfg.starts * len(data.simulations(split))
        factor = int(data.attrs["factor"])
    picks = _draw_steps(cfg, n_runs, seed)
    rolls = source_rollouts(
        path, split, cfg.steps[1], cfg.starts, fields, keep=picks.__getitem__, stepper=stepper
    )
    per = cfg.per_start
    k = torch.tensor([s for p in picks[: len(rolls.sim)] for s in p])
    return SourceFrames(
        rolls.low.flatten(0, 1),
        rolls.high.flatten(0, 1),
        rolls.sim.repeat_interleave(per),
        rolls.start.repeat_interleave(per) + k,
        k,
        fields,
        factor,
        split,
    )


def solver_output_scores(
    upscalers: dict[str, Callable[[torch.Tensor], torch.Tensor]],
    score: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
    path: str | Path,
    split: str,
    fields: Sequence[str],
    steps: int,
    starts: int,
) -> dict[str, Any]:
    """Every upsampler on the low-resolution solver's states 1 .. ``steps`` steps after
    ``starts`` start frames (evenly spread) of every ``split`` simulation, each scored
    against the reference at its frame.

    Parameters
    ----------
    upscalers
        ``{row name: fn(low [N, C, h, w]) -> [N, C, H, W]}``.
    score
        ``score(prediction, reference) -> {metric: [N] values}``.

    Returns
    -------
    dict
        ``steps``, ``starts`` (frames), ``simulations``, ``per_step`` ``{row: {metric:
        [steps] means over the runs}}``, ``per_simulation`` ``{row: {metric: [sims]}}``
        and ``mean`` ``{row: {metric: mean over steps and runs}}``.
    """
    rolls = source_rollouts(path, split, steps, starts, fields)
    low = rolls.low[:, 1:].flatten(0, 1)  # step 0 is the downsampled reference itself
    high = rolls.high[:, 1:].flatten(0, 1)
    n_runs = len(rolls.sim)
    sims = list(dict.fromkeys(rolls.sim.tolist()))
    per_step, per_sim, mean = {}, {}, {}
    for row, fn in upscalers.items():
        values = score(fn(low), high)
        grid = {m: v.reshape(n_runs, steps).double() for m, v in values.items()}
        per_step[row] = {m: g.mean(0).tolist() for m, g in grid.items()}
        per_sim[row] = {m: [float(g[rolls.sim == s].mean()) for s in sims] for m, g in grid.items()}
        mean[row] = {m: float(g.mean()) for m, g in grid.items()}
    return {
        "steps": steps,
        "starts": sorted(set(rolls.start.tolist())),
        "simulations": sims,
        "per_step": per_step,
        "per_simulation": per_sim,
        "mean": mean,
    }
