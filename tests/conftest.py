"""Shared fixtures: tiny configs, local data through COLDFLOW_DATA, an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _setdefault_env() -> None:
    # Tests read the offline copies beside the checkout when the environment does not say.
    if SHARED.is_dir():
        os.environ.setdefault("COLDFLOW_DATA", str(SHARED))
        os.environ.setdefault("COLDFLOW_WEIGHTS", str(SHARED / "weights"))
    os.environ.setdefault("COLDFLOW_OFFLINE", "1")


_setdefault_env()


def have_mnist() -> bool:
    from coldflow import hub

    return hub.locate("mnist-train-images") is not None


needs_mnist = pytest.mark.skipif(
    not SHARED.is_dir() and "COLDFLOW_DATA" not in os.environ,
    reason="MNIST files not available (set COLDFLOW_DATA)",
)


@pytest.fixture
def tiny_overrides() -> list[str]:
    """A DDPM run that trains in seconds on a CPU."""
    return [
        "data.train_subset=96",
        "degradation.n_T=20",
        "model.hidden=[4, 8, 4]",
        "model.time_embeddings=4",
        "training.epochs=3",
        "training.batch_size=16",
        "training.ema=0.9",
        "training.grad_clip=1.0",
        "training.progress=false",
        "training.device=cpu",
        "sampling.snapshot_timesteps=[20, 10, 1]",
        "sampling.n_grid=4",
        "evaluation.interval=2",
        "evaluation.fid.enabled=false",
    ]


def run_cli(monkeypatch, *args: str) -> int:
    """Run ``coldflow ARGS`` in this process; its exit code (0 when it returns)."""
    import sys

    from coldflow import cli

    monkeypatch.setattr(sys, "argv", ["coldflow", *args])
    try:
        cli.main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0
