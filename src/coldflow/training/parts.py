"""The pieces the :class:`~coldflow.training.trainer.Trainer` is built from: device, seeding,
hashes of the config fields that determine a training trajectory, EMA, moving batches,
the optimizer and compilation (with its fallback)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import shutil
import sys
import warnings
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from coldflow.config import ConfigError
from coldflow.errors import DeviceError, is_interrupt

__all__ = [
    "EMA",
    "CompiledStep",
    "is_distributed",
    "warn_no_compile",
    "RESUMABLE_OPTIMIZER_FIELDS",
    "RESUMABLE_TRAINING_FIELDS",
    "ConfigMismatchError",
    "batch_size_of",
    "build_optimizer",
    "compile_unavailable",
    "config_hash",
    "hash_matches",
    "resolve_device",
    "seed_everything",
    "to_device",
    "trajectory_hash",
]

# training settings that may differ between a run and its resumption: they do not change
# the trajectory, or only its rounding (compile, channels_last, optimizer.fused); config
# hashes leave them out
RESUMABLE_TRAINING_FIELDS = frozenset(
    {
        "epochs",
        "progress",
        "device",
        "keep_checkpoints",
        "num_workers",
        "max_nonfinite_steps",
        "compile",
        "channels_last",
    }
)
# the same for fields of ``training.optimizer``
RESUMABLE_OPTIMIZER_FIELDS = frozenset({"fused"})


class ConfigMismatchError(ConfigError, RuntimeError):
    """A resumed run's config differs from the one its checkpoint was trained with."""


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


def config_hash(obj: Any) -> str:
    """Short stable hash of a JSON-serialisable object (a config dump)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def hash_matches(stored: str | None, current: str) -> bool:
    """Whether a checkpoint's stored trajectory hash allows the config hashing to
    ``current`` (checkpoints written before hashes were stored carry none)."""
    return stored in ("", None, current)


def trajectory_hash(cfg: Any, exclude: dict[str, Any] | None = None) -> str:
    """Hash of the config fields that determine a training trajectory.

    Leaves out the run's ``name``, its ``evaluation`` section, the
    :data:`RESUMABLE_TRAINING_FIELDS` (and ``RESUMABLE_OPTIMIZER_FIELDS``) and whatever
    ``exclude`` adds (pydantic's ``model_dump`` exclude syntax). Stored in checkpoints and
    checked on resume.
    """
    training = dict.fromkeys(RESUMABLE_TRAINING_FIELDS, True)
    training["optimizer"] = dict.fromkeys(RESUMABLE_OPTIMIZER_FIELDS, True)
    skip = {"name": True, "evaluation": True, "training": training}
    return config_hash(cfg.model_dump(mode="json", exclude=skip | (exclude or {})))


class EMA:
    """Exponential moving average of a module's parameters (buffers are copied).

    ``module`` holds the averaged copy and can be used directly for sampling.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = list(self.module.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in model.parameters()], 1.0 - self.decay)
        for b_ema, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)


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
    return dist.is_available() and dist.is_initialized()


def build_optimizer(params: Any, cfg: Any, device: torch.device) -> torch.optim.Optimizer:
    """Adam or AdamW as ``cfg`` (an ``OptimizerConfig``) says.

    ``fused: null`` picks the fused kernel on CUDA and torch's default elsewhere (on this
    project's CPUs the fused and foreach kernels measured no faster for its small nets).
    All kernels compute the same update up to rounding.
    """
    opt = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.kind]
    fused = getattr(cfg, "fused", None)
    if fused is None and device.type == "cuda":
        fused = True
    try:
        return opt(
            params,
            lr=cfg.lr,
            betas=tuple(cfg.betas),
            weight_decay=cfg.weight_decay,
            fused=fused or None,
        )
    except RuntimeError as e:  # fused=True on a device without the kernel
        raise ConfigError(
            f"training.optimizer.fused is true but {e}; set training.optimizer.fused to null"
        ) from None


def compile_unavailable(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot be used on ``device`` here, or ``None`` if it can."""
    try:
        import torch._dynamo as dynamo

        if not dynamo.is_dynamo_supported():
            return f"torch.compile does not support Python {sys.version.split()[0]}"
    except Exception as e:  # noqa: BLE001 (any import problem means: not available)
        return f"torch.compile cannot be imported ({type(e).__name__}: {e})"
    if device.type == "cpu":
        cxx = os.environ.get("CXX") or "g++"
        if not any(shutil.which(c) for c in (cxx, "g++", "clang++", "c++")):
            return f"no C++ compiler found ({cxx}); install g++ or set CXX"
    elif device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "Triton is not installed (pip install triton)"
    else:
        return f"not set up for device {device.type!r}"
    return None


class CompiledStep:
    """``module(batch)`` through ``torch.compile``, falling back to eager with one warning.

    Random draws inside the compiled code use the eager generators (inductor's
    ``fallback_random``), so a compiled run draws the same numbers as an eager one and
    differs from it only by rounding. A call that fails to compile is run again eagerly
    from the same RNG state; if that works, a one-line warning says compiling is off.
    """

    def __init__(self, module: nn.Module, device: torch.device) -> None:
        self.module = module
        self.device = device
        why = compile_unavailable(device)
        self.compiled = None if why else torch.compile(module)
        if why:
            warn_no_compile(why)

    def __call__(self, batch: Any) -> torch.Tensor:
        if self.compiled is None:
            return self.module(batch)
        state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        try:
            import torch._inductor.config as inductor_config

            with inductor_config.patch(fallback_random=True):
                return self.compiled(batch)
        except Exception as e:  # noqa: BLE001 (any compile failure: run eagerly instead)
            if is_interrupt(e):  # Ctrl-C inside TorchScript (a solver step), not a failure
                raise
            torch.set_rng_state(state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, self.device)
            out = self.module(batch)  # a genuine error of the model raises here
            self.compiled = None
            warn_no_compile(f"compiling failed ({type(e).__name__}: {str(e).splitlines()[0]})")
            return out


def warn_no_compile(why: str) -> None:
    warnings.warn(
        f"training.compile: {why}; training continues without torch.compile",
        RuntimeWarning,
        stacklevel=3,
    )
