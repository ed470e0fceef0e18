"""Throughput of the distances in coldflow.losses, in distances (pairs) per second.

For each loss and field size, one batch of random smooth single-channel fields is
compared, without gradients ("eval") and with a backward pass to the first input
("train"). LSiM is also timed the way the official code is used, one ``distance`` call
per pair (resize to 224, per-pair min-max), against the same per-pair distances computed
in one batched call (resize on the device + per-sample joint scaling).

A loss whose weights the hub does not find (VGG-16 and AlexNet ImageNet backbones, the
LPIPS linear layers, LSiM) gives a row that says "skipped: weights missing" and names the
files; with ``--random-backbones`` VGG-16 and AlexNet run with random weights instead,
which cost the same time as the pretrained ones. Every loss is also timed one pair per
call in a Python loop ("pair loop", eval) against the batched call.

FLOP per pair are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the batched
call (convolutions and matmuls, forward for eval, forward + backward for train; elementwise
work is not counted, so mse/mae show 0) and reported as GFLOP/s and as a fraction of this
machine's conv2d peak measured in the same run (``_machine.peak``).

    python benchmarks/bench_losses.py [--sizes 64 128] [--batch 16] [--repeats 3] [--quick]
                                      [--device cpu] [--out benchmarks/results/losses.json]

Prints a table and writes JSON; never asserts on time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import _machine
import numpy as np
import torch

from coldflow import hub
from coldflow.io import write_json
from coldflow.losses import LPIPS, LSiM, VGGFeatureLoss, build_loss
from coldflow.losses.lsim import zoom_like_scipy

DEFAULT_OUT = Path(__file__).parent / "results" / "losses.json"


def smooth_fields(n: int, size: int, seed: int) -> torch.Tensor:
    """[n, 1, size, size] sums of random low-frequency waves."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = torch.zeros(n, 1, size, size)
    for _ in range(4):
        k = torch.rand(3, n, 1, 1, 1, generator=g) * torch.tensor([6.0, 6.0, 6.3]).view(
            3, 1, 1, 1, 1
        )
        out += torch.rand(n, 1, 1, 1, generator=g) * torch.sin(k[0] * x + k[1] * y + k[2])
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds per ``call`` over ``repeats`` measurements, after one warm-up run.

    Fast calls are looped so that each measurement lasts at least 50 ms.
    """
    start = time.perf_counter()
    call()
    sync(device)
    loops = max(1, int(0.05 / max(time.perf_counter() - start, 1e-6)))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            call()
        sync(device)
        times.append((time.perf_counter() - start) / loops)
    return statistics.median(times)


# the hub files each loss needs; backbones may be replaced by random weights (same cost)
NEEDS = {
    "vgg (relu3_3)": (("vgg16",), ()),
    "lpips (alex)": (("alexnet",), ("lpips-alex",)),
    "lpips (vgg)": (("vgg16",), ("lpips-vgg",)),
    "lsim": ((), ("lsim",)),
}


def missing_weights(name: str, random_backbones: bool) -> list[str]:
    backbones, own = NEEDS.get(name, ((), ()))
    needed = own if random_backbones else backbones + own
    return [r for r in needed if hub.locate(r) is None]


def build_losses(device: torch.device, random_backbones: bool) -> dict[str, torch.nn.Module | str]:
    """The losses to time; a string instead of a module says why one is skipped."""
    pretrained = not random_backbones
    torch.manual_seed(0)
    builders = {
        "mse": lambda: build_loss("mse"),
        "mae": lambda: build_loss("mae"),
        "vgg (relu3_3)": lambda: VGGFeatureLoss(pretrained=pretrained),
        "lpips (alex)": lambda: LPIPS("alex", pretrained=pretrained),
        "lpips (vgg)": lambda: LPIPS("vgg", pretrained=pretrained),
        "lsim": lambda: LSiM(),
    }
    losses: dict[str, torch.nn.Module | str] = {}
    for name, make in builders.items():
        missing = missing_weights(name, random_backbones)
        if missing:
            where = ", ".join(f"{r} ({hub.RESOURCES[r].filename})" for r in missing)
            losses[name] = f"skipped: weights missing: {where}"
        else:
            losses[name] = make().to(device)
    return losses


def bench_losses(args: argparse.Namespace, device: torch.device, machine: dict) -> list[dict]:
    rows = []
    for name, loss in build_losses(device, args.random_backbones).items():
        if isinstance(loss, str):
            rows.append({"loss": name, "skipped": loss})
            print(f"{name:<15} {loss}", flush=True)
            continue
        for size in args.sizes:
            a = smooth_fields(args.batch, size, 1).to(device)
            b = smooth_fields(args.batch, size, 2).to(device)

            def evaluate(loss=loss, a=a, b=b) -> None:
                with torch.no_grad():
                    loss(a, b)

            def train(loss=loss, a=a, b=b) -> None:
                x = a.clone().requires_grad_(True)
                loss(x, b).sum().backward()

            def pair_loop(loss=loss, a=a, b=b) -> None:
                with torch.no_grad():
                    for i in range(len(a)):
                        loss(a[i : i + 1], b[i : i + 1])

            row = {"loss": name, "size": size, "batch": args.batch}
            for mode, call, repeats in (
                ("eval", evaluate, args.repeats),
                ("train", train, args.repeats),
                ("pair_loop", pair_loop, 1),  # slow: one measurement
            ):
                seconds = timed(call, device, repeats)
                row[f"{mode}_seconds"] = seconds
                row[f"{mode}_per_second"] = args.batch / seconds
            row["batched_over_pair_loop"] = row["eval_per_second"] / row["pair_loop_per_second"]
            for mode, call in (("eval", evaluate), ("train", train)):
                flop = _machine.count_flops(call) / args.batch
                achieved = _machine.gflops(flop * args.batch, row[f"{mode}_seconds"])
                row[f"{mode}_flop_per_pair"] = flop
                row[f"{mode}_gflops"] = achieved
                row[f"{mode}_fraction_of_conv2d_peak"] = _machine.fraction(
                    achieved, machine, "conv2d"
                )
            rows.append(row)
            print(
                f"{name:<15} {size:>4}  eval {row['eval_per_second']:>8.1f}/s "
                f"({row['eval_flop_per_pair']:>8.3g} FLOP/pair, "
                f"{row['eval_fraction_of_conv2d_peak']:>6.1%} of peak)  "
                f"train {row['train_per_second']:>8.1f}/s "
                f"({row['train_flop_per_pair']:>8.3g}, "
                f"{row['train_fraction_of_conv2d_peak']:>6.1%})"
                f"  pair loop {row['pair_loop_per_second']:>8.1f}/s "
                f"(batched x{row['batched_over_pair_loop']:.1f})",
                flush=True,
            )
    return rows


def bench_lsim_loop(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Official per-pair ``distance`` calls against one batched call with the same result."""
    if hub.locate("lsim") is None:
        return []
    lsim, joint = LSiM().to(device), LSiM(scaling="joint").to(device)
    rows = []
    for size in args.sizes:
        a = smooth_fields(args.batch, size, 3).permute(0, 2, 3, 1).numpy()
        b = smooth_fields(args.batch, size, 4).permute(0, 2, 3, 1).numpy()

        def loop(a=a, b=b) -> np.ndarray:
            return np.concatenate([lsim.distance(a[i], b[i]) for i in range(len(a))])

        def batched(a=a, b=b) -> np.ndarray:
            with torch.no_grad():
                ta = torch.from_numpy(a).to(device).permute(0, 3, 1, 2)
                tb = torch.from_numpy(b).to(device).permute(0, 3, 1, 2)
                ta, tb = zoom_like_scipy(ta, (224, 224), 0), zoom_like_scipy(tb, (224, 224), 0)
                return joint(ta, tb).cpu().numpy()

        def official_batch(a=a, b=b) -> np.ndarray:
            return lsim.distance(a, b)

        row = {"size": size, "batch": args.batch, "resized_to": 224}
        for mode, call in (
            ("pair_loop", loop),
            ("batched", batched),
            ("distance_batch", official_batch),
        ):
            seconds = timed(call, device, args.repeats)
            row[f"{mode}_seconds"] = seconds
            row[f"{mode}_per_second"] = args.batch / seconds
        row["speedup_batched_over_loop"] = row["pair_loop_seconds"] / row["batched_seconds"]
        row["max_abs_difference_batched_vs_loop"] = float(np.abs(loop() - batched()).max())
        rows.append(row)
        print(
            f"lsim {size:>4}: pair loop {row['pair_loop_per_second']:.1f}/s, batched "
            f"{row['batched_per_second']:.1f}/s (x{row['speedup_batched_over_loop']:.1f}, "
            f"max diff {row['max_abs_difference_batched_vs_loop']:.1e}); distance() on the "
            f"batch {row['distance_batch_per_second']:.1f}/s (batch-wide scaling)",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument(
        "--random-backbones",
        action="store_true",
        help="time VGG-16/AlexNet with random weights when the ImageNet weights are missing",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)"
    )
    parser.add_argument("--quick", action="store_true", help="64 x 64 only, 1 repeat")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats = [64], 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    machine = _machine.peak(device, quick=args.quick)
    print(_machine.describe(machine), flush=True)
    result = {
        "benchmark": "coldflow.losses throughput (distances per second)",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg()[0],
        "batch": args.batch,
        "repeats": args.repeats,
        "note": (
            "random smooth 1-channel fields; "
            + (
                "VGG-16/AlexNet backbones randomly initialised (same cost as pretrained)"
                if args.random_backbones
                else "losses whose weights are missing are skipped"
            )
        ),
        "peak": machine,
        "flop_counts": (
            "per pair, torch.utils.flop_counter.FlopCounterMode on the batched call "
            "(conv + matmul; eval forward, train forward + backward); fraction of the conv2d peak"
        ),
        "losses": bench_losses(args, device, machine),
        "lsim_pair_loop": bench_lsim_loop(args, device),
    }
    after = _machine.peak(device, quick=args.quick)
    result["peak_after"] = after
    print(_machine.describe(after), "(after; fractions use the one before)")
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
