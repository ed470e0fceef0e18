"""Super-resolution of fluid fields by diffusion (``method.kind: diffusion_sr``).

A conditional DDPM or cold diffusion (:mod:`coldflow.methods.diffusion_sr`) trained on
the frames a super-resolution run trains on and evaluated exactly as one
(:class:`~coldflow.tasks.recon.task.SuperResTask`: the test frames, the source
trajectory, short low-resolution solver runs, the same baselines and cells), in the same
comparison group, so that the study's super-resolution page puts it beside the
loss-trained upsamplers. The row ``super-resolution`` is one sample per frame (what a
user gets from one call). The evaluation adds:

- ``super-resolution, mean of N samples``, scored like every row;
- ``diffusion.spread``: per test frame, the standard deviation across the N samples
  summed over the scored cells, relative to the reference's absolute values there (the
  normalisation of rel. L1), and its correlation over cells with the error of the mean
  (high where the model is unsure where it is wrong); 0 and none for cold diffusion,
  whose samples do not vary;
- ``diffusion.sweep``: rel. L1 (and the other metrics) and seconds per frame at each
  number of DDIM sampling steps of ``evaluation.sampling_steps`` on
  ``evaluation.sweep_frames`` evenly spread test frames (cold diffusion: its n_T steps,
  with each of its two samplers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from coldflow.methods.diffusion_sr import ColdSuperResolution, DDPMSuperResolution
from coldflow.metrics import score_fields
from coldflow.nets.superres import upsample
from coldflow.nets.unet import UNet
from coldflow.tasks.base import LoadedRun
from coldflow.tasks.recon.config import FieldsRunConfig
from coldflow.tasks.recon.task import SuperResTask, _timed

__all__ = ["DiffusionSRTask", "residual_scale", "spread_scores"]

MEAN_ROW = "super-resolution, mean of {n} samples"


def residual_scale(low: torch.Tensor, high: torch.Tensor, scale, factor: int) -> list[float]:
    """Per-channel standard deviation of ``high / s - bicubic(low / s)`` over frames and
    cells (the conditional DDPM's unit of its residual)."""
    s = torch.as_tensor(scale, dtype=torch.float64)[:, None, None]
    r = high.double() / s - upsample(low.double() / s, factor, "bicubic")
    std = r.transpose(0, 1).reshape(r.shape[1], -1).std(dim=1)
    return [max(float(v), 1e-8) for v in std]


def spread_scores(
    samples: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None
) -> dict[str, list[float | None]]:
    """Per frame of ``samples`` ``[N, F, C, H, W]`` against ``reference`` ``[F, C, H, W]``:
    ``relative`` (the samples' standard deviation summed over the scored cells and
    channels, over the reference's absolute values there) and ``error_correlation``
    (Pearson correlation over the scored cells between that standard deviation and the
    absolute error of the samples' mean, both summed over channels; ``None`` where either
    is constant)."""
    std = samples.double().std(dim=0, unbiased=True) if len(samples) > 1 else None
    err = (samples.double().mean(0) - reference.double()).abs()
    keep = torch.ones(reference.shape[-2:], dtype=torch.bool) if mask is None else mask.cpu()
    relative, corr = [], []
    for f in range(reference.shape[0]):
        ref = reference[f].double().abs()[:, keep].sum()
        if std is None:
            relative.append(0.0)
            corr.append(None)
            continue
        spread = std[f][:, keep]
        relative.append(float(spread.sum() / ref) if ref > 0 else 0.0)
        a, b = spread.sum(0), err[f][:, keep].sum(0)
        a, b = a - a.mean(), b - b.mean()
        den = float(a.norm() * b.norm())
        corr.append(float((a * b).sum()) / den if den > 0 else None)
    return {"relative": relative, "error_correlation": corr}


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


class DiffusionSRTask(SuperResTask):
    """Super-resolution by a conditional DDPM or by cold diffusion."""

    kinds = ("diffusion_sr",)
    mode = "superres"

    def group(self, cfg: Any) -> str:
        """Compared with the loss-trained super-resolution runs of the same data set."""
        return f"superres_{Path(cfg.data.path).stem}"

    def describe(self, cfg: FieldsRunConfig) -> str:
        m = cfg.method
        on = " on solver output" if m.input == "source" else ""
        if m.process == "ddpm":
            ddim = m.chosen_sampler == "ddim"
            how = m.chosen_sampler + (f" {m.steps} steps" if ddim else "")
            return f"conditional DDPM super-resolution{on} (n_T {m.chosen_n_T}, {how})"
        return f"cold-diffusion super-resolution{on} (n_T {m.chosen_n_T}, {m.chosen_sampler})"

    def _stats(self, cfg: FieldsRunConfig, dataset: Any, fields: tuple[str, ...]) -> dict:
        stats = super()._stats(cfg, dataset, fields)
        t = dataset.tensors
        stats["residual_scale"] = residual_scale(
            t["low"], t["high"], stats["scale"], dataset.factor
        )
        return stats

    def _model(self, cfg: FieldsRunConfig, stats: dict, loss: nn.Module | None) -> nn.Module:
        m, C = cfg.method, stats["shape"][0]
        H, W = stats["shape"][1:]
        options = {"channels": tuple(cfg.model.channels), "time_dim": cfg.model.time_dim}
        if m.process == "ddpm":
            net = UNet(in_channels=2 * C, image_shape=(H, W), out_channels=C, **options)
            return DDPMSuperResolution(
                net, C, stats["scale"], stats.get("residual_scale"), stats["factor"],
                n_T=m.chosen_n_T, beta1=m.beta1, beta2=m.beta2, sampler=m.chosen_sampler,
                steps=m.steps, eta=m.eta, prediction=m.prediction,
            )  # fmt: skip
        net = UNet(in_channels=C, image_shape=(H, W), **options)
        return ColdSuperResolution(
            net, C, (H, W), stats["scale"], stats["factor"], n_T=m.chosen_n_T,
            sampler=m.chosen_sampler, loss="l1" if m.loss.name == "mae" else "mse",
        )  # fmt: skip

    def _model_extras(self, loaded: LoadedRun, frames, score, sr, fns, mask):
        """The mean of N samples (a row), the spread across them, the sampling sweep."""
        cfg, model, dev = loaded.cfg, loaded.model, loaded.device
        ev, bs = cfg.evaluation, cfg.evaluation.batch_size
        low, high = frames.tensors["low"], frames.tensors["high"]
        n = ev.samples if cfg.method.process == "ddpm" else 1
        if n > 1:  # sample 0 is the one-sample row; seeds 1 .. n-1 beside it
            rest = torch.cat(
                [model.samples(c.to(dev), n - 1, seed=1).cpu() for c in low.split(bs)], dim=1
            )
            samples = torch.cat([sr[None], rest])
        else:
            samples = sr[None]
        mean = samples.mean(0)
        spread = spread_scores(samples, high, mask)
        rows = {MEAN_ROW.format(n=n): score(mean, high)} if n > 1 else {}
        extra = {
            "diffusion": {
                "process": cfg.method.process,
                "samples": n,
                "steps": cfg.method.steps_of_process,
                "spread": {
                    "relative": _mean(spread["relative"]),
                    "error_correlation": _mean(spread["error_correlation"]),
                    "per_frame": spread,
                },
                "sweep": self._sweep(loaded, frames, fns, mask),
            }
        }
        examples = {"sample": samples[min(1, n - 1)]}
        if n > 1:  # a deterministic sampler's mean is its one sample
            examples |= {"mean": mean, "spread": samples.std(dim=0)}
        return rows, extra, examples

    def _sweep(self, loaded: LoadedRun, frames, fns, mask) -> list[dict[str, Any]]:
        """Error and seconds per frame against the sampler's steps (one untimed warm-up
        batch before each setting)."""
        cfg, model, dev = loaded.cfg, loaded.model, loaded.device
        ev = cfg.evaluation
        k = min(ev.sweep_frames, len(frames))
        pick = torch.linspace(0, len(frames) - 1, k).round().long()
        low, high = frames.tensors["low"][pick], frames.tensors["high"][pick]
        if cfg.method.process == "ddpm" and cfg.method.chosen_sampler == "ddim":
            settings = [(s, model.sampler) for s in sorted(set(ev.sampling_steps))]
        else:
            samplers = ("improved", "naive") if cfg.method.process == "cold" else (model.sampler,)
            settings = [(model.n_T, s) for s in samplers]
        out = []
        own = model.sampler
        try:
            for steps, sampler in settings:
                model.sampler = sampler
                up, seconds = _timed(
                    lambda c, s=steps: model.upscale(c.to(dev), steps=s), low, ev.batch_size
                )
                scores = score_fields(fns, up, high, batch_size=ev.batch_size, mask=mask)
                out.append({
                    "steps": steps, "sampler": sampler, "frames": k, "seconds_per_frame": seconds,
                    "mean": {m: float(v.mean()) for m, v in scores.items()},
                })  # fmt: skip
        finally:
            model.sampler = own
        return out
