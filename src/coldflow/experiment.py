"""Training, sampling and evaluation of diffusion runs, from a config to a run directory.

This is the glue the CLI calls: it builds the degradation, network and method that a
:class:`~coldflow.config.RunConfig` names, trains them with the one
:class:`~coldflow.trainer.Trainer`, and evaluates samples with FID.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coldflow.config import RunConfig, dump_yaml, load_config
from coldflow.data import mnist_dataset
from coldflow.degradations import build_degradation
from coldflow.io import write_json
from coldflow.methods import SampleResult, build_method
from coldflow.nets import build_net
from coldflow.runs import RunDir
from coldflow.trainer import Trainer, config_hash, resolve_device, seed_everything

__all__ = [
    "build_model",
    "train",
    "load_run",
    "sample",
    "evaluate",
    "fid_of_samples",
    "LoadedRun",
]

IMAGE_SHAPE = (1, 28, 28)  # MNIST (C, H, W)


def build_model(cfg: RunConfig) -> nn.Module:
    """The method module (network + degradation) that ``cfg`` describes."""
    degradation = build_degradation(cfg.degradation)
    net = build_net(cfg.model, in_channels=IMAGE_SHAPE[0], image_shape=IMAGE_SHAPE[1:])
    return build_method(cfg.method, net, degradation)


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def draw(
    model: nn.Module,
    n: int,
    *,
    sampler: str,
    steps: int | None,
    eta: float = 0.0,
    snapshots: list[int] | tuple[int, ...] = (),
    seed: int = 0,
    batch_size: int = 1000,
) -> SampleResult:
    """Sample ``n`` images in batches (trajectory only from the first batch)."""
    device = next(model.parameters()).device
    gen = _generator(device, seed)
    model.eval()
    images, first = [], None
    for start in range(0, n, batch_size):
        res = model.sample(
            min(batch_size, n - start),
            IMAGE_SHAPE,
            sampler=sampler,
            steps=steps,
            eta=eta,
            snapshots=snapshots if start == 0 else (),
            generator=gen,
        )
        first = first or res
        images.append(res.images.cpu())
    return SampleResult(torch.cat(images), first.trajectory, first.timesteps)


def fid_of_samples(images: torch.Tensor, cfg: RunConfig, device: torch.device) -> float:
    """FID of ``images`` against the MNIST test set with the configured feature extractor."""
    from coldflow.metrics.features import build_feature_extractor
    from coldflow.metrics.fid import fid_from_images, mnist_real_statistics

    extractor = build_feature_extractor(cfg.evaluation.fid.extractor).to(device)
    real = mnist_real_statistics(extractor, "test", n=10000, device=device)
    return fid_from_images(images, real, extractor, tuple(cfg.data.range), device=device)


def trajectory_hash(cfg: RunConfig) -> str:
    """Hash of what determines the training trajectory (not epochs, device, evaluation)."""
    free = {"epochs", "progress", "device", "keep_checkpoints", "num_workers"}
    return config_hash(
        cfg.model_dump(
            mode="json",
            exclude={"name": True, "evaluation": True, "sampling": True, "training": free},
        )
    )


class EvalHook:
    """Every ``evaluation.interval`` epochs (and at the last): save samples, score FID."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    def __call__(self, trainer: Trainer, epoch: int) -> None:
        ev = self.cfg.evaluation
        if epoch % ev.interval and epoch != self.cfg.training.epochs:
            return
        model = trainer.eval_model
        fid_cfg = ev.fid
        grid = draw(
            model,
            self.cfg.sampling.n_grid,
            sampler=fid_cfg.sampler,
            steps=fid_cfg.steps,
            eta=fid_cfg.eta,
            seed=self.cfg.seed + 1,
        )
        trainer.run.save_samples({"images": grid.images}, epoch=epoch, meta={"epoch": epoch})
        if fid_cfg.enabled:
            t0 = time.perf_counter()
            samples = draw(
                model,
                fid_cfg.n_samples,
                sampler=fid_cfg.sampler,
                steps=fid_cfg.steps,
                eta=fid_cfg.eta,
                seed=self.cfg.seed + 2,
                batch_size=fid_cfg.batch_size,
            )
            score = fid_of_samples(samples.images, self.cfg, trainer.device)
            trainer.run.log(epoch, trainer.step, "eval", "fid", score)
            trainer._print(
                f"epoch {epoch}: FID {score:.3f} ({fid_cfg.n_samples} samples, "
                f"{fid_cfg.extractor} features, {time.perf_counter() - t0:.0f} s)"
            )
        model.train()


def train(
    config: RunConfig | str | Path,
    run_dir: str | Path,
    *,
    overrides: list[str] | None = None,
    resume: bool = False,
    final_samples: bool = True,
) -> RunDir:
    """Train the run described by ``config`` into ``run_dir``.

    Parameters
    ----------
    config
        A config or the path of a YAML file (then ``overrides`` apply).
    run_dir
        Output directory. It must not hold checkpoints of another run unless ``resume``.
    resume
        Continue from the latest checkpoint of ``run_dir`` (with its own config.yaml when
        ``config`` is omitted by the caller).
    final_samples
        After training, draw the final sample grid and trajectory (``samples/final``).
    """
    cfg = config if isinstance(config, RunConfig) else load_config(config, RunConfig, overrides)
    run = RunDir(run_dir)
    if run.checkpoints() and not resume:
        raise FileExistsError(
            f"{run.path} already holds checkpoints; pass --resume to continue it, or choose "
            "another --run-dir"
        )
    dataset = mnist_dataset("train", tuple(cfg.data.range), cfg.data.train_subset)
    seed_everything(cfg.seed)  # the initial weights depend on the seed alone
    model = build_model(cfg)
    trainer = Trainer(
        model,
        dataset,
        cfg.training,
        run,
        cfg.seed,
        hooks=[EvalHook(cfg)],
        config_text=dump_yaml(cfg),
        config_hash=trajectory_hash(cfg),
    )
    try:
        trainer.fit(resume=resume)
        if final_samples and trainer.rank == 0:
            write_final_samples(trainer.eval_model, cfg, run)
    finally:
        trainer.close()
    return run


def write_final_samples(model: nn.Module, cfg: RunConfig, run: RunDir) -> SampleResult:
    """Draw the final grid with the configured sampler and snapshot timesteps."""
    s = cfg.sampling
    res = draw(
        model,
        s.n_grid,
        sampler=s.sampler,
        steps=s.steps,
        eta=s.eta,
        snapshots=s.snapshot_timesteps,
        seed=cfg.seed + 3,
    )
    tensors = {"images": res.images}
    if res.trajectory is not None:
        tensors["trajectory"] = res.trajectory
        tensors["timesteps"] = torch.tensor(res.timesteps, dtype=torch.long)
    run.save_samples(tensors, meta={"sampler": s.sampler})
    return res


@dataclass
class LoadedRun:
    """A trained run ready for sampling."""

    cfg: RunConfig
    run: RunDir
    model: nn.Module
    epoch: int
    device: torch.device


def load_run(run_dir: str | Path, device: str = "auto", epoch: int | None = None) -> LoadedRun:
    """Load a run's config and checkpoint (EMA weights when the run kept them)."""
    run = RunDir(run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run.path}: not a run directory (no config.yaml)")
    cfg = load_config(run.config_path, RunConfig)
    tensors, sidecar = run.load_checkpoint(epoch)
    model = build_model(cfg)
    prefix = "ema." if any(k.startswith("ema.") for k in tensors) else "model."
    model.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    dev = resolve_device(device)
    return LoadedRun(cfg, run, model.to(dev).eval(), sidecar["epoch"], dev)


def sample(
    run_dir: str | Path,
    n: int = 16,
    sampler: str = "ancestral",
    steps: int | None = None,
    eta: float = 0.0,
    seed: int = 0,
    device: str = "auto",
) -> tuple[SampleResult, LoadedRun]:
    """Draw ``n`` samples from a trained run."""
    loaded = load_run(run_dir, device)
    snaps = loaded.cfg.sampling.snapshot_timesteps
    res = draw(loaded.model, n, sampler=sampler, steps=steps, eta=eta, snapshots=snaps, seed=seed)
    return res, loaded


def evaluate(
    run_dir: str | Path,
    n: int = 10000,
    sampler: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    device: str = "auto",
) -> dict[str, Any]:
    """Score a trained run with FID on ``n`` samples; write ``evaluation.json``."""
    loaded = load_run(run_dir, device)
    fid_cfg = loaded.cfg.evaluation.fid
    sampler = sampler or fid_cfg.sampler
    steps = steps or fid_cfg.steps
    t0 = time.perf_counter()
    res = draw(
        loaded.model,
        n,
        sampler=sampler,
        steps=steps,
        eta=fid_cfg.eta,
        seed=seed,
        batch_size=fid_cfg.batch_size,
    )
    t_sample = time.perf_counter() - t0
    score = fid_of_samples(res.images, loaded.cfg, loaded.device)
    result = {
        "epoch": loaded.epoch,
        "fid": score,
        "n_samples": n,
        "sampler": sampler,
        "steps": steps if sampler == "ddim" else loaded.cfg.degradation.n_T,
        "extractor": fid_cfg.extractor,
        "sampling_seconds": t_sample,
        "device": str(loaded.device),
    }
    write_json(loaded.run.path / "evaluation.json", result)
    return result


def summary(run_dir: str | Path) -> str:
    """One JSON line with the last value of every metric of a run."""
    last: dict[str, float] = {}
    for e in RunDir(run_dir).read_metrics():
        last[f"{e['split']}/{e['name']}"] = e["value"]
    return json.dumps(last)


def device_of(cfg: Any) -> torch.device:
    return resolve_device(cfg.training.device)
