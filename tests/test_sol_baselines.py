"""The training baselines of the SOL evaluation: the nearest training trajectory and the
one rescaled to the test flow's inflow speed (known answers on constructed flows that
obey the similarity exactly, the fast error search against brute force, when the
rescaled baseline is omitted), and how verdicts and tables use them."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from coldflow.data.store import FieldData
from coldflow.data.store_writer import SimulationWriter, merge_parts
from coldflow.tasks.sol.evaluation import (
    _window_errors,
    mirror_staggered,
    nearest_rescaled_trajectory,
    nearest_trajectory,
    resample_in_time,
    rescale_trajectory,
    training_baselines,
    verdict,
)
from coldflow.tasks.sol.figures import per_simulation_table, sol_table

torch.set_num_threads(1)

H, W, L = 16, 8, 32.0  # grid (y along the flow) and wavelength of the wake-like pattern


def wake(speed: float, shape: int, times: np.ndarray) -> torch.Tensor:
    """A padded staggered velocity ``[T, 2, H + 1, W + 1]`` that obeys the similarity:
    ``u(y, x, t) = U G(y - U t, x)``, so the flow at ``U = a U'`` is exactly
    ``a u'(y, x, a t)``. ``shape`` picks ``G`` (no two alike, none mirror-symmetric)."""
    phase = 0.7 * shape
    t = torch.as_tensor(times, dtype=torch.float64)[:, None, None]
    out = torch.zeros(len(times), 2, H + 1, W + 1, dtype=torch.float64)
    y, x = torch.arange(H + 1.0)[:, None], torch.arange(W) + 0.5  # y faces
    xi = y - speed * t
    out[:, 0, :, :W] = speed * (
        1 + 0.4 * torch.sin(2 * math.pi * xi / L + phase) * (x / W) ** (1 + shape % 2)
    )
    y, x = torch.arange(H)[:, None] + 0.5, torch.arange(W + 1.0)  # x faces
    xi = y - speed * t
    out[:, 1, :H, :] = speed * 0.3 * torch.cos(2 * math.pi * xi / L + 2 * phase) * (1 - x / W)
    return out.float()


TRAIN_SPEEDS = (0.8, 1.0, 1.25)
FRAMES = 60


def training_flows() -> dict[str, torch.Tensor]:
    frames = np.arange(FRAMES, dtype=np.float64)
    return {f"train sim {i}": wake(u, i, frames) for i, u in enumerate(TRAIN_SPEEDS)}


def flow_at(speed: float, sim: int, start: float, frames: int, mirrored: bool):
    """Training flow ``sim`` carried to ``speed``: its frame ``start`` is test frame 0
    (the inverse of the rescaling, evaluated from the formula, not interpolated)."""
    u = TRAIN_SPEEDS[sim]
    times = np.arange(frames) + u * start / speed  # U t0 = U' s0
    flow = wake(speed, sim, times)
    return mirror_staggered(flow) if mirrored else flow


# ------------------------------------------------------------------ the transformation


def test_resampling_is_exact_on_flows_linear_in_time_and_scales_velocity_only():
    g = torch.Generator().manual_seed(0)
    base, slope = torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    traj = torch.stack([base + t * slope for t in range(20)]).double()
    out = resample_in_time(traj, 3.0, 1.75, 6)
    for k in range(6):  # linear interpolation reproduces a linear function of time
        torch.testing.assert_close(out[k], base.double() + (3 + 1.75 * k) * slope.double())
    # resampling leaves the values alone (a constant flow stays the same constant); the
    # rescaled velocity is the resampled one times U / U' and nothing else
    constant = base.expand(20, -1, -1, -1)
    torch.testing.assert_close(resample_in_time(constant, 2.0, 0.6, 9), constant[:9])
    torch.testing.assert_close(rescale_trajectory(constant, 0.6, 2.0, 9), 0.6 * constant[:9])
    torch.testing.assert_close(
        rescale_trajectory(traj, 1.75, 3.0, 6), 1.75 * resample_in_time(traj, 3.0, 1.75, 6)
    )
    # stored frames are returned exactly, the staggered padding stays zero
    flow = training_flows()["train sim 1"]
    assert torch.equal(rescale_trajectory(flow, 1.0, 4, 10), flow[4:14])
    scaled = rescale_trajectory(flow, 1.3, 2, 10)
    assert scaled[:, 0, :, -1].abs().max() == 0 and scaled[:, 1, -1, :].abs().max() == 0
    with pytest.raises(ValueError, match="outside the 60 stored frames"):
        rescale_trajectory(flow, 2.0, 40, 11)  # frames 40 .. 60


def test_the_fast_window_search_equals_brute_force():
    g = torch.Generator().manual_seed(1)
    traj, ref = torch.randn(30, 2, 5, 4, generator=g), torch.randn(8, 2, 5, 4, generator=g)
    for factor in (1.0, 0.55, 1.3, 4.0):
        errors = _window_errors(traj, ref, factor)
        starts = int(29 - math.ceil(factor * 7 - 1e-9)) + 1
        assert len(errors) == starts
        brute = [
            float(((rescale_trajectory(traj.double(), factor, s, 8) - ref.double()) ** 2).sum())
            for s in range(starts)
        ]
        np.testing.assert_allclose(errors.numpy(), brute, rtol=1e-9)
    assert len(_window_errors(traj, ref, 4.2)) == 0  # 1 + 7 * 4.2 frames: more than 30


# ------------------------------------------------------------------ the search


def test_rescaled_baseline_finds_simulation_mirror_and_phase_where_the_plain_one_fails():
    flows = training_flows()
    candidates = {}
    for label, flow in flows.items():  # stored from frame 10, as evaluation reads them
        candidates[label] = (10, flow)
        candidates[f"{label} (mirrored)"] = (10, mirror_staggered(flow))
    speeds = {k: TRAIN_SPEEDS[int(k.split()[2])] for k in candidates}
    ref = flow_at(1.2, sim=0, start=7, frames=12, mirrored=True)  # U 1.2 from U' 0.8
    match = nearest_rescaled_trajectory(ref, 1.2, candidates, speeds)
    assert match.candidate == "train sim 0 (mirrored)"
    assert match.start == 17 and match.factor == pytest.approx(1.5)
    assert match.label == "train sim 0 (mirrored) x 1.5, frames 17-33.5"
    power = float((ref.double() ** 2).mean())
    assert match.error < 1e-4 * power  # only the linear interpolation in time differs
    assert match.error == pytest.approx(float(((match.trajectory - ref) ** 2).mean()), rel=1e-4)
    _, plain = nearest_trajectory(ref, candidates)
    plain_error = float(((plain - ref) ** 2).mean())
    assert plain_error > 1e-2 * power and plain_error > 100 * match.error
    # at its own speed the flow is found as it is stored, by both baselines
    ref = flows["train sim 2"][20:32]
    match = nearest_rescaled_trajectory(ref, 1.25, candidates, speeds)
    assert (match.candidate, match.start, match.factor) == ("train sim 2", 30, 1.0)
    assert match.error < 1e-12 and nearest_trajectory(ref, candidates)[0].startswith(
        "train sim 2, frames 30-41"
    )


def test_rescaled_search_skips_candidates_too_short_for_their_factor():
    flows = training_flows()
    ref = flow_at(1.25, sim=0, start=0, frames=40, mirrored=False)  # needs 1 + 39 * 1.5625
    speeds = {k: TRAIN_SPEEDS[int(k.split()[2])] for k in flows}
    match = nearest_rescaled_trajectory(ref, 1.25, flows, speeds)
    assert match.candidate in ("train sim 1", "train sim 2")  # sim 0 has 60 < 62 frames
    with pytest.raises(ValueError, match="enough frames"):
        nearest_rescaled_trajectory(ref, 1.25, {"s": flows["train sim 0"]}, {"s": 0.8})
    with pytest.raises(ValueError, match="no inflow speed"):
        nearest_rescaled_trajectory(ref, 1.25, flows, {})


# ------------------------------------------------------------------ from a data set file


def handmade(root: Path, param_names: list[str], train_speeds, test: dict) -> Path:
    """A data set of the wake flows: training flows at ``train_speeds``, one test flow
    (``test``: ``flow_at`` arguments); the speeds are stored as ``inflow_speed`` only
    where ``param_names`` has it."""
    shapes = {f"{k}/velocity": (FRAMES, 2, H + 1, W + 1) for k in ("downsampled", "reference")}
    sims = [("train", wake(u, i, np.arange(FRAMES, dtype=np.float64)), u)
            for i, u in enumerate(train_speeds)]  # fmt: skip
    sims.append(("test", flow_at(frames=FRAMES - 30, **test), test["speed"]))
    parts = []
    for index, (split, flow, speed) in enumerate(sims):
        attrs = {"index": index, "split": split, "seed": index}
        attrs |= {"inflow_speed": speed, "re": 1e5} if "inflow_speed" in param_names else {}
        attrs |= {"buoyancy": speed} if "buoyancy" in param_names else {}
        part = root / f"sim_{index}.h5"
        with SimulationWriter(part, attrs, shapes) as sw:
            frames = np.zeros(shapes["downsampled/velocity"], dtype=np.float32)
            frames[: len(flow)] = flow.numpy()
            sw.write("downsampled/velocity", 0, frames)
            sw.write("reference/velocity", 0, frames)
        parts.append(part)
    attrs = {
        "scene": "handmade", "frames": FRAMES, "warmup": 0, "factor": 2,
        "param_names": param_names, "resolution_high": [2 * H, 2 * W],
        "resolution_low": [H, W], "domain_size": [float(H), float(W)], "dt": 1.0,
        "source_start": 0,
    }  # fmt: skip
    return merge_parts(parts, root / "handmade.h5", attrs, {})


def baselines_of(path: Path, steps: int = 12):
    with FieldData(path) as data:
        sims = data.simulations("test")
        ref = torch.stack(
            [
                torch.from_numpy(data.read(s, "downsampled", "velocity", slice(0, steps)))
                for s in sims
            ],
            1,
        )
        return training_baselines(data, sims, ref, 0, mirror=True), ref


def test_a_data_set_with_inflow_speeds_gets_the_rescaled_baseline(tmp_path):
    test = {"speed": 1.0, "sim": 2, "start": 5, "mirrored": False}  # from U' 1.25
    path = handmade(tmp_path, ["re", "inflow_speed"], TRAIN_SPEEDS, test)
    out, ref = baselines_of(path)
    assert set(out) == {"nearest_training", "rescaled_training"}
    labels, traj = out["rescaled_training"]
    assert labels == ["train sim 2 x 0.8, frames 5-13.8"] and traj.shape == ref.shape
    rescaled = float(((traj - ref) ** 2).mean())
    plain = float(((out["nearest_training"][1] - ref) ** 2).mean())
    assert rescaled < 1e-4 * float((ref**2).mean()) and plain > 100 * rescaled


def test_the_rescaled_baseline_is_omitted_without_inflow_speeds_or_other_speeds(tmp_path):
    test = {"speed": 1.0, "sim": 2, "start": 5, "mirrored": False}
    plume = handmade(tmp_path / "a", ["buoyancy"], TRAIN_SPEEDS, test)
    out, _ = baselines_of(plume)
    assert set(out) == {"nearest_training"}  # no inflow speed: nothing is faked
    same = {"speed": 1.0, "sim": 1, "start": 5, "mirrored": True}
    one_speed = handmade(tmp_path / "b", ["re", "inflow_speed"], (1.0, 1.0), same)
    out, ref = baselines_of(one_speed)
    assert set(out) == {"nearest_training"}  # every factor 1: the plain baseline again
    assert out["nearest_training"][0] == ["train sim 1 (mirrored), frames 5-16"]
    torch.testing.assert_close(out["nearest_training"][1], ref)


# ------------------------------------------------------------------ verdicts and tables


def test_the_correction_must_beat_the_strongest_baseline():
    per_sim = {
        "source": {"mse": [2.0, 2.0], "rel_l1": [0.2, 0.2]},
        "nearest_training": {"mse": [3.0, 3.0], "rel_l1": [0.3, 0.3]},
        "rescaled_training": {"mse": [0.4, 0.4], "rel_l1": [0.3, 0.3]},
        "corrected": {"mse": [0.5, 0.5], "rel_l1": [0.05, 0.05]},
    }
    mean = {k: {m: sum(v) / 2 for m, v in d.items()} for k, d in per_sim.items()}
    text = verdict(mean, ["mse", "rel_l1"], per_sim)
    assert text.startswith(
        "The corrected solver beats the source, but not the rescaled nearest training "
        "trajectory in mse: on these test simulations it cannot be told apart from copying "
        "a training flow (rescaled"
    )
    per_sim["corrected"]["mse"] = [0.3, 0.45]
    mean = {k: {m: sum(v) / 2 for m, v in d.items()} for k, d in per_sim.items()}
    text = verdict(mean, ["mse", "rel_l1"], per_sim, ["simulation 4", "simulation 5"])
    assert text.startswith(
        "The corrected solver beats the source, the nearest training trajectory and the "
        "rescaled nearest training trajectory in every metric: the correction generalises "
        "on average, but not on 1 of the 2 test simulations (simulation 5), where it does "
        "not beat every baseline in every metric."
    )
    # without the rescaled row, the words of before
    del mean["rescaled_training"], per_sim["rescaled_training"]
    assert verdict(mean, ["mse", "rel_l1"], per_sim).endswith(
        "nearest training trajectory in every metric: the correction generalises to these "
        "test simulations."
    )


def evaluation(corrected: list[float]) -> dict:
    return {
        "data": "d.h5", "split": "test", "start": 0, "steps": 10, "metrics": ["rel_l1"],
        "loss": "mse", "m": 4, "verdict": "",
        "simulations": [{"index": 6, "seed": 0, "inflow_speed": 0.95},
                        {"index": 7, "seed": 1, "inflow_speed": 1.4}],
        "training_range": {"inflow_speed": [0.8, 1.2]},
        "nearest_training": ["train sim 2, frames 3-13", "train sim 5, frames 0-10"],
        "rescaled_training": ["train sim 2 x 0.95, frames 1-10.5",
                              "train sim 5 x 1.17, frames 2-13.7"],
        "per_simulation": {
            "source": {"rel_l1": [0.05, 0.08]},
            "nearest_training": {"rel_l1": [0.04, 0.30]},
            "rescaled_training": {"rel_l1": [0.02, 0.06]},
            "corrected": {"rel_l1": corrected},
        },
        "mean": {"source": {"rel_l1": 0.065}, "nearest_training": {"rel_l1": 0.17},
                 "rescaled_training": {"rel_l1": 0.04}, "corrected": {"rel_l1": 0.03}},
        "improvement": {"rel_l1": 0.5}, "seconds_per_step": {"source": 1.0, "corrected": 2.0},
    }  # fmt: skip


def test_tables_have_a_rescaled_row_and_column_and_count_wins_against_it():
    text = per_simulation_table([evaluation([0.03, 0.05])], ["a"])
    assert "| rescaled training |" in text and "| rescaled |" in text
    assert "| train sim 2, frames 3-13 | train sim 2 x 0.95, frames 1-10.5 |" in text
    # 0.03 beats source and plain (0.05, 0.04) but not the rescaled 0.02; 0.05 beats all
    assert (
        "a: beats the source and both nearest training trajectories (as stored and rescaled) "
        "in rel_l1 on 0 of 1 inside the training range and 1 of 1 outside" in text
    )
    table = sol_table([evaluation([0.03, 0.05])], ["a"])
    assert "| rescaled nearest training trajectory (U / U') | 0.04 |" in table


class StandIn:
    """A stand-in for the SOL model: the source keeps the first frame, the corrected
    rollout is the reference 2 % too strong (better than the source and the plain copy,
    worse than the rescaled one)."""

    scene = SimpleNamespace(
        param_names=("re", "inflow_speed"), resolution=(H, W), has_density=False
    )

    def __init__(self, reference: torch.Tensor) -> None:
        self.reference = reference

    def step(self, state, params):
        return state

    def rollout(self, v0, params, n, density=None, correct=True):
        frames = 1.02 * self.reference[: n + 1] if correct else torch.stack([v0] * (n + 1))
        return SimpleNamespace(velocity=frames, step_seconds=[0.0])


def test_evaluation_scores_and_names_the_rescaled_baseline_and_the_verdict_uses_it(tmp_path):
    from coldflow.metrics import metric_functions
    from coldflow.tasks.sol.evaluation import evaluate_rollouts

    test = {"speed": 1.0, "sim": 2, "start": 5, "mirrored": True}
    path = handmade(tmp_path, ["re", "inflow_speed"], TRAIN_SPEEDS, test)
    fns = metric_functions(["mse", "rel_l1"], "staggered")
    _, ref = baselines_of(path)
    cpu = torch.device("cpu")
    result, _ = evaluate_rollouts(StandIn(ref), path, fns, 11, 0, "test", cpu, mirror=True)
    assert result["rescaled_training"] == ["train sim 2 (mirrored) x 0.8, frames 5-13.8"]
    kinds = {"source", "corrected", "nearest_training", "rescaled_training"}
    assert all(set(result[table]) == kinds for table in ("mean", "per_step", "per_simulation"))
    mean = {k: v["rel_l1"] for k, v in result["mean"].items()}
    assert mean["rescaled_training"] < mean["corrected"] < mean["nearest_training"]
    assert mean["corrected"] < mean["source"]
    assert result["verdict"].startswith(
        "The corrected solver beats the source, but not the rescaled nearest training "
        "trajectory in mse, rel_l1:"
    )
