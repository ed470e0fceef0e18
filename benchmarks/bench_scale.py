"""How each cost grows: training, sampling, simulation and LSiM against their sizes.

Five series, each a few points timed on this machine, with the exponent of a
least-squares line through the log-log points (1.0 = linear):

- training: one Trainer epoch of the seed-CNN DDPM against the data-set size;
- sampling: ancestral sampling of 8 images against n_T, and DDIM (10 steps) against the
  number of images;
- simulation: one plume step (PhiML ``jit_compile``) against the resolution (64² -> 256²,
  batch 1) and against the batch of simulations (64²);
- LSiM: distances (eval, no gradient) against the batch (64²) and the field size
  (batch 4, from its minimum 64²); random weights when the LSiM file is absent (same cost).

Writes ``benchmarks/results/scale.json``, a table, and ``scale.png`` (log-log plot). The
default takes under three minutes on two CPU cores; ``--quick`` fewer points. Never
asserts on time.

    python benchmarks/bench_scale.py [--quick] [--device auto] [--out benchmarks/results/scale.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _machine
import numpy as np
import torch

from coldflow import hub
from coldflow.config import load_config
from coldflow.config.fluids import FluidDataConfig
from coldflow.data import mnist_dataset
from coldflow.io import write_json
from coldflow.losses import LSiM
from coldflow.physics import FluidState, build_scene
from coldflow.runs import RunDir
from coldflow.tasks.diffusion.config import DiffusionRunConfig
from coldflow.tasks.diffusion.ddpm import DDPMTask
from coldflow.tasks.diffusion.sampling import draw
from coldflow.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "scale.json"


def best_of(call: Callable[[], object], device: torch.device, repeats: int = 2) -> float:
    """Best wall seconds of ``call`` (first call untimed: tracing, caches)."""
    call()
    best = float("inf")
    for _ in range(repeats):
        _machine.sync(device)
        t0 = time.perf_counter()
        call()
        _machine.sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def training_series(sizes: list[int], device: torch.device) -> dict[int, float]:
    overrides = ["training.epochs=1", "training.progress=false", f"training.device={device}"]
    cfg = load_config(ROOT / "configs/mnist/diffusion_model.yaml", DiffusionRunConfig, overrides)
    out = {}
    for n in sizes:
        dataset = mnist_dataset("train", tuple(cfg.data.range), n)

        def epoch(dataset=dataset) -> None:
            torch.manual_seed(0)
            with tempfile.TemporaryDirectory() as tmp:
                Trainer(DDPMTask().build(cfg, {}), dataset, cfg.training, RunDir(tmp), 0).fit()

        out[n] = best_of(epoch, device, 1)
    return out


def sampling_series(n_ts: list[int], counts: list[int], device: torch.device) -> tuple[dict, dict]:
    cfg = load_config(ROOT / "configs/mnist/diffusion_model.yaml", DiffusionRunConfig)
    by_nt = {}
    for n_T in n_ts:
        c = cfg.model_copy(update={"degradation": cfg.degradation.model_copy(update={"n_T": n_T})})
        model = DDPMTask().build(c, {}).to(device)
        by_nt[n_T] = best_of(lambda m=model: draw(m, 8, batch_size=8), device, 1)
    model = DDPMTask().build(cfg, {}).to(device)
    by_n = {
        n: best_of(lambda n=n: draw(model, n, batch_size=n, sampler="ddim", steps=10), device)
        for n in counts
    }
    return by_nt, by_n


def simulation_series(sizes: list[int], batches: list[int], device: torch.device) -> tuple:
    cfg = load_config(ROOT / "configs/fluids/plume_tiny.yaml", FluidDataConfig)
    params = {k: float(v[0]) for k, v in cfg.simulations.train.params.items()}

    def seconds(size: int, batch: int) -> float:
        scene = build_scene(cfg, (size, size))
        state = scene.initial_state({k: [v] * batch for k, v in params.items()}, range(batch))
        density = None if state.density is None else state.density.to(device)
        state = FluidState(state.velocity.to(device), density)
        p = {k: torch.full((batch,), v, device=device) for k, v in params.items()}
        with torch.no_grad():
            return best_of(lambda: scene.step(state, p), device)

    by_size = {s: seconds(s, 1) for s in sizes}
    by_batch = {b: seconds(sizes[0], b) for b in batches}
    return by_size, by_batch


def lsim_series(batches: list[int], sizes: list[int], device: torch.device) -> tuple:
    lsim = LSiM(pretrained=hub.locate("lsim") is not None).to(device).eval()

    def seconds(batch: int, size: int) -> float:
        gen = torch.Generator().manual_seed(0)
        a = torch.rand(batch, 1, size, size, generator=gen).to(device)
        b = torch.rand(batch, 1, size, size, generator=gen).to(device)
        with torch.no_grad():
            return best_of(lambda: lsim(a, b), device)

    return {b: seconds(b, 64) for b in batches}, {s: seconds(4, s) for s in sizes}


def exponent(series: dict) -> float:
    """Slope of the least-squares line through (log x, log seconds)."""
    x, y = np.log(list(series)), np.log(list(series.values()))
    return float(np.polyfit(x, y, 1)[0]) if len(series) > 1 else float("nan")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(14, 6.5))
    for ax, (name, r) in zip(axes.flat, results.items(), strict=False):
        x, y = list(r["seconds"]), list(r["seconds"].values())
        ax.loglog(x, y, "o-", base=2)
        ax.set_title(f"{name}\nexponent {r['exponent']:.2f}", fontsize=9)
        ax.set_xlabel(r["x"], fontsize=8)
        ax.set_ylabel("seconds", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(results) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer, smaller points")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.device != "auto":
        device = torch.device(args.device)
    q = args.quick
    t_start = time.perf_counter()
    train = training_series([64, 128, 256] if q else [128, 256, 512, 1024], device)
    by_nt, by_n = sampling_series(
        [10, 20, 40] if q else [10, 20, 40, 80], [4, 8, 16] if q else [4, 8, 16, 32, 64], device
    )
    sim_size, sim_batch = simulation_series(
        [64, 128] if q else [64, 128, 256], [1, 2, 4] if q else [1, 2, 4, 8], device
    )
    lsim_batch, lsim_size = lsim_series(
        [1, 4, 16] if q else [1, 2, 4, 8, 16], [64, 128] if q else [64, 128, 256], device
    )
    series = {
        "training epoch vs data-set size": (train, "images"),
        "ancestral sampling (8 images) vs n_T": (by_nt, "n_T"),
        "DDIM sampling (10 steps) vs images": (by_n, "images"),
        "plume step vs resolution (batch 1)": (sim_size, "cells per side"),
        "plume step vs batch (64x64)": (sim_batch, "simulations"),
        "LSiM vs batch (64x64)": (lsim_batch, "pairs"),
        "LSiM vs size (batch 4)": (lsim_size, "pixels per side"),
    }
    results = {
        name: {"x": x, "seconds": s, "exponent": exponent(s)} for name, (s, x) in series.items()
    }
    print(f"{'series':<40} {'x':>16}  seconds ... (exponent)")
    for name, r in results.items():
        points = ", ".join(f"{k}: {v:.3g}" for k, v in r["seconds"].items())
        print(f"{name:<40} {r['x']:>16}  {points}  ({r['exponent']:.2f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = args.out.with_suffix(".png")
    plot(results, png)
    write_json(
        args.out,
        {
            "device": str(device),
            "series": {
                k: {**v, "seconds": {str(a): b for a, b in v["seconds"].items()}}
                for k, v in results.items()
            },  # fmt: skip
            "wall_s": time.perf_counter() - t_start,
            "machine": _machine.machine_info(device),
        },
    )
    print(f"wrote {args.out} and {png} ({time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
