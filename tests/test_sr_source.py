"""Super-resolution on solver output: the low-resolution solver's short runs from
downsampled reference frames, as training pairs and as an evaluation input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from coldflow.data.frames import read_centered
from coldflow.data.store import FieldData
from coldflow.methods.superres import upsample
from coldflow.physics import FluidState, build_scene, faces_to_centered
from coldflow.simulate.run import simulate
from coldflow.tasks.fluid import data_config, rollout_starts, source_rollouts
from coldflow.tasks.recon.config import SourceInputConfig
from coldflow.tasks.recon.source import solver_output_scores, source_training_frames

torch.set_num_threads(1)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "fluids"


@pytest.fixture(scope="module")
def karman_h5(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("karman_src") / "karman.h5"
    return simulate(CONFIGS / "karman_tiny.yaml", out, progress=False, overrides=["frames=16"])


def test_rollout_starts_are_spread_distinct_and_inside():
    assert rollout_starts(4, 10, 3) == [4, 7, 10]
    assert rollout_starts(4, 5, 8) == [4, 5]
    assert rollout_starts(4, 4, 1) == [4]
    assert rollout_starts(5, 4, 3) == []


def test_rollouts_start_on_the_downsampled_reference_and_follow_the_solver(karman_h5):
    rolls = source_rollouts(karman_h5, "test", steps=3, starts=2)
    assert rolls.low.shape == (2, 4, 2, 16, 8) and rolls.high.shape == (2, 4, 2, 32, 16)
    cfg = data_config(karman_h5)
    scene = build_scene(cfg, cfg.low_resolution)
    with FieldData(karman_h5) as data:
        sim = data.simulations("test")[0]
        for j, t in enumerate(rolls.start.tolist()):
            v = torch.from_numpy(data.read(sim, "downsampled", "velocity", [t]))
            # step 0 is the downsampled reference frame itself
            assert torch.equal(rolls.low[j, 0], faces_to_centered(v)[0])
            # step 2 is two solver steps from it
            params = scene.params_tensor({k: float(sim.params[k]) for k in scene.param_names}, 1)
            state = FluidState(v.to(scene.dtype))
            for _ in range(2):
                state = scene.step(state, params)
            assert torch.allclose(rolls.low[j, 2], faces_to_centered(state.velocity.float())[0])
            ref = read_centered(data, sim, "reference", [t + 2])
            assert torch.equal(rolls.high[j, 2], torch.from_numpy(ref[0]))
    # the solver drifts from the reference: later states are further from it
    up = [upsample(rolls.low[:, k], 2, "bicubic") for k in range(4)]
    err = [float((u - rolls.high[:, k]).abs().mean()) for k, u in enumerate(up)]
    assert err[3] > err[0]


def test_training_pairs_are_seeded_in_range_and_at_their_frames(karman_h5):
    cfg = SourceInputConfig(steps=(1, 4), starts=3, per_start=2)
    a = source_training_frames(karman_h5, "train", ("velocity",), cfg, seed=5)
    b = source_training_frames(karman_h5, "train", ("velocity",), cfg, seed=5)
    c = source_training_frames(karman_h5, "train", ("velocity",), cfg, seed=6)
    assert torch.equal(a.tensors["low"], b.tensors["low"]) and torch.equal(a.k, b.k)
    assert not torch.equal(a.k, c.k)
    assert len(a) == 2 * 3 * 2 and a.shape == (2, 32, 16) and a.factor == 2
    assert int(a.k.min()) >= 1 and int(a.k.max()) <= 4
    pairs = a.k.reshape(-1, 2)
    assert bool((pairs[:, 0] < pairs[:, 1]).all())  # distinct steps per start
    with FieldData(karman_h5) as data:
        for i in range(len(a)):
            ref = read_centered(data, int(a.sim[i]), "reference", [int(a.frame[i])])
            assert torch.equal(a.tensors["high"][i], torch.from_numpy(ref[0]))
    assert a.channel_std().shape == (2,)


def test_source_config_is_checked():
    with pytest.raises(ValueError, match="per_start"):
        SourceInputConfig(steps=(1, 2), per_start=3)
    with pytest.raises(ValueError, match="k_min"):
        SourceInputConfig(steps=(5, 2))


def test_solver_output_scores_per_step_equal_a_direct_computation(karman_h5):
    def score(a, b):
        return {"mae": (a - b).abs().flatten(1).mean(1)}

    ups = {"bicubic": lambda x: upsample(x, 2, "bicubic")}
    out = solver_output_scores(ups, score, karman_h5, "test", ("velocity",), steps=3, starts=2)
    rolls = source_rollouts(karman_h5, "test", steps=3, starts=2)
    for k in (1, 3):
        direct = (upsample(rolls.low[:, k], 2, "bicubic") - rolls.high[:, k]).abs().mean()
        assert np.isclose(out["per_step"]["bicubic"]["mae"][k - 1], float(direct), rtol=1e-5)
    assert len(out["per_step"]["bicubic"]["mae"]) == 3 and out["simulations"] == [2]
    assert np.isclose(out["mean"]["bicubic"]["mae"], np.mean(out["per_step"]["bicubic"]["mae"]))
