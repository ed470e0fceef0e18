"""Training and sampling speed of the MNIST diffusion models.

Measures, on the same network and data:

- training images/s of coldflow's Trainer (one epoch over a subset, everything it does:
  batching, autocast context, EMA if configured, metrics) against a plain PyTorch loop in
  the seed study's style (DataLoader, ``model(x)``, ``loss.backward()``, ``opt.step()``);
- sampling images/s of the ancestral sampler (n_T network calls) and DDIM (``--ddim-steps``);
- training images/s of the cold-diffusion blur model (``--blur-config``) with the Trainer.

Each row is also given as GFLOP/s and a fraction of this machine's conv2d peak measured in
the same run (``_machine.peak``), with the FLOP per image it assumes: one training step's
forward + backward of the network (training rows) or ``steps`` forwards (sampling rows),
counted with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls only).

Prints a table and writes JSON (``--out``). It never asserts on time.

    python benchmarks/bench_mnist.py [--images 2048] [--quick] [--out benchmarks/results/mnist.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import _machine
import torch
from torch.utils.data import DataLoader

from coldflow.config import RunConfig, load_config
from coldflow.data import mnist_dataset
from coldflow.runs import RunDir
from coldflow.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]

try:
    from coldflow.experiment import IMAGE_SHAPE, build_model
except ImportError:  # the tasks/ floor builds models now
    from coldflow.tasks.diffusion import IMAGE_SHAPE, DiffusionTask

    def build_model(cfg: RunConfig) -> torch.nn.Module:
        return DiffusionTask().build(cfg, {})


def plain_loop(cfg: RunConfig, dataset, epochs: int = 1) -> float:
    """The seed study's loop: images/s."""
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.training.optimizer.lr)
    loader = DataLoader(dataset, batch_size=cfg.training.batch_size, shuffle=True)
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _y in loader:
            opt.zero_grad()
            loss = model(x)
            loss.backward()
            opt.step()
            n += len(x)
    return n / (time.perf_counter() - t0)


def trainer_loop(cfg: RunConfig, dataset, epochs: int = 1) -> float:
    """coldflow's Trainer over the same data: images/s (checkpoint writing included)."""
    torch.manual_seed(0)
    model = build_model(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, dataset, cfg.training, RunDir(tmp), cfg.seed)
        t0 = time.perf_counter()
        trainer.fit()
        return epochs * len(dataset) / (time.perf_counter() - t0)


def sampling_rate(cfg: RunConfig, n: int, sampler: str, steps: int | None) -> float:
    model = build_model(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    model.sample(n, IMAGE_SHAPE, sampler=sampler, steps=steps, generator=gen)
    return n / (time.perf_counter() - t0)


def train_flop_per_image(cfg: RunConfig, dataset) -> float:
    """FLOP of one training step (forward + backward) per image, FlopCounterMode."""
    torch.manual_seed(0)
    model = build_model(cfg)
    x = torch.stack([dataset[i][0] for i in range(min(8, len(dataset)))])

    def step() -> None:
        model(x).backward()

    return _machine.count_flops(step) / len(x)


def sample_flop_per_image(cfg: RunConfig, sampler: str, steps: int | None) -> float:
    """FLOP of sampling one image (all its network calls), FlopCounterMode."""
    model = build_model(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    return (
        _machine.count_flops(
            lambda: model.sample(2, IMAGE_SHAPE, sampler=sampler, steps=steps, generator=gen)
        )
        / 2
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "mnist" / "diffusion_model.yaml"))
    ap.add_argument("--images", type=int, default=2048, help="training images per measurement")
    ap.add_argument("--repeats", type=int, default=2, help="measurements of each (best kept)")
    ap.add_argument("--samples", type=int, default=64, help="images drawn per sampling run")
    ap.add_argument("--ancestral-steps", type=int, default=200, help="n_T used for sampling")
    ap.add_argument("--ddim-steps", type=int, default=50)
    ap.add_argument("--blur-config", default=str(ROOT / "configs" / "mnist" / "blur_model.yaml"))
    ap.add_argument("--quick", action="store_true", help="512 images, 1 repeat, 16 samples")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mnist.json"))
    args = ap.parse_args()
    if args.quick:
        args.images, args.repeats, args.samples = 512, 1, 16
        args.ancestral_steps, args.ddim_steps = 50, 20
    machine = _machine.peak("cpu", quick=args.quick)
    print(_machine.describe(machine), flush=True)

    bench_overrides = [
        "training.epochs=1",
        "training.progress=false",
        "training.device=cpu",
        "evaluation.fid.enabled=false",
    ]
    cfg = load_config(args.config, RunConfig, bench_overrides)
    blur_cfg = load_config(args.blur_config, RunConfig, bench_overrides)
    dataset = mnist_dataset("train", tuple(cfg.data.range), args.images)
    rows = {
        "train: plain PyTorch loop": max(plain_loop(cfg, dataset) for _ in range(args.repeats)),
        "train: coldflow Trainer": max(trainer_loop(cfg, dataset) for _ in range(args.repeats)),
        "train: blur model, coldflow Trainer": max(
            trainer_loop(blur_cfg, dataset) for _ in range(args.repeats)
        ),
    }
    n_T = args.ancestral_steps
    scfg = cfg.model_copy(update={"degradation": cfg.degradation.model_copy(update={"n_T": n_T})})
    rows[f"sample: ancestral ({n_T} steps)"] = sampling_rate(scfg, args.samples, "ancestral", None)
    rows[f"sample: DDIM ({args.ddim_steps} steps)"] = sampling_rate(
        scfg, args.samples, "ddim", args.ddim_steps
    )
    # ancestral cost scales with n_T: what the full schedule of the config would give
    full = rows[f"sample: ancestral ({n_T} steps)"] * n_T / cfg.degradation.n_T
    rows[f"sample: ancestral ({cfg.degradation.n_T} steps, scaled)"] = full

    ddim = f"sample: DDIM ({args.ddim_steps} steps)"
    flop = {
        "train: plain PyTorch loop": train_flop_per_image(cfg, dataset),
        "train: coldflow Trainer": train_flop_per_image(cfg, dataset),
        "train: blur model, coldflow Trainer": train_flop_per_image(blur_cfg, dataset),
        f"sample: ancestral ({n_T} steps)": sample_flop_per_image(scfg, "ancestral", None),
        ddim: sample_flop_per_image(scfg, "ddim", args.ddim_steps),
    }
    flop[f"sample: ancestral ({cfg.degradation.n_T} steps, scaled)"] = (
        flop[f"sample: ancestral ({n_T} steps)"] * cfg.degradation.n_T / n_T
    )
    machine = _machine.best_peak(machine, _machine.peak("cpu", quick=args.quick))
    print(_machine.describe(machine), "(best of before and after)")
    table = {}
    print(f"{'measurement':<44} {'images/s':>10} {'FLOP/image':>11} {'GFLOP/s':>8} {'of peak':>8}")
    for k, v in rows.items():
        achieved = _machine.gflops(flop[k] * v, 1.0)
        share = _machine.fraction(achieved, machine, "conv2d")
        table[k] = {
            "images_per_s": v,
            "flop_per_image": flop[k],
            "gflops": achieved,
            "fraction_of_conv2d_peak": share,
        }
        print(f"{k:<44} {v:>10.1f} {flop[k]:>11.3g} {achieved:>8.1f} {share:>8.1%}")
    ratio = rows["train: coldflow Trainer"] / rows["train: plain PyTorch loop"]
    print(f"Trainer / plain loop: {ratio:.2f}x")
    result = {
        "config": str(Path(args.config).name),
        "images": args.images,
        "batch_size": cfg.training.batch_size,
        "images_per_s": rows,
        "rows": table,
        "peak": machine,
        "flop_counts": (
            "per image, torch.utils.flop_counter.FlopCounterMode (conv + matmul): training = "
            "one forward + backward of the model's loss; sampling = all network calls of one "
            "image; fraction of the measured conv2d peak"
        ),
        "trainer_over_plain": ratio,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
