"""Copies of a run's metrics for the tools researchers watch runs in: TensorBoard and W&B.

``metrics.jsonl`` stays the record of a run: every page and figure reads it, and the
``jsonl`` logger of ``training.loggers`` is always on. The other loggers mirror what a
training epoch added to the run directory, once per epoch, just before its checkpoint:

- every line appended to ``metrics.jsonl`` becomes a scalar named ``split/name``
  (``train/loss``, ``eval/fid``) at the line's ``step``, with its wall time;
- a sample grid saved during training (``samples/epoch_NNNN.safetensors``, the
  diffusion tasks' evaluation epochs) becomes one image per tensor of the file
  (``samples/images``, ``samples/images_conditional``), scaled from the run's
  ``data.range`` to [0, 1].

``tensorboard`` writes event files under ``RUN/tensorboard/``; a resumed run appends to
the same directory with ``purge_step`` at the first step it redoes, so TensorBoard's
reader drops whatever an interrupted epoch logged after the last checkpoint and shows
each step once. ``wandb`` logs the same scalars (plus ``epoch``) and images to a W&B
run, offline unless ``training.wandb.mode`` or ``$WANDB_MODE`` say otherwise; its id is
kept in ``RUN/wandb/run_id`` so a resumed run continues the same W&B run.

Both packages are optional extras (``pip install 'coldflow[tensorboard]'``, ``'coldflow[wandb]'``)
and imported only when a config asks for them; :func:`check_loggers` fails with the
command to install them before training starts. Only the process that writes the run
directory (rank 0) logs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from coldflow.errors import UserError
from coldflow.io import write_text
from coldflow.runs import RunDir, load_tensors

__all__ = [
    "LOGGERS",
    "TENSORBOARD_DIR",
    "WANDB_DIR",
    "LoggerUnavailableError",
    "RunLoggers",
    "TensorBoardLogger",
    "WandbLogger",
    "check_loggers",
    "image_grid",
]

LOGGERS = ("jsonl", "tensorboard", "wandb")
"""The names ``training.loggers`` accepts."""

TENSORBOARD_DIR = "tensorboard"
"""The run directory's folder of TensorBoard event files."""

WANDB_DIR = "wandb"
"""The run directory's folder of W&B files (its offline runs, ``run_id``)."""

# the package each logger imports, and the extra that installs it
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


class LoggerUnavailableError(UserError, ImportError):
    """A logger of ``training.loggers`` needs a package that is not installed."""


def check_loggers(names: Iterable[str]) -> None:
    """Fail early when a configured logger's package is missing.

    Parameters
    ----------
    names
        The names of ``training.loggers``.

    Raises
    ------
    LoggerUnavailableError
        Naming the logger, the package and the ``pip install 'coldflow[EXTRA]'`` command.
    """
    for name in names:
        package = _PACKAGES.get(name)
        if package is not None and not _importable(package):
            raise LoggerUnavailableError(
                f"training.loggers includes {name}, but the {package} package is not "
                f"installed; install it with `pip install 'coldflow[{name}]'` (or remove "
                f"{name} from training.loggers)"
            )


def _importable(package: str) -> bool:
    """Whether ``import package`` can work (already imported, or found on the path)."""
    if package in sys.modules:
        return sys.modules[package] is not None  # None: imports of it are blocked
    return importlib.util.find_spec(package) is not None


def image_grid(images: torch.Tensor, columns: int = 8) -> np.ndarray:
    """Tile ``[n, C, H, W]`` images in [0, 1] into one ``[rows * H, columns * W, 3]`` uint8
    array (one-channel images become grey; missing tiles stay black)."""
    x = images.detach().float().cpu().clamp(0, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = x[:, :3]
    n, c, h, w = x.shape
    cols = max(1, min(columns, n))
    rows = -(-n // cols)
    grid = torch.zeros(rows * cols, c, h, w)
    grid[:n] = x
    grid = grid.reshape(rows, cols, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
    return (grid * 255).round().to(torch.uint8).numpy()


class TensorBoardLogger:
    """TensorBoard event files of one run under ``RUN/tensorboard/``.

    Parameters
    ----------
    log_dir
        The folder of event files (created if needed; a resumed run reuses it).
    step
        The step training continues from (0 for a new run): events at later steps
        already in ``log_dir`` are purged (``SummaryWriter(purge_step=step + 1)``).
    """

    def __init__(self, log_dir: str | os.PathLike, step: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # tensorboard missing or too old for torch
            raise LoggerUnavailableError(
                f"training.loggers includes tensorboard, but it cannot be imported ({e}); "
                "install it with `pip install 'coldflow[tensorboard]'`"
            ) from e
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=step + 1)

    def scalars(self, step: int, epoch: int, values: dict[str, float], walltime: float) -> None:
        """Write ``values`` (tag: value) at ``step``, stamped ``walltime`` (seconds)."""
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, global_step=step, walltime=walltime)

    def images(self, step: int, epoch: int, images: dict[str, torch.Tensor]) -> None:
        """Write each ``[n, C, H, W]`` tensor in [0, 1] as one grid image at ``step``."""
        for tag, x in images.items():
            self.writer.add_image(tag, image_grid(x), global_step=step, dataformats="HWC")

    def flush(self) -> None:
        """Write pending events to disk."""
        self.writer.flush()

    def close(self, failed: bool = False) -> None:
        """Flush and close the event file."""
        self.writer.close()


class WandbLogger:
    """A Weights & Biases run mirroring one training run (files under ``RUN/wandb/``).

    Parameters
    ----------
    run_dir
        The training run's directory; ``wandb/run_id`` there keeps the W&B run id, so a
        resumed training run continues the same W&B run (``resume="allow"``).
    options
        ``training.wandb`` (project, entity, mode) or ``None`` for the defaults.
    config
        The run's resolved config, stored as the W&B run's config.
    """

    def __init__(
        self, run_dir: str | os.PathLike, options: Any = None, config: dict | None = None
    ) -> None:
        try:
            import wandb
        except ImportError as e:
            raise LoggerUnavailableError(
                f"training.loggers includes wandb, but it cannot be imported ({e}); install "
                "it with `pip install 'coldflow[wandb]'`"
            ) from e
        self._wandb = wandb
        run_dir = Path(run_dir)
        id_path = run_dir / WANDB_DIR / "run_id"
        run_id = id_path.read_text().strip() if id_path.is_file() else ""
        if not run_id:
            run_id = secrets.token_hex(4)
            write_text(id_path, run_id + "\n")
        self.run_id = run_id
        mode = getattr(options, "mode", None)
        if mode is None and not os.environ.get("WANDB_MODE"):
            mode = "offline"
        self.mode = mode or os.environ["WANDB_MODE"]
        try:
            self.run = wandb.init(
                project=getattr(options, "project", "coldflow"),
                entity=getattr(options, "entity", None),
                mode=mode,
                dir=str(run_dir),
                id=run_id,
                resume="allow",
                name=run_dir.name,
                config=config,
            )
        except Exception as e:  # noqa: BLE001 (wandb's own errors: login, network, settings)
            raise UserError(
                f"W&B could not start run {run_id} in mode {self.mode} ({type(e).__name__}: "
                f"{e}); log in with `wandb login`, or set training.wandb.mode=offline"
            ) from e

    def scalars(self, step: int, epoch: int, values: dict[str, float], walltime: float) -> None:
        """Log ``values`` (and ``epoch``) at ``step``."""
        self.run.log({**values, "epoch": epoch}, step=step)

    def images(self, step: int, epoch: int, images: dict[str, torch.Tensor]) -> None:
        """Log each ``[n, C, H, W]`` tensor in [0, 1] as one grid image at ``step``."""
        grids = {tag: self._wandb.Image(image_grid(x)) for tag, x in images.items()}
        self.run.log(grids, step=step)

    def flush(self) -> None:
        """Nothing to do: W&B writes in the background."""

    def close(self, failed: bool = False) -> None:
        """Finish the W&B run (exit code 1 when training ``failed``)."""
        self.run.finish(exit_code=1 if failed else 0)


class RunLoggers:
    """The loggers of one training run besides ``metrics.jsonl``, fed from its files.

    Parameters
    ----------
    run
        The run directory; nothing is logged when it does not write (ranks other than 0).
    names
        ``training.loggers``; ``jsonl`` is the run directory's own ``metrics.jsonl``.
    wandb
        ``training.wandb`` (or ``None``).
    config_text
        The run's resolved config (YAML): its ``data.range`` scales sample grids, and
        W&B stores it as the run's config.

    Raises
    ------
    LoggerUnavailableError
        When a configured logger's package is missing (checked here, before training).
    """

    def __init__(
        self, run: RunDir, names: Sequence[str], wandb: Any = None, config_text: str = ""
    ) -> None:
        unknown = sorted(set(names) - set(LOGGERS))
        if unknown:
            raise ValueError(f"unknown loggers {unknown}; known: {', '.join(LOGGERS)}")
        self.run = run
        self.names = [n for n in names if n != "jsonl"] if run.write else []
        self.wandb = wandb
        self.config_text = config_text
        check_loggers(self.names)
        self.loggers: list[Any] = []
        self._offset = 0
        self._samples: dict[Path, int] = {}
        self._range: tuple[float, float] | None = None

    def open(self, step: int) -> RunLoggers:
        """Start the loggers; training continues from ``step`` (0 for a new run).

        Call it once ``metrics.jsonl`` holds what the resumed run keeps (after the
        checkpoint is loaded): only lines appended later are logged. Returns ``self``,
        a context manager that closes the loggers on leaving.
        """
        if not self.names:
            return self
        self._offset = self._metrics_size()
        self._samples = self._sample_files()
        config = _parse_config(self.config_text)
        self._range = _value_range(config)
        try:
            for name in self.names:
                if name == "tensorboard":
                    self.loggers.append(TensorBoardLogger(self.run.path / TENSORBOARD_DIR, step))
                elif name == "wandb":
                    self.loggers.append(WandbLogger(self.run.path, self.wandb, config))
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def __enter__(self) -> RunLoggers:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: Any) -> None:
        self.close(failed=kind is not None)

    def epoch_done(self, epoch: int, step: int) -> None:
        """Log what epoch ``epoch`` (ending at ``step``) added to the run directory: the
        new lines of ``metrics.jsonl`` and the sample grid it saved (if any)."""
        if not self.loggers:
            return
        by_step: dict[int, tuple[int, float, dict[str, float]]] = {}
        for event in self._new_events():
            step = int(event["step"])
            ep, t, values = by_step.setdefault(step, (int(event["epoch"]), event["time"], {}))
            values[f"{event['split']}/{event['name']}"] = float(event["value"])
        samples = self._new_samples(epoch, step)
        for logger in self.loggers:
            for step, (ep, t, values) in sorted(by_step.items()):
                logger.scalars(step, ep, values, t)
            if samples is not None:
                logger.images(*samples)
            logger.flush()

    def close(self, failed: bool = False) -> None:
        """Close every logger (event files flushed, W&B run finished; marked failed
        when training stopped with an error)."""
        loggers, self.loggers = self.loggers, []
        for logger in loggers:
            logger.close(failed)

    # ---------------------------------------------------------------- reading
    def _metrics_size(self) -> int:
        path = self.run.metrics_path
        return path.stat().st_size if path.is_file() else 0

    def _new_events(self) -> list[dict[str, Any]]:
        """The complete lines appended to ``metrics.jsonl`` since the last call."""
        path = self.run.metrics_path
        if not path.is_file():
            return []
        with open(path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        events = []
        for line in data[:end].splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events

    def _sample_files(self) -> dict[Path, int]:
        folder = self.run.samples_dir
        if not folder.is_dir():
            return {}
        return {p: p.stat().st_mtime_ns for p in folder.glob("epoch_*.safetensors")}

    def _new_samples(
        self, epoch: int, step: int
    ) -> tuple[int, int, dict[str, torch.Tensor]] | None:
        """``(step, epoch, images in [0, 1])`` of the grid saved in this epoch, or None."""
        before, self._samples = self._samples, self._sample_files()
        path = self.run.samples_path(epoch)
        if path not in self._samples or before.get(path) == self._samples[path]:
            return None  # none saved this epoch (an older file is not logged again)
        tensors = load_tensors(path)
        images = {
            f"samples/{key}": _to_unit(x, self._range)
            for key, x in tensors.items()
            if x.ndim == 4 and torch.is_floating_point(x)
        }
        return (step, epoch, images) if images else None


def _parse_config(text: str) -> dict | None:
    try:
        config = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return None
    return config if isinstance(config, dict) else None


def _value_range(config: dict | None) -> tuple[float, float] | None:
    """The config's ``data.range`` (diffusion runs), or None."""
    data = (config or {}).get("data")
    value = data.get("range") if isinstance(data, dict) else None
    if isinstance(value, list | tuple) and len(value) == 2:
        return float(value[0]), float(value[1])
    return None


def _to_unit(x: torch.Tensor, value_range: tuple[float, float] | None) -> torch.Tensor:
    """``x`` mapped from ``value_range`` (default: its own min and max) to [0, 1]."""
    x = x.float()
    lo, hi = value_range or (x.min().item(), x.max().item())
    return ((x - lo) / max(hi - lo, 1e-12)).clamp(0, 1)
