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

__all__ = ["IMAGE_SHAPE", "TABLE1_ROWS", "ColdTask", "DDPMTask", "draw", "fid_of_samples"]

IMAGE_SHAPE = (1, 28, 28)  # MNIST (C, H, W)

TABLE1_ROWS = {
    "degraded": "degraded x_T",
    "direct": "one-shot R(x_T, T)",
    "naive": "naive sampler (Alg. 1)",
    "improved": "improved sampler (Alg. 2)",
}
"""Rows of the cold-diffusion Table 1 (``evaluation.json`` keys -> labels)."""


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


def fid_of_samples(
    images: torch.Tensor, cfg: RunConfig, device: torch.device, progress: bool = False
) -> float:
    """FID of ``images`` against the MNIST test set with the configured feature extractor.

    ``progress`` prints a line before the feature extraction and one with its duration.
    """
    from coldflow.metrics.features import build_feature_extractor
    from coldflow.metrics.fid import fid_from_images, mnist_real_statistics

    name = cfg.evaluation.fid.extractor
    t0 = time.perf_counter()
    if progress:
        print(f"  FID: {name} features of {len(images)} samples and the test set", flush=True)
    extractor = build_feature_extractor(name).to(device)
    real = mnist_real_statistics(extractor, "test", n=10000, device=device)
    fid = fid_from_images(images, real, extractor, tuple(cfg.data.range), device=device)
    if progress:
        print(f"  FID {fid:.4g} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return fid


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
        if opts.get("prior") not in (None, "gmm", "black"):
            raise UserError(f"--prior must be gmm or black, not {opts['prior']!r}")
        return draw(loaded.model, n, seed=seed, snapshots=s.snapshot_timesteps, **opts)

    def describe(self, cfg: RunConfig) -> str:
        t, model = cfg.training, cfg.model.kind
        digits = cfg.data.train_subset or 60000
        return (
            f"{cfg.method.kind} with {build_degradation(cfg.degradation).describe()}; "
            f"{model} net, {t.epochs} epochs on {digits} training digits, batch {t.batch_size}, "
            f"lr {t.optimizer.lr:g}" + (f", EMA {t.ema:g}" if t.ema else "")
        )

    def figures(self, run: RunDir, cfg: Any, notes: list[str]) -> list[Any]:
        from coldflow.report.diffusion import run_figures

        return run_figures(run, cfg, notes)

    loss_name: ClassVar[str] = ""

    def compare(self, runs: Sequence[Path], out: Path, labels: Sequence[str]) -> Comparison:
        from coldflow.report.diffusion import comparison_figures

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
            ev = _evaluation(run)
            if ev is None or "fid" not in ev:
                continue
            cfg = _config(run)
            eta = f", eta {ev['eta']:g}" if ev.get("sampler") == "ddim" else ""
            steps = f", {ev['steps']} steps" if ev.get("sampler") == "ddim" else ""
            rows.append(
                [
                    label,
                    f"{_alpha_bar_T(cfg):.3g}" if cfg else "",
                    f"{ev['fid']:.4g}",
                    f"{ev.get('n_samples', '')}",
                    f"{ev.get('sampler', '')}{steps}{eta}",
                    ev.get("extractor", ""),
                ]
            )
        if not rows:
            return []
        header = ["run", "alpha_bar_T", "FID", "samples", "sampler", "features"]
        return [("Unconditional FID (coldflow evaluate)", markdown_table(header, rows))]

    def findings(self, runs: Sequence[Path], labels: Sequence[str]) -> list[str]:
        return ddpm_findings(runs, labels)

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
        print(f"{n} unconditional samples ({opts['sampler']})", flush=True)
        res = draw(loaded.model, n, seed=seed, batch_size=fid.batch_size, progress=True, **opts)
        fid_value = fid_of_samples(res.images, cfg, loaded.device, progress=True)
        return {"fid": fid_value, **opts, "n_samples": n}

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
    def quality(
        images: torch.Tensor,
        originals: torch.Tensor,
        cfg: RunConfig,
        fid_device=None,
        progress: bool = False,
    ):
        """RMSE and SSIM against the originals on [0, 1] pixels; FID too given a device."""
        from coldflow.metrics.image import rmse, ssim

        rng = tuple(cfg.data.range)
        a, b = from_range(images.cpu(), rng), from_range(originals.cpu(), rng)
        out = {"rmse": rmse(a, b).mean().item(), "ssim": ssim(a, b).mean().item()}
        if fid_device is not None:
            out["fid"] = fid_of_samples(images, cfg, fid_device, progress)
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
        """The paper's Table 1 on held-out test images, plus unconditional FIDs.

        Table 1 has the degraded inputs, the one-shot restoration R(x_T, T) and both
        samplers (naive and improved); ``sampler`` picks the sampler of the unconditional
        samples (default: the config's FID sampler), ``prior`` one start (default: both).
        """
        model, cfg, dev = loaded.model, loaded.cfg, loaded.device
        sampler = sampler or cfg.evaluation.fid.sampler
        bs = cfg.evaluation.fid.batch_size
        x, x_T = self.conditional_inputs(model, cfg, min(n, 10000))
        t = torch.full((len(x_T),), model.n_T, dtype=torch.long, device=dev)
        with torch.no_grad():
            direct = torch.cat([model.restore(c.to(dev), t[: len(c)]).cpu() for c in x_T.split(bs)])
        table = {}
        for name, images in (("degraded", x_T), ("direct", direct)):
            print(f"Table 1, {TABLE1_ROWS[name]}", flush=True)
            table[name] = self.quality(images, x, cfg, dev, progress=True)
        for row in ("naive", "improved"):
            print(f"Table 1, {TABLE1_ROWS[row]}: restoring {len(x)} test images", flush=True)
            res = draw(model, len(x), start=x_T, sampler=row, batch_size=bs, progress=True)
            table[row] = self.quality(res.images, x, cfg, dev, progress=True)
        uncond = {}
        for start in (prior,) if prior else ("gmm", "black"):
            print(f"{n} unconditional samples from the {start} start ({sampler})", flush=True)
            images = draw(
                model, n, seed=seed, batch_size=bs, sampler=sampler, prior=start, progress=True
            ).images
            uncond[start] = fid_of_samples(images, cfg, dev, progress=True)
        return {
            "conditional": table,
            "conditional_images": len(x),
            "unconditional_fid": uncond,
            "sampler": sampler,
            "result": getattr(model, "result", "restoration"),
            "n_samples": n,
        }

    loss_name: ClassVar[str] = "image MSE (or L1) ||x0 - R(x_t, t)|| (cold diffusion)"

    def tables(self, runs: Sequence[Path], labels: Sequence[str]) -> list[tuple[str, str]]:
        from coldflow.report.html import markdown_table

        rows, uncond = [], []
        for run, label in zip(runs, labels, strict=True):
            ev = _evaluation(run)
            if ev is None:
                continue
            for key, row in TABLE1_ROWS.items():
                q = ev.get("conditional", {}).get(key)
                if q is not None:
                    fid = f"{q['fid']:.4g}" if "fid" in q else ""
                    rows.append([label, row, fid, f"{q['rmse']:.4f}", f"{q['ssim']:.4f}"])
            fids = ev.get("unconditional_fid", {})
            if fids:
                cells = [f"{fids[k]:.4g}" if k in fids else "" for k in ("gmm", "black")]
                uncond.append([label, *cells, str(ev.get("n_samples", "")), ev.get("sampler", "")])
        out = []
        if rows:
            n = {str(_evaluation(r).get("conditional_images", "")) for r in runs if _evaluation(r)}
            caption = (
                f"Table 1: conditional restoration of {'/'.join(sorted(n))} held-out test "
                "images degraded to t = n_T (FID against the test set; RMSE and SSIM "
                "against the originals on [0, 1] pixels)"
            )
            header = ["run", "method", "FID", "RMSE", "SSIM"]
            out.append((caption, markdown_table(header, rows)))
        if uncond:
            header = ["run", "FID (GMM start)", "FID (black start)", "samples", "sampler"]
            out.append(("Unconditional FID by start", markdown_table(header, uncond)))
        return out

    def findings(self, runs: Sequence[Path], labels: Sequence[str]) -> list[str]:
        return cold_findings(runs, labels)

    def summary(self, evaluation: dict[str, Any]) -> dict[str, float]:
        out = {f"FID ({k} start)": v for k, v in evaluation.get("unconditional_fid", {}).items()}
        for row, values in evaluation.get("conditional", {}).items():
            out[f"{row} RMSE"] = values["rmse"]
        return out


# --------------------------------------------------------------------------- findings


def _evaluation(run: Path) -> dict[str, Any] | None:
    import json

    path = Path(run) / "evaluation.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError:
        return None


def _config(run: Path) -> RunConfig | None:
    from coldflow.config import ConfigError, load_config

    try:
        return load_config(Path(run) / "config.yaml", RunConfig)
    except (ConfigError, FileNotFoundError):
        return None


def _alpha_bar_T(cfg: RunConfig) -> float:
    """alpha_bar at t = n_T of a DDPM run's degradation (1.0 for other degradations)."""
    degradation = build_degradation(cfg.degradation)
    curve = getattr(degradation, "alpha_bar64", None)
    return 1.0 if curve is None else float(curve[-1])


def _fid(run: Path) -> tuple[float, str] | None:
    """The run's FID and where it comes from: evaluation.json, else the last logged one."""
    ev = _evaluation(run)
    if ev is not None and "fid" in ev:
        extra = f", eta {ev['eta']:g}" if ev.get("sampler") == "ddim" else ""
        return ev["fid"], f"{ev.get('n_samples', '?')} samples, {ev.get('sampler', '?')}{extra}"
    epochs, values = [], []
    for e in RunDir(run).read_metrics():
        if e.get("split") == "eval" and e.get("name") == "fid":
            epochs.append(int(e["epoch"]))
            values.append(float(e["value"]))
    if not values:
        return None
    return values[-1], f"logged at epoch {epochs[-1]}"


def _fmt(label: str, value: float, source: str) -> str:
    return f"{label} ({value:.4g}; {source})"


WORSE_FACTOR = 1.5
"""A run is "clearly worse" when its FID is at least this factor above the reference."""

UNDER_DIFFUSED = 0.01
"""alpha_bar_T above this leaves visible signal in z_T ~ N(0, I) (under-diffused)."""


def ddpm_findings(runs: Sequence[Path], labels: Sequence[str]) -> list[str]:
    """Sentences on the DDPM runs' FIDs and schedules (generated from their files)."""
    fids = {lb: f for lb, r in zip(labels, runs, strict=True) if (f := _fid(r)) is not None}
    configs = {lb: _config(r) for lb, r in zip(labels, runs, strict=True)}
    abar = {lb: _alpha_bar_T(c) for lb, c in configs.items() if c is not None}
    out = []
    if not fids:
        return ["No DDPM run has an FID yet (evaluation.json or a logged FID)."]
    ranked = sorted(fids, key=lambda lb: fids[lb][0])
    best = ranked[0]
    if len(ranked) > 1:
        rest = ", ".join(_fmt(lb, *fids[lb]) for lb in ranked[1:])
        out.append(f"{_fmt(best, *fids[best])} has the lowest FID of the DDPM runs, vs {rest}.")
    seed = {"diffusion_model", "model1", "model2"}
    if seed <= set(fids):
        a, b, d = fids["model1"][0], fids["model2"][0], fids["diffusion_model"][0]
        gap = abs(a - b) / min(a, b)
        better = a < d and b < d
        out.append(
            f"model1 (FID {a:.4g}) and model2 ({b:.4g}) differ by {100 * gap:.0f} % and "
            f"{'both' if better else 'not both'} score below diffusion_model ({d:.4g}): the "
            "seed study's claim that model1 and model2 match each other and beat the "
            f"default schedule is {'supported' if better and gap < 0.2 else 'not supported'} "
            "by these numbers (match: within 20 %)."
        )
    full = [lb for lb in fids if abar.get(lb, 0.0) <= UNDER_DIFFUSED]
    for lb in [lb for lb in fids if abar.get(lb, 0.0) > UNDER_DIFFUSED]:
        value = fids[lb][0]
        ref = min(full, key=lambda k: fids[k][0]) if full else None
        sentence = (
            f"{lb} ends its schedule at alpha_bar_T = {abar[lb]:.3f} (signal amplitude "
            f"sqrt(alpha_bar_T) = {abar[lb] ** 0.5:.2f} left in z_T), yet sampling starts "
            "from pure noise N(0, I)"
        )
        if ref is None:
            out.append(sentence + "; no fully diffused run to compare with.")
            continue
        worse = value >= WORSE_FACTOR * fids[ref][0]
        claim = (
            " the seed study's claim that model2 at T = 1000 is clearly worse is "
            f"{'supported' if worse else 'not supported'} by these numbers."
            if lb == "model2_T1000"
            else ""
        )
        out.append(
            f"{sentence}: its FID {value:.4g} is {value / fids[ref][0]:.2f}x that of {ref} "
            f"({fids[ref][0]:.4g}), {'clearly worse' if worse else 'not clearly worse'} "
            f"(threshold {WORSE_FACTOR}x);{claim}"
        )
    return out


def _ink(images: torch.Tensor, value_range: Sequence[float]) -> tuple[float, float]:
    """Share of pixels brighter than mid-grey, and the mean per-pixel std across samples."""
    unit = from_range(images.float().cpu(), tuple(value_range)).clamp(0, 1)
    return (unit > 0.5).float().mean().item(), unit.std(0).mean().item()


def cold_findings(runs: Sequence[Path], labels: Sequence[str]) -> list[str]:
    """Sentences on Table 1, the samplers and the starts (generated from the runs' files)."""
    from coldflow.runs import load_tensors

    out = []
    for run, label in zip(runs, labels, strict=True):
        ev, cfg = _evaluation(run), _config(run)
        if ev is None:
            out.append(f"{label}: not evaluated (no evaluation.json); no Table 1 findings.")
            continue
        table = ev.get("conditional", {})
        hybrid = cfg is not None and cfg.degradation.noise_end + cfg.degradation.noise_start > 0
        if "naive" in table and "improved" in table:
            nv, im = table["naive"], table["improved"]
            wins = [
                name
                for name, better in (
                    ("RMSE", im["rmse"] < nv["rmse"]),
                    ("SSIM", im["ssim"] > nv["ssim"]),
                    ("FID", "fid" in im and "fid" in nv and im["fid"] < nv["fid"]),
                )
                if better
            ]
            verdict = "does not beat the naive one"
            if wins:
                verdict = f"beats the naive one on {', '.join(wins)}"
            both_fid = "fid" in im and "fid" in nv
            fid_text = f", FID {im['fid']:.4g} vs {nv['fid']:.4g}" if both_fid else ""
            note = " (hybrid blur + noise: the two samplers coincide by construction)" * hybrid
            out.append(
                f"{label}: the improved sampler {verdict} (RMSE {im['rmse']:.4f} vs "
                f"{nv['rmse']:.4f}, SSIM {im['ssim']:.3f} vs {nv['ssim']:.3f}"
                + f"{fid_text}){note}."
            )
        if "degraded" in table and ("improved" in table or "naive" in table):
            best = table.get("improved") or table["naive"]
            dg = table["degraded"]
            good = best["rmse"] < dg["rmse"] and best["ssim"] > dg["ssim"]
            out.append(
                f"{label}: conditional restoration of {ev.get('conditional_images', '?')} test "
                f"images takes RMSE from {dg['rmse']:.4f} (degraded) to {best['rmse']:.4f} and "
                f"SSIM from {dg['ssim']:.3f} to {best['ssim']:.3f}; the seed study's claim that "
                f"blur restoration is good is {'supported' if good else 'not supported'} by "
                "these numbers (both must improve on the degraded input)."
            )
        fids = ev.get("unconditional_fid", {})
        if "gmm" in fids and "black" in fids:
            sentence = (
                f"{label}: unconditional FID {fids['black']:.4g} from the black start vs "
                f"{fids['gmm']:.4g} from the GMM start ({ev.get('n_samples', '?')} samples each)"
            )
            final = RunDir(run).samples_path()
            if final.is_file() and cfg is not None:
                tensors = load_tensors(final)
                if "images_black_start" in tensors and "images" in tensors:
                    vr = cfg.data.range
                    ink_b, spread_b = _ink(tensors["images_black_start"], vr)
                    ink_g, spread_g = _ink(tensors["images"], vr)
                    empty = ink_b < 0.02
                    sentence += (
                        f"; the final black-start grid has {100 * ink_b:.1f} % of pixels above "
                        f"mid-grey (GMM start: {100 * ink_g:.1f} %) and a per-pixel spread "
                        f"across samples of {spread_b:.3f} (GMM: {spread_g:.3f}): "
                        + (
                            "the black start collapses to near-empty images"
                            if empty
                            else "the black-start images are not empty"
                        )
                    )
            worse = fids["black"] > fids["gmm"]
            out.append(
                sentence + f". The seed study's claim that black-start samples collapse is "
                f"{'supported' if worse else 'not supported'} by these numbers."
            )
    return out
