"""Rollouts of the source and the corrected solver, scored against the reference.

Besides the two solvers, every evaluation scores two baselines that copy training data:

- the *nearest training trajectory*: the stretch of as many consecutive downsampled
  frames of a training simulation (or of its mirror image across the channel's centre
  line, where the scene is symmetric), starting at any frame, that is closest in MSE to
  the test reference, copied as the prediction. Searching every start finds a training
  flow at its best phase (two seeds of one Kármán flow differ only by phase and mirror
  image).
- the *rescaled nearest training trajectory* (scenes whose simulations record an
  ``inflow_speed``): the same search over training flows carried to the test flow's
  inflow speed by the similarity of the flow in that speed (velocity times ``U / U'``,
  time resampled by the same factor; :func:`rescale_trajectory`). A model that only
  interpolates between training speeds this way has learned nothing a skeptic could not
  get for free.

A model that does not beat both has memorised the training flows rather than learned to
correct the solver.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from coldflow.config import ConfigError
from coldflow.data.store import FieldData
from coldflow.metrics import metric_spec, score_fields
from coldflow.physics import FluidState
from coldflow.tasks.fluid import read_stacked, training_range

__all__ = [
    "BASELINES",
    "RescaledMatch",
    "evaluate_rollouts",
    "mirror_staggered",
    "nearest_rescaled_trajectory",
    "nearest_trajectory",
    "rescale_trajectory",
    "resample_in_time",
    "training_baselines",
]

SPEED = "inflow_speed"
"""The simulation parameter the rescaled baseline scales by."""

BASELINES = {
    "source": "the source",
    "nearest_training": "the nearest training trajectory",
    "rescaled_training": "the rescaled nearest training trajectory",
}
"""The rollouts the corrected one is judged against (keys of an evaluation's ``mean``),
with their names in verdicts."""


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


def _sample_positions(start: float, rate: float, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``floor`` and fraction of the positions ``start + rate * k``, k < ``frames``
    (positions within 1e-9 of a stored frame are that frame: no rounding to its
    neighbour)."""
    position = start + rate * np.arange(frames, dtype=np.float64)
    nearest = np.round(position)
    position = np.where(np.abs(position - nearest) < 1e-9, nearest, position)
    low = np.floor(position)
    return low.astype(np.int64), position - low


def resample_in_time(
    trajectory: torch.Tensor, start: float, rate: float, frames: int
) -> torch.Tensor:
    """Frames ``start + rate * k`` (k = 0 .. ``frames`` - 1) of ``trajectory``, linearly
    interpolated between its stored frames.

    Only the time axis changes: the values are not scaled (a passive scalar is resampled
    like this; a velocity is also scaled, :func:`rescale_trajectory`).

    Parameters
    ----------
    trajectory
        ``[T, ...]``, stored frames 0 .. T - 1.
    start, rate
        The first position and the spacing of the positions, in stored frames.
    frames
        How many frames to return.

    Raises
    ------
    ValueError
        When a position lies outside ``[0, T - 1]`` or ``rate`` is not positive.
    """
    if rate <= 0:
        raise ValueError(f"the resampling rate must be positive, got {rate}")
    low, frac = _sample_positions(start, rate, frames)
    T = trajectory.shape[0]
    if low[0] < 0 or low[-1] + (frac[-1] > 0) > T - 1:
        end = start + rate * (frames - 1)
        raise ValueError(f"frames {start:g} .. {end:g} lie outside the {T} stored frames")
    high = np.minimum(low + 1, T - 1)  # frac is 0 where low is the last frame
    w = torch.as_tensor(frac, dtype=trajectory.dtype).view(-1, *[1] * (trajectory.ndim - 1))
    return (1 - w) * trajectory[low] + w * trajectory[high]


def rescale_trajectory(
    trajectory: torch.Tensor, factor: float, start: float, frames: int
) -> torch.Tensor:
    """A velocity trajectory at inflow speed ``U'`` carried to ``U = factor * U'``.

    Derivation. With the geometry fixed, the incompressible Navier-Stokes equations map a
    solution ``u'(x, t)`` with inflow ``U'`` and viscosity ``nu'`` onto one with inflow
    ``U = a U'``: ``u(x, t) = a u'(x, a t)`` (pressure ``a^2 p'(x, a t)``) solves them with
    ``nu = a nu'`` (every term of the momentum equation scales by ``a^2``: ``d_t u`` and
    ``(u . grad) u`` by ``a^2``, ``nu laplace u`` by ``(nu / nu') a``). The same physical
    advection in a flow ``a`` times faster takes ``1 / a`` of the time. Both flows are
    stored every ``dt`` (fixed): test frame ``k`` is at time ``k dt``, which is time
    ``a k dt`` of the training flow, i.e. its (fractional) frame ``a k``. So, with a start
    phase ``s`` in training frames,

        u_test[k] = a * u_train[s + a k]      (a = U / U'),

    the training frames interpolated linearly in time where ``s + a k`` falls between
    two. Only the velocity is multiplied by ``a``; the time axis is resampled
    (:func:`resample_in_time`).

    It is a baseline, not an identity: unless the viscosity is scaled with it the Reynolds
    number ``U D / nu`` changes by ``a`` (the data sets vary ``U`` and ``Re``
    independently), the solver's numerical diffusion and Courant number ``U dt / dx``
    change with ``U``, the wake is not self-similar while it develops, and linear
    interpolation between stored frames smooths the resampled flow.

    Parameters
    ----------
    trajectory
        ``[T, ...]`` velocity frames of the training flow (any layout: the map acts on
        every value alike, so the zero padding of the staggered layout stays zero).
    factor
        ``a = U / U'``, the test flow's inflow speed over the training flow's.
    start
        ``s``: the training frame (index into ``trajectory``) that test frame 0 copies.
    frames
        Test frames to return.

    Returns
    -------
    torch.Tensor
        ``[frames, ...]``.
    """
    return factor * resample_in_time(trajectory, start, factor, frames)


class RescaledMatch(NamedTuple):
    """The rescaled training trajectory closest to a test trajectory."""

    label: str
    """The candidate, its factor and the training frames it spans, in words."""
    trajectory: torch.Tensor
    """``[T, ...]``, :func:`rescale_trajectory` of the candidate."""
    candidate: str
    """The candidate's key."""
    start: int
    """The training frame (numbered as the candidate's ``first_frame`` says) of test
    frame 0."""
    factor: float
    """``U / U'``."""
    error: float
    """Mean squared error against the test trajectory."""


def _window_errors(
    trajectory: torch.Tensor, reference: torch.Tensor, factor: float
) -> torch.Tensor:
    """Sum of squared errors of :func:`rescale_trajectory` against ``reference`` for every
    integer start that fits, ``[starts]`` (empty when none does), in float64.

    Expands ``|a x - r|^2`` with ``x = (1 - f) c_j + f c_(j+1)`` into frame norms, products
    of neighbouring frames and products with the reference frames, so that every start
    costs a few look-ups instead of a pass over the fields.
    """
    T, n = trajectory.shape[0], reference.shape[0]
    low, frac = _sample_positions(0.0, factor, n)
    starts = T - 1 - (low[-1] + int(frac[-1] > 0))
    if starts < 0:
        return torch.zeros(0, dtype=torch.float64)
    c = trajectory.reshape(T, -1).double()
    r = reference.reshape(n, -1).double()
    norm = (c * c).sum(1)  # |c_j|^2
    pair = torch.cat([(c[:-1] * c[1:]).sum(1), norm[-1:]])  # c_j . c_(j+1) (last: unused)
    cross = c @ r.T  # c_j . r_k, [T, n]
    j = torch.arange(starts + 1)[:, None] + torch.as_tensor(low)[None, :]  # [S, n]
    j1 = torch.clamp(j + 1, max=T - 1)
    f = torch.as_tensor(frac)[None, :]
    k = torch.arange(n)[None, :].expand_as(j)
    x_norm = (1 - f) ** 2 * norm[j] + 2 * f * (1 - f) * pair[j] + f**2 * norm[j1]
    x_dot_r = (1 - f) * cross[j, k] + f * cross[j1, k]
    error = factor**2 * x_norm - 2 * factor * x_dot_r + (r * r).sum(1)[None, :]
    return error.sum(1).clamp(min=0)


def nearest_rescaled_trajectory(
    reference: torch.Tensor,
    speed: float,
    candidates: dict[str, torch.Tensor | tuple[int, torch.Tensor]],
    speeds: dict[str, float],
) -> RescaledMatch:
    """The training trajectory, carried to the test flow's inflow speed, closest to
    ``reference`` in mean squared error.

    Every candidate at speed ``U'`` becomes ``rescale_trajectory(c, U / U', s, T)`` for
    every integer start ``s`` it can serve (a faster test flow needs ``U / U'`` times as
    many training frames; candidates too short for their factor drop out); the one with
    the lowest MSE over the ``T`` frames of ``reference`` wins, the selection rule of
    :func:`nearest_trajectory`. Choosing by the error against the test reference itself is
    an oracle: it favours the baseline, so a model that beats it beats every choice of
    training flow, mirror image and phase a skeptic could make. The phase is searched in
    steps of one stored training frame.

    Parameters
    ----------
    reference
        ``[T, ...]`` the test velocity trajectory, at inflow speed ``speed``.
    speed
        ``U``, the test flow's inflow speed.
    candidates
        As for :func:`nearest_trajectory`.
    speeds
        ``{label: U'}``, the inflow speed of every candidate.

    Returns
    -------
    RescaledMatch
        Label, trajectory, candidate, start frame, factor and error of the best.

    Raises
    ------
    ValueError
        When a candidate has no speed, a speed is not positive, or no candidate has
        enough frames for its factor.
    """
    T = reference.shape[0]
    best: RescaledMatch | None = None
    for label, value in candidates.items():
        first, traj = value if isinstance(value, tuple) else (0, value)
        if label not in speeds:
            raise ValueError(f"candidate {label!r} has no inflow speed in speeds")
        if not (speeds[label] > 0 and speed > 0):
            raise ValueError(f"inflow speeds must be positive: {speeds[label]} and {speed}")
        factor = speed / speeds[label]
        errors = _window_errors(traj, reference, factor)
        if not len(errors):
            continue
        s = int(torch.argmin(errors))  # the first of equal minima, as nearest_trajectory
        error = float(errors[s]) / reference.numel()
        if best is None or error < best.error:
            end = first + s + factor * (T - 1)
            name = f"{label} x {factor:.3g}, frames {first + s}-{end:.1f}"
            best = RescaledMatch(name, traj[:0], label, first + s, factor, error)
    if best is None:
        raise ValueError(
            f"no candidate has enough frames for {T} test frames at its speed ratio "
            f"(a candidate at U' needs 1 + {T - 1} U / U' frames)"
        )
    value = candidates[best.candidate]
    traj = value[1] if isinstance(value, tuple) else value
    first = value[0] if isinstance(value, tuple) else 0
    rescaled = rescale_trajectory(traj, best.factor, best.start - first, T)
    error = float(((rescaled.double() - reference.double()) ** 2).mean())
    return best._replace(trajectory=rescaled.to(reference.dtype), error=error)


def _candidate_label(index: int, mirrored: bool) -> str:
    return f"train sim {index}" + (" (mirrored)" if mirrored else "")


def _training_candidates(
    data: FieldData, first: int, mirror: bool
) -> dict[str, tuple[int, torch.Tensor]]:
    """Every training simulation's downsampled velocity from frame ``first`` to the end."""
    out = {}
    for sim in data.simulations("train"):
        v = torch.from_numpy(data.read(sim, "downsampled", "velocity", slice(first, None)))
        out[_candidate_label(sim.index, False)] = (first, v)
        if mirror:
            out[_candidate_label(sim.index, True)] = (first, mirror_staggered(v))
    return out


def training_baselines(
    data: FieldData, sims: list, reference: torch.Tensor, first: int, mirror: bool
) -> dict[str, tuple[list[str], torch.Tensor]]:
    """The baselines that copy training data, for every test simulation.

    Parameters
    ----------
    data
        The open data set.
    sims
        The test simulations (``data.simulations(split)``).
    reference
        ``[T, len(sims), ...]`` their downsampled velocity from frame ``first``.
    first
        The frame the rollouts start from; training trajectories are searched from it on.
    mirror
        Whether mirror images of the training flows compete too.

    Returns
    -------
    dict
        ``{kind: (labels, trajectories [T, len(sims), ...])}`` for ``nearest_training``
        (:func:`nearest_trajectory`; absent without training simulations) and
        ``rescaled_training`` (:func:`nearest_rescaled_trajectory`). The rescaled one is
        omitted, not faked, where the data set records no ``inflow_speed`` (the plume),
        where every training flow has every test flow's speed (it would be the plain
        baseline again), or where no training flow has the frames a test flow's speed
        ratio needs.
    """
    candidates = _training_candidates(data, first, mirror)
    if not candidates:
        return {}
    columns = [reference[:, j] for j in range(len(sims))]
    plain = [nearest_trajectory(ref, candidates) for ref in columns]
    out = {"nearest_training": ([p[0] for p in plain], torch.stack([p[1] for p in plain], 1))}
    if SPEED not in data.param_names:
        return out
    train = data.simulations("train")
    speeds = {
        _candidate_label(t.index, m): float(t.params[SPEED])
        for t in train
        for m in ((False, True) if mirror else (False,))
    }
    test_speeds = [float(s.params[SPEED]) for s in sims]
    if all(math.isclose(u, v, rel_tol=1e-12) for u in test_speeds for v in speeds.values()):
        return out
    try:
        matches = [
            nearest_rescaled_trajectory(ref, u, candidates, speeds)
            for ref, u in zip(columns, test_speeds, strict=True)
        ]
    except ValueError as error:
        print(f"note: no rescaled nearest training trajectory: {error}", flush=True)
        return out
    out["rescaled_training"] = (
        [m.label for m in matches],
        torch.stack([m.trajectory for m in matches], 1),
    )
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
    """Score source, corrected and the training baselines on every ``split`` simulation.

    The baselines are those of :func:`training_baselines`: the nearest training
    trajectory and, where the scene has an inflow speed, the rescaled one; each is a row
    of ``mean``, ``per_step`` and ``per_simulation`` and its labels (which training
    flow, frames) a list under its own key.

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
        if scene.has_density:
            density = read_stacked(data, sims, "downsampled", "density", first)
            high_density = read_stacked(data, sims, "reference", "density", first)
        baselines = training_baselines(data, sims, ref, first, mirror)
        ranges = training_range(data)
        scene_kind = data.scene
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
    for kind, (_, trajectories) in baselines.items():
        scores[kind] = _score(fns, trajectories, ref)
    per_step = {k: {m: v.mean(1).tolist() for m, v in s.items()} for k, s in scores.items()}
    per_sim = {k: {m: v.mean(0).tolist() for m, v in s.items()} for k, s in scores.items()}
    mean = {k: {m: float(v.mean()) for m, v in s.items()} for k, s in scores.items()}
    labels = {kind: names for kind, (names, _) in baselines.items()}
    result = {
        "data": str(data_path),
        "scene": scene_kind,
        "split": split,
        "simulations": [{"index": s.index, "seed": s.seed, **s.params} for s in sims],
        "nearest_training": labels.get("nearest_training", [""] * len(sims)),
        **{k: v for k, v in labels.items() if k != "nearest_training"},
        "training_range": ranges,
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
        "low_start": (v0, p, d0),
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


def _names(kinds: list[str]) -> str:
    """``the a``, ``both the a and the b``, ``the a, the b and the c``."""
    words = [BASELINES[k] for k in kinds]
    if len(words) == 2:
        return f"both {words[0]} and {words[1]}"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" and {words[-1]}"


def verdict(
    mean: dict[str, dict[str, float]],
    metrics: list[str],
    per_simulation: dict[str, dict[str, list[float]]] | None = None,
    names: list[str] | None = None,
) -> str:
    """Words for what the means support: better than the source and than memorisation?

    The correction must beat the strongest baseline: the source and every training
    baseline present in ``mean`` (:data:`BASELINES`), in every metric where lower is
    better. With ``per_simulation`` a claim made on the means names the test simulations
    on which it fails (the corrected rollout is not better than every baseline in every
    metric there), by ``names`` (default: their positions).
    """
    lower = [m for m in metrics if not metric_spec(m).higher_is_better]
    beats_source = [m for m in lower if mean["corrected"][m] < mean["source"][m]]
    if len(beats_source) < len(lower):
        worse = sorted(set(lower) - set(beats_source))
        return f"The corrected solver is no better than the source in {', '.join(worse)}."
    copies = [k for k in BASELINES if k != "source" and k in mean]
    if not copies:
        return "The corrected solver beats the source in every metric (no training data)."
    not_beaten = {
        k: sorted(m for m in lower if not mean["corrected"][m] < mean[k][m]) for k in copies
    }
    if not any(not_beaten.values()):
        claim = (
            f"The corrected solver beats {_names(['source', *copies])} in every metric: "
            "the correction generalises"
        )
        failed = _failed_simulations(per_simulation, lower) if per_simulation else []
        if not failed:
            return claim + " to these test simulations."
        n = len(per_simulation["corrected"][lower[0]])
        which = "both baselines" if len(copies) == 1 else "every baseline"
        return (
            claim
            + f" on average, but not on {len(failed)} of the {n} test simulations ("
            + ", ".join(names[j] if names else f"number {j + 1}" for j in failed)
            + f"), where it does not beat {which} in every metric."
        )
    parts = "; ".join(
        f"{BASELINES[k]} in {', '.join(worse)}" for k, worse in not_beaten.items() if worse
    )
    flow = "copying a training flow" + (
        " (rescaled to the test flow's inflow speed or not)" if len(copies) > 1 else ""
    )
    return (
        f"The corrected solver beats the source, but not {parts}: on these test "
        f"simulations it cannot be told apart from {flow}, so no claim of generalisation "
        "is supported."
    )


def _failed_simulations(
    per_simulation: dict[str, dict[str, list[float]]], metrics: list[str]
) -> list[int]:
    """Positions of the simulations where the corrected rollout is not better than every
    baseline in every metric."""
    baselines = [k for k in BASELINES if k in per_simulation]
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
