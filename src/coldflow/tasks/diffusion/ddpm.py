"""Diffusion on MNIST: what the DDPM and cold-diffusion tasks share, and the DDPM task.

Both train a method (network + degradation) on MNIST digits, evaluate it every few
epochs (sample grids, FID), draw final samples and trajectories after training, and are
scored by ``coldflow evaluate`` with FID (DDPM) or the paper's Table 1 (cold diffusion,
:mod:`coldflow.tasks.diffusion.cold`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from coldflow.data import mnist_dataset
from coldflow.degradations import build_degradation
from coldflow.errors import UserError
from coldflow.methods import DDPM, SampleResult
from coldflow.nets import build_net
from coldflow.runs import RunDir
from coldflow.tasks.base import Comparison, LoadedRun, Prepared, Task
from coldflow.tasks.diffusion.config import SAMPLERS, DiffusionRunConfig
from coldflow.tasks.diffusion.findings import (
    BASELINE_HEADER,
    alpha_bar_T,
    baseline_cells,
    baseline_findings,
    blur_vs_ddpm_findings,
    configurations,
    ddpm_findings,
    read_config,
    read_evaluation,
)
from coldflow.tasks.diffusion.sampling import IMAGE_SHAPE, device_of, draw, with_trajectory
from coldflow.tasks.diffusion.scoring import (
    SPLITS_READ,
    check_fid_count,
    fid_of_samples,
    real_baselines,
    sample_scores,
    save_nearest,
)

__all__ = ["DDPMTask", "DiffusionTask"]


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
        return self.make_method(cfg, net, degradation)

    def make_method(self, cfg: DiffusionRunConfig, net: nn.Module, degradation: Any) -> nn.Module:
        """The method module (network + degradation) that ``cfg.method`` describes."""
        raise NotImplementedError

    def samples_meta(self, cfg: DiffusionRunConfig) -> dict[str, Any]:
        """What the final samples were drawn with (stored beside them)."""
        s = cfg.sampling
        meta = {"sampler": s.sampler, "result": cfg.method.result}
        if s.sampler == "ddim":
            meta |= {"steps": s.ddim_steps, "eta": s.eta}
        return meta

    def check_sample_options(self, cfg: DiffusionRunConfig, opts: dict[str, Any]) -> None:
        """Refuse sampler options that do not apply to this task's runs (may drop some).

        Raises
        ------
        UserError
            For a sampler of another method.
        """
        kind = cfg.method.kind
        if opts["sampler"] not in SAMPLERS[kind]:
            allowed = " or ".join(SAMPLERS[kind])
            raise UserError(f"--sampler for {kind} runs must be {allowed}, not {opts['sampler']!r}")

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
        loaded.run.save_samples(tensors, meta=self.samples_meta(loaded.cfg))

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
        s = loaded.cfg.sampling
        opts = {"sampler": s.sampler, "steps": s.steps, "eta": s.eta}
        opts |= {k: v for k, v in options.items() if v is not None}
        self.check_sample_options(loaded.cfg, opts)
        return draw(loaded.model, n, seed=seed, snapshots=s.snapshot_timesteps, **opts)

    def describe(self, cfg: DiffusionRunConfig) -> str:
        t, model = cfg.training, cfg.model.kind
        digits = cfg.data.train_subset or 50000
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
            steps = options.get("steps") or cfg.sampling.ddim_steps
            eta = cfg.sampling.eta if options.get("eta") is None else options["eta"]
            title += f", {steps} steps, eta {eta}"
        return title

    def draw_configs(self, labelled: list[tuple[str, Any]], out: Path) -> Path:
        """The schedules of several diffusion configs on one figure, ``out/schedules.png``."""
        from coldflow.tasks.diffusion.schedule_figures import plot_schedules

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

    def key_figures(self, runs: Sequence[Path], out: Path) -> list[Any]:
        """The final sample grids of every run side by side (as :meth:`compare` drew
        them): from the configured start, from the black start, conditional restorations."""
        from coldflow.report.html import Figure

        figs = out / "figures"
        return [
            Figure(figs / "samples.png", "Final samples of every run"),
            Figure(figs / "samples_black_start.png", "Final samples from the black start"),
            Figure(figs / "samples_conditional.png", "Restorations of held-out validation digits"),
        ]

    def tables(self, runs: Sequence[Path], labels: Sequence[str]) -> list[tuple[str, str]]:
        """Markdown tables of the runs' ``evaluation.json`` files."""
        return []


class DDPMTask(DiffusionTask):
    """Denoising diffusion with a linear β schedule; scored by FID."""

    kinds = ("ddpm",)

    loss_name: ClassVar[str] = "noise-prediction MSE ||eps - eps_hat||^2 (DDPM)"

    def make_method(self, cfg: DiffusionRunConfig, net: nn.Module, degradation: Any) -> DDPM:
        return DDPM(net, degradation, result=cfg.method.result)

    def check_sample_options(self, cfg: DiffusionRunConfig, opts: dict[str, Any]) -> None:
        super().check_sample_options(cfg, opts)
        if opts.pop("prior", None) is not None:
            raise UserError("--prior applies to cold diffusion runs only")

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

    def study_findings(self, groups: dict[str, list[Path]]) -> list[str]:
        """Blur (cold diffusion) against DDPM, paired by seed (:func:`blur_vs_ddpm_findings`)."""
        by_kind: dict[str, list[Path]] = {"ddpm": [], "cold": []}
        for runs in groups.values():
            for run in runs:
                cfg = read_config(run)
                if cfg is not None and cfg.method.kind in by_kind:
                    by_kind[cfg.method.kind].append(run)
        if not by_kind["ddpm"] or not by_kind["cold"]:
            return []
        ddpm, cold = (configurations(r, [p.name for p in r]) for r in by_kind.values())
        return blur_vs_ddpm_findings(ddpm, cold)

    def epoch(self, model: nn.Module, cfg: DiffusionRunConfig) -> tuple[dict, dict]:
        fid = cfg.evaluation.fid
        opts = {"sampler": fid.sampler, "steps": fid.steps, "eta": fid.eta}
        grid = draw(model, cfg.sampling.n_grid, seed=cfg.seed + 1, **opts)
        metrics = {}
        if fid.enabled:
            samples = draw(
                model, fid.n_samples, seed=cfg.seed + 2, batch_size=fid.batch_size, **opts
            )
            metrics["fid"] = fid_of_samples(samples.images, cfg, device_of(model), split="val")
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
        scores = sample_scores(res.images, cfg, loaded.device, progress=True)
        baselines, neighbours = real_baselines(res.images, cfg, loaded.device, progress=True)
        save_nearest(loaded.run, res.images, neighbours)
        out = {**scores, **opts, "n_samples": n, "extractor": fid.extractor}
        out["splits_read"] = SPLITS_READ
        return out | baselines

    def summary(self, evaluation: dict[str, Any]) -> dict[str, float]:
        out = {"FID": evaluation["fid"]} if "fid" in evaluation else {}
        if "fid_real_train" in evaluation:  # what real digits score at the same count
            out["FID, real digits"] = evaluation["fid_real_train"]
        return out
