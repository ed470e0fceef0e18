"""Speed of Solver-in-the-Loop at the study's sizes: what an update costs and where its
time goes, for each pressure solve; rollouts and simulation with each.

Scenes (``--scenes``): the Kármán wake (128x64 reference -> 64x32 source, batch 4) and
the buoyant plume (128x128 -> 64x64, batch 4, float64 as the plume data sets), on small
data sets generated first into a temporary directory (the study's resolutions, a few
frames: about 10 s each here with the default direct solve; the time is printed).
Pressure solves (``--solvers``): ``direct`` (the matrix factorised once, sparse LU on a
CPU), ``CG`` (PhiML's CG, adjoint converged to its relative tolerance) and ``CG
truncated`` (the adjoint stopped by the absolute tolerance 1e-5, as coldflow first did).

For each scene, solver and ``m`` (``--m``, default 4 and 16), in a fresh process (so that
its peak memory is its own):

- updates/s of one optimiser step (unrolled loss over ``m`` corrected steps, backward
  through network and solver, Adam), median of ``--rounds`` rounds of ``--iters``;
- the split of an update: advection (everything of a solver step but the pressure solve),
  forward solve, network, loss, adjoint solve, the rest of the backward pass (network and
  advection), optimizer. The sparse-LU solves are timed where they run; a CG solve runs
  inside the compiled step, out of reach of any hook, so its time is the difference to
  the direct run of the same scene and ``m`` (same advection, network and loss);
- pressure-solve iterations per forward and per adjoint solve (the batch's maximum,
  counted on an eager copy of the step with PhiML's ``SolveTape``), or "direct";
- arithmetic against overhead: the FLOPs of one CG iteration (its sparse matrix-vector
  product and vector updates) or one LU solve (the triangular solves) against the time
  it takes, with the rate of the same product on 256 right-hand sides (where overhead is
  amortised) as what the arithmetic alone costs;
- peak resident memory of the process, and the bytes autograd keeps for the backward pass;
- rollouts: source, corrected and high-resolution reference steps/s, and how far the
  source rollout of each solver ends from the direct one after ``--steps`` steps.

    python benchmarks/bench_sol.py [--scenes karman plume] [--solvers direct CG ...]
        [--m 4 16] [--batch 4] [--iters 5] [--rounds 3] [--steps 20] [--threads 1]
        [--net sol_resnet_small] [--device auto] [--quick] [--out benchmarks/results/sol.json]

Prints tables and writes JSON; never asserts on time.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import platform
import resource
import statistics
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import _machine
import torch

from coldflow.config.base import load_config
from coldflow.config.fluids import FluidDataConfig, PressureSolverConfig
from coldflow.data.store import FieldData, FieldWindows
from coldflow.io import write_json
from coldflow.physics import FluidState, build_scene
from coldflow.simulate.run import generate
from coldflow.tasks.fluid import data_config
from coldflow.tasks.sol.config import SolRunConfig
from coldflow.tasks.sol.task import build_sol_model, data_statistics, source_scene, with_solver

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "sol.json"
SCENES = {  # data set config, overrides of its simulations, the scene parameter
    "karman": (ROOT / "configs" / "fluids" / "karman_cpu.yaml", "re", 1e5, 8e5),
    "plume": (ROOT / "configs" / "fluids" / "plume_cpu.yaml", "buoyancy", 3.0, 9.0),
}
SOLVERS = {
    "direct": {"method": "direct"},
    "CG": {"method": "CG"},
    "CG truncated": {"method": "CG", "adjoint_abs_tol": 1e-5},
}
PARTS = (
    "advection",
    "forward solve",
    "network",
    "loss",
    "adjoint solve",
    "backward, rest",
    "optimizer",
)


def make_small_data(scene: str, out: Path, frames: int, sims: int) -> tuple[Path, float]:
    """A small data set of ``scene`` at the study's resolutions; (path, seconds)."""
    config, name, lo, hi = SCENES[scene]
    values = [lo + (hi - lo) * i / max(sims - 1, 1) for i in range(sims)]
    overrides = [
        "spin_up=0",
        "warmup=5",
        f"frames={5 + frames}",
        f"simulations.train.params={{{name}: {values}}}",
        f"simulations.train.seeds={list(range(sims))}",
        "simulations.test.params={}",
        "simulations.test.seeds=[]",
        f"batch_size={sims}",
    ]
    cfg = load_config(config, FluidDataConfig, overrides)
    t0 = time.perf_counter()
    generate(cfg, out, progress=False, log=lambda msg: None)
    return out, time.perf_counter() - t0


class StepTimer:
    """Seconds spent in the solver step, the network and the loss while active."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.active = False
        scene = model.scene
        original = scene.step

        def step(*a, **k):
            if not self.active:
                return original(*a, **k)
            _machine.sync(device)
            t0 = time.perf_counter()
            out = original(*a, **k)
            _machine.sync(device)
            self.seconds["solver step"] += time.perf_counter() - t0
            return out

        scene.step = step  # instance attribute: only this process's scene object
        self._restore = lambda: delattr(scene, "step")
        for name, module in (("network", model.net), ("loss", model.shared.loss)):
            module.register_forward_pre_hook(self._start(name))
            module.register_forward_hook(self._stop(name))
        self._t0: dict[str, float] = {}

    def _start(self, name: str):
        def hook(*_):
            if self.active:
                _machine.sync(self.device)
                self._t0[name] = time.perf_counter()

        return hook

    def _stop(self, name: str):
        def hook(*_):
            if self.active:
                _machine.sync(self.device)
                self.seconds[name] += time.perf_counter() - self._t0.pop(name)

        return hook

    def close(self) -> None:
        self._restore()


def sol_config(job: dict) -> SolRunConfig:
    """The SOL run config of a benchmark job (data, net, m, MSE, solver keys)."""
    return SolRunConfig.model_validate(
        {
            "data": {"path": job["data"]},
            "model": {"kind": job["net"]},
            "method": {"m": job["m"], "loss": {"name": "mse"}, "solver": job["solver"]},
        }
    )


def _model_and_batch(job: dict, device: torch.device, jit: bool = True, stride: int = 1):
    """The job's SOL model (its source solver with the job's solver keys) and a batch of
    its first windows; ``jit=False``: an eager copy of the scene (PhiML reports each
    solve's iterations only outside a trace)."""
    cfg = sol_config(job)
    stats = data_statistics(job["data"])
    scene = source_scene(cfg, stats)
    if not jit:
        scene = dataclasses.replace(scene, jit=False)
    model = build_sol_model(cfg, scene, stats).to(device)
    fields = ("velocity", "density") if "buoyancy" in scene.param_names else ("velocity",)
    windows = FieldWindows(job["data"], job["m"], stride=stride, fields=fields)
    if len(windows) < job["batch"]:
        raise ValueError(f"{job['data']} has {len(windows)} windows, need {job['batch']}")
    batch = torch.utils.data.default_collate([windows[i] for i in range(job["batch"])])
    return model, {k: v.to(device) for k, v in batch.items()}


def solve_counts(forward) -> dict:
    """Iterations of the linear solves of ``forward()`` and of its backward pass.

    Both run inside one ``phiml.math.SolveTape``: the solves recorded before the backward
    pass are the forward ones, the rest the adjoint ones; each gives the most iterations
    of any batch entry (a batched CG runs until all have converged).
    """
    from phiml import math

    with warnings.catch_warnings(), math.SolveTape() as tape:
        warnings.simplefilter("ignore")  # "two results for the same solve settings"
        loss = forward()
        n_forward = len(tape)
        loss.backward()
    counts = [int(info.iterations.numpy().max()) for info in tape]
    return {"forward": counts[:n_forward], "adjoint": counts[n_forward:]}


def _iterations(job: dict, device: torch.device) -> dict:
    """Iterations of each forward and adjoint pressure solve of one update (eager)."""
    model, batch = _model_and_batch(job, device, jit=False)
    return solve_counts(lambda: model(batch))


def _rates(system, batch: int, dtype: torch.dtype) -> dict:
    """FLOPs of one CG iteration and one LU solve of ``system``, and the rate of the same
    sparse product on 256 right-hand sides (the arithmetic with overhead amortised)."""
    n, nnz = system.size, system.matrix.nnz
    out = {"cells": n, "matrix_nonzeros": int(nnz)}
    out["cg_iteration_flop"] = int(batch * (2 * nnz + 10 * n))
    a = system.matrix.tocsr()
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
    csr = torch.sparse_csr_tensor(
        torch.as_tensor(a.indptr), torch.as_tensor(a.indices), torch.as_tensor(a.data, dtype=dtype)
    )
    wide = torch.randn(n, 256, dtype=dtype)
    seconds = _machine.timed(lambda: csr @ wide, torch.device("cpu"))
    out["sparse_product_gflops_256"] = 2 * nnz * 256 / seconds / 1e9
    kind, factor = system.factor(torch.device("cpu"))
    if kind == "sparse-LU":
        import numpy as np

        lu = factor.lu
        nonzeros = int(lu.L.nnz + lu.U.nnz)
        out["lu_factor_nonzeros"] = nonzeros
        out["lu_solve_flop"] = batch * 2 * nonzeros
        rates = []
        for k in (batch, 256):  # SuperLU's many-column solve is not always the faster one
            rhs = np.random.default_rng(0).standard_normal((lu.shape[0], k))
            seconds = _machine.timed(lambda rhs=rhs: lu.solve(rhs), torch.device("cpu"))
            rates.append(2 * nonzeros * k / seconds / 1e9)
        out["lu_solve_gflops_batch"], out["lu_solve_gflops_256"] = rates
        out["lu_solve_gflops_best"] = max(rates)
    return out


def measure(job: dict) -> dict:
    """One scene, solver and m: updates/s, split, iterations, memory, rollouts (runs in a
    fresh process)."""
    from coldflow.physics.projection import PressureSystem, solve_timings

    torch.set_num_threads(job["threads"])
    device = torch.device(job["device"])
    model, batch = _model_and_batch(job, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        model(batch).backward()
        opt.step()

    one()  # tracing, factorisation
    rounds = []
    for _ in range(job["rounds"]):
        _machine.sync(device)
        t0 = time.perf_counter()
        for _ in range(job["iters"]):
            one()
        _machine.sync(device)
        rounds.append((time.perf_counter() - t0) / job["iters"])
    timer = StepTimer(model, device)
    split: dict[str, float] = defaultdict(float)
    reps = 3
    for _ in range(reps):
        timer.seconds.clear()
        timer.active = True
        opt.zero_grad(set_to_none=True)
        with solve_timings() as solves:
            _machine.sync(device)
            t0 = time.perf_counter()
            loss = model(batch)
            _machine.sync(device)
            t1 = time.perf_counter()
            timer.active = False
            loss.backward()
            _machine.sync(device)
            t2 = time.perf_counter()
        opt.step()
        _machine.sync(device)
        t3 = time.perf_counter()
        parts = {
            "solver step": timer.seconds["solver step"],
            "network": timer.seconds["network"],
            "loss": timer.seconds["loss"],
            "forward, rest": (t1 - t0) - sum(timer.seconds.values()),
            "backward": t2 - t1,
            "optimizer": t3 - t2,
            "lu forward": solves.get("forward", 0.0),
            "lu adjoint": solves.get("adjoint", 0.0),
        }
        for k, v in parts.items():
            split[k] += v / reps
    timer.close()
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(batch)
    scene = model.scene
    out = {
        "seconds_per_update": statistics.median(rounds),
        "seconds_per_update_rounds": rounds,
        "raw_split_seconds": dict(split),
        "saved_for_backward_mb": saved[0] / 2**20,
        "solver": scene.solver.method,
        "factorisation": None,
    }
    if scene.solver.direct:
        system = scene.pressure_system()
        out["factorisation"] = system.factor(device)[0]
        out["iterations"] = "direct"
    else:
        out["iterations"] = _iterations(job, device)
        from phi.physics import fluid

        system = PressureSystem(
            scene.domain,
            [fluid.Obstacle(g) for g in scene._obstacle_geometries()],
            "sparse-LU",
            scene.dtype,
        )
    out["arithmetic"] = _rates(system, job["batch"], scene.dtype)
    out["rollout"] = _rollouts(job, model, device) if job["rollouts"] else None
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _rollouts(job: dict, model, device: torch.device) -> dict:
    """Steps/s of source, corrected and high-resolution solver, and the source's end state."""
    with FieldData(job["data"]) as data:
        sims = data.simulations()[: job["batch"]]
        t = data.warmup
        v = torch.stack(
            [torch.from_numpy(data.read(s, "downsampled", "velocity", t)) for s in sims]
        )
        vh = torch.stack([torch.from_numpy(data.read(s, "reference", "velocity", t)) for s in sims])
        rho = rho_h = None
        if "buoyancy" in data.param_names:
            rho = torch.stack(
                [torch.from_numpy(data.read(s, "downsampled", "density", t)) for s in sims]
            )
            rho_h = torch.stack(
                [torch.from_numpy(data.read(s, "reference", "density", t)) for s in sims]
            )
        params = torch.tensor([[s.params[k] for k in data.param_names] for s in sims])
    v, params = v.to(device), params.to(device)
    rho = None if rho is None else rho.to(device)
    out = {}
    for name, correct in (("source", False), ("corrected", True)):
        model.rollout(v, params, 1, correct=correct, density=rho)  # trace
        result = model.rollout(v, params, job["steps"], correct=correct, density=rho)
        out[name] = len(result.step_seconds) / sum(result.step_seconds)
        if name == "source":
            out["source_end"] = result.velocity[-1].cpu()
    high = build_scene(with_solver(data_config(job["data"]), PressureSolverConfig(**job["solver"])))
    state = FluidState(vh.to(high.dtype).to(device), None if rho_h is None else rho_h.to(device))
    p = {k: params[:, i].to(device) for i, k in enumerate(high.param_names)}
    with torch.no_grad():
        state = high.step(state, p)  # trace
        _machine.sync(device)
        t0 = time.perf_counter()
        for _ in range(job["steps"]):
            state = high.step(state, p)
        _machine.sync(device)
    out["reference_high"] = job["steps"] / (time.perf_counter() - t0)
    out["reference_end"] = state.velocity.cpu()
    return out


def _split(results: dict, scene: str, m: int) -> None:
    """Fill in each result's split (CG solve times by difference to the direct run)."""
    base = results.get(("direct", scene, m))
    for (_, sc, mm), r in results.items():
        if sc != scene or mm != m:
            continue
        raw = r["raw_split_seconds"]
        if r["iterations"] == "direct":
            fwd, adj = raw["lu forward"], raw["lu adjoint"]
        elif base is not None and base["factorisation"] == "sparse-LU":
            b = base["raw_split_seconds"]
            fwd = raw["solver step"] - (b["solver step"] - b["lu forward"])
            adj = raw["backward"] - (b["backward"] - b["lu adjoint"])
        else:
            fwd = adj = float("nan")
        split = {
            "advection": raw["solver step"] - fwd + raw["forward, rest"],
            "forward solve": fwd,
            "network": raw["network"],
            "loss": raw["loss"],
            "adjoint solve": adj,
            "backward, rest": raw["backward"] - adj,
            "optimizer": raw["optimizer"],
        }
        total = sum(split.values())
        r["split_seconds"] = split
        r["split_fraction"] = {k: v / total for k, v in split.items()}
        its = r["iterations"]
        a = r["arithmetic"]
        if its != "direct" and its["forward"]:
            per_iter = fwd / sum(its["forward"])
            a["cg_seconds_per_iteration"] = per_iter
            a["cg_arithmetic_share"] = (
                a["cg_iteration_flop"] / (a["sparse_product_gflops_256"] * 1e9) / per_iter
            )
        elif its == "direct" and "lu_solve_flop" in a and r["raw_split_seconds"]["lu forward"]:
            per_solve = fwd / m
            a["lu_seconds_per_solve"] = per_solve
            a["lu_arithmetic_share"] = (
                a["lu_solve_flop"] / (a["lu_solve_gflops_best"] * 1e9) / per_solve
            )


def _fmt_its(its) -> str:
    if its == "direct":
        return "direct"
    f, a = its["forward"], its["adjoint"]
    return f"{min(f)}-{max(f)} / {min(a)}-{max(a)}" if f and a else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    parser.add_argument("--solvers", nargs="+", default=list(SOLVERS), choices=list(SOLVERS))
    parser.add_argument(
        "--net", default="sol_resnet_small", choices=["sol_resnet", "sol_resnet_small"]
    )
    parser.add_argument("--m", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--quick", action="store_true", help="Kármán, m = 4, 2 x 2 updates")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.quick:
        args.scenes, args.m, args.iters, args.rounds, args.steps = ["karman"], [4], 2, 2, 5
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    ctx = multiprocessing.get_context("spawn")
    results: dict[tuple[str, str, int], dict] = {}
    generated = {}
    with tempfile.TemporaryDirectory(prefix="coldflow-bench-sol-") as tmp:
        for scene in args.scenes:
            path, seconds = make_small_data(
                scene, Path(tmp) / f"{scene}.h5", max(args.m) + 2, args.batch
            )
            generated[scene] = {"seconds": seconds, "resolution": None}
            print(f"generated a small {scene} set ({args.batch} simulations) in {seconds:.1f} s")
            for m in args.m:
                for solver in args.solvers:
                    job = {
                        "data": str(path),
                        "net": args.net,
                        "m": m,
                        "batch": args.batch,
                        "solver": SOLVERS[solver],
                        "iters": args.iters,
                        "rounds": args.rounds,
                        "steps": args.steps,
                        "threads": args.threads,
                        "device": args.device,
                        "rollouts": m == args.m[0],
                    }
                    with ctx.Pool(1) as pool:
                        results[(solver, scene, m)] = pool.apply(measure, (job,))
                    r = results[(solver, scene, m)]
                    print(f"  {scene} m={m} {solver}: {r['seconds_per_update']:.3f} s/update")
                _split(results, scene, m)
            cfg = data_config(path)
            generated[scene]["resolution"] = [list(cfg.resolution), list(cfg.low_resolution)]
    print(
        f"\nSolver-in-the-Loop update ({args.net}, MSE, batch {args.batch}, {device}, "
        f"{args.threads} threads): s/update, split, iterations per forward / adjoint solve"
    )
    head = "  ".join(f"{p:>{max(len(p), 6)}}" for p in PARTS)
    print(f"{'scene':>7} {'m':>3} {'solver':>13} {'s/upd':>7} {'upd/s':>6}  {head}  iterations")
    for (solver, scene, m), r in results.items():
        fr = r.get("split_fraction", {})
        shares = "  ".join(f"{fr.get(p, float('nan')):>{max(len(p), 6)}.0%}" for p in PARTS)
        print(
            f"{scene:>7} {m:>3} {solver:>13} {r['seconds_per_update']:7.3f} "
            f"{1 / r['seconds_per_update']:6.2f}  {shares}  {_fmt_its(r['iterations'])}"
        )
    print("\nmemory: peak RSS of the process / saved for backward (MB)")
    for (solver, scene, m), r in results.items():
        print(
            f"{scene:>7} {m:>3} {solver:>13} {r['peak_rss_mb']:8.0f} "
            f"{r['saved_for_backward_mb']:8.1f}"
        )
    print("\narithmetic against overhead (per CG iteration / per LU solve of the batch)")
    for (solver, scene, m), r in results.items():
        a = r["arithmetic"]
        if "cg_seconds_per_iteration" in a:
            print(
                f"{scene:>7} {m:>3} {solver:>13} CG iteration "
                f"{a['cg_seconds_per_iteration'] * 1e6:7.1f} "
                f"us for {a['cg_iteration_flop'] / 1e6:.2f} MFLOP: arithmetic "
                f"{a['cg_arithmetic_share']:.0%} at {a['sparse_product_gflops_256']:.2f} GFLOP/s"
            )
        if "lu_seconds_per_solve" in a:
            print(
                f"{scene:>7} {m:>3} {solver:>13} LU solve {a['lu_seconds_per_solve'] * 1e6:9.1f} "
                f"us for {a['lu_solve_flop'] / 1e6:.2f} MFLOP: arithmetic "
                f"{a['lu_arithmetic_share']:.0%} at {a['lu_solve_gflops_best']:.2f} GFLOP/s"
            )
    print("\nrollouts (steps/s of the batch); source and reference end state vs direct")
    for (solver, scene, m), r in results.items():
        ro = r.get("rollout")
        if not ro:
            continue
        base = results.get(("direct", scene, m), {}).get("rollout") or ro
        diffs = []
        for key in ("source_end", "reference_end"):
            ref = base[key]
            diffs.append(float((ro[key] - ref).abs().max() / ref.abs().max()))
        ro["relative_difference_to_direct"] = {"source": diffs[0], "reference": diffs[1]}
        print(
            f"{scene:>7} {solver:>13} source {ro['source']:7.1f}  corrected {ro['corrected']:7.1f}"
            f"  reference {ro['reference_high']:6.1f}  max rel. diff source {diffs[0]:.1e}, "
            f"reference {diffs[1]:.1e}"
        )
    for r in results.values():
        if r.get("rollout"):
            r["rollout"].pop("source_end")
            r["rollout"].pop("reference_end")
    write_json(
        args.out,
        {
            "net": args.net,
            "loss": "mse",
            "batch": args.batch,
            "device": str(device),
            "threads": args.threads,
            "generated": generated,
            "results": [
                {"solver": s, "scene": sc, "m": m, **r} for (s, sc, m), r in results.items()
            ],
            "machine": _machine.machine_info(device),
            "platform": platform.platform(),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
