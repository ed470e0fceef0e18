"""Diffusion on MNIST: what the DDPM and cold-diffusion tasks share, and the DDPM task.

Both train a method (network + degradation) on MNIST digits, evaluate it every few
epochs (sample grids, FID), draw final samples and trajectories after training, and are
scored by ``coldflow evaluate`` with FID (DDPM) or the paper's Table 1 (cold diffusion,
:mod:`coldflow.tasks.diffusion.cold`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from coldflow.data import mnist_dataset
from coldflow.degradations import build_degradation
from coldflow.methods import SampleResult, build_method
from coldflow.nets import build_net
from coldflow.runs import RunDir, save_tensors
from coldflow.tasks.base import Comparison, LoadedRun, Prepared, Task
from coldflow.tasks.diffusion.config import DiffusionRunConfig
from coldflow.tasks.diffusion.findings import (
    BASELINE_HEADER,
    alpha_bar_T,
    baseline_cells,
    baseline_findings,
    ddpm_findings,
    read_config,
    read_evaluation,
)

__all__ = [
    "IMAGE_SHAPE",
    "check_fid_count",
    "device_of",
    "with_trajectory",
    "TABLE1_ROWS",
    "DDPMTask",
    "DiffusionTask",
    "draw",
    "fid_of_samples",
    "real_baselines",
    "save_nearest",
]

IMAGE_SHAPE = (1, 28, 28)  # MNIST (C, H, W)

TABLE1_ROWS = {
    "degraded": "degraded x_T",
    "lookup": "nearest training digit (lookup)",
    "direct": "one-shot R(x_T, T)",
    "naive": "naive sampler (Alg. 1)",
    "improved": "improved sampler (Alg. 2)",
}
"""Rows of the cold-diffusion Table 1 (``evaluation.json`` keys -> labels)."""


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# images per sampling call when none is configured: on a CPU a batch whose activations fit
# the cache is much faster per image (2 cores, 28 x 28: batch 64 against 500 is 1.8x for
# the seed CNN and the blur model's U-Net, 3x for the demo U-Net); a GPU wants large ones
CPU_SAMPLE_BATCH = 64
GPU_SAMPLE_BATCH = 500


def sample_batch_size(batch_size: int | None, device: torch.device) -> int:
    """``batch_size``, or the default for ``device`` when it is ``None``."""
    if batch_size is not None:
        return batch_size
    return CPU_SAMPLE_BATCH if device.type == "cpu" else GPU_SAMPLE_BATCH


def draw(
    model: nn.Module,
    n: int,
    *,
    seed: int = 0,
    batch_size: int | None = None,
    start: torch.Tensor | None = None,
    snapshots: Sequence[int] = (),
    progress: bool = False,
    **options: Any,
) -> SampleResult:
    """Sample ``n`` images in batches (the trajectory comes from the first batch).

    ``start`` (cold diffusion) gives the x_T of each sample; ``options`` go to
    ``model.sample`` (``sampler``, ``steps``, ``eta``, ``prior``). ``progress`` prints a
    line per batch with the rate and the time left. ``batch_size`` ``None`` takes the
    device's default (:func:`sample_batch_size`); the samples depend on it (each batch
    draws its noise in turn from the seeded generator).
    """
    if n < 1:
        raise ValueError(f"the number of samples must be at least 1, got {n}")
    device = device_of(model)
    batch_size = sample_batch_size(batch_size, device)
    gen = torch.Generator(device=device).manual_seed(seed)
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


@functools.lru_cache(maxsize=2)
def feature_extractor(name: str, device: torch.device) -> nn.Module:
    """The FID feature network ``name`` on ``device``, built (weights read and verified)
    once per process: an evaluation scores several image sets with it."""
    from coldflow.metrics.features import build_feature_extractor

    return build_feature_extractor(name).to(device)


def fid_of_samples(
    images: torch.Tensor, cfg: DiffusionRunConfig, device: torch.device, progress: bool = False
) -> float:
    """FID of ``images`` against the MNIST test set with the configured feature extractor.

    ``progress`` prints a line before the feature extraction and one with its duration.
    """
    from coldflow.metrics.fid import fid_from_images, mnist_real_statistics

    name = cfg.evaluation.fid.extractor
    t0 = time.perf_counter()
    if progress:
        print(f"  FID: {name} features of {len(images)} samples and the test set", flush=True)
    extractor = feature_extractor(name, device)
    real = mnist_real_statistics(extractor, "test", n=10000, device=device)
    fid = fid_from_images(images, real, extractor, tuple(cfg.data.range), device=device)
    if progress:
        print(f"  FID {fid:.4g} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return fid


def check_fid_count(n: int) -> None:
    """Refuse an evaluation of fewer than two samples: an FID needs their covariance."""
    from coldflow.errors import UserError

    if n < 2:
        raise UserError(
            f"--n must be at least 2 for an FID (it needs the covariance of the samples' "
            f"features), got {n}"
        )


def real_baselines(
    images: torch.Tensor, cfg: DiffusionRunConfig, device: torch.device, progress: bool = False
) -> tuple[dict[str, Any], torch.Tensor]:
    """What real digits score beside ``images``: the FID floor at this sample count and
    the nearest-training-digit check (:mod:`coldflow.metrics.baselines`).

    Returns the ``evaluation.json`` entries (``fid_real_train``, ``nearest_train``) and the
    nearest training digit of every image.
    """
    from coldflow.metrics.baselines import memorisation, real_fid_floor

    t0 = time.perf_counter()
    extractor = feature_extractor(cfg.evaluation.fid.extractor, device)
    floor = real_fid_floor(extractor, len(images), device)
    near, neighbours = memorisation(images, tuple(cfg.data.range), cfg.data.train_subset)
    if progress:
        print(
            f"  {len(images)} real training digits: FID {floor:.4g}; nearest training digit "
            f"(RMS on [0, 1]): samples {near['median_sample_to_train']:.3f}, held-out test "
            f"digits {near['median_test_to_train']:.3f} (median; "
            f"{time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    return {"fid_real_train": floor, "nearest_train": near}, neighbours


def save_nearest(run: RunDir, images: torch.Tensor, neighbours: torch.Tensor) -> None:
    """Keep 16 samples and their nearest training digits for the run's report."""
    from coldflow.metrics.baselines import NEAREST_FILE

    if run.write:
        save_tensors(
            run.samples_dir / NEAREST_FILE, {"samples": images[:16], "neighbours": neighbours[:16]}
        )


def with_trajectory(out: dict, res: SampleResult, suffix: str) -> dict[str, torch.Tensor]:
    if res.trajectory is not None:
        out[f"trajectory{suffix}"] = res.trajectory
        out[f"timesteps{suffix}"] = torch.tensor(res.timesteps, dtype=torch.long)
    return out


class EvalHook:
    """Every ``evaluation.interval`` epochs (and at the last): save samples, log metrics."""

    def __init__(self, cfg: DiffusionRunConfig, task: DiffusionTask) -> None:
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

    config_model = DiffusionRunConfig
    hash_exclude: ClassVar[dict[str, Any]] = {"sampling": True}
    draws_samples = True

    def check(self, cfg: DiffusionRunConfig) -> None:
        from coldflow import hub

        for part in ("images", "labels"):
            hub.resolve(f"mnist-train-{part}")

    def build(self, cfg: DiffusionRunConfig, files: dict[str, Any]) -> nn.Module:
        degradation = build_degradation(cfg.degradation)
        net = build_net(cfg.model, in_channels=IMAGE_SHAPE[0], image_shape=IMAGE_SHAPE[1:])
        return build_method(
            cfg.method, net, degradation, black=cfg.data.range[0], image_shape=IMAGE_SHAPE
        )

    def prepare(self, cfg: DiffusionRunConfig, stored: dict[str, Any]) -> Prepared:
        dataset = mnist_dataset("train", tuple(cfg.data.range), cfg.data.train_subset)
        model = self.build(cfg, {})
        self.fit_prior(model, cfg, dataset)
        return Prepared(model, dataset, hooks=[EvalHook(cfg, self)])

    def fit_prior(self, model: nn.Module, cfg: DiffusionRunConfig, dataset: Any) -> None:
        """Before training: fit what sampling needs from the training data (cold: prior)."""

    def epoch(self, model: nn.Module, cfg: DiffusionRunConfig) -> tuple[dict, dict]:
        """Metrics and sample grids of an evaluation epoch."""
        raise NotImplementedError

    def final(self, model: nn.Module, cfg: DiffusionRunConfig) -> dict[str, torch.Tensor]:
        """The final grids (and trajectories) drawn with the configured sampler."""
        raise NotImplementedError

    def finish(self, loaded: LoadedRun) -> None:
        tensors = self.final(loaded.model, loaded.cfg)
        s, method = loaded.cfg.sampling, loaded.cfg.method
        meta = {"sampler": s.sampler, "result": method.result}
        if s.sampler == "ddim":
            meta |= {"steps": s.steps or 50, "eta": s.eta}
        if method.kind == "cold":
            meta["prior"] = method.prior
        loaded.run.save_samples(tensors, meta=meta)

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
        from coldflow.errors import UserError
        from coldflow.tasks.diffusion.config import SAMPLERS

        s, kind = loaded.cfg.sampling, loaded.cfg.method.kind
        opts = {"sampler": s.sampler, "steps": s.steps, "eta": s.eta}
        opts |= {k: v for k, v in options.items() if v is not None}
        if opts["sampler"] not in SAMPLERS[kind]:
            allowed = " or ".join(SAMPLERS[kind])
            raise UserError(f"--sampler for {kind} runs must be {allowed}, not {opts['sampler']!r}")
        if kind == "ddpm" and opts.pop("prior", None) is not None:
            raise UserError("--prior applies to cold diffusion runs only")
        if opts.get("prior") not in (None, "gmm", "black"):
            raise UserError(f"--prior must be gmm or black, not {opts['prior']!r}")
        return draw(loaded.model, n, seed=seed, snapshots=s.snapshot_timesteps, **opts)

    def describe(self, cfg: DiffusionRunConfig) -> str:
        t, model = cfg.training, cfg.model.kind
        digits = cfg.data.train_subset or 60000
        return (
            f"{cfg.method.kind} with {build_degradation(cfg.degradation).describe()}; "
            f"{model} net, {t.epochs} epochs on {digits} training digits, batch {t.batch_size}, "
            f"lr {t.optimizer.lr:g}" + (f", EMA {t.ema:g}" if t.ema else "")
        )

    def sample_title(self, cfg: DiffusionRunConfig, **options: Any) -> str:
        """``name: sampler`` (DDIM: with its steps and eta), e.g. for a grid of samples."""
        used = options.get("sampler") or cfg.sampling.sampler
        title = f"{cfg.name}: {used}"
        if used == "ddim":
            steps = options.get("steps") or cfg.sampling.steps or 50
            eta = cfg.sampling.eta if options.get("eta") is None else options["eta"]
            title += f", {steps} steps, eta {eta}"
        return title

    def draw_configs(self, labelled: list[tuple[str, Any]], out: Path) -> Path:
        """The schedules of several diffusion configs on one figure, ``out/schedules.png``."""
        from coldflow.tasks.diffusion.figures import plot_schedules

        return plot_schedules(labelled, out / "schedules.png")

    def figures(self, run: RunDir, cfg: Any, notes: list[str]) -> list[Any]:
        from coldflow.tasks.diffusion.figures import run_figures

        return run_figures(run, cfg, notes)

    loss_name: ClassVar[str] = ""

    def compare(self, runs: Sequence[Path], out: Path, labels: Sequence[str]) -> Comparison:
        from coldflow.tasks.diffusion.figures import comparison_figures

        notes = [
            f"Training loss on this page: {self.loss_name}. Runs of the other diffusion "
            "task have their own page, so the two losses never share an axis."
        ]
        figures = comparison_figures(runs, labels, out / "figures", notes)
        return Comparison(tables=self.tables(runs, labels), figures=figures, notes=notes)

    def tables(self, runs: Sequence[Path], labels: Sequence[str]) -> list[tuple[str, str]]:
        """Markdown tables of the runs' ``evaluation.json`` files."""
        return []


class DDPMTask(DiffusionTask):
    """Denoising diffusion with a linear β schedule; scored by FID."""

    kinds = ("ddpm",)

    loss_name: ClassVar[str] = "noise-prediction MSE ||eps - eps_hat||^2 (DDPM)"

    def tables(self, runs: Sequence[Path], labels: Sequence[str]) -> list[tuple[str, str]]:
        from coldflow.report.html import markdown_table

        rows = []
        for run, label in zip(runs, labels, strict=True):
            ev = read_evaluation(run)
            if ev is None or "fid" not in ev:
                continue
            cfg = read_config(run)
            eta = f", eta {ev['eta']:g}" if ev.get("sampler") == "ddim" else ""
            steps = f", {ev['steps']} steps" if ev.get("sampler") == "ddim" else ""
            rows.append(
                [
                    label,
                    f"{alpha_bar_T(cfg):.3g}" if cfg else "",
                    f"{ev['fid']:.4g}",
                    f"{ev.get('n_samples', '')}",
                    f"{ev.get('sampler', '')}{steps}{eta}",
                    ev.get("extractor", ""),
                    *baseline_cells(ev),
                ]
            )
        if not rows:
            return []
        header = ["run", "alpha_bar_T", "FID", "samples", "sampler", "features", *BASELINE_HEADER]
        return [("Unconditional FID (coldflow evaluate)", markdown_table(header, rows))]

    def findings(self, runs: Sequence[Path], labels: Sequence[str]) -> list[str]:
        return ddpm_findings(runs, labels) + baseline_findings(runs, labels)

    def epoch(self, model: nn.Module, cfg: DiffusionRunConfig) -> tuple[dict, dict]:
        fid = cfg.evaluation.fid
        opts = {"sampler": fid.sampler, "steps": fid.steps, "eta": fid.eta}
        grid = draw(model, cfg.sampling.n_grid, seed=cfg.seed + 1, **opts)
        metrics = {}
        if fid.enabled:
            samples = draw(
                model, fid.n_samples, seed=cfg.seed + 2, batch_size=fid.batch_size, **opts
            )
            metrics["fid"] = fid_of_samples(samples.images, cfg, device_of(model))
        return metrics, {"images": grid.images}

    def final(self, model: nn.Module, cfg: DiffusionRunConfig) -> dict[str, torch.Tensor]:
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
        return with_trajectory({"images": res.images}, res, "")

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
        check_fid_count(n)
        cfg, fid = loaded.cfg, loaded.cfg.evaluation.fid
        opts = {"sampler": sampler or fid.sampler, "steps": steps or fid.steps}
        opts["eta"] = fid.eta if eta is None else eta
        print(f"{n} unconditional samples ({opts['sampler']})", flush=True)
        res = draw(loaded.model, n, seed=seed, batch_size=fid.batch_size, progress=True, **opts)
        fid_value = fid_of_samples(res.images, cfg, loaded.device, progress=True)
        baselines, neighbours = real_baselines(res.images, cfg, loaded.device, progress=True)
        save_nearest(loaded.run, res.images, neighbours)
        out = {"fid": fid_value, **opts, "n_samples": n, "extractor": fid.extractor}
        return out | baselines

    def summary(self, evaluation: dict[str, Any]) -> dict[str, float]:
        out = {"FID": evaluation["fid"]} if "fid" in evaluation else {}
        if "fid_real_train" in evaluation:  # what real digits score at the same count
            out["FID, real digits"] = evaluation["fid_real_train"]
        return out
