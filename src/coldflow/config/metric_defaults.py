"""The default lists of field metrics, by name; each written once, here.

What a name means (function, column label, higher-is-better, weights) is
:mod:`coldflow.metrics.spec`, which re-exports these lists and checks that every name in
them has a spec. They live on the config floor, below :mod:`coldflow.metrics`, so that
config models (``config.study``) and the CLI can name them as defaults without importing
torch.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_FIELD_METRICS",
    "DEFAULT_FILE_METRICS",
    "DEFAULT_FRAME_METRICS",
    "INDEPENDENT_METRICS",
    "PERCEPTUAL_IF_AVAILABLE",
]

INDEPENDENT_METRICS: tuple[str, ...] = ("vort_l1", "div", "ssim", "lse_top")
"""Metrics no loss trains on (vorticity, divergence, SSIM, top-octave spectrum): part of
every fluid evaluation's defaults below."""

DEFAULT_FIELD_METRICS: tuple[str, ...] = ("mse", "rel_l1", "lsim", *INDEPENDENT_METRICS)
"""Rollouts (SOL evaluation), the SOL + SR pipeline and study pipelines."""

DEFAULT_FRAME_METRICS: tuple[str, ...] = (
    "mse", "mae", "rel_l1", "psnr", "lsim", *INDEPENDENT_METRICS,
)  # fmt: skip
"""Single frames: autoencoder and super-resolution evaluation."""

PERCEPTUAL_IF_AVAILABLE: tuple[str, ...] = ("lpips", "vgg")
"""Added to a frame evaluation where their pretrained weights are present."""

DEFAULT_FILE_METRICS: tuple[str, ...] = ("mse", "rel_l1")
"""``coldflow evaluate-fields`` (two HDF5 files): the ones that need no weights."""
