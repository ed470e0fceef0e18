"""Kármán vortex street: the wake flow of Solver-in-the-Loop (Um et al. 2020).

A free stream of speed ``U`` enters an open 200 x 100 domain through its lower y side and
flows along +y past a circular obstacle of radius 10 at ``(y, x) = (50, 50)``. A passive
marker is released in the band ``y in [5, 10], x in [25, 75]`` upstream of the obstacle
(the original code's ``inflow`` region) so that the wake can be seen. Each step applies
explicit viscosity, semi-Lagrangian advection of marker and velocity, and a pressure
projection with the obstacle as a no-slip boundary; ``dt = 1``.

Each simulation has its own inflow speed ``U`` (parameter ``inflow_speed``; the scene's
``inflow_speed`` is the default). The step runs in units of ``U``: with ``v' = v / U``
and ``dt' = U dt`` the discrete step is exactly the one of a unit-speed flow (advection
moves ``v dt = v' dt'``, explicit diffusion adds ``nu dt`` times the Laplacian, the
projection is linear, the inflow face holds 1), so one compiled step with a fixed
boundary serves a batch of different speeds. A faster inflow sheds proportionally more
often per step and moves the flow more cells per step (a larger Courant number); this
is what makes test flows differ from training flows at these resolutions, where the
Reynolds number barely matters (see the README).

Reynolds numbers follow the Solver-in-the-Loop code, where the kinematic viscosity in
domain units is ``nu = 1e4 / Re``; the diameter-based Reynolds number is
``Re_D = U D / nu``. A seeded sideways poke behind the obstacle breaks the symmetry so
that the wake sheds, as the original code pokes its initial flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from coldflow.physics.grid import fixed_face_values, free_face_mask
from coldflow.physics.scene import FluidState, Scene, smooth_noise

__all__ = ["KarmanScene"]


@dataclass(eq=False)
class KarmanScene(Scene):
    """Flow past a cylinder in an open channel (see module docstring).

    Parameters
    ----------
    resolution
        ``(H, W)``, e.g. ``(128, 64)``; the domain is 200 x 100 (y x x).
    dt
        Time step (1.0 in the study).
    inflow_speed
        Free-stream speed ``U`` through the lower y side, for simulations whose
        parameters do not give their own ``inflow_speed``.
    obstacle_center, obstacle_radius
        Cylinder ``(y, x)`` centre and radius in domain units.
    marker_box
        ``((y0, y1), (x0, x1))`` where the passive marker is released.
    marker_rate
        Marker density added per unit time inside ``marker_box``.
    viscosity_scale
        ``nu = viscosity_scale / Re`` (1e4 in the Solver-in-the-Loop convention).
    perturbation
        Peak sideways speed of the initial poke, in units of ``U``.
    poke_box
        ``((y0, y1), (x0, x1))`` region of the poke (just behind the obstacle).
    """

    name: ClassVar[str] = "karman"
    param_names: ClassVar[tuple[str, ...]] = ("re", "inflow_speed")
    size: ClassVar[tuple[float, float]] = (200.0, 100.0)

    dt: float = 1.0
    inflow_speed: float = 1.0
    obstacle_center: tuple[float, float] = (50.0, 50.0)
    obstacle_radius: float = 10.0
    marker_box: tuple[tuple[float, float], tuple[float, float]] = ((5.0, 10.0), (25.0, 75.0))
    marker_rate: float = 1.0
    viscosity_scale: float = 1e4
    perturbation: float = 0.5
    poke_box: tuple[tuple[float, float], tuple[float, float]] = ((62.0, 90.0), (40.0, 60.0))

    def boundary(self):
        # the compiled step runs in units of each simulation's inflow speed: the inflow is 1
        return (1.0, None), (None, None)

    def param_defaults(self) -> dict[str, float]:
        return {"inflow_speed": float(self.inflow_speed)}

    def velocity_scale(self, params) -> torch.Tensor:
        return params["inflow_speed"]

    @property
    def diameter(self) -> float:
        return 2.0 * self.obstacle_radius

    def viscosity(self, re: float | torch.Tensor) -> float | torch.Tensor:
        """Kinematic viscosity in domain units, ``nu = viscosity_scale / Re``."""
        return self.viscosity_scale / re

    def derived_params(self, params) -> dict[str, float]:
        nu = float(self.viscosity(float(params["re"])))
        speed = float(params.get("inflow_speed", self.inflow_speed))
        return {"nu": nu, "re_diameter": speed * self.diameter / nu}

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(
            inflow_speed=self.inflow_speed,
            obstacle_center=list(self.obstacle_center),
            obstacle_radius=self.obstacle_radius,
            marker_box=[list(r) for r in self.marker_box],
            marker_rate=self.marker_rate,
            viscosity_scale=self.viscosity_scale,
            viscosity="nu = viscosity_scale / re; re_diameter = inflow_speed * 2 r / nu",
            inflow="per simulation (parameter inflow_speed; inflow_speed above is the default)",
            perturbation=self.perturbation,
            poke_box=[list(r) for r in self.poke_box],
        )
        out["boundary"] = [["inflow_speed", None], [None, None]]
        return out

    def default_probe(self) -> tuple[float, float]:
        """``(y, x)`` of the wake probe: on the centre line, 2.5 diameters downstream."""
        cy, cx = self.obstacle_center
        return cy + 2.5 * self.diameter, cx

    # ------------------------------------------------------------------ physics

    def _obstacle_geometries(self) -> list:
        from phi.geom import Sphere
        from phiml import math

        cy, cx = self.obstacle_center
        return [Sphere(center=math.vec(y=float(cy), x=float(cx)), radius=self.obstacle_radius)]

    def _initial(self, params: dict[str, torch.Tensor], seeds: list[int]) -> FluidState:
        H, W = self.resolution
        dy, dx = self.domain.spacing
        B = len(seeds)
        speed = params["inflow_speed"].to(torch.float64)
        velocity = torch.zeros((B, 2, H + 1, W + 1), dtype=torch.float64)
        velocity[:, 0] = speed[:, None, None]  # warm start: free stream everywhere
        # the poke: x velocity on x faces inside poke_box, a seeded smooth bump of one sign
        yc = (torch.arange(H + 1, dtype=torch.float64) + 0.5) * dy
        xf = torch.arange(W + 1, dtype=torch.float64) * dx
        (y0, y1), (x0, x1) = self.poke_box
        inside = ((yc >= y0) & (yc <= y1))[:, None] & ((xf >= x0) & (xf <= x1))[None, :]
        for b, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(int(seed))
            sign = 1.0 if torch.rand((), generator=gen, dtype=torch.float64) < 0.5 else -1.0
            bump = 0.75 + 0.25 * smooth_noise(seed + 1, (H + 1, W + 1), (4, 2))
            velocity[b, 1] = torch.where(
                inside, sign * self.perturbation * float(speed[b]) * bump, 0
            )
        fixed = fixed_face_values(self.domain, torch.float64)  # inflow 1: units of U
        velocity = (
            velocity * free_face_mask(self.domain, torch.float64)
            + fixed * speed[:, None, None, None]
        )
        density = torch.zeros((B, H, W), dtype=torch.float64)
        return FluidState(velocity.to(self.dtype), density.to(self.dtype))

    def _advance(self, v, rho, coeffs):
        from phi.physics import advect, diffuse

        # v is in units of U (see the module docstring): advection takes dt' = U dt, the
        # diffusion adds nu dt times the Laplacian as in physical units, the marker's
        # source is per physical time
        source = self._box_fraction(self.marker_box)
        nu = self.viscosity(self._param(coeffs, "re"))
        dt_scaled = self.dt * self._param(coeffs, "inflow_speed")
        v = diffuse.explicit(v, nu, self.dt)
        rho = rho.with_values(rho.values + source.values * (self.marker_rate * self.dt))
        rho = advect.semi_lagrangian(rho, v, dt_scaled)
        v = advect.semi_lagrangian(v, v, dt_scaled)
        return v, rho
