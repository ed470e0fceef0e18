"""Solver-in-the-Loop: the correction network, the corrected step, gradients through the
solver, training and resume through the trainer, evaluation and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from coldflow.config import load_config
from coldflow.errors import UserError
from coldflow.experiment import evaluate, load_run, report, train
from coldflow.losses import build_field_loss
from coldflow.methods import build_method
from coldflow.methods.sol import SolverInTheLoop
from coldflow.nets import build_net
from coldflow.nets.sol import SolCorrectionNet, sol_resnet, sol_resnet_small
from coldflow.physics import KarmanScene, PressureSolver
from coldflow.simulate.run import simulate
from coldflow.tasks.sol.config import SolRunConfig
from coldflow.tasks.sol.task import data_statistics

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "fluids"


@pytest.fixture(scope="module")
def karman_h5(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("karman_sol") / "karman.h5"
    assert simulate(CONFIGS / "karman_tiny.yaml", out, progress=False) == out
    return out


def tiny_cfg(data: Path, **training) -> SolRunConfig:
    cfg = load_config(CONFIGS / "karman_sol_cpu.yaml", SolRunConfig)
    return cfg.model_validate(
        cfg.model_dump()
        | {
            "data": {"path": str(data), "stride": 1},
            "model": {"kind": "sol_resnet_small", "width": 4, "blocks": 1, "kernel_size": 3},
            "method": {"kind": "sol", "m": 2, "loss": {"name": "mse"}},
            "training": cfg.training.model_dump()
            | {"epochs": 2, "batch_size": 4, "progress": False, "device": "cpu"}
            | training,
            "evaluation": {"steps": 4, "metrics": ["mse", "rel_l1"], "timing_steps": 1},
        }
    )


# ------------------------------------------------------------------------ network


def test_paper_network_shape_and_parameter_count():
    net = sol_resnet()
    conv = lambda i, o, k=5: i * o * k * k + o  # noqa: E731
    expected = conv(3, 32) + 10 * conv(32, 32) + conv(32, 2)  # head, 5 blocks x 2, tail
    assert sum(p.numel() for p in net.parameters()) == expected
    x = torch.randn(2, 3, 17, 9)
    assert net(x).shape == (2, 2, 17, 9)
    assert torch.count_nonzero(net(x)) == 0  # zero-initialised tail: no correction yet
    small = sol_resnet_small()
    assert sum(p.numel() for p in small.parameters()) < expected / 5
    with pytest.raises(ValueError, match="odd"):
        SolCorrectionNet(kernel_size=4)


# ----------------------------------------------------------------- corrected step


def tiny_scene(precision: int = 32, tol: float = 1e-5, resolution=(16, 8)) -> KarmanScene:
    return KarmanScene(
        resolution=resolution,
        precision=precision,
        jit=False,
        solver=PressureSolver(rel_tol=tol, abs_tol=tol, max_iterations=5000),
    )


def random_net(dtype=torch.float32) -> SolCorrectionNet:
    torch.manual_seed(0)
    net = SolCorrectionNet(in_channels=4, width=4, blocks=1, kernel_size=3, zero_init=False)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return net.to(dtype)


def test_correction_leaves_fixed_and_obstacle_faces_alone():
    scene = tiny_scene(resolution=(32, 16))
    model = SolverInTheLoop(random_net(), scene, None, 0.5, [2e5, 1.0])
    state = scene.initial_state({"re": [1e5, 5e5]}, [0, 1])
    params = torch.tensor([[1e5, 1.0], [5e5, 1.0]])
    corr = model.correction(state.velocity, params)
    fixed = 1 - scene.free_faces()
    assert torch.count_nonzero(corr * fixed) == 0
    assert torch.count_nonzero(corr) > 0.5 * corr[0].numel()  # it does correct the fluid
    # faces between two cells fully inside the obstacle keep the obstacle's velocity (0)
    inside = scene.obstacle_mask() >= 0.999
    assert inside.any()
    both = inside[:-1] & inside[1:]  # y faces 1..H-1 between two obstacle cells
    assert torch.count_nonzero(corr[:, 0, 1:-1, :-1][:, both]) == 0
    after = model.step(state, params)
    plain = scene.step(state, {"re": params[:, 0], "inflow_speed": params[:, 1]})
    assert torch.equal((after.velocity - plain.velocity) * fixed, torch.zeros_like(corr))


def test_untrained_model_is_the_source_solver():
    scene = tiny_scene()
    model = SolverInTheLoop(sol_resnet_small(in_channels=4), scene, None, 0.5, [2e5, 1.0])
    state = scene.initial_state({"re": [3e5]}, [4])
    params = torch.tensor([[3e5, 1.0]])
    a = model.rollout(state.velocity, params, 3, correct=True).velocity
    b = model.rollout(state.velocity, params, 3, correct=False).velocity
    assert a.shape == (4, 1, 2, 17, 9)
    assert torch.equal(a, b)


def test_sol_is_built_through_the_registries_like_every_method():
    scene = tiny_scene()
    cfg = tiny_cfg(Path("unused.h5"))
    net = build_net(cfg.model, in_channels=4, out_channels=2, image_shape=(16, 8))
    assert isinstance(net, SolCorrectionNet) and net.head[0].in_channels == 4
    loss = build_field_loss("mse", grid="staggered")
    model = build_method(
        cfg.method, net, scene=scene, loss=loss, velocity_std=0.5, param_std=[2e5, 1.0], black=0.0
    )
    assert isinstance(model, SolverInTheLoop) and model.shared.loss is loss
    assert float(model.velocity_std) == 0.5 and model.param_std.tolist() == [2e5, 1.0]
    assert "loss" not in str(list(model.state_dict()))  # the loss is not saved with the model
    with pytest.raises(TypeError, match="scene"):
        build_method(cfg.method, net, loss=loss)


def test_gradient_through_two_solver_steps_matches_finite_differences():
    """d(loss)/d(parameter) through two (step -> correction) steps, float64, tight solve."""
    scene = tiny_scene(precision=64, tol=1e-9)
    net = random_net(torch.float64)
    for p in net.parameters():
        p.data.mul_(0.3)
    loss = build_field_loss("mse", grid="staggered")
    model = SolverInTheLoop(net, scene, loss, 0.5, [2e5, 1.0]).double()
    start = scene.initial_state({"re": [2e5, 6e5]}, [0, 1])
    warm = scene.step(scene.step(start, {"re": [2e5, 6e5]}), {"re": [2e5, 6e5]})
    frames = torch.stack([warm.velocity, warm.velocity * 1.05, warm.velocity * 0.95], 1)
    batch = {
        "downsampled_velocity": frames.detach(),
        "params": torch.tensor([[2e5, 1.0], [6e5, 1.0]]),
    }
    value = model(batch)
    value.backward()
    checked = 0
    for name, p in (("head", net.head[0].weight), ("tail", net.tail.weight)):
        flat = p.data.view(-1)
        for i in (0, flat.numel() // 2):
            old = flat[i].item()
            eps = 1e-4
            with torch.no_grad():
                flat[i] = old + eps
                up = model(batch).item()
                flat[i] = old - eps
                down = model(batch).item()
                flat[i] = old
            fd = (up - down) / (2 * eps)
            ad = p.grad.view(-1)[i].item()
            assert abs(ad) > 1e-8, name
            assert ad == pytest.approx(fd, rel=1e-3, abs=1e-8), (name, i)
            checked += 1
    assert checked == 4


# --------------------------------------------------------------- train / evaluate


def test_statistics_match_the_data(karman_h5):
    from coldflow.data.store import FieldData

    stats = data_statistics(karman_h5)
    assert stats["param_names"] == ["re", "inflow_speed"]
    assert stats["param_std"][0] == pytest.approx(torch.tensor([1e5, 8e5]).std(False).item())
    with FieldData(karman_h5) as data:
        v = torch.cat(
            [
                torch.from_numpy(data.read(s, "downsampled", "velocity", slice(data.warmup, None)))
                for s in data.simulations("train")
            ]
        )
    # every evolved face is inside the statistic; the result lies between these bounds
    assert 0.5 * v.std().item() < stats["velocity_std"] < 2.0 * v.abs().max().item()


def test_train_resume_equals_uninterrupted_and_evaluate(karman_h5, tmp_path):
    full = train(tiny_cfg(karman_h5), tmp_path / "full")
    half = train(tiny_cfg(karman_h5, epochs=1), tmp_path / "half")
    train(tiny_cfg(karman_h5), tmp_path / "half", resume=True)
    a, _ = full.load_checkpoint()
    b, _ = half.load_checkpoint()
    for k in a:
        if k.startswith("model."):
            assert torch.equal(a[k], b[k]), k
    assert json.loads((tmp_path / "full" / "data_stats.json").read_text())["velocity_std"] > 0
    metrics = full.read_metrics()
    assert [m["epoch"] for m in metrics if m["name"] == "loss"] == [1, 2]
    loaded = load_run(full.path, device="cpu")
    assert loaded.model.velocity_std.item() == pytest.approx(
        json.loads((full.path / "data_stats.json").read_text())["velocity_std"]
    )
    result = evaluate(full.path, device="cpu", data=karman_h5, steps=4)
    assert result["steps"] == 4 and len(result["per_step"]["corrected"]["rel_l1"]) == 4
    # the nearest training trajectory is scored beside source and corrected
    assert set(result["mean"]) == {"source", "corrected", "nearest_training"}
    assert result["verdict"]
    assert set(result["seconds_per_step"]) == {"source", "corrected", "reference_high"}
    # the three solvers are timed in the same interleaved rounds: median inside its spread
    assert result["timing"]["repeats"] == 3 and result["timing"]["steps"] >= 1
    for kind, (low, high) in result["seconds_per_step_range"].items():
        assert 0 < low <= result["seconds_per_step"][kind] <= high, kind
    from coldflow.tasks.sol.figures import sol_table

    table = sol_table([result], ["full"])
    per_sim = result["seconds_per_step"]["reference_high"] / result["batch"]
    assert f"| {per_sim:.4g} (" in table.split("| reference (high-res solver) |")[1]
    assert (full.path / "evaluation.json").is_file()
    # rollouts of every test simulation are kept, the first also as an animation
    for sim in result["simulations"]:
        assert (full.path / "samples" / f"rollout_sim{sim['index']:04d}.safetensors").is_file()
    assert (full.path / "samples" / "rollout.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    # the source rollout equals the stored source trajectory (same solver, same start)
    from coldflow.data.store import FieldData

    with FieldData(karman_h5) as data:
        sim = data.simulations("test")[0]
        if data.source_start == result["start"]:
            stored = torch.from_numpy(data.read(sim, "source", "velocity", slice(None)))
            from coldflow.runs import load_tensors

            roll = load_tensors(full.path / "samples" / "rollout.safetensors")
            n = min(4, stored.shape[0] - 1 - result["start"])
            s0 = result["start"]
            assert torch.allclose(roll["source"][: n + 1], stored[s0 : s0 + n + 1], atol=1e-4)


def test_report_of_several_runs(karman_h5, tmp_path):
    runs = []
    for name, loss in (("a", "mse"), ("b", "mse"), ("c", "mae")):
        cfg = tiny_cfg(karman_h5, epochs=1)
        cfg = cfg.model_validate(
            cfg.model_dump() | {"name": name, "method": {"m": 2, "loss": {"name": loss}}}
        )
        run = train(cfg, tmp_path / name)
        evaluate(run.path, device="cpu", data=karman_h5, steps=3)
        runs.append(run.path)
    pages = report(runs, tmp_path / "report")
    index = pages[-1].read_text()
    # two runs with the same loss keep their own labels (their directory names)
    assert "SOL a (mse" in index and "SOL b (mse" in index and "SOL c (mae" in index
    assert "nearest training trajectory" in index and "source (no correction)" in index
    for name in ("sol_error_vs_step.png", "sol_snapshots.png"):
        assert (tmp_path / "report" / "figures" / name).stat().st_size > 1000
    for run in runs:  # every run has its own page with rollout figures and test flows
        assert (run / "report.html").is_file() and (run / "figures" / "snapshots.png").is_file()
        page = (run / "report.html").read_text()
        assert "Per test simulation" in page and "rel_l1 per test simulation" in page
    # runs evaluated differently are not put in one table
    evaluate(runs[2], device="cpu", data=karman_h5, steps=2)
    with pytest.raises(UserError, match="evaluated differently"):
        report(runs, tmp_path / "report2")


def test_evaluate_refuses_other_scene_and_needs_no_training_file(karman_h5, tmp_path):
    import shutil

    from coldflow.config import ConfigError

    copy = tmp_path / "train.h5"
    shutil.copy(karman_h5, copy)
    run = train(tiny_cfg(copy, epochs=1), tmp_path / "run")
    copy.unlink()  # the run keeps what it needs: evaluation on another file still works
    result = evaluate(run.path, device="cpu", data=karman_h5, steps=2)
    assert result["steps"] == 2
    other = tmp_path / "other.h5"
    simulate(CONFIGS / "karman_tiny.yaml", other, overrides=["resolution=[64, 32]"], progress=False)
    with pytest.raises(ConfigError, match=r"resolution \(high\): trained on \(32, 16\)"):
        evaluate(run.path, device="cpu", data=other, steps=2)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*_sol*.yaml")), ids=lambda p: p.stem)
def test_sol_configs_validate(path):
    cfg = load_config(path, SolRunConfig)
    assert cfg.method.kind == "sol"
    named = set(path.stem.split("_")) & {"mse", "mae", "lsim", "vgg", "lpips"}
    assert cfg.method.loss.name in (named or {"mse"})  # base configs and the book's: mse
    assert cfg.training.grad_clip is not None or path.stem.endswith("_book")  # as the book


def test_nearest_trajectory_picks_the_closest_simulation_and_its_mirror():
    from coldflow.tasks.sol.evaluation import mirror_staggered, nearest_trajectory

    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(5, 2, 9, 5, generator=gen)
    ref[:, 0, :, -1] = 0  # the padding of the staggered layout
    ref[:, 1, -1, :] = 0
    close = ref + 0.01 * torch.randn(ref.shape, generator=gen)
    far = ref + 1.0
    label, traj = nearest_trajectory(ref, {"far": far, "close": close})
    assert label == "close" and torch.equal(traj, close)
    # a mirrored training flow is found through its mirror image, and mirroring twice
    # gives the flow back (the x component changes sign, the padding stays zero)
    mirrored = mirror_staggered(ref)
    assert torch.equal(mirror_staggered(mirrored), ref)
    assert torch.equal(mirrored[:, 1, :-1, :], -ref[:, 1, :-1, :].flip(-1))
    candidates = {"other": far, "mirror of ref": mirror_staggered(mirrored)}
    assert nearest_trajectory(ref, candidates)[0] == "mirror of ref"
    # a longer training flow that passes through the test flow at another phase is found
    # at that phase: frames 13..17 of a candidate stored from frame 10
    long = torch.cat([far[:3], ref + 0.001, far, far], 0)
    label, traj = nearest_trajectory(ref, {"close": close, "long": (10, long)})
    assert label == "long, frames 13-17" and torch.equal(traj, ref + 0.001)
    with pytest.raises(ValueError, match="fewer than 5"):
        nearest_trajectory(ref, {"short": ref[:3]})


def test_per_simulation_table_counts_wins_inside_and_outside_the_training_range():
    from coldflow.tasks.sol.figures import per_simulation_table

    def ev(corrected):
        return {
            "simulations": [
                {"index": 6, "seed": 100, "re": 3e5, "inflow_speed": 0.95},
                {"index": 7, "seed": 101, "re": 2e5, "inflow_speed": 1.4},
                {"index": 8, "seed": 102, "re": 9e5, "inflow_speed": 0.7},
            ],
            "training_range": {"re": [1e5, 8e5], "inflow_speed": [0.8, 1.2]},
            "nearest_training": ["train sim 2", "train sim 5", "train sim 0 (mirrored)"],
            "per_simulation": {
                "source": {"rel_l1": [0.05, 0.08, 0.06]},
                "nearest_training": {"rel_l1": [0.03, 0.02, 0.04]},
                "corrected": {"rel_l1": corrected},
            },
        }

    text = per_simulation_table([ev([0.01, 0.03, 0.05]), ev([0.04, 0.01, 0.02])], ["a", "b"])
    assert "inflow_speed 1.4 > 1.2" in text
    assert "re 900000 > 800000; inflow_speed 0.7 < 0.8" in text
    assert "| 6 (re 300000, inflow_speed 0.95) | inside | train sim 2 |" in text
    # a wins inside (0.01 < 0.03) and on neither outside flow (0.03 > 0.02, 0.05 > 0.04)
    assert (
        "a: beats the source and the nearest training trajectory in rel_l1 on 1 of 1 "
        "inside the training range and 0 of 2 outside the training range." in text
    )
    assert (
        "b: beats the source and the nearest training trajectory in rel_l1 on 0 of 1 "
        "inside the training range and 2 of 2 outside the training range." in text
    )


def test_verdict_on_the_means_names_the_simulations_where_it_fails():
    from coldflow.tasks.sol.evaluation import verdict

    per_sim = {
        "source": {"mse": [2.0, 2.0, 1.0], "rel_l1": [0.2, 0.2, 0.1]},
        "nearest_training": {"mse": [3.0, 3.0, 3.0], "rel_l1": [0.3, 0.3, 0.3]},
        "corrected": {"mse": [0.5, 0.5, 1.5], "rel_l1": [0.05, 0.05, 0.12]},
    }
    mean = {k: {m: sum(v) / 3 for m, v in d.items()} for k, d in per_sim.items()}
    names = ["simulation 6", "simulation 7", "simulation 8"]
    text = verdict(mean, ["mse", "rel_l1"], per_sim, names)
    assert "generalises on average, but not on 1 of the 3 test simulations (simulation 8)" in text
    assert verdict(mean, ["mse", "rel_l1"]).endswith("generalises to these test simulations.")
    per_sim["corrected"]["mse"][2] = per_sim["corrected"]["rel_l1"][2] = 0.01
    mean = {k: {m: sum(v) / 3 for m, v in d.items()} for k, d in per_sim.items()}
    assert verdict(mean, ["mse", "rel_l1"], per_sim, names).endswith("these test simulations.")


def test_per_simulation_table_without_a_recorded_range_does_not_claim_inside():
    from coldflow.tasks.sol.figures import per_simulation_table

    ev = {
        "simulations": [{"index": 3, "seed": 1, "re": 3e5}],
        "nearest_training": ["train sim 0"],
        "per_simulation": {
            "source": {"rel_l1": [0.05]},
            "nearest_training": {"rel_l1": [0.04]},
            "corrected": {"rel_l1": [0.01]},
        },
    }
    text = per_simulation_table([ev], ["a"])
    assert "| 3 (re 300000) | unknown | train sim 0 |" in text
    assert "on 1 of 1 (range not recorded)." in text and "inside" not in text
