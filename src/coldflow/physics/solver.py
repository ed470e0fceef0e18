"""What a scene's step works with: the state, the pressure-solver settings, the check of
a step and the error a failed one raises, the PhiFlow context every step runs in and the
conversion of batched torch tensors to PhiML tensors and back.

Nothing here runs PhiFlow at import time: PhiML is imported inside :func:`phi_context`.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from coldflow.errors import UserError
from coldflow.physics.grid import BATCH

__all__ = [
    "DIRECT_METHODS",
    "FluidState",
    "PressureSolver",
    "SolverError",
    "check_step",
    "from_phi",
    "phi_context",
    "to_phi",
]


DIRECT_METHODS = ("direct", "sparse-LU", "dense-inverse")
"""Pressure-solver methods that factorise the pressure matrix instead of iterating
(:mod:`coldflow.physics.projection`)."""


class SolverError(UserError, RuntimeError):
    """A step produced a non-finite state or a pressure solve that missed its tolerance.

    Attributes
    ----------
    samples
        Batch indices of the failed simulations.
    details
        One line per failed sample.
    """

    def __init__(self, message: str, samples: Sequence[int] = (), details: Sequence[str] = ()):
        super().__init__(message)
        self.samples = list(samples)
        self.details = list(details)


@functools.cache  # once per process: phi_context runs on every solver step
def _widen_sparse_indices() -> None:
    """Let PhiML build pressure matrices of grids with more than 46,340 cells.

    PhiML 1.16 compresses a traced sparse matrix through
    ``NumPyBackend.ravel_multi_index``, which casts the flat index of each entry back to
    the int32 of the tracer's indices: with N cells the flat index reaches N², which
    overflows int32 above 46,340 cells (a 256x256 plume fails with "index ... is out of
    bounds"). This widens the indices to int64 when the flat size needs it. It checks
    the bug first, so a PhiML that computes the index correctly is left alone.
    """
    from phiml.backend._numpy_backend import NUMPY, NumPyBackend

    probe = np.array([[40_000, 40_000]], dtype=np.int32)
    want = 40_000 * 65_536 + 40_000
    if int(NUMPY.ravel_multi_index(probe, (65_536, 65_536))[0]) == want:
        return
    original = NumPyBackend.ravel_multi_index
    limit = np.iinfo(np.int32).max

    def ravel_multi_index(self, multi_index, shape, mode="undefined"):
        index = np.asarray(multi_index)
        if index.dtype == np.int32 and np.prod(shape, dtype=np.float64) > limit:
            multi_index = index.astype(np.int64)
        return original(self, multi_index, shape, mode)

    NumPyBackend.ravel_multi_index = ravel_multi_index


@contextlib.contextmanager
def phi_context(precision: int = 32) -> Iterator[None]:
    """PhiFlow/PhiML on the torch backend with the given float precision.

    Tensors PhiFlow creates itself (masks, sources, the pressure matrix) follow PhiML's
    default backend. The first call therefore makes torch PhiML's global default (as
    ``import phi.torch.flow`` does): the backward pass of a step (the implicit gradient
    of the pressure solve) runs after this context has closed and needs it too.
    """
    from phiml import backend, math
    from phiml.backend.torch import TORCH

    if backend.default_backend() is not TORCH:
        backend.set_global_default_backend(TORCH)
    _widen_sparse_indices()
    with TORCH, math.precision(precision), warnings.catch_warnings():
        # PhiML builds its pressure matrix as a torch sparse CSR tensor, which warns
        warnings.filterwarnings("ignore", message="Sparse (CSR tensor support|invariant checks)")
        # PhiML's torch JIT is built on torch.jit.trace/script, which torch 2.x deprecates
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        yield


@dataclass
class FluidState:
    """The state a scene advances, as torch tensors.

    Attributes
    ----------
    velocity
        ``(B, 2, H + 1, W + 1)`` staggered velocity in the padded layout
        (see :mod:`coldflow.physics.grid`).
    density
        ``(B, H, W)`` smoke (plume, active) or marker (Kármán, passive) density; ``None``
        is allowed for scenes whose velocity does not depend on it.
    pressure
        ``(B, H, W)`` pressure of the last projection. Only a warm start for the next
        pressure solve (fewer iterations); never needed for correctness.
    """

    velocity: torch.Tensor
    density: torch.Tensor | None = None
    pressure: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return int(self.velocity.shape[0])

    def detach(self) -> FluidState:
        """The same state cut from the autograd graph."""
        return FluidState(
            self.velocity.detach(),
            None if self.density is None else self.density.detach(),
            None if self.pressure is None else self.pressure.detach(),
        )


@dataclass(frozen=True)
class PressureSolver:
    """Method and tolerances of the pressure solve.

    Attributes
    ----------
    method
        ``"direct"``, ``"sparse-LU"`` or ``"dense-inverse"``: the scene's fixed pressure
        matrix factorised once and reused for every forward and adjoint solve
        (:mod:`coldflow.physics.projection`; exact to rounding, tolerances unused except
        by the check). Otherwise a PhiML iterative method (``"CG"``, ``"biCG-stab"``,
        ``"scipy-CG"``, ...). Never ``"auto"``: for singular (closed-box) systems it picks
        a direct solve that can fail with "Diverged: Direct solution does not satisfy
        tolerance".
    rel_tol, abs_tol
        An iterative solve stops when ``|r|_2 <= max(rel_tol * |r_0|_2, abs_tol)``
        (``r_0``: the residual of the warm start).
    adjoint_abs_tol
        Absolute tolerance of the adjoint (gradient) solve of an iterative method, whose
        right-hand side is the loss gradient. Default 0: the adjoint converges to
        ``rel_tol`` of its own right-hand side, whatever the scale of the loss. Setting
        it to ``abs_tol`` reproduces the truncated adjoint that coldflow used first (1-7
        CG iterations for a mean-squared loss, relative residual 0.3-0.6).
    max_iterations
        Iteration limit of the iterative solvers.
    check
        Measure the divergence after every projection and raise :class:`SolverError`
        when it exceeds ``slack`` times the tolerance (needed under JIT, where PhiFlow
        does not check convergence).
    slack
        Allowance for the difference between the solver's recursive residual and the
        divergence recomputed from the projected velocity in single precision.
    """

    method: str = "direct"
    rel_tol: float = 1e-5
    abs_tol: float = 1e-5
    max_iterations: int = 2000
    check: bool = True
    slack: float = 10.0
    adjoint_abs_tol: float = 0.0

    def __post_init__(self) -> None:
        if self.method == "auto":
            raise ValueError(
                "pressure solver method 'auto' picks a direct solve that fails on singular "
                "(closed-box) systems; name the method, e.g. 'direct' or 'CG'"
            )

    @property
    def direct(self) -> bool:
        """Whether the method factorises the pressure matrix instead of iterating."""
        return self.method in DIRECT_METHODS


def check_step(
    name: str,
    solver: PressureSolver,
    state: FluidState,
    div_in: torch.Tensor,
    div_out: torch.Tensor,
    params: dict[str, torch.Tensor],
) -> None:
    """Raise :class:`SolverError` for the simulations a step of scene ``name`` broke.

    A simulation fails when its state is not finite or (with ``solver.check``) when the
    divergence ``div_out`` left after the projection exceeds ``solver.slack`` times the
    tolerance ``max(rel_tol * div_in, abs_tol)``; the error names each one with its
    ``params`` (``(B,)`` tensors).
    """
    finite = torch.isfinite(state.velocity.detach()).flatten(1).all(1)
    if state.density is not None:
        finite &= torch.isfinite(state.density.detach()).flatten(1).all(1)
    bad = ~finite
    details = {}
    for i in torch.nonzero(~finite).flatten().tolist():
        details[i] = "velocity or density is not finite"
    if solver.check:
        d_in, d_out = div_in.detach().double(), div_out.detach().double()
        tol = torch.clamp(solver.rel_tol * d_in, min=solver.abs_tol)
        unsolved = ~(d_out <= solver.slack * tol)  # NaN counts as unsolved
        for i in torch.nonzero(unsolved & finite).flatten().tolist():
            details[i] = (
                f"pressure solve missed its tolerance: |div v|_2 = {float(d_out[i]):.3g} after "
                f"projection > {solver.slack:g} x {float(tol[i]):.3g} "
                f"({solver.method}, rel_tol={solver.rel_tol:g}, "
                f"abs_tol={solver.abs_tol:g})"
            )
        bad |= unsolved
    if bool(bad.any()):
        idx = sorted(details)
        lines = []
        for i in idx:
            values = ", ".join(f"{k}={float(v[i]):g}" for k, v in params.items())
            lines.append(f"sample {i} ({values}): {details[i]}")
        raise SolverError(
            f"{name} step failed for {len(idx)} of {state.batch_size} simulations:\n  "
            + "\n  ".join(lines),
            idx,
            lines,
        )


def to_phi(native: torch.Tensor):
    """A ``(B, ...)`` torch tensor as a PhiML tensor (batch dimension
    :data:`~coldflow.physics.grid.BATCH`, then ``c``, ``row``, ``col``), without a copy."""
    from phiml import math

    names = ("c", "row", "col")[-(native.ndim - 1) :] if native.ndim > 1 else ()
    return math.wrap(native, math.batch(BATCH), *(math.spatial(n) for n in names))


def from_phi(tensor) -> torch.Tensor:
    """Inverse of :func:`to_phi`."""
    return tensor.native([n for n in (BATCH, "c", "row", "col") if n in tensor.shape])
