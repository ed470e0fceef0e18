"""Drawing samples of a diffusion model in batches (what every evaluation, grid and
``coldflow sample`` of the diffusion tasks calls)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from coldflow.methods import SampleResult

__all__ = [
    "CPU_SAMPLE_BATCH",
    "GPU_SAMPLE_BATCH",
    "IMAGE_SHAPE",
    "device_of",
    "draw",
    "sample_batch_size",
    "with_trajectory",
]

IMAGE_SHAPE = (1, 28, 28)
"""MNIST images, ``(C, H, W)``."""


def device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters."""
    return next(model.parameters()).device


# images per sampling call when none is configured: on a CPU a batch whose activations fit
# the cache is much faster per image (2 cores, 28 x 28: batch 64 against 500 is 1.8x for
# the seed CNN and the blur model's U-Net, 3x for the demo U-Net); a GPU wants large ones
CPU_SAMPLE_BATCH = 64
GPU_SAMPLE_BATCH = 500


def sample_batch_size(batch_size: int | None, device: torch.device) -> int:
    """``batch_size``, or the default for ``device`` when it is ``None``."""
    if batch_size is not None:
        return batch_size
    return CPU_SAMPLE_BATCH if device.type == "cpu" else GPU_SAMPLE_BATCH


def draw(
    model: nn.Module,
    n: int,
    *,
    seed: int = 0,
    batch_size: int | None = None,
    start: torch.Tensor | None = None,
    snapshots: Sequence[int] = (),
    progress: bool = False,
    **options: Any,
) -> SampleResult:
    """Sample ``n`` images in batches (the trajectory comes from the first batch).

    ``start`` (cold diffusion) gives the x_T of each sample; ``options`` go to
    ``model.sample`` (``sampler``, ``steps``, ``eta``, ``prior``). ``progress`` prints a
    line per batch with the rate and the time left. ``batch_size`` ``None`` takes the
    device's default (:func:`sample_batch_size`); the samples depend on it (each batch
    draws its noise in turn from the seeded generator).
    """
    if n < 1:
        raise ValueError(f"the number of samples must be at least 1, got {n}")
    device = device_of(model)
    batch_size = sample_batch_size(batch_size, device)
    gen = torch.Generator(device=device).manual_seed(seed)
    model.eval()
    images, first = [], None
    t0 = time.perf_counter()
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        extra = {} if start is None else {"start": start[i : i + m]}
        snaps = snapshots if i == 0 else ()
        res = model.sample(m, IMAGE_SHAPE, snapshots=snaps, generator=gen, **extra, **options)
        first = first or res
        images.append(res.images.cpu())
        if progress and n > m:
            done, spent = i + m, time.perf_counter() - t0
            left = spent / done * (n - done)
            print(f"  sampled {done}/{n} ({done / spent:.1f} images/s, {left:.0f} s left)")
    return SampleResult(torch.cat(images), first.trajectory, first.timesteps)


def with_trajectory(out: dict, res: SampleResult, suffix: str) -> dict[str, torch.Tensor]:
    """``out`` with the trajectory of ``res`` (and its timesteps) under keys ending in
    ``suffix``, when it has one."""
    if res.trajectory is not None:
        out[f"trajectory{suffix}"] = res.trajectory
        out[f"timesteps{suffix}"] = torch.tensor(res.timesteps, dtype=torch.long)
    return out
