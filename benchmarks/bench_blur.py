"""Speed of the batched Gaussian blur of cold diffusion, in images per second.

On one batch of MNIST test digits (zero-padded to the centre of larger canvases; random
images when MNIST is not found), each image with its own random t of the default linear
schedule and a kernel covering the whole image (29 for 28 x 28), five ways to blur:

- ``per-image loop``: the two 1-D convolutions called once per image in a Python loop;
- ``dense 2-D``: one grouped conv2d with the full k x k outer-product kernel per image;
- ``old separable``: :func:`coldflow.degradations.blur.blur_by_convolution`, two 1-D
  grouped convolutions with one group per image (what ``blur`` was before);
- ``new blur()``: :func:`coldflow.degradations.blur.blur`, per-image banded matrices with
  the reflect padding folded in, ``M_h X M_w^T`` as two batched matmuls (matrices built
  in the call);
- ``new degrade()``: :meth:`GaussianBlur.degrade` with the matrices of every t built once
  and indexed (what training and sampling call);
- ``matmuls only``: the two batched matmuls of ``new`` on matrices built beforehand, no
  lookup, no checks: the floor of the matmul form on this machine (for small images the
  per-call work around them is a sizeable share; ``floor_over_dense`` says how far any
  matmul form could go against the dense convolution).

Each is also reported as a fraction of this machine's measured peak (``_machine.peak``:
sgemm for the matmul form, conv2d for the convolutions), with the FLOP per image it
assumes: ``2 (k_h + k_w) H W`` for the separable convolutions, ``2 k_h k_w H W`` for the
dense one, ``2 H W (H + W)`` for the two dense matmuls (the zeros of the band included;
building the matrices is not counted). The largest difference to ``old separable`` is
printed too (float32: ~1e-6).

    python benchmarks/bench_blur.py [--batch 128] [--repeats 5] [--sizes 28 64 128]
                                    [--quick] [--device auto] [--out benchmarks/results/blur.json]

Prints a table and writes JSON; never asserts on time.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import _machine
import torch
import torch.nn.functional as F

from coldflow import hub
from coldflow.data import mnist_dataset
from coldflow.degradations.blur import (
    GaussianBlur,
    blur,
    blur_by_convolution,
    blur_matrix,
    gaussian_kernel1d,
)
from coldflow.degradations.gaussian import apply_matrices
from coldflow.io import write_json

DEFAULT_OUT = Path(__file__).parent / "results" / "blur.json"
NEW = "new blur()"
FLOOR = "matmuls only"


def dense_blur(x: torch.Tensor, sigma: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: a full k x k kernel per image, reflect padding, one grouped conv2d."""
    b, c, h, w = x.shape
    k1 = gaussian_kernel1d(sigma.to(x.dtype), k)
    k2 = (k1[:, :, None] * k1[:, None, :]).repeat_interleave(c, dim=0)
    padded = F.pad(x.reshape(1, b * c, h, w), (k // 2,) * 4, mode="reflect")
    return F.conv2d(padded, k2[:, None], groups=b * c).reshape(b, c, h, w)


def loop_blur(x: torch.Tensor, sigma: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: the separable convolutions, one image at a time."""
    return torch.cat(
        [blur_by_convolution(x[i : i + 1], sigma[i : i + 1], k) for i in range(len(x))]
    )


def flop_per_image(method: str, h: int, w: int, k: int) -> tuple[int, str]:
    """FLOP of one image and the peak it is compared with (sgemm or conv2d)."""
    if method == "dense 2-D":
        return 2 * k * k * h * w, "conv2d"
    if method.startswith("new") or method == FLOOR:
        return 2 * h * w * (h + w), "sgemm"
    return 2 * 2 * k * h * w, "conv2d"


def blur_rates(
    batch: torch.Tensor, machine: dict, repeats: int = 5, t: torch.Tensor | None = None
) -> dict:
    """Images/s, GFLOP/s and fraction of peak of each blur on ``batch``, and their differences.

    Parameters
    ----------
    batch
        ``[B, C, H, W]`` images on the device to measure; the kernel covers the whole image.
    machine
        :func:`_machine.peak` of the same device.
    repeats
        Timed calls of each method (the best is kept).
    t
        Timesteps of the default :class:`GaussianBlur` schedule, one per image; uniform in
        1..n_T (seed 0) when ``None``.
    """
    deg = GaussianBlur()
    n, _, h, w = batch.shape
    if t is None:
        t = torch.randint(1, deg.n_T + 1, (n,), generator=torch.Generator().manual_seed(0))
    t = t.to(batch.device)
    sigma = deg.sigma(t).to(batch.dtype)
    k = 2 * (max(h, w) // 2) + 1
    m_h = blur_matrix(sigma, h, k, "reflect")
    m_w = m_h if h == w else blur_matrix(sigma, w, k, "reflect")
    methods: dict[str, Callable[[], torch.Tensor]] = {
        "per-image loop": lambda: loop_blur(batch, sigma, k),
        "dense 2-D": lambda: dense_blur(batch, sigma, k),
        "old separable": lambda: blur_by_convolution(batch, sigma, k),
        NEW: lambda: blur(batch, sigma, k),
        "new degrade()": lambda: deg.degrade(batch, t),
        FLOOR: lambda: apply_matrices(batch, m_h, m_w),
    }
    rows = {}
    with torch.no_grad():
        reference = methods["old separable"]()
        times = _machine.timed_together(methods, batch.device, repeats)
        for name, fn in methods.items():
            seconds = times[name]
            flop, kind = flop_per_image(name, h, w, k)
            achieved = _machine.gflops(flop * n, seconds)
            rows[name] = {
                "images_per_s": n / seconds,
                "flop_per_image": flop,
                "gflops": achieved,
                "peak_kind": kind,
                "fraction_of_peak": _machine.fraction(achieved, machine, kind),
                "max_abs_diff_to_old": (fn() - reference).abs().max().item(),
            }
    new = rows[NEW]["images_per_s"]
    return {
        "methods": rows,
        "new_over_loop": new / rows["per-image loop"]["images_per_s"],
        "new_over_dense": new / rows["dense 2-D"]["images_per_s"],
        "new_over_old_separable": new / rows["old separable"]["images_per_s"],
        "floor_over_dense": rows[FLOOR]["images_per_s"] / rows["dense 2-D"]["images_per_s"],
        "degrade_over_dense": rows["new degrade()"]["images_per_s"]
        / rows["dense 2-D"]["images_per_s"],
        "degrade_over_loop": rows["new degrade()"]["images_per_s"]
        / rows["per-image loop"]["images_per_s"],
        "kernel_size": k,
        "batch": n,
        "image_shape": list(batch.shape[1:]),
        "dtype": str(batch.dtype).removeprefix("torch."),
        "device": str(batch.device),
    }


def image_batch(n: int, size: int, device: torch.device) -> torch.Tensor:
    """``n`` MNIST test digits in [-0.5, 0.5] centred on a ``size`` x ``size`` canvas
    (random images in that range when MNIST is not found)."""
    if hub.locate("mnist-test-images") is None:
        gen = torch.Generator().manual_seed(0)
        return (torch.rand(n, 1, size, size, generator=gen) - 0.5).to(device)
    digits = mnist_dataset("test", (-0.5, 0.5), subset=n).tensors[0]
    if size > 28:
        lo = (size - 28) // 2
        digits = F.pad(digits, (lo, size - 28 - lo, lo, size - 28 - lo), value=-0.5)
    return digits.to(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=128, help="images per blur call")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls of each (best kept)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[28, 64, 128], help="image sides")
    ap.add_argument("--quick", action="store_true", help="2 repeats, a smaller peak measurement")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args()
    repeats = 2 if args.quick else args.repeats

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    first = _machine.peak(device, quick=args.quick)
    print(_machine.describe(first), flush=True)
    runs = []
    for size in args.sizes:
        runs.append(blur_rates(image_batch(args.batch, size, device), first, repeats))
        print(f"measured {size}x{size}", flush=True)
    machine = _machine.best_peak(first, _machine.peak(device, quick=args.quick))
    print(_machine.describe(machine), "(best of before and after)")
    print(
        f"{'image':>7} {'k':>4} {'method':<15} {'images/s':>10} {'FLOP/image':>11} "
        f"{'GFLOP/s':>8} {'of peak':>13} {'|diff|':>8}"
    )
    for size, r in zip(args.sizes, runs, strict=True):
        for name, row in r["methods"].items():
            row["fraction_of_peak"] = _machine.fraction(row["gflops"], machine, row["peak_kind"])
            print(
                f"{f'{size}x{size}':>7} {r['kernel_size']:>4} {name:<15} "
                f"{row['images_per_s']:>10.0f} {row['flop_per_image']:>11.3g} "
                f"{row['gflops']:>8.1f} {row['fraction_of_peak']:>6.1%} {row['peak_kind']:<6} "
                f"{row['max_abs_diff_to_old']:>8.1e}"
            )
        print(
            f"{'':>7} new blur() is {r['new_over_loop']:.1f}x the loop, "
            f"{r['new_over_dense']:.1f}x dense 2-D, {r['new_over_old_separable']:.1f}x the old "
            f"separable; new degrade() {r['degrade_over_loop']:.1f}x the loop, "
            f"{r['degrade_over_dense']:.1f}x dense 2-D; the matmuls alone "
            f"{r['floor_over_dense']:.1f}x dense 2-D"
        )
    result = {
        "benchmark": "batched Gaussian blur, mixed t (images per second)",
        "peak": machine,
        "flop_counts": {
            "per-image loop, old separable": "2 (k_h + k_w) H W per image",
            "dense 2-D": "2 k_h k_w H W per image",
            "new": "2 H W (H + W) per image (two dense n x n matmuls; building not counted)",
        },
        "runs": runs,
        **_machine.machine_info(device),
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
