"""The Task layer: one registry for every kind of run, one generic train / evaluate /
report path, and studies that mix tasks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coldflow.config import ConfigError
from coldflow.errors import UserError
from coldflow.experiment import evaluate, load_config_file, sample, train
from coldflow.runs import parse_shard
from coldflow.simulate.run import simulate
from coldflow.study import run_study
from coldflow.tasks import TASKS, kind_of, task_of

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*/*.yaml"))
RUN_CONFIGS = [p for p in CONFIGS if p.parent.name in ("mnist",)
               or {"sol", "ae", "sr", "ddpmsr", "coldsr"} & set(p.stem.split("_"))]  # fmt: skip


def test_registry_covers_every_method_kind_in_configs():
    kinds = {kind_of(p) for p in RUN_CONFIGS}
    assert kinds == set(TASKS) == {
        "ddpm", "cold", "sol", "autoencoder", "superres", "diffusion_sr"
    }  # fmt: skip
    for kind, task in TASKS.items():
        assert kind in task.kinds


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_config_validates(path):
    from coldflow.config import StudyConfig, load_config
    from coldflow.config.fluids import FluidDataConfig

    if path.parent.name == "studies":
        study = load_config(path, StudyConfig)
        for spec in study.runs:  # the runs a study names validate too
            load_config_file((path.parent / spec.config).resolve(), spec.set)
    elif path in RUN_CONFIGS:
        cfg = load_config_file(path)
        assert task_of(path).config_model is type(cfg)
        stem = set(path.stem.split("_"))
        if {"ae", "sr"} & stem:  # the loss the file name says; base configs train with mse
            assert cfg.method.loss.name in (stem & {"mse", "mae", "lsim", "vgg", "lpips"}
                                            or {"mse"})  # fmt: skip
    else:
        load_config(path, FluidDataConfig)


def test_unknown_kind_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: {kind: gan}\n")
    with pytest.raises(ConfigError, match=r"method.kind 'gan' is unknown; known: ddpm"):
        kind_of(bad)
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        kind_of(tmp_path)


def test_parse_shard():
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(UserError):
            parse_shard(bad)


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tasks") / "tiny.h5"
    simulate(ROOT / "configs/fluids/karman_tiny.yaml", out, progress=False)
    return out


def _sr_config(tmp_path: Path, data: Path, epochs: int = 1) -> Path:
    cfg = tmp_path / "sr.yaml"
    cfg.write_text(
        f"name: sr\ndata: {{path: {data}}}\nmodel: {{width: 4, blocks: 1}}\n"
        "method: {kind: superres}\n"
        f"training: {{epochs: {epochs}, batch_size: 8, progress: false, device: cpu}}\n"
        "evaluation: {metrics: [mse, rel_l1], figure_frames: 1}\n"
    )
    return cfg


def test_generic_path_refuses_what_a_task_does_not_take(tiny_h5, tmp_path):
    run = train(_sr_config(tmp_path, tiny_h5), tmp_path / "sr")
    with pytest.raises(UserError, match="draws no samples"):
        sample(run.path, n=2, device="cpu")
    with pytest.raises(UserError, match="--sampler does not apply to superres runs"):
        evaluate(run.path, device="cpu", sampler="ddim")
    result = evaluate(run.path, device="cpu")
    assert result["task"] == "superres" and "bicubic" in result["mean"]
    assert json.loads((run.path / "evaluation.json").read_text())["epoch"] == 1


def test_a_failed_start_leaves_no_run_directory(tiny_h5, tmp_path):
    cfg = _sr_config(tmp_path, tiny_h5)
    with pytest.raises(UserError, match="data set not found"):
        train(load_config_file(cfg, ["data.path=" + str(tmp_path / "absent.h5")]), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_study_mixes_a_diffusion_run_and_a_fluid_run(tiny_h5, tmp_path, tiny_overrides):
    sr = _sr_config(tmp_path, tiny_h5)
    study = tmp_path / "study.yaml"
    ddpm_set = ", ".join(f"'{o}'" for o in [*tiny_overrides, "training.epochs=1"])
    study.write_text(
        "name: mixed\nruns:\n"
        f"  - name: noise\n    config: {ROOT / 'configs/mnist/quick.yaml'}\n"
        f"    set: [{ddpm_set}]\n"
        f"  - name: sr\n    config: {sr}\n    evaluate: true\n"
    )
    index = run_study(study, tmp_path / "out")
    text = index.read_text()
    assert "ddpm" in text and "superres" in text
    assert (tmp_path / "out" / "superres_tiny" / "index.html").is_file()  # task, data set
    results = (tmp_path / "out" / "results.md").read_text()
    assert "## ddpm" in results and "## superres_tiny" in results and "bicubic" in results
    assert (tmp_path / "out" / "sr" / "evaluation.json").is_file()
    assert (tmp_path / "out" / "sr" / "figures" / "superres_frame0.png").is_file()


def test_study_shards_split_and_collect_merges(tiny_h5, tmp_path):
    runs = []
    for name in ("a", "b", "c"):
        runs.append(f"  - name: {name}\n    config: {_sr_config(tmp_path, tiny_h5)}\n")
    study = tmp_path / "study.yaml"
    study.write_text("name: shards\nruns:\n" + "".join(runs))
    out = tmp_path / "out"
    assert run_study(study, out, shard=(0, 2)) is None
    assert {p.name for p in out.iterdir()} == {"a", "c"}  # runs 0 and 2
    with pytest.raises(UserError, match="no run of the study is finished"):
        run_study(study, tmp_path / "empty", collect=True)
    index = run_study(study, out, collect=True)  # pages from the finished runs only
    assert "Not finished (not shown): b" in index.read_text()
    run_study(study, out, shard=(1, 2))
    assert "Not finished" not in run_study(study, out, collect=True).read_text()


@pytest.mark.slow
def test_killed_study_resumes_without_redoing_finished_runs(tiny_h5, tmp_path):
    """SIGKILL a study while its second run trains; the rerun skips the first."""
    import signal
    import time

    from coldflow.runs import RunDir

    first = _sr_config(tmp_path, tiny_h5, epochs=1)
    second = tmp_path / "slow.yaml"
    second.write_text(first.read_text().replace("epochs: 1,", "epochs: 200,"))
    study = tmp_path / "study.yaml"
    study.write_text(
        f"name: k\nruns:\n  - name: fast\n    config: {first}\n"
        "    set: [training.epochs=1]\n"
        f"  - name: slow\n    config: {second}\n"
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "coldflow.cli", "study", str(study), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not RunDir(out / "slow").checkpoints():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = RunDir(out / "slow").checkpoints()[-1]
    assert killed_at < 200
    fast_ckpt = out / "fast" / "checkpoints" / "epoch_0001.safetensors"
    stamp = fast_ckpt.stat().st_mtime_ns
    rerun = [*cmd, "--set", f"training.epochs={killed_at + 2}"]  # the run's own set wins
    done = subprocess.run(rerun, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fast: already trained" in done.stdout and "slow: resuming" in done.stdout
    assert fast_ckpt.stat().st_mtime_ns == stamp  # the finished run was not redone
    assert RunDir(out / "slow").checkpoints()[-1] == killed_at + 2


def test_a_seeded_study_aggregates_each_configuration_over_its_seeds(tiny_h5, tmp_path):
    """Two seeds of two SR losses: four runs, one table row per configuration with its
    interval over seeds, and paired verdicts against the baselines and against MSE."""
    sr = _sr_config(tmp_path, tiny_h5)
    study = tmp_path / "study.yaml"
    study.write_text(
        "name: seeded\nseeds: [0, 1]\nruns:\n"
        f"  - name: sr_{{loss}}\n    config: {sr}\n    evaluate: true\n"
        "    matrix: {method.loss.name: [mse, mae]}\n"
    )
    out = tmp_path / "out"
    run_study(study, out)
    for name in ("sr_mse_s0", "sr_mae_s0", "sr_mse_s1", "sr_mae_s1"):
        ev = json.loads((out / name / "evaluation.json").read_text())
        assert len(ev["frame_simulation"]) == ev["frames"]
    seeds = [load_config_file(out / n / "config.yaml").seed for n in ("sr_mse_s0", "sr_mse_s1")]
    assert seeds == [0, 1]
    results = (out / "results.md").read_text()
    assert "### Over seeds" in results
    assert "| sr_mse | 2 |" in results and "| sr_mae | 2 |" in results
    assert "| sr_mae | sr_mse |" in results and "| sr_mse | bicubic |" in results
    assert "- sr_mae (2 seeds): " in results
    assert "| sr_mse | source, bicubic |" not in results  # the model on another input
    ev = json.loads((out / "sr_mse_s0" / "evaluation.json").read_text())
    assert {p["index"] for p in ev["simulation_params"]} == set(ev["frame_simulation"])
    assert ev["training_range"]  # the per-simulation table marks inside / outside
    assert "rel. L1 per test simulation (mean over its frames)" in results
    assert "sr_mse_s1: beats every baseline in rel. L1 on " in results
