"""Diffusion on MNIST: the DDPM and cold-diffusion tasks.

Both train a method (network + degradation) on MNIST digits, evaluate it every few
epochs (sample grids, FID), draw final samples and trajectories after training, and are
scored by ``coldflow evaluate`` with FID (DDPM) or the paper's Table 1 (cold diffusion).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from coldflow.config import RunConfig
from coldflow.data import from_range, mnist_dataset
from coldflow.degradations import build_degradation
from coldflow.methods import SampleResult, build_method, fit_prior
from coldflow.nets import build_net
from coldflow.runs import RunDir
from coldflow.tasks.base import Comparison, LoadedRun, Prepared, Task

__all__ = ["IMAGE_SHAPE", "ColdTask", "DDPMTask", "draw", "fid_of_samples"]

IMAGE_SHAPE = (1, 28, 28)  # MNIST (C, H, W)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def draw(
    model: nn.Module,
    n: int,
    *,
    seed: int = 0,
    batch_size: int = 1000,
    start: torch.Tensor | None = None,
    snapshots: Sequence[int] = (),
    progress: bool = False,
    **options: Any,
) -> SampleResult:
    """Sample ``n`` images in batches (the trajectory comes from the first batch).

    ``start`` (cold diffusion) gives the x_T of each sample; ``options`` go to
    ``model.sample`` (``sampler``, ``steps``, ``eta``, ``prior``). ``progress`` prints a
    line per batch with the rate and the time left.
    """
    if n < 1:
        raise ValueError(f"the number of samples must be at least 1, got {n}")
    gen = torch.Generator(device=_device(model)).manual_seed(seed)
    model.eval()
    images, first = [], None
    t0 = time.perf_counter()
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        extra = {} if start is None else {"start": start[i : i + m]}
        snaps = snapshots if i == 0 else ()
        res = model.sample(m, IMAGE_SHAPE, snapshots=snaps, generator=gen, **extra, **options)
        first = first or res
        images.append(res.images.cpu())
        if progress and n > m:
            done, spent = i + m, time.perf_counter() - t0
            left = spent / done * (n - done)
            print(f"  sampled {done}/{n} ({done / spent:.1f} images/s, {left:.0f} s left)")
    return SampleResult(torch.cat(images), first.trajectory, first.timesteps)


def fid_of_samples(images: torch.Tensor, cfg: RunConfig, device: torch.device) -> float:
    """FID of ``images`` against the MNIST test set with the configured feature extractor."""
    from coldflow.metrics.features import build_feature_extractor
    from coldflow.metrics.fid import fid_from_images, mnist_real_statistics

    extractor = build_feature_extractor(cfg.evaluation.fid.extractor).to(device)
    real = mnist_real_statistics(extractor, "test", n=10000, device=device)
    return fid_from_images(images, real, extractor, tuple(cfg.data.range), device=device)


def _with_trajectory(out: dict, res: SampleResult, suffix: str) -> dict[str, torch.Tensor]:
    if res.trajectory is not None:
        out[f"trajectory{suffix}"] = res.trajectory
        out[f"timesteps{suffix}"] = torch.tensor(res.timesteps, dtype=torch.long)
    return out


class EvalHook:
    """Every ``evaluation.interval`` epochs (and at the last): save samples, log metrics."""

    def __init__(self, cfg: RunConfig, task: DiffusionTask) -> None:
        self.cfg = cfg
        self.task = task

    def __call__(self, trainer: Any, epoch: int) -> None:
        if epoch % self.cfg.evaluation.interval and epoch != self.cfg.training.epochs:
            return
        t0 = time.perf_counter()
        metrics, grids = self.task.epoch(trainer.eval_model, self.cfg)
        trainer.run.save_samples(grids, epoch=epoch, meta={"epoch": epoch})
        for name, value in metrics.items():
            trainer.run.log(epoch, trainer.step, "eval", name, value)
        if metrics:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            fid = self.cfg.evaluation.fid
            note = f"FID on {fid.n_samples} samples, {fid.extractor} features; " * fid.enabled
            trainer.say(f"epoch {epoch}: {shown} ({note}{time.perf_counter() - t0:.0f} s)")
        trainer.eval_model.train()


class DiffusionTask(Task):
    """What DDPM and cold diffusion share: MNIST data, model building, reports."""

    config_model = RunConfig
    hash_exclude: ClassVar[dict[str, Any]] = {"sampling": True}

    def check(self, cfg: RunConfig) -> None:
        from coldflow import hub

        for part in ("images", "labels"):
            hub.resolve(f"mnist-train-{part}")

    def build(self, cfg: RunConfig, files: dict[str, Any]) -> nn.Module:
        degradation = build_degradation(cfg.degradation)
        net = build_net(cfg.model, in_channels=IMAGE_SHAPE[0], image_shape=IMAGE_SHAPE[1:])
        return build_method(
            cfg.method, net, degradation, black=cfg.data.range[0], image_shape=IMAGE_SHAPE
        )

    def prepare(self, cfg: RunConfig, stored: dict[str, Any]) -> Prepared:
        dataset = mnist_dataset("train", tuple(cfg.data.range), cfg.data.train_subset)
        model = self.build(cfg, {})
        self.fit_prior(model, cfg, dataset)
        return Prepared(model, dataset, hooks=[EvalHook(cfg, self)])

    def fit_prior(self, model: nn.Module, cfg: RunConfig, dataset: Any) -> None:
        """Before training: fit what sampling needs from the training data (cold: prior)."""

    def epoch(self, model: nn.Module, cfg: RunConfig) -> tuple[dict, dict]:
        """Metrics and sample grids of an evaluation epoch."""
        raise NotImplementedError

    def final(self, model: nn.Module, cfg: RunConfig) -> dict[str, torch.Tensor]:
        """The final grids (and trajectories) drawn with the configured sampler."""
        raise NotImplementedError

    def finish(self, loaded: LoadedRun) -> None:
        tensors = self.final(loaded.model, loaded.cfg)
        loaded.run.save_samples(tensors, meta={"sampler": loaded.cfg.sampling.sampler})

    def finished(self, run: RunDir) -> bool:
        return run.samples_path().is_file()

    def sample(
        self,
        loaded: LoadedRun,
        n: int,
        seed: int = 0,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
        prior: str | None = None,
    ) -> SampleResult:
        """``n`` samples with the config's sampler settings unless overridden."""
        options = {"sampler": sampler, "steps": steps, "eta": eta, "prior": prior}
        from coldflow.config import SAMPLERS
        from coldflow.errors import UserError

        s, kind = loaded.cfg.sampling, loaded.cfg.method.kind
        opts = {"sampler": s.sampler, "steps": s.steps, "eta": s.eta}
        opts |= {k: v for k, v in options.items() if v is not None}
        if opts["sampler"] not in SAMPLERS[kind]:
            allowed = " or ".join(SAMPLERS[kind])
            raise UserError(f"--sampler for {kind} runs must be {allowed}, not {opts['sampler']!r}")
        if kind == "ddpm" and opts.pop("prior", None) is not None:
            raise UserError("--prior applies to cold diffusion runs only")
        return draw(loaded.model, n, seed=seed, snapshots=s.snapshot_timesteps, **opts)

    def describe(self, cfg: RunConfig) -> str:
        return f"{cfg.method.kind} with {build_degradation(cfg.degradation).describe()}"

    def figures(self, run: RunDir, cfg: Any, notes: list[str]) -> list[Any]:
        from coldflow.report.diffusion import run_figures

        return run_figures(run, cfg, notes)

    def compare(self, runs: Sequence[Path], out: Path, labels: Sequence[str]) -> Comparison:
        from coldflow.report.diffusion import comparison_figures

        notes: list[str] = []
        figures = comparison_figures(runs, labels, out / "figures", notes)
        return Comparison(figures=figures, notes=notes)


class DDPMTask(DiffusionTask):
    """Denoising diffusion with a linear β schedule; scored by FID."""

    kinds = ("ddpm",)

    def epoch(self, model: nn.Module, cfg: RunConfig) -> tuple[dict, dict]:
        fid = cfg.evaluation.fid
        opts = {"sampler": fid.sampler, "steps": fid.steps, "eta": fid.eta}
        grid = draw(model, cfg.sampling.n_grid, seed=cfg.seed + 1, **opts)
        metrics = {}
        if fid.enabled:
            samples = draw(
                model, fid.n_samples, seed=cfg.seed + 2, batch_size=fid.batch_size, **opts
            )
            metrics["fid"] = fid_of_samples(samples.images, cfg, _device(model))
        return metrics, {"images": grid.images}

    def final(self, model: nn.Module, cfg: RunConfig) -> dict[str, torch.Tensor]:
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

    def evaluate(
        self,
        loaded: LoadedRun,
        n: int = 10000,
        seed: int = 0,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
    ) -> dict[str, Any]:
        """FID of ``n`` samples (the config's FID sampler settings unless overridden)."""
        cfg, fid = loaded.cfg, loaded.cfg.evaluation.fid
        opts = {"sampler": sampler or fid.sampler, "steps": steps or fid.steps}
        opts["eta"] = fid.eta if eta is None else eta
        res = draw(loaded.model, n, seed=seed, batch_size=fid.batch_size, progress=True, **opts)
        return {"fid": fid_of_samples(res.images, cfg, loaded.device), **opts, "n_samples": n}

    def summary(self, evaluation: dict[str, Any]) -> dict[str, float]:
        return {"FID": evaluation["fid"]} if "fid" in evaluation else {}


class ColdTask(DiffusionTask):
    """Cold diffusion with Gaussian blur; scored by the paper's Table 1 and FID."""

    kinds = ("cold",)

    def fit_prior(self, model: nn.Module, cfg: RunConfig, dataset: Any) -> None:
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

    @staticmethod
    def conditional_inputs(model: nn.Module, cfg: RunConfig, n: int) -> tuple[torch.Tensor, ...]:
        """Held-out test images and their degradation to t = n_T (seeded noise if hybrid)."""
        x = mnist_dataset("test", tuple(cfg.data.range), n).tensors[0]
        t = torch.full((len(x),), model.n_T, dtype=torch.long)
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(cfg.seed + 5))
        with torch.no_grad():
            x_T = model.degradation.degrade(x, t, noise=noise)
        return x, x_T

    @staticmethod
    def quality(images: torch.Tensor, originals: torch.Tensor, cfg: RunConfig, fid_device=None):
        """RMSE and SSIM against the originals on [0, 1] pixels; FID too given a device."""
        from coldflow.metrics.image import rmse, ssim

        rng = tuple(cfg.data.range)
        a, b = from_range(images.cpu(), rng), from_range(originals.cpu(), rng)
        out = {"rmse": rmse(a, b).mean().item(), "ssim": ssim(a, b).mean().item()}
        if fid_device is not None:
            out["fid"] = fid_of_samples(images, cfg, fid_device)
        return out

    def epoch(self, model: nn.Module, cfg: RunConfig) -> tuple[dict, dict]:
        fid, sampler = cfg.evaluation.fid, cfg.evaluation.fid.sampler
        grid = draw(model, cfg.sampling.n_grid, seed=cfg.seed + 1, sampler=sampler)
        x, x_T = self.conditional_inputs(model, cfg, cfg.method.conditional_images)
        cond = draw(model, len(x), start=x_T, sampler=sampler, batch_size=fid.batch_size)
        q = self.quality(cond.images, x, cfg)
        metrics = {"cond_rmse": q["rmse"], "cond_ssim": q["ssim"]}
        if fid.enabled:
            samples = draw(
                model, fid.n_samples, seed=cfg.seed + 2, batch_size=fid.batch_size, sampler=sampler
            )
            metrics["fid"] = fid_of_samples(samples.images, cfg, _device(model))
        n = cfg.sampling.n_grid
        return metrics, {"images": grid.images, "images_conditional": cond.images[:n]}

    def final(self, model: nn.Module, cfg: RunConfig) -> dict[str, torch.Tensor]:
        s, n = cfg.sampling, cfg.sampling.n_grid
        snaps = s.snapshot_timesteps
        uncond = draw(model, n, seed=cfg.seed + 3, sampler=s.sampler, snapshots=snaps)
        black = draw(model, n, seed=cfg.seed + 3, sampler=s.sampler, prior="black")
        x, x_T = self.conditional_inputs(model, cfg, n)
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

    def evaluate(
        self,
        loaded: LoadedRun,
        n: int = 10000,
        seed: int = 0,
        sampler: str | None = None,
        prior: str | None = None,
    ) -> dict[str, Any]:
        """The paper's Table 1 on held-out test images, plus unconditional FIDs."""
        model, cfg, dev = loaded.model, loaded.cfg, loaded.device
        sampler = sampler or cfg.evaluation.fid.sampler
        bs = cfg.evaluation.fid.batch_size
        x, x_T = self.conditional_inputs(model, cfg, min(n, 10000))
        t = torch.full((len(x_T),), model.n_T, dtype=torch.long, device=dev)
        with torch.no_grad():
            direct = torch.cat([model.restore(c.to(dev), t[: len(c)]).cpu() for c in x_T.split(bs)])
        print(f"conditional restoration of {len(x)} test images ({sampler})", flush=True)
        sampled = draw(model, len(x), start=x_T, sampler=sampler, batch_size=bs, progress=True)
        table = {
            "degraded": self.quality(x_T, x, cfg, dev),
            "direct": self.quality(direct, x, cfg, dev),
            sampler: self.quality(sampled.images, x, cfg, dev),
        }
        uncond = {}
        for start in (prior,) if prior else ("gmm", "black"):
            print(f"unconditional samples from the {start} start", flush=True)
            images = draw(
                model, n, seed=seed, batch_size=bs, sampler=sampler, prior=start, progress=True
            ).images
            uncond[start] = fid_of_samples(images, cfg, dev)
        return {
            "conditional": table,
            "unconditional_fid": uncond,
            "sampler": sampler,
            "n_samples": n,
        }

    def summary(self, evaluation: dict[str, Any]) -> dict[str, float]:
        out = {f"FID ({k} start)": v for k, v in evaluation.get("unconditional_fid", {}).items()}
        for row, values in evaluation.get("conditional", {}).items():
            out[f"{row} RMSE"] = values["rmse"]
        return out
