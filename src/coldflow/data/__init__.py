"""Data sets: MNIST images and (later) stored fluid simulations."""

from coldflow.data.mnist import from_range, load_mnist, mnist_dataset, read_idx, to_range

__all__ = ["from_range", "load_mnist", "mnist_dataset", "read_idx", "to_range"]
