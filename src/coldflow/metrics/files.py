"""Field metrics of two HDF5 files: the dataset inside each, its grid, read in chunks.

:func:`evaluate_fields` (``coldflow metrics``) compares a dataset of one file with a
dataset of another, chunk by chunk, with :func:`coldflow.metrics.field.score_fields`;
:func:`format_table` prints the result. Missing files, keys, shapes and grids are errors
that name the file, the key and the option to change.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coldflow.errors import UserError
from coldflow.metrics.field import (
    GRIDS,
    LAYOUTS,
    FieldsInputError,
    as_samples,
    default_device,
    metric_functions,
    score_fields,
    summarize,
)

__all__ = ["MissingDatasetError", "dataset_grid", "evaluate_fields", "format_table"]


class MissingDatasetError(UserError, KeyError):
    """A file has no dataset under the given key; the message lists those it has."""

    def __str__(self) -> str:  # a KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _open(path: Path) -> Any:
    import h5py

    if path.is_dir():
        raise FieldsInputError(f"{path} is a directory, not an HDF5 file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise FieldsInputError(f"{path}: not a readable HDF5 file ({e})") from None


def _datasets(file: Any) -> list[str]:
    found: list[str] = []
    file.visititems(lambda name, obj: found.append(name) if hasattr(obj, "shape") else None)
    return found


def _listing(names: list[str], limit: int = 8) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _dataset(file: Any, path: Path, key: str, option: str = "--key") -> Any:
    if key not in file:
        raise MissingDatasetError(
            f"{path}: no dataset {key!r} ({option}); datasets in the file: "
            f"{_listing(_datasets(file))}"
        )
    obj = file[key]
    if not hasattr(obj, "shape"):
        raise MissingDatasetError(
            f"{path}: {key!r} ({option}) is a group, not a dataset; datasets under it: "
            f"{_listing([f'{key}/{n}' for n in _datasets(obj)])}"
        )
    return obj


def dataset_grid(file: Any, dataset: Any) -> str | None:
    """``"staggered"`` for a coldflow staggered velocity dataset, ``"centered"`` for other
    coldflow fields, ``None`` when the file does not say (not a coldflow data set).

    A dataset's own ``grid`` attribute decides; in data sets written before it existed, a
    ``velocity`` dataset of a ``coldflow-fields`` file whose last axes are
    ``(2, H + 1, W + 1)`` of the file's resolutions is staggered (the layout of
    :data:`coldflow.data.store.LAYOUT`).
    """
    from coldflow.data.store import FORMAT

    grid = dataset.attrs.get("grid")
    if grid is not None:
        return grid.decode() if isinstance(grid, bytes) else str(grid)
    fmt = file.attrs.get("format")
    if (fmt.decode() if isinstance(fmt, bytes) else fmt) != FORMAT:
        return None
    if dataset.name.rsplit("/", 1)[-1] != "velocity" or dataset.ndim < 4:
        return "centered"
    padded = {
        (2, int(h) + 1, int(w) + 1)
        for h, w in (file.attrs.get(k, (0, 0)) for k in ("resolution_high", "resolution_low"))
    }
    return "staggered" if tuple(dataset.shape[-3:]) in padded else "centered"


def _grid_for(grid: str | None, layout: str, described: list[tuple[Path, str, str | None]]) -> str:
    """The grid to use: the given one, checked against what the files say, or theirs."""
    stored = {g for _, _, g in described if g is not None}
    staggered = [f"{p}[{k}]" for p, k, g in described if g == "staggered"]
    if grid is None:
        return "staggered" if staggered else "centered"
    if grid == "centered" and staggered and layout == "NCHW":
        raise FieldsInputError(
            f"{staggered[0]} is a staggered velocity (coldflow layout: faces, with a padding "
            "row and column of zeros); --grid centered would count the padding as field "
            "values. Use --grid staggered (the default for such data)"
        )
    if grid == "staggered" and stored == {"centered"}:
        where = ", ".join(f"{p}[{k}]" for p, k, _ in described)
        raise FieldsInputError(
            f"{where}: cell-centred fields of a coldflow data set, not a staggered velocity; "
            "use --grid centered (the default for such data)"
        )
    return grid


def _chunks(dataset: Any, size: int) -> Iterator[np.ndarray]:
    for start in range(0, dataset.shape[0], size):
        yield dataset[start : start + size]


def _read_chunks(dataset: Any, path: Path, key: str, size: int) -> Iterator[np.ndarray]:
    try:
        yield from _chunks(dataset, size)
    except OSError as e:
        raise FieldsInputError(
            f"{path}: dataset {key!r} cannot be read ({e}); the file is damaged"
        ) from None


def evaluate_fields(
    path_a: str | os.PathLike,
    path_b: str | os.PathLike,
    key: str,
    metrics: Sequence[str],
    *,
    key_b: str | None = None,
    layout: str = "NCHW",
    grid: str | None = None,
    faces: str = "keep",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int = 16,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Compare the dataset ``key`` of one HDF5 file with ``key_b`` of another, per sample.

    Backs ``coldflow evaluate-fields A.h5 B.h5 --key ... [--key-b ...] --metric lsim ...``.
    The files are read in chunks along their first axis, so they need not fit in memory.
    The two paths may be the same file (e.g. ``source`` against ``downsampled`` of one
    coldflow data set).

    Parameters
    ----------
    path_a, path_b
        Prediction and reference files.
    key
        Path of the dataset inside ``path_a`` (e.g. ``"velocity"``), whose shape follows
        ``layout`` as in :func:`coldflow.metrics.field.evaluate_pairs`.
    key_b
        Path of the dataset inside ``path_b`` (default: ``key``).
    metrics
        Keys of :data:`coldflow.metrics.spec.FIELD_METRIC_SPECS`.
    grid
        ``"centered"`` or ``"staggered"``; ``None`` (default) takes it from the files
        (:func:`dataset_grid`): staggered for the velocities of coldflow data sets, else
        centred. ``"centered"`` on a coldflow staggered velocity is refused: it would
        count the padding as values.
    layout, faces, options, batch_size, device
        As in :func:`coldflow.metrics.field.evaluate_pairs`.

    Returns
    -------
    dict
        ``{"a", "b", "key", "key_b", "grid", "shape", "samples", "metrics": {name:
        {"mean", "std", "min", "max"}}, "per_sample": {name: [float, ...]}}``,
        JSON-serialisable (``inf`` aside); :func:`format_table` prints it.

    Raises
    ------
    FileNotFoundError, MissingDatasetError, FieldsInputError
        For a missing file, a missing dataset (the message lists those present), a file
        that is not HDF5, datasets of different shapes (both named) or a grid that does
        not fit the data.
    """
    paths = [Path(path_a), Path(path_b)]
    keys = [key, key_b or key]
    if layout not in LAYOUTS:
        raise FieldsInputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if grid is not None and grid not in GRIDS:
        raise FieldsInputError(f"grid must be one of {', '.join(GRIDS)}, got {grid!r}")
    files = [_open(paths[0])]
    try:
        files.append(_open(paths[1]))
        da = _dataset(files[0], paths[0], keys[0], "--key")
        db = _dataset(files[1], paths[1], keys[1], "--key-b" if key_b else "--key")
        if da.shape != db.shape:
            raise FieldsInputError(
                f"{paths[0]}[{keys[0]}] differs in shape from {paths[1]}[{keys[1]}]: "
                f"{tuple(da.shape)} against {tuple(db.shape)}; compare fields of one "
                "resolution (e.g. source against downsampled)"
            )
        described = [
            (p, k, dataset_grid(f, d))
            for p, k, f, d in zip(paths, keys, files, (da, db), strict=True)
        ]
        used = _grid_for(grid, layout, described)
        dev = default_device(device)
        fns = metric_functions(metrics, used, faces=faces, options=options, device=dev)
        # a chunk of the first axis holds prod(other leading axes) samples
        per_row = int(np.prod(da.shape[1:-3])) if da.ndim > 4 else 1
        rows = max(1, batch_size // per_row)
        results: dict[str, list[np.ndarray]] = {name: [] for name in fns}
        chunks_a = _read_chunks(da, paths[0], keys[0], rows)
        chunks_b = _read_chunks(db, paths[1], keys[1], rows)
        for ca, cb in zip(chunks_a, chunks_b, strict=True):
            sa, sb = as_samples(ca, layout), as_samples(cb, layout)
            scores = score_fields(fns, sa, sb, batch_size=batch_size, device=dev)
            for name, v in scores.items():
                results[name].append(v.numpy())
        shape = list(da.shape)
    finally:
        for f in files:
            f.close()
    per_sample = {name: np.concatenate(v) for name, v in results.items()}
    return {
        "a": str(paths[0]),
        "b": str(paths[1]),
        "key": keys[0],
        "key_b": keys[1],
        "grid": used,
        "shape": shape,
        "samples": int(len(next(iter(per_sample.values())))),
        "metrics": {name: summarize(v) for name, v in per_sample.items()},
        "per_sample": {name: v.tolist() for name, v in per_sample.items()},
    }


def format_table(table: Mapping[str, Any]) -> str:
    """Render the result of :func:`evaluate_fields` as a fixed-width text table."""
    lines = [
        f"{table['a']} [{table['key']}]  vs  {table['b']} [{table.get('key_b', table['key'])}]"
        f"  {table['samples']} samples" + (f", {table['grid']} grid" if "grid" in table else ""),
        f"{'metric':<8} {'mean':>12} {'std':>12} {'min':>12} {'max':>12}",
    ]
    for name, s in table["metrics"].items():
        lines.append(
            f"{name:<8} {s['mean']:>12.6g} {s['std']:>12.6g} {s['min']:>12.6g} {s['max']:>12.6g}"
        )
    return "\n".join(lines)
