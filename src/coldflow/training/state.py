"""What a training checkpoint holds, and putting it back.

A checkpoint is two parts (see :meth:`coldflow.runs.RunDir.save_checkpoint`): tensors for
safetensors (``model.*``, ``ema.*``, ``optim.<param>.<name>``, ``rng.torch``,
``rng.cuda``) and a JSON sidecar (counters, the config hash, the optimizer's parameter
groups and scalar state, the Python and NumPy RNG states, the torch version). Restoring
both makes a resumed run continue bit for bit (on the CPU) where the saved one stopped.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn

from coldflow.training.parts import EMA

__all__ = ["restore_state", "training_state"]


def training_state(
    model: nn.Module,
    ema: EMA | None,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    counters: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, sidecar)`` of a checkpoint; ``counters`` (epoch, step, ...) go to the sidecar."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors |= {f"ema.{k}": v for k, v in ema.module.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in opt["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    tensors["rng.torch"] = torch.get_rng_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    py_state = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002
    sidecar = {
        **counters,
        "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars},
        "rng": {
            "python": [py_state[0], list(py_state[1]), py_state[2]],
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        },
        "torch_version": torch.__version__,
    }
    return tensors, sidecar


def restore_state(
    tensors: dict[str, torch.Tensor],
    sidecar: dict[str, Any],
    model: nn.Module,
    ema: EMA | None,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> None:
    """Load weights, EMA, optimizer and RNG states of a checkpoint (counters: the caller's).

    A checkpoint without EMA weights gives the EMA copy the model's.
    """
    model.load_state_dict(_strip(tensors, "model."))
    if ema is not None:
        ema.module.load_state_dict(_strip(tensors, "ema.") or _strip(tensors, "model."))
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value.to(device)
    for idx, scal in sidecar["optimizer"]["scalars"].items():
        opt_state.setdefault(int(idx), {}).update(scal)
    optimizer.load_state_dict(
        {"state": opt_state, "param_groups": sidecar["optimizer"]["param_groups"]}
    )
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    py = sidecar["rng"]["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = sidecar["rng"]["numpy"]
    np.random.set_state((npst[0], np.array(npst[1], dtype=np.uint32), *npst[2:]))  # noqa: NPY002


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
