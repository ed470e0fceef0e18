"""Data sets: MNIST images and stored fluid simulations (HDF5, windows of frames)."""

from coldflow.data.fields import FieldData, FieldDataError, FieldWindows
from coldflow.data.mnist import from_range, load_mnist, mnist_dataset, read_idx, to_range

__all__ = [
    "FieldData",
    "FieldDataError",
    "FieldWindows",
    "from_range",
    "load_mnist",
    "mnist_dataset",
    "read_idx",
    "to_range",
]
