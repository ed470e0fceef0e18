"""Speed of Solver-in-the-Loop: training iterations per second and solver steps per second.

On a fluid data set (default ``data/karman_cpu.h5``; make it with
``coldflow simulate configs/fluids/karman_cpu.yaml --out data/karman_cpu.h5``):

- training: one optimiser step (unrolled loss over ``m`` corrected steps, backward
  through solver and network, Adam) for each ``m`` of ``--m`` (default 1, 4, 16), with a
  batch of ``--batch`` windows and the loss of ``--loss``;
- rollout: solver steps per second of the low-resolution source solver alone, of the
  corrected solver (step + network) and of the high-resolution reference solver, for a
  batch of ``--batch`` simulations.

    python benchmarks/bench_sol.py [--data data/karman_cpu.h5] [--net sol_resnet_small]
        [--loss mse] [--m 1 4 16] [--batch 4] [--iters 5] [--steps 20] [--threads 1]
        [--device cpu] [--out benchmarks/results/sol.json]

Prints a table and writes JSON; never asserts on time.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from coldflow.fluid_experiment import build_sol_model, data_config, data_statistics, low_scene

from coldflow.config.sol import SolRunConfig
from coldflow.data.fields import FieldData, FieldWindows
from coldflow.io import write_json
from coldflow.physics import FluidState
from coldflow.simulate import build_scene

DEFAULT_OUT = Path(__file__).parent / "results" / "sol.json"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_rate(args, stats, m: int, device: torch.device) -> float:
    """Optimiser steps per second (one untimed step first: tracing)."""
    cfg = SolRunConfig.model_validate(
        {
            "data": {"path": args.data},
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
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(args.iters):
        one()
    _sync(device)
    return args.iters / (time.perf_counter() - t0)


def rollout_rates(args, stats, device: torch.device) -> dict[str, float]:
    """Steps per second of source, corrected and high-resolution solver."""
    cfg = SolRunConfig.model_validate({"data": {"path": args.data}, "model": {"kind": args.net}})
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
    state = FluidState(vh.to(high.dtype).to(device))
    p = {k: params[:, i] for i, k in enumerate(high.param_names)}
    with torch.no_grad():
        state = high.step(state, p)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            state = high.step(state, p)
        _sync(device)
    out["reference_high"] = args.steps / (time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/karman_cpu.h5")
    parser.add_argument(
        "--net", default="sol_resnet_small", choices=["sol_resnet", "sol_resnet_small"]
    )
    parser.add_argument("--loss", default="mse")
    parser.add_argument("--m", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    stats = data_statistics(args.data)
    training = {str(m): training_rate(args, stats, m, device) for m in args.m}
    rollout = rollout_rates(args, stats, device)
    print(f"Solver-in-the-Loop on {args.data} ({args.net}, loss {args.loss}, batch {args.batch})")
    print(f"{'training, m':>22} {'iterations/s':>14} {'windows/s':>10}")
    for m, rate in training.items():
        print(f"{m:>22} {rate:14.2f} {rate * args.batch:10.1f}")
    print(f"{'rollout':>22} {'steps/s':>14} {'sim-steps/s':>10}")
    for name, rate in rollout.items():
        print(f"{name:>22} {rate:14.2f} {rate * args.batch:10.1f}")
    write_json(
        args.out,
        {
            "data": args.data,
            "net": args.net,
            "loss": args.loss,
            "batch": args.batch,
            "device": str(device),
            "threads": args.threads,
            "training_iterations_per_s": training,
            "rollout_steps_per_s": rollout,
            "resolution_low": list(low_scene(args.data).resolution),
            "resolution_high": list(data_config(args.data).resolution),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "processor": platform.processor(),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
