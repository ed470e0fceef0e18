"""The MNIST study as one command: tiny runs through `run_study`, the page's Table 1 and
findings, the shipped study files, and the sample/evaluate CLI around diffusion runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from coldflow.config import StudyConfig, load_config
from coldflow.experiment import load_config_file, sample, train
from coldflow.runs import load_tensors
from coldflow.study import run_study
from coldflow.tasks.diffusion.findings import WORSE_FACTOR, black_start_collapse

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "mnist" / "quick.yaml"
QUICK_BLUR = ROOT / "configs" / "mnist" / "quick_blur.yaml"


@pytest.mark.parametrize("name", ["mnist", "mnist_cpu", "demo"])
def test_shipped_study_files_validate(name):
    path = ROOT / "configs" / "studies" / f"{name}.yaml"
    study = load_config(path, StudyConfig)
    configs = {
        r.configuration or r.name: load_config_file(path.parent / r.config, r.set)
        for r in study.runs
    }
    if name != "demo":
        assert set(configs) == {
            "diffusion_model", "model1", "model2", "model2_T1000", "blur_model"
        }  # fmt: skip
        assert all(r.evaluate for r in study.runs)
    if name == "mnist":
        assert all(c.training.epochs == 100 for c in configs.values())
        assert all(c.evaluation.fid.n_samples == 10000 for c in configs.values())
        assert all(c.evaluation.interval == 9 for c in configs.values())
    if name == "mnist_cpu":
        # the seed networks and schedules, at a CPU scale
        full = {
            r.configuration or r.name: load_config_file(path.parent / r.config) for r in study.runs
        }
        # three seeds of every configuration, all of seed 0 first
        assert [r.seed for r in study.runs] == [s for s in range(3) for _ in range(5)]
        for run, cfg in configs.items():
            assert cfg.model == full[run].model and cfg.degradation == full[run].degradation
            assert cfg.training.epochs < 100 and cfg.data.train_subset


def test_study_page_has_table1_and_findings(tmp_path, tiny_overrides, capsys):
    study = tmp_path / "study.yaml"
    ddpm_eval = "    evaluate: 16\n    evaluate_options: {steps: 5}\n"
    study.write_text(
        "name: tiny_mnist\nruns:\n"
        f"  - name: diffusion_model\n    config: {QUICK}\n{ddpm_eval}"
        "    set: [degradation.beta1=0.1, degradation.beta2=0.3]\n"  # fully diffused at n_T=20
        f"  - name: model2_T1000\n    config: {QUICK}\n{ddpm_eval}"
        "    set: [degradation.beta1=1e-5, degradation.beta2=1e-3]\n"
        f"  - name: blur_model\n    config: {QUICK_BLUR}\n    evaluate: 16\n"
        "    set: [method.conditional_images=8, method.prior_fit_images=200]\n"
    )
    out = tmp_path / "out"
    index = run_study(study, out, [*tiny_overrides, "training.epochs=1"])
    results = (out / "results.md").read_text()
    printed = capsys.readouterr().out  # evaluation says what it does, FID included
    assert "FID: mnist_classifier features of 16 samples" in printed
    assert "Table 1, improved sampler (Alg. 2): restoring 16 test images" in printed
    # the cold-diffusion Table 1, with both samplers, as a markdown table
    assert "Table 1" in results
    for row in ("degraded x_T", "one-shot R(x_T, T)", "naive sampler", "improved sampler"):
        assert row in results
    assert "nearest training digit (lookup)" in results and "restoring by memory" in results
    assert "Unconditional FID by start" in results and "Unconditional FID (coldflow" in results
    ev = json.loads((out / "blur_model" / "evaluation.json").read_text())
    assert {"degraded", "lookup", "direct", "naive", "improved"} == set(ev["conditional"])
    assert {"gmm", "black"} == set(ev["unconditional_fid"])
    # findings generated from the numbers: each verdict the one these numbers give
    assert "has the lowest FID of the DDPM runs" in results
    assert "model2_T1000 ends its schedule at alpha_bar_T = 0.989" in results
    for phrase in _expected_verdicts(out):
        assert phrase in results, phrase
    html = index.read_text()
    assert "Findings (generated from the numbers)" in html
    # the comparison pages: schedules together; final grids incl. the black start;
    # losses of the two tasks on separate pages
    cold_page = (out / "cold" / "index.html").read_text()
    assert "samples_black_start.png" in cold_page and "schedules.png" in cold_page
    ddpm_page = (out / "ddpm" / "index.html").read_text()
    assert "image MSE" in cold_page and "noise-prediction" in ddpm_page
    assert "Inputs of the conditional restorations" in cold_page
    assert "(not samples)" in cold_page
    assert "ddim, 5 steps, eta 1" in results
    # real-digit baselines beside every evaluated run: the FID floor at the same count,
    # the nearest-training-digit check, its figure and its findings
    for run in ("diffusion_model", "model2_T1000", "blur_model"):
        ev = json.loads((out / run / "evaluation.json").read_text())
        assert (
            0
            < ev["fid_real_train"]
            < min([ev.get("fid", 1e9), *ev.get("unconditional_fid", {}).values()])
        )
        near = ev["nearest_train"]
        assert near["samples"] == 16 and near["training_digits"] == 96  # the run's subset
        assert (out / run / "samples" / "nearest_train.safetensors").is_file()
        assert (out / run / "figures" / "nearest_training_digits.png").is_file()
    assert (
        json.loads((out / "blur_model" / "evaluation.json").read_text())["nearest_train"]["start"]
        == "gmm"
    )
    assert "FID, real digits" in results and "nearest train: samples / test" in results
    assert "Real training digits, as many as each run's samples" in results
    assert "Nearest training digit (median RMS distance" in results


def _said(holds: bool) -> str:
    return "supported" if holds else "not supported"


def _expected_verdicts(out: Path) -> list[str]:
    """The verdict phrases the tiny study's evaluations imply, worked out here from its
    files (a phrase names one outcome only: "is supported" is no part of "is not
    supported")."""
    ev = {r: json.loads((out / r / "evaluation.json").read_text())
          for r in ("diffusion_model", "model2_T1000", "blur_model")}  # fmt: skip
    # diffusion_model (beta up to 0.3 at n_T = 20) is the only fully diffused DDPM run
    worse = ev["model2_T1000"]["fid"] >= WORSE_FACTOR * ev["diffusion_model"]["fid"]
    table = ev["blur_model"]["conditional"]
    im, nv, dg = table["improved"], table["naive"], table["degraded"]
    wins = [
        n
        for n, b in (
            ("RMSE", im["rmse"] < nv["rmse"]),
            ("SSIM", im["ssim"] > nv["ssim"]),
            ("FID", "fid" in im and "fid" in nv and im["fid"] < nv["fid"]),
        )
        if b
    ]
    good = im["rmse"] < dg["rmse"] and im["ssim"] > dg["ssim"]
    grids = load_tensors(out / "blur_model" / "samples" / "final.safetensors")
    collapse = black_start_collapse(grids["images_black_start"], grids["images"], (-0.5, 0.5))
    sampler = f"beats the naive one on {', '.join(wins)}" if wins else "does not beat the naive one"
    collapsed = collapse["collapsed"]
    return [
        f"the seed study's claim that model2 at T = 1000 is clearly worse is {_said(worse)} "
        "by these numbers.",
        f"blur_model: the improved sampler {sampler} (RMSE",
        f"the seed study's claim that blur restoration is good is {_said(good)} by these numbers",
        f"The seed study's claim that black-start samples collapse is {_said(collapsed)} by these",
    ]


@pytest.fixture
def tiny_ddpm(tmp_path, tiny_overrides):
    run = tmp_path / "ddpm"
    cfg = load_config_file(QUICK, [*tiny_overrides, "training.epochs=1", "sampling.eta=0.7"])
    train(cfg, run)
    return run


def test_ddim_sampling_defaults_to_the_configs_eta(tiny_ddpm, monkeypatch, capsys, tmp_path):
    opts = {"sampler": "ddim", "steps": 4, "device": "cpu"}
    default, _ = sample(tiny_ddpm, 3, **opts)
    explicit, _ = sample(tiny_ddpm, 3, eta=0.7, **opts)
    zero, _ = sample(tiny_ddpm, 3, eta=0.0, **opts)
    assert default.images.equal(explicit.images)
    assert not default.images.equal(zero.images)
    out = tmp_path / "grid.png"
    code = run_cli(
        monkeypatch, "sample", str(tiny_ddpm), "--n", "2", "--sampler", "ddim", "--steps", "3",
        "--out", str(out), "--device", "cpu",
    )  # fmt: skip
    assert code == 0 and "eta 0.7" in capsys.readouterr().out


def test_sample_cli_errors_are_one_clear_line(tiny_ddpm, monkeypatch, capsys, tmp_path):
    out = str(tmp_path / "g.png")
    for args, expected in (
        (["--n", "0"], "--n must be at least 1"),
        (["--prior", "black"], "--prior applies to cold diffusion runs only"),
        (["--sampler", "improved"], "--sampler for ddpm runs must be"),
    ):
        capsys.readouterr()
        code = run_cli(monkeypatch, "sample", str(tiny_ddpm), *args, "--out", out)
        text = " ".join(capsys.readouterr().err.split())
        assert code == 1, args
        assert expected in text and "Traceback" not in text


def test_sample_cli_prior_of_a_cold_run(tmp_path, tiny_overrides, monkeypatch, capsys):
    run = tmp_path / "blur"
    sets = ["training.epochs=1", "method.prior_fit_images=200", "method.conditional_images=4"]
    train(load_config_file(QUICK_BLUR, [*tiny_overrides, *sets]), run)
    out = tmp_path / "g.png"
    code = run_cli(
        monkeypatch, "sample", str(run), "--n", "2", "--prior", "black", "--out", str(out),
        "--device", "cpu",
    )  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0 and "black start" in text and out.is_file()
    code = run_cli(monkeypatch, "sample", str(run), "--prior", "white", "--out", str(out))
    captured = capsys.readouterr()
    assert code != 0 and "Traceback" not in captured.out + captured.err


def test_checksum_error_of_mnist_names_the_data_command(tmp_path, monkeypatch):
    from coldflow import hub

    res = hub.RESOURCES["mnist-test-labels"]
    bad = tmp_path / "data" / res.relpath
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not mnist")
    monkeypatch.setenv("COLDFLOW_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("COLDFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLDFLOW_OFFLINE", "1")
    with pytest.raises(hub.HubError) as e:
        hub.resolve("mnist-test-labels")
    assert "coldflow data mnist" in str(e.value) and "weights fetch" not in str(e.value)
