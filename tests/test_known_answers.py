"""Known answers of the evaluation paths: what a perfect or an untrained model must score,
which candidate a memorisation baseline must pick, and which way every verdict must go
on evaluations whose answer is known (each check names the full distinguishing phrase,
so that it cannot pass for both outcomes)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from fields_util import smooth_fields
from torch import nn

from coldflow.config import dump_yaml
from coldflow.degradations.noise import LinearNoise
from coldflow.experiment import load_config_file
from coldflow.methods.ddpm import DDPM
from coldflow.metrics import metric_spec
from coldflow.metrics.baselines import nearest_rms
from coldflow.runs import RunDir, save_tensors
from coldflow.simulate.run import simulate
from coldflow.tasks import TASKS
from coldflow.tasks.base import LoadedRun
from coldflow.tasks.diffusion.findings import (
    ALIKE_SPREAD,
    EMPTY_INK,
    black_start_collapse,
    blur_vs_ddpm_findings,
    cold_findings,
    configurations,
    ddpm_findings,
)
from coldflow.tasks.recon.baselines import nearest_frames
from coldflow.tasks.recon.task import STATS_FILE, resample_baseline
from coldflow.tasks.sol.evaluation import mirror_staggered, nearest_trajectory, verdict

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "mnist" / "quick.yaml"
QUICK_BLUR = ROOT / "configs" / "mnist" / "quick_blur.yaml"


def _write_json(path: Path, value: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "evaluation.json").write_text(json.dumps(value))
    return path


# ------------------------------------------------------------------ autoencoder


def test_resample_baseline_at_full_storage_is_exact():
    x = smooth_fields(3, size=32, channels=2, seed=0)[..., :16]  # [3, 2, 32, 16]
    numbers = x[0].numel()
    base, stored = resample_baseline(x, numbers)
    assert stored == numbers and torch.equal(base, x)  # no pooling, bicubic at scale 1
    # a quarter of the numbers: a 16 x 8 grid, stored exactly; a constant survives
    base, stored = resample_baseline(torch.full_like(x, 0.3), numbers // 4)
    assert stored == numbers // 4
    torch.testing.assert_close(base, torch.full_like(x, 0.3))
    # fewer numbers lose information: the known-exact case above is not trivially true
    assert (resample_baseline(x, numbers // 4)[0] - x).abs().max() > 1e-3


class _IdentityAutoencoder(nn.Module):
    """A perfect autoencoder: the reconstruction is the input, the code as large."""

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    def latent_numbers(self, shape) -> int:
        return math.prod(shape)


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("known_answers") / "tiny.h5"
    simulate(ROOT / "configs/fluids/karman_tiny.yaml", out, progress=False)
    return out


def _loaded(kind: str, data: Path, tmp: Path, model_section: str, scale=None) -> LoadedRun:
    """An untrained run of the fields task ``kind`` (its model as ``prepare`` builds it,
    or built with ``scale`` in place of the data's standard deviations)."""
    tmp.mkdir(parents=True, exist_ok=True)
    cfg_file = tmp / f"{kind}.yaml"
    cfg_file.write_text(
        f"name: {kind}\ndata: {{path: {data}}}\nmodel: {model_section}\n"
        f"method: {{kind: {kind}}}\ntraining: {{device: cpu}}\n"
        "evaluation: {metrics: [mse, mae, rel_l1, psnr], figure_frames: 1}\n"
    )
    cfg, task = load_config_file(cfg_file), TASKS[kind]
    torch.manual_seed(0)
    prepared = task.prepare(cfg, {})
    files = prepared.files
    model = prepared.model
    if scale is not None:
        files = {STATS_FILE: {**files[STATS_FILE], "scale": scale}}
        model = task.build(cfg, files)
    return LoadedRun(cfg, RunDir(tmp / "run"), model.eval(), 0, torch.device("cpu"), files, task)


@pytest.mark.slow
def test_identity_autoencoder_scores_zero_and_full_storage_baseline_is_exact(tiny_h5, tmp_path):
    loaded = _loaded("autoencoder", tiny_h5, tmp_path, "{levels: 1, compression: 2, width: 4}")
    loaded.model = _IdentityAutoencoder()
    result = loaded.task.evaluate(loaded)
    assert result["frames"] > 0 and result["compression"] == 1.0
    assert result["latent_numbers"] == result["baseline_numbers"] == result["input_numbers"]
    assert {"autoencoder", "resampled + bicubic"} <= set(result["mean"])
    for row in ("autoencoder", "resampled + bicubic"):
        for m, value in result["mean"][row].items():
            expected = math.inf if metric_spec(m).higher_is_better else 0.0  # PSNR of a copy
            assert value == expected, (row, m, value)
            assert all(v == expected for v in result["per_frame"][row][m]), (row, m)


# ------------------------------------------------------------------ super-resolution


@pytest.mark.slow
def test_untrained_superres_run_equals_the_bicubic_row(tiny_h5, tmp_path):
    """The SR net is bicubic plus a residual whose last layer starts at zero
    (nets/superres.py), so an untrained run *is* the bicubic baseline. The method divides
    by the data's channel scales before the net and multiplies after, which rounds (the
    rows agree to float32 rounding); with power-of-two scales that round trip is exact,
    and so is the equality of every score."""
    loaded = _loaded("superres", tiny_h5, tmp_path / "std", "{width: 4, blocks: 1}")
    result = loaded.task.evaluate(loaded)
    sr, bic = result["per_frame"]["super-resolution"], result["per_frame"]["bicubic"]
    for m in sr:
        torch.testing.assert_close(torch.tensor(sr[m]), torch.tensor(bic[m]), rtol=1e-5, atol=1e-9)
    assert result["mean"]["bilinear"]["mse"] != result["mean"]["bicubic"]["mse"]
    channels = len(result["channels"])
    exact = _loaded(
        "superres", tiny_h5, tmp_path / "pow2", "{width: 4, blocks: 1}",
        scale=[2.0 ** -(k + 1) for k in range(channels)],
    )  # fmt: skip
    result = exact.task.evaluate(exact)
    assert result["mean"]["super-resolution"] == result["mean"]["bicubic"]
    assert result["per_frame"]["super-resolution"] == result["per_frame"]["bicubic"]
    source = result["per_frame"]["source, super-resolved"]  # the data set's source frames
    assert source == result["per_frame"]["source, bicubic"]


@pytest.mark.slow
def test_nearest_training_frame_of_a_training_frame_is_itself(tiny_h5, tmp_path):
    """Evaluated on its own training frames, the memorisation baseline copies each one."""
    loaded = _loaded("superres", tiny_h5, tmp_path, "{width: 4, blocks: 1}")
    result = loaded.task.evaluate(loaded, split="train", metrics=["mse", "mae"])
    assert result["split"] == "train"
    assert result["mean"]["nearest training frame"] == {"mse": 0.0, "mae": 0.0}
    assert result["mean"]["bicubic"]["mse"] > 0


def test_nearest_training_frame_picks_the_known_frame():
    """The SR baseline's search (no mirrors, unit scale: its plain form)."""
    g = torch.Generator().manual_seed(0)
    train_low = smooth_fields(24, size=8, channels=2, seed=1)
    pick = torch.tensor([5, 0, 23, 5, 17])
    low = train_low[pick] + 1e-4 * torch.randn(5, 2, 8, 8, generator=g)
    index = nearest_frames(low, train_low)[0]
    assert torch.equal(index, pick)


def test_nearest_rms_picks_the_known_reference_and_reads_a_copy_as_zero():
    g = torch.Generator().manual_seed(0)
    refs = smooth_fields(40, size=8, channels=1, seed=2)
    pick = torch.tensor([3, 39, 0, 3, 21, 8, 8, 30, 12])
    noise = 1e-3 * torch.randn(len(pick), 1, 8, 8, generator=g)
    queries = refs[pick] + noise
    dist, idx = nearest_rms(queries, refs, chunk=4)  # chunks of 4: three passes
    assert torch.equal(idx, pick)
    expected = (queries.double() - refs[pick].double()).pow(2).flatten(1).mean(1).sqrt()
    torch.testing.assert_close(dist, expected, rtol=1e-12, atol=0)
    assert float(dist.min()) > 5e-4 and float(dist.max()) < 2e-3  # the noise's RMS
    copies, idx = nearest_rms(refs[pick], refs)
    assert torch.equal(idx, pick) and not copies.any()


# ------------------------------------------------------------------ nearest trajectory


def _staggered_flow(frames: int, H: int, W: int, seed: int) -> torch.Tensor:
    """``[frames, 2, H + 1, W + 1]`` a pattern travelling one cell per frame, with the zero
    padding of the staggered layout (y faces ``[:H + 1, :W]``, x faces ``[:H, :W + 1]``)."""
    wide = smooth_fields(1, size=H + 1 + frames + W, channels=2, seed=seed)[0, :, : H + 1]
    v = torch.stack([wide[:, :, t : t + W + 1] for t in range(frames)])
    v[:, 0, :, -1] = 0
    v[:, 1, -1, :] = 0
    return v


def test_nearest_trajectory_finds_the_mirrored_flow_at_its_best_phase():
    first, T, H, W = 4, 4, 8, 6
    flows = {k: _staggered_flow(12, H, W, seed=10 + k) for k in (0, 1)}
    assert torch.equal(mirror_staggered(mirror_staggered(flows[0])), flows[0])
    candidates = {}
    for k, v in flows.items():  # as the evaluation offers them: each flow and its mirror
        candidates[f"train sim {k}"] = (first, v)
        candidates[f"train sim {k} (mirrored)"] = (first, mirror_staggered(v))
    g = torch.Generator().manual_seed(0)

    def noisy(t):
        return t + 1e-4 * torch.randn(t.shape, generator=g)

    # a test flow that is training flow 1 mirrored, five frames on (stored frames 9-12)
    target = mirror_staggered(flows[1])[5 : 5 + T]
    label, traj = nearest_trajectory(noisy(target), candidates)
    assert label == "train sim 1 (mirrored), frames 9-12" and torch.equal(traj, target)
    # not mirrored, phase shifted by two frames: the best phase of flow 0
    label, traj = nearest_trajectory(noisy(flows[0][2 : 2 + T]), candidates)
    assert label == "train sim 0, frames 6-9" and torch.equal(traj, flows[0][2 : 2 + T])
    # a candidate exactly as long as the test flow is named without frames
    label, _ = nearest_trajectory(noisy(flows[1][:T]), {"whole": flows[1][:T], **candidates})
    assert label == "whole"


# ------------------------------------------------------------------ fluid verdicts


def _means(corrected: float, source: float, nearest: float | None) -> dict:
    rows = {"corrected": corrected, "source": source}
    if nearest is not None:
        rows["nearest_training"] = nearest
    return {k: {"mse": v, "rel_l1": 10 * v} for k, v in rows.items()}


GENERALISES = "in every metric: the correction generalises to these test simulations."
NO_CLAIM = "so no claim of generalisation is supported."


def test_sol_verdict_says_generalises_only_when_both_baselines_are_beaten():
    good = verdict(_means(1.0, 2.0, 1.5), ["mse", "rel_l1"])
    assert good.startswith("The corrected solver beats both the source and the nearest")
    assert good.endswith(GENERALISES) and NO_CLAIM not in good
    copy = verdict(_means(1.0, 2.0, 0.5), ["mse", "rel_l1"])
    assert "but not the nearest training trajectory in mse, rel_l1" in copy
    assert copy.endswith(NO_CLAIM) and "generalises" not in copy
    worse = verdict(_means(3.0, 2.0, 0.5), ["mse", "rel_l1"])
    assert worse == "The corrected solver is no better than the source in mse, rel_l1."
    alone = verdict(_means(1.0, 2.0, None), ["mse"])
    assert alone == "The corrected solver beats the source in every metric (no training data)."
    # on the means it generalises, but simulation 8 is copied better
    per_sim = {
        "corrected": {"mse": [1.0, 1.0], "rel_l1": [10.0, 10.0]},
        "source": {"mse": [2.0, 2.0], "rel_l1": [20.0, 20.0]},
        "nearest_training": {"mse": [3.0, 0.9], "rel_l1": [30.0, 9.0]},
    }
    mixed = verdict(_means(1.0, 2.0, 1.95), ["mse", "rel_l1"], per_sim, ["sim 7", "sim 8"])
    assert "the correction generalises on average, but not on 1 of the 2 test" in mixed
    assert "(sim 8)" in mixed and "sim 7" not in mixed


def _field_run(tmp: Path, name: str, model: str, rows: dict) -> Path:
    return _write_json(tmp / name, {"mean": {model: rows.pop(model), **rows}})


def test_field_findings_say_beats_only_when_every_metric_is_better(tmp_path):
    """The sentence on each baseline (any headline sentence aside): "beats B in every
    metric" exactly when every metric is strictly better, else the metrics it is not."""
    task = TASKS["superres"]
    mixed = _field_run(tmp_path, "mixed", "super-resolution", {
        "super-resolution": {"mse": 1.0, "psnr": 30.0},
        "bicubic": {"mse": 2.0, "psnr": 25.0},
        "nearest training frame": {"mse": 1.5, "psnr": 40.0},
        "source, bicubic": {"mse": 0.1, "psnr": 50.0},  # the source rows are not baselines
    })  # fmt: skip
    said = task.findings([mixed], ["A"])
    assert "A: the super-resolution beats bicubic in every metric." in said
    nearest = "A: the super-resolution is no better than nearest training frame in psnr"
    assert f"{nearest} (better in mse)." in said
    assert not any("beats nearest training frame" in s or "source, bicubic" in s for s in said)
    assert not any("beats the strongest baseline in every metric" in s for s in said)
    best = _field_run(tmp_path, "best", "super-resolution", {
        "super-resolution": {"mse": 1.0, "psnr": 45.0},
        "bicubic": {"mse": 2.0, "psnr": 25.0},
        "nearest training frame": {"mse": 1.5, "psnr": 40.0},
    })  # fmt: skip
    said = task.findings([best], ["A"])
    assert "A: the super-resolution beats nearest training frame in every metric." in said
    assert not any("is no better than" in s for s in said)
    ae = _field_run(tmp_path, "ae", "autoencoder", {
        "autoencoder": {"mae": 1.0, "mse": 2.0},
        "resampled + bicubic": {"mae": 0.5, "mse": 2.0},  # a tie is not better
    })  # fmt: skip
    said = TASKS["autoencoder"].findings([ae], ["B"])
    assert "B: the autoencoder is no better than resampled + bicubic in mae, mse." in said
    assert not any("beats resampled + bicubic" in s for s in said)


# ------------------------------------------------------------------ MNIST findings


def _diffusion_run(tmp: Path, name: str, base: Path, sets: list[str], ev: dict) -> Path:
    run = _write_json(tmp / name, ev)
    (run / "config.yaml").write_text(dump_yaml(load_config_file(base, sets)))
    return run


def _ddpm_runs(tmp: Path, fids: dict[str, float]) -> tuple[list[Path], list[str]]:
    under = ["degradation.beta1=1e-5", "degradation.beta2=1e-3"]  # alpha_bar_T ~ 0.6
    runs = [
        _diffusion_run(tmp, lb, QUICK, under if lb == "model2_T1000" else [],
                       {"fid": fid, "n_samples": 500, "sampler": "ancestral"})
        for lb, fid in fids.items()
    ]  # fmt: skip
    return runs, list(fids)


MATCH = "match each other and beat the default schedule is"
T1000 = "the seed study's claim that model2 at T = 1000 is clearly worse is"


def test_ddpm_findings_support_the_seed_claims_only_when_the_numbers_do(tmp_path):
    fids = {"diffusion_model": 20.0, "model1": 10.0, "model2": 11.0, "model2_T1000": 40.0}
    text = " ".join(ddpm_findings(*_ddpm_runs(tmp_path / "yes", fids)))
    assert "model1 (10; 500 samples, ancestral) has the lowest FID of the DDPM runs" in text
    assert f"{MATCH} supported by these numbers (match: within 20 %)." in text
    assert "model2_T1000 ends its schedule at alpha_bar_T = 0.6" in text
    assert f"4.00x that of model1 (10), clearly worse (threshold 1.5x); {T1000} supported" in text
    # model2 far from model1; model2_T1000 within the threshold of the best full run
    fids = {"diffusion_model": 20.0, "model1": 10.0, "model2": 30.0, "model2_T1000": 14.0}
    text = " ".join(ddpm_findings(*_ddpm_runs(tmp_path / "no", fids)))
    assert f"{MATCH} not supported by these numbers" in text
    assert "not clearly worse (threshold 1.5x);" in text and f"{T1000} not supported" in text
    # matching each other, but not below the default schedule
    fids = {"diffusion_model": 20.0, "model1": 25.0, "model2": 26.0}
    text = " ".join(ddpm_findings(*_ddpm_runs(tmp_path / "above", fids)))
    assert "differ by 4 % and not both score below" in text
    assert f"{MATCH} not supported by these numbers" in text


def _seeded_ddpm_runs(tmp: Path, fids: dict[str, list[float]]) -> tuple[list[Path], list[str]]:
    """Runs ``<name>_s<seed>`` of a seeded study (config named ``<name>``, seed ``seed``)."""
    under = ["degradation.beta1=1e-5", "degradation.beta2=1e-3"]  # alpha_bar_T ~ 0.6
    runs, labels = [], []
    for name, values in fids.items():
        for seed, fid in enumerate(values):
            sets = [f"name={name}", f"seed={seed}", *(under if name == "model2_T1000" else [])]
            ev = {"fid": fid, "n_samples": 500, "sampler": "ancestral"}
            runs.append(_diffusion_run(tmp, f"{name}_s{seed}", QUICK, sets, ev))
            labels.append(f"{name}_s{seed}")
    return runs, labels


def test_seeded_ddpm_findings_judge_the_claims_by_paired_intervals(tmp_path):
    fids = {
        "diffusion_model": [20.0, 21.0, 19.0],
        "model1": [10.0, 11.0, 10.5],
        "model2": [10.4, 10.6, 11.2],
        "model2_T1000": [40.0, 42.0, 41.0],
    }
    said = ddpm_findings(*_seeded_ddpm_runs(tmp_path / "yes", fids))
    text = " ".join(said)
    # one line of means over seeds, lowest first; no per-run ranking of 12 runs
    assert said[0].startswith("FID over seeds (mean ± 95 % interval, lowest first): model1 ")
    assert "(3 seeds)" in said[0] and "model1_s0" not in text
    assert "model1 and model2 cannot be told apart in FID at this size" in text
    assert "model1 beats diffusion_model in FID" in text
    assert f"{MATCH} supported by these numbers (95 %)." in text
    assert f"{T1000} supported by these numbers" in text
    # model1's difference from the default straddles zero: no "beats", claim not supported
    fids["model1"] = [10.0, 30.0, 12.0]
    fids["model2_T1000"] = [12.0, 25.0, 11.0]
    text = " ".join(ddpm_findings(*_seeded_ddpm_runs(tmp_path / "no", fids)))
    assert "model1 and diffusion_model cannot be told apart in FID at this size" in text
    assert "model1 beats diffusion_model" not in text
    assert f"{MATCH} not supported by these numbers (95 %)." in text
    assert f"{T1000} not supported by these numbers" in text
    # one seed each: the spread over seeds is unknown, so nothing beats anything
    one = {k: v[:1] for k, v in fids.items()}
    text = " ".join(ddpm_findings(*_seeded_ddpm_runs(tmp_path / "one", one)))
    assert "beats" not in text and f"{MATCH} not supported" in text and "± inf" in text


def test_seeded_findings_give_precision_and_recall_and_blur_against_ddpm(tmp_path):
    """Known answers: precision/recall over seeds with paired verdicts; blur against the
    DDPM configuration of lowest FID, each FID taken above its own real-digit floor."""
    runs, labels = [], []
    for name, fids, precision in (
        ("diffusion_model", [20.0, 21.0, 19.0], [0.50, 0.52, 0.51]),
        ("model1", [10.0, 11.0, 10.5], [0.70, 0.40, 0.55]),  # straddles diffusion_model's
    ):
        for seed, (fid, p) in enumerate(zip(fids, precision, strict=True)):
            ev = {"fid": fid, "precision": p, "recall": 0.3, "fid_real_train": 5.0}
            sets = [f"name={name}", f"seed={seed}"]
            runs.append(_diffusion_run(tmp_path, f"{name}_s{seed}", QUICK, sets, ev))
            labels.append(f"{name}_s{seed}")
    text = " ".join(ddpm_findings(runs, labels))
    assert "model1 precision 0.55 ± " in text and "recall 0.3 ± 0" in text
    assert "model1 and diffusion_model cannot be told apart in precision at this size" in text

    # blur: FID 40 at a floor of 30 (excess 10) against model1's 10.5 - 5 = 5.5 (mean)
    cold = {}
    for seed, (fid, floor) in enumerate(((40.0, 30.0), (41.0, 30.0), (39.5, 30.0))):
        ev = {
            "unconditional_fid": {"gmm": fid, "black": 900.0},
            "unconditional_precision": {"gmm": 0.9, "black": 0.0},
            "fid_real_train": floor,
        }
        sets = ["name=blur_model", f"seed={seed}"]
        cold[seed] = _diffusion_run(tmp_path, f"blur_model_s{seed}", QUICK_BLUR, sets, ev)
    ddpm = configurations(runs, labels)
    said = blur_vs_ddpm_findings(ddpm, {"blur_model": cold})
    assert len(said) == 1 and "against model1 (the DDPM configuration of lowest FID)" in said[0]
    assert "model1 beats blur_model in FID above the floor" in said[0]
    # model1's precision varies over seeds (0.40 ... 0.70): the gap to 0.9 straddles zero
    assert "blur_model and model1 cannot be told apart in precision at this size" in said[0]
    # the same through the task hook, from a study's groups
    task = TASKS["ddpm"]
    groups = {"ddpm": runs, "cold": list(cold.values())}
    assert task.study_findings(groups) == said
    assert task.study_findings({"ddpm": runs}) == []


def _grid(kind: str, n: int = 16, seed: int = 0) -> torch.Tensor:
    """``[n, 1, 28, 28]`` images in [-0.5, 0.5]: ``black`` (+ tiny noise), ``alike`` (one
    bright blob repeated), or ``diverse`` (bright blobs at random places)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    if kind == "black":
        return -0.5 + 0.002 * torch.rand(n, 1, 28, 28, generator=g)
    centres = 6 + 16 * torch.rand(n, 2, generator=g)
    if kind == "alike":
        centres = torch.full((n, 2), 14.0)
    d2 = (yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2
    return (torch.exp(-d2 / 18.0) - 0.5)[:, None]


def test_black_start_collapse_measures_emptiness_and_alikeness():
    diverse = _grid("diverse", seed=1)
    empty = black_start_collapse(_grid("black"), diverse, (-0.5, 0.5))
    assert empty["empty"] and empty["collapsed"] and empty["ink_black"] < EMPTY_INK
    alike = black_start_collapse(_grid("alike"), diverse, (-0.5, 0.5))
    assert not alike["empty"] and alike["alike"] and alike["collapsed"]
    assert alike["spread_black"] < ALIKE_SPREAD * alike["spread_gmm"]
    fine = black_start_collapse(_grid("diverse", seed=2), diverse, (-0.5, 0.5))
    assert not fine["empty"] and not fine["alike"] and not fine["collapsed"]
    assert fine["spread_black"] > 0.5 * fine["spread_gmm"] > 0


TABLE = {
    "degraded": {"rmse": 0.30, "ssim": 0.40},
    "lookup": {"rmse": 0.20, "ssim": 0.50},
    "naive": {"rmse": 0.15, "ssim": 0.60},
    "improved": {"rmse": 0.10, "ssim": 0.70},
}


def _cold_run(tmp: Path, name: str, table: dict, fids: dict, black: str | None) -> Path:
    ev = {"conditional": table, "conditional_images": 8, "unconditional_fid": fids,
          "n_samples": 16}  # fmt: skip
    run = _diffusion_run(tmp, name, QUICK_BLUR, [], ev)
    if black is not None:
        grids = {"images": _grid("diverse", seed=1), "images_black_start": _grid(black, seed=2)}
        save_tensors(RunDir(run).samples_path(), grids)
    return run


COLLAPSE = "The seed study's claim that black-start samples collapse is"


def test_cold_findings_judge_the_black_start_by_its_samples_not_by_fid(tmp_path):
    # collapsed to black, though its FID is the better one: supported (FID order says not)
    run = _cold_run(tmp_path, "a", TABLE, {"gmm": 300.0, "black": 200.0}, "black")
    (text,) = [s for s in cold_findings([run], ["a"]) if "black start" in s]
    assert "the black start collapses to near-empty images" in text
    assert f"{COLLAPSE} supported by these numbers" in text
    # diverse bright samples, though their FID is worse: not supported (FID order says so)
    run = _cold_run(tmp_path, "b", TABLE, {"gmm": 100.0, "black": 900.0}, "diverse")
    (text,) = [s for s in cold_findings([run], ["b"]) if "black start" in s]
    assert "the black-start images are neither empty nor alike" in text
    assert f"{COLLAPSE} not supported by these numbers" in text
    # one image repeated: collapsed, not empty
    run = _cold_run(tmp_path, "c", TABLE, {"gmm": 100.0, "black": 900.0}, "alike")
    (text,) = [s for s in cold_findings([run], ["c"]) if "black start" in s]
    assert "the black start collapses to nearly one image repeated" in text
    assert f"{COLLAPSE} supported by these numbers" in text
    # no final grids: no verdict from FID alone
    run = _cold_run(tmp_path, "d", TABLE, {"gmm": 100.0, "black": 900.0}, None)
    (text,) = [s for s in cold_findings([run], ["d"]) if "black start" in s]
    assert "black-start samples collapse is not judged" in text
    assert f"{COLLAPSE} supported" not in text and f"{COLLAPSE} not supported" not in text


def test_cold_findings_on_table1_go_both_ways(tmp_path):
    fids = {"gmm": 100.0, "black": 900.0}
    good = " ".join(cold_findings([_cold_run(tmp_path, "g", TABLE, fids, None)], ["g"]))
    assert "the improved sampler beats the naive one on RMSE, SSIM (RMSE 0.1000" in good
    assert "the seed study's claim that blur restoration is good is supported by" in good
    assert "is better on both: the model restores more than it could by remembering" in good
    bad_table = {
        "degraded": {"rmse": 0.10, "ssim": 0.80},
        "lookup": {"rmse": 0.05, "ssim": 0.90},
        "naive": {"rmse": 0.15, "ssim": 0.60},
        "improved": {"rmse": 0.20, "ssim": 0.50},
    }
    bad = " ".join(cold_findings([_cold_run(tmp_path, "b", bad_table, fids, None)], ["b"]))
    assert "the improved sampler does not beat the naive one (RMSE 0.2000" in bad
    assert "the seed study's claim that blur restoration is good is not supported by" in bad
    assert "is not better on both: no evidence that it restores more than remembering" in bad


# ------------------------------------------------------------------ DDPM sampler variance


def _noise_scale(step, seed: int = 3, shape=(4096,)) -> torch.Tensor:
    """The per-element factor a sampler step puts on its Gaussian draw: the step from
    z = 0 with predicted noise 0 is exactly sigma * xi, and xi is redrawn from the seed."""
    out = step(torch.zeros(shape), torch.zeros(shape), torch.Generator().manual_seed(seed))
    xi = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return out / xi


def test_ddim_eta_1_uses_the_posterior_variance_and_ancestral_uses_beta():
    noise = LinearNoise(beta1=0.01, beta2=0.2, n_T=10)
    model = DDPM(nn.Identity(), noise)
    beta, abar = noise.beta64, noise.alpha_bar64
    for t in range(2, noise.n_T + 1):
        posterior = (1 - abar[t - 1]) / (1 - abar[t]) * beta[t]  # beta~_t, "fixed small"
        ddim = _noise_scale(lambda z, e, g, t=t: model._ddim_step(z, e, t, t - 1, 1.0, g))
        ancestral = _noise_scale(lambda z, e, g, t=t: model._ancestral_step(z, e, t, g))
        torch.testing.assert_close(ddim**2, torch.full_like(ddim, float(posterior)), rtol=1e-4,
                                   atol=0)  # fmt: skip
        torch.testing.assert_close(ancestral**2, torch.full_like(ancestral, float(beta[t])),
                                   rtol=1e-5, atol=0)  # fmt: skip
        assert float(posterior) < 0.99 * float(beta[t])  # the two are told apart
        # the same posterior mean: the steps differ only by their noise
        g = torch.Generator().manual_seed(5)
        z, eps = torch.randn(64, generator=g), torch.randn(64, generator=g)
        xi = torch.randn(64, generator=torch.Generator().manual_seed(7))
        mean_d = model._ddim_step(z, eps, t, t - 1, 1.0, torch.Generator().manual_seed(7))
        mean_a = model._ancestral_step(z, eps, t, torch.Generator().manual_seed(7))
        torch.testing.assert_close(
            mean_d - posterior.sqrt().float() * xi, mean_a - beta[t].sqrt().float() * xi,
            rtol=1e-4, atol=1e-5,
        )  # fmt: skip
    # the last step (t = 1) adds no noise in either sampler
    assert torch.equal(_noise_scale(lambda z, e, g: model._ddim_step(z, e, 1, 0, 1.0, g)),
                       torch.zeros(4096))  # fmt: skip
    assert torch.equal(_noise_scale(lambda z, e, g: model._ancestral_step(z, e, 1, g)),
                       torch.zeros(4096))  # fmt: skip
    # eta = 0 is deterministic
    assert torch.equal(_noise_scale(lambda z, e, g: model._ddim_step(z, e, 5, 4, 0.0, g)),
                       torch.zeros(4096))  # fmt: skip


def test_ddim_large_variance_is_the_ancestral_step_and_the_skipped_jumps_beta():
    noise = LinearNoise(beta1=0.01, beta2=0.2, n_T=10)
    model = DDPM(nn.Identity(), noise)
    abar = noise.alpha_bar64
    g = torch.Generator().manual_seed(5)
    z, eps = torch.randn(64, generator=g), torch.randn(64, generator=g)
    for t in range(2, noise.n_T + 1):  # every step: exactly the ancestral sampler's step
        large = model._ddim_step(z, eps, t, t - 1, 1.0, torch.Generator().manual_seed(7), "large")
        ancestral = model._ancestral_step(z, eps, t, torch.Generator().manual_seed(7))
        torch.testing.assert_close(large, ancestral, rtol=1e-4, atol=1e-5)
    # a skipped jump 9 -> 3: variance eta^2 (1 - abar_9 / abar_3), larger than eq. (16)'s
    large = _noise_scale(lambda z, e, g: model._ddim_step(z, e, 9, 3, 0.5, g, "large"))
    small = _noise_scale(lambda z, e, g: model._ddim_step(z, e, 9, 3, 0.5, g))
    want = 0.25 * (1 - abar[9] / abar[3])
    torch.testing.assert_close(large**2, torch.full_like(large, float(want)), rtol=1e-4, atol=0)
    assert float(small[0] ** 2) < 0.99 * float(want)
    with pytest.raises(ValueError, match="variance"):
        model.sample(2, (1, 2, 2), sampler="ddim", variance="huge")


def test_ddim_without_skipped_steps_visits_every_timestep():
    """The variance test above is the whole sampler's: DDIM with steps = n_T steps
    t -> t - 1 through every timestep, as the ancestral sampler does."""
    from coldflow.methods.ddpm import ddim_timesteps

    assert ddim_timesteps(10, 10) == list(range(10, 0, -1))
    assert ddim_timesteps(1000, 1000) == list(range(1000, 0, -1))
