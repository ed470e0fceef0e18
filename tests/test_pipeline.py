"""The SOL + super-resolution pipeline: compared with the high-resolution reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from coldflow.data.frames import read_centered
from coldflow.data.store import FieldData
from coldflow.errors import UserError
from coldflow.experiment import train
from coldflow.methods.superres import upsample
from coldflow.metrics import FIELD_METRICS, metric_functions, score_fields
from coldflow.simulate.run import simulate
from coldflow.tasks.handle import load_run, open_run
from coldflow.tasks.pipeline.evaluation import evaluate_pipeline, score_upsampled

ROOT = Path(__file__).resolve().parents[1]


def test_exactly_representable_field_scores_zero_error():
    # a constant field is reproduced exactly by bicubic upsampling: zero error everywhere
    low = torch.full((3, 2, 2, 4, 8), 0.7)  # [T, B, C, h, w]
    high = torch.full((3, 2, 2, 8, 16), 0.7)
    fns = {n: FIELD_METRICS[n](grid="centered") for n in ("mse", "rel_l1")}
    scores, seconds = score_upsampled(low, high, lambda x: upsample(x, 2, "bicubic"), fns)
    assert set(scores) == {"mse", "rel_l1"} and seconds >= 0
    for values in scores.values():  # zero up to float32 rounding of the interpolation weights
        assert len(values) == 3 and max(values) < 1e-6
    # and a wrong upsampler is caught: nearest of a ramp is not the ramp
    y = torch.arange(16.0).view(1, 1, 1, 16, 1).expand(1, 1, 1, 16, 8)
    ramp_low = torch.nn.functional.avg_pool2d(y[0], 2)[None]
    bad, _ = score_upsampled(ramp_low, y, lambda x: upsample(x, 2, "nearest"), fns)
    assert bad["mse"][0] > 0.1


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    data = tmp / "tiny.h5"
    simulate(ROOT / "configs/fluids/karman_tiny.yaml", data, progress=False)
    sol = tmp / "sol.yaml"
    sol.write_text(
        f"name: sol\ndata: {{path: {data}}}\n"
        "model: {kind: sol_resnet_small, width: 4, blocks: 1, kernel_size: 3}\n"
        "method: {kind: sol, m: 2}\n"
        "training: {epochs: 1, batch_size: 4, progress: false, device: cpu}\n"
    )
    sr = tmp / "sr.yaml"
    sr.write_text(
        f"name: sr\ndata: {{path: {data}, density: false}}\nmodel: {{width: 4, blocks: 1}}\n"
        "method: {kind: superres}\n"
        "training: {epochs: 1, batch_size: 8, progress: false, device: cpu}\n"
    )
    sr3 = tmp / "sr3.yaml"
    sr3.write_text(sr.read_text().replace("density: false", "density: true"))
    dsr = tmp / "dsr.yaml"
    dsr.write_text(
        f"name: dsr\ndata: {{path: {data}, density: false}}\n"
        "model: {channels: [4, 8], time_dim: 8}\n"
        "method: {kind: diffusion_sr, process: ddpm, n_T: 8, steps: 2}\n"
        "training: {epochs: 1, batch_size: 8, progress: false, device: cpu}\n"
    )
    return (
        data,
        train(sol, tmp / "sol").path,
        train(sr, tmp / "sr").path,
        train(sr3, tmp / "sr3").path,
        train(dsr, tmp / "dsr").path,
    )


def test_pipeline_table_speedups_and_figures(runs, tmp_path):
    data, sol, sr, *_ = runs
    result = evaluate_pipeline(
        [sol], [sr], tmp_path / "p", data, steps=3, metrics=["mse", "rel_l1"]
    )
    names = set(result["pipelines"])
    assert names == {
        "source -> bicubic",
        "source -> SR sr",
        "SOL sol -> bicubic",
        "SOL sol -> SR sr",
    }
    for row in result["pipelines"].values():
        assert len(row["per_step"]["mse"]) == 3 and row["speedup"] > 0
        assert row["mean"]["mse"] > 0  # a coarse solver never matches the reference exactly
    assert json.loads((tmp_path / "p" / "pipeline.json").read_text())["steps"] == 3
    table = (tmp_path / "p" / "pipeline.md").read_text()
    assert "high-resolution solver (reference)" in table and "speed-up" in table
    for fig in ("pipeline_error_vs_step.png", "pipeline_error_vs_cost.png"):
        assert (tmp_path / "p" / "figures" / fig).stat().st_size > 1000


@pytest.mark.parametrize("upsampler", ["sr", "diffusion"])
def test_pipeline_rows_are_the_stored_source_upsampled_and_speedups_are_time_ratios(
    runs, tmp_path, upsampler
):
    """Known answers: from the data set's start frame the uncorrected solver is the data
    set's own source run, so "source -> bicubic" is the bicubic upsampling of the stored
    source frames and "source -> SR" the SR run's upscaling of them (a loss-trained or a
    conditional-DDPM super-resolution), scored here without the pipeline; every speed-up
    is the high-resolution time over the row's time."""
    data, sol, sr, _, dsr = runs
    sr = dsr if upsampler == "diffusion" else sr
    metrics = ["mse", "rel_l1"]
    result = evaluate_pipeline([sol], [sr], tmp_path / "p", data, steps=4, metrics=metrics)
    fns = metric_functions(metrics, "centered")
    with FieldData(data) as d:
        assert result["start"] == d.warmup == d.source_start  # where the stored source starts
        frames = list(range(d.source_start + 1, d.source_start + result["steps"] + 1))
        sims = d.simulations("test")
        source, high = (
            torch.stack([torch.from_numpy(read_centered(d, s, kind, frames, ("velocity",)))
                         for s in sims], 1)
            for kind in ("source", "reference")
        )  # fmt: skip
    sr_model = load_run(open_run(sr), "cpu").model
    upscalers = {
        "source -> bicubic": lambda x: upsample(x, 2, "bicubic"),
        f"source -> SR {sr.name}": sr_model.upscale,
    }
    for name, up in upscalers.items():
        expected = {m: [] for m in metrics}
        with torch.no_grad():
            for t in range(len(frames)):
                for m, v in score_fields(fns, up(source[t]), high[t]).items():
                    expected[m].append(float(v.mean()))
        for m in metrics:  # bit-identical in practice; rel 1e-5 allows solver rounding
            assert result["pipelines"][name]["per_step"][m] == pytest.approx(
                expected[m], rel=1e-5
            ), (name, m)
    high_s = result["high_res_seconds_per_frame"]
    table = (tmp_path / "p" / "pipeline.md").read_text()
    jobs = result["timing"]["jobs"]  # one process, interleaved rounds
    assert result["timing"]["repeats"] == 3 and high_s == jobs["high-resolution solver"]["seconds"]
    for name, row in result["pipelines"].items():
        step, up = jobs[f"solver {row['solver']}"], jobs[f"upsampling {row['upsampling']}"]
        assert len(step["rounds"]) == len(up["rounds"]) == 3
        assert step["low"] <= step["seconds"] <= step["high"]
        assert row["seconds_per_frame"] == pytest.approx(step["seconds"] + up["seconds"])
        assert row["seconds_range"] == pytest.approx(
            [step["low"] + up["low"], step["high"] + up["high"]]
        )
        assert row["speedup"] == pytest.approx(high_s / row["seconds_per_frame"], rel=1e-12)
        low, high_ = row["speedup_range"]
        rounds = zip(
            jobs["high-resolution solver"]["rounds"], step["rounds"], up["rounds"], strict=True
        )
        per_round = [h / (a + b) for h, a, b in rounds]
        assert (low, high_) == pytest.approx((min(per_round), max(per_round)))
        line = table.split(f"| {name} |")[1].split("\n")[0]
        assert f"| {row['speedup']:.2g}x ({low:.2g}-{high_:.2g}) |" in line
    # the rows keep the order they were built in (solver by solver), not an error order
    assert list(result["pipelines"]) == [
        f"{s} -> {u}" for s in ["source", f"SOL {sol.name}"] for u in ["bicubic", f"SR {sr.name}"]
    ]


def test_pipeline_refuses_runs_of_the_wrong_kind_or_channels(runs, tmp_path):
    data, sol, sr, sr3, _ = runs
    with pytest.raises(UserError, match="not a sol run"):
        evaluate_pipeline([sr], [], tmp_path, data, steps=2)
    with pytest.raises(UserError, match="data.density: false"):
        evaluate_pipeline([sol], [sr3], tmp_path, data, steps=2)


def test_the_reference_row_scores_itself_perfectly_in_each_metric():
    from coldflow.tasks.pipeline.evaluation import pipeline_table

    row = {"mean": {"mse": 0.1, "ssim": 0.9, "psnr": 20.0}, "seconds_per_frame": 0.2,
           "speedup": 0.5}  # fmt: skip
    result = {
        "steps": 3, "start": 0, "simulations": [0], "data": "x.h5",
        "metrics": ["mse", "ssim", "psnr"], "channels": ["v_y", "v_x"],
        "high_res_seconds_per_frame": 0.1,
        "pipelines": {"source -> bicubic": row},
    }  # fmt: skip
    reference = [r for r in pipeline_table(result).splitlines() if "reference" in r and "|" in r]
    assert reference and reference[0].split("|")[2:5] == [" 0 ", " 1 ", " inf "]
