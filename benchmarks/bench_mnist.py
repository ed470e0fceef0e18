"""Training, sampling and FID-evaluation speed of the MNIST diffusion models.

Measures, on the seed CNN and the same data:

- training images/s of a plain PyTorch loop in the seed study's style (DataLoader,
  ``model(x)``, ``loss.backward()``, ``opt.step()``) against coldflow's Trainer with its
  default settings and with each speed option of ``training`` switched on (``compile``,
  ``channels_last``, ``optimizer.fused``, and ``amp: bf16`` for comparison); every one
  runs two epochs over the subset and the second is timed (so compiling is not counted);
  variants are measured in turn, best of ``--repeats``;
- cold-diffusion (blur) training with the Trainer at the same batch size as DDPM;
- sampling images/s of the ancestral sampler and DDIM, eager and with the network
  compiled (``nn.Module.compile``);
- FID evaluation of ``evaluation.fid.n_samples`` (10,000) samples end to end: sampling
  with the configured sampler, features, statistics and the Fréchet distance, measured at
  ``--fid-n`` samples and extrapolated linearly (every part is linear in n; the real-data
  statistics are cached after their first computation and reported separately).

Each row is also given as GFLOP/s and a fraction of this machine's conv2d peak measured in
the same run (``_machine.peak``), with the FLOP per image it assumes: one training step's
forward + backward of the network (training rows) or all network calls of one image
(sampling rows), counted with ``torch.utils.flop_counter.FlopCounterMode``.

    python benchmarks/bench_mnist.py [--images 2048] [--quick] [--device auto]
                                     [--out benchmarks/results/mnist.json]

Prints a table and writes JSON. It never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import _machine
import torch
from torch.utils.data import DataLoader

from coldflow.config import load_config
from coldflow.data import mnist_dataset
from coldflow.runs import RunDir
from coldflow.tasks.diffusion.cold import ColdTask
from coldflow.tasks.diffusion.config import DiffusionRunConfig
from coldflow.tasks.diffusion.ddpm import DDPMTask
from coldflow.tasks.diffusion.sampling import draw
from coldflow.training.allocator import tune_malloc
from coldflow.training.parts import compile_unavailable
from coldflow.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
PLAIN = "train: plain PyTorch loop (seed style)"
DEFAULT = "train: Trainer, defaults"
TRAINER_OPTIONS = {
    DEFAULT: [],
    "train: Trainer, channels_last": ["training.channels_last=true"],
    "train: Trainer, optimizer.fused": ["training.optimizer.fused=true"],
    "train: Trainer, compile": ["training.compile=true"],
    "train: Trainer, compile + channels_last": [
        "training.compile=true",
        "training.channels_last=true",
    ],
    "train: Trainer, amp bf16": ["training.amp=bf16"],
    "train: Trainer, amp bf16 + compile": ["training.amp=bf16", "training.compile=true"],
}
BLUR = "train: blur model, Trainer, defaults"


def build(cfg: DiffusionRunConfig) -> torch.nn.Module:
    task = ColdTask() if cfg.method.kind == "cold" else DDPMTask()
    return task.build(cfg, {})


def plain_loop(cfg: DiffusionRunConfig, dataset, device: torch.device) -> Callable[[], float]:
    """The seed study's loop; returns a function that runs one epoch and gives images/s."""
    torch.manual_seed(0)
    model = build(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.training.optimizer.lr)
    loader = DataLoader(dataset, batch_size=cfg.training.batch_size, shuffle=True)

    def epoch() -> float:
        n, t0 = 0, time.perf_counter()
        for x, _y in loader:
            x = x.to(device)
            opt.zero_grad()
            loss = model(x)
            loss.backward()
            opt.step()
            n += len(x)
        _machine.sync(device)
        return n / (time.perf_counter() - t0)

    epoch()  # warm-up epoch, as the Trainer's first
    return epoch


def trainer_rate(cfg: DiffusionRunConfig, dataset) -> float:
    """Trainer, two epochs: images/s of the second (as the Trainer logs it)."""
    torch.manual_seed(0)
    model = build(cfg)
    if cfg.method.kind == "cold":
        ColdTask().fit_prior(model, cfg, dataset)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        trainer = Trainer(model, dataset, cfg.training, RunDir(tmp), cfg.seed)
        trainer.fit()
        events = trainer.run.read_metrics()
    for w in caught:
        print(f"  warning: {w.message}")
    return [e["value"] for e in events if e["name"] == "samples_per_s"][-1]


def sampling_rate(model, n: int, **options) -> float:
    # warm-up (and compile) at the timed batch size: a compiled network that first saw
    # another batch size recompiles for dynamic shapes, and those kernels are slower
    draw(model, n, batch_size=n, **options)
    t0 = time.perf_counter()
    draw(model, n, batch_size=n, **options)
    return n / (time.perf_counter() - t0)


def train_flop_per_image(cfg: DiffusionRunConfig, dataset) -> float:
    """FLOP of one training step (forward + backward) per image, FlopCounterMode."""
    torch.manual_seed(0)
    model = build(cfg)
    x = torch.stack([dataset[i][0] for i in range(min(8, len(dataset)))])
    return _machine.count_flops(lambda: model(x).backward()) / len(x)


def sample_flop_per_image(model, **options) -> float:
    """FLOP of sampling one image (all its network calls), FlopCounterMode."""
    return _machine.count_flops(lambda: draw(model, 2, batch_size=2, **options)) / 2


def fid_end_to_end(cfg: DiffusionRunConfig, model, n: int, device: torch.device) -> dict:
    """Seconds of FID evaluation at ``n`` samples, split, and linear extrapolation."""
    from coldflow.metrics.features import build_feature_extractor
    from coldflow.metrics.fid import (
        compute_features,
        feature_statistics,
        frechet_distance,
        mnist_real_statistics,
    )

    fid = cfg.evaluation.fid
    options = {"sampler": fid.sampler, "steps": fid.steps, "eta": fid.eta}
    options = {k: v for k, v in options.items() if v is not None}
    extractor = build_feature_extractor(fid.extractor).to(device)
    t0 = time.perf_counter()
    real = mnist_real_statistics(extractor, "test", n=10000, device=device)
    real_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    images = draw(model, n, batch_size=fid.batch_size, **options).images  # as training does
    sample_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = compute_features(images, extractor, tuple(cfg.data.range), 250, device)
    features_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    mu, sigma = feature_statistics(feats)
    frechet_distance(mu, sigma, *real)
    stats_s = time.perf_counter() - t0
    target = fid.n_samples
    scale = target / n
    return {
        "measured_samples": n,
        "sampler": options,
        "sampling_s": sample_s,
        "features_s": features_s,
        "statistics_and_distance_s": stats_s,
        "real_statistics_s (cached after the first)": real_s,
        "target_samples": target,
        "extrapolated_s": (sample_s + features_s) * scale + stats_s,
        "note": "sampling and features scale linearly with n; statistics are not scaled",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "mnist" / "diffusion_model.yaml"))
    ap.add_argument("--blur-config", default=str(ROOT / "configs" / "mnist" / "blur_model.yaml"))
    ap.add_argument("--images", type=int, default=2048, help="training images per epoch")
    ap.add_argument("--repeats", type=int, default=2, help="measurements of each (best kept)")
    ap.add_argument("--samples", type=int, default=64, help="images drawn per sampling run")
    ap.add_argument("--ancestral-steps", type=int, default=200, help="n_T used for sampling")
    ap.add_argument("--ddim-steps", type=int, default=50)
    ap.add_argument("--fid-n", type=int, default=500, help="samples of the FID measurement")
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled variants")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    ap.add_argument(
        "--quick", action="store_true", help="512 images, 1 repeat, fewer variants and samples"
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mnist.json"))
    ap.add_argument(
        "--tune-malloc",
        action="store_true",
        help="raise glibc's malloc thresholds first, as the coldflow command does",
    )
    args = ap.parse_args()
    malloc = tune_malloc() if args.tune_malloc else None
    print(malloc or "malloc: glibc defaults (as a plain Python process)")
    options = dict(TRAINER_OPTIONS)
    if args.quick:
        args.images, args.repeats, args.samples, args.fid_n = 512, 1, 16, 100
        args.ancestral_steps, args.ddim_steps = 50, 20
        for key in ("train: Trainer, compile", "train: Trainer, amp bf16 + compile"):
            options.pop(key)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.device != "auto":
        device = torch.device(args.device)
    no_compile = args.no_compile or compile_unavailable(device)
    if no_compile:
        print(f"compiled variants skipped: {no_compile}")
        options = {k: v for k, v in options.items() if "compile" not in k}
    machine = _machine.peak(device, quick=args.quick)
    print(_machine.describe(machine), flush=True)

    common = [
        "training.epochs=2",
        "training.progress=false",
        f"training.device={device}",
        "evaluation.fid.enabled=false",
    ]
    cfg = load_config(args.config, DiffusionRunConfig, common)
    blur_cfg = load_config(args.blur_config, DiffusionRunConfig, common)
    dataset = mnist_dataset("train", tuple(cfg.data.range), args.images)
    configs = {
        k: load_config(args.config, DiffusionRunConfig, common + v) for k, v in options.items()
    }
    configs[BLUR] = blur_cfg
    plain = plain_loop(cfg, dataset, device)
    rows: dict[str, float] = dict.fromkeys([PLAIN, *configs], 0.0)
    for r in range(args.repeats):  # in turn, so that load from other processes hits all alike
        rows[PLAIN] = max(rows[PLAIN], plain())
        # every other round in reverse, so that no variant is always measured last
        order = list(configs.items()) if r % 2 == 0 else list(configs.items())[::-1]
        for name, c in order:
            rows[name] = max(rows[name], trainer_rate(c, dataset))
            print(f"  [{r + 1}/{args.repeats}] {name}: {rows[name]:.1f} images/s", flush=True)
    flop = dict.fromkeys(rows, train_flop_per_image(cfg, dataset))
    flop[BLUR] = train_flop_per_image(blur_cfg, dataset)

    # sampling, eager and compiled
    n_T = args.ancestral_steps
    scfg = cfg.model_copy(update={"degradation": cfg.degradation.model_copy(update={"n_T": n_T})})
    torch.manual_seed(0)
    sampler = build(scfg).to(device).eval()
    samplers = {
        f"sample: ancestral ({n_T} steps)": {"sampler": "ancestral"},
        f"sample: DDIM ({args.ddim_steps} steps)": {"sampler": "ddim", "steps": args.ddim_steps},
    }
    for name, opts in samplers.items():
        rows[name] = sampling_rate(sampler, args.samples, **opts)
        flop[name] = sample_flop_per_image(sampler, **opts)
    if not no_compile and not args.quick:
        compiled = build(scfg).to(device).eval()
        compiled.net.compile()
        for name, opts in samplers.items():
            rows[name + ", compiled"] = sampling_rate(compiled, args.samples, **opts)
            flop[name + ", compiled"] = flop[name]
    full = f"sample: ancestral ({cfg.degradation.n_T} steps, scaled)"
    rows[full] = rows[f"sample: ancestral ({n_T} steps)"] * n_T / cfg.degradation.n_T
    flop[full] = flop[f"sample: ancestral ({n_T} steps)"] * cfg.degradation.n_T / n_T

    fid_cfg = load_config(args.config, DiffusionRunConfig, [f"training.device={device}"])
    torch.manual_seed(0)
    fid = fid_end_to_end(fid_cfg, build(fid_cfg).to(device).eval(), args.fid_n, device)

    machine = _machine.best_peak(machine, _machine.peak(device, quick=args.quick))
    print(_machine.describe(machine), "(best of before and after)")
    table = {}
    print(f"{'measurement':<46} {'images/s':>9} {'vs plain':>8} {'FLOP/img':>9} {'of peak':>8}")
    for k, v in rows.items():
        achieved = _machine.gflops(flop[k] * v, 1.0)
        share = _machine.fraction(achieved, machine, "conv2d")
        vs = f"{v / rows[PLAIN]:.2f}x" if k.startswith("train") else ""
        table[k] = {
            "images_per_s": v,
            "flop_per_image": flop[k],
            "gflops": achieved,
            "fraction_of_conv2d_peak": share,
        }
        print(f"{k:<46} {v:>9.1f} {vs:>8} {flop[k]:>9.3g} {share:>8.1%}")
    blur_vs_ddpm = rows[BLUR] / rows[DEFAULT]
    print(f"blur / DDPM training at batch {cfg.training.batch_size}: {blur_vs_ddpm:.2f}x")
    print(
        f"FID of {fid['target_samples']} samples ({fid['sampler']}): "
        f"{fid['extrapolated_s']:.0f} s, extrapolated from {fid['measured_samples']} "
        f"(sampling {fid['sampling_s']:.1f} s, features {fid['features_s']:.2f} s, "
        f"statistics {fid['statistics_and_distance_s']:.2f} s)"
    )
    result = {
        "malloc": malloc or "default",
        "config": Path(args.config).name,
        "images": args.images,
        "batch_size": cfg.training.batch_size,
        "device": str(device),
        "images_per_s": rows,
        "rows": table,
        "trainer_over_plain": {
            k: v / rows[PLAIN] for k, v in rows.items() if k.startswith("train")
        },
        "blur_over_ddpm_training": blur_vs_ddpm,
        "fid_evaluation": fid,
        "peak": machine,
        "flop_counts": (
            "per image, torch.utils.flop_counter.FlopCounterMode (conv + matmul): training = "
            "one forward + backward of the model's loss; sampling = all network calls of one "
            "image; fraction of the measured conv2d peak"
        ),
        "machine": _machine.machine_info(device),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
