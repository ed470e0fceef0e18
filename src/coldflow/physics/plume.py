"""Buoyant plume: smoke released at the bottom of a closed box rises by buoyancy.

A closed 200 x 200 box (no-slip walls on all sides), a smoke source that is a 5 x 100
rectangle at the bottom centre, and a buoyancy force along +y proportional to the smoke
density, ``f = b * rho``. Each step advects smoke and velocity semi-Lagrangian, adds the
source and the buoyancy, and projects; ``dt = 0.1``. A small seeded smooth velocity
perturbation makes each simulation's plume break up differently.

The closed box makes the pressure system singular (pressure is defined up to a
constant): the divergence is balanced to zero mean and the solve keeps the iterate in
the range of the operator (``rank_deficiency=0``; PhiFlow's default Lagrange-multiplier
treatment makes its own CG report divergence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from coldflow.physics.grid import free_face_mask
from coldflow.physics.scene import FluidState, Scene, smooth_noise

__all__ = ["PlumeScene"]


@dataclass(eq=False)
class PlumeScene(Scene):
    """Buoyancy-driven smoke in a closed box (see module docstring).

    Parameters
    ----------
    resolution
        ``(H, W)``, e.g. ``(128, 128)``; the domain is 200 x 200.
    dt
        Time step (0.1 in the study).
    precision
        64 by default: single-precision CG stagnates above its tolerance on the closed
        box's singular pressure system (PhiFlow then reports it as not converged, or
        under JIT returns it silently).
    source_box
        ``((y0, y1), (x0, x1))`` of the smoke source.
    source_rate
        Smoke density added per unit time inside ``source_box``.
    viscosity
        Kinematic viscosity (explicit diffusion of velocity); 0 disables it.
    perturbation
        Peak speed of the seeded initial velocity perturbation.
    """

    name: ClassVar[str] = "plume"
    param_names: ClassVar[tuple[str, ...]] = ("buoyancy",)
    size: ClassVar[tuple[float, float]] = (200.0, 200.0)

    dt: float = 0.1
    precision: int = 64
    source_box: tuple[tuple[float, float], tuple[float, float]] = ((5.0, 10.0), (50.0, 150.0))
    source_rate: float = 1.0
    viscosity: float = 0.0
    perturbation: float = 0.05

    def boundary(self):
        return (0.0, 0.0), (0.0, 0.0)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(
            source_box=[list(r) for r in self.source_box],
            source_rate=self.source_rate,
            viscosity=self.viscosity,
            perturbation=self.perturbation,
            buoyancy="force per unit mass along +y = buoyancy * density",
        )
        return out

    def default_probe(self) -> tuple[float, float]:
        """``(y, x)`` of the probe: on the centre line, halfway up."""
        return self.size[0] / 2, self.size[1] / 2

    def _initial(self, params: dict[str, torch.Tensor], seeds: list[int]) -> FluidState:
        H, W = self.resolution
        B = len(seeds)
        velocity = torch.zeros((B, 2, H + 1, W + 1), dtype=torch.float64)
        for b, seed in enumerate(seeds):
            for c in range(2):
                velocity[b, c] = self.perturbation * smooth_noise(
                    seed * 2 + c, (H + 1, W + 1), (8, 8)
                )
        velocity = velocity * free_face_mask(self.domain, torch.float64)
        density = torch.zeros((B, H, W), dtype=torch.float64)
        return FluidState(velocity.to(self.dtype), density.to(self.dtype))

    def _advance(self, v, rho, coeffs):
        from phi.field import resample
        from phi.physics import advect, diffuse
        from phiml import math

        source = self._box_fraction(self.source_box)
        if self.viscosity:
            v = diffuse.explicit(v, self.viscosity, self.dt)
        rho = advect.semi_lagrangian(rho, v, self.dt)
        rho = rho.with_values(rho.values + source.values * (self.source_rate * self.dt))
        v = advect.semi_lagrangian(v, v, self.dt)
        lift = resample(rho * math.vec(y=1.0, x=0.0), to=v)
        # with_values: adding fields would add their boundary conditions too
        v = v.with_values(v.values + lift.values * (self._param(coeffs, "buoyancy") * self.dt))
        return v, rho
