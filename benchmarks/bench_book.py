"""The Physics-based Deep Learning book's Solver-in-the-Loop training update beside coldflow's.

Three training updates (unrolled loss over ``m = 4`` corrected steps, backward through
network and solver, Adam step), timed interleaved: ``--rounds`` rounds, each running
``--iters`` updates of every variant in turn, so that load from other processes hits all
variants alike:

- ``book``: the training step of the Physics-based Deep Learning book, diffphys-code-sol
  notebook (Thuerey et al.), written here anew in PhiFlow 3.4 on synthetic inputs of its
  shapes: a Kármán wake at 64 x 32 cells on a 200 x 100 domain (open along y, closed
  along x, a cylinder of radius 10 at (50, 50)), the step compiled with
  ``phiml.math.jit_compile``, its explicit viscosity, inflow mask, semi-Lagrangian
  advection of marker and velocity and ``make_incompressible`` with ``Solve('CG',
  rel_tol=1e-3)``; its network (PhiML ``res_net`` 3 -> 2 channels, hidden layers
  32, 32, 32, Xavier-uniform weights with gain 0.1) on the velocity components and a
  normalised-Re channel; its loss (the sum over the steps of PhiFlow's ``l2_loss`` of
  corrected minus reference velocity, summed over the batch); Adam with learning rate
  1e-3; batch 3;
- ``coldflow_same``: coldflow's Solver-in-the-Loop model (``sol_resnet``, Um et al.'s
  network) on its Kármán scene at 64 x 32, batch 3, m = 4;
- ``coldflow_study``: the study's CPU configuration, ``sol_resnet_small``, batch 4, m = 4.

Both coldflow models are built as ``bench_sol.py`` builds them, on a small Kármán data
set (``--data``; without it, 2 simulations of ``configs/fluids/karman_cpu.yaml`` are
generated into a temporary directory first, seconds with the direct solve), with the data
set's own pressure-solver settings: a generated set has whatever the current config and
its defaults say, a ``--data`` file the settings it was made with. The book's inputs are
random smooth velocities and random reference targets; the Reynolds number of a batch is
drawn log-uniformly from 100 ... 4000 (one number per batch, as the book's loader gives).

The book's inflow mask is a box open below y = 5 across all x. PhiFlow 3.4 turns a box
with an open bound into an unbounded one, so the mask covers every face and each step
restarts from the free stream whatever its input. ``--book-inflow phiflow`` (default)
times the step as PhiFlow 3.4 runs it, ``--book-inflow band`` with the band the box
describes (the two lowest rows of faces).

Besides time, the CG iterations of every forward and every adjoint (backward) pressure
solve of one update are counted, with ``phiml.math.SolveTape`` around an uncompiled copy
of the same step (the compiled step does not report them); a non-iterative coldflow
solver is recorded as ``"direct"``.

    python benchmarks/bench_book.py [--data FILE.h5] [--rounds 5] [--iters 20] [--threads 1]
        [--book-inflow phiflow|band] [--device auto|cpu|cuda] [--quick]
        [--out benchmarks/results/book.json]

Prints a table (median seconds per update over the rounds, interquartile range, the
ratios of the book's update to coldflow's) and writes JSON; never asserts on time.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _machine
import bench_sol
import numpy as np
import phi
import phiml
import torch
import torch.nn.functional as F
from phi.torch.flow import (
    TORCH,
    Box,
    CenteredGrid,
    Obstacle,
    Solve,
    Sphere,
    StaggeredGrid,
    adam,
    advect,
    diffuse,
    extrapolation,
    field,
    fluid,
    math,
    res_net,
)

from coldflow.io import write_json
from coldflow.physics.scene import smooth_noise

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "book.json"

# ---------------------------------------------------------------- the book's setup
BOOK_CELLS = (64, 32)  # (y, x)
BOOK_SIZE = (200.0, 100.0)  # (y, x) domain units
BOOK_OBSTACLE = ((50.0, 50.0), 10.0)  # centre (y, x), radius
BOOK_MARKER_BOX = ((5.0, 10.0), (25.0, 75.0))  # (y, x) ranges of the marker source
BOOK_CG_REL_TOL = 1e-3
BOOK_LR = 1e-3
BOOK_LAYERS = (32, 32, 32)
BOOK_INIT_GAIN = 0.1
BOOK_BATCH = 3
BOOK_M = 4
# The book runs the solver at Re / (10 / 128^2) with the viscosity scaled by the x
# resolution squared: nu = 10 (32 / 128)^2 / Re in domain units per step (dt = 1).
BOOK_NU_TIMES_RE = 10.0 * (BOOK_CELLS[1] / 128.0) ** 2
# Mean and std of Re over the book's training simulations: the network's Re channel is
# (Re - mean) / std.
BOOK_RE_MEAN, BOOK_RE_STD = 1237.79, 1453.74
BOOK_RE_RANGE = (100.0, 4000.0)  # synthetic batches: log-uniform in this range


class BookUpdate:
    """The book's Solver-in-the-Loop training update, on synthetic batches of its layout.

    A batch is what the book's data loader yields: inputs ``(B, 4, 65, 32)`` (marker,
    x velocity, y velocity, Re; the x velocity uses ``[:64, :31]``, the marker ``[:64]``)
    and targets ``(B, m, 4, 65, 32)`` in the same layout.

    Parameters
    ----------
    batch
        Simulations per batch (the book: 3).
    m
        Unrolled corrected steps per update (the book: 4).
    device
        Torch device of network and tensors.
    inflow
        ``"phiflow"``: the inflow mask from the book's box open below y = 5, as PhiFlow
        3.4 samples it (its ``Box`` with an open lower bound becomes unbounded, so the
        mask covers the whole domain and every step restarts from the free stream);
        ``"band"``: the band y < 5 the box describes (the faces of the two lowest rows).
    batches
        Synthetic batches to cycle through (each with its own Reynolds number).
    seed
        Seed of network initialisation and synthetic data.
    """

    def __init__(
        self,
        batch: int = BOOK_BATCH,
        m: int = BOOK_M,
        device: torch.device | str = "cpu",
        inflow: str = "phiflow",
        batches: int = 4,
        seed: int = 42,
    ) -> None:
        self.batch, self.m, self.device = batch, m, torch.device(device)
        torch.manual_seed(seed)
        (ly, lx), (ny, nx) = BOOK_SIZE, BOOK_CELLS
        self.grid = dict(y=ny, x=nx, bounds=Box(y=ly, x=lx))
        zero, flat = extrapolation.ZERO, extrapolation.BOUNDARY
        # open along y (zero-gradient velocity, zero marker), closed along x
        self.v_ext = extrapolation.combine_sides(y=(flat, flat), x=(zero, zero))
        self.s_ext = extrapolation.combine_sides(y=(zero, zero), x=(flat, flat))
        if inflow == "phiflow":
            inflow_box = Box(y=(None, 5.0), x=None)
        elif inflow == "band":
            inflow_box = Box(y=(-1.0, 5.0), x=(-1.0, lx + 1.0))
        else:
            raise ValueError(f"inflow must be 'phiflow' or 'band', got {inflow!r}")
        self.inflow = inflow
        empty = StaggeredGrid(0, self.v_ext, **self.grid)
        self.inflow_mask = field.resample(inflow_box, to=empty, soft=False) * 1.0
        faces = [self.inflow_mask.vector[c].values for c in ("y", "x")]
        self.inflow_fraction = sum(float(math.sum(f)) for f in faces) / sum(
            f.shape.volume for f in faces
        )
        (y0, y1), (x0, x1) = BOOK_MARKER_BOX
        self.marker_source = CenteredGrid(Box(y=(y0, y1), x=(x0, x1)), self.s_ext, **self.grid)
        (cy, cx), radius = BOOK_OBSTACLE
        self.obstacles = [Obstacle(Sphere(center=math.vec(y=cy, x=cx), radius=radius))]
        self.net = res_net(in_channels=3, out_channels=2, layers=list(BOOK_LAYERS))
        for module in self.net.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.xavier_uniform_(module.weight, gain=BOOK_INIT_GAIN)
        self.net.to(self.device)
        self.optimizer = adam(self.net, BOOK_LR)
        self.compiled_step = math.jit_compile(self.solver_step)
        self.batches = [self._synthetic_batch(seed + i) for i in range(batches)]
        self.updates = 0

    @property
    def parameters(self) -> int:
        """Trainable parameters of the network."""
        return sum(p.numel() for p in self.net.parameters())

    # ------------------------------------------------------------------ data
    def _synthetic_batch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``(B, 4, 65, 32)`` and targets ``(B, m, 4, 65, 32)``: a free stream along
        +y with smooth random perturbations, a smooth marker, one Re for the batch."""
        gen = torch.Generator().manual_seed(seed)
        ny, nx = BOOK_CELLS
        lo, hi = np.log(BOOK_RE_RANGE[0]), np.log(BOOK_RE_RANGE[1])
        re = float(np.exp(lo + (hi - lo) * torch.rand((), generator=gen).item()))

        def noise(*lead: int) -> torch.Tensor:  # coldflow's seeded smooth noise, per field
            seeds = torch.randint(0, 2**31 - 1, (int(np.prod(lead)),), generator=gen)
            fields = [smooth_noise(int(k), (ny + 1, nx), (6, 3)) for k in seeds]
            return torch.stack(fields).reshape(*lead, ny + 1, nx).float()

        def frames(*lead: int) -> torch.Tensor:
            out = torch.empty((*lead, 4, ny + 1, nx))
            out[..., 0, :, :] = 0.5 + 0.5 * noise(*lead)
            out[..., 1, :, :] = 0.3 * noise(*lead)
            out[..., 2, :, :] = 1.0 + 0.3 * noise(*lead)
            out[..., 3, :, :] = re
            return out

        inputs, targets = frames(self.batch), frames(self.batch, self.m)
        return inputs.to(self.device), targets.to(self.device)

    def velocity_grid(self, frames: torch.Tensor) -> StaggeredGrid:
        """Staggered velocity from frames ``(B, 4, 65, 32)`` of the loader's layout."""
        vy = math.tensor(frames[:, 2], math.batch("batch"), math.spatial("y,x"))
        vx = math.tensor(frames[:, 1, :-1, :-1], math.batch("batch"), math.spatial("y,x"))
        values = math.stack([vy, vx], math.dual(vector="y,x"))
        return StaggeredGrid(values, self.v_ext, **self.grid)

    def network_input(self, velocity: StaggeredGrid, re_norm: float) -> torch.Tensor:
        """``(B, 3, 64, 32)``: x velocity padded by one column, y velocity without its
        last row, the normalised Reynolds number as a constant channel."""
        vx = math.pad(velocity.vector["x"].values, {"x": (0, 1)}, extrapolation.ZERO)
        vy = velocity.vector["y"].values.y[:-1]
        stacked = math.stack([vx, vy, math.ones(vy.shape) * re_norm], math.channel("c"))
        return stacked.native("batch,c,y,x")

    def correction_grid(self, out: torch.Tensor) -> StaggeredGrid:
        """The network's ``(B, 2, 64, 32)`` output on the staggered faces (its x channel
        without the last column, its y channel with a zero row added on top)."""
        cy = F.pad(out[:, 1], (0, 0, 0, 1))
        cx = out[:, 0, :, :-1]
        values = math.stack(
            [
                math.tensor(cy, math.batch("batch"), math.spatial("y,x")),
                math.tensor(cx, math.batch("batch"), math.spatial("y,x")),
            ],
            math.dual(vector="y,x"),
        )
        return StaggeredGrid(values, self.v_ext, **self.grid)

    # ------------------------------------------------------------------ physics
    def solver_step(
        self, marker: CenteredGrid, velocity: StaggeredGrid, re: Any
    ) -> tuple[CenteredGrid, StaggeredGrid]:
        """One step of the book's source solver (dt = 1).

        Explicit viscosity, the inflow mask (velocity (y, x) = (1, 0) where it is set),
        semi-Lagrangian advection of marker (plus its source) and velocity, then the
        pressure projection around the cylinder with CG to a relative tolerance of 1e-3
        (absolute tolerance PhiML's float32 default, zero initial guess).
        """
        velocity = diffuse.explicit(velocity, BOOK_NU_TIMES_RE / re, 1.0)
        mask = self.inflow_mask
        velocity = velocity * (1.0 - mask) + mask * math.vec(y=1.0, x=0.0)
        marker = advect.semi_lagrangian(marker + self.marker_source, velocity, 1.0)
        velocity = advect.semi_lagrangian(velocity, velocity, 1.0)
        velocity, _ = fluid.make_incompressible(
            velocity, self.obstacles, Solve("CG", BOOK_CG_REL_TOL)
        )
        return marker, velocity

    def loss(self, compiled: bool = True) -> Any:
        """The unrolled loss of the next batch: per simulation, summed over the m steps."""
        inputs, targets = self.batches[self.updates % len(self.batches)]
        self.updates += 1
        step = self.compiled_step if compiled else self.solver_step
        marker_values = math.tensor(inputs[:, 0, :-1], math.batch("batch"), math.spatial("y,x"))
        marker = CenteredGrid(marker_values, self.s_ext, **self.grid)
        velocity = self.velocity_grid(inputs)
        re = math.tensor(inputs[0, 3, 0, 0].detach())  # one Re per batch
        re_norm = float((inputs[0, 3, 0, 0] - BOOK_RE_MEAN) / BOOK_RE_STD)
        total = 0
        for i in range(self.m):
            marker, velocity = step(marker, velocity, re)
            out = self.net(self.network_input(velocity, re_norm))
            velocity = velocity + self.correction_grid(out)
            total = total + field.l2_loss(velocity - self.velocity_grid(targets[:, i]))
        return total

    def update(self, compiled: bool = True) -> None:
        """One optimiser update: loss, backward, Adam step."""
        self.optimizer.zero_grad()
        self.loss(compiled).sum.backward()
        self.optimizer.step()

    def count_iterations(self) -> dict[str, Any]:
        """CG iterations of the solves of one (uncompiled) update; see :func:`solve_counts`."""

        def forward() -> torch.Tensor:
            return self.loss(compiled=False).sum

        self.optimizer.zero_grad()
        counts = bench_sol.solve_counts(forward)
        self.optimizer.zero_grad()
        return counts

    def describe(self) -> dict[str, Any]:
        """JSON description of the setup."""
        return {
            "cells": list(BOOK_CELLS),
            "domain_size": list(BOOK_SIZE),
            "boundary": "y open (velocity zero-gradient), x closed (velocity zero)",
            "obstacle": {"center": list(BOOK_OBSTACLE[0]), "radius": BOOK_OBSTACLE[1]},
            "solver": {
                "method": "CG",
                "rel_tol": BOOK_CG_REL_TOL,
                "abs_tol": "PhiML default (1e-5 in float32)",
                "max_iterations": 1000,
                "x0": "zero",
            },
            "inflow_mask": self.inflow,
            "inflow_mask_fraction_of_faces": self.inflow_fraction,
            "net": f"phiml res_net 3 -> 2, layers {list(BOOK_LAYERS)}, xavier gain 0.1",
            "net_parameters": self.parameters,
            "loss": "sum over steps of field.l2_loss(corrected - reference), sum over batch",
            "optimizer": f"Adam lr {BOOK_LR:g} (PhiML adam, eps 1e-7)",
            "batch": self.batch,
            "m": self.m,
            "re_range": list(BOOK_RE_RANGE),
            "synthetic_batches": len(self.batches),
        }


# ---------------------------------------------------------------- coldflow
class ColdflowUpdate:
    """coldflow's Solver-in-the-Loop update, built as ``bench_sol.py`` builds it.

    Parameters
    ----------
    data
        Fluid data set file (its scene and pressure-solver settings are used).
    net
        ``"sol_resnet"`` or ``"sol_resnet_small"``.
    batch, m
        Windows per batch and unrolled steps.
    device
        Torch device.
    """

    def __init__(
        self,
        data: Path,
        net: str,
        batch: int,
        m: int,
        device: torch.device,
    ) -> None:
        self.job = {"data": str(data), "net": net, "m": m, "batch": batch, "solver": {}}
        self.device, self.batch_size, self.m = device, batch, m
        self.model, self.batch = bench_sol._model_and_batch(self.job, device, stride=7)
        self.cfg = bench_sol.sol_config(self.job)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.cfg.training.optimizer.lr
        )

    @property
    def parameters(self) -> int:
        """Trainable parameters of the network."""
        return sum(p.numel() for p in self.model.parameters())

    def update(self) -> None:
        """One optimiser update: unrolled loss, backward, Adam step."""
        self.optimizer.zero_grad(set_to_none=True)
        self.model(self.batch).backward()
        self.optimizer.step()

    def count_iterations(self) -> dict[str, Any] | str:
        """Iterations of the pressure solves of one update, on an uncompiled copy of the
        scene with the trained weights; ``"direct"`` for a non-iterative solver."""
        scene = self.model.scene
        if scene.solver.direct:
            return "direct"
        eager, _ = bench_sol._model_and_batch(self.job, self.device, jit=False, stride=7)
        eager.load_state_dict(self.model.state_dict())
        return bench_sol.solve_counts(lambda: eager(self.batch))

    def describe(self) -> dict[str, Any]:
        """JSON description: net, batch, m, scene and its pressure solver."""
        return {
            "net": self.cfg.model.kind,
            "net_parameters": self.parameters,
            "batch": self.batch_size,
            "m": self.m,
            "loss": self.cfg.method.loss.name,
            "optimizer": f"Adam lr {self.cfg.training.optimizer.lr:g}",
            "scene": self.model.scene.describe(),
        }


# ---------------------------------------------------------------- timing
def timed_rounds(
    updates: dict[str, Callable[[], None]], rounds: int, iters: int, device: torch.device
) -> dict[str, list[float]]:
    """Seconds per update of each variant in each round, the variants taking turns.

    One untimed update of each variant first (tracing, first allocations).
    """
    for update in updates.values():
        update()
    seconds: dict[str, list[float]] = {name: [] for name in updates}
    for r in range(rounds):
        for name, update in updates.items():
            _machine.sync(device)
            t0 = time.perf_counter()
            for _ in range(iters):
                update()
            _machine.sync(device)
            seconds[name].append((time.perf_counter() - t0) / iters)
        line = ", ".join(f"{n} {s[-1]:.3f}" for n, s in seconds.items())
        print(f"round {r + 1}/{rounds}: s/update {line}", flush=True)
    return seconds


def summary(seconds: list[float]) -> dict[str, float]:
    """Median and interquartile range (25th to 75th percentile) of per-round times."""
    q25, q50, q75 = np.percentile(seconds, [25, 50, 75])
    return {
        "median_s": float(q50),
        "q25_s": float(q25),
        "q75_s": float(q75),
        "iqr_s": float(q75 - q25),
    }


def iterations_text(counts: dict[str, Any] | str | None) -> str:
    """``"fwd 92 / adj 118-134"``: the range of iterations per forward and adjoint solve."""
    if counts is None:
        return "-"
    if isinstance(counts, str):
        return counts

    def span(values: list[int]) -> str:
        if not values:
            return "none"
        lo, hi = min(values), max(values)
        return str(lo) if lo == hi else f"{lo}-{hi}"

    return f"fwd {span(counts['forward'])} / adj {span(counts['adjoint'])}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="default: generate a small set")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20, help="updates per variant and round")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--book-inflow",
        default="phiflow",
        choices=["phiflow", "band"],
        help="phiflow: the book's inflow mask as PhiFlow 3.4 samples it (the whole "
        "domain); band: the band y < 5 it describes",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 updates")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.iters = 2, 3
    torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda":
        TORCH.set_default_device("GPU")  # tensors PhiFlow creates itself (masks, matrices)
    math.set_global_precision(32)
    warnings.filterwarnings("ignore", module=r"phi(ml)?\.")  # deprecations, sparse CSR beta
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
    m = BOOK_M
    with tempfile.TemporaryDirectory(prefix="coldflow-bench-book-") as tmp:
        data = args.data
        if data is None:
            # 2 simulations x 2 windows of m steps (stride 7): enough for a batch of 4
            small = Path(tmp) / "karman_small.h5"
            data, seconds = bench_sol.make_small_data("karman", small, m + 8, 2)
            print(f"generated a small Kármán set (2 simulations) in {seconds:.0f} s")
            torch.set_num_threads(args.threads)  # generating sets the data config's threads
        book = BookUpdate(BOOK_BATCH, m, device, args.book_inflow)
        same = ColdflowUpdate(data, "sol_resnet", BOOK_BATCH, m, device)
        study = ColdflowUpdate(data, "sol_resnet_small", 4, m, device)
        variants = {"book": book, "coldflow_same": same, "coldflow_study": study}
        seconds = timed_rounds(
            {name: v.update for name, v in variants.items()}, args.rounds, args.iters, device
        )
        iterations: dict[str, Any] = {}
        for name, v in variants.items():
            try:
                iterations[name] = v.count_iterations()
            except Exception as e:  # counting is a side measurement: never lose the times
                iterations[name] = None
                print(f"{name}: could not count solver iterations ({type(e).__name__}: {e})")
        setups = {name: v.describe() for name, v in variants.items()}
        data_name = str(data)
    results = {name: summary(s) | {"rounds_s": s} for name, s in seconds.items()}
    ratios = {
        "book_over_coldflow_same": results["book"]["median_s"]
        / results["coldflow_same"]["median_s"],
        "book_over_coldflow_study": results["book"]["median_s"]
        / results["coldflow_study"]["median_s"],
    }
    labels = {
        "book": f"book res_net {'-'.join(map(str, BOOK_LAYERS))}, batch {BOOK_BATCH}",
        "coldflow_same": f"coldflow sol_resnet, batch {BOOK_BATCH}",
        "coldflow_study": "coldflow sol_resnet_small, batch 4",
    }
    print(
        f"\nSolver-in-the-Loop update, m = {m}, 64x32, {device}, {torch.get_num_threads()} "
        f"threads, {args.rounds} rounds x {args.iters} updates (book inflow: {args.book_inflow})"
    )
    solver = setups["coldflow_same"]["scene"]["solver"]
    start = "" if same.model.scene.solver.direct else ", warm start"
    settings = ", ".join(f"{k} {v}" for k, v in solver.items())
    print(f"pressure solve: book CG rel_tol 1e-3, zero start; coldflow {settings}{start}")
    print(f"{'variant':<38} {'s/update':>9} {'IQR':>7}  CG iterations per solve")
    for name, row in results.items():
        print(
            f"{labels[name]:<38} {row['median_s']:9.3f} {row['iqr_s']:7.3f}  "
            f"{iterations_text(iterations.get(name))}"
        )
    print(
        f"book / coldflow sol_resnet: x{ratios['book_over_coldflow_same']:.2f}; "
        f"book / coldflow study: x{ratios['book_over_coldflow_study']:.2f}"
    )
    write_json(
        args.out,
        {
            "what": "seconds per Solver-in-the-Loop training update (loss, backward, Adam)",
            "variants": results,
            "ratios": ratios,
            "cg_iterations": iterations,
            "cg_iterations_note": "per pressure solve of one update (max over the batch), "
            "counted with phiml.math.SolveTape on an uncompiled copy of the step",
            "setup": setups,
            "rounds": args.rounds,
            "iters": args.iters,
            "book_inflow": args.book_inflow,
            "data": data_name if args.data is not None else "generated (bench_sol small set)",
            "device": str(device),
            "threads": torch.get_num_threads(),
            "versions": {"phiflow": phi.__version__, "phiml": phiml.__version__},
            "machine": _machine.machine_info(device),
            "platform": platform.platform(),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
