"""Solver-in-the-Loop on a scene with a density (the buoyant plume): what the network
sees and corrects under ``method.density``, and that runs made before the option load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from coldflow.config import ConfigError, load_config
from coldflow.experiment import evaluate, load_run, train
from coldflow.losses import build_field_loss
from coldflow.methods.sol import SolverInTheLoop, net_channels
from coldflow.nets.sol import SolCorrectionNet
from coldflow.physics import FluidState, KarmanScene, PlumeScene
from coldflow.simulate.run import simulate
from coldflow.tasks.sol.config import SolRunConfig
from coldflow.tasks.sol.task import data_statistics

torch.set_num_threads(1)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "fluids"


def test_net_channels_per_mode():
    assert net_channels(1, "carry") == (3, 2)
    assert net_channels(1, "input") == (4, 2)
    assert net_channels(1, "correct") == (4, 3)
    assert net_channels(2) == (4, 2)
    with pytest.raises(ValueError, match="density must be one of"):
        net_channels(1, "predict")


def _plume_state(scene: PlumeScene, batch: int = 2) -> tuple[FluidState, torch.Tensor]:
    state = scene.initial_state({"buoyancy": torch.tensor([4.0, 8.0][:batch])}, list(range(batch)))
    params = torch.tensor([[4.0], [8.0]][:batch], dtype=torch.float64)
    for _ in range(3):  # some smoke and motion
        state = scene.step(state, {"buoyancy": params[:, 0]})
    return state, params


def _model(scene, density, zero_init=False, density_loss=None) -> SolverInTheLoop:
    torch.manual_seed(0)
    n_in, n_out = net_channels(1, density)
    net = SolCorrectionNet(n_in, n_out, width=4, blocks=1, kernel_size=3, zero_init=zero_init)
    if not zero_init:
        for p in net.parameters():
            p.data.mul_(3.0)  # a visible correction
    return SolverInTheLoop(
        net.double(), scene, build_field_loss("mse", grid="staggered"), 0.3, [2.0],
        density=density, density_std=0.5, density_loss=density_loss,
    )  # fmt: skip


@pytest.fixture(scope="module")
def plume():
    scene = PlumeScene((16, 16))
    return scene, *_plume_state(scene)


@pytest.mark.parametrize("density", ["carry", "input", "correct"])
def test_untrained_model_is_the_source_solver_in_velocity_and_density(plume, density):
    scene, state, params = plume
    model = _model(scene, density, zero_init=True)
    out = model.step(state, params)
    plain = scene.step(state, {"buoyancy": params[:, 0]})
    assert torch.equal(out.velocity, plain.velocity)
    assert torch.equal(out.density, plain.density)


def test_only_input_and_correct_see_the_density(plume):
    scene, state, params = plume
    after = scene.step(state, {"buoyancy": params[:, 0]})
    other = after.density * 0.3 + 0.1
    for density, sees in (("carry", False), ("input", True), ("correct", True)):
        model = _model(scene, density)
        a = model.correction(after.velocity, params, after.density)
        b = model.correction(after.velocity, params, other)
        assert torch.equal(a, b) != sees, density


def test_only_correct_changes_the_density_and_not_outside_the_fluid(plume):
    scene, state, params = plume
    plain = scene.step(state, {"buoyancy": params[:, 0]})
    assert torch.equal(_model(scene, "input").step(state, params).density, plain.density)
    model = _model(scene, "correct")
    out = model.step(state, params)
    _, dd = model.corrections(plain.velocity, params, plain.density)
    assert not torch.equal(out.density, plain.density)
    assert torch.allclose(out.density, plain.density + dd)
    # the plume has no obstacle: every cell may be corrected
    assert (dd != 0).float().mean() > 0.9


def test_density_loss_adds_the_density_distance_in_velocity_std_units(plume):
    scene, state, params = plume
    plain = scene.step(state, {"buoyancy": params[:, 0]})
    ref_v = plain.velocity + 0.01
    ref_d = plain.density + 0.02
    batch = {
        "downsampled_velocity": torch.stack((state.velocity, ref_v), dim=1),
        "downsampled_density": torch.stack((state.density, ref_d), dim=1),
        "params": params,
    }
    mse = build_field_loss("mse", grid="centered")
    with_d = _model(scene, "correct", density_loss=mse)
    without = _model(scene, "correct")
    out = with_d.step(state, params)
    scale = 0.3 / 0.5  # velocity std / density std
    expected_d = mse((out.density * scale)[:, None], (ref_d * scale)[:, None])
    assert torch.allclose(with_d(batch) - without(batch), expected_d.mean())
    # the density channel of the network's last layer gets a gradient through the loss
    with_d(batch).backward()
    grad = with_d.net.tail.weight.grad
    assert grad[2].abs().sum() > 0


def test_modes_need_a_density_and_its_std():
    scene = KarmanScene((16, 8))
    net = SolCorrectionNet(5, 2, width=4, blocks=1, kernel_size=3)
    with pytest.raises(ValueError, match="carries a density"):
        SolverInTheLoop(net, scene, None, 0.5, [2e5, 1.0], density="input", density_std=1.0)
    with pytest.raises(ValueError, match="density_std"):
        SolverInTheLoop(net, PlumeScene((16, 16)), None, 0.5, [2.0], density="input")


def _cfg(data: Path, density: str | None) -> SolRunConfig:
    cfg = load_config(CONFIGS / "plume_sol_cpu.yaml", SolRunConfig)
    method = {"kind": "sol", "m": 2, "loss": {"name": "mse"}}
    if density is not None:
        method["density"] = density
    return cfg.model_validate(
        cfg.model_dump()
        | {
            "data": {"path": str(data), "stride": 2},
            "model": {"kind": "sol_resnet_small", "width": 4, "blocks": 1, "kernel_size": 3},
            "method": method,
            "training": cfg.training.model_dump()
            | {"epochs": 1, "batch_size": 2, "progress": False, "device": "cpu"},
            "evaluation": {"steps": 3, "metrics": ["mse", "rel_l1"], "timing_steps": 1},
        }
    )


@pytest.mark.slow
def test_plume_run_that_corrects_density_trains_loads_and_evaluates(tmp_path):
    data = simulate(CONFIGS / "plume_tiny.yaml", tmp_path / "plume.h5", progress=False)
    stats = data_statistics(data)
    assert stats["density_std"] > 0
    cfg = _cfg(data, "correct")
    run = tmp_path / "run"
    train(cfg, run)
    loaded = load_run(run)
    assert loaded.model.density == "correct" and loaded.model.net.tail.out_channels == 3
    ev = evaluate(run)
    assert ev["steps"] == 3 and ev["mean"]["corrected"]["rel_l1"] > 0
    # the default stays out of the dump (and the hash): older plume runs keep theirs
    assert "density" not in _cfg(data, None).model_dump()["method"]


def test_karman_run_with_density_is_refused_with_the_key(tmp_path):
    from coldflow.tasks.sol.task import build_sol_model

    cfg = _cfg(tmp_path / "unused.h5", "input")
    with pytest.raises(ConfigError, match="method.density"):
        build_sol_model(cfg, KarmanScene((16, 8)), {"velocity_std": 1.0, "param_std": [1, 1]})
