"""MNIST from the four official IDX files, verified through :mod:`coldflow.hub`."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from coldflow import hub
from coldflow.errors import UserError

__all__ = ["IDXError", "read_idx", "load_mnist", "mnist_dataset", "to_range", "from_range"]


class IDXError(UserError, ValueError):
    """An IDX file is damaged (truncated, bad header) or no IDX file; names the file."""


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a NumPy array.

    Raises
    ------
    IDXError
        If the file cannot be read, the header is not IDX or the payload is shorter
        than the header says (a ``ValueError`` too, for older callers).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # truncated gzip stream
        raise IDXError(f"{path}: cannot read IDX file ({e}); delete it and fetch again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise IDXError(f"{path}: not an IDX file (bad magic number); delete it and fetch again")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise IDXError(f"{path}: IDX header is truncated; delete it and fetch again")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    payload = raw[4 + 4 * ndim :]
    if len(payload) != expected:
        raise IDXError(
            f"{path}: IDX payload has {len(payload)} bytes, header says {expected}; "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(payload, dtype=dtype).reshape(shape)


SPLITS = ("train", "val", "test")
"""MNIST's splits here: ``train`` and ``val`` divide the official training file, ``test``
is the official test file."""

VAL_SHARE = 6
"""``val`` is the last ``1 / VAL_SHARE`` of the official training file (10,000 of its
60,000 digits) and ``train`` the rest (50,000): every choice made from data during
training (the FID curve, the conditional restorations of cold diffusion) reads ``val``;
only evaluation reads ``test``."""


def split_sizes(n: int) -> tuple[int, int]:
    """``(train, val)`` digits of a training file of ``n`` digits."""
    val = n // VAL_SHARE
    return n - val, val


def load_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images uint8 [N, 28, 28], labels int64 [N])`` of ``split`` (:data:`SPLITS`):
    ``train`` (the first 50,000 digits of the official training file), ``val`` (its last
    10,000) or ``test`` (the official test file)."""
    if split not in SPLITS:
        raise ValueError(f"MNIST split must be one of {', '.join(SPLITS)}, got {split!r}")
    file = "test" if split == "test" else "train"
    images = read_idx(hub.resolve(f"mnist-{file}-images"))
    labels = read_idx(hub.resolve(f"mnist-{file}-labels")).astype(np.int64)
    if len(images) != len(labels):
        raise IDXError(
            f"MNIST {file}: {len(images)} images but {len(labels)} labels; the files do not "
            "belong together (`coldflow data mnist` verifies them)"
        )
    if split != "test":
        train, _ = split_sizes(len(images))
        part = slice(None, train) if split == "train" else slice(train, None)
        images, labels = images[part], labels[part]
    return images, labels


def to_range(images_uint8: np.ndarray | torch.Tensor, value_range=(-0.5, 0.5)) -> torch.Tensor:
    """Scale uint8 pixels to float32 in ``value_range``, shape [N, 1, H, W]."""
    x = torch.as_tensor(np.array(images_uint8, dtype=np.float32)) / 255.0
    lo, hi = value_range
    x = x * (hi - lo) + lo
    return x.unsqueeze(1) if x.ndim == 3 else x


def from_range(x: torch.Tensor, value_range=(-0.5, 0.5)) -> torch.Tensor:
    """Map images in ``value_range`` back to [0, 1] (clamped)."""
    lo, hi = value_range
    return ((x - lo) / (hi - lo)).clamp(0, 1)


def mnist_dataset(
    split: str = "train", value_range=(-0.5, 0.5), subset: int | None = None
) -> TensorDataset:
    """MNIST as a ``TensorDataset`` of ``(image [1, 28, 28] float32, label)``.

    Parameters
    ----------
    split
        ``"train"`` (50,000 images), ``"val"`` (10,000, held out of the training file) or
        ``"test"`` (10,000); see :func:`load_mnist`.
    value_range
        Pixel range; the seed study uses ``(-0.5, 0.5)``.
    subset
        Keep only the first ``subset`` images.
    """
    images, labels = load_mnist(split)
    if subset is not None:
        images, labels = images[:subset], labels[:subset]
    return TensorDataset(to_range(images, value_range), torch.from_numpy(labels.copy()))
