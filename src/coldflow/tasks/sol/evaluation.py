"""Rollouts of the source and the corrected solver, scored against the reference.

Besides the two solvers, every evaluation scores the *nearest training trajectory*: the
stretch of as many consecutive downsampled frames of a training simulation (or of its
mirror image across the channel's centre line, where the scene is symmetric), starting
at any frame, that is closest in MSE to the test reference, copied as the prediction.
Searching every start finds a training flow at its best phase (two seeds of one Kármán
flow differ only by phase and mirror image). A model that does not beat it has
memorised the training flows rather than learned to correct the solver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from coldflow.config import ConfigError
from coldflow.data.store import FieldData
from coldflow.metrics import metric_spec, score_fields
from coldflow.physics import FluidState
from coldflow.tasks.fluid import read_stacked

__all__ = ["evaluate_rollouts", "mirror_staggered", "nearest_trajectory"]


def mirror_staggered(velocity: torch.Tensor) -> torch.Tensor:
    """Mirror a padded staggered velocity ``[..., 2, H + 1, W + 1]`` across ``x = W / 2``.

    The y component (on y faces, valid ``[:H + 1, :W]``) is reflected; the x component
    (on x faces, valid ``[:H, :W + 1]``) is reflected and negated. Padding stays zero.
    """
    out = torch.zeros_like(velocity)
    out[..., 0, :, :-1] = velocity[..., 0, :, :-1].flip(-1)
    out[..., 1, :-1, :] = -velocity[..., 1, :-1, :].flip(-1)
    return out


def nearest_trajectory(
    reference: torch.Tensor, candidates: dict[str, torch.Tensor | tuple[int, torch.Tensor]]
) -> tuple[str, torch.Tensor]:
    """The stretch of a candidate trajectory closest to ``reference`` in mean squared error.

    Every window of ``len(reference)`` consecutive frames of every candidate competes, so
    a training flow copied at its best phase (and, among mirrored candidates, its best
    mirror image) is found: the strongest baseline that memorising the training data can
    give.

    Parameters
    ----------
    reference
        ``[T, ...]`` the test trajectory.
    candidates
        ``{label: trajectory}`` or ``{label: (first_frame, trajectory)}``, each
        ``[T_c >= T, ...]``; ``first_frame`` (default 0) numbers the frames in the label.

    Returns
    -------
    tuple
        ``(label, trajectory)`` of the closest window; the label names its frames when
        the candidate is longer than ``reference``.
    """
    T = reference.shape[0]
    best_error, best = float("inf"), ("", reference)
    for label, value in candidates.items():
        first, traj = value if isinstance(value, tuple) else (0, value)
        if traj.shape[0] < T:
            raise ValueError(f"candidate {label!r} has {traj.shape[0]} frames, fewer than {T}")
        for s in range(traj.shape[0] - T + 1):
            error = float(((traj[s : s + T] - reference) ** 2).mean())
            if error < best_error:
                name = (
                    label
                    if traj.shape[0] == T
                    else f"{label}, frames {first + s}-{first + s + T - 1}"
                )
                best_error, best = error, (name, traj[s : s + T])
    return best


def _training_candidates(
    data: FieldData, first: int, mirror: bool
) -> dict[str, tuple[int, torch.Tensor]]:
    """Every training simulation's downsampled velocity from frame ``first`` to the end."""
    out = {}
    for sim in data.simulations("train"):
        v = torch.from_numpy(data.read(sim, "downsampled", "velocity", slice(first, None)))
        out[f"train sim {sim.index}"] = (first, v)
        if mirror:
            out[f"train sim {sim.index} (mirrored)"] = (first, mirror_staggered(v))
    return out


def _score(fns: dict[str, Any], roll: torch.Tensor, ref: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{metric: [steps, sims]}`` for steps 1..N of ``roll`` against ``ref`` (one batch
    per step: the simulations)."""
    n, sims = ref.shape[0] - 1, ref.shape[1]
    pred, true = roll[1 : n + 1].flatten(0, 1), ref[1:].flatten(0, 1)
    scores = score_fields(fns, pred, true, batch_size=sims)
    return {name: v.view(n, sims) for name, v in scores.items()}


def evaluate_rollouts(
    model: Any,
    data_path: Path,
    fns: dict[str, Any],
    steps: int,
    start: int | None,
    split: str,
    device: torch.device,
    mirror: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score source, corrected and nearest-training rollouts of every ``split`` simulation.

    Returns the evaluation (``per_step``, ``per_simulation``, ``mean``, ``improvement``,
    ``seconds_per_step``, the frames used) and what the caller stores: the high-resolution
    start state for timing and the first simulation's rollouts.
    """
    scene = model.scene
    with FieldData(data_path) as data:
        sims = data.simulations(split)
        if not sims:
            raise ConfigError(f"{data_path}: no simulations in split {split!r}")
        first = data.warmup if start is None else start
        available = data.frames - 1 - first
        if available < 1:
            raise ConfigError(f"{data_path}: no frames after start frame {first}")
        n = min(steps, available)
        if n < steps:
            print(
                f"note: {data_path} holds {data.frames} frames, so the rollouts from frame "
                f"{first} are {n} steps long, not {steps}",
                flush=True,
            )
        frames = slice(first, first + n + 1)
        ref = read_stacked(data, sims, "downsampled", "velocity", frames).transpose(0, 1)
        high0 = read_stacked(data, sims, "reference", "velocity", first)
        params = torch.tensor([[s.params[k] for k in data.param_names] for s in sims])
        density = high_density = None
        if "buoyancy" in scene.param_names:
            density = read_stacked(data, sims, "downsampled", "density", first)
            high_density = read_stacked(data, sims, "reference", "density", first)
        candidates = _training_candidates(data, first, mirror)
        train = [t.params for t in data.simulations("train")]
        training_range = (
            {k: [min(t[k] for t in train), max(t[k] for t in train)] for k in data.param_names}
            if train
            else {}
        )
        scene_kind = data.scene
    nearest_labels, nearest = [], []
    for j in range(len(sims)):
        label, traj = nearest_trajectory(ref[:, j], candidates) if candidates else ("", None)
        nearest_labels.append(label)
        nearest.append(traj)
    v0 = ref[0].to(device)
    p = params.to(device)
    d0 = None if density is None else density.to(device)
    with torch.no_grad():  # trace the step once before timing
        model.step(FluidState(v0, d0), p.to(v0.dtype))
    rollouts = {
        "source": model.rollout(v0, p, n, density=d0, correct=False),
        "corrected": model.rollout(v0, p, n, density=d0, correct=True),
    }
    scores = {kind: _score(fns, roll.velocity, ref) for kind, roll in rollouts.items()}
    if candidates:
        scores["nearest_training"] = _score(fns, torch.stack(nearest, 1), ref)
    per_step = {k: {m: v.mean(1).tolist() for m, v in s.items()} for k, s in scores.items()}
    per_sim = {k: {m: v.mean(0).tolist() for m, v in s.items()} for k, s in scores.items()}
    mean = {k: {m: float(v.mean()) for m, v in s.items()} for k, s in scores.items()}
    result = {
        "data": str(data_path),
        "scene": scene_kind,
        "split": split,
        "simulations": [{"index": s.index, "seed": s.seed, **s.params} for s in sims],
        "nearest_training": nearest_labels,
        "training_range": training_range,
        "start": first,
        "steps": n,
        "per_step": per_step,
        "per_simulation": per_sim,
        "mean": mean,
        "improvement": {
            m: 1 - mean["corrected"][m] / mean["source"][m] for m in fns if mean["source"][m] > 0
        },
        "seconds_per_step": {
            "source": float(np.mean(rollouts["source"].step_seconds)),
            "corrected": float(np.mean(rollouts["corrected"].step_seconds)),
        },
        "batch": len(sims),
        "resolution_low": list(scene.resolution),
        "verdict": verdict(mean, list(fns), per_sim, [f"simulation {s.index}" for s in sims]),
    }
    stored = {
        "high_start": (high0, high_density, params),
        "tensors": {  # every test simulation, by index
            s.index: {
                "reference": ref[:, j],
                "source": rollouts["source"].velocity[:, j],
                "corrected": rollouts["corrected"].velocity[:, j],
            }
            for j, s in enumerate(sims)
        },
        "start": first,
        "simulation": sims[0].index,
        "data": str(data_path),
    }
    return result, stored


def verdict(
    mean: dict[str, dict[str, float]],
    metrics: list[str],
    per_simulation: dict[str, dict[str, list[float]]] | None = None,
    names: list[str] | None = None,
) -> str:
    """Words for what the means support: better than the source and than memorisation?

    With ``per_simulation`` a claim made on the means names the test simulations on
    which it fails (the corrected rollout is not better than both baselines in every
    metric there), by ``names`` (default: their positions).
    """
    lower = [m for m in metrics if not metric_spec(m).higher_is_better]
    beats_source = [m for m in lower if mean["corrected"][m] < mean["source"][m]]
    if "nearest_training" not in mean:
        beats_nearest = None
    else:
        beats_nearest = [m for m in lower if mean["corrected"][m] < mean["nearest_training"][m]]
    if len(beats_source) < len(lower):
        worse = sorted(set(lower) - set(beats_source))
        return f"The corrected solver is no better than the source in {', '.join(worse)}."
    if beats_nearest is None:
        return "The corrected solver beats the source in every metric (no training data)."
    if len(beats_nearest) == len(lower):
        claim = (
            "The corrected solver beats both the source and the nearest training trajectory "
            "in every metric: the correction generalises"
        )
        failed = _failed_simulations(per_simulation, lower) if per_simulation else []
        if not failed:
            return claim + " to these test simulations."
        n = len(per_simulation["corrected"][lower[0]])
        return (
            claim
            + f" on average, but not on {len(failed)} of the {n} test simulations ("
            + ", ".join(names[j] if names else f"number {j + 1}" for j in failed)
            + "), where it does not beat both baselines in every metric."
        )
    worse = sorted(set(lower) - set(beats_nearest))
    return (
        "The corrected solver beats the source, but not the nearest training trajectory in "
        f"{', '.join(worse)}: on these test simulations it cannot be told apart from "
        "copying a training flow, so no claim of generalisation is supported."
    )


def _failed_simulations(
    per_simulation: dict[str, dict[str, list[float]]], metrics: list[str]
) -> list[int]:
    """Positions of the simulations where the corrected rollout is not better than every
    baseline in every metric."""
    baselines = [k for k in ("source", "nearest_training") if k in per_simulation]
    n = len(per_simulation["corrected"][metrics[0]])
    return [
        j
        for j in range(n)
        if any(
            per_simulation["corrected"][m][j] >= per_simulation[b][m][j]
            for m in metrics
            for b in baselines
        )
    ]
