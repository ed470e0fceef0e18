"""The pressure projection of a scene with its fixed pressure matrix factorised once.

A scene's pressure system ``A p = div v`` never changes: one grid, one set of obstacles,
one set of boundaries. PhiFlow's ``make_incompressible`` rebuilds the matrix and solves
it with CG at every step, and its implicit gradient runs a second CG on ``A^T``. Here the
matrix is built once, by PhiFlow's own ``masked_laplace`` (so the boundary and obstacle
handling stay PhiFlow's), and factorised once per scene and device:

- ``"sparse-LU"``: SciPy's SuperLU of the sparse matrix in float64; each solve (forward
  or adjoint, ``trans="T"``) is two sparse triangular solves for the whole batch. The
  right-hand side goes to the host and back (cheap on a CPU, a copy on a GPU).
- ``"dense-inverse"``: the inverse in float64, applied as one float64 matrix product
  (the gradient: the product with its transpose, by autograd). Stays on the device;
  memory ``N^2`` doubles (N = cells), so it is offered up to :data:`DENSE_LIMIT` cells.
- ``"direct"``: sparse LU on a CPU, the dense inverse on a GPU where N allows.

Both are exact to rounding, forward and adjoint alike: the gradient is the transposed
solve, not a second iteration with its own tolerance. A closed box (every side a wall, no
obstacle) has a singular system, the constant pressure: its right-hand side loses its
mean (as PhiFlow balances it), the pressure of one cell is pinned (the reduced matrix
stays sparse and is non-singular) and the solution shifted to zero mean.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from coldflow.errors import UserError
from coldflow.physics.solver import DIRECT_METHODS

__all__ = [
    "DENSE_LIMIT",
    "PressureMethodError",
    "PressureSystem",
    "project",
    "solve_timings",
]

DENSE_LIMIT = 16_384
"""Most cells for which ``dense-inverse`` is offered (its inverse: N^2 doubles, 2 GiB at
this size)."""


class PressureMethodError(UserError, ValueError):
    """A direct pressure method that cannot serve this scene; the message names the key
    ``scene.solver.method`` and what to use instead."""


class PressureSystem:
    """The fixed pressure system of one scene: masks, matrix and its factorisations.

    Built outside any trace (its first use runs PhiFlow eagerly on NumPy); the factor of
    each device is made on first use and kept.

    Parameters
    ----------
    domain
        The scene's :class:`~coldflow.physics.grid.Domain`.
    obstacles
        PhiFlow ``Obstacle`` objects of the scene (at rest).
    method
        One of :data:`DIRECT_METHODS`.
    dtype
        The scene's floating-point type.
    """

    def __init__(self, domain, obstacles: list, method: str, dtype: torch.dtype) -> None:
        if method not in DIRECT_METHODS:
            raise ValueError(f"not a direct pressure method: {method!r}; one of {DIRECT_METHODS}")
        self.domain = domain
        self.obstacles = obstacles
        self.method = method
        self.dtype = dtype
        self._build()
        if method == "dense-inverse" and self.size > DENSE_LIMIT:
            raise PressureMethodError(
                f"scene.solver.method 'dense-inverse' needs {self.size:,}^2 doubles for a "
                f"{domain.resolution[0]}x{domain.resolution[1]} grid (over {DENSE_LIMIT:,} "
                "cells); set scene.solver.method to 'sparse-LU' or 'direct'"
            )
        self._factors: dict[Any, Any] = {}

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        import scipy.sparse as sp
        from phi import field
        from phi.field import Field
        from phi.geom import union
        from phi.physics.fluid import (
            _accessible_extrapolation,
            _pressure_extrapolation,
            masked_laplace,
        )
        from phiml import math
        from phiml.backend import NUMPY

        from coldflow.physics.grid import tensor_to_staggered

        H, W = self.domain.resolution
        zero = torch.zeros((1, 2, H + 1, W + 1), dtype=torch.float64)
        with NUMPY, math.precision(64):
            v = tensor_to_staggered(zero, self.domain)
            self.hard_bcs = self.active = None
            if self.obstacles:  # as make_incompressible: no pressure inside obstacles
                accessible = Field(
                    v.geometry,
                    ~union([o.geometry for o in self.obstacles]),
                    _accessible_extrapolation(v.extrapolation),
                )
                self.hard_bcs = field.stagger(
                    accessible, math.minimum, v.boundary, at=v.sampled_at, dims=v.vector.item_names
                )
                self.active = accessible.with_extrapolation(math.extrapolation.NONE)
            self.pressure_extrapolation = _pressure_extrapolation(v.extrapolation)
            x0 = Field(field.divergence(v).geometry, 0, self.pressure_extrapolation)
            matrix, bias = masked_laplace.sparse_matrix_and_bias(
                x0,
                v.boundary,
                self.hard_bcs,
                self.active,
                wide_stencil=False,
                order=2,
                implicit=None,
                upwind=None,
                correct_skew=False,
            )
            coo = math.to_format(matrix, "coo")
            index = math.stored_indices(coo).numpy(["entries", "index"])
            names = list(math.stored_indices(coo).index.item_names)
            row = index[:, names.index("y")] * W + index[:, names.index("x")]
            col = index[:, names.index("~y")] * W + index[:, names.index("~x")]
            values = math.stored_values(coo).numpy(["entries"])
            bias = bias.numpy(["y", "x"]) if isinstance(bias, math.Tensor) else bias
        self.size = H * W
        self.matrix = sp.csr_matrix((values, (row, col)), shape=(H * W, H * W))
        self.matrix.eliminate_zeros()
        self.bias = np.asarray(bias, dtype=np.float64).reshape(-1)
        if np.any(self.bias):
            raise PressureMethodError(
                "pressure boundaries with a non-zero value (a bias in the pressure system) "
                "are not supported by the direct solve; set scene.solver.method: CG"
            )
        ones = np.ones(self.size)
        scale = abs(self.matrix).sum(axis=1).max()
        self.singular = bool(np.abs(self.matrix @ ones).max() <= 1e-10 * scale)
        if self.singular and np.abs(ones @ self.matrix).max() > 1e-10 * scale:
            raise PressureMethodError(
                "a singular pressure matrix whose columns do not sum to zero (a non-"
                "symmetric closed system) is not supported by the direct solve; set "
                "scene.solver.method: CG"
            )
        if self.singular:
            # pin the pressure of cell 0: for a balanced right-hand side (sum zero) the
            # other N - 1 equations imply the dropped one (the columns sum to zero), and
            # the reduced matrix keeps the sparsity (a bordering row of ones would not)
            self.system = self.matrix[1:, 1:].tocsc()
        else:
            self.system = self.matrix.tocsc()

    def factor(self, device: torch.device) -> tuple[str, Any]:
        """``(kind, factor)`` for ``device``, made once, then reused: the dense inverse,
        or a torch function solving with the SuperLU factor (its ``lu`` attribute)."""
        key = str(device)
        if key not in self._factors:
            kind = self.method
            if kind == "direct":
                dense_ok = device.type != "cpu" and self.size <= DENSE_LIMIT
                kind = "dense-inverse" if dense_ok else "sparse-LU"
            if kind == "sparse-LU":
                from scipy.sparse.linalg import splu

                self._factors[key] = (kind, _lu_function(splu(self.system)))
            else:
                dense = torch.as_tensor(self.system.toarray(), dtype=torch.float64, device=device)
                self._factors[key] = (kind, torch.linalg.inv(dense))
        return self._factors[key]

    # ------------------------------------------------------------------ solving

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """``p`` with ``A p = rhs`` for ``rhs`` of shape ``(B, N)``, differentiable (the
        gradient is the solve with ``A^T``)."""
        kind, factor = self.factor(rhs.device)
        if self.singular:  # the solvable part, as PhiFlow balances it; then the pinned cell
            rhs = (rhs - rhs.mean(1, keepdim=True))[:, 1:]
        if kind == "dense-inverse":  # applied in float64: exact to single-precision rounding
            x = (rhs.to(torch.float64) @ factor.T).to(rhs.dtype)
        else:
            x = factor.apply(rhs)
        if self.singular:  # the pressure of zero mean (any constant solves the system)
            x = torch.cat([x.new_zeros(x.shape[0], 1), x], 1)
            x = x - x.mean(1, keepdim=True)
        return x


_TIMINGS: dict[str, float] | None = None


@contextlib.contextmanager
def solve_timings() -> Iterator[dict[str, float]]:
    """Seconds and calls of the sparse-LU solves (forward and adjoint) while open.

    For benchmarks: the solves run inside a compiled step, where no other hook reaches
    them. Keys: ``forward``, ``adjoint`` (seconds), ``forward_calls``, ``adjoint_calls``.
    """
    global _TIMINGS
    outer, _TIMINGS = _TIMINGS, defaultdict(float)
    try:
        yield _TIMINGS
    finally:
        _TIMINGS = outer


def _lu_function(lu) -> type[torch.autograd.Function]:
    """A torch function solving with the SuperLU factor ``lu`` and its transpose as gradient
    (recorded as one opaque node by ``torch.jit.trace``)."""

    def run(b: torch.Tensor, trans: str) -> torch.Tensor:
        t0 = time.perf_counter()
        host = b.detach().to("cpu", torch.float64).numpy().T
        x = lu.solve(np.ascontiguousarray(host), trans=trans)
        out = torch.from_numpy(np.ascontiguousarray(x.T)).to(b.device, b.dtype)
        if _TIMINGS is not None:
            kind = "forward" if trans == "N" else "adjoint"
            _TIMINGS[kind] += time.perf_counter() - t0
            _TIMINGS[f"{kind}_calls"] += 1
        return out

    class LUSolve(torch.autograd.Function):
        """Solve with ``lu`` (forward) and with its transpose (backward)."""

        @staticmethod
        def forward(ctx, b: torch.Tensor) -> torch.Tensor:
            return run(b, "N")

        @staticmethod
        def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
            return run(grad, "T")

    LUSolve.lu = lu
    return LUSolve


def project(system: PressureSystem, velocity):
    """``(velocity, pressure)``: ``velocity`` made divergence-free with the factorised
    pressure system, as PhiFlow's ``make_incompressible`` does with an iterative solve
    (same masks, divergence, pressure gradient and boundary handling)."""
    from phi import field
    from phi.field import CenteredGrid
    from phi.physics import fluid
    from phiml import math

    from coldflow.physics.grid import BATCH

    H, W = system.domain.resolution
    input_velocity = velocity
    if system.obstacles:
        velocity = fluid.apply_boundary_conditions(velocity, system.obstacles)
    div = field.divergence(velocity, order=2)
    if system.active is not None:
        div = div * system.active
    rhs = div.values.native([BATCH, "y", "x"])
    B = rhs.shape[0]
    p = system.solve(rhs.reshape(B, H * W)).reshape(B, H, W)
    pressure = CenteredGrid(
        math.wrap(p, math.batch(BATCH), math.spatial("y,x")),
        system.pressure_extrapolation,
        bounds=div.bounds,
        resolution=div.resolution,
    )
    grad = field.spatial_gradient(
        pressure,
        input_velocity.extrapolation,
        at=velocity.sampled_at,
        order=2,
        scheme="green-gauss",
    )
    if system.hard_bcs is not None:
        grad = grad * system.hard_bcs
    velocity = (velocity - grad).with_extrapolation(input_velocity.extrapolation)
    return velocity, pressure
