"""Training, sampling and evaluation of diffusion runs, from a config to a run directory.

This is the glue the CLI calls: it builds the degradation, network and method that a
:class:`~coldflow.config.RunConfig` names, trains them with the one
:class:`~coldflow.trainer.Trainer`, and evaluates samples with FID.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coldflow.config import RunConfig, dump_yaml, load_config
from coldflow.data import mnist_dataset
from coldflow.degradations import build_degradation
from coldflow.io import write_json
from coldflow.methods import SampleResult, build_method, fit_prior
from coldflow.nets import build_net
from coldflow.runs import RunDir
from coldflow.trainer import Trainer, resolve_device, seed_everything, trajectory_hash

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
    return build_method(
        cfg.method, net, degradation, black=cfg.data.range[0], image_shape=IMAGE_SHAPE
    )


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def draw(
    model: nn.Module,
    n: int,
    *,
    seed: int = 0,
    batch_size: int = 1000,
    start: torch.Tensor | None = None,
    snapshots: list[int] | tuple[int, ...] = (),
    **options: Any,
) -> SampleResult:
    """Sample ``n`` images in batches (the trajectory comes from the first batch).

    ``start`` (cold diffusion) gives the x_T of each sample; ``options`` go to
    ``model.sample`` (``sampler``, ``steps``, ``eta``, ``prior``).
    """
    gen = _generator(_device(model), seed)
    model.eval()
    images, first = [], None
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        extra = {} if start is None else {"start": start[i : i + m]}
        res = model.sample(
            m,
            IMAGE_SHAPE,
            snapshots=snapshots if i == 0 else (),
            generator=gen,
            **extra,
            **options,
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


# ----------------------------------------------------------------- DDPM evaluation


def _ddpm_epoch(model: nn.Module, cfg: RunConfig) -> tuple[dict, dict]:
    fid = cfg.evaluation.fid
    opts = {"sampler": fid.sampler, "steps": fid.steps, "eta": fid.eta}
    grid = draw(model, cfg.sampling.n_grid, seed=cfg.seed + 1, **opts)
    metrics = {}
    if fid.enabled:
        samples = draw(model, fid.n_samples, seed=cfg.seed + 2, batch_size=fid.batch_size, **opts)
        metrics["fid"] = fid_of_samples(samples.images, cfg, _device(model))
    return metrics, {"images": grid.images}


def _ddpm_final(model: nn.Module, cfg: RunConfig) -> dict[str, torch.Tensor]:
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
    return _with_trajectory({"images": res.images}, res, "")


def _ddpm_evaluate(model: nn.Module, cfg: RunConfig, n: int, seed: int, **opts: Any) -> dict:
    fid = cfg.evaluation.fid
    opts = {"sampler": fid.sampler, "steps": fid.steps, "eta": fid.eta} | {
        k: v for k, v in opts.items() if v is not None
    }
    res = draw(model, n, seed=seed, batch_size=fid.batch_size, **opts)
    return {"fid": fid_of_samples(res.images, cfg, _device(model)), **opts}


# ----------------------------------------------------------------- cold evaluation


def _fit_cold_prior(model: nn.Module, cfg: RunConfig, dataset: Any) -> None:
    """Fit the unconditional start distribution to fully degraded training images."""
    if cfg.method.prior != "gmm":
        return
    x = dataset.tensors[0][: cfg.method.prior_fit_images]
    t = torch.full((len(x),), model.n_T, dtype=torch.long)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(cfg.seed + 4))
    with torch.no_grad():
        degraded = model.degradation.degrade(x, t, noise=noise)
    params = fit_prior(degraded, cfg.method.prior_dims, cfg.method.prior_components, cfg.seed)
    model.set_prior(params)


def _conditional_inputs(model: nn.Module, cfg: RunConfig, n: int) -> tuple[torch.Tensor, ...]:
    """Held-out test images and their degradation to t = n_T (seeded noise if hybrid)."""
    x = mnist_dataset("test", tuple(cfg.data.range), n).tensors[0]
    t = torch.full((len(x),), model.n_T, dtype=torch.long)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(cfg.seed + 5))
    with torch.no_grad():
        x_T = model.degradation.degrade(x, t, noise=noise)
    return x, x_T


def _quality(
    images: torch.Tensor, originals: torch.Tensor, cfg: RunConfig, fid_device: Any = None
) -> dict:
    """RMSE and SSIM against the originals on [0, 1] pixels; FID too given a device."""
    from coldflow.data import from_range
    from coldflow.metrics.image import rmse, ssim

    rng = tuple(cfg.data.range)
    a, b = from_range(images.cpu(), rng), from_range(originals.cpu(), rng)
    out = {"rmse": rmse(a, b).mean().item(), "ssim": ssim(a, b).mean().item()}
    if fid_device is not None:
        out["fid"] = fid_of_samples(images, cfg, fid_device)
    return out


def _cold_epoch(model: nn.Module, cfg: RunConfig) -> tuple[dict, dict]:
    fid, sampler = cfg.evaluation.fid, cfg.evaluation.fid.sampler
    grid = draw(model, cfg.sampling.n_grid, seed=cfg.seed + 1, sampler=sampler)
    x, x_T = _conditional_inputs(model, cfg, cfg.method.conditional_images)
    cond = draw(model, len(x), start=x_T, sampler=sampler, batch_size=fid.batch_size)
    q = _quality(cond.images, x, cfg)
    metrics = {"cond_rmse": q["rmse"], "cond_ssim": q["ssim"]}
    if fid.enabled:
        samples = draw(
            model, fid.n_samples, seed=cfg.seed + 2, batch_size=fid.batch_size, sampler=sampler
        )
        metrics["fid"] = fid_of_samples(samples.images, cfg, _device(model))
    n = cfg.sampling.n_grid
    return metrics, {"images": grid.images, "images_conditional": cond.images[:n]}


def _cold_final(model: nn.Module, cfg: RunConfig) -> dict[str, torch.Tensor]:
    s, n = cfg.sampling, cfg.sampling.n_grid
    snaps = s.snapshot_timesteps
    uncond = draw(model, n, seed=cfg.seed + 3, sampler=s.sampler, snapshots=snaps)
    black = draw(model, n, seed=cfg.seed + 3, sampler=s.sampler, prior="black")
    x, x_T = _conditional_inputs(model, cfg, n)
    cond = draw(model, n, start=x_T, sampler=s.sampler, snapshots=snaps)
    out = {
        "images": uncond.images,
        "images_black_start": black.images,
        "images_conditional": cond.images,
        "images_conditional_input": x_T,
        "images_conditional_original": x,
    }
    out = _with_trajectory(out, uncond, "")
    return _with_trajectory(out, cond, "_conditional")


def _cold_evaluate(model: nn.Module, cfg: RunConfig, n: int, seed: int, **opts: Any) -> dict:
    """The paper's Table 1 on held-out test images, plus unconditional FIDs."""
    sampler = opts.get("sampler") or cfg.evaluation.fid.sampler
    bs = cfg.evaluation.fid.batch_size
    x, x_T = _conditional_inputs(model, cfg, min(n, 10000))
    t = torch.full((len(x_T),), model.n_T, dtype=torch.long, device=_device(model))
    with torch.no_grad():
        direct = torch.cat(
            [model.restore(c.to(t.device), t[: len(c)]).cpu() for c in x_T.split(bs)]
        )
    sampled = draw(model, len(x), start=x_T, sampler=sampler, batch_size=bs).images
    dev = _device(model)
    table = {
        "degraded": _quality(x_T, x, cfg, dev),
        "direct": _quality(direct, x, cfg, dev),
        sampler: _quality(sampled, x, cfg, dev),
    }
    uncond = {
        prior: fid_of_samples(
            draw(model, n, seed=seed, batch_size=bs, sampler=sampler, prior=prior).images,
            cfg,
            _device(model),
        )
        for prior in ("gmm", "black")
    }
    return {"conditional": table, "unconditional_fid": uncond, "sampler": sampler}


def _with_trajectory(out: dict, res: SampleResult, suffix: str) -> dict[str, torch.Tensor]:
    if res.trajectory is not None:
        out[f"trajectory{suffix}"] = res.trajectory
        out[f"timesteps{suffix}"] = torch.tensor(res.timesteps, dtype=torch.long)
    return out


@dataclass(frozen=True)
class MethodEvaluation:
    """What evaluation means for one method."""

    prepare: Callable[[nn.Module, RunConfig, Any], None]  # before training (e.g. priors)
    epoch: Callable[[nn.Module, RunConfig], tuple[dict, dict]]  # metrics, sample grids
    final: Callable[[nn.Module, RunConfig], dict[str, torch.Tensor]]  # samples/final
    evaluate: Callable[..., dict]  # `coldflow evaluate`


# method.kind -> its evaluation
EVALUATIONS: dict[str, MethodEvaluation] = {
    "ddpm": MethodEvaluation(lambda *_: None, _ddpm_epoch, _ddpm_final, _ddpm_evaluate),
    "cold": MethodEvaluation(_fit_cold_prior, _cold_epoch, _cold_final, _cold_evaluate),
}


class EvalHook:
    """Every ``evaluation.interval`` epochs (and at the last): save samples, log metrics."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.evaluation = EVALUATIONS[cfg.method.kind]

    def __call__(self, trainer: Trainer, epoch: int) -> None:
        if epoch % self.cfg.evaluation.interval and epoch != self.cfg.training.epochs:
            return
        t0 = time.perf_counter()
        metrics, grids = self.evaluation.epoch(trainer.eval_model, self.cfg)
        trainer.run.save_samples(grids, epoch=epoch, meta={"epoch": epoch})
        for name, value in metrics.items():
            trainer.run.log(epoch, trainer.step, "eval", name, value)
        if metrics:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            fid = self.cfg.evaluation.fid
            note = (
                f"FID on {fid.n_samples} samples, {fid.extractor} features; " if fid.enabled else ""
            )
            trainer.say(f"epoch {epoch}: {shown} ({note}{time.perf_counter() - t0:.0f} s)")
        trainer.eval_model.train()


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
    run.check_can_train(resume)
    dataset = mnist_dataset("train", tuple(cfg.data.range), cfg.data.train_subset)
    seed_everything(cfg.seed)  # the initial weights depend on the seed alone
    model = build_model(cfg)
    EVALUATIONS[cfg.method.kind].prepare(model, cfg, dataset)
    trainer = Trainer(
        model,
        dataset,
        cfg.training,
        run,
        cfg.seed,
        hooks=[EvalHook(cfg)],
        config_text=dump_yaml(cfg),
        config_hash=trajectory_hash(cfg, {"sampling": True}),
    )
    try:
        trainer.fit(resume=resume)
        if final_samples and trainer.rank == 0:
            write_final_samples(trainer.eval_model, cfg, run)
    finally:
        trainer.close()
    return run


def write_final_samples(model: nn.Module, cfg: RunConfig, run: RunDir) -> None:
    """Draw the final grids (and trajectories) with the configured sampler."""
    tensors = EVALUATIONS[cfg.method.kind].final(model, cfg)
    run.save_samples(tensors, meta={"sampler": cfg.sampling.sampler})


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
    sampler: str | None = None,
    steps: int | None = None,
    eta: float = 0.0,
    seed: int = 0,
    device: str = "auto",
) -> tuple[SampleResult, LoadedRun]:
    """Draw ``n`` samples from a trained run (``sampler`` defaults to the config's)."""
    loaded = load_run(run_dir, device)
    cfg = loaded.cfg
    res = draw(
        loaded.model,
        n,
        sampler=sampler or cfg.sampling.sampler,
        steps=steps,
        eta=eta,
        snapshots=cfg.sampling.snapshot_timesteps,
        seed=seed,
    )
    return res, loaded


def evaluate(
    run_dir: str | Path,
    n: int = 10000,
    sampler: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    device: str = "auto",
) -> dict[str, Any]:
    """Score a trained run on ``n`` samples (FID; Table 1 for cold diffusion).

    Writes ``evaluation.json`` into the run directory and returns its content.
    """
    loaded = load_run(run_dir, device)
    t0 = time.perf_counter()
    result = EVALUATIONS[loaded.cfg.method.kind].evaluate(
        loaded.model, loaded.cfg, n, seed, sampler=sampler, steps=steps
    )
    result |= {
        "epoch": loaded.epoch,
        "n_samples": n,
        "extractor": loaded.cfg.evaluation.fid.extractor,
        "seconds": time.perf_counter() - t0,
        "device": str(loaded.device),
    }
    write_json(loaded.run.path / "evaluation.json", result)
    return result
