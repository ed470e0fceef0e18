"""Scores of diffusion samples: FID against the MNIST test set with the configured
feature network and, on the same features, improved precision and recall; and what real
digits score beside them (the FID floor at the same count, the nearest training digit of
each sample)."""

from __future__ import annotations

import functools
import time
from typing import Any

import torch
from torch import nn

from coldflow.runs import RunDir, save_tensors
from coldflow.tasks.diffusion.config import DiffusionRunConfig

__all__ = [
    "SPLITS_READ",
    "check_fid_count",
    "feature_extractor",
    "fid_of_samples",
    "real_baselines",
    "sample_scores",
    "save_nearest",
]

SPLITS_READ = {"training": "train", "while training (FID curve, figures)": "val",
               "evaluation": "test"}  # fmt: skip
"""Which MNIST split each stage reads; every evaluation records it."""

NEIGHBOURS = 3
"""k of the k-nearest-neighbour radii of precision and recall (Kynkäänniemi et al. 2019)."""

TEST_DIGITS = 10000
"""Real digits of FID's statistics (all 10,000 of the test or val split), and the most
digits precision and recall use."""


@functools.lru_cache(maxsize=2)
def feature_extractor(name: str, device: torch.device) -> nn.Module:
    """The FID feature network ``name`` on ``device``, built (weights read and verified)
    once per process: an evaluation scores several image sets with it."""
    from coldflow.metrics.features import build_feature_extractor

    return build_feature_extractor(name).to(device)


def sample_scores(
    images: torch.Tensor,
    cfg: DiffusionRunConfig,
    device: torch.device,
    progress: bool = False,
    precision_recall: bool = True,
    split: str = "test",
) -> dict[str, float]:
    """FID of ``images`` against the MNIST test set (or, during training, the ``val``
    digits held out of the training file) and, on the same features (one pass of the
    configured extractor over the samples), improved precision and recall.

    Precision and recall (:func:`coldflow.metrics.precision_recall.precision_recall`,
    k = :data:`NEIGHBOURS`) compare the first ``m = min(len(images), 10000)`` samples with
    the first ``m`` test digits: sets of equal size, as in the paper, since the k-NN radii
    shrink as a set grows. ``progress`` prints a line before the feature extraction and
    one with the results.

    Returns
    -------
    dict
        ``{"fid", "precision", "recall"}``; only ``"fid"`` when ``precision_recall`` is
        false or there are no more than k samples.
    """
    from coldflow.metrics.fid import (
        compute_features,
        fid_from_features,
        mnist_real_features,
        mnist_real_statistics,
    )
    from coldflow.metrics.precision_recall import precision_recall as improved_precision_recall

    name = cfg.evaluation.fid.extractor
    t0 = time.perf_counter()
    if progress:
        print(f"  FID: {name} features of {len(images)} samples and the {split} set", flush=True)
    extractor = feature_extractor(name, device)
    real = mnist_real_statistics(extractor, split, n=TEST_DIGITS, device=device)
    features = compute_features(images, extractor, tuple(cfg.data.range), device=device)
    scores = {"fid": fid_from_features(features, real, name)}
    m = min(len(features), TEST_DIGITS)
    if precision_recall and m > NEIGHBOURS:
        digits = mnist_real_features(extractor, split, n=m, device=device)
        p, r = improved_precision_recall(digits, features[:m], k=NEIGHBOURS)
        scores |= {"precision": p, "recall": r}
    if progress:
        pr = (
            f", precision {scores['precision']:.3f}, recall {scores['recall']:.3f} "
            f"({m} samples against {m} test digits, k={NEIGHBOURS})"
            if "precision" in scores
            else ""
        )
        print(f"  FID {scores['fid']:.4g}{pr} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return scores


def fid_of_samples(
    images: torch.Tensor,
    cfg: DiffusionRunConfig,
    device: torch.device,
    progress: bool = False,
    split: str = "test",
) -> float:
    """FID alone of ``images`` (:func:`sample_scores` without precision and recall) against
    ``split``: ``val`` for the curve during training, ``test`` in evaluation."""
    return sample_scores(images, cfg, device, progress, precision_recall=False, split=split)["fid"]


def check_fid_count(n: int) -> None:
    """Refuse an evaluation of fewer than two samples: an FID needs their covariance."""
    from coldflow.errors import UserError

    if n < 2:
        raise UserError(
            f"--n must be at least 2 for an FID (it needs the covariance of the samples' "
            f"features), got {n}"
        )


def real_baselines(
    images: torch.Tensor, cfg: DiffusionRunConfig, device: torch.device, progress: bool = False
) -> tuple[dict[str, Any], torch.Tensor]:
    """What real digits score beside ``images``: the FID floor at this sample count and
    the nearest-training-digit check (:mod:`coldflow.metrics.baselines`).

    Returns the ``evaluation.json`` entries (``fid_real_train``, ``nearest_train``) and the
    nearest training digit of every image.
    """
    from coldflow.metrics.baselines import memorisation, real_fid_floor

    t0 = time.perf_counter()
    extractor = feature_extractor(cfg.evaluation.fid.extractor, device)
    floor = real_fid_floor(extractor, len(images), device)
    near, neighbours = memorisation(images, tuple(cfg.data.range), cfg.data.train_subset)
    if progress:
        print(
            f"  {len(images)} real training digits: FID {floor:.4g}; nearest training digit "
            f"(RMS on [0, 1]): samples {near['median_sample_to_train']:.3f}, held-out test "
            f"digits {near['median_test_to_train']:.3f} (median; "
            f"{time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    return {"fid_real_train": floor, "nearest_train": near}, neighbours


def save_nearest(run: RunDir, images: torch.Tensor, neighbours: torch.Tensor) -> None:
    """Keep 16 samples and their nearest training digits for the run's report."""
    from coldflow.metrics.baselines import NEAREST_FILE

    if run.write:
        save_tensors(
            run.samples_dir / NEAREST_FILE, {"samples": images[:16], "neighbours": neighbours[:16]}
        )
