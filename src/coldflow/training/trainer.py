"""The one training loop: epochs, EMA, bf16 autocast, gradient clipping, DDP, resume.

The model is any ``nn.Module`` whose ``forward(batch)`` returns a scalar loss (a method of
:mod:`coldflow.methods`). Checkpoints are written at the end of every epoch; ``resume``
continues from the latest one and reproduces an uninterrupted run bit for bit on the CPU:
the optimizer, EMA and RNG states are restored, and the data order of epoch ``e`` depends
only on ``(seed, e)``. Evaluation hooks run under a forked RNG, so they never change the
training trajectory.

A NaN or infinite loss stops training with a :class:`~coldflow.errors.NonFiniteError`
naming the epoch, the step and the last good checkpoint; no checkpoint with non-finite
weights is ever written. ``max_nonfinite_steps`` allows skipping a bounded number of such
steps instead (no weight or EMA update; counted in the ``nonfinite_steps`` metric).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    TensorDataset,
)

from coldflow.errors import NonFiniteError, raise_if_interrupted
from coldflow.io import format_duration
from coldflow.runs import RunDir
from coldflow.training.device import (
    batch_size_of,
    is_distributed,
    resolve_device,
    seed_everything,
    to_device,
)
from coldflow.training.hashes import ConfigMismatchError, hash_matches
from coldflow.training.loggers import RunLoggers
from coldflow.training.parts import EMA, CompiledStep, build_optimizer
from coldflow.training.progress import Progress
from coldflow.training.state import restore_state, training_state

__all__ = ["Trainer"]

Hook = Callable[["Trainer", int], None]


class Trainer:
    """Train ``model`` on ``dataset`` as configured by a ``TrainingConfig``.

    Parameters
    ----------
    model
        Module with ``forward(batch) -> scalar loss``.
    dataset
        Training set. A ``TensorDataset`` is batched by fancy indexing (fast path).
    cfg
        ``TrainingConfig``: epochs, batch size (global, split across processes), optimizer,
        EMA, gradient clipping, autocast, device, checkpoint retention, progress bar.
    run
        Run directory for metrics and checkpoints (rank 0 writes). The loggers of
        ``cfg.loggers`` besides ``jsonl`` (TensorBoard, W&B) mirror what each epoch adds
        to it, on rank 0 (see :mod:`coldflow.training.loggers`).
    seed
        Base seed of the run.
    hooks
        Called as ``hook(trainer, epoch)`` after each epoch, before its checkpoint.
    config_text
        The resolved config, written to the run directory once training starts.
    config_hash
        Hash of the config fields that determine the training trajectory; stored in
        checkpoints and checked on resume.
    max_nonfinite_steps
        How many steps with a non-finite loss or gradient the whole run may skip (no
        weight or EMA update) before it stops with :class:`~coldflow.errors.NonFiniteError`.
        ``None`` reads ``cfg.max_nonfinite_steps`` (0 when absent). With 0, finiteness is
        checked once per epoch (no host sync per step).
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Dataset,
        cfg: Any,
        run: RunDir,
        seed: int,
        hooks: Sequence[Hook] = (),
        config_text: str = "",
        config_hash: str = "",
        max_nonfinite_steps: int | None = None,
    ) -> None:
        self.cfg = cfg
        if max_nonfinite_steps is None:
            max_nonfinite_steps = getattr(cfg, "max_nonfinite_steps", 0) or 0
        self.max_nonfinite_steps = int(max_nonfinite_steps)
        self.seed = seed
        self.hooks = list(hooks)
        self.dataset = dataset
        self.rank, self.world = self._init_distributed(cfg.device)
        self.device = resolve_device(cfg.device)
        self.run = run
        self.run.write = run.write and self.rank == 0
        self.config_text = config_text
        self.config_hash = config_hash
        # TensorBoard / W&B besides metrics.jsonl (rank 0); a missing package fails here
        self.loggers = RunLoggers(
            self.run, getattr(cfg, "loggers", ["jsonl"]), getattr(cfg, "wandb", None), config_text
        )
        seed_everything(seed + self.rank)
        self.channels_last = bool(getattr(cfg, "channels_last", False))
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ddp = (
            nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            if self.world > 1
            else self.model
        )
        # what a training step calls: the (DDP-wrapped) model, compiled if configured
        self.forward: Callable[[Any], torch.Tensor] = (
            CompiledStep(self.ddp, self.device) if getattr(cfg, "compile", False) else self.ddp
        )
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optimizer, self.device)
        self.ema = EMA(self.model, cfg.ema) if cfg.ema else None
        self.epoch = 0  # epochs completed
        self.step = 0  # batches seen (skipped non-finite ones included)
        self.nonfinite_steps = 0  # skipped over the whole run

    # ----------------------------------------------------------------- set-up
    @staticmethod
    def _init_distributed(device: str) -> tuple[int, int]:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and not is_distributed():
            use_nccl = device != "cpu" and torch.cuda.is_available()
            if use_nccl:
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if use_nccl else "gloo")
        if is_distributed():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    @property
    def eval_model(self) -> nn.Module:
        """The module to sample from: the EMA copy when enabled, else the trained model."""
        return self.ema.module if self.ema is not None else self.model

    def _batches(self, epoch: int) -> Iterator[Any]:
        per_rank = max(1, self.cfg.batch_size // self.world)
        if self.world > 1:
            sampler = DistributedSampler(self.dataset, shuffle=True, seed=self.seed)
            sampler.set_epoch(epoch)
        else:
            gen = torch.Generator().manual_seed(self.seed * 1000 + epoch)
            sampler = RandomSampler(self.dataset, generator=gen)
        if isinstance(self.dataset, TensorDataset) and self.cfg.num_workers == 0:
            for idx in BatchSampler(sampler, per_rank, drop_last=False):
                yield tuple(t[idx] for t in self.dataset.tensors)
            return
        loader = DataLoader(
            self.dataset, batch_size=per_rank, sampler=sampler, num_workers=self.cfg.num_workers
        )
        yield from loader

    def _n_batches(self) -> int:
        per_rank = max(1, self.cfg.batch_size // self.world)
        n = len(self.dataset)
        if self.world > 1:
            n = -(-n // self.world)
        return -(-n // per_rank)

    # ------------------------------------------------------------- checkpoints
    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Everything needed to resume: tensors for safetensors, the rest for the sidecar."""
        counters = {
            "epoch": self.epoch,
            "step": self.step,
            "nonfinite_steps": self.nonfinite_steps,
            "config_hash": self.config_hash,
        }
        return training_state(self.model, self.ema, self.optimizer, self.device, counters)

    def save_checkpoint(self) -> None:
        """Write the checkpoint of ``self.epoch``; refuse non-finite weights.

        Raises
        ------
        NonFiniteError
            If a weight of the model or its EMA is NaN or infinite (nothing is written).
        """
        self._check_finite_weights()
        tensors, sidecar = self.state_tensors()
        self.run.save_checkpoint(self.epoch, tensors, sidecar, keep=self.cfg.keep_checkpoints)

    def last_checkpoint(self) -> str:
        """The newest checkpoint file on disk, for messages (``"none yet"`` if none)."""
        done = self.run.checkpoints()
        return str(self.run.checkpoint_paths(done[-1])[0]) if done else "none yet"

    def _check_finite_weights(self) -> None:
        modules = [self.model] + ([self.ema.module] if self.ema is not None else [])
        floats = [t for m in modules for t in m.state_dict().values() if torch.is_floating_point(t)]
        if not floats or torch.stack([torch.isfinite(t).all() for t in floats]).all():
            return
        raise NonFiniteError(
            f"weights became NaN or infinite by epoch {self.epoch} (step {self.step}); no "
            f"checkpoint was written for it. Last good checkpoint: {self.last_checkpoint()}. "
            + _NONFINITE_FIX
        )

    def load_checkpoint(
        self, epoch: int | None = None, strict_config: bool = True, truncate_metrics: bool = True
    ) -> None:
        """Restore model, EMA, optimizer, RNG and counters from the run directory.

        With ``epoch=None`` the newest intact checkpoint is loaded (a damaged later one is
        skipped with a warning, see :meth:`RunDir.load_checkpoint`); ``self.epoch`` says
        which. With ``truncate_metrics`` the metrics of later epochs are dropped, since
        training redoes them.
        """
        tensors, sidecar = self.run.load_checkpoint(epoch)
        if strict_config and not hash_matches(sidecar.get("config_hash"), self.config_hash):
            raise ConfigMismatchError(
                f"{self.run.config_path}: the config differs from the one the checkpoint was "
                "trained with; resume with the run's own config.yaml (only training.epochs "
                "may change) or start a new run directory"
            )
        restore_state(tensors, sidecar, self.model, self.ema, self.optimizer, self.device)
        self.epoch, self.step = sidecar["epoch"], sidecar["step"]
        self.nonfinite_steps = int(sidecar.get("nonfinite_steps", 0))
        latest = self.run.checkpoints()
        if epoch is None and latest and latest[-1] != self.epoch:
            self.say(
                f"checkpoint of epoch {latest[-1]} is damaged; resuming from epoch {self.epoch}"
            )
        if truncate_metrics:
            self.run.truncate_metrics(self.epoch)
        if self.rank > 0:  # other ranks keep their own stream, offset as at the start
            seed_everything(self.seed + self.rank + 7919 * self.epoch)

    # -------------------------------------------------------------------- loop
    def fit(self, resume: bool = False) -> None:
        """Train until ``cfg.epochs`` epochs are complete (continuing if ``resume``)."""
        if resume and self.run.checkpoints():
            self.load_checkpoint(truncate_metrics=True)
            self.say(f"resumed from epoch {self.epoch} (step {self.step})")
        if self.config_text:
            self.run.save_config(self.config_text)
        # TensorBoard / W&B open after a resumed run's metrics.jsonl was truncated
        with self._progress() as progress, self.loggers.open(self.step):
            while self.epoch < self.cfg.epochs:
                self._train_epoch(self.epoch + 1, progress)
                self.epoch += 1
                with torch.random.fork_rng(
                    devices=[self.device] if self.device.type == "cuda" else []
                ):
                    for hook in self.hooks:
                        if self.rank == 0:
                            hook(self, self.epoch)
                self.loggers.epoch_done(self.epoch, self.step)  # before the checkpoint
                if self.world > 1:
                    dist.barrier()
                self.save_checkpoint()

    def _train_epoch(self, epoch: int, progress: Progress) -> None:
        self.model.train()
        autocast = torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.cfg.amp == "bf16"
        )
        progress.start(f"epoch {epoch}/{self.cfg.epochs}", self._n_batches(), loss=0.0, rate=0.0)
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        first_bad = torch.full((), -1, device=self.device, dtype=torch.int64)
        count = skipped = 0
        t0 = time.perf_counter()
        for batch in self._batches(epoch):
            raise_if_interrupted()
            batch = to_device(batch, self.device, self.channels_last)
            with autocast:
                loss = self.forward(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = None
            if self.cfg.grad_clip is not None:
                norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.step += 1
            if self.max_nonfinite_steps and not self._step_is_finite(loss, norm):
                skipped += 1
                self.nonfinite_steps += 1
                self.optimizer.zero_grad(set_to_none=True)
                if self.nonfinite_steps > self.max_nonfinite_steps:
                    raise NonFiniteError(
                        f"training loss or gradient was non-finite at epoch {epoch}, step "
                        f"{self.step}: {self.nonfinite_steps} such steps, more than "
                        f"max_nonfinite_steps={self.max_nonfinite_steps}. Last good checkpoint: "
                        f"{self.last_checkpoint()}. " + _NONFINITE_FIX
                    )
                continue
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.model)
            n = batch_size_of(batch)
            detached = loss.detach()
            if not self.max_nonfinite_steps:  # remember the first bad step, without a sync
                bad = ~torch.isfinite(detached) & (first_bad < 0)
                first_bad = torch.where(bad, self.step, first_bad)
            total += detached.double() * n
            count += n
            if progress.step(self.step - self._step0(epoch)):  # reading the loss: a host sync
                shown = loss.item() if progress.live else total.item() / count
                progress.show(loss=shown, rate=count / (time.perf_counter() - t0))
        elapsed = time.perf_counter() - t0
        stats = torch.tensor([total.item(), float(count)], dtype=torch.float64)
        if self.world > 1:
            dist.all_reduce(stats)
        mean_loss = (stats[0] / stats[1]).item() if stats[1] > 0 else float("nan")
        rate = stats[1].item() / elapsed
        if not np.isfinite(mean_loss):
            at = int(first_bad.item())
            where = f"step {at}" if at >= 0 else f"step {self.step}"
            if stats[1] == 0:
                where = f"step {self.step}; every step of the epoch was skipped"
            raise NonFiniteError(
                f"training loss became {mean_loss} in epoch {epoch} (first at {where}); no "
                f"checkpoint was written for this epoch. Last good checkpoint: "
                f"{self.last_checkpoint()}. " + _NONFINITE_FIX
            )
        if progress.live:
            progress.step(self._n_batches())
            progress.show(loss=mean_loss, rate=rate)
        else:
            self.say(
                f"epoch {epoch}/{self.cfg.epochs}: loss {mean_loss:.4f}, {rate:.0f} samples/s, "
                f"{elapsed:.0f} s"
            )
        self.run.log(epoch, self.step, "train", "loss", mean_loss)
        self.run.log(epoch, self.step, "train", "samples_per_s", rate)
        if self.max_nonfinite_steps:
            self.run.log(epoch, self.step, "train", "nonfinite_steps", skipped)
        self.run.log(epoch, self.step, "train", "epoch_seconds", elapsed)
        self.run.log(epoch, self.step, "train", "lr", self.optimizer.param_groups[0]["lr"])

    def _step_is_finite(self, loss: torch.Tensor, norm: torch.Tensor | None) -> bool:
        """Whether loss and gradients are finite, agreed by every process (one host sync)."""
        if norm is None:
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            norm = nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=self.device)
        bad = (~torch.isfinite(loss.detach()) | ~torch.isfinite(norm)).to(torch.float32)
        if self.world > 1:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        return not bool(bad.item())

    def _step0(self, epoch: int) -> int:
        return (epoch - 1) * self._n_batches()

    def _progress(self) -> Progress:
        """A live progress bar on a terminal; elsewhere one line per epoch (see ``say``) and,
        in epochs longer than :data:`LOG_EVERY_S`, a line that often (rank 0, when
        ``cfg.progress`` is on)."""
        return Progress(
            bool(self.cfg.progress) and self.rank == 0,
            self.say,
            line=_progress_line,
            columns=("loss {task.fields[loss]:.4f}", "{task.fields[rate]:.0f} samples/s"),
            line_every=LOG_EVERY_S,
        )

    def say(self, msg: str) -> None:
        """Print a line on rank 0 when progress output is on (hooks use it too)."""
        if self.rank == 0 and self.cfg.progress:
            print(msg, flush=True)

    def close(self) -> None:
        """Tear down the process group if this trainer created one."""
        if is_distributed():
            dist.destroy_process_group()


LOG_EVERY_S = 60.0
"""Without a live progress bar (output not a terminal), a line at most this often."""


_NONFINITE_FIX = (
    "Lower the learning rate (training.optimizer.lr), enable gradient clipping "
    "(training.grad_clip) or allow a few skipped steps (training.max_nonfinite_steps), then "
    "continue with `coldflow train --resume --run-dir RUN`."
)


def _progress_line(progress: Progress, fields: dict[str, Any]) -> str:
    """A line within a long epoch where there is no live bar (log files, batch jobs)."""
    return (
        f"{progress.description}: step {progress.done}/{progress.total}, loss "
        f"{fields['loss']:.4f} (mean so far), {fields['rate']:.0f} samples/s, about "
        f"{format_duration(progress.eta)} left in the epoch"
    )
