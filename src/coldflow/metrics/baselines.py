"""What real digits score: the baselines a set of generated digits is read against.

- **FID floor.** FID is biased upwards at small sample counts, so a number such as 130 at
  500 samples says little alone. :func:`real_fid_floor` scores ``n`` real training digits
  against the same test statistics with the same features: what a perfect generator (or
  one that copies its training set) reaches at that ``n``.
- **Nearest training digit.** A low FID can come from copying. :func:`memorisation` finds
  each sample's nearest training digit (RMS pixel distance on [0, 1]) and compares the
  distances with those of held-out test digits to the same training set: samples much
  closer to the training set than unseen real digits are, are copies.
"""

from __future__ import annotations

from typing import Any

import torch

from coldflow.data.mnist import from_range, load_mnist, to_range

__all__ = ["NEAREST_FILE", "NEAR_COPY_QUANTILE", "memorisation", "nearest_rms", "real_fid_floor"]

NEAREST_FILE = "nearest_train.safetensors"
"""Samples and their nearest training digits, kept in a run's ``samples/`` for its report."""

NEAR_COPY_QUANTILE = 0.01
"""A sample is a *near copy* when it is closer to a training digit than this fraction of
held-out test digits are to theirs."""


def nearest_rms(
    queries: torch.Tensor, references: torch.Tensor, chunk: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMS distance of each query to its nearest reference, and that reference's index.

    Parameters
    ----------
    queries, references
        ``[N, ...]`` and ``[M, ...]`` images of one shape (compared as flat vectors).
    chunk
        Queries per distance matrix (memory: ``chunk x M`` floats).

    Returns
    -------
    (distances float64 [N], indices int64 [N])
        ``sqrt(mean((q - r)^2))`` to the nearest ``r``. The search uses float32
        ``|q|^2 + |r|^2 - 2 q.r``; the distance to the found neighbour is recomputed
        exactly in float64, so a copy reads 0.
    """
    q = queries.flatten(1).float()
    r = references.flatten(1).float()
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries of {q.shape[1]} values against references of {r.shape[1]}")
    r_sq = (r * r).sum(1)
    idx = torch.empty(len(q), dtype=torch.long)
    for i in range(0, len(q), chunk):
        c = q[i : i + chunk]
        d2 = r_sq[None, :] - 2.0 * (c @ r.T)  # |q|^2 is the same along each row
        idx[i : i + len(c)] = d2.argmin(1)
    diff = q.double() - r[idx].double()
    return diff.pow(2).mean(1).sqrt(), idx


def memorisation(
    samples: torch.Tensor,
    value_range: tuple[float, float],
    train_digits: int | None = None,
    n_test: int | None = None,
) -> tuple[dict[str, Any], torch.Tensor]:
    """Distances of samples and of held-out test digits to their nearest training digit.

    Parameters
    ----------
    samples
        ``[N, 1, 28, 28]`` generated digits in ``value_range``.
    train_digits
        Search the first ``train_digits`` training images (the ones a run with
        ``data.train_subset`` saw); all 50,000 of the training split when ``None``.
    n_test
        Held-out test digits to compare with (default: as many as samples, at most 10,000).

    Returns
    -------
    (summary, neighbours)
        ``summary``: medians of both distances, their ratio, the near-copy threshold (the
        :data:`NEAR_COPY_QUANTILE` quantile of the test digits' distances) and the
        fraction of samples below it. ``neighbours``: the nearest training digit of every
        sample, ``[N, 1, 28, 28]`` in ``value_range``.
    """
    train = load_mnist("train")[0][:train_digits]
    test = load_mnist("test")[0][: min(n_test or len(samples), 10000)]
    train01, test01 = to_range(train, (0.0, 1.0)), to_range(test, (0.0, 1.0))
    d_s, idx = nearest_rms(from_range(samples.float(), value_range), train01)
    d_t, _ = nearest_rms(test01, train01)
    threshold = float(torch.quantile(d_t, NEAR_COPY_QUANTILE))
    median_s, median_t = float(d_s.median()), float(d_t.median())
    summary = {
        "samples": len(samples),
        "training_digits": len(train),
        "test_digits": len(test),
        "median_sample_to_train": median_s,
        "median_test_to_train": median_t,
        "ratio": median_s / median_t,
        "near_copy_threshold": threshold,
        "near_copies": float((d_s < threshold).double().mean()),
    }
    lo, hi = value_range
    return summary, train01[idx] * (hi - lo) + lo


def real_fid_floor(extractor: Any, n: int, device: str | torch.device = "cpu") -> float:
    """FID of the first ``n`` MNIST training digits against the test set's statistics.

    Same features and test statistics as :func:`coldflow.metrics.fid.mnist_real_statistics`
    gives a model's samples, so the two FIDs are read side by side; both statistics are
    cached.
    """
    from coldflow.metrics.fid import frechet_distance, mnist_real_statistics

    if not 2 <= n <= 50000:
        raise ValueError(f"the FID floor needs 2 to 50,000 training digits, got {n}")
    real = mnist_real_statistics(extractor, "test", n=10000, device=device)
    train = mnist_real_statistics(extractor, "train", n=n, device=device)
    return frechet_distance(*train, *real)
