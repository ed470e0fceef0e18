"""A least-squares model for fast trainer tests: ``forward(batch)`` is the mean squared
error of one linear layer on ``(x [N, 3], y [N])``, initialised from seed 0."""

from __future__ import annotations

import torch


class LeastSquares(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(3, 1)

    def forward(self, batch):
        x, y = batch
        return ((self.lin(x).squeeze(-1) - y) ** 2).mean()
