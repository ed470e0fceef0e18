"""What this machine can do: measured fp32 matmul and convolution throughput, for context.

Every benchmark calls :func:`peak` in the same run (same device, same thread count, same
load from other processes) and reports its hot paths also as a fraction of it: achieved
GFLOP/s divided by the measured peak, with the FLOP count it assumed written next to it.

- ``sgemm``: one ``n x n @ n x n`` float32 matmul, ``2 n^3`` FLOP;
- ``conv2d``: a ResNet-like 3 x 3 convolution, batch 32, 64 -> 64 channels, 56 x 56,
  ``2 Cin Cout k^2 H W`` FLOP per image.

Both are best-of-``repeats`` after a warm-up, so they are what torch reaches on this
machine for large, regular work, not the vendor's theoretical figure.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "best_peak",
    "conv2d_flops",
    "count_flops",
    "describe",
    "fraction",
    "gflops",
    "machine_info",
    "peak",
    "sync",
    "timed",
    "timed_together",
]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _loops(call: Callable[[], object], device: torch.device) -> int:
    """Warm up once; how many calls make a measurement of about 20 ms."""
    start = time.perf_counter()
    call()
    sync(device)
    return max(1, int(0.02 / max(time.perf_counter() - start, 1e-6)))


def _measure(call: Callable[[], object], device: torch.device, loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        call()
    sync(device)
    return (time.perf_counter() - start) / loops


def timed(call: Callable[[], object], device: torch.device, repeats: int = 3) -> float:
    """Best seconds per ``call`` over ``repeats`` measurements after one warm-up call.

    Calls shorter than 20 ms are looped so that each measurement lasts about that long.
    """
    loops = _loops(call, device)
    return min(_measure(call, device, loops) for _ in range(repeats))


def timed_together(
    calls: dict[str, Callable[[], object]], device: torch.device, repeats: int = 3
) -> dict[str, float]:
    """:func:`timed` for several calls, measured in turn (round robin) and best kept, so that
    load from other processes on a shared machine hits them all alike."""
    loops = {name: _loops(call, device) for name, call in calls.items()}
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats):
        for name, call in calls.items():
            best[name] = min(best[name], _measure(call, device, loops[name]))
    return best


def conv2d_flops(c_in: int, c_out: int, k: int | tuple[int, int], h: int, w: int) -> int:
    """FLOP of one image through a convolution with an ``h x w`` output: 2 Cin Cout kh kw H W."""
    kh, kw = (k, k) if isinstance(k, int) else k
    return 2 * c_in * c_out * kh * kw * h * w


def count_flops(call: Callable[[], object]) -> int:
    """FLOP of one ``call`` as :class:`torch.utils.flop_counter.FlopCounterMode` counts them
    (matmuls and convolutions, forward and backward; elementwise work is not counted)."""
    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


def gflops(flop: float, seconds: float) -> float:
    return flop / seconds / 1e9


def fraction(achieved_gflops: float, machine: dict, kind: str = "sgemm") -> float:
    """Achieved GFLOP/s as a fraction of the measured peak of ``kind`` (sgemm or conv2d)."""
    return achieved_gflops / machine[f"{kind}_gflops"]


# conv2d shapes whose best throughput is taken as the peak: a ResNet-style 3x3 layer and
# the seed CNN's 7x7 layer at MNIST size (oneDNN runs the second much closer to the
# hardware's limit on some CPUs; a single shape understated the peak, giving > 100 %).
CONV_SHAPES = ((32, 64, 56, 3), (128, 32, 28, 7))  # (batch, channels, size, kernel)
CONV_SHAPES_QUICK = ((8, 64, 56, 3), (32, 32, 28, 7))


def peak(
    device: torch.device | str = "cpu", n: int = 2048, repeats: int = 5, quick: bool = False
) -> dict:
    """Measured fp32 sgemm and conv2d GFLOP/s on ``device`` at torch's current thread count.

    The conv2d peak is the best of :data:`CONV_SHAPES` (same padding, float32).

    Returns
    -------
    dict
        ``sgemm_gflops``, ``sgemm_flop`` (of one call) and ``sgemm_shape``;
        ``conv2d_gflops``, ``conv2d_flop`` and ``conv2d_shape`` (of the best shape);
        ``threads``, ``device``.
    """
    device = torch.device(device)
    if quick:
        n = min(n, 1024)
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=gen)
    b = torch.randn(n, n, device=device, generator=gen)
    sgemm_flop = 2 * n**3
    calls: dict[str, Callable[[], object]] = {"sgemm": lambda: a @ b}
    convs = {}
    with torch.no_grad():
        for batch, c, hw, k in CONV_SHAPES_QUICK if quick else CONV_SHAPES:
            x = torch.randn(batch, c, hw, hw, device=device, generator=gen)
            weight = torch.randn(c, c, k, k, device=device, generator=gen)
            name = f"[{batch}, {c}, {hw}, {hw}] * [{c}, {c}, {k}, {k}], padding {k // 2}, float32"
            convs[name] = batch * conv2d_flops(c, c, k, hw, hw)
            calls[name] = lambda x=x, w=weight, p=k // 2: F.conv2d(x, w, padding=p)
        seconds = timed_together(calls, device, repeats)
    shape = max(convs, key=lambda name: convs[name] / seconds[name])
    return {
        "sgemm_gflops": gflops(sgemm_flop, seconds["sgemm"]),
        "sgemm_flop": sgemm_flop,
        "sgemm_shape": f"[{n}, {n}] @ [{n}, {n}] float32",
        "conv2d_gflops": gflops(convs[shape], seconds[shape]),
        "conv2d_flop": convs[shape],
        "conv2d_shape": shape,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }


def best_peak(*measured: dict) -> dict:
    """The highest of several :func:`peak` measurements, per kind (load from other processes
    only ever lowers a measurement); the single measurements are kept under ``measured``."""
    best = dict(max(measured, key=lambda m: m["sgemm_gflops"]))
    conv = max(measured, key=lambda m: m["conv2d_gflops"])
    best.update({key: conv[key] for key in ("conv2d_gflops", "conv2d_flop", "conv2d_shape")})
    best["measured"] = [
        {"sgemm_gflops": m["sgemm_gflops"], "conv2d_gflops": m["conv2d_gflops"]} for m in measured
    ]
    return best


def machine_info(device: torch.device | str = "cpu") -> dict:
    """Torch version, threads, CPU/GPU names and load: what the numbers were measured on."""
    device = torch.device(device)
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def describe(machine: dict) -> str:
    """One line: the measured peaks."""
    return (
        f"measured peak on {machine['device']} ({machine['threads']} threads): "
        f"sgemm {machine['sgemm_gflops']:.0f} GFLOP/s, conv2d {machine['conv2d_gflops']:.0f} "
        f"GFLOP/s"
    )
