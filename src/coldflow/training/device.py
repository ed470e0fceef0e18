"""Where training runs and how batches get there: the device, seeding, moving (nested)
batches, their size, and whether this process is one of several (DDP)."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from coldflow.errors import DeviceError

__all__ = ["batch_size_of", "is_distributed", "resolve_device", "seed_everything", "to_device"]


def resolve_device(name: str = "auto", where: str = "training.device") -> torch.device:
    """``auto`` picks CUDA (this process's local rank under torchrun) when present.

    Raises
    ------
    DeviceError
        For a CUDA device this machine does not have; ``where`` names the setting.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        name = f"cuda:{os.environ['LOCAL_RANK']}"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"{where} is {name!r} but CUDA is not available here; use cpu")
        index = name.partition(":")[2]
        if index and int(index) >= torch.cuda.device_count():
            raise DeviceError(
                f"{where} is {name!r} but this machine has {torch.cuda.device_count()} GPU(s)"
            )
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (user code may use the legacy global RNG)
    torch.manual_seed(seed)


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move the tensors of a (nested) tuple, list or dict batch to ``device``.

    With ``channels_last``, 4-D floating-point tensors are also given the channels-last
    memory format (same values, other strides).
    """
    if torch.is_tensor(batch):
        if channels_last and batch.dim() == 4 and batch.is_floating_point():
            return batch.to(device, non_blocking=True, memory_format=torch.channels_last)
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(v, device, channels_last) for v in batch)
    return batch


def batch_size_of(batch: Any) -> int:
    """Number of samples in a batch: the leading size of its first tensor."""
    if torch.is_tensor(batch):
        return batch.shape[0]
    values = batch.values() if isinstance(batch, dict) else batch
    return next(
        batch_size_of(v) for v in values if torch.is_tensor(v) or isinstance(v, dict | tuple | list)
    )


def is_distributed() -> bool:
    """Whether this process belongs to an initialised process group (DDP)."""
    return dist.is_available() and dist.is_initialized()
