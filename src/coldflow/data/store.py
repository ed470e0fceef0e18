"""Fluid data sets in HDF5: the file layout, a reader, and windowed datasets (the writer
used by generation is :mod:`coldflow.data.store_writer`).

One file per data set::

    /                       attrs: format, format_version, name, scene, dt, frames, warmup,
                                   source_start, factor, resolution_high, resolution_low,
                                   domain_size, param_names, probe, layout, scene_json,
                                   config_yaml, version_* (phiflow, phiml, torch, ...)
    /obstacle/high          (H, W)  fraction of each high-resolution cell inside obstacles
    /obstacle/low           (h, w)  the same at the low resolution
    /sims/0000              attrs: index, split ("train" | "test"), seed, every parameter
                                   (e.g. re) and derived quantities (e.g. nu, re_diameter)
        reference/velocity    (T, 2, H + 1, W + 1)  high-resolution trajectory
        reference/density     (T, H, W)
        downsampled/velocity  (T, 2, h + 1, w + 1)  reference restricted to the low grid
        downsampled/density   (T, h, w)
        source/velocity       (T, 2, h + 1, w + 1)  low-resolution solver, no correction
        source/density        (T, h, w)
    /sims/0001 ...

All arrays are float32 and carry a Fletcher-32 checksum per chunk (a flipped bit is an
error on read, never a wrong number); each field's dataset has a ``grid`` attribute
(``"staggered"`` or ``"centered"``). Velocities use the padded staggered layout of
:mod:`coldflow.physics.grid` (channel 0 = y component on y faces, channel 1 = x component
on x faces, zero padding in the last column / row). ``source`` frames up to
``source_start`` equal ``downsampled``; later frames are the low-resolution solver run
from the downsampled reference at ``source_start``.

Generation writes every simulation to its own part file (``<out>.parts/sim_0000.h5``),
which appears atomically when the simulation is complete; the data set file is then
assembled from the parts, again atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from coldflow.errors import UserError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "KINDS",
    "LAYOUT",
    "FieldData",
    "FieldWindows",
    "SimulationInfo",
]

FORMAT = "coldflow-fields"
FORMAT_VERSION = 1
KINDS = ("reference", "downsampled", "source")
"""Trajectories stored per simulation: high-resolution reference, the reference
restricted to the low-resolution grid, and the uncorrected low-resolution solver."""

LAYOUT = (
    "velocity (T, 2, H+1, W+1) float32: [:, 0, j, i] = v_y at (y=j*dy, x=(i+0.5)*dx) for "
    "j<=H, i<W; [:, 1, j, i] = v_x at (y=(j+0.5)*dy, x=i*dx) for j<H, i<=W; column W of "
    "channel 0 and row H of channel 1 are zero padding; faces fixed by the boundary hold "
    "its normal velocity. density (T, H, W) cell-centred. y is the first axis (flow "
    "direction / up)."
)


class FieldDataError(UserError, ValueError):
    """A data set file is missing, incomplete, damaged or not a coldflow fields file."""


def grid_of(name: str) -> str:
    """``"staggered"`` for a velocity dataset path, ``"centered"`` for any other field."""
    return "staggered" if name.rsplit("/", 1)[-1] == "velocity" else "centered"


def h5_attrs(obj: h5py.HLObject) -> dict[str, Any]:
    """Attributes of an HDF5 file, group or dataset as plain Python values."""
    out = {}
    for key, value in obj.attrs.items():
        if isinstance(value, np.ndarray):
            value = [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, bytes):
            value = value.decode()
        out[key] = value
    return out


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class SimulationInfo:
    """One simulation of a data set."""

    index: int
    key: str
    split: str
    seed: int
    params: dict[str, float]
    attrs: dict[str, Any]


class FieldData:
    """Read-only access to a fluid data set file.

    Parameters
    ----------
    path
        The ``.h5`` file written by ``coldflow simulate``.

    Raises
    ------
    FieldDataError
        When the file does not exist or is not a coldflow fields file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FieldDataError(
                f"{self.path}: data set not found; generate it with "
                f"`coldflow simulate <config> --out {self.path}`"
            )
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise FieldDataError(f"{self.path}: not a readable HDF5 file ({e})") from None
        self.attrs = h5_attrs(self._file)
        if self.attrs.get("format") != FORMAT:
            self._file.close()
            raise FieldDataError(f"{self.path}: not a coldflow fields file (no format={FORMAT!r})")
        if int(self.attrs.get("format_version", 0)) > FORMAT_VERSION:
            self._file.close()
            raise FieldDataError(
                f"{self.path}: format version {self.attrs['format_version']} is newer than "
                f"this coldflow reads ({FORMAT_VERSION}); upgrade coldflow"
            )

    # -- metadata
    @property
    def scene(self) -> str:
        return str(self.attrs["scene"])

    @property
    def dt(self) -> float:
        return float(self.attrs["dt"])

    @property
    def frames(self) -> int:
        return int(self.attrs["frames"])

    @property
    def warmup(self) -> int:
        return int(self.attrs["warmup"])

    @property
    def source_start(self) -> int:
        return int(self.attrs["source_start"])

    @property
    def param_names(self) -> list[str]:
        return list(self.attrs.get("param_names", []))

    @property
    def scene_description(self) -> dict[str, Any]:
        return json.loads(self.attrs["scene_json"])

    def resolution(self, kind: str) -> tuple[int, int]:
        """``(H, W)`` of a trajectory kind."""
        key = "resolution_high" if kind == "reference" else "resolution_low"
        return tuple(int(v) for v in self.attrs[key])  # type: ignore[return-value]

    def spacing(self, kind: str) -> tuple[float, float]:
        """Cell size ``(dy, dx)`` of a trajectory kind."""
        (Ly, Lx), (H, W) = self.attrs["domain_size"], self.resolution(kind)
        return Ly / H, Lx / W

    def has(self, field: str) -> bool:
        """Whether the simulations store ``field`` (``"velocity"`` or ``"density"``)."""
        first = next(iter(self._file["sims"].values()), None)
        return first is not None and f"reference/{field}" in first

    def simulations(self, split: str | None = None) -> list[SimulationInfo]:
        """The simulations, optionally of one split, in index order."""
        out = []
        for key in sorted(self._file["sims"]):
            a = h5_attrs(self._file["sims"][key])
            if split is not None and a.get("split") != split:
                continue
            params = {name: float(a[name]) for name in self.param_names}
            out.append(SimulationInfo(int(a["index"]), key, a["split"], int(a["seed"]), params, a))
        return out

    def obstacle(self, kind: str) -> np.ndarray:
        """Obstacle fraction per cell at the resolution of ``kind``."""
        name = "obstacle/high" if kind == "reference" else "obstacle/low"
        return _read_dataset(self.path, self._file, name, ())

    def read(
        self,
        sim: int | SimulationInfo,
        kind: str = "downsampled",
        field: str = "velocity",
        frames: slice | Sequence[int] | int = slice(None),
    ) -> np.ndarray:
        """Frames of one stored trajectory as a float32 array."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        key = sim.key if isinstance(sim, SimulationInfo) else f"{int(sim):04d}"
        return _read_dataset(self.path, self._file, f"sims/{key}/{kind}/{field}", frames)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FieldData:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_dataset(path: Path, file: h5py.File, name: str, index: Any) -> np.ndarray:
    """``file[name][index]``; a missing or damaged dataset is a :class:`FieldDataError`.

    HDF5 reports a failed checksum or an undecodable chunk as a bare ``OSError`` without
    the file's name; this names the file and the dataset.
    """
    if name not in file:
        raise FieldDataError(f"{path}: no dataset {name!r}; the data set is incomplete")
    try:
        return file[name][index]
    except OSError as e:
        raise FieldDataError(
            f"{path}: dataset {name!r} is damaged ({e}); regenerate the data set with "
            "`coldflow simulate` (or restore the file)"
        ) from None


class FieldWindows(Dataset):
    """Windows of ``m + 1`` consecutive frames from a fluid data set.

    Parameters
    ----------
    path
        Data set file.
    m
        Steps per window: each item holds frames ``t .. t + m``.
    split
        ``"train"``, ``"test"`` or ``None`` for all simulations.
    kinds
        Trajectories to read: any of ``"reference"``, ``"downsampled"``, ``"source"``.
    fields
        ``"velocity"`` and/or ``"density"`` (density only where the scene stores it).
    skip_warmup
        Start windows at the data set's ``warmup`` frame.
    stride
        Distance between the first frames of consecutive windows.

    Each item is a dict of tensors: ``"{kind}_{field}"`` of shape ``(m + 1, ...)``,
    ``"params"`` ``(P,)`` in the order of :attr:`param_names`, ``"sim"`` and ``"frame"``
    (the window's first frame).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        m: int,
        split: str | None = "train",
        kinds: Sequence[str] = ("downsampled",),
        fields: Sequence[str] = ("velocity",),
        skip_warmup: bool = True,
        stride: int = 1,
    ):
        if m < 1:
            raise ValueError(f"m must be at least 1, got {m}")
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise ValueError(f"unknown kinds {bad}; choose from {KINDS}")
        self.path, self.m, self.kinds, self.fields = Path(path), int(m), tuple(kinds), tuple(fields)
        with FieldData(self.path) as data:
            missing = [f for f in self.fields if not data.has(f)]
            if missing:
                raise ValueError(f"{self.path}: the {data.scene} data set stores no {missing}")
            self.param_names = data.param_names
            self.sims = data.simulations(split)
            first = data.warmup if skip_warmup else 0
            last = data.frames - self.m  # last valid start frame + 1
        if not self.sims:
            raise ValueError(f"{self.path}: no simulations in split {split!r}")
        self.starts = list(range(first, last, stride))
        if not self.starts:
            raise ValueError(
                f"{self.path}: windows of {m + 1} frames do not fit after frame {first}"
            )
        self._file: h5py.File | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.sims) * len(self.starts)

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():  # one handle per worker process
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        sim = self.sims[i // len(self.starts)]
        t = self.starts[i % len(self.starts)]
        file, window = self._handle(), slice(t, t + self.m + 1)
        item = {
            f"{kind}_{field}": torch.from_numpy(
                _read_dataset(self.path, file, f"sims/{sim.key}/{kind}/{field}", window)
            )
            for kind in self.kinds
            for field in self.fields
        }
        item["params"] = torch.tensor(
            [sim.params[n] for n in self.param_names], dtype=torch.float32
        )
        item["sim"] = torch.tensor(sim.index)
        item["frame"] = torch.tensor(t)
        return item

    def __getstate__(self) -> dict:  # h5py handles do not pickle (DataLoader workers)
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, -1
        return state

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for i in range(len(self)):
            yield self[i]
