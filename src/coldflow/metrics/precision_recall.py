"""Improved precision and recall of generated samples (Kynkäänniemi et al. 2019).

FID folds two failures into one number: samples that look like no real image (low
*precision*, quality) and real images that no sample resembles (low *recall*, coverage,
e.g. a missing digit class). Both are measured on the same features as FID, with the
manifold of a set estimated as the union of balls around its points, each ball's radius
the distance to the point's k-th nearest neighbour in its own set:

- precision: the fraction of generated samples inside the real manifold;
- recall: the fraction of real samples inside the generated manifold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["precision_recall"]

_ROWS = 1024  # query points per distance block (bounds the memory, not the result)


def _features(x: Any, name: str) -> torch.Tensor:
    f = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    f = f.detach().to("cpu", torch.float64)
    if f.ndim != 2 or f.shape[0] == 0:
        raise ValueError(
            f"precision_recall: {name} must be features [N > 0, D], got {tuple(f.shape)}"
        )
    if not torch.isfinite(f).all():
        raise ValueError(f"precision_recall: {name} contain NaN or inf")
    return f


def _radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of every point to its k-th nearest other point of the same set, ``[N]``."""
    out = torch.empty(len(points), dtype=points.dtype)
    for start in range(0, len(points), _ROWS):
        block = torch.cdist(points[start : start + _ROWS], points)
        # column k of the sorted distances: index 0 is the point itself (distance 0)
        out[start : start + _ROWS] = block.kthvalue(k + 1, dim=1).values
    return out


def _covered(queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Whether each query lies within ``radii[i]`` of some ``points[i]``, ``[M]`` bool."""
    inside = torch.empty(len(queries), dtype=torch.bool)
    for start in range(0, len(queries), _ROWS):
        block = torch.cdist(queries[start : start + _ROWS], points)
        inside[start : start + _ROWS] = (block <= radii[None, :]).any(dim=1)
    return inside


def precision_recall(real_feats: Any, fake_feats: Any, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of ``fake_feats`` against ``real_feats``.

    With ``r_k(x)`` the Euclidean distance from ``x`` to its k-th nearest neighbour in its
    own set (itself excluded), ``f(y, S) = 1`` if ``||y - x|| <= r_k(x)`` for some ``x`` in
    ``S`` (Kynkäänniemi et al. 2019, eq. 1):

    ``precision = mean over fake y of f(y, real)``, ``recall = mean over real x of
    f(x, fake)``.

    Parameters
    ----------
    real_feats, fake_feats
        Features ``[N_real, D]`` and ``[N_fake, D]`` (NumPy arrays or tensors) from one
        extractor; the paper uses sets of equal size, since the radii shrink as a set grows.
    k
        Neighbourhood size (the paper's default, 3).

    Returns
    -------
    tuple of float
        ``(precision, recall)``, each in [0, 1]: 1 and 1 for a set against itself, 0 and 0
        for two sets farther apart than any of their radii.

    Raises
    ------
    ValueError
        For features that are not ``[N, D]`` of one ``D``, non-finite values, ``k < 1``, or a
        set of ``k`` points or fewer (no k-th neighbour).
    """
    real, fake = _features(real_feats, "real_feats"), _features(fake_feats, "fake_feats")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"precision_recall: real features have {real.shape[1]} dimensions, fake ones "
            f"{fake.shape[1]}; compute both with the same extractor"
        )
    if k < 1:
        raise ValueError(f"precision_recall needs k >= 1, got {k}")
    smallest = min(len(real), len(fake))
    if smallest <= k:
        raise ValueError(
            f"precision_recall with k={k} needs more than {k} real and fake samples, got "
            f"{len(real)} and {len(fake)}"
        )
    precision = _covered(fake, real, _radii(real, k)).double().mean()
    recall = _covered(real, fake, _radii(fake, k)).double().mean()
    return float(precision), float(recall)
