"""What a training step is built from besides the device: the EMA copy of the model, the
optimizer, and the compiled step (with its fallback to eager)."""

from __future__ import annotations

import copy
import os
import shutil
import sys
import warnings
from typing import Any

import torch
from torch import nn

from coldflow.config import ConfigError
from coldflow.errors import is_interrupt

__all__ = ["EMA", "CompiledStep", "build_optimizer", "compile_unavailable", "warn_no_compile"]


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
    """Warn that training goes on without ``torch.compile``, and why."""
    warnings.warn(
        f"training.compile: {why}; training continues without torch.compile",
        RuntimeWarning,
        stacklevel=3,
    )
