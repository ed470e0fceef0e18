"""Fréchet Inception Distance (Heusel et al. 2017) with any feature extractor.

FID compares two image sets through Gaussians fitted to their features:
``FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``. The maths are pure
functions (:func:`frechet_distance`, :func:`feature_statistics`); the rest runs an
extractor over images (:func:`compute_features`) and caches the statistics of the real
data set on disk (:func:`real_statistics`), keyed by data set, split, image count,
extractor name and a digest of its weights. The real features themselves, which
precision and recall (:mod:`coldflow.metrics.precision_recall`) need, are cached the same
way (:func:`real_features`).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from coldflow import hub
from coldflow.data.mnist import mnist_dataset
from coldflow.io import atomic_path

__all__ = [
    "FeatureStats",
    "compute_features",
    "feature_statistics",
    "features_cache_path",
    "fid_from_features",
    "fid_from_images",
    "frechet_distance",
    "mnist_real_features",
    "mnist_real_statistics",
    "real_features",
    "real_statistics",
    "stats_cache_path",
]

ValueRange = tuple[float, float]
FeatureStats = tuple[np.ndarray, np.ndarray]  # (mu [D], sigma [D, D]), float64
_CACHE_FORMAT = 1


class Extractor(Protocol):
    """What FID needs of a feature extractor (see :mod:`coldflow.metrics.features`)."""

    name: str
    weights_id: str

    def __call__(self, images: torch.Tensor, value_range: ValueRange) -> torch.Tensor: ...

    def to(self, device: str | torch.device) -> Extractor: ...


# --------------------------------------------------------------------------- pure maths


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet (2-Wasserstein) distance squared between two Gaussians.

    ``d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` (Heusel et al. 2017;
    Dowson & Landau 1982), computed in float64.

    Parameters
    ----------
    mu1, mu2
        Means, shape [D].
    sigma1, sigma2
        Covariances, shape [D, D], symmetric positive semi-definite. They may be
        singular (fewer samples than dimensions).

    Returns
    -------
    float
        The distance, >= 0 (round-off below zero is clipped to 0).

    Notes
    -----
    ``S1 S2`` is not symmetric, and the general matrix square root of it (Schur method,
    ``scipy.linalg.sqrtm``) returns complex parts and large errors when a covariance is
    singular or ill-conditioned; the usual fix adds ``eps * I`` and changes the answer.
    Instead, with ``R = S1^(1/2)`` (from a symmetric eigendecomposition), ``S1 S2 = R (R S2)``
    has the same eigenvalues as ``(R S2) R = R S2 R``, which is symmetric positive
    semi-definite, so ``Tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i(R S2 R))``; this is also
    the form ``Tr((S1^(1/2) S2 S1^(1/2))^(1/2))`` in which the 2-Wasserstein distance is
    defined, valid for singular covariances too. Symmetric eigensolvers are backward
    stable and return real eigenvalues; the tiny negative ones that round-off produces are
    clipped at 0. No inverse is taken, so singular covariances need no regularisation.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            "frechet_distance needs mu [D] and sigma [D, D] of one size D; got "
            f"mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 {mu2.shape}, sigma2 {s2.shape}"
        )
    if not all(np.isfinite(a).all() for a in (mu1, mu2, s1, s2)):
        raise ValueError("frechet_distance: statistics contain NaN or inf")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    root1 = _sqrtm_psd(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()  # Tr((S1 S2)^(1/2))
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean
    return float(max(value, 0.0))


def feature_statistics(features: np.ndarray | torch.Tensor) -> FeatureStats:
    """Mean [D] and unbiased covariance [D, D] (float64) of features [N, D], N >= 2."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"feature_statistics needs features [N >= 2, D], got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


# --------------------------------------------------------------------------- features


def compute_features(
    images: torch.Tensor,
    extractor: Extractor,
    value_range: ValueRange = (-0.5, 0.5),
    batch_size: int = 250,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Run ``extractor`` over ``images`` in batches without gradients.

    Parameters
    ----------
    images
        Float tensor [N, C, H, W] with pixel values in ``value_range`` (any device).
    extractor
        A feature extractor (see :data:`coldflow.metrics.features.FEATURE_EXTRACTORS`).
        It is moved to ``device``.
    value_range
        Pixel range of ``images``; the extractor converts to what its net expects.
    batch_size
        Images per forward pass.
    device
        Where the extractor runs; each batch is moved there.

    Returns
    -------
    np.ndarray
        Features [N, D], float64, on the CPU.
    """
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(
            f"compute_features needs images [N > 0, C, H, W], got {tuple(images.shape)}"
        )
    extractor.to(device)
    chunks = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            batch = images[i : i + batch_size].to(device)
            chunks.append(extractor(batch, value_range).double().cpu())
    return torch.cat(chunks).numpy()


def fid_from_images(
    images: torch.Tensor,
    real_stats: FeatureStats,
    extractor: Extractor,
    value_range: ValueRange = (-0.5, 0.5),
    batch_size: int = 250,
    device: str | torch.device = "cpu",
) -> float:
    """FID between generated ``images`` and precomputed real statistics.

    Parameters
    ----------
    images
        Generated images [N, C, H, W] in ``value_range``.
    real_stats
        ``(mu, sigma)`` of the real data, computed with the same ``extractor``
        (:func:`real_statistics`).
    extractor, value_range, batch_size, device
        As in :func:`compute_features`.
    """
    features = compute_features(images, extractor, value_range, batch_size, device)
    return fid_from_features(features, real_stats, extractor.name)


def fid_from_features(features: np.ndarray, real_stats: FeatureStats, extractor: str = "") -> float:
    """FID between the features [N >= 2, D] of generated images and real statistics.

    ``extractor`` names the feature network in the error for statistics of another size.
    """
    mu, sigma = feature_statistics(features)
    mu_r, sigma_r = real_stats
    if mu_r.shape != mu.shape:
        raise ValueError(
            f"real statistics have {mu_r.shape[0]} features but extractor "
            f"{extractor!r} gives {mu.shape[0]}; compute them with the same extractor"
        )
    return frechet_distance(mu, sigma, mu_r, sigma_r)


# --------------------------------------------------------------------------- real-data cache


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", str(text)).strip("-") or "x"


def _cache_name(extractor: Extractor, dataset: str, split: str, n: int) -> str:
    return f"{_slug(dataset)}_{_slug(split)}_n{n}_{_slug(extractor.name)}_{extractor.weights_id}"


def stats_cache_path(extractor: Extractor, dataset: str, split: str, n: int) -> Path:
    """Where :func:`real_statistics` keeps ``(mu, sigma)``: below ``hub.cache_dir()/fid_stats``."""
    return hub.cache_dir() / "fid_stats" / f"{_cache_name(extractor, dataset, split, n)}.npz"


def features_cache_path(extractor: Extractor, dataset: str, split: str, n: int) -> Path:
    """Where :func:`real_features` keeps the features: below ``hub.cache_dir()/fid_features``."""
    return hub.cache_dir() / "fid_features" / f"{_cache_name(extractor, dataset, split, n)}.npz"


def _read_cached(
    path: Path, extractor: Extractor, dataset: str, split: str, n: int, arrays: tuple[str, ...]
) -> list[np.ndarray] | None:
    """The named arrays cached at ``path`` if present, readable and made for this key."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            ok = (
                int(z["format"]) == _CACHE_FORMAT
                and int(z["n"]) == n
                and str(z["dataset"]) == dataset
                and str(z["split"]) == split
                and str(z["extractor"]) == extractor.name
                and str(z["weights_id"]) == extractor.weights_id
            )
            return [z[a] for a in arrays] if ok else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # unreadable or foreign file: recompute and overwrite


def _write_cached(
    path: Path, extractor: Extractor, dataset: str, split: str, n: int, **arrays: np.ndarray
) -> None:
    with atomic_path(path) as tmp:
        np.savez(
            tmp,
            **arrays,
            n=n,
            format=_CACHE_FORMAT,
            extractor=extractor.name,
            weights_id=extractor.weights_id,
            dataset=dataset,
            split=split,
        )


def _real_images(
    images_fn: Callable[[], torch.Tensor], dataset: str, split: str, n: int
) -> torch.Tensor:
    images = images_fn()
    if len(images) != n:
        raise ValueError(
            f"images_fn for {dataset}/{split} returned {len(images)} images, expected {n}"
        )
    return images


def real_statistics(
    extractor: Extractor,
    images_fn: Callable[[], torch.Tensor],
    dataset: str,
    split: str,
    n: int,
    value_range: ValueRange = (-0.5, 0.5),
    batch_size: int = 250,
    device: str | torch.device = "cpu",
    cache: bool = True,
) -> FeatureStats:
    """Statistics ``(mu, sigma)`` of real images, cached as ``.npz``.

    Parameters
    ----------
    extractor
        Feature extractor; its ``name`` and ``weights_id`` are part of the cache key.
    images_fn
        Returns the ``n`` real images [n, C, H, W] in ``value_range``; called only when
        the statistics are not cached.
    dataset, split, n
        Identify the images (e.g. ``"mnist"``, ``"test"``, ``10000``) in the cache key.
    value_range, batch_size, device
        As in :func:`compute_features`.
    cache
        Read and write the cache at :func:`stats_cache_path` (written atomically).

    Returns
    -------
    FeatureStats
        ``(mu [D], sigma [D, D])`` in float64.
    """
    path = stats_cache_path(extractor, dataset, split, n)
    key = (extractor, dataset, split, n)
    if cache and (stats := _read_cached(path, *key, ("mu", "sigma"))) is not None:
        return stats[0].astype(np.float64), stats[1].astype(np.float64)
    images = _real_images(images_fn, dataset, split, n)
    mu, sigma = feature_statistics(
        compute_features(images, extractor, value_range, batch_size, device)
    )
    if cache:
        _write_cached(path, *key, mu=mu, sigma=sigma)
    return mu, sigma


def real_features(
    extractor: Extractor,
    images_fn: Callable[[], torch.Tensor],
    dataset: str,
    split: str,
    n: int,
    value_range: ValueRange = (-0.5, 0.5),
    batch_size: int = 250,
    device: str | torch.device = "cpu",
    cache: bool = True,
) -> np.ndarray:
    """Features [n, D] of real images, cached as ``.npz`` (:func:`features_cache_path`).

    Parameters as in :func:`real_statistics`, whose cache key this shares.

    Returns
    -------
    np.ndarray
        float32 (what is cached: half the size, and ample for distances), computed or
        read, the same either way.
    """
    path = features_cache_path(extractor, dataset, split, n)
    key = (extractor, dataset, split, n)
    if cache and (found := _read_cached(path, *key, ("features",))) is not None:
        return found[0].astype(np.float32)
    images = _real_images(images_fn, dataset, split, n)
    features = compute_features(images, extractor, value_range, batch_size, device)
    features = features.astype(np.float32)
    if cache:
        _write_cached(path, *key, features=features)
    return features


def _mnist_images(split: str, n: int) -> Callable[[], torch.Tensor]:
    def images() -> torch.Tensor:
        return mnist_dataset(split, value_range=(-0.5, 0.5), subset=n).tensors[0]

    return images


def mnist_real_statistics(
    extractor: Extractor,
    split: str = "test",
    n: int = 10000,
    batch_size: int = 250,
    device: str | torch.device = "cpu",
    cache: bool = True,
) -> FeatureStats:
    """Cached statistics of the first ``n`` MNIST images of ``split``.

    The images are read with :func:`coldflow.data.mnist_dataset` in the range
    ``(-0.5, 0.5)``; see :func:`real_statistics` for the cache.
    """

    return real_statistics(
        extractor, _mnist_images(split, n), "mnist", split, n, (-0.5, 0.5), batch_size, device,
        cache,
    )  # fmt: skip


def mnist_real_features(
    extractor: Extractor,
    split: str = "test",
    n: int = 10000,
    batch_size: int = 250,
    device: str | torch.device = "cpu",
    cache: bool = True,
) -> np.ndarray:
    """Cached features [n, D] (float32) of the first ``n`` MNIST images of ``split``, read
    as in :func:`mnist_real_statistics`; see :func:`real_features`."""
    return real_features(
        extractor, _mnist_images(split, n), "mnist", split, n, (-0.5, 0.5), batch_size, device,
        cache,
    )  # fmt: skip
