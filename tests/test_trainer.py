from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from coldflow.config import RunConfig, load_config
from coldflow.experiment import load_run, sample, train
from coldflow.runs import RunDir

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "mnist" / "quick.yaml"


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    run = RunDir(run_dir)
    weights, _ = run.checkpoint_paths(run.checkpoints()[-1])
    return load_file(str(weights))


def test_train_writes_a_complete_run(tmp_path, tiny_overrides):
    cfg = load_config(QUICK, RunConfig, tiny_overrides)
    run = train(cfg, tmp_path / "run")
    assert run.checkpoints() == [2, 3]  # keep_checkpoints=2
    events = run.read_metrics()
    losses = [e for e in events if e["name"] == "loss"]
    assert [e["epoch"] for e in losses] == [1, 2, 3]
    assert run.sample_epochs() == [2, 3]  # interval 2 and the last epoch
    final = load_file(str(run.samples_path()))
    assert final["images"].shape == (4, 1, 28, 28)
    assert final["trajectory"].shape == (3, 4, 1, 28, 28)
    assert final["timesteps"].tolist() == [20, 10, 1]
    assert (run.path / "config.yaml").read_text().startswith("name:")
    # loading back gives the EMA weights and samples of the right shape
    res, loaded = sample(run.path, n=3, sampler="ddim", steps=5, device="cpu")
    assert res.images.shape == (3, 1, 28, 28) and loaded.epoch == 3


def test_refuses_to_overwrite_a_run(tmp_path, tiny_overrides):
    cfg = load_config(QUICK, RunConfig, [*tiny_overrides, "training.epochs=1"])
    train(cfg, tmp_path / "run", final_samples=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, tmp_path / "run")


def test_resume_after_a_finished_run_extends_it_identically(tmp_path, tiny_overrides):
    full = load_config(QUICK, RunConfig, tiny_overrides)
    train(full, tmp_path / "a", final_samples=False)
    short = load_config(QUICK, RunConfig, [*tiny_overrides, "training.epochs=1"])
    train(short, tmp_path / "b", final_samples=False)
    with pytest.raises(RuntimeError, match="config differs"):
        train(
            load_config(QUICK, RunConfig, [*tiny_overrides, "seed=1"]), tmp_path / "b", resume=True
        )
    train(full, tmp_path / "b", resume=True, final_samples=False)
    a, b = _final_weights(tmp_path / "a"), _final_weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    losses = [e["value"] for e in RunDir(tmp_path / "b").read_metrics() if e["name"] == "loss"]
    assert len(losses) == 3


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "coldflow.cli", *args]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, tiny_overrides):
    overrides = [*tiny_overrides, "data.train_subset=2000", "training.epochs=3"]
    sets = [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = subprocess.run(
        _cli("train", str(QUICK), *sets, "--run-dir", str(tmp_path / "ref"), "--no-report"),
        env=env,
        capture_output=True,
        text=True,
    )
    assert ref.returncode == 0, ref.stdout + ref.stderr
    proc = subprocess.Popen(
        _cli("train", str(QUICK), *sets, "--run-dir", str(tmp_path / "killed"), "--no-report"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = tmp_path / "killed" / "checkpoints" / "epoch_0001.json"
    deadline = time.time() + 300
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.3)  # well into epoch 2 (an epoch takes seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert RunDir(tmp_path / "killed").checkpoints()[-1] < 3, "the kill came too late"
    res = subprocess.run(
        _cli("train", "--resume", "--run-dir", str(tmp_path / "killed"), "--no-report"),
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    a, b = _final_weights(tmp_path / "ref"), _final_weights(tmp_path / "killed")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    loaded = load_run(tmp_path / "killed", device="cpu")
    assert loaded.epoch == 3


@pytest.mark.slow
def test_two_process_torchrun_writes_one_set_of_checkpoints(tmp_path, tiny_overrides):
    sets = [a for o in tiny_overrides for a in ("--set", o)]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        "-m",
        "coldflow.cli",
        "train",
        str(QUICK),
        *sets,
        "--run-dir",
        str(tmp_path / "ddp"),
        "--no-report",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    run = RunDir(tmp_path / "ddp")
    assert run.checkpoints() == [2, 3]
    files = sorted(p.name for p in run.checkpoint_dir.iterdir())
    assert files == [f"epoch_000{e}.{x}" for e in (2, 3) for x in ("json", "safetensors")]
    losses = [e for e in run.read_metrics() if e["name"] == "loss"]
    assert [e["epoch"] for e in losses] == [1, 2, 3]  # rank 0 alone logs


@pytest.mark.skipif(
    os.environ.get("ONEDNN_MAX_CPU_ISA") is None,
    reason="bf16 on CPUs that advertise AMX needs ONEDNN_MAX_CPU_ISA (the Makefile sets it)",
)
def test_bf16_autocast_trains_and_keeps_float32_weights(tmp_path, tiny_overrides):
    cfg = load_config(QUICK, RunConfig, [*tiny_overrides, "training.epochs=1", "training.amp=bf16"])
    run = train(cfg, tmp_path / "bf16", final_samples=False)
    losses = [e["value"] for e in run.read_metrics() if e["name"] == "loss"]
    assert len(losses) == 1 and 0 < losses[0] < 10
    weights = _final_weights(tmp_path / "bf16")
    assert all(w.dtype in (torch.float32, torch.uint8, torch.int64) for w in weights.values())
