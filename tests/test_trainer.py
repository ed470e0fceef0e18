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

from coldflow.config import load_config
from coldflow.experiment import load_run, sample, train
from coldflow.runs import RunDir
from coldflow.tasks.diffusion.config import DiffusionRunConfig

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "mnist" / "quick.yaml"


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    run = RunDir(run_dir)
    weights, _ = run.checkpoint_paths(run.checkpoints()[-1])
    return load_file(str(weights))


def test_train_writes_a_complete_run(tmp_path, tiny_overrides):
    cfg = load_config(QUICK, DiffusionRunConfig, tiny_overrides)
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


def test_a_log_file_gets_lines_within_long_epochs(tmp_path, tiny_overrides, monkeypatch, capsys):
    import coldflow.training.trainer

    over = [*tiny_overrides, "training.progress=true", "training.epochs=1"]
    cfg = load_config(QUICK, DiffusionRunConfig, over)  # 96 images, batch 16: 6 steps
    monkeypatch.setattr(coldflow.training.trainer, "LOG_EVERY_S", -1.0)  # a line after every step
    run = train(cfg, tmp_path / "run", finish=False)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("epoch 1/1")]
    within = [x for x in lines if "step" in x]
    assert [x.split(",")[0] for x in within] == [f"epoch 1/1: step {k}/6" for k in range(1, 7)]
    assert all("samples/s" in x and x.endswith("left in the epoch") for x in within), within
    # the last running mean is the epoch's mean loss, as logged
    logged = next(e["value"] for e in run.read_metrics() if e["name"] == "loss")
    assert float(within[-1].split("loss ")[1].split()[0]) == pytest.approx(logged, abs=1e-4)
    assert lines[-1].startswith(f"epoch 1/1: loss {logged:.4f}")  # the epoch's own line


def test_refuses_to_overwrite_a_run(tmp_path, tiny_overrides):
    cfg = load_config(QUICK, DiffusionRunConfig, [*tiny_overrides, "training.epochs=1"])
    train(cfg, tmp_path / "run", finish=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, tmp_path / "run")


def test_resume_after_a_finished_run_extends_it_identically(tmp_path, tiny_overrides):
    full = load_config(QUICK, DiffusionRunConfig, tiny_overrides)
    train(full, tmp_path / "a", finish=False)
    short = load_config(QUICK, DiffusionRunConfig, [*tiny_overrides, "training.epochs=1"])
    train(short, tmp_path / "b", finish=False)
    with pytest.raises(RuntimeError, match="config differs"):
        train(
            load_config(QUICK, DiffusionRunConfig, [*tiny_overrides, "seed=1"]),
            tmp_path / "b",
            resume=True,
        )
    train(full, tmp_path / "b", resume=True, finish=False)
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
    cfg = load_config(
        QUICK, DiffusionRunConfig, [*tiny_overrides, "training.epochs=1", "training.amp=bf16"]
    )
    run = train(cfg, tmp_path / "bf16", finish=False)
    losses = [e["value"] for e in run.read_metrics() if e["name"] == "loss"]
    assert len(losses) == 1 and 0 < losses[0] < 10
    weights = _final_weights(tmp_path / "bf16")
    assert all(w.dtype in (torch.float32, torch.uint8, torch.int64) for w in weights.values())


# ------------------------------------------------------- non-finite losses, damaged resume


class _Tiny(torch.nn.Module):
    """Least squares; the forward calls listed in ``bad`` return a NaN loss."""

    def __init__(self, bad: tuple[int, ...] = (), inf_weight_at: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(3, 1)
        self.calls = 0
        self.bad = set(bad)

    def forward(self, batch):
        x, y = batch
        self.calls += 1
        loss = ((self.lin(x).squeeze(-1) - y) ** 2).mean()
        return loss * float("nan") if self.calls in self.bad else loss


def _trainer(tmp_path, model, name="run", **training):
    from torch.utils.data import TensorDataset

    from coldflow.config.training import TrainingConfig
    from coldflow.training.trainer import Trainer

    gen = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(32, 3, generator=gen), torch.randn(32, generator=gen))
    opts = {"epochs": 3, "batch_size": 8, "device": "cpu", "progress": False, "ema": 0.9}
    cfg = TrainingConfig(**{"keep_checkpoints": 5, **opts, **training})
    return Trainer(model, data, cfg, RunDir(tmp_path / name), seed=3)


def test_nan_loss_stops_with_epoch_step_and_last_good_checkpoint(tmp_path):
    from coldflow.errors import NonFiniteError, UserError

    trainer = _trainer(tmp_path, _Tiny(bad=(10,)))  # 4 steps an epoch: epoch 3, step 10
    with pytest.raises(NonFiniteError) as info:
        trainer.fit()
    msg = str(info.value)
    assert isinstance(info.value, UserError)
    assert "epoch 3" in msg and "step 10" in msg and "epoch_0002.safetensors" in msg
    assert trainer.run.checkpoints() == [1, 2]  # nothing written for the bad epoch
    assert "max_nonfinite_steps" in msg


def test_nan_in_the_first_epoch_says_there_is_no_checkpoint_yet(tmp_path):
    from coldflow.errors import NonFiniteError

    with pytest.raises(NonFiniteError, match="none yet"):
        _trainer(tmp_path, _Tiny(bad=(2,))).fit()


def test_skipped_nonfinite_steps_do_not_update_and_are_logged(tmp_path):
    trainer = _trainer(tmp_path, _Tiny(bad=(6,)), max_nonfinite_steps=1)
    assert trainer.max_nonfinite_steps == 1  # read from the config
    trainer.fit()
    events = trainer.run.read_metrics()
    skipped = [e["value"] for e in events if e["name"] == "nonfinite_steps"]
    assert skipped == [0, 1, 0]
    assert trainer.run.load_checkpoint()[1]["nonfinite_steps"] == 1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert {"samples_per_s", "loss"} <= {e["name"] for e in events}
    assert "images_per_s" not in {e["name"] for e in events}
    # a skipped step leaves weights, EMA and optimizer untouched: skipping the same batch
    # equals a step whose update the optimizer never saw (compared via the optimizer step)
    opt_steps = trainer.optimizer.state_dict()["state"][0]["step"]
    assert float(opt_steps) == 3 * 4 - 1


def test_too_many_nonfinite_steps_stop_training(tmp_path):
    from coldflow.errors import NonFiniteError

    trainer = _trainer(tmp_path, _Tiny(bad=(2, 7)), max_nonfinite_steps=1)
    with pytest.raises(NonFiniteError, match="step 7.*max_nonfinite_steps=1"):
        trainer.fit()
    assert trainer.run.checkpoints() == [1]


def test_constructor_overrides_the_config_limit(tmp_path):
    from torch.utils.data import TensorDataset

    from coldflow.config.training import TrainingConfig
    from coldflow.training.trainer import Trainer

    cfg = TrainingConfig(epochs=1, batch_size=8, device="cpu", progress=False)
    data = TensorDataset(torch.randn(16, 3), torch.randn(16))
    t = Trainer(_Tiny(bad=(1,)), data, cfg, RunDir(tmp_path / "r"), 0, max_nonfinite_steps=4)
    t.fit()
    assert t.nonfinite_steps == 1


def test_nonfinite_weights_are_never_checkpointed(tmp_path):
    from coldflow.errors import NonFiniteError

    def poison(trainer, epoch):
        if epoch == 2:
            with torch.no_grad():
                trainer.model.lin.weight[0, 0] = float("inf")

    trainer = _trainer(tmp_path, _Tiny())
    trainer.hooks.append(poison)
    with pytest.raises(NonFiniteError, match="epoch 2.*epoch_0001.safetensors"):
        trainer.fit()
    assert trainer.run.checkpoints() == [1]


def test_resume_past_a_damaged_latest_checkpoint_redoes_its_epoch_identically(tmp_path):
    full = _trainer(tmp_path, _Tiny(), "full")
    full.fit()
    part = _trainer(tmp_path, _Tiny(), "part", epochs=2)
    part.fit()
    weights, _ = part.run.checkpoint_paths(2)
    weights.write_bytes(weights.read_bytes()[:-7])  # torn by a crash of the file system
    resumed = _trainer(tmp_path, _Tiny(), "part")
    from coldflow.errors import CheckpointWarning

    with pytest.warns(CheckpointWarning, match="epoch_0002.safetensors"):
        resumed.fit(resume=True)
    assert resumed.epoch == 3
    a, b = full.run.load_checkpoint()[0], resumed.run.load_checkpoint()[0]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    losses = [e["epoch"] for e in resumed.run.read_metrics() if e["name"] == "loss"]
    assert losses == [1, 2, 3]  # epoch 2's events were dropped with its checkpoint


def test_trainer_load_checkpoint_falls_back_and_truncates_metrics(tmp_path):
    trainer = _trainer(tmp_path, _Tiny())
    trainer.fit()
    trainer.run.checkpoint_paths(3)[1].write_text('{"epoch": 3, "st')
    fresh = _trainer(tmp_path, _Tiny())
    with pytest.warns(UserWarning, match="epoch_0003.json"):
        fresh.load_checkpoint()
    assert fresh.epoch == 2 and fresh.step == 8
    assert max(e["epoch"] for e in fresh.run.read_metrics()) == 2
