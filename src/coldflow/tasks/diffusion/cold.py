"""Cold diffusion on MNIST (Bansal et al. 2022): the blur task.

Trained like DDPM (:mod:`coldflow.tasks.diffusion.ddpm`), scored by the paper's Table 1 on
held-out test digits (degraded input, one-shot restoration, naive and improved
samplers: FID, RMSE, SSIM) and by unconditional FID from both starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from coldflow.data import from_range, mnist_dataset
from coldflow.errors import UserError
from coldflow.methods import ColdDiffusion, fit_prior
from coldflow.tasks.base import LoadedRun
from coldflow.tasks.diffusion.config import DiffusionRunConfig
from coldflow.tasks.diffusion.ddpm import DiffusionTask
from coldflow.tasks.diffusion.findings import (
    BASELINE_HEADER,
    baseline_cells,
    baseline_findings,
    cold_findings,
    read_evaluation,
)
from coldflow.tasks.diffusion.sampling import (
    IMAGE_SHAPE,
    device_of,
    draw,
    sample_batch_size,
    with_trajectory,
)
from coldflow.tasks.diffusion.scoring import (
    SPLITS_READ,
    check_fid_count,
    fid_of_samples,
    real_baselines,
    sample_scores,
    save_nearest,
)

__all__ = ["TABLE1_ROWS", "ColdTask"]

TABLE1_ROWS = {
    "degraded": "degraded x_T",
    "lookup": "nearest training digit (lookup)",
    "direct": "one-shot R(x_T, T)",
    "naive": "naive sampler (Alg. 1)",
    "improved": "improved sampler (Alg. 2)",
}
"""Rows of the cold-diffusion Table 1 (``evaluation.json`` keys -> labels)."""


def fully_degraded(model: nn.Module, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """D(x, n_T) of every image (``noise``: the hybrid degradation's eps)."""
    t = torch.full((len(x),), model.n_T, dtype=torch.long)
    with torch.no_grad():
        return model.degradation.degrade(x, t, noise=noise)


class ColdTask(DiffusionTask):
    """Cold diffusion with Gaussian blur; scored by the paper's Table 1 and FID."""

    kinds = ("cold",)

    def make_method(
        self, cfg: DiffusionRunConfig, net: nn.Module, degradation: Any
    ) -> ColdDiffusion:
        m = cfg.method
        return ColdDiffusion(
            net,
            degradation,
            loss=m.loss,
            prior=m.prior,
            prior_components=m.prior_components,
            prior_dims=m.prior_dims,
            prior_noise=m.prior_noise,
            black=cfg.data.range[0],
            image_shape=IMAGE_SHAPE,
            result=m.result,
        )

    def samples_meta(self, cfg: DiffusionRunConfig) -> dict[str, Any]:
        """As for DDPM, and the start of the unconditional samples."""
        return super().samples_meta(cfg) | {"prior": cfg.method.prior}

    def check_sample_options(self, cfg: DiffusionRunConfig, opts: dict[str, Any]) -> None:
        super().check_sample_options(cfg, opts)
        if opts.get("prior") not in (None, "gmm", "black"):
            raise UserError(f"--prior must be gmm or black, not {opts['prior']!r}")

    def sample_title(self, cfg: Any, **options: Any) -> str:
        """As for DDPM, and the start the samples were drawn from."""
        prior = options.get("prior") or cfg.method.prior
        return f"{super().sample_title(cfg, **options)}, {prior} start"

    def fit_prior(self, model: nn.Module, cfg: DiffusionRunConfig, dataset: Any) -> None:
        """Fit the unconditional start distribution to fully degraded training images."""
        if cfg.method.prior != "gmm":
            return
        x = dataset.tensors[0][: cfg.method.prior_fit_images]
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(cfg.seed + 4))
        degraded = fully_degraded(model, x, noise)
        params = fit_prior(degraded, cfg.method.prior_dims, cfg.method.prior_components, cfg.seed)
        model.set_prior(params)

    @staticmethod
    def conditional_inputs(
        model: nn.Module, cfg: DiffusionRunConfig, n: int, split: str = "test"
    ) -> tuple[torch.Tensor, ...]:
        """Held-out images of ``split`` (``val`` during training, ``test`` in evaluation)
        and their degradation to t = n_T (seeded noise if hybrid)."""
        x = mnist_dataset(split, tuple(cfg.data.range), n).tensors[0]
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(cfg.seed + 5))
        return x, fully_degraded(model, x, noise)

    @staticmethod
    def lookup_restoration(
        model: nn.Module, cfg: DiffusionRunConfig, x_T: torch.Tensor
    ) -> torch.Tensor:
        """Restoration by memory: for each degraded image, the training digit whose own
        degradation to t = n_T (noise-free) is nearest to it.

        The honest baseline of Table 1: what remembering the training set gives, with no
        learned restoration at all. Searches the digits the run trained on.
        """
        from coldflow.metrics.baselines import nearest_rms

        train = mnist_dataset("train", tuple(cfg.data.range), cfg.data.train_subset).tensors[0]
        blurred = torch.cat(
            [fully_degraded(model, c, torch.zeros_like(c)) for c in train.split(4096)]
        )
        _, idx = nearest_rms(x_T.cpu(), blurred)
        return train[idx]

    @staticmethod
    def quality(
        images: torch.Tensor,
        originals: torch.Tensor,
        cfg: DiffusionRunConfig,
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

    def epoch(self, model: nn.Module, cfg: DiffusionRunConfig) -> tuple[dict, dict]:
        fid, sampler = cfg.evaluation.fid, cfg.evaluation.fid.sampler
        grid = draw(model, cfg.sampling.n_grid, seed=cfg.seed + 1, sampler=sampler)
        x, x_T = self.conditional_inputs(model, cfg, cfg.method.conditional_images, "val")
        cond = draw(model, len(x), start=x_T, sampler=sampler, batch_size=fid.batch_size)
        q = self.quality(cond.images, x, cfg)
        metrics = {"cond_rmse": q["rmse"], "cond_ssim": q["ssim"]}
        if fid.enabled:
            samples = draw(
                model, fid.n_samples, seed=cfg.seed + 2, batch_size=fid.batch_size, sampler=sampler
            )
            metrics["fid"] = fid_of_samples(samples.images, cfg, device_of(model), split="val")
        n = cfg.sampling.n_grid
        return metrics, {"images": grid.images, "images_conditional": cond.images[:n]}

    def final(self, model: nn.Module, cfg: DiffusionRunConfig) -> dict[str, torch.Tensor]:
        s, n = cfg.sampling, cfg.sampling.n_grid
        snaps = s.snapshot_timesteps
        uncond = draw(model, n, seed=cfg.seed + 3, sampler=s.sampler, snapshots=snaps)
        black = draw(model, n, seed=cfg.seed + 3, sampler=s.sampler, prior="black")
        x, x_T = self.conditional_inputs(model, cfg, n, "val")
        cond = draw(model, n, start=x_T, sampler=s.sampler, snapshots=snaps)
        out = {
            "images": uncond.images,
            "images_black_start": black.images,
            "images_conditional": cond.images,
            "images_conditional_input": x_T,
            "images_conditional_original": x,
        }
        out = with_trajectory(out, uncond, "")
        return with_trajectory(out, cond, "_conditional")

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
        check_fid_count(n)
        model, cfg, dev = loaded.model, loaded.cfg, loaded.device
        sampler = sampler or cfg.evaluation.fid.sampler
        bs = sample_batch_size(cfg.evaluation.fid.batch_size, dev)
        x, x_T = self.conditional_inputs(model, cfg, min(n, 10000))
        t = torch.full((len(x_T),), model.n_T, dtype=torch.long, device=dev)
        with torch.no_grad():
            direct = torch.cat([model.restore(c.to(dev), t[: len(c)]).cpu() for c in x_T.split(bs)])
        lookup = self.lookup_restoration(model, cfg, x_T)
        table = {}
        for name, images in (("degraded", x_T), ("lookup", lookup), ("direct", direct)):
            print(f"Table 1, {TABLE1_ROWS[name]}", flush=True)
            table[name] = self.quality(images, x, cfg, dev, progress=True)
        for row in ("naive", "improved"):
            print(f"Table 1, {TABLE1_ROWS[row]}: restoring {len(x)} test images", flush=True)
            res = draw(model, len(x), start=x_T, sampler=row, batch_size=bs, progress=True)
            table[row] = self.quality(res.images, x, cfg, dev, progress=True)
        uncond, precision, recall, baselines = {}, {}, {}, {}
        for start in (prior,) if prior else ("gmm", "black"):
            print(f"{n} unconditional samples from the {start} start ({sampler})", flush=True)
            images = draw(
                model, n, seed=seed, batch_size=bs, sampler=sampler, prior=start, progress=True
            ).images
            scores = sample_scores(images, cfg, dev, progress=True)
            uncond[start] = scores["fid"]
            if "precision" in scores:
                precision[start], recall[start] = scores["precision"], scores["recall"]
            if not baselines:  # the first start's samples (default: the GMM start)
                baselines, neighbours = real_baselines(images, cfg, dev, progress=True)
                baselines["nearest_train"]["start"] = start
                save_nearest(loaded.run, images, neighbours)
        return baselines | {
            "conditional": table,
            "conditional_images": len(x),
            "unconditional_fid": uncond,
            "unconditional_precision": precision,
            "unconditional_recall": recall,
            "sampler": sampler,
            "result": getattr(model, "result", "restoration"),
            "n_samples": n,
            "extractor": cfg.evaluation.fid.extractor,
            "splits_read": SPLITS_READ,
        }

    loss_name: ClassVar[str] = "image MSE (or L1) ||x0 - R(x_t, t)|| (cold diffusion)"

    def tables(self, runs: Sequence[Path], labels: Sequence[str]) -> list[tuple[str, str]]:
        from coldflow.report.html import markdown_table

        rows, uncond = [], []
        for run, label in zip(runs, labels, strict=True):
            ev = read_evaluation(run)
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
                uncond.append(
                    [label, *cells, str(ev.get("n_samples", "")), ev.get("sampler", "")]
                    + baseline_cells(ev)
                )
        out = []
        if rows:
            n = {
                str(read_evaluation(r).get("conditional_images", ""))
                for r in runs
                if read_evaluation(r)
            }
            caption = (
                f"Table 1: conditional restoration of {'/'.join(sorted(n))} held-out test "
                "images degraded to t = n_T (FID against the test set; RMSE and SSIM "
                "against the originals on [0, 1] pixels)"
            )
            header = ["run", "method", "FID", "RMSE", "SSIM"]
            out.append((caption, markdown_table(header, rows)))
        if uncond:
            header = ["run", "FID (GMM start)", "FID (black start)", "samples", "sampler"]
            floor, *per_sample = BASELINE_HEADER  # the last two describe the first start's samples
            header += [floor, *(f"{h} (first start)" for h in per_sample)]
            out.append(("Unconditional FID by start", markdown_table(header, uncond)))
        return out

    def findings(self, runs: Sequence[Path], labels: Sequence[str]) -> list[str]:
        return cold_findings(runs, labels) + baseline_findings(runs, labels)

    def summary(self, evaluation: dict[str, Any]) -> dict[str, float]:
        out = {f"FID ({k} start)": v for k, v in evaluation.get("unconditional_fid", {}).items()}
        if "fid_real_train" in evaluation:  # what real digits score at the same count
            out["FID, real digits"] = evaluation["fid_real_train"]
        for row, values in evaluation.get("conditional", {}).items():
            out[f"{row} RMSE"] = values["rmse"]
        return out
