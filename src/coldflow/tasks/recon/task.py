"""Autoencoder and super-resolution of fluid fields, trained with any field loss.

Both work on single cell-centred frames of a fluid data set (velocity, plus density
where the scene has it; :class:`coldflow.data.frames.FieldFrames`), divided channel-wise
by the training frames' standard deviations. The run keeps ``field_stats.json`` (those
scales, the frame shape and the data set's own config). Evaluation scores the test
simulations' frames with every field metric next to honest baselines
(:mod:`coldflow.tasks.recon.baselines`):

- autoencoder: codecs storing as many numbers per frame as the latent code: the field
  resampled to a coarser grid (area average) and back bicubically, PCA of the training
  frames, and a low-pass truncation of the orthonormal DCT;
- super-resolution: bicubic and bilinear upsampling, and the nearest training frame (the
  training reference whose low-resolution input is closest to the test input, among every
  training frame and its mirror images where the scene is symmetric: memorisation); also
  the super-resolved *source* trajectory, what a user has at inference time.

Every method is scored on the same cells: those outside the scene's obstacles
(:func:`~coldflow.tasks.recon.baselines.scored_cells`), where the solver fixes the
velocity and a network learns it while an interpolation does not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import torch
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
from coldflow.metrics.spectrum import energy_spectrum, octave_bands
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
    training_range,
    validation_hooks,
)
from coldflow.tasks.recon.baselines import (
    DCTCodec,
    PCACodec,
    mirror_maps,
    nearest_frames,
    resample_baseline,
    scored_cells,
)
from coldflow.tasks.recon.config import FieldsRunConfig

__all__ = ["STATS_FILE", "AutoencoderTask", "SuperResTask", "resample_baseline"]

STATS_FILE = "field_stats.json"

VALIDATION_FRAMES = 256
"""Frames of the val simulations scored after every epoch (evenly spread over them)."""


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
        dataset = self._training_frames(cfg, fields)
        stats = stored.get(STATS_FILE) or self._stats(cfg, dataset, fields)
        spec = cfg.method.loss
        loss = build_field_loss(
            spec.name, grid="centered", fit=spec.fit, pad_mode=spec.pad_mode, **spec.options
        )
        hooks = self._validation(cfg, fields)
        model = self._model(cfg, stats, loss)
        return Prepared(model, _Items(dataset), hooks=hooks, files={STATS_FILE: stats})

    def _stats(self, cfg: FieldsRunConfig, dataset: Any, fields: tuple[str, ...]) -> dict:
        """What ``field_stats.json`` records of the training frames: the channel scales,
        the frame shape and factor, the data set and its config."""
        return {
            "scale": dataset.channel_std().tolist(),
            "channels": dataset.channels,
            "fields": list(fields),
            "shape": list(dataset.shape),
            "factor": dataset.factor,
            "frames": len(dataset),
            "data": str(cfg.data.path),
            "data_config": data_config_text(cfg.data.path),
        }

    def _validation(self, cfg: FieldsRunConfig, fields: tuple[str, ...]) -> list[Any]:
        """The loss on the data set's ``val`` frames after every epoch (made like the
        training items; none when the data set has no val split)."""

        def frames() -> _Items:
            return _Items(self._training_frames(cfg, fields, split="val"))

        path, bs = cfg.data.path, cfg.evaluation.batch_size
        return validation_hooks(path, frames, VALIDATION_FRAMES, bs, "frames")

    def _training_frames(
        self, cfg: FieldsRunConfig, fields: tuple[str, ...], split: str | None = None
    ) -> Any:
        """The training items: frames of the training split (or of ``split``)."""
        return self._frames(cfg, cfg.data.path, split or cfg.data.split, fields)

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

    def per_simulation(
        self, evaluation: dict[str, Any]
    ) -> tuple[str, dict[str, dict[str, list[float]]]] | None:
        """The mean over each test simulation's frames, per row and metric (evaluations
        made before frames recorded their simulation have none)."""
        from coldflow.tasks.recon.figures import per_simulation_scores

        scores = per_simulation_scores(evaluation)
        model = "autoencoder" if self.mode == "autoencoder" else "super-resolution"
        return None if scores is None else (model, scores)

    def summary(self, evaluation: dict[str, Any]) -> dict[str, float]:
        model = "autoencoder" if self.mode == "autoencoder" else "super-resolution"
        values = evaluation.get("mean", {}).get(model, {})
        out = {METRIC_COLUMNS.get(m, m): v for m, v in values.items()}
        if model in evaluation.get("seconds_per_frame", {}):
            out["time (s/frame)"] = evaluation["seconds_per_frame"][model]
        return out

    def findings(self, runs: Sequence[Path], labels: Sequence[str]) -> list[str]:
        """Per evaluated run: the model against the strongest baseline of each metric,
        then which baselines it beats in which metrics (:func:`baseline_findings`); for
        super-resolution also on the low-resolution solver's output."""
        model = "autoencoder" if self.mode == "autoencoder" else "super-resolution"
        out, evaluations = [], []
        for run, label in zip(runs, labels, strict=True):
            path = Path(run) / "evaluation.json"
            if not path.is_file():
                continue
            ev = json.loads(path.read_text())
            out += baseline_findings(label, model, ev["mean"])
            evaluations.append((ev, label))
            solver = ev.get("solver_output")
            if solver:  # what an upsampler meets at the end of the cheap simulator
                where = f"{label} on solver output (1-{solver['steps']} steps from test frames)"
                out += baseline_findings(where, model, solver["mean"])[:1]
        if any(ev.get("diffusion") for ev, _ in evaluations):
            from coldflow.tasks.recon.figures import diffusion_findings

            out += diffusion_findings([e for e, _ in evaluations], [lb for _, lb in evaluations])
        return out

    def compare(self, runs: Sequence[Path], out: Path, labels: Sequence[str]) -> Comparison:
        from coldflow.tasks.recon.figures import comparison

        return comparison(runs, out, labels, self.mode)

    def key_figures(self, runs: Sequence[Path], out: Path) -> list[Any]:
        """Each run's first stored test frame with its error maps (its report's figure)."""
        from coldflow.report.html import Figure

        what = "reconstruction" if self.mode == "autoencoder" else "super-resolution"
        return [
            Figure(Path(r) / "figures" / f"{self.mode}_frame0.png", f"{Path(r).name}: {what}")
            for r in runs
        ]

    def _result(self, loaded, path, frames, scores, timing, skipped, mask) -> dict[str, Any]:
        mean = {row: {m: float(v.mean()) for m, v in s.items()} for row, s in scores.items()}
        cells = frames.shape[1] * frames.shape[2]
        scored = {int(s) for s in frames.sim}
        with FieldData(path) as data:
            ranges = training_range(data)
            params = [
                {"index": s.index, "seed": s.seed, **s.params}
                for s in data.simulations()
                if s.index in scored
            ]
        return {
            "run": str(loaded.run.path),
            "name": loaded.cfg.name,
            "loss": loaded.cfg.method.loss.name,
            "data": str(path),
            "split": frames.split,
            "frames": len(frames),
            "simulations": sorted({int(s) for s in frames.sim}),
            "frame_simulation": [int(s) for s in frames.sim],  # of each per_frame entry
            "simulation_params": params,
            "training_range": ranges,
            "scene": data_config(path).scene.kind,
            "channels": frames.channels,
            "mean": mean,
            "per_frame": {r: {m: v.tolist() for m, v in s.items()} for r, s in scores.items()},
            "seconds_per_frame": timing,
            "skipped_metrics": skipped,
            "scored_cells": cells if mask is None else int(mask.sum()),
            "obstacle_cells": 0 if mask is None else int((~mask).sum()),
        }


def baseline_findings(label: str, model: str, mean: dict[str, dict[str, float]]) -> list[str]:
    """Sentences on ``mean[model]`` against every other row of ``mean`` (the ``source,
    ...`` rows aside): first against the strongest baseline in each metric, then against
    each baseline in turn."""
    rows = [r for r in mean if not r.startswith(model) and not r.startswith("source")]
    if not rows:
        return []
    metrics = list(mean[model])
    strongest = {}  # metric -> the baseline best in it
    for m in metrics:
        spec = metric_spec(m)
        for r in rows:
            if m in mean[r] and (m not in strongest or spec.better(mean[r][m], strongest[m][1])):
                strongest[m] = (r, mean[r][m])
    beaten = [m for m, (_, v) in strongest.items() if metric_spec(m).better(mean[model][m], v)]
    unbeaten = [f"{m} ({strongest[m][0]})" for m in strongest if m not in beaten]
    if not unbeaten:
        head = f"beats the strongest baseline in every metric ({', '.join(rows)} compared)"
    else:
        head = f"is no better than the strongest baseline in {', '.join(unbeaten)}" + (
            f"; it beats every baseline in {', '.join(beaten)}" if beaten else ""
        )
    out = [f"{label}: the {model} {head}."]
    for base in rows:
        shared = [m for m in metrics if m in mean[base]]  # a baseline may lack a metric
        better = [m for m in shared if metric_spec(m).better(mean[model][m], mean[base][m])]
        worse = [m for m in shared if m not in better]
        verdict = (
            f"beats {base} in every metric"
            if not worse
            else f"is no better than {base} in {', '.join(worse)}"
            + (f" (better in {', '.join(better)})" if better else "")
        )
        out.append(f"{label}: the {model} {verdict}.")
    return out


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
        mask_obstacle: bool = True,
    ) -> dict[str, Any]:
        """Reconstruction of every test frame against codecs of as many numbers: resampling,
        PCA of the training frames, DCT truncation; obstacle cells are not scored (unless
        ``mask_obstacle`` is false: every cell, as evaluations before the mask)."""
        cfg, model, dev = loaded.cfg, loaded.model, loaded.device
        path, frames, fns, skipped = self._begin(loaded, data, split, metrics)
        x, bs = frames.tensors["x"], cfg.evaluation.batch_size
        mask = scored_cells(path, cfg.data.kind) if mask_obstacle else None
        score = partial(score_fields, fns, batch_size=bs, mask=mask)
        recon, t_model = _timed(lambda c: model.reconstruct(c.to(dev)), x, bs)
        numbers = model.latent_numbers(x.shape[1:])
        stored = resample_baseline(x[:1], numbers)[1]
        codecs: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
            "resampled + bicubic": lambda c: resample_baseline(c, numbers)[0]
        }
        pca, pca_note = self._pca(loaded, frames, numbers)
        dct = DCTCodec(tuple(x.shape[1:]), numbers)
        if pca is not None:
            codecs["PCA"] = pca.reconstruct
        codecs["DCT"] = dct.reconstruct
        outputs, timing = {"autoencoder": recon}, {"autoencoder": t_model}
        for name, codec in codecs.items():
            outputs[name], timing[name] = _timed(codec, x, bs)
        scores = {name: score(out, x) for name, out in outputs.items()}
        result = self._result(loaded, path, frames, scores, timing, skipped, mask)
        result |= {
            "compression": x[0].numel() / numbers,
            "latent_numbers": numbers,
            "baseline_numbers": stored,
            "dct_numbers": dct.numbers,
            "input_numbers": x[0].numel(),
        } | pca_note
        examples = {"input": x, "autoencoder": recon, "baseline": outputs["resampled + bicubic"],
                    "dct": outputs["DCT"]} | ({"pca": outputs["PCA"]} if pca else {})  # fmt: skip
        self._save_examples(loaded, "reconstruction.safetensors", examples, frames)
        return result

    def _pca(self, loaded: LoadedRun, frames: FieldFrames, numbers: int):
        """PCA of the frames the autoencoder was trained on (or why there is none), and
        what the evaluation records about it."""
        cfg, stats = loaded.cfg, loaded.files[STATS_FILE]
        if not Path(cfg.data.path).is_file():
            return None, {"skipped_baselines": {"PCA": f"training data {cfg.data.path} not found"}}
        train = self._training_frames(cfg, tuple(frames.fields))
        pca = PCACodec.fit(train.tensors["x"], numbers, stats["scale"], device=loaded.device)
        note = {
            "pca_numbers": pca.numbers,
            "pca_fit_frames": len(train),
            "pca_basis_numbers": pca.basis.numel() + pca.mean.numel(),
        }
        return pca, note


class SuperResTask(_FieldTask):
    """Upsample a downsampled frame to the reference resolution."""

    kinds = ("superres",)
    mode = "superres"

    def _training_frames(
        self, cfg: FieldsRunConfig, fields: tuple[str, ...], split: str | None = None
    ) -> Any:
        """Downsampled reference frames, or the low-resolution solver's states
        (``method.input: source``) or a SOL run's corrected states (``sol``) paired with
        the reference (:mod:`coldflow.tasks.recon.source`)."""
        if cfg.method.input in ("source", "sol"):
            from coldflow.tasks.recon.source import sol_stepper, source_training_frames

            split = split or cfg.data.split
            stepper = None
            if cfg.method.input == "sol":
                stepper = sol_stepper(cfg.method.sol_run, cfg.data.path)
            return source_training_frames(
                cfg.data.path, split, fields, cfg.method.source, cfg.seed, stepper=stepper
            )
        return super()._training_frames(cfg, fields, split)

    def describe(self, cfg: FieldsRunConfig) -> str:
        on = {"source": " on solver output", "sol": " on SOL output"}.get(cfg.method.input, "")
        return f"superres{on}, {cfg.method.loss.name} loss"

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
        mask_obstacle: bool = True,
    ) -> dict[str, Any]:
        """SR of every test frame against bicubic, bilinear and the nearest training frame
        (among every training frame and its mirror images); SR of the uncorrected source
        trajectory; and SR of short low-resolution solver runs from the test frames
        (``solver_output``). Obstacle cells are not scored (unless ``mask_obstacle`` is
        false: every cell, as evaluations before the mask)."""
        cfg, model, dev = loaded.cfg, loaded.model, loaded.device
        path, frames, fns, skipped = self._begin(loaded, data, split, metrics)
        low, high, bs = frames.tensors["low"], frames.tensors["high"], cfg.evaluation.batch_size
        mask = scored_cells(path, "reference") if mask_obstacle else None
        f, score = frames.factor, partial(score_fields, fns, batch_size=bs, mask=mask)
        sr, t_sr = _timed(lambda c: model.upscale(c.to(dev)), low, bs)
        bicubic, t_bic = _timed(lambda c: upsample(c, f, "bicubic"), low, bs)
        bilinear = upsample(low, f, "bilinear")
        scores = {
            "super-resolution": score(sr, high),
            "bicubic": score(bicubic, high),
            "bilinear": score(bilinear, high),
        }
        nearest, nearest_note = self._nearest(loaded, frames, frames.tensors["low"])
        if nearest is not None:
            scores["nearest training frame"] = score(nearest, high)
        source = _source_frames(path, frames)
        if source is not None:
            source_sr = _timed(lambda c: model.upscale(c.to(dev)), source, bs)[0]
            scores["source, super-resolved"] = score(source_sr, high)
            scores["source, bicubic"] = score(upsample(source, f, "bicubic"), high)
        timing = {"super-resolution": t_sr, "bicubic": t_bic}
        rows, extra, more = self._model_extras(loaded, frames, score, sr, fns, mask)
        scores |= rows
        result = self._result(loaded, path, frames, scores, timing, skipped, mask)
        result |= {"factor": f, "training_input": cfg.method.input} | nearest_note | extra
        fields = {"reference": high, "bicubic": bicubic, "super-resolution": sr}
        fields |= {"nearest training frame": nearest} if nearest is not None else {}
        fields |= {r: more[k] for r, k in (("super-resolution, mean", "mean"),) if k in more}
        result["spectra"] = mean_spectra(fields, frames.channels)
        result |= self._solver_output(loaded, path, frames, score, nearest is not None)
        examples = {"low": low, "bicubic": bicubic, "superres": sr, "reference": high}
        examples |= {"nearest": nearest} if nearest is not None else {}
        examples |= more
        self._save_examples(loaded, "superres.safetensors", examples, frames)
        return result

    def _model_extras(
        self, loaded: LoadedRun, frames: FieldFrames, score, sr: torch.Tensor, fns, mask
    ) -> tuple[dict, dict, dict]:
        """What a kind of upsampler adds to the evaluation: ``(score rows, evaluation
        entries, example tensors)``; nothing for a deterministic network."""
        return {}, {}, {}

    def _solver_output(
        self, loaded: LoadedRun, path: Path, frames: FieldFrames, score, with_nearest: bool
    ) -> dict[str, Any]:
        """``{"solver_output": ...}``: super-resolution, bicubic (and the nearest training
        frame) on the low-resolution solver's states 1 .. ``evaluation.solver_steps``
        steps after starts on the downsampled test frames
        (:func:`~coldflow.tasks.recon.source.solver_output_scores`); empty when the
        option is 0 or the data set's frames leave no room for one step."""
        from coldflow.tasks.recon.source import solver_output_scores

        cfg, model, dev = loaded.cfg, loaded.model, loaded.device
        with FieldData(path) as data:
            room = data.frames - 1 - data.warmup
        steps = min(cfg.evaluation.solver_steps, room)
        if steps < 1:
            return {}
        bs, f = cfg.evaluation.batch_size, frames.factor

        def sr(low: torch.Tensor) -> torch.Tensor:
            return torch.cat([model.upscale(c.to(dev)).cpu() for c in low.split(bs)])

        ups = {"super-resolution": sr, "bicubic": lambda low: upsample(low, f, "bicubic")}
        if with_nearest:
            ups["nearest training frame"] = lambda low: self._nearest(loaded, frames, low)[0]
        out = solver_output_scores(
            ups, score, path, frames.split, frames.fields, steps, cfg.evaluation.solver_starts
        )
        return {"solver_output": out}

    def _nearest(self, loaded: LoadedRun, frames: FieldFrames, low: torch.Tensor):
        """The nearest training frame of every low-resolution input ``low`` (or ``None``)
        and what the evaluation records about the search.

        Every training frame competes (whatever ``data.stride`` the run trained with),
        and, where the training data's scene declares mirror axes, its mirror images:
        the match is on the low-resolution input, in the training units; the matched
        reference frame (mirrored like the match) is the prediction.
        """
        cfg, stats = loaded.cfg, loaded.files[STATS_FILE]
        if not Path(cfg.data.path).is_file():
            reason = f"training data {cfg.data.path} not found"
            return None, {"skipped_baselines": {"nearest training frame": reason}}
        every = cfg.model_copy(update={"data": cfg.data.model_copy(update={"stride": 1})})
        train = self._frames(every, cfg.data.path, cfg.data.split, tuple(frames.fields))
        axes = data_config(cfg.data.path).scene.mirror_axes
        mirrors = mirror_maps(axes, frames.channels)
        index, choice, _ = nearest_frames(
            low, train.tensors["low"], stats["scale"], [m for _, m in mirrors]
        )
        nearest = train.tensors["high"][index]
        for m, (_, mirror) in enumerate(mirrors, 1):
            nearest[choice == m] = mirror(nearest[choice == m])
        labels = [
            f"train sim {int(train.sim[i])} frame {int(train.frame[i])}"
            + (f" ({mirrors[c - 1][0]})" if c else "")
            for i, c in zip(index.tolist(), choice.tolist(), strict=True)
        ]
        note = {
            "nearest_training": labels,
            "nearest_searched": {"frames": len(train), "mirror_axes": list(axes)},
        }
        return nearest, note


def mean_spectra(fields: dict[str, torch.Tensor], channels: Sequence[str]) -> dict[str, Any] | None:
    """``{"k": [...], "energy": {name: E(k)}, "top_octave": [first, stop]}``: the
    kinetic-energy spectrum of each field's velocity (its first two channels, cell-centred
    ``v_y, v_x``) per shell, averaged over frames; wavenumbers in units of one over the
    high-resolution cell (every cell counted, the obstacle's too); the shells of the
    highest octave. ``None`` where the frames have no velocity pair."""
    if len(channels) < 2:
        return None
    H, W = next(iter(fields.values())).shape[-2:]
    out: dict[str, Any] = {"energy": {}, "top_octave": list(octave_bands(H, W)[-1])}
    for name, x in fields.items():
        k, energy = energy_spectrum(x[:, :2].double())
        out["k"] = k.tolist()
        out["energy"][name] = energy.mean(0).tolist()
    return out


def _source_frames(path: Path, frames: FieldFrames) -> torch.Tensor | None:
    """The uncorrected low-resolution solver's frames at the same (sim, frame) pairs."""
    out = []
    with FieldData(path) as data:
        for sim in dict.fromkeys(int(s) for s in frames.sim):
            wanted = frames.frame[frames.sim == sim].tolist()
            out.append(torch.from_numpy(read_centered(data, sim, "source", wanted, frames.fields)))
    return torch.cat(out) if out else None
