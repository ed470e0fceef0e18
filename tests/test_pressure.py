"""The pressure solve: direct (factorised once) against CG, and exact adjoints.

The gradient of a Solver-in-the-Loop update runs a second linear solve, the adjoint of
the pressure projection, whose right-hand side is the loss gradient: for a mean-squared
loss about 1e-5, for a loss scaled by 1e-6 about 1e-11. An absolute tolerance stops that
solve before it starts; these tests check that the gradient matches central finite
differences at both scales, and that the old truncated adjoint does not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from coldflow.config.base import load_config
from coldflow.config.fluids import FluidDataConfig, PressureSolverConfig
from coldflow.errors import UserError
from coldflow.losses import build_field_loss
from coldflow.methods.sol import SolverInTheLoop
from coldflow.nets.sol import SolCorrectionNet
from coldflow.physics import FluidState, KarmanScene, PlumeScene, PressureSolver
from coldflow.physics.grid import centered_to_faces, faces_to_centered
from coldflow.physics.projection import DENSE_LIMIT, PressureMethodError, PressureSystem
from coldflow.simulate.specs import physics_hash, simulation_specs

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "fluids"
TRUNCATED = PressureSolver("CG", adjoint_abs_tol=1e-5)  # the adjoint coldflow first had
EXACT = {
    "CG": PressureSolver("CG"),
    "sparse-LU": PressureSolver("sparse-LU"),
    "dense-inverse": PressureSolver("dense-inverse"),
}


def karman(solver: PressureSolver, resolution=(32, 16), precision=64) -> KarmanScene:
    return KarmanScene(resolution, solver=solver, precision=precision)


def plume(solver: PressureSolver, resolution=(32, 32), precision=64) -> PlumeScene:
    return PlumeScene(resolution, solver=solver, precision=precision)


def spun_up(scene, params, steps=5):
    seeds = list(range(len(next(iter(params.values())))))
    state = scene.initial_state(params, seeds)
    for _ in range(steps):
        state = scene.step(state, params)
    return state.detach()


# ------------------------------------------------------------------ forward


@pytest.mark.parametrize("method", ["sparse-LU", "dense-inverse", "direct"])
@pytest.mark.parametrize("make", [karman, plume], ids=["karman", "plume"])
def test_direct_projection_equals_a_converged_cg(make, method):
    """Same masks, boundaries and pressure gradient as PhiFlow's make_incompressible."""
    tight = PressureSolver("CG", rel_tol=1e-12, abs_tol=1e-12, max_iterations=20_000)
    cg, direct = make(tight), make(PressureSolver(method))
    params = {"re": [2e5, 5e5]} if cg.name == "karman" else {"buoyancy": [0.5, 1.0]}
    state = spun_up(cg, params)
    a, b = cg.step(state, params), direct.step(state, params)
    scale = a.velocity.abs().max()
    assert (a.velocity - b.velocity).abs().max() / scale < 1e-9
    if a.density is not None:
        assert (a.density - b.density).abs().max() < 1e-9 * a.density.abs().max()
    # divergence-free to rounding (the step's own check would raise otherwise)
    assert direct.pressure_system().size == direct.resolution[0] * direct.resolution[1]


def test_closed_box_is_solved_as_singular_and_the_wake_not():
    assert plume(PressureSolver("direct")).pressure_system().singular
    assert not karman(PressureSolver("direct")).pressure_system().singular


def test_direct_solve_in_single_precision_passes_the_divergence_check():
    scene = karman(PressureSolver("direct"), (64, 32), precision=32)
    params = {"re": [1e5, 8e5]}
    state = spun_up(scene, params, steps=20)  # SolverError if |div v| exceeded the tolerance
    assert state.velocity.dtype == torch.float32 and torch.isfinite(state.velocity).all()


def test_dense_inverse_refuses_a_grid_too_large_for_it():
    scene = plume(PressureSolver("dense-inverse"), (136, 128))
    assert DENSE_LIMIT < 136 * 128
    with pytest.raises(PressureMethodError, match="set scene.solver.method to 'sparse-LU'"):
        scene.pressure_system()
    assert issubclass(PressureMethodError, UserError)  # one line at the CLI, no traceback
    with pytest.raises(ValueError, match="not a direct"):
        PressureSystem(scene.domain, [], "CG", torch.float64)


# ------------------------------------------------------------------ gradients


def directional(loss_fn, params: list[torch.Tensor], seed: int = 1, eps: float = 1e-5):
    """(autograd, central finite difference) of ``loss_fn`` along a random direction."""
    gen = torch.Generator().manual_seed(seed)
    direction = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    for p in params:
        p.grad = None
    loss_fn().backward()
    ad = sum(float((p.grad * d).sum()) for p, d in zip(params, direction, strict=True))
    with torch.no_grad():
        for p, d in zip(params, direction, strict=True):
            p.add_(eps * d)
        up = float(loss_fn())
        for p, d in zip(params, direction, strict=True):
            p.sub_(2 * eps * d)
        down = float(loss_fn())
        for p, d in zip(params, direction, strict=True):
            p.add_(eps * d)
    return ad, (up - down) / (2 * eps)


def sol_update_loss(solver: PressureSolver, scale: float, m: int = 3):
    """The loss of one Solver-in-the-Loop window of ``m`` steps (Kármán, float64) and the
    network whose parameters it is differentiated by."""
    scene = karman(solver)
    torch.manual_seed(0)
    net = SolCorrectionNet(in_channels=4, width=4, blocks=1, kernel_size=3, zero_init=False)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    loss = build_field_loss("mse", grid="staggered")
    model = SolverInTheLoop(net, scene, loss, 0.5, [2e5, 1.0]).double()
    params = {"re": [2e5, 6e5]}
    state = spun_up(scene, params, steps=3)
    gen = torch.Generator().manual_seed(2)
    targets = [state.velocity * (1 + 0.02 * k) for k in range(m + 1)]
    frames = torch.stack(targets, 1)
    frames = frames + 0.01 * torch.randn(frames.shape, generator=gen, dtype=frames.dtype)
    batch = {"downsampled_velocity": frames, "params": torch.tensor([[2e5, 1.0], [6e5, 1.0]])}
    return (lambda: scale * model(batch)), list(net.parameters())


@pytest.mark.parametrize("scale", [1.0, 1e-6])
@pytest.mark.parametrize("method", list(EXACT))
def test_sol_update_gradient_matches_finite_differences_at_any_loss_scale(method, scale):
    loss_fn, params = sol_update_loss(EXACT[method], scale)
    ad, fd = directional(loss_fn, params, eps=1e-7)  # small: the net's activations have kinks
    assert abs(fd) > 1e-3 * scale
    assert ad == pytest.approx(fd, rel=2e-5), (method, scale)


def test_truncated_adjoint_misses_the_finite_difference_gradient():
    """The absolute tolerance ends the adjoint CG after a few iterations: the gradient
    through the projection is off by percent (by orders when the loss is scaled down)."""
    for scale in (1.0, 1e-6):
        loss_fn, params = sol_update_loss(TRUNCATED, scale)
        ad, fd = directional(loss_fn, params, eps=1e-7)
        assert abs(ad - fd) > 1e-3 * abs(fd), scale


def plume_loss(solver: PressureSolver, scale: float, m: int = 3):
    """An m-step corrected plume rollout (closed box: the singular system) and its net."""
    scene = plume(solver)
    params = {"buoyancy": [0.5, 0.8]}
    p = scene.params_tensor(params, 2)
    state = spun_up(scene, params)
    torch.manual_seed(1)
    net = torch.nn.Conv2d(2, 2, 3, padding=1).double()
    with torch.no_grad():
        net.weight.mul_(0.1)
    gen = torch.Generator().manual_seed(3)
    noise = [0.01 * torch.randn(state.velocity.shape, generator=gen, dtype=torch.float64)]
    targets = [state.velocity + noise[0] * k for k in range(1, m + 1)]

    def loss_fn():
        s, total = state, 0.0
        for target in targets:
            s = scene.step(s, p)
            corrected = s.velocity + centered_to_faces(net(faces_to_centered(s.velocity)))
            s = FluidState(corrected * scene.free_faces(), s.density, s.pressure)
            total = total + ((s.velocity - target) ** 2).mean()
        return scale * total

    return loss_fn, list(net.parameters())


@pytest.mark.parametrize("scale", [1.0, 1e-6])
def test_closed_box_gradient_is_exact_and_the_truncated_one_is_not(scale):
    for method in ("sparse-LU", "CG"):
        ad, fd = directional(*plume_loss(EXACT[method], scale))
        assert ad == pytest.approx(fd, rel=1e-4), (method, scale)
    if scale < 1:  # at scale 1 this loss's gradient is large enough for the old abs_tol
        ad, fd = directional(*plume_loss(TRUNCATED, scale))
        assert abs(ad - fd) > 1e-2 * abs(fd)


# ------------------------------------------------------------------ settings


def test_adjoint_tolerance_and_direct_methods_keep_data_set_hashes():
    """A data set made with CG stays complete when the config asks for the direct solve
    (the same simulation to the CG tolerance), and adjoint_abs_tol never enters a hash."""
    cfg = load_config(CONFIGS / "karman_tiny.yaml", FluidDataConfig)
    spec = simulation_specs(cfg)[0]

    def with_solver(**kw):
        scene = cfg.scene.model_copy(update={"solver": PressureSolverConfig(**kw)})
        return physics_hash(cfg.model_copy(update={"scene": scene}), spec)

    cg = with_solver(method="CG")
    assert with_solver(method="direct") == cg == with_solver(method="sparse-LU")
    assert with_solver(method="CG", adjoint_abs_tol=1e-5) == cg
    assert with_solver(method="biCG-stab") != cg
    assert with_solver(method="direct", rel_tol=1e-6) != cg
    assert "adjoint_abs_tol" not in PressureSolverConfig().model_dump()
    assert PressureSolverConfig().method == "direct"


def test_a_sol_run_replaces_only_the_solver_keys_it_gives():
    from coldflow.config.base import dump_yaml
    from coldflow.tasks.sol.config import SolRunConfig
    from coldflow.tasks.sol.task import source_scene

    data = load_config(CONFIGS / "karman_tiny.yaml", FluidDataConfig, ["scene.solver.rel_tol=1e-6"])
    stats = {"data_config": dump_yaml(data)}
    base = {"data": {"path": "unused.h5"}, "model": {"kind": "sol_resnet_small"}}
    plain = SolRunConfig.model_validate(base)
    assert "solver" not in plain.model_dump()["method"]  # runs made before keep their hash
    assert source_scene(plain, stats).solver.method == "direct"
    cfg = SolRunConfig.model_validate({**base, "method": {"solver": {"method": "CG"}}})
    solver = source_scene(cfg, stats).solver
    assert (solver.method, solver.rel_tol, solver.adjoint_abs_tol) == ("CG", 1e-6, 0.0)
