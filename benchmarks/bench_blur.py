"""Speed of the batched Gaussian blur of cold diffusion, in images per second.

On one batch of MNIST test digits (random t per image, sigma_t of the default linear
schedule, a kernel covering the whole image: 29 for 28 x 28), three ways to blur:

- ``separable``: :func:`coldflow.degradations.blur.blur`, two 1-D grouped convolutions
  with per-image kernels in one call;
- ``dense 2-D``: one grouped conv2d with the full k x k outer-product kernel per image;
- ``per-image loop``: the separable blur called once per image in a Python loop.

It also prints how far the three results are apart (they should agree to ~1e-5 in
float32). ``--sizes`` adds larger canvases (the digits zero-padded to the centre), where the
separable form's k instead of k^2 multiplications per pixel show.

    python benchmarks/bench_blur.py [--batch 256] [--repeats 5] [--sizes 28 64]
                                    [--device cpu] [--out benchmarks/results/blur.json]

Prints a table and writes JSON; never asserts on time.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from coldflow.data import mnist_dataset
from coldflow.degradations.blur import GaussianBlur, blur, gaussian_kernel1d
from coldflow.io import write_json

DEFAULT_OUT = Path(__file__).parent / "results" / "blur.json"


def dense_blur(x: torch.Tensor, sigma: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: a full k x k kernel per image, reflect padding, one grouped conv2d."""
    b, c, h, w = x.shape
    k1 = gaussian_kernel1d(sigma.to(x.dtype), k)
    k2 = (k1[:, :, None] * k1[:, None, :]).repeat_interleave(c, dim=0)
    padded = F.pad(x.reshape(1, b * c, h, w), (k // 2,) * 4, mode="reflect")
    return F.conv2d(padded, k2[:, None], groups=b * c).reshape(b, c, h, w)


def loop_blur(x: torch.Tensor, sigma: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: the separable blur, one image at a time."""
    return torch.cat([blur(x[i : i + 1], sigma[i : i + 1], k) for i in range(len(x))])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(fn: Callable[[], torch.Tensor], n: int, repeats: int) -> float:
    """Best of ``repeats`` timed calls after one warm-up call."""
    fn()
    device = fn().device
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return n / best


def blur_rates(
    batch: torch.Tensor, repeats: int = 5, t: torch.Tensor | None = None, seed: int = 0
) -> dict:
    """Images/s of the three blurs on ``batch`` [B, C, H, W] and their largest differences.

    Parameters
    ----------
    batch
        Images on the device to measure; the kernel covers the whole image.
    repeats
        Timed calls of each method (the best is kept).
    t
        Timesteps of the default :class:`GaussianBlur` schedule, one per image; drawn
        uniformly from 1..n_T with ``seed`` when ``None``.

    Returns
    -------
    dict
        ``images_per_s`` (method -> rate), ``max_abs_diff`` (separable vs each reference),
        ``kernel_size``, ``batch``, ``image_shape``, ``dtype``, ``device``.
    """
    deg = GaussianBlur()
    n = len(batch)
    if t is None:
        t = torch.randint(1, deg.n_T + 1, (n,), generator=torch.Generator().manual_seed(seed))
    sigma = deg.sigma(t.cpu()).to(batch.device)
    k = 2 * (max(batch.shape[-2:]) // 2) + 1
    with torch.no_grad():
        results = {
            "separable": lambda: blur(batch, sigma, k),
            "dense 2-D": lambda: dense_blur(batch, sigma, k),
            "per-image loop": lambda: loop_blur(batch, sigma, k),
        }
        rates = {name: images_per_second(fn, n, repeats) for name, fn in results.items()}
        outputs = {name: fn() for name, fn in results.items()}
    sep = outputs["separable"]
    diffs = {
        name: (out - sep).abs().max().item() for name, out in outputs.items() if name != "separable"
    }
    return {
        "images_per_s": rates,
        "max_abs_diff": diffs,
        "kernel_size": k,
        "batch": n,
        "image_shape": list(batch.shape[1:]),
        "dtype": str(batch.dtype).removeprefix("torch."),
        "device": str(batch.device),
    }


def mnist_batch(n: int, size: int, device: torch.device) -> torch.Tensor:
    """``n`` MNIST test digits in [-0.5, 0.5], centred on a ``size`` x ``size`` canvas."""
    digits = mnist_dataset("test", (-0.5, 0.5), subset=n).tensors[0]
    if size > 28:
        lo = (size - 28) // 2
        digits = F.pad(digits, (lo, size - 28 - lo, lo, size - 28 - lo), value=-0.5)
    return digits.to(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256, help="images per blur call")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls of each (best kept)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[28, 64], help="image sides")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args()

    device = torch.device(args.device)
    runs = []
    print(f"{'image':>7} {'kernel':>6} {'method':<16} {'images/s':>12} {'max |diff|':>11}")
    for size in args.sizes:
        r = blur_rates(mnist_batch(args.batch, size, device), args.repeats)
        for name, rate in r["images_per_s"].items():
            diff = r["max_abs_diff"].get(name)
            diff_text = "-" if diff is None else f"{diff:.1e}"
            shape = f"{size}x{size}"
            print(f"{shape:>7} {r['kernel_size']:>6} {name:<16} {rate:>12.0f} {diff_text:>11}")
        rates = r["images_per_s"]
        r["separable_over_dense"] = rates["separable"] / rates["dense 2-D"]
        r["separable_over_loop"] = rates["separable"] / rates["per-image loop"]
        print(
            f"{'':>7} separable is {r['separable_over_dense']:.1f}x dense 2-D and "
            f"{r['separable_over_loop']:.1f}x the loop"
        )
        runs.append(r)
    result = {
        "runs": runs,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
