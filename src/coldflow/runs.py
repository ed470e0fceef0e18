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
The sidecar also stores the sha256 of its tensor file; loading checks it, and loading the
latest checkpoint falls back to the newest intact one when a later one is damaged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from coldflow.config.base import ConfigError
from coldflow.errors import CheckpointError, CheckpointWarning, DiskFullError, NoCheckpointError
from coldflow.io import (
    atomic_open,
    exclusive_lock,
    is_disk_full,
    lock_holder,
    write_bytes,
    write_json,
    write_text,
)

__all__ = ["RunDir", "load_tensors", "parse_shard", "read_evaluation", "save_tensors"]

_CKPT = re.compile(r"epoch_(\d+)\.json$")
SHA_KEY = "tensors_sha256"  # sidecar key: sha256 of the checkpoint's safetensors file


def save_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict | None = None
) -> str:
    """Write tensors to a safetensors file atomically (string metadata allowed).

    Returns
    -------
    str
        The sha256 (hex) of the bytes written.
    """
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    data = safetensors.torch.save(tensors, metadata={k: str(v) for k, v in (meta or {}).items()})
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def load_tensors(path: str | os.PathLike, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read every tensor of a safetensors file (on the CPU).

    Parameters
    ----------
    path
        The file.
    sha256
        When given, the file's checksum must match.

    Raises
    ------
    CheckpointError
        If the file cannot be read, fails its checksum or is not valid safetensors
        (truncated, overwritten, bit-flipped); the message names the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e})") from e
    if sha256:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise CheckpointError(
                f"{path}: checksum mismatch (sha256 {actual[:16]}..., expected "
                f"{sha256[:16]}...; {len(data)} bytes): the file is truncated or damaged"
            )
    try:
        return safetensors.torch.load(data)
    except Exception as e:  # SafetensorError, or a header that is not JSON
        raise CheckpointError(
            f"{path}: not a valid safetensors file ({type(e).__name__}: {e}); "
            "it is truncated or damaged"
        ) from e


def _read_sidecar(path: Path) -> dict:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot be read ({e})") from e
    try:
        sidecar = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(
            f"{path}: checkpoint sidecar is not valid JSON ({e}); it is torn or damaged"
        ) from e
    if not isinstance(sidecar, dict):
        raise CheckpointError(f"{path}: checkpoint sidecar is not a JSON object; it is damaged")
    return sidecar


def read_evaluation(run: str | os.PathLike) -> dict[str, Any] | None:
    """The ``evaluation.json`` of a run directory, or ``None`` when it is missing or not
    valid JSON (the run has not been evaluated, or the file was cut short)."""
    path = Path(run) / "evaluation.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError:
        return None


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

    @property
    def lock_path(self) -> Path:
        """The lock file of the process that writes this run (:meth:`writing`)."""
        return self.path / "writer.lock"

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold the run's lock: one writing process at a time (see
        :func:`coldflow.io.exclusive_lock`)."""
        return exclusive_lock(self.lock_path, f"run directory {self.path}")

    def writer(self) -> str | None:
        """The process training this run now (as a lock error names it), or None."""
        return lock_holder(self.lock_path)

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
        try:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(event) + "\n")
        except OSError as e:
            if is_disk_full(e):
                raise DiskFullError(
                    f"{self.metrics_path}: out of disk space while appending to this file "
                    f"({e}); free space on {self.path} and resume the run",
                    str(self.metrics_path),
                ) from e
            raise

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
        """Write a checkpoint (tensors first, sidecar with their sha256 last), prune old ones.

        Raises
        ------
        DiskFullError
            When the disk runs out; the checkpoints already on disk are unchanged.
        """
        if not self.write:
            return
        weights, meta = self.checkpoint_paths(epoch)
        sha = save_tensors(weights, tensors)
        write_json(meta, {**sidecar, SHA_KEY: sha})
        for old in self.checkpoints()[:-keep]:
            for p in self.checkpoint_paths(old)[::-1]:  # sidecar first: never a torn pair
                p.unlink(missing_ok=True)

    def read_checkpoint(self, epoch: int) -> tuple[dict[str, torch.Tensor], dict]:
        """Read and verify the checkpoint of ``epoch`` (no fallback).

        Raises
        ------
        NoCheckpointError
            If there is no complete checkpoint of ``epoch``.
        CheckpointError
            If its sidecar is not valid JSON, its tensors fail the checksum stored in the
            sidecar, or they are not valid safetensors. The message names the file.
        """
        weights, meta = self.checkpoint_paths(epoch)
        if not (weights.is_file() and meta.is_file()):
            raise NoCheckpointError(
                f"{self.checkpoint_dir}: no checkpoint for epoch {epoch}; "
                f"available: {self.checkpoints()}"
            )
        sidecar = _read_sidecar(meta)
        if "epoch" in sidecar and sidecar["epoch"] != epoch:
            raise CheckpointError(
                f"{meta}: sidecar says epoch {sidecar['epoch']!r}, its name says {epoch}; "
                "it is damaged"
            )
        return load_tensors(weights, sidecar.get(SHA_KEY)), sidecar

    def sidecar(self, epoch: int) -> dict:
        """The JSON sidecar of ``epoch``'s checkpoint (config hash, counters), tensors unread.

        Raises
        ------
        CheckpointError
            If it cannot be read or is not a JSON object; the message names the file.
        """
        return _read_sidecar(self.checkpoint_paths(epoch)[1])

    def load_checkpoint(self, epoch: int | None = None) -> tuple[dict[str, torch.Tensor], dict]:
        """Return ``(tensors, sidecar)`` of ``epoch`` (default: the newest intact one).

        With ``epoch=None``, a damaged latest checkpoint (torn sidecar, truncated or
        bit-flipped tensors) is skipped with a :class:`~coldflow.errors.CheckpointWarning`
        naming the file, and the newest intact one is loaded; ``sidecar["epoch"]`` says
        which.

        Raises
        ------
        NoCheckpointError
            If the directory holds no checkpoint (of ``epoch``).
        CheckpointError
            If the requested checkpoint, or with ``epoch=None`` every checkpoint, is
            damaged; the message names each file and what is wrong with it.
        """
        available = self.checkpoints()
        if not available:
            raise NoCheckpointError(f"{self.checkpoint_dir}: no complete checkpoint to load")
        if epoch is not None:
            return self.read_checkpoint(epoch)
        problems = []
        for candidate in reversed(available):
            try:
                loaded = self.read_checkpoint(candidate)
            except CheckpointError as e:
                problems.append(str(e))
                continue
            if problems:
                warnings.warn(
                    "skipped damaged checkpoint(s): "
                    + "; ".join(problems)
                    + f". Loaded epoch {candidate} instead.",
                    CheckpointWarning,
                    stacklevel=2,
                )
            return loaded
        raise CheckpointError(
            f"{self.checkpoint_dir}: every checkpoint is damaged:\n  "
            + "\n  ".join(problems)
            + "\nDelete the damaged files and train again (or restore them from a backup)."
        )

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


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n`` (``--shard`` of simulate and study).

    Raises
    ------
    ConfigError
        When ``text`` is not two whole numbers ``I/N`` with ``0 <= I < N``.
    """
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= I < N")
    return i, n
