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


def _sol_run(tmp: Path, data: Path) -> Path:
    """A one-epoch Solver-in-the-Loop run on ``data``."""
    from coldflow.experiment import train

    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "sol.yaml"
    cfg.write_text(
        f"name: sol\ndata: {{path: {data}}}\n"
        "model: {kind: sol_resnet_small, width: 4, blocks: 1, kernel_size: 3}\n"
        "method: {kind: sol, m: 2}\n"
        "training: {epochs: 1, batch_size: 4, progress: false, device: cpu}\n"
    )
    return train(cfg, tmp / "sol").path


def test_sol_input_pairs_follow_the_corrected_solver(karman_h5, tmp_path, monkeypatch):
    """Known answers: a SOL run whose correction is zero gives exactly the source pairs;
    a trained one gives pairs whose k-th state is its own corrected rollout."""
    from coldflow.tasks.handle import load_run
    from coldflow.tasks.recon.source import sol_stepper

    cfg = SourceInputConfig(steps=(1, 3), starts=2, per_start=2)
    source = source_training_frames(karman_h5, "train", ("velocity",), cfg, seed=3)
    run = _sol_run(tmp_path, karman_h5)

    def zeroed(run_dir, device):  # the run with its network's weights zeroed: no correction
        loaded = load_run(run_dir, device)
        for p in loaded.model.net.parameters():
            p.data.zero_()
        return loaded

    monkeypatch.setattr("coldflow.tasks.handle.load_run", zeroed)
    zero = sol_stepper(run, karman_h5)
    monkeypatch.undo()
    same = source_training_frames(karman_h5, "train", ("velocity",), cfg, seed=3, stepper=zero)
    assert torch.equal(same.k, source.k) and torch.equal(same.frame, source.frame)
    torch.testing.assert_close(same.tensors["low"], source.tensors["low"], rtol=0, atol=1e-6)
    assert torch.equal(same.tensors["high"], source.tensors["high"])

    sol = source_training_frames(
        karman_h5, "train", ("velocity",), cfg, seed=3, stepper=sol_stepper(run, karman_h5)
    )
    assert float((sol.tensors["low"] - source.tensors["low"]).abs().max()) > 1e-6
    model = load_run(run, device="cpu").model
    dcfg = data_config(karman_h5)
    scene = build_scene(dcfg, dcfg.low_resolution)
    with FieldData(karman_h5) as data:
        sim = data.simulations("train")[int(sol.sim[0])]
        start = int(sol.frame[0] - sol.k[0])
        v = torch.from_numpy(data.read(sim, "downsampled", "velocity", [start]))
        params = torch.tensor([[float(sim.params[n]) for n in scene.param_names]])
        state = FluidState(v.to(scene.dtype))
        with torch.no_grad():
            for _ in range(int(sol.k[0])):
                state = model.step(state, params.to(scene.dtype))
    torch.testing.assert_close(
        sol.tensors["low"][0], faces_to_centered(state.velocity.float())[0], rtol=0, atol=1e-6
    )


def test_sol_input_is_checked(karman_h5, tmp_path):
    from coldflow.config import ConfigError
    from coldflow.tasks.recon.config import SuperResConfig
    from coldflow.tasks.recon.source import sol_stepper

    with pytest.raises(ValueError, match="method.sol_run"):
        SuperResConfig(input="sol")
    with pytest.raises(ValueError, match="method.input=sol"):
        SuperResConfig(sol_run="runs/x")
    with pytest.raises(ConfigError, match="no trained run"):
        sol_stepper(tmp_path / "missing", karman_h5)


def test_an_sr_run_trains_on_a_sol_runs_corrected_states(karman_h5, tmp_path):
    from coldflow.experiment import train
    from coldflow.tasks import task_for
    from coldflow.tasks.handle import open_run

    sol = _sol_run(tmp_path / "sol", karman_h5)
    cfg = tmp_path / "sr.yaml"
    cfg.write_text(
        f"name: sr\ndata: {{path: {karman_h5}, density: false}}\n"
        "model: {width: 4, blocks: 1}\n"
        f"method: {{kind: superres, input: sol, sol_run: {sol}, "
        "source: {steps: [1, 3], starts: 2, per_start: 1}}\n"
        "training: {epochs: 1, batch_size: 4, progress: false, device: cpu}\n"
    )
    handle = open_run(train(cfg, tmp_path / "sr").path)
    assert handle.cfg.method.input == "sol" and handle.cfg.method.sol_run == str(sol)
    assert "on SOL output" in task_for(handle.cfg).describe(handle.cfg)
    assert handle.run.checkpoints()
