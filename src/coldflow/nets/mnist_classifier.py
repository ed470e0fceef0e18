"""A small MNIST digit classifier whose penultimate layer serves as FID features.

Inception-v3 features are the standard for FID on natural images, but they see a
28x28 digit blown up to 299x299 and were never trained on digits. A classifier
trained on MNIST itself gives features that separate digits, at a fraction of the cost.
The project trains this net once (``coldflow.metrics.features.train_mnist_classifier``)
and ships the weights in ``coldflow/assets/``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MNISTClassifier"]


class MNISTClassifier(nn.Module):
    """Three conv blocks and a two-layer head; ``features`` are the 128-d hidden layer.

    Layout (input [N, 1, 28, 28], pixels in [0, 1]):

    ``conv1`` 1->32 (3x3) -> BN -> ReLU -> max-pool 2 (14x14);
    ``conv2`` 32->64 (3x3) -> BN -> ReLU -> max-pool 2 (7x7);
    ``conv3`` 64->64 (3x3) -> BN -> ReLU -> max-pool 2 (3x3);
    ``fc1`` 576->128 -> ReLU (the feature vector); dropout; ``fc2`` 128->10 logits.

    About 131k parameters, 0.5 MB as float32.

    Parameters
    ----------
    feature_dim
        Width of the hidden layer used as the feature vector.
    dropout
        Dropout before the last layer (active only in training mode).
    """

    input_size = 28

    def __init__(self, feature_dim: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(64 * 3 * 3, feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden-layer activations [N, feature_dim] of images [N, 1, 28, 28] in [0, 1]."""
        x = x - 0.5  # centre the pixels; BN takes care of the scale
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.max_pool2d(F.relu(self.bn3(self.conv3(x))), 2)
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [N, 10] of images [N, 1, 28, 28] in [0, 1]."""
        return self.fc2(self.dropout(self.features(x)))
