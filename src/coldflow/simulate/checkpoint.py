"""What ``coldflow simulate`` keeps while a batch runs: checkpoints of a running batch
(segments of frames plus the full solver state, with a checksummed manifest), and the
disk-full guard of part files. Its progress display is
:class:`coldflow.training.progress.Progress`."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coldflow.errors import CheckpointError, DiskFullError
from coldflow.io import is_disk_full, write_json
from coldflow.physics import FluidState

__all__ = ["BatchCheckpoint", "disk_full_names"]


class disk_full_names:
    """Turn running out of disk space inside the block into a DiskFullError naming ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None or isinstance(exc, DiskFullError) or not isinstance(exc, Exception):
            return
        if is_disk_full(exc):
            raise DiskFullError(
                f"{self.path}: out of disk space while writing this simulation part "
                f"({exc}); the part is discarded and complete parts are kept. Free space on "
                f"{self.path.parent} and rerun the same command to resume.",
                str(self.path),
            ) from exc


# ----------------------------------------------------------------- batch checkpoints


class BatchCheckpoint:
    """Segments of a running batch: frames since the last segment and the solver state.

    ``batch_NNNN.seg_KKKK.safetensors`` holds the frames of segment ``K`` (``name`` ->
    ``[n, B, ...]`` float32, ``name#frames`` -> ``[n]``) and the state after it
    (``state.*``, ``start.*`` in the solver's dtype); ``batch_NNNN.resume.json`` (written
    after each segment) lists the segments with their sha256, the batch's simulations
    and physics hashes, and the position to continue from.
    """

    def __init__(
        self,
        directory: Path,
        batch: Sequence[Any],
        hashes: list[str],
        say: Callable[[str], None],
    ) -> None:
        self.dir = directory
        self.stem = f"batch_{batch[0].index:04d}"
        self.indices = [s.index for s in batch]
        self.hashes = hashes
        self.say = say
        self.segments: list[dict[str, Any]] = []

    @property
    def manifest(self) -> Path:
        return self.dir / f"{self.stem}.resume.json"

    def describe(self) -> str:
        return f"simulations {', '.join(map(str, self.indices))}"

    def _segment(self, k: int) -> Path:
        return self.dir / f"{self.stem}.seg_{k:04d}.safetensors"

    def save(
        self,
        pos: int,
        pending: dict[str, list[tuple[int, np.ndarray]]],
        state: FluidState,
        start_state: FluidState | None,
    ) -> None:
        from coldflow.runs import save_tensors

        tensors: dict[str, torch.Tensor] = {}
        for name, items in pending.items():
            tensors[name] = torch.from_numpy(np.stack([a for _, a in items]))
            tensors[f"{name}#frames"] = torch.tensor([t for t, _ in items], dtype=torch.int64)
        for prefix, st in (("state", state), ("start", start_state)):
            if st is None:
                continue
            for field in ("velocity", "density", "pressure"):
                value = getattr(st, field)
                if value is not None:
                    tensors[f"{prefix}.{field}"] = value.detach()
        k = len(self.segments)
        path = self._segment(k)
        sha = save_tensors(path, tensors)
        self.segments.append({"file": path.name, "sha256": sha, "pos": pos})
        write_json(
            self.manifest,
            {"indices": self.indices, "physics_hashes": self.hashes, "segments": self.segments},
        )

    def restore(self, store: Callable[[str, int, np.ndarray], None]):
        """Replay the saved frames through ``store``; ``(pos, state, start_state)`` or None."""
        from coldflow.runs import load_tensors

        if not self.manifest.is_file():
            return None
        try:
            info = json.loads(self.manifest.read_text())
            segments = list(info["segments"])
            same = info["indices"] == self.indices and info["physics_hashes"] == self.hashes
        except (OSError, ValueError, KeyError, TypeError) as e:
            self._warn(f"{self.manifest}: unreadable ({e}); simulating the batch from frame 0")
            return None
        if not same:
            self._warn(
                f"{self.manifest}: saved for other simulations or another config; simulating "
                "the batch from frame 0"
            )
            return None
        loaded = []
        for seg in segments:
            try:
                loaded.append(load_tensors(self.dir / seg["file"], seg["sha256"]))
            except CheckpointError as e:
                self._warn(f"{e}; resuming from the segment before it")
                break
        if not loaded:
            return None
        self.segments = segments[: len(loaded)]
        for tensors in loaded:
            for name, values in tensors.items():
                if "#" in name or "." in name:
                    continue
                frames = tensors[f"{name}#frames"].tolist()
                for t, array in zip(frames, values.numpy(), strict=True):
                    store(name, t, array)
        last = loaded[-1]

        def state_of(prefix: str) -> FluidState | None:
            if f"{prefix}.velocity" not in last:
                return None
            return FluidState(
                last[f"{prefix}.velocity"],
                last.get(f"{prefix}.density"),
                last.get(f"{prefix}.pressure"),
            )

        return int(self.segments[-1]["pos"]), state_of("state"), state_of("start")

    def _warn(self, message: str) -> None:
        warnings.warn(message, stacklevel=3)
        self.say(message)

    def clear(self) -> None:
        """Remove the manifest (first) and every segment of this batch."""
        self.manifest.unlink(missing_ok=True)
        for seg in self.dir.glob(f"{self.stem}.seg_*.safetensors"):
            seg.unlink(missing_ok=True)
        self.segments = []
