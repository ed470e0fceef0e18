"""Scores of diffusion samples: FID against the MNIST test set with the configured
feature network, and what real digits score beside them (the FID floor at the same
count, the nearest training digit of each sample)."""

from __future__ import annotations

import functools
import time
from typing import Any

import torch
from torch import nn

from coldflow.runs import RunDir, save_tensors
from coldflow.tasks.diffusion.config import DiffusionRunConfig

__all__ = [
    "check_fid_count",
    "feature_extractor",
    "fid_of_samples",
    "real_baselines",
    "save_nearest",
]


@functools.lru_cache(maxsize=2)
def feature_extractor(name: str, device: torch.device) -> nn.Module:
    """The FID feature network ``name`` on ``device``, built (weights read and verified)
    once per process: an evaluation scores several image sets with it."""
    from coldflow.metrics.features import build_feature_extractor

    return build_feature_extractor(name).to(device)


def fid_of_samples(
    images: torch.Tensor, cfg: DiffusionRunConfig, device: torch.device, progress: bool = False
) -> float:
    """FID of ``images`` against the MNIST test set with the configured feature extractor.

    ``progress`` prints a line before the feature extraction and one with its duration.
    """
    from coldflow.metrics.fid import fid_from_images, mnist_real_statistics

    name = cfg.evaluation.fid.extractor
    t0 = time.perf_counter()
    if progress:
        print(f"  FID: {name} features of {len(images)} samples and the test set", flush=True)
    extractor = feature_extractor(name, device)
    real = mnist_real_statistics(extractor, "test", n=10000, device=device)
    fid = fid_from_images(images, real, extractor, tuple(cfg.data.range), device=device)
    if progress:
        print(f"  FID {fid:.4g} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return fid


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
