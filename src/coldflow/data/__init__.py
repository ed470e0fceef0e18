"""Data sets: MNIST images and stored fluid simulations (HDF5, windows of frames, centred
frames)."""

from coldflow.data.frames import FieldFrames, channel_names, read_centered
from coldflow.data.mnist import from_range, load_mnist, mnist_dataset, read_idx, to_range
from coldflow.data.store import FieldData, FieldDataError, FieldWindows

__all__ = [
    "FieldData",
    "FieldDataError",
    "FieldFrames",
    "FieldWindows",
    "channel_names",
    "from_range",
    "load_mnist",
    "mnist_dataset",
    "read_centered",
    "read_idx",
    "to_range",
]
