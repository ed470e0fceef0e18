"""Pieces several methods share: the result of a diffusion sampler, the bookkeeping of
its snapshots, the holder for objects a method uses but does not own, and the
per-channel scale of the field methods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["SampleResult", "Unowned", "channel_scale", "snapshot_steps"]


@dataclass
class SampleResult:
    """Final samples and the trajectory captured at requested timesteps.

    ``trajectory[k]`` is the state x_t at ``timesteps[k]`` (the input of the step from t
    to t-1), so t = n_T is the starting point and the final ``images`` are x_0.
    """

    images: torch.Tensor
    trajectory: torch.Tensor | None = None
    timesteps: list[int] = field(default_factory=list)


def snapshot_steps(visited: list[int], requested: list[int] | tuple[int, ...]) -> dict[int, int]:
    """Map each visited timestep to the requested snapshot it stands for.

    A requested timestep that the sampler does not visit is recorded at the nearest
    visited timestep above it; requests below every visited timestep are dropped.

    Parameters
    ----------
    visited
        Timesteps in the order the sampler visits them.
    requested
        Timesteps whose state the caller wants.

    Returns
    -------
    dict
        ``{visited timestep: requested timestep}``.
    """
    out: dict[int, int] = {}
    for r in requested:
        at_or_above = [t for t in visited if t >= r]
        if at_or_above:
            out.setdefault(min(at_or_above), r)
    return out


class Unowned:
    """Objects a method uses but does not own (a scene, a loss with pretrained weights).

    Attributes of this holder are not submodules: they stay out of ``state_dict`` (so
    out of checkpoints) and ``parameters()``, and ``copy.deepcopy`` (the trainer's EMA
    copy) shares them instead of copying.

    Examples
    --------
    >>> shared = Unowned(loss=None)
    >>> shared.loss is None
    True
    """

    def __init__(self, **objects: Any) -> None:
        self.__dict__.update(objects)

    def __deepcopy__(self, memo: dict) -> Unowned:
        return self


def channel_scale(
    scale: torch.Tensor | Sequence[float] | None, net: nn.Module | int, what: str = "scale"
) -> torch.Tensor:
    """A ``[C]`` float32 tensor of positive per-channel scales for fields of ``net``.

    ``None`` gives ones, one per ``net.in_channels`` (or per channel, when ``net`` is the
    number of channels); otherwise ``scale`` must have one value per channel of the net
    (where the net says how many it has). ``what`` names the scale in errors.
    """
    channels = net if isinstance(net, int) else getattr(net, "in_channels", None)
    if scale is None:
        if channels is None:
            raise ValueError(f"{type(net).__name__} has no in_channels attribute; pass scale")
        return torch.ones(int(channels))
    s = torch.as_tensor(scale, dtype=torch.float32).detach().reshape(-1).clone()
    if channels is not None and s.numel() != int(channels):
        raise ValueError(f"{what} needs one value per field channel ({channels}), got {s.numel()}")
    if not torch.all(s > 0):
        raise ValueError(f"{what} must be positive, got {s.tolist()}")
    return s
