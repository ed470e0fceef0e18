"""Physics of the fluid scenes on small grids: layout, downsampling, projection, wake, plume,
and the PhiFlow traps the solver step guards against."""

from __future__ import annotations

import pytest
import torch

from coldflow.physics import (
    SCENES,
    FluidState,
    KarmanScene,
    PlumeScene,
    PressureSolver,
    SolverError,
    centered_to_faces,
    centered_to_tensor,
    dominant_frequency,
    downsample_centered,
    downsample_velocity,
    faces_to_centered,
    fixed_face_values,
    free_face_mask,
    probe_series,
    staggered_to_tensor,
    strouhal_number,
    tensor_to_centered,
    tensor_to_staggered,
)
from coldflow.physics.grid import Domain

torch.set_num_threads(1)

KARMAN_DOMAIN = Domain((200.0, 100.0), (16, 8), ((1.0, None), (None, None)))
CLOSED_DOMAIN = Domain((200.0, 200.0), (8, 8), ((0.0, 0.0), (0.0, 0.0)))
OPEN_DOMAIN = Domain((10.0, 20.0), (6, 12), ((None, None), (None, None)))
DOMAINS = [KARMAN_DOMAIN, CLOSED_DOMAIN, OPEN_DOMAIN]


def divergence(velocity: torch.Tensor, spacing: tuple[float, float]) -> torch.Tensor:
    """Cell divergence of a padded-layout velocity, computed independently of PhiFlow."""
    H, W = velocity.shape[-2] - 1, velocity.shape[-1] - 1
    dy, dx = spacing
    vy, vx = velocity[..., 0, :, :W], velocity[..., 1, :H, :]
    return (vy[..., 1:, :] - vy[..., :-1, :]) / dy + (vx[..., :, 1:] - vx[..., :, :-1]) / dx


def random_velocity(domain: Domain, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn((batch, *domain.velocity_shape), generator=g, dtype=torch.float64)
    return (
        v * free_face_mask(domain, torch.float64) + fixed_face_values(domain, torch.float64)
    ).float()


# ------------------------------------------------------------------ layout


@pytest.mark.parametrize("domain", DOMAINS, ids=["inflow", "closed", "open"])
def test_staggered_tensor_round_trip_is_exact(domain):
    v = random_velocity(domain)
    grid = tensor_to_staggered(v, domain)
    back = staggered_to_tensor(grid, domain)
    assert torch.equal(back, v)
    # and from PhiFlow's side: values survive tensor -> grid unchanged
    again = tensor_to_staggered(back, domain)
    for c in ("y", "x"):
        a = grid.vector[c].values.native(["b", "y", "x"])
        b = again.vector[c].values.native(["b", "y", "x"])
        assert torch.equal(a, b)


@pytest.mark.parametrize("domain", DOMAINS, ids=["inflow", "closed", "open"])
def test_free_faces_are_exactly_what_phiflow_stores(domain):
    grid = tensor_to_staggered(random_velocity(domain, batch=1), domain)
    stored = sum(grid.vector[c].values.shape.volume for c in ("y", "x"))
    assert int(free_face_mask(domain).sum()) == stored


def test_padded_layout_places_components_on_their_faces():
    # a field with v_y = y and v_x = x must read back at the documented face positions
    from phi.field import StaggeredGrid
    from phiml import math

    d = OPEN_DOMAIN
    grid = StaggeredGrid(
        lambda pos: math.stack(
            {"y": pos.vector["y"], "x": pos.vector["x"]}, math.channel("vector")
        ),
        d.velocity_extrapolation(),
        **d.phi_kwargs(),
    )
    v = staggered_to_tensor(grid, d)[0]
    H, W = d.resolution
    dy, dx = d.spacing
    rows = torch.arange(H + 1, dtype=v.dtype) * dy
    cols = torch.arange(W + 1, dtype=v.dtype) * dx
    torch.testing.assert_close(v[0, :, :W], rows[:, None].expand(H + 1, W))
    torch.testing.assert_close(v[1, :H, :], cols[None, :].expand(H, W + 1))
    assert torch.all(v[0, :, W] == 0) and torch.all(v[1, H, :] == 0)  # padding


def test_centered_round_trip_is_exact():
    rho = torch.rand(3, *KARMAN_DOMAIN.resolution)
    assert torch.equal(centered_to_tensor(tensor_to_centered(rho, KARMAN_DOMAIN)), rho)


def test_centered_faces_round_trip_and_boundaries():
    B, H, W = 2, 6, 5
    y = torch.arange(H, dtype=torch.float64)[:, None].expand(H, W)
    c = torch.stack((y, 3 + 0 * y))[None].expand(B, 2, H, W)
    faces = centered_to_faces(c)
    assert faces.shape == (B, 2, H + 1, W + 1)
    # interior y faces lie half-way between cell centres: y = j - 0.5 for a linear field
    assert torch.allclose(faces[0, 0, 1:H, 0], torch.arange(1, H, dtype=torch.float64) - 0.5)
    assert faces[0, 0, 0, 0] == 0 and faces[0, 0, H, 0] == H - 1  # boundary: one cell
    assert torch.all(faces[:, 0, :, W] == 0) and torch.all(faces[:, 1, H, :] == 0)  # padding
    assert torch.allclose(faces[:, 1, :H, :], torch.full((B, H, W + 1), 3.0, dtype=c.dtype))
    back = faces_to_centered(faces)
    assert torch.allclose(back[:, 0, 1:-1], c[:, 0, 1:-1])  # linear: exact inside
    assert torch.allclose(back[:, 1], c[:, 1])


def test_faces_to_centered_samples_a_linear_field_at_the_centres():
    d = OPEN_DOMAIN
    H, W = d.resolution
    dy, dx = d.spacing
    v = _linear_velocity(d)
    v[0, :, W] = 123.0  # padding is never read
    v[1, H, :] = -45.0
    got = faces_to_centered(v[None, None])  # any leading dimensions
    assert got.shape == (1, 1, 2, H, W)
    yc = (torch.arange(H, dtype=torch.float64)[:, None] + 0.5) * dy
    xc = (torch.arange(W, dtype=torch.float64)[None, :] + 0.5) * dx
    torch.testing.assert_close(got[0, 0, 0], (0.3 + 0.02 * yc - 0.05 * xc).expand(H, W))
    torch.testing.assert_close(got[0, 0, 1], (-1.5 + 0.07 * yc + 0.01 * xc).expand(H, W))
    with pytest.raises(ValueError, match="2, H"):
        faces_to_centered(torch.zeros(3, 7, 7))


# ------------------------------------------------------------------ downsampling


def _face_positions(domain: Domain):
    H, W = domain.resolution
    dy, dx = domain.spacing
    f64 = torch.float64
    jy, ix = torch.meshgrid(
        torch.arange(H + 1, dtype=f64), torch.arange(W + 1, dtype=f64), indexing="ij"
    )
    y_faces = (jy * dy, (ix + 0.5) * dx)  # y component
    x_faces = ((jy + 0.5) * dy, ix * dx)  # x component
    return y_faces, x_faces


def _linear_velocity(domain: Domain) -> torch.Tensor:
    (yy, yx), (xy, xx) = _face_positions(domain)
    H, W = domain.resolution
    v = torch.zeros(domain.velocity_shape, dtype=torch.float64)
    v[0] = 0.3 + 0.02 * yy - 0.05 * yx
    v[1] = -1.5 + 0.07 * xy + 0.01 * xx
    v[0, :, W] = 0
    v[1, H, :] = 0
    return v


@pytest.mark.parametrize("factor", [2, 4])
def test_downsampling_a_linear_field_is_exact(factor):
    fine = Domain((200.0, 100.0), (16, 8), ((None, None), (None, None)))
    coarse = fine.scaled((16 // factor, 8 // factor))
    got = downsample_velocity(_linear_velocity(fine)[None], factor)[0]
    torch.testing.assert_close(got, _linear_velocity(coarse), rtol=0, atol=1e-12)

    # cell-centred: block averages of a linear field are its values at the coarse centres
    def centres(n: int, size: float) -> torch.Tensor:
        return (torch.arange(n, dtype=torch.float64) + 0.5) * size / n

    def linear(h: int, w: int) -> torch.Tensor:
        yc, xc = torch.meshgrid(centres(h, 200.0), centres(w, 100.0), indexing="ij")
        return 2.0 + 0.1 * yc - 0.3 * xc

    got = downsample_centered(linear(16, 8), factor)
    torch.testing.assert_close(got, linear(16 // factor, 8 // factor), rtol=0, atol=1e-12)


def test_downsampling_a_constant_field_is_exact():
    v = torch.zeros(1, 2, 17, 9)
    v[:, 0, :, :8] = 1.25
    v[:, 1, :16, :] = -0.5
    got = downsample_velocity(v, 2)
    assert torch.all(got[:, 0, :, :4] == 1.25) and torch.all(got[:, 1, :8, :] == -0.5)
    assert torch.all(got[:, 0, :, 4] == 0) and torch.all(got[:, 1, 8, :] == 0)
    assert torch.all(downsample_centered(torch.full((1, 16, 8), 3.0), 4) == 3.0)


def test_downsampling_keeps_a_divergence_free_field_divergence_free():
    # v = curl of a stream function on the fine grid: discretely divergence-free
    H, W, f = 32, 16, 4
    g = torch.Generator().manual_seed(3)
    psi = torch.randn(H + 1, W + 1, generator=g, dtype=torch.float64)  # at cell corners
    dy = dx = 1.0
    v = torch.zeros(1, 2, H + 1, W + 1, dtype=torch.float64)
    v[0, 0, :, :W] = (psi[:, 1:] - psi[:, :-1]) / dx
    v[0, 1, :H, :] = -(psi[1:, :] - psi[:-1, :]) / dy
    assert divergence(v, (dy, dx)).abs().max() < 1e-12
    coarse = downsample_velocity(v, f)
    assert divergence(coarse, (f * dy, f * dx)).abs().max() < 1e-12
    # a point sample instead of the face average would not be
    naive = v[:, :, ::f, ::f]
    assert divergence(naive, (f * dy, f * dx)).abs().max() > 1e-3


@pytest.mark.parametrize("resolution", [(16, 8), (64, 32), (128, 64)])
def test_source_boxes_have_the_same_area_at_every_resolution(resolution):
    from coldflow.physics.grid import box_fraction

    d = KARMAN_DOMAIN.scaled(resolution)
    frac = box_fraction(d, ((5.0, 10.0), (25.0, 75.0)))
    dy, dx = d.spacing
    assert float(frac.sum()) * dy * dx == pytest.approx(5.0 * 50.0, rel=1e-12)
    assert frac.min() >= 0 and frac.max() <= 1


def test_downsampling_rejects_indivisible_resolutions():
    with pytest.raises(ValueError, match="divisible"):
        downsample_velocity(torch.zeros(1, 2, 11, 9), 4)


# ------------------------------------------------------------------ projection


@pytest.mark.parametrize("kind", ["karman", "plume"])
def test_projection_leaves_divergence_below_the_solver_tolerance(kind):
    scene = SCENES[kind]((32, 16) if kind == "karman" else (16, 16))
    params = {"re": [1e5, 8e5]} if kind == "karman" else {"buoyancy": [4.0, 8.0]}
    v = random_velocity(scene.domain, batch=2, seed=7).to(scene.dtype)
    state = FluidState(v, torch.zeros(2, *scene.resolution, dtype=scene.dtype))
    out = scene.step(state, params, advance=False)
    fluid = scene.obstacle_mask() == 0  # cells entirely outside the obstacle
    div_before = divergence(v.double(), scene.domain.spacing)[:, fluid]
    div_after = divergence(out.velocity.double(), scene.domain.spacing)[:, fluid]
    tol = torch.clamp(scene.solver.rel_tol * div_before.norm(dim=1), min=scene.solver.abs_tol)
    assert torch.all(div_after.norm(dim=1) <= tol), (div_after.norm(dim=1), tol)
    assert torch.all(div_before.norm(dim=1) > 1e3 * tol)  # the projection did the work
    if kind == "plume":  # without obstacles (whose soft masks rescale faces) it is a projection
        again = scene.step(out, params, advance=False)
        torch.testing.assert_close(again.velocity, out.velocity, rtol=0, atol=1e-4)


def test_obstacle_faces_are_at_rest_after_a_step():
    scene = KarmanScene((32, 16))
    params = {"re": [1e5]}
    state = scene.step(scene.initial_state(params, [0]), params)
    inside = scene.obstacle_mask() >= 1.0  # cells fully inside the cylinder
    vy, vx = state.velocity[0, 0, :-1, :-1], state.velocity[0, 1, :-1, :-1]
    assert inside.sum() > 0
    assert vy[inside].abs().max() < 1e-6 and vx[inside].abs().max() < 1e-6


def test_jit_and_eager_steps_agree():
    params = {"re": [2e5]}
    jit, eager = KarmanScene((16, 8)), KarmanScene((16, 8), jit=False)
    state = jit.initial_state(params, [3])
    a, b = jit.step(state, params), eager.step(state, params)
    torch.testing.assert_close(a.velocity, b.velocity, rtol=0, atol=1e-4)
    torch.testing.assert_close(a.density, b.density, rtol=0, atol=1e-4)


def test_initial_state_of_a_seed_does_not_depend_on_the_batch():
    scene = KarmanScene((16, 8))
    both = scene.initial_state({"re": [1e5, 3e5]}, [4, 9])
    alone = scene.initial_state({"re": [3e5]}, [9])
    torch.testing.assert_close(both.velocity[1], alone.velocity[0], rtol=0, atol=1e-6)
    other = scene.initial_state({"re": [3e5]}, [10])
    assert not torch.allclose(other.velocity, alone.velocity)  # the seed matters


def test_step_is_differentiable_and_matches_finite_differences():
    scene = KarmanScene((16, 8), precision=64, solver=PressureSolver(rel_tol=1e-10, abs_tol=1e-10))
    params = {"re": torch.tensor([1e5, 4e5], dtype=torch.float64)}
    state = scene.step(scene.initial_state(params, [0, 1]), params)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(state.velocity.shape, generator=g, dtype=torch.float64) * scene.free_faces()
    d = torch.randn(state.velocity.shape, generator=g, dtype=torch.float64) * scene.free_faces()

    def loss(v):
        return (scene.step(FluidState(v, state.density, state.pressure), params).velocity * w).sum()

    v0 = state.velocity.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(v0), v0)
    eps = 1e-5
    with torch.no_grad():
        fd = (loss(v0 + eps * d) - loss(v0 - eps * d)) / (2 * eps)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    torch.testing.assert_close((grad * d).sum(), fd, rtol=1e-4, atol=1e-8)


# ------------------------------------------------------------------ the scenes' physics


def test_karman_wake_sheds_with_a_plausible_strouhal_number():
    scene = KarmanScene((64, 32))
    params = {"re": [2e5]}
    state = scene.initial_state(params, [0])
    probe = []
    for _ in range(700):
        state = scene.step(state, params)
        probe.append(
            probe_series(state.velocity[0], scene.domain.spacing, scene.default_probe(), "x")
        )
    signal = torch.stack(probe)[200:].numpy()
    assert signal.std() > 0.05  # a symmetric, steady wake would keep v_x ~ 0 on the centre line
    peak = dominant_frequency(signal, scene.dt)
    st = strouhal_number(peak.frequency, scene.diameter, scene.inflow_speed)
    assert peak.power_fraction > 0.8, peak
    assert 0.07 < st < 0.3, st


@pytest.mark.slow
def test_karman_strouhal_number_at_the_study_resolution():
    scene = KarmanScene((128, 64))
    params = {"re": [1e5, 8e5]}
    state = scene.initial_state(params, [0, 1])
    probe = []
    for _ in range(1000):
        state = scene.step(state, params)
        probe.append(probe_series(state.velocity, scene.domain.spacing, scene.default_probe(), "x"))
    signal = torch.stack(probe)[400:].numpy()
    for b in range(2):
        peak = dominant_frequency(signal[:, b], scene.dt)
        st = strouhal_number(peak.frequency, scene.diameter, scene.inflow_speed)
        assert peak.power_fraction > 0.9 and 0.12 < st < 0.25, (b, peak, st)


def test_plume_smoke_rises():
    scene = PlumeScene((32, 32))
    params = {"buoyancy": [8.0]}
    state = scene.initial_state(params, [0])
    y = (torch.arange(32, dtype=scene.dtype) + 0.5) * scene.domain.spacing[0]
    heights = []
    for t in range(1, 121):
        state = scene.step(state, params)
        if t % 40 == 0:
            rho = state.density[0]
            heights.append(float((rho.sum(1) * y).sum() / rho.sum()))
    assert heights[0] < heights[1] < heights[2], heights  # the centre of mass climbs
    top = y[(state.density[0] > 0.05).any(1)].max()
    assert top > 40.0  # well above the source at y = 5..10
    assert state.velocity[0, 0].max() > 1.0  # upward flow
    # a plume without buoyancy stays at the source
    calm = scene.initial_state({"buoyancy": [0.0]}, [0])
    for _ in range(40):
        calm = scene.step(calm, {"buoyancy": [0.0]})
    assert y[(calm.density[0] > 0.05).any(1)].max() < 20.0


@pytest.mark.parametrize("advection", ["semi_lagrangian", "mac_cormack", "finite_volume"])
def test_plume_advection_schemes_and_the_smoke_mass(advection):
    scene = PlumeScene((16, 16), advection=advection)
    params = {"buoyancy": [8.0]}
    state = scene.initial_state(params, [0])
    dy, dx = scene.domain.spacing
    released = scene.source_rate * 5.0 * 100.0 * scene.dt  # rate x source area x dt
    for _ in range(12):
        state = scene.step(state, params)
    mass = float(state.density.sum()) * dy * dx
    assert scene.describe()["advection"] == advection
    if advection == "finite_volume":  # conservative: only the source changes the mass
        assert mass == pytest.approx(12 * released, rel=1e-9)
    else:
        assert 0.5 * 12 * released < mass < 1.5 * 12 * released
    assert float(state.density.min()) > -1e-9


def test_plume_default_advection_is_semi_lagrangian_and_unknown_ones_fail():
    assert PlumeScene((8, 8)).advection == "semi_lagrangian"
    with pytest.raises(ValueError, match="advection"):
        PlumeScene((8, 8), advection="upwind")


# ------------------------------------------------ the SOL correction's layout options


def _sol_model(**options):
    from coldflow.methods.sol import SolverInTheLoop
    from coldflow.nets.sol import sol_resnet_small

    scene = KarmanScene((16, 8))
    torch.manual_seed(0)
    net = sol_resnet_small(in_channels=4, zero_init=False)
    return scene, SolverInTheLoop(net, scene, None, param_std=[2e5, 1.0], **options)


def test_sol_velocity_std_shared_or_per_component():
    scene, shared = _sol_model(velocity_std=0.5)
    _, per = _sol_model(velocity_std=(0.5, 0.5))
    assert shared.velocity_std.shape == () and per.velocity_std.shape == (2,)
    state = scene.initial_state({"re": [3e5]}, [1])
    params = torch.tensor([[3e5, 1.0]])
    torch.testing.assert_close(
        shared.correction(state.velocity, params), per.correction(state.velocity, params)
    )
    _, scaled = _sol_model(velocity_std=(1.0, 0.5))
    a = scaled.correction(state.velocity, params)
    assert not torch.allclose(a, shared.correction(state.velocity, params))
    with pytest.raises(ValueError, match="velocity_std"):
        _sol_model(velocity_std=(1.0, 2.0, 3.0))


def test_sol_net_faces_lower_uses_and_corrects_each_cells_lower_faces():
    scene, lower = _sol_model(velocity_std=0.5, net_faces="lower")
    seen = []
    lower.net.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    state = scene.initial_state({"re": [3e5]}, [1])
    corr = lower.correction(state.velocity, torch.tensor([[3e5, 1.0]]))
    H, W = scene.resolution
    torch.testing.assert_close(seen[0][:, :2], state.velocity[:, :, :H, :W] / 0.5)
    assert torch.count_nonzero(corr[:, 0, H]) == 0 and torch.count_nonzero(corr[:, 1, :, W]) == 0
    assert torch.count_nonzero(corr[:, :, 1:H, 1:W]) > 0
    with pytest.raises(ValueError, match="net_faces"):
        _sol_model(net_faces="upper")


def test_sol_net_slope_and_options_keep_old_configs_and_hashes():
    from coldflow.nets.sol import KERAS_LEAKY_SLOPE, LEAKY_SLOPE, sol_resnet
    from coldflow.tasks.sol.config import SolMethodConfig, SolNetConfig

    assert "slope" not in SolNetConfig().model_dump()  # runs made before keep their hash
    assert set(SolMethodConfig().model_dump()) == {"kind", "m", "loss"}
    cfg = SolNetConfig(slope=KERAS_LEAKY_SLOPE)
    net = sol_resnet(**cfg.model_dump(exclude={"kind"}))
    assert net.head[1].negative_slope == 0.3 == KERAS_LEAKY_SLOPE
    assert sol_resnet(**SolNetConfig().model_dump(exclude={"kind"})).head[1].negative_slope == (
        LEAKY_SLOPE
    )
    method = SolMethodConfig(per_component_std=True, net_faces="lower").model_dump()
    assert method["per_component_std"] is True and method["net_faces"] == "lower"


# ------------------------------------------------------------------ PhiFlow traps


def test_auto_pressure_solver_is_refused():
    # PhiFlow's default 'auto' solve on a singular (closed-box) system picks a direct solve
    # that can fail with "Diverged: Direct solution does not satisfy tolerance".
    with pytest.raises(ValueError, match="auto"):
        PressureSolver(method="auto")


def test_closed_box_pressure_solve_converges_in_the_default_precision():
    # The closed box is singular; single-precision CG stagnates above its tolerance there,
    # so the plume runs in float64 and its projection passes the divergence check.
    scene = PlumeScene((16, 16))
    assert scene.precision == 64 and scene.domain.closed
    params = {"buoyancy": [10.0, 3.0]}
    state = scene.initial_state(params, [0, 1])
    for _ in range(30):
        state = scene.step(state, params)  # raises SolverError if a solve misses its tolerance
    assert state.velocity.dtype == torch.float64


def test_unconverged_solve_under_jit_raises_instead_of_returning_wrong_pressure():
    # Under jit_compile PhiFlow cannot check convergence: a CG cut short returns silently
    # (the iterative method: the default direct solve has no iterations to cut).
    sloppy = PressureSolver(method="CG", max_iterations=2)
    params = {"re": [1e5, 2e5]}
    good = KarmanScene((32, 16))
    state = good.step(good.initial_state(params, [0, 1]), params)
    unchecked = KarmanScene(
        (32, 16), solver=PressureSolver(method="CG", max_iterations=2, check=False)
    )
    silent = unchecked.step(FluidState(state.velocity, state.density), params)  # no error...
    fluid = good.obstacle_mask() == 0
    assert divergence(silent.velocity, good.domain.spacing)[:, fluid].norm(dim=1).min() > 1e-3
    checked = KarmanScene((32, 16), solver=sloppy)
    with pytest.raises(SolverError, match="missed its tolerance") as err:
        checked.step(FluidState(state.velocity, state.density), params)
    assert err.value.samples == [0, 1]
    assert "re=100000" in str(err.value)


def test_non_finite_state_raises_with_the_sample():
    scene = KarmanScene((16, 8))
    params = {"re": [1e5, 2e5]}
    state = scene.initial_state(params, [0, 1])
    v = state.velocity.clone()
    v[1, 0, 5, 3] = float("nan")
    with pytest.raises(SolverError) as err:
        scene.step(FluidState(v, state.density), params)
    assert 1 in err.value.samples and "re=200000" in str(err.value)


def test_scene_registry_and_parameters():
    assert set(SCENES) == {"karman", "plume"}
    k = KarmanScene((16, 8))
    assert k.derived_params({"re": 1e5}) == {
        "nu": pytest.approx(0.1),
        "re_diameter": pytest.approx(200.0),
    }
    with pytest.raises(KeyError, match="re"):
        k.step(k.initial_state({"re": [1e5]}, [0]), {"buoyancy": [1.0]})


# ------------------------------------------------ per-simulation inflow speed


def test_inflow_speed_is_the_unit_speed_flow_with_a_longer_step():
    """A flow at inflow U, dt 1 is the unit-speed flow with dt' = U, nu' = nu / U and the
    marker rate / U, scaled by U (the discrete step is the same, up to round-off)."""
    U, steps = 1.5, 6
    fast = KarmanScene((32, 16), precision=64)
    params = {"re": [1e5], "inflow_speed": [U]}
    a = fast.initial_state(params, [3])
    unit = KarmanScene(
        (32, 16), precision=64, dt=U, viscosity_scale=1e4 / U, marker_rate=1 / U, inflow_speed=1
    )
    b = unit.initial_state({"re": [1e5]}, [3])
    for _ in range(steps):
        a, b = fast.step(a, params), unit.step(b, {"re": [1e5]})
    assert a.velocity[0, 0, 0, :16].eq(U).all()  # the inflow face holds U
    torch.testing.assert_close(a.velocity, U * b.velocity, rtol=0, atol=1e-12)
    torch.testing.assert_close(a.density, b.density, rtol=0, atol=1e-12)
    assert (a.velocity / U - b.velocity).abs().max() < 1e-12
    # and it is a different flow from the unit-speed one at dt = 1
    c = fast.initial_state({"re": [1e5]}, [3])
    for _ in range(steps):
        c = fast.step(c, {"re": [1e5]})
    assert (a.velocity / U - c.velocity).abs().max() > 1e-2


def test_simulations_with_different_speeds_batch_like_single_runs():
    # a tight solve: with the default tolerance the batch's CG runs until every member
    # converged, which moves each one by up to the tolerance (about 1e-5)
    tight = PressureSolver(rel_tol=1e-12, abs_tol=1e-12)
    scene = KarmanScene((32, 16), precision=64, solver=tight)
    params = {"re": [1e5, 4e5], "inflow_speed": [0.8, 1.3]}
    both = scene.initial_state(params, [0, 1])
    one = [
        scene.initial_state({"re": [r], "inflow_speed": [u]}, [s])
        for r, u, s in ((1e5, 0.8, 0), (4e5, 1.3, 1))
    ]
    for _ in range(4):
        both = scene.step(both, params)
        one = [
            scene.step(o, {"re": [r], "inflow_speed": [u]})
            for o, r, u in zip(one, (1e5, 4e5), (0.8, 1.3), strict=True)
        ]
    for b in range(2):
        torch.testing.assert_close(both.velocity[b], one[b].velocity[0], rtol=0, atol=1e-10)
    assert scene.params_tensor({"re": 1e5}, 2)["inflow_speed"].tolist() == [1.0, 1.0]


def test_a_plume_of_more_than_46340_cells_takes_a_step():
    """PhiML indexes its traced pressure matrix in int32; 256x256 cells overflow it."""
    from coldflow.physics import PlumeScene

    scene = PlumeScene((256, 256), precision=64)
    state = scene.step(scene.initial_state({"buoyancy": [1.0]}, [0]), {"buoyancy": [1.0]})
    assert torch.isfinite(state.velocity).all() and state.velocity.abs().max() > 0
