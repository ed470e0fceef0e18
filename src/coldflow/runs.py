"""A run directory: resolved config, metrics log, checkpoints, samples, figures.

Layout of ``runs/<name>/``::

    config.yaml                 the resolved config (every default filled in)
    metrics.jsonl               one JSON object per event: time, epoch, step, split, name, value
    checkpoints/
        epoch_0005.safetensors  model (``model.*``), EMA (``ema.*``), optimizer tensors, RNG
        epoch_0005.json         sidecar: epoch, step, optimizer structure, RNG states, config hash
    samples/
        epoch_0009.safetensors  ``images`` [n, C, H, W] drawn at an evaluation epoch
        final.safetensors       ``images``, ``trajectory`` [K, n, C, H, W], ``trajectory_t`` [K]
    figures/*.png
    report.html

Every file is written atomically; a checkpoint counts only once its JSON sidecar exists
(the sidecar is written last), so a kill at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from coldflow.io import atomic_open, atomic_path, write_json, write_text

__all__ = ["RunDir", "save_tensors", "load_tensors"]

_CKPT = re.compile(r"epoch_(\d+)\.json$")


def save_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict | None = None
) -> None:
    """Write tensors to a safetensors file atomically (string metadata allowed)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in (meta or {}).items()})


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read every tensor of a safetensors file (on the CPU)."""
    return load_file(str(path))


class RunDir:
    """Files of one training run.

    Parameters
    ----------
    path
        The directory (created on first write).
    write
        False on non-zero ranks of a multi-process run: every write becomes a no-op.
    """

    def __init__(self, path: str | os.PathLike, write: bool = True) -> None:
        self.path = Path(path)
        self.write = write

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    def exists(self) -> bool:
        return self.config_path.is_file()

    def check_can_train(self, resume: bool) -> None:
        """Refuse to start a new run over the checkpoints of another one.

        Raises
        ------
        FileExistsError
            If the directory holds checkpoints and ``resume`` is false.
        """
        if self.checkpoints() and not resume:
            raise FileExistsError(
                f"{self.path} already holds checkpoints; pass --resume to continue it, or "
                "choose another --run-dir"
            )

    # ----------------------------------------------------------------- config
    def save_config(self, text: str) -> None:
        """Write the resolved config YAML."""
        if self.write:
            write_text(self.config_path, text)

    # ---------------------------------------------------------------- metrics
    def log(self, epoch: int, step: int, split: str, name: str, value: float) -> None:
        """Append one event to ``metrics.jsonl`` (one line, flushed)."""
        if not self.write:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        event = {
            "time": time.time(),
            "epoch": int(epoch),
            "step": int(step),
            "split": split,
            "name": name,
            "value": float(value),
        }
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(event) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """All events of ``metrics.jsonl`` (a torn last line from a kill is skipped)."""
        if not self.metrics_path.is_file():
            return []
        events = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events

    def truncate_metrics(self, after_epoch: int) -> None:
        """Drop events of epochs after ``after_epoch`` (they are redone on resume)."""
        if not self.write or not self.metrics_path.is_file():
            return
        kept = [e for e in self.read_metrics() if e["epoch"] <= after_epoch]
        with atomic_open(self.metrics_path) as f:
            f.writelines(json.dumps(e) + "\n" for e in kept)

    # ------------------------------------------------------------ checkpoints
    def checkpoint_paths(self, epoch: int) -> tuple[Path, Path]:
        stem = self.checkpoint_dir / f"epoch_{epoch:04d}"
        return stem.with_suffix(".safetensors"), stem.with_suffix(".json")

    def checkpoints(self) -> list[int]:
        """Epochs with a complete checkpoint (tensors and sidecar), ascending."""
        if not self.checkpoint_dir.is_dir():
            return []
        epochs = []
        for p in self.checkpoint_dir.iterdir():
            m = _CKPT.match(p.name)
            if m and self.checkpoint_paths(int(m.group(1)))[0].is_file():
                epochs.append(int(m.group(1)))
        return sorted(epochs)

    def save_checkpoint(
        self, epoch: int, tensors: dict[str, torch.Tensor], sidecar: dict, keep: int = 2
    ) -> None:
        """Write a checkpoint (tensors first, sidecar last) and prune old ones."""
        if not self.write:
            return
        weights, meta = self.checkpoint_paths(epoch)
        save_tensors(weights, tensors)
        write_json(meta, sidecar)
        for old in self.checkpoints()[:-keep]:
            for p in self.checkpoint_paths(old)[::-1]:  # sidecar first: never a torn pair
                p.unlink(missing_ok=True)

    def load_checkpoint(self, epoch: int | None = None) -> tuple[dict[str, torch.Tensor], dict]:
        """Return ``(tensors, sidecar)`` of ``epoch`` (default: the latest)."""
        available = self.checkpoints()
        if not available:
            raise FileNotFoundError(f"{self.checkpoint_dir}: no complete checkpoint to load")
        epoch = available[-1] if epoch is None else epoch
        if epoch not in available:
            raise FileNotFoundError(
                f"{self.checkpoint_dir}: no checkpoint for epoch {epoch}; available: {available}"
            )
        weights, meta = self.checkpoint_paths(epoch)
        return load_tensors(weights), json.loads(meta.read_text())

    # ---------------------------------------------------------------- samples
    def samples_path(self, epoch: int | None = None) -> Path:
        """``samples/epoch_NNNN.safetensors`` or ``samples/final.safetensors``."""
        name = "final" if epoch is None else f"epoch_{epoch:04d}"
        return self.samples_dir / f"{name}.safetensors"

    def save_samples(
        self, tensors: dict[str, torch.Tensor], epoch: int | None = None, meta: dict | None = None
    ) -> None:
        if self.write:
            save_tensors(self.samples_path(epoch), tensors, meta)

    def sample_epochs(self) -> list[int]:
        """Epochs for which samples were saved, ascending."""
        if not self.samples_dir.is_dir():
            return []
        found = (re.match(r"epoch_(\d+)\.safetensors$", p.name) for p in self.samples_dir.iterdir())
        return sorted(int(m.group(1)) for m in found if m)
