"""Autoencoder and super-resolution of fluid fields, trained with any field loss.

Both work on single cell-centred frames of a fluid data set (velocity, plus density
where the scene has it; :class:`coldflow.data.frames.FieldFrames`), divided channel-wise
by the training frames' standard deviations. The run keeps ``field_stats.json`` (those
scales, the frame shape and the data set's own config). Evaluation scores the test
simulations' frames with every field metric next to honest baselines:

- autoencoder: the same field resampled to a grid holding as many numbers as the latent
  code (area average) and back with bicubic interpolation;
- super-resolution: bicubic and bilinear upsampling, and the nearest training frame (the
  training reference whose downsampled frame is closest to the input: memorisation);
  also the super-resolved *source* trajectory, what a user has at inference time.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from coldflow.data.frames import FieldFrames, read_centered
from coldflow.data.store import FieldData
from coldflow.hub import HubError
from coldflow.losses import build_field_loss
from coldflow.methods.autoencoder import FieldAutoencoder
from coldflow.methods.superres import FieldSuperResolution, upsample
from coldflow.metrics import (
    METRIC_COLUMNS,
    PERCEPTUAL_IF_AVAILABLE,
    metric_functions,
    metric_spec,
    score_fields,
)
from coldflow.nets import NETS
from coldflow.report.html import Comparison
from coldflow.runs import RunDir, save_tensors
from coldflow.tasks.base import LoadedRun, Prepared
from coldflow.tasks.fluid import (
    FluidTask,
    check_same_data_kind,
    data_config,
    data_config_from_text,
    data_config_text,
)
from coldflow.tasks.recon.config import FieldsRunConfig

__all__ = ["STATS_FILE", "AutoencoderTask", "SuperResTask", "resample_baseline"]

STATS_FILE = "field_stats.json"


def resample_baseline(x: torch.Tensor, numbers: int) -> tuple[torch.Tensor, int]:
    """Store ``x`` ``[B, C, H, W]`` on a coarser grid of about ``numbers`` values per frame
    (area average, aspect ratio kept), then interpolate back bicubically.

    Returns the reconstruction and the number of values actually stored per frame.
    """
    C, H, W = x.shape[1:]
    r = math.sqrt(C * H * W / numbers)
    h, w = max(1, round(H / r)), max(1, round(W / r))
    coarse = F.adaptive_avg_pool2d(x, (h, w))
    return F.interpolate(coarse, size=(H, W), mode="bicubic", align_corners=False), C * h * w


def _fields(cfg: FieldsRunConfig, path: str | Path) -> tuple[str, ...]:
    with FieldData(path) as data:
        dens = cfg.data.density and data.has("density")
    return ("velocity", "density") if dens else ("velocity",)


def _metrics(names: list[str], perceptual: bool) -> tuple[dict[str, Callable], dict[str, str]]:
    """Metric functions on centred fields; perceptual ones whose weights are missing are
    listed as skipped with the reason."""
    wanted = list(dict.fromkeys([*names, *(PERCEPTUAL_IF_AVAILABLE if perceptual else ())]))
    fns, skipped = {}, {}
    for name in wanted:
        try:
            fns |= metric_functions([name], "centered")
        except HubError as e:
            if name not in names:  # added because available, not asked for
                skipped[name] = " ".join(str(e).split())
                continue
            raise
    return fns, skipped


def _timed(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, bs: int):
    """``(fn(x) in batches, seconds per frame)``; one untimed batch first (warm-up)."""
    with torch.no_grad():
        fn(x[:bs])
        t0 = time.perf_counter()
        out = torch.cat([fn(c).cpu() for c in x.split(bs)])
    return out, (time.perf_counter() - t0) / len(x)


class _FieldTask(FluidTask):
    """What the autoencoder and super-resolution tasks share."""

    config_model = FieldsRunConfig
    files = (STATS_FILE,)
    loss_grid = "centered"
    mode: ClassVar[str]

    def _frames(self, cfg: FieldsRunConfig, path: str | Path, split: str, fields) -> FieldFrames:
        return FieldFrames(
            path, self.mode, split=split, kind=cfg.data.kind, fields=fields,
            stride=cfg.data.stride,
        )  # fmt: skip

    def prepare(self, cfg: FieldsRunConfig, stored: dict[str, Any]) -> Prepared:
        fields = _fields(cfg, cfg.data.path)
        dataset = self._frames(cfg, cfg.data.path, cfg.data.split, fields)
        stats = stored.get(STATS_FILE) or {
            "scale": dataset.channel_std().tolist(),
            "channels": dataset.channels,
            "fields": list(fields),
            "shape": list(dataset.shape),
            "factor": dataset.factor,
            "frames": len(dataset),
            "data": str(cfg.data.path),
            "data_config": data_config_text(cfg.data.path),
        }
        spec = cfg.method.loss
        loss = build_field_loss(
            spec.name, grid="centered", fit=spec.fit, pad_mode=spec.pad_mode, **spec.options
        )
        return Prepared(self._model(cfg, stats, loss), _Items(dataset), files={STATS_FILE: stats})

    def build(self, cfg: FieldsRunConfig, files: dict[str, Any]) -> nn.Module:
        stats = files.get(STATS_FILE)
        if stats is None:
            raise FileNotFoundError(f"{STATS_FILE} is missing from the run directory")
        return self._model(cfg, stats, None)

    def _model(self, cfg: FieldsRunConfig, stats: dict, loss: nn.Module | None) -> nn.Module:
        raise NotImplementedError

    def _test_frames(self, loaded: LoadedRun, data: str | Path | None, split: str):
        cfg, stats = loaded.cfg, loaded.files[STATS_FILE]
        path = Path(data or cfg.data.test_path or cfg.data.path)
        trained = data_config_from_text(stats["data_config"], f"{STATS_FILE} (data_config)")
        check_same_data_kind(trained, data_config(path), path)
        return path, self._frames(cfg, path, split, tuple(stats["fields"]))

    def _begin(self, loaded: LoadedRun, data, split, metrics) -> tuple:
        """Test frames (checked against the training data) and the metric functions."""
        cfg = loaded.cfg
        path, frames = self._test_frames(loaded, data, split or "test")
        names = metrics or cfg.evaluation.metrics
        return (path, frames, *_metrics(names, cfg.evaluation.perceptual_if_available))

    @staticmethod
    def _save_examples(loaded: LoadedRun, name: str, tensors: dict, frames: FieldFrames) -> None:
        """A few evenly spread test frames of every tensor, for the report's figures."""
        n = len(next(iter(tensors.values())))
        k = min(loaded.cfg.evaluation.figure_frames, n)
        pick = torch.linspace(0, n - 1, k).round().long() if k else torch.zeros(0).long()
        save_tensors(
            loaded.run.samples_dir / name,
            {key: t[pick] for key, t in tensors.items()},
            meta={"channels": ",".join(frames.channels), "frames": pick.tolist()},
        )

    def describe(self, cfg: FieldsRunConfig) -> str:
        return f"{self.mode}, {cfg.method.loss.name} loss"

    def figures(self, run: RunDir, cfg: Any, notes: list[str]) -> list[Any]:
        from coldflow.tasks.recon.figures import run_figures

        return run_figures(run.path, self.mode, notes)

    def summary(self, evaluation: dict[str, Any]) -> dict[str, float]:
        model = "autoencoder" if self.mode == "autoencoder" else "super-resolution"
        values = evaluation.get("mean", {}).get(model, {})
        out = {METRIC_COLUMNS.get(m, m): v for m, v in values.items()}
        if model in evaluation.get("seconds_per_frame", {}):
            out["time (s/frame)"] = evaluation["seconds_per_frame"][model]
        return out

    def findings(self, runs: Sequence[Path], labels: Sequence[str]) -> list[str]:
        """Per evaluated run: which baselines the model beats in which metrics."""
        model = "autoencoder" if self.mode == "autoencoder" else "super-resolution"
        out = []
        for run, label in zip(runs, labels, strict=True):
            path = Path(run) / "evaluation.json"
            if not path.is_file():
                continue
            mean = json.loads(path.read_text())["mean"]
            for base in [r for r in mean if r != model and not r.startswith("source")]:
                better = [
                    m for m in mean[model] if metric_spec(m).better(mean[model][m], mean[base][m])
                ]
                worse = sorted(set(mean[model]) - set(better))
                verdict = (
                    f"beats {base} in every metric"
                    if not worse
                    else f"is no better than {base} in {', '.join(worse)}"
                    + (f" (better in {', '.join(better)})" if better else "")
                )
                out.append(f"{label}: the {model} {verdict}.")
        return out

    def compare(self, runs: Sequence[Path], out: Path, labels: Sequence[str]) -> Comparison:
        from coldflow.tasks.recon.figures import comparison

        return comparison(runs, out, labels, self.mode)

    def _result(self, loaded, path, frames, scores, timing, skipped) -> dict[str, Any]:
        mean = {row: {m: float(v.mean()) for m, v in s.items()} for row, s in scores.items()}
        return {
            "run": str(loaded.run.path),
            "name": loaded.cfg.name,
            "loss": loaded.cfg.method.loss.name,
            "data": str(path),
            "split": frames.split,
            "frames": len(frames),
            "simulations": sorted({int(s) for s in frames.sim}),
            "scene": data_config(path).scene.kind,
            "channels": frames.channels,
            "mean": mean,
            "per_frame": {r: {m: v.tolist() for m, v in s.items()} for r, s in scores.items()},
            "seconds_per_frame": timing,
            "skipped_metrics": skipped,
        }


class _Items(torch.utils.data.Dataset):
    """Training items without the bookkeeping keys (``sim``, ``frame``)."""

    def __init__(self, frames: FieldFrames) -> None:
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.frames.tensors.items()}


class AutoencoderTask(_FieldTask):
    """Compress a frame through a bottleneck and reconstruct it."""

    kinds = ("autoencoder",)
    mode = "autoencoder"

    def _model(self, cfg: FieldsRunConfig, stats: dict, loss: nn.Module | None) -> nn.Module:
        options = cfg.model.model_dump(exclude={"kind"})
        C, H, W = stats["shape"]
        net = NETS[cfg.model.kind](in_channels=C, image_shape=(H, W), **options)
        return FieldAutoencoder(net, loss, stats["scale"])

    def describe(self, cfg: FieldsRunConfig) -> str:
        return f"autoencoder ({cfg.model.compression}x compression), {cfg.method.loss.name} loss"

    def evaluate(
        self,
        loaded: LoadedRun,
        data: str | Path | None = None,
        split: str | None = None,
        metrics: list[str] | None = None,
    ) -> dict[str, Any]:
        """Reconstruction of every test frame against the resampling baseline."""
        cfg, model, dev = loaded.cfg, loaded.model, loaded.device
        path, frames, fns, skipped = self._begin(loaded, data, split, metrics)
        x, bs = frames.tensors["x"], cfg.evaluation.batch_size
        score = partial(score_fields, fns, batch_size=bs)
        recon, t_model = _timed(lambda c: model.reconstruct(c.to(dev)), x, bs)
        numbers = model.latent_numbers(x.shape[1:])
        base, stored = resample_baseline(x, numbers)
        scores = {"autoencoder": score(recon, x), "resampled + bicubic": score(base, x)}
        result = self._result(loaded, path, frames, scores, {"autoencoder": t_model}, skipped)
        result |= {
            "compression": x[0].numel() / numbers,
            "latent_numbers": numbers,
            "baseline_numbers": stored,
            "input_numbers": x[0].numel(),
        }
        examples = {"input": x, "autoencoder": recon, "baseline": base}
        self._save_examples(loaded, "reconstruction.safetensors", examples, frames)
        return result


class SuperResTask(_FieldTask):
    """Upsample a downsampled frame to the reference resolution."""

    kinds = ("superres",)
    mode = "superres"

    def _model(self, cfg: FieldsRunConfig, stats: dict, loss: nn.Module | None) -> nn.Module:
        options = cfg.model.model_dump(exclude={"kind"})
        net = NETS[cfg.model.kind](in_channels=stats["shape"][0], factor=stats["factor"], **options)
        return FieldSuperResolution(net, loss, stats["scale"], stats["factor"])

    def evaluate(
        self,
        loaded: LoadedRun,
        data: str | Path | None = None,
        split: str | None = None,
        metrics: list[str] | None = None,
    ) -> dict[str, Any]:
        """SR of every test frame against bicubic, bilinear and the nearest training frame;
        and SR of the uncorrected source trajectory."""
        cfg, model, dev = loaded.cfg, loaded.model, loaded.device
        path, frames, fns, skipped = self._begin(loaded, data, split, metrics)
        low, high, bs = frames.tensors["low"], frames.tensors["high"], cfg.evaluation.batch_size
        f, score = frames.factor, partial(score_fields, fns, batch_size=bs)
        sr, t_sr = _timed(lambda c: model.upscale(c.to(dev)), low, bs)
        bicubic, t_bic = _timed(lambda c: upsample(c, f, "bicubic"), low, bs)
        bilinear = upsample(low, f, "bilinear")
        train = self._frames(cfg, cfg.data.path, cfg.data.split, tuple(frames.fields))
        nearest = _nearest(low, train.tensors["low"], train.tensors["high"])
        scores = {
            "super-resolution": score(sr, high),
            "bicubic": score(bicubic, high),
            "bilinear": score(bilinear, high),
            "nearest training frame": score(nearest, high),
        }
        source = _source_frames(path, frames)
        if source is not None:
            source_sr = _timed(lambda c: model.upscale(c.to(dev)), source, bs)[0]
            scores["source, super-resolved"] = score(source_sr, high)
            scores["source, bicubic"] = score(upsample(source, f, "bicubic"), high)
        timing = {"super-resolution": t_sr, "bicubic": t_bic}
        result = self._result(loaded, path, frames, scores, timing, skipped)
        result["factor"] = f
        examples = {"low": low, "bicubic": bicubic, "superres": sr, "reference": high}
        self._save_examples(loaded, "superres.safetensors", examples, frames)
        return result


def _nearest(low: torch.Tensor, train_low: torch.Tensor, train_high: torch.Tensor) -> torch.Tensor:
    """For each input, the training reference whose downsampled frame is closest (MSE)."""
    flat = train_low.flatten(1).double()
    picks = []
    for chunk in low.flatten(1).double().split(256):
        d = torch.cdist(chunk, flat)
        picks.append(d.argmin(1))
    return train_high[torch.cat(picks)]


def _source_frames(path: Path, frames: FieldFrames) -> torch.Tensor | None:
    """The uncorrected low-resolution solver's frames at the same (sim, frame) pairs."""
    out = []
    with FieldData(path) as data:
        for sim in dict.fromkeys(int(s) for s in frames.sim):
            wanted = frames.frame[frames.sim == sim].tolist()
            out.append(torch.from_numpy(read_centered(data, sim, "source", wanted, frames.fields)))
    return torch.cat(out) if out else None
