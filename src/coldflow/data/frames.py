"""Single frames of a fluid data set at cell centres, for the autoencoder and
super-resolution tasks.

The data set stores velocities on the faces (padded staggered layout, see
:mod:`coldflow.data.store`); networks that work on images want every channel at the
cell centres. A frame here is ``[C, H, W]``: the centred velocity ``(v_y, v_x)``
(:func:`coldflow.physics.faces_to_centered`) followed by the density where the data set
stores it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from coldflow.data.store import KINDS, FieldData, FieldDataError, SimulationInfo
from coldflow.physics.grid import faces_to_centered

__all__ = ["FIELDS", "MODES", "FieldFrames", "channel_names", "channel_std", "read_centered"]

MODES = ("autoencoder", "superres")
"""``autoencoder``: items ``{"x"}``; ``superres``: items ``{"low", "high"}``."""

FIELDS = ("velocity", "density")
"""Stored fields in channel order."""


def channel_names(fields: Sequence[str]) -> list[str]:
    """Names of the channels of centred frames of ``fields``: ``v_y``, ``v_x``, ``density``."""
    names = []
    for f in _ordered(fields):
        names += ["v_y", "v_x"] if f == "velocity" else [f]
    return names


def channel_std(frames: torch.Tensor) -> torch.Tensor:
    """``[C]`` standard deviation of each channel of ``frames`` ``[N, C, H, W]`` over all
    frames and cells; a constant channel gets 1, so dividing by the result is safe."""
    values = frames.double().transpose(0, 1).flatten(1)
    std = values.std(dim=1, correction=0)
    return torch.where(std > 1e-12, std, torch.ones_like(std)).float()


def _ordered(fields: Sequence[str]) -> list[str]:
    unknown = [f for f in fields if f not in FIELDS]
    if unknown or not fields:
        raise ValueError(f"fields must be a non-empty subset of {FIELDS}, got {list(fields)}")
    return [f for f in FIELDS if f in fields]


def read_centered(
    data: FieldData,
    sim: int | SimulationInfo,
    kind: str = "reference",
    frames: slice | Sequence[int] | int = slice(None),
    fields: Sequence[str] = ("velocity",),
) -> np.ndarray:
    """Frames of one simulation at cell centres, ``[T, C, H, W]`` float32.

    Parameters
    ----------
    data
        An open data set.
    sim
        Simulation index or info.
    kind
        ``"reference"``, ``"downsampled"`` or ``"source"``.
    frames
        A slice, a sequence of frame indices (any order) or one index (then ``T = 1``).
    fields
        ``"velocity"`` (2 channels, centred from the faces) and/or ``"density"``;
        channels follow :func:`channel_names`.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if isinstance(frames, int | np.integer):
        frames = slice(int(frames), int(frames) + 1)
    index = None
    if not isinstance(frames, slice):  # h5py wants increasing indices: read a span, pick
        wanted = np.asarray(frames, dtype=int).reshape(-1)
        if wanted.size == 0:
            raise ValueError("no frames requested")
        lo = int(wanted.min())
        frames, index = slice(lo, int(wanted.max()) + 1), wanted - lo
    parts = []
    for field in _ordered(fields):
        values = data.read(sim, kind, field, frames)
        if index is not None:
            values = values[index]
        if field == "velocity":
            parts.append(faces_to_centered(torch.from_numpy(np.ascontiguousarray(values))).numpy())
        else:
            parts.append(values[:, None])
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


class FieldFrames(Dataset):
    """All frames after the warm-up of one split of a fluid data set, held in memory.

    Parameters
    ----------
    path
        Data set file written by ``coldflow simulate``.
    mode
        ``"autoencoder"``: items ``{"x": [C, H, W]}`` of trajectory ``kind``;
        ``"superres"``: items ``{"low": [C, h, w], "high": [C, H, W]}``, the downsampled
        and the reference frame (``H = h * factor``, the file's ``factor``).
    split
        One of the file's splits (``"train"``, ``"test"``).
    kind
        Trajectory of the autoencoder's frames: ``"reference"`` or ``"downsampled"``.
    fields
        Subset of ``("velocity", "density")``; default: every field the file stores.
    stride
        Take every ``stride``-th frame of each simulation.
    max_frames
        Keep at most this many frames, evenly spread over the selection.
    skip_warmup
        Start at the data set's ``warmup`` frame.

    Every item also holds ``"sim"`` and ``"frame"``: where the frame comes from.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        mode: str = "autoencoder",
        split: str = "train",
        kind: str = "reference",
        fields: Sequence[str] | None = None,
        stride: int = 1,
        max_frames: int | None = None,
        skip_warmup: bool = True,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if kind not in ("reference", "downsampled"):
            raise ValueError(f"kind must be 'reference' or 'downsampled', got {kind!r}")
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self.path, self.mode, self.split = Path(path), mode, split
        with FieldData(self.path) as data:
            stored = [f for f in FIELDS if data.has(f)]
            self.fields = tuple(_ordered(stored if fields is None else fields))
            missing = [f for f in self.fields if f not in stored]
            if missing:
                raise ValueError(f"{self.path}: the {data.scene} data set stores no {missing}")
            splits = sorted({s.split for s in data.simulations()})
            if split not in splits:
                raise FieldDataError(f"{self.path}: no split {split!r}; the file has {splits}")
            self.factor = int(data.attrs["factor"])
            start = data.warmup if skip_warmup else 0
            frames = list(range(start, data.frames, stride))
            if not frames:
                raise ValueError(f"{self.path}: no frames after frame {start}")
            sims = data.simulations(split)
            kinds = {
                "autoencoder": {"x": kind},
                "superres": {"low": "downsampled", "high": "reference"},
            }
            self.tensors = {
                key: torch.from_numpy(
                    np.concatenate([read_centered(data, s, k, frames, self.fields) for s in sims])
                )
                for key, k in kinds[mode].items()
            }
        self.sim = torch.tensor([s.index for s in sims for _ in frames])
        self.frame = torch.tensor([t for _ in sims for t in frames])
        if max_frames is not None and max_frames < len(self.sim):
            keep = torch.from_numpy(
                np.unique(np.linspace(0, len(self.sim) - 1, max_frames).round().astype(np.int64))
            )
            self.tensors = {k: v[keep] for k, v in self.tensors.items()}
            self.sim, self.frame = self.sim[keep], self.frame[keep]

    @property
    def channels(self) -> list[str]:
        """Channel names, e.g. ``["v_y", "v_x", "density"]``."""
        return channel_names(self.fields)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the frames (of ``"high"`` in super-resolution mode)."""
        key = "x" if self.mode == "autoencoder" else "high"
        return tuple(self.tensors[key].shape[1:])  # type: ignore[return-value]

    def channel_std(self) -> torch.Tensor:
        """``[C]`` standard deviation of each channel over all frames and cells.

        Of ``"x"`` (autoencoder) or ``"high"`` (super-resolution); a channel that is
        constant gets 1, so dividing by the result is always safe. Compute it on the
        training split for the methods' ``scale``.
        """
        return channel_std(self.tensors["x" if self.mode == "autoencoder" else "high"])

    def __len__(self) -> int:
        return len(self.sim)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        item = {k: v[i] for k, v in self.tensors.items()}
        item["sim"], item["frame"] = self.sim[i], self.frame[i]
        return item

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for i in range(len(self)):
            yield self[i]
