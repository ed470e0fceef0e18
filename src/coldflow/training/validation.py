"""Validation during training: the model's own loss on held-out items after each epoch.

Every choice made from data (how many epochs, which checkpoint, which setting) reads the
validation split, never the test split. :class:`ValidationHook` is a training hook that
scores the evaluation model (the EMA weights where kept) on a fixed set of validation
items with the method's own loss, without gradients, and logs it as ``val/loss`` in
``metrics.jsonl`` (and TensorBoard / W&B where configured). It runs under the trainer's
forked RNG, so a run with validation trains exactly as one without.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from coldflow.training.device import to_device

__all__ = ["ValidationHook", "spread_subset"]


def spread_subset(dataset: Dataset, limit: int) -> Dataset:
    """At most ``limit`` items of ``dataset``, evenly spread over it (all if fewer)."""
    n = len(dataset)  # type: ignore[arg-type]
    if n <= limit:
        return dataset
    return Subset(dataset, np.linspace(0, n - 1, limit).round().astype(int).tolist())


class ValidationHook:
    """After every epoch: the mean loss of the evaluation model on ``dataset``.

    Parameters
    ----------
    dataset
        Validation items, batched like the training items (e.g. windows of the data
        set's ``val`` simulations).
    batch_size
        Items per forward pass.
    description
        What the items are, for the progress line (e.g. ``"48 windows of 2 val
        simulations"``).
    """

    def __init__(self, dataset: Dataset, batch_size: int, description: str = "") -> None:
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.description = description

    @torch.no_grad()
    def loss(self, model: torch.nn.Module, device: torch.device) -> float:
        """Mean of ``model(batch)`` over the items, each batch weighted by its size."""
        loader = DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False)
        total, count = 0.0, 0
        was_training = model.training
        model.eval()
        try:
            for batch in loader:
                n = len(next(iter(batch.values()))) if isinstance(batch, dict) else len(batch[0])
                total += float(model(to_device(batch, device))) * n
                count += n
        finally:
            model.train(was_training)
        return total / max(count, 1)

    def __call__(self, trainer: Any, epoch: int) -> None:
        t0 = time.perf_counter()
        value = self.loss(trainer.eval_model, trainer.device)
        trainer.run.log(epoch, trainer.step, "val", "loss", value)
        what = f" on {self.description}" if self.description else ""
        trainer.say(
            f"epoch {epoch}: validation loss {value:.5g}{what} ({time.perf_counter() - t0:.0f} s)"
        )
