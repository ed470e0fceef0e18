"""A fluid scene and its solver step on tensors in the padded staggered layout.

A :class:`Scene` fixes the domain, the boundary conditions, obstacles and sources, the
time step and the pressure solver; the per-simulation parameters (the Reynolds number
of a Kármán flow, the buoyancy of a plume) are tensors passed to every call, so one
scene (and one compiled step) serves a batch of simulations with different parameters.

:meth:`Scene.step` is what data generation runs and what Solver-in-the-Loop training
differentiates through (advection and pressure projection included; the pressure solve
has an implicit gradient, another linear solve). It guards against the ways a PhiFlow
step can fail silently: under ``jit_compile`` the solver's convergence check does not
run, so the step measures the divergence left after the projection itself and raises
:class:`SolverError` (naming the batch entries) when it exceeds the solver tolerance, or
when the state stops being finite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from coldflow.physics.grid import (
    BATCH,
    Domain,
    box_fraction,
    centered_to_tensor,
    free_face_mask,
    staggered_to_tensor,
    tensor_to_centered,
    tensor_to_staggered,
)
from coldflow.physics.projection import PressureSystem, project
from coldflow.physics.solver import (
    FluidState,
    PressureSolver,
    SolverError,
    check_step,
    from_phi,
    phi_context,
    to_phi,
)

__all__ = ["FluidState", "PressureSolver", "Scene", "SolverError", "phi_context", "smooth_noise"]


def smooth_noise(seed: int, resolution: tuple[int, int], cells: tuple[int, int]) -> torch.Tensor:
    """Seeded smooth noise in [-1, 1]: a coarse uniform random lattice, interpolated.

    Parameters
    ----------
    seed
        Seed of the lattice; the same seed gives the same (resolution-independent)
        pattern at every resolution.
    resolution
        Output ``(H, W)``.
    cells
        Lattice size ``(ny, nx)``: the number of bumps along each axis.
    """
    gen = torch.Generator().manual_seed(int(seed))
    lattice = torch.rand((1, 1, cells[0] + 1, cells[1] + 1), generator=gen, dtype=torch.float64)
    out = torch.nn.functional.interpolate(
        lattice * 2 - 1, size=tuple(resolution), mode="bilinear", align_corners=True
    )
    return out[0, 0]


@dataclass(eq=False)
class Scene:
    """Base class of a fluid scene at one resolution.

    Subclasses set :attr:`name`, :attr:`param_names` and :attr:`size` (the physical
    extent ``(Ly, Lx)``), define :meth:`boundary` (see
    :class:`~coldflow.physics.grid.Domain`), and implement :meth:`_initial` (the state
    before the first projection) and :meth:`_advance` (PhiFlow fields in and out:
    everything of a step before the pressure projection).

    Parameters
    ----------
    resolution
        ``(H, W)`` cells along ``(y, x)``.
    solver
        Pressure-solve settings.
    jit
        Compile the step with ``phiml.math.jit_compile`` (traced once per batch size and
        dtype; about ten times faster than eager PhiFlow).
    precision
        Floating-point bits of the simulation, 32 or 64. The pressure solve runs in the
        same precision (PhiML's torch JIT compiles the solve outside any local precision
        context, so a float64 solve inside a float32 step silently runs in float32).
    """

    name: ClassVar[str] = "scene"
    param_names: ClassVar[tuple[str, ...]] = ()
    size: ClassVar[tuple[float, float]] = (1.0, 1.0)
    has_density: ClassVar[bool] = False
    """Whether the velocity depends on an advected density (the solver must carry it)."""

    resolution: tuple[int, int]
    dt: float = 1.0
    solver: PressureSolver = field(default_factory=PressureSolver)
    jit: bool = True
    precision: int = 32

    def __post_init__(self) -> None:
        self.resolution = (int(self.resolution[0]), int(self.resolution[1]))
        if self.precision not in (32, 64):
            raise ValueError(f"precision must be 32 or 64, got {self.precision}")
        self.domain = Domain(tuple(self.size), self.resolution, self.boundary())
        self._compiled = None
        self._pressure_system: PressureSystem | None = None

    def boundary(self) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
        """``((y_lower, y_upper), (x_lower, x_upper))``, see :data:`coldflow.physics.grid.Side`."""
        return (None, None), (None, None)

    # ------------------------------------------------------------------ public API

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32 if self.precision == 32 else torch.float64

    def params_tensor(
        self,
        params: Mapping[str, Any],
        batch_size: int | None = None,
        device: torch.device | str | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-simulation parameters as ``(B,)`` tensors of this scene's dtype.

        A single number is broadcast to ``batch_size``; tensors keep their autograd graph.
        """
        defaults = self.param_defaults()
        missing = [k for k in self.param_names if k not in params and k not in defaults]
        if missing:
            raise KeyError(f"scene {self.name!r} needs parameters {missing}, got {list(params)}")
        out = {}
        for k in self.param_names:
            value = params[k] if k in params else defaults[k]
            t = torch.as_tensor(value, dtype=self.dtype, device=device).reshape(-1)
            if batch_size is not None and t.numel() == 1:
                t = t.expand(batch_size)
            out[k] = t
        return out

    def initial_state(self, params: Mapping[str, Any], seeds: Sequence[int]) -> FluidState:
        """The divergence-free initial state of a batch of simulations.

        Parameters
        ----------
        params
            Per-simulation parameters, each a sequence or tensor of length ``len(seeds)``.
        seeds
            One seed per simulation for its initial perturbation (the result for a seed
            does not depend on the rest of the batch).
        """
        p = self.params_tensor(params, len(seeds))
        state = self._initial(p, [int(s) for s in seeds])
        # project once so that frame 0 is a state of the solver
        return self.step(state, p, advance=False)

    def step(
        self, state: FluidState, params: Mapping[str, Any], *, advance: bool = True
    ) -> FluidState:
        """Advance a batch of simulations by one time step ``dt``.

        Parameters
        ----------
        state
            Velocity ``(B, 2, H + 1, W + 1)`` in the padded layout, density ``(B, H, W)``
            (``None`` allowed where the scene does not need it) and optionally the last
            pressure as a warm start.
        params
            The scene's :attr:`param_names`, each a ``(B,)`` tensor or a number.
        advance
            ``False`` applies only the boundary conditions and the pressure projection.

        Returns
        -------
        FluidState
            The next state, differentiable with respect to ``state.velocity``,
            ``state.density`` and the parameters.

        Raises
        ------
        SolverError
            When the new state is not finite or its divergence exceeds the solver
            tolerance (checked when ``solver.check`` is set).
        """
        from phiml import math

        B = state.batch_size
        H, W = self.resolution
        if tuple(state.velocity.shape[1:]) != self.domain.velocity_shape:
            raise ValueError(
                f"{self.name} at {H}x{W} expects velocity (B, {self.domain.velocity_shape}), "
                f"got {tuple(state.velocity.shape)}"
            )
        p = self.params_tensor(params, B, device=state.velocity.device)
        density = state.density if state.density is not None else state.velocity.new_zeros(B, H, W)
        pressure = state.pressure if state.pressure is not None else density.new_zeros(B, H, W)
        scale = self.velocity_scale(p)
        velocity_in = state.velocity
        if scale is not None:  # the solver runs in units of each simulation's own speed
            velocity_in = velocity_in / scale.to(velocity_in)[:, None, None, None]
            pressure = pressure / scale.to(pressure)[:, None, None]
        with phi_context(self.precision):
            coeffs = (
                math.stack({k: to_phi(t) for k, t in p.items()}, math.channel("param"))
                if p
                else math.zeros(math.batch(**{BATCH: B}))
            )
            fn = self._step_fn(advance)
            try:
                outputs = fn(
                    to_phi(velocity_in.to(self.dtype)),
                    to_phi(density.to(self.dtype)),
                    to_phi(pressure.detach().to(self.dtype)),
                    coeffs,
                )
            except math.ConvergenceException as e:  # eager mode: PhiML checks convergence itself
                values = "; ".join(f"{k}={t.tolist()}" for k, t in p.items())
                raise SolverError(
                    f"{self.name} pressure solve failed ({values}): {e}", list(range(B)), [str(e)]
                ) from e
            velocity, density, pressure, div_in, div_out = (from_phi(t) for t in outputs)
        if scale is not None:
            velocity = velocity * scale.to(velocity)[:, None, None, None]
            pressure = pressure * scale.to(pressure)[:, None, None]
        out = FluidState(velocity, None if state.density is None else density, pressure.detach())
        check_step(self.name, self.solver, out, div_in, div_out, p)
        return out

    def free_faces(self) -> torch.Tensor:
        """``(2, H + 1, W + 1)`` mask of the faces the solver evolves (1) or fixes (0)."""
        return free_face_mask(self.domain, self.dtype)

    def obstacle_mask(self) -> torch.Tensor:
        """``(H, W)`` fraction of each cell covered by obstacles (zeros without obstacles)."""
        from phi.field import CenteredGrid, resample
        from phi.geom import union
        from phiml import math

        geoms = self._obstacle_geometries()
        grid = CenteredGrid(0, 0, **self.domain.phi_kwargs())
        if not geoms:
            return torch.zeros(self.resolution, dtype=torch.float32)
        with math.precision(32):
            mask = resample(union(geoms), to=grid, soft=True)
            return torch.as_tensor(mask.values.numpy(["y", "x"]), dtype=torch.float32)

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description: scene, domain, boundary, time step, solver."""
        return {
            "scene": self.name,
            "domain_size": list(self.size),
            "resolution": list(self.resolution),
            "boundary": [list(pair) for pair in self.boundary()],
            "dt": self.dt,
            "solver": {
                "method": self.solver.method,
                "rel_tol": self.solver.rel_tol,
                "abs_tol": self.solver.abs_tol,
                "max_iterations": self.solver.max_iterations,
            },
            "precision": self.precision,
            "param_names": list(self.param_names),
        }

    def param_defaults(self) -> dict[str, float]:
        """Values of the per-simulation parameters that may be left out (default: none)."""
        return {}

    def velocity_scale(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """``(B,)`` speed in whose units the compiled step runs, or ``None`` (no scaling).

        A scene whose flows differ only by their speed scale (an inflow speed) runs the
        step on ``velocity / scale`` with the time step ``dt * scale`` (see
        :class:`~coldflow.physics.karman.KarmanScene`): one compiled step with fixed
        boundary values then serves a batch of simulations with different speeds.
        """
        return None

    def default_probe(self) -> tuple[float, float]:
        """``(y, x)`` where figures and tests probe the flow (default: the domain centre)."""
        return self.size[0] / 2, self.size[1] / 2

    def derived_params(self, params: Mapping[str, float]) -> dict[str, float]:
        """Quantities derived from one simulation's parameters, recorded as attributes."""
        return {}

    # ------------------------------------------------------------ for subclasses

    def _obstacle_geometries(self) -> list:
        """PhiFlow geometries of the obstacles (no-slip, at rest)."""
        return []

    def _initial(self, params: dict[str, torch.Tensor], seeds: list[int]) -> FluidState:
        """The state of a batch before the first projection (padded layout)."""
        raise NotImplementedError

    def _advance(self, v, rho, coeffs):
        """Everything of one step before the projection: ``(v, rho) -> (v, rho)``."""
        raise NotImplementedError

    def _box_fraction(self, box: tuple[tuple[float, float], tuple[float, float]]):
        """Centred grid of the exact fraction of each cell inside ``((y0, y1), (x0, x1))``.

        Fractions keep a source's strength independent of the resolution (sampling the
        box at cell centres would make a 5-unit band 3 or 5 units thick).
        """
        from phi.field import CenteredGrid
        from phiml import math

        values = box_fraction(self.domain, box).to(self.dtype)
        return CenteredGrid(math.wrap(values, math.spatial("y,x")), 0, **self.domain.phi_kwargs())

    def _param(self, coeffs, name: str):
        return coeffs.param[name] if "param" in coeffs.shape else coeffs

    # ------------------------------------------------------------------ internals

    def _p_ext(self):
        from phi.physics.fluid import _pressure_extrapolation

        return _pressure_extrapolation(self.domain.velocity_extrapolation())

    def _step_fn(self, advance: bool):
        if self._compiled is None:
            from phiml import math

            fns = {a: self._make_step(a) for a in (True, False)}
            self._compiled = {a: (math.jit_compile(f) if self.jit else f) for a, f in fns.items()}
        return self._compiled[advance]

    def _make_step(self, advance: bool):
        from phi import field as phifield
        from phi.physics import fluid
        from phiml import math

        obstacles = [fluid.Obstacle(g) for g in self._obstacle_geometries()]
        fluid_cells = self._fluid_mask()
        s = self.solver
        system = self.pressure_system() if s.direct else None

        domain, p_ext = self.domain, self._p_ext()

        def step(velocity, density, pressure, coeffs):
            v = tensor_to_staggered(from_phi(velocity), domain)
            rho = tensor_to_centered(from_phi(density), domain)
            p = tensor_to_centered(from_phi(pressure), domain, p_ext)
            if advance:
                v, rho = self._advance(v, rho, coeffs)
            div_in = phifield.divergence(fluid.apply_boundary_conditions(v, obstacles))
            if system is not None:
                v, p = project(system, v)
            else:
                v, p = fluid.make_incompressible(v, obstacles, self._solve(p))
            norms = [
                math.sqrt(math.sum((d.values * fluid_cells) ** 2, math.spatial))
                for d in (self._balanced(div_in, fluid_cells), phifield.divergence(v))
            ]
            return (
                to_phi(staggered_to_tensor(v, domain)),
                to_phi(centered_to_tensor(rho)),
                to_phi(centered_to_tensor(p)),
                norms[0],
                norms[1],
            )

        return step

    def _solve(self, x0):
        """PhiML's iterative solve of the pressure, its adjoint converged to a relative
        tolerance (the adjoint's right-hand side is a loss gradient, of any scale)."""
        from phiml import math

        s = self.solver
        settings = dict(max_iterations=s.max_iterations, rank_deficiency=0)
        # rank_deficiency=0: in the closed box the divergence is balanced, CG stays in range
        adjoint = math.Solve(s.method, s.rel_tol, s.adjoint_abs_tol, **settings)
        return math.Solve(s.method, s.rel_tol, s.abs_tol, x0=x0, gradient_solve=adjoint, **settings)

    def pressure_system(self) -> PressureSystem:
        """The scene's pressure matrix and its factorisations (direct methods only)."""
        if self._pressure_system is None:
            from phi.physics import fluid

            with phi_context(self.precision):
                obstacles = [fluid.Obstacle(g) for g in self._obstacle_geometries()]
                self._pressure_system = PressureSystem(
                    self.domain, obstacles, self.solver.method, self.dtype
                )
        return self._pressure_system

    def _balanced(self, div, fluid_cells):
        """Closed domains solve for the divergence minus its mean (the solvable part)."""
        from phiml import math

        if not self.domain.closed:
            return div
        mean = math.sum(div.values * fluid_cells, math.spatial) / math.sum(
            fluid_cells, math.spatial
        )
        return div - mean

    def _fluid_mask(self):
        """Cells whose pressure is solved for: 1 in the fluid, 0 inside obstacles."""
        from phi.field import CenteredGrid
        from phi.geom import union
        from phiml import math

        geoms = self._obstacle_geometries()
        if not geoms:
            return math.ones(self.domain.phi_kwargs()["resolution"])
        return CenteredGrid(~union(geoms), 0, **self.domain.phi_kwargs()).values
