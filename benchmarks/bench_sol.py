"""Speed of Solver-in-the-Loop: training iterations/s (with their split), rollout steps/s,
and the PhiFlow step compiled against eager.

On a fluid data set (``--data``; without it, a small Kármán set of the study's resolutions,
128x64 -> 64x32, 2 simulations, is generated into a temporary directory first, ~10 s):

- training: one optimiser step (unrolled loss over ``m`` corrected steps, backward
  through solver and network, Adam) for each ``m`` of ``--m`` (default 1, 4, 16), with a
  batch of ``--batch`` windows and the loss of ``--loss``; each split into solver forward,
  network forward, loss and backward (through network and solver), timed with hooks around
  the solver step, the network and the loss of one step (synchronised on CUDA);
- rollout: solver steps/s of the low-resolution source solver alone, of the corrected
  solver (step + network) and of the high-resolution reference solver, for a batch of
  ``--batch`` simulations;
- simulate: frames/s of the same low-resolution scene stepped with PhiML's ``jit_compile``
  (what coldflow does) and eagerly (plain PhiFlow), same batch.

    python benchmarks/bench_sol.py [--data FILE.h5] [--net sol_resnet_small] [--loss mse]
        [--m 1 4 16] [--batch 4] [--iters 5] [--steps 20] [--threads N] [--device auto]
        [--quick] [--out benchmarks/results/sol.json]

Prints a table and writes JSON; never asserts on time.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import _machine
import torch

from coldflow.config.base import load_config
from coldflow.config.fluids import FluidDataConfig
from coldflow.data.store import FieldData, FieldWindows
from coldflow.io import write_json
from coldflow.physics import FluidState, build_scene
from coldflow.simulate.run import generate
from coldflow.tasks.fluid import data_config
from coldflow.tasks.sol.config import SolRunConfig
from coldflow.tasks.sol.task import build_sol_model, data_statistics, low_scene

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "sol.json"
SMALL_SET = ROOT / "configs" / "fluids" / "karman_cpu.yaml"


def make_small_data(out: Path, frames_after_warmup: int, sims: int) -> Path:
    """A small Kármán data set (the study's resolutions, ``sims`` training simulations)."""
    re = [round(1e5 + 7e5 * i / max(sims - 1, 1), -3) for i in range(sims)]
    overrides = [
        "warmup=20",
        f"frames={20 + frames_after_warmup + 1}",
        f"simulations.train.params={{re: {re}}}",
        f"simulations.train.seeds={list(range(sims))}",
        "simulations.test.params={}",
        "simulations.test.seeds=[]",
        "batch_size=2",
    ]
    cfg = load_config(SMALL_SET, FluidDataConfig, overrides)
    t0 = time.perf_counter()
    generate(cfg, out, progress=False, log=lambda msg: None)
    print(f"generated {out} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


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
            self.seconds["solver forward"] += time.perf_counter() - t0
            return out

        scene.step = step  # instance attribute: only this benchmark's scene object
        self._restore = lambda: delattr(scene, "step")
        for name, module in (("network forward", model.net), ("loss", model.shared.loss)):
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


def training_rate(args, stats, m: int, device: torch.device) -> dict:
    """Optimiser steps/s (one untimed step first: tracing) and the split of one step."""
    cfg = SolRunConfig.model_validate(
        {
            "data": {"path": str(args.data)},
            "model": {"kind": args.net},
            "method": {"m": m, "loss": {"name": args.loss}},
        }
    )
    model = build_sol_model(cfg, low_scene(args.data), stats).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    windows = FieldWindows(args.data, m, stride=7)
    batch = torch.utils.data.default_collate([windows[i] for i in range(args.batch)])
    batch = {k: v.to(device) for k, v in batch.items()}

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        model(batch).backward()
        opt.step()

    one()
    _machine.sync(device)
    t0 = time.perf_counter()
    for _ in range(args.iters):
        one()
    _machine.sync(device)
    rate = args.iters / (time.perf_counter() - t0)
    # the split, on separate steps (the hooks' synchronisation costs a little)
    timer = StepTimer(model, device)
    timer.active = True
    split: dict[str, float] = defaultdict(float)
    reps = max(1, min(args.iters, 3))
    for _ in range(reps):
        timer.seconds.clear()
        opt.zero_grad(set_to_none=True)
        _machine.sync(device)
        t0 = time.perf_counter()
        loss = model(batch)
        _machine.sync(device)
        t1 = time.perf_counter()
        loss.backward()
        _machine.sync(device)
        t2 = time.perf_counter()
        opt.step()
        _machine.sync(device)
        t3 = time.perf_counter()
        forward_rest = (t1 - t0) - sum(timer.seconds.values())
        for name, s in timer.seconds.items():
            split[name] += s / reps
        split["other forward"] += forward_rest / reps
        split["backward (network + solver)"] += (t2 - t1) / reps
        split["optimizer"] += (t3 - t2) / reps
    timer.close()
    total = sum(split.values())
    return {
        "iterations_per_s": rate,
        "windows_per_s": rate * args.batch,
        "split_seconds": dict(split),
        "split_fraction": {k: v / total for k, v in split.items()},
    }


def rollout_rates(args, stats, device: torch.device) -> dict[str, float]:
    """Steps per second of source, corrected and high-resolution solver."""
    cfg = SolRunConfig.model_validate(
        {"data": {"path": str(args.data)}, "model": {"kind": args.net}}
    )
    model = build_sol_model(cfg, low_scene(args.data), stats, with_loss=False).to(device)
    with FieldData(args.data) as data:
        sims = data.simulations()[: args.batch]
        t = data.warmup
        v = torch.stack(
            [torch.from_numpy(data.read(s, "downsampled", "velocity", t)) for s in sims]
        )
        vh = torch.stack([torch.from_numpy(data.read(s, "reference", "velocity", t)) for s in sims])
        params = torch.tensor([[s.params[k] for k in data.param_names] for s in sims])
    v, params = v.to(device), params.to(device)
    out = {}
    for name, correct in (("source", False), ("corrected", True)):
        model.rollout(v, params, 1, correct=correct)  # trace
        seconds = model.rollout(v, params, args.steps, correct=correct).step_seconds
        out[name] = len(seconds) / sum(seconds)
    high = build_scene(data_config(args.data))
    out["reference_high"] = 1.0 / _seconds_per_step(high, vh, params, args.steps, device)
    out["simulations"] = len(sims)
    return out


def _seconds_per_step(scene, velocity, params, steps: int, device: torch.device) -> float:
    state = FluidState(velocity.to(scene.dtype).to(device))
    p = {k: params[:, i].to(device) for i, k in enumerate(scene.param_names)}
    with torch.no_grad():
        state = scene.step(state, p)  # trace
        _machine.sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            state = scene.step(state, p)
        _machine.sync(device)
    return (time.perf_counter() - t0) / steps


def simulate_rates(args, device: torch.device) -> dict[str, float]:
    """Frames/s (simulation steps x batch) of the low scene, jit-compiled and eager PhiFlow."""
    scene = low_scene(args.data)
    eager = dataclasses.replace(scene, jit=False)
    with FieldData(args.data) as data:
        sims = data.simulations()[: args.batch]
        v = torch.stack(
            [torch.from_numpy(data.read(s, "downsampled", "velocity", data.warmup)) for s in sims]
        )
        params = torch.tensor([[s.params[k] for k in data.param_names] for s in sims])
    out = {}
    for name, sc, steps in (("jit_compile", scene, args.steps), ("eager", eager, 3)):
        out[name] = len(sims) / _seconds_per_step(sc, v, params, steps, device)
    out["jit_over_eager"] = out["jit_compile"] / out["eager"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="default: generate a small set")
    parser.add_argument(
        "--net", default="sol_resnet_small", choices=["sol_resnet", "sol_resnet_small"]
    )
    parser.add_argument("--loss", default="mse")
    parser.add_argument("--m", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--quick", action="store_true", help="m = 1, 4; 2 iterations; 5 steps")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.quick:
        args.m, args.iters, args.steps = [1, 4], 2, 5
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="coldflow-bench-sol-") as tmp:
        if args.data is None:
            sims = max(2, args.batch)  # windows: 2 per simulation at stride 7
            args.data = make_small_data(Path(tmp) / "karman_small.h5", max(args.m) + 8, sims)
            torch.set_num_threads(threads)  # generating sets the data config's thread count
        stats = data_statistics(args.data)
        training = {str(m): training_rate(args, stats, m, device) for m in args.m}
        rollout = rollout_rates(args, stats, device)
        simulate = simulate_rates(args, device)
        resolution_low = list(low_scene(args.data).resolution)
        resolution_high = list(data_config(args.data).resolution)
    print(
        f"Solver-in-the-Loop on {args.data.name} ({args.net}, loss {args.loss}, batch "
        f"{args.batch}, {device}, {torch.get_num_threads()} threads)"
    )
    parts = list(next(iter(training.values()))["split_fraction"])
    print(f"{'training, m':>12} {'iter/s':>8} {'windows/s':>10}  " + "  ".join(parts))
    for m, row in training.items():
        shares = "  ".join(f"{row['split_fraction'].get(p, 0):>{len(p)}.0%}" for p in parts)
        print(f"{m:>12} {row['iterations_per_s']:8.2f} {row['windows_per_s']:10.1f}  {shares}")
    print(f"{'rollout':>22} {'steps/s':>10} {'sim-steps/s':>12}")
    for name in ("source", "corrected", "reference_high"):
        rate = rollout[name]
        print(f"{name:>22} {rate:10.2f} {rate * rollout['simulations']:12.1f}")
    print(
        f"simulate {'x'.join(map(str, resolution_low))}: jit_compile {simulate['jit_compile']:.1f} "
        f"frames/s, eager PhiFlow {simulate['eager']:.1f} frames/s "
        f"(x{simulate['jit_over_eager']:.1f})"
    )
    write_json(
        args.out,
        {
            "data": str(args.data),
            "net": args.net,
            "loss": args.loss,
            "batch": args.batch,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "training": training,
            "training_iterations_per_s": {m: r["iterations_per_s"] for m, r in training.items()},
            "rollout_steps_per_s": rollout,
            "simulate_frames_per_s": simulate,
            "resolution_low": resolution_low,
            "resolution_high": resolution_high,
            "machine": _machine.machine_info(device),
            "platform": platform.platform(),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
