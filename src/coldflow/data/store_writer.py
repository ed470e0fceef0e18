"""Writing fluid data sets: one part file per simulation, then the assembled data set.

The layout is described in :mod:`coldflow.data.store`. Every part file appears
atomically when its simulation is complete (``complete = True``); :func:`merge_parts`
assembles the data set file from the parts, again atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from coldflow.data.store import FORMAT, FORMAT_VERSION, grid_of, h5_attrs
from coldflow.io import atomic_path

__all__ = ["SimulationWriter", "merge_parts", "part_attrs"]


def _attr_value(value: Any) -> Any:
    if isinstance(value, str):
        return str(value)  # plain str (not e.g. torch's TorchVersion)
    if isinstance(value, int | float | bool | np.integer | np.floating):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value):
        return np.asarray(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=h5py.string_dtype())
    return json.dumps(value)


def _set_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        if value is not None:
            obj.attrs[key] = _attr_value(value)


class SimulationWriter:
    """Write one simulation's part file frame by frame; it appears only when committed.

    Parameters
    ----------
    path
        Final path of the part file.
    attrs
        Attributes of the simulation (index, split, seed, parameters, ...).
    shapes
        ``{"reference/velocity": (T, 2, H + 1, W + 1), ...}``: the datasets to create.
    compression
        ``"none"``, ``"lzf"`` or ``"gzip"``.

    Use as a context manager: leaving the block normally commits (the part file is
    renamed into place with ``complete = True``); an exception removes the temporary file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        attrs: Mapping[str, Any],
        shapes: Mapping[str, tuple[int, ...]],
        compression: str = "none",
    ):
        self.path = Path(path)
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._file = h5py.File(self._tmp, "w")
        _set_attrs(self._file, {**attrs, "complete": False})
        comp = None if compression == "none" else compression
        for name, shape in shapes.items():
            dset = self._file.create_dataset(
                name, shape=shape, dtype="float32", chunks=(1, *shape[1:]), compression=comp,
                fletcher32=True,
            )  # fmt: skip
            dset.attrs["grid"] = grid_of(name)
        self._open = True

    def write(self, name: str, frame: int, values: np.ndarray | torch.Tensor) -> None:
        """Store ``values`` (one frame, or ``n`` frames with a leading axis) at ``frame``."""
        array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
        dset = self._file[name]
        array = np.asarray(array, dtype=np.float32)
        if array.ndim == dset.ndim - 1:
            dset[frame] = array
        else:
            dset[frame : frame + len(array)] = array

    def commit(self, **attrs: Any) -> Path:
        """Mark the simulation complete (adding ``attrs``, e.g. the seconds it took) and
        move the file into place."""
        _set_attrs(self._file, attrs)
        self._file.attrs["complete"] = True
        self._file.close()
        self._open = False
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        """Discard the temporary file."""
        if self._open:
            self._file.close()
            self._open = False
            err = RuntimeError("simulation aborted")
            self._atomic.__exit__(RuntimeError, err, None)  # removes the temporary file

    def __enter__(self) -> SimulationWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def part_attrs(path: str | os.PathLike) -> dict[str, Any] | None:
    """Attributes of a complete part file, or ``None`` when it is missing or incomplete."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            attrs = h5_attrs(f)
    except OSError:
        return None
    return attrs if attrs.get("complete") else None


def merge_parts(
    parts: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    attrs: Mapping[str, Any],
    shared: Mapping[str, np.ndarray],
    existing: str | os.PathLike | None = None,
) -> Path:
    """Assemble part files into one data set file, atomically.

    Parameters
    ----------
    parts
        Part files in simulation order; each becomes ``/sims/NNNN``.
    out
        The data set file.
    attrs
        Root attributes.
    shared
        Datasets shared by all simulations, e.g. ``{"obstacle/high": mask}``.
    existing
        A data set file whose simulations come first (copied as they are); the parts
        add to them. It may be ``out`` itself: the new file replaces it only when
        complete.
    """
    out = Path(out)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        _set_attrs(f, {**attrs, "format": FORMAT, "format_version": FORMAT_VERSION})
        for name, array in shared.items():
            f.create_dataset(name, data=np.asarray(array, dtype=np.float32), fletcher32=True)
        sims = f.create_group("sims")
        count = 0
        if existing is not None:
            with h5py.File(existing, "r") as old:
                for key in old["sims"]:
                    old.copy(old["sims"][key], sims, name=key)
                    count += 1
        for part in parts:
            with h5py.File(part, "r") as src:
                a = h5_attrs(src)
                group = sims.create_group(f"{int(a['index']):04d}")
                for key in src:
                    src.copy(src[key], group, name=key)
                _set_attrs(group, {k: v for k, v in a.items() if k != "complete"})
        f.attrs["n_simulations"] = count + len(parts)
    return out
