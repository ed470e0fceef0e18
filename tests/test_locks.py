"""One writing process per run directory, data set and study shard: a second writer is
refused with one line naming the holder; a killed holder leaves no stale lock."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_cli

from coldflow.experiment import load_config_file, train
from coldflow.io import LockedError, exclusive_lock, lock_holder
from coldflow.runs import RunDir
from coldflow.study import run_study

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "mnist" / "quick.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "coldflow.cli", *map(str, args)]


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def _wait_for(ready: Callable[[], bool], proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the first process ended early: {proc.communicate()}")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError("the first process never got that far")
        time.sleep(0.02)


def test_a_second_lock_is_refused_with_the_holder_and_free_again_after(tmp_path):
    lock = tmp_path / "x.lock"
    with exclusive_lock(lock, "run directory runs/x"):
        with pytest.raises(LockedError) as refused, exclusive_lock(lock, "run directory runs/x"):
            pass
        message = str(refused.value)
        assert message.startswith("run directory runs/x is in use by process")
        assert str(os.getpid()) in message and socket.gethostname() in message
        assert lock_holder(lock) is not None
    assert lock_holder(lock) is None
    with exclusive_lock(lock, "run directory runs/x"):
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    lock = tmp_path / "x.lock"
    holder = (
        "import sys, time\nfrom coldflow.io import exclusive_lock\n"
        "with exclusive_lock(sys.argv[1], 'x'):\n"
        "    print('held', flush=True)\n    time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, str(lock)], stdout=subprocess.PIPE, text=True, env=ENV
    )
    assert proc.stdout.readline().strip() == "held"
    assert f"process {proc.pid}" in lock_holder(lock)
    proc.kill()  # SIGKILL: no cleanup code runs
    proc.wait()
    assert lock_holder(lock) is None
    with exclusive_lock(lock, "x"):
        pass


def test_a_second_trainer_is_refused_and_the_first_trains_as_if_alone(
    tmp_path, tiny_overrides, monkeypatch, capsys
):
    sets = _sets([*tiny_overrides, "training.epochs=20"])
    run = tmp_path / "x"
    first = subprocess.Popen(
        _cli("train", QUICK, *sets, "--run-dir", run, "--no-report"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    _wait_for(lambda: RunDir(run).writer() is not None, first)
    code = run_cli(monkeypatch, "train", str(QUICK), *sets, "--run-dir", str(run), "--no-report")
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"run directory {run} is in use by process {first.pid}" in err
    out, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    losses = [e["epoch"] for e in RunDir(run).read_metrics() if e["name"] == "loss"]
    assert losses == list(range(1, 21))  # every epoch once
    alone = tmp_path / "alone"
    done = subprocess.run(
        _cli("train", QUICK, *sets, "--run-dir", alone, "--no-report"),
        capture_output=True, text=True, env=ENV,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    a, _ = RunDir(run).load_checkpoint()
    b, _ = RunDir(alone).load_checkpoint()
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_after_kill_9_of_the_trainer_a_resume_starts_at_once(tmp_path, tiny_overrides):
    sets = _sets([*tiny_overrides, "training.epochs=10000"])
    run = tmp_path / "x"
    proc = subprocess.Popen(
        _cli("train", QUICK, *sets, "--run-dir", run, "--no-report"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
    )  # fmt: skip
    _wait_for(lambda: len(RunDir(run).checkpoints()) >= 1, proc)
    proc.kill()
    proc.wait()
    last = RunDir(run).checkpoints()[-1]
    cfg = load_config_file(run / "config.yaml", [f"training.epochs={last + 1}"])
    train(cfg, run, resume=True, finish=False)
    assert RunDir(run).checkpoints()[-1] == last + 1


def test_a_start_that_fails_under_the_lock_leaves_no_run_directory(
    tmp_path, tiny_overrides, monkeypatch
):
    from coldflow.tasks.diffusion.ddpm import DDPMTask

    def broken(self, cfg, stored):
        assert RunDir(tmp_path / "never").writer() is not None  # the lock is held here
        raise RuntimeError("the data set could not be read")

    monkeypatch.setattr(DDPMTask, "prepare", broken)
    with pytest.raises(RuntimeError, match="could not be read"):
        train(load_config_file(QUICK, tiny_overrides), tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_the_same_study_shard_twice_is_refused_and_collect_names_the_running_run(
    tmp_path, tiny_overrides
):
    def run_entry(name: str, epochs: int) -> str:
        sets = "".join(f"\n      - {o}" for o in [*tiny_overrides, f"training.epochs={epochs}"])
        return f"  - name: {name}\n    config: {QUICK}\n    set:{sets}\n"

    study = tmp_path / "study.yaml"
    study.write_text("name: s\nruns:\n" + run_entry("quick", 1) + run_entry("long", 10000))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _cli("study", study, "--out", out),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
    )  # fmt: skip
    try:
        _wait_for(lambda: RunDir(out / "long").writer() is not None, proc)
        with pytest.raises(LockedError, match=f"study {out} is in use by process {proc.pid}"):
            run_study(study, out)
        index = run_study(study, out, collect=True)
        assert "Still training (not shown): long" in index.read_text()
        assert "quick" in (out / "results.md").read_text()
    finally:
        proc.kill()
        proc.wait()


def test_a_second_simulate_of_the_same_file_is_refused(tmp_path, monkeypatch, capsys):
    karman = ROOT / "configs" / "fluids" / "karman_tiny.yaml"
    out = tmp_path / "karman.h5"
    lock = out.with_name(out.name + ".lock")
    first = subprocess.Popen(
        _cli("simulate", karman, "--out", out, "--set", "frames=80", "--no-progress"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    _wait_for(lambda: lock_holder(lock) is not None, first)
    code = run_cli(monkeypatch, "simulate", str(karman), "--out", str(out), "--set", "frames=80")
    err = capsys.readouterr().err
    assert code == 2 and f"data set {out} (shard 0/1) is in use by process {first.pid}" in err
    _, first_err = first.communicate(timeout=600)
    assert first.returncode == 0, first_err
    assert out.is_file() and not lock.exists()  # complete: no lock file left beside it
    # the finished file is read by anyone, and a rerun finds it complete
    assert (
        run_cli(monkeypatch, "simulate", str(karman), "--out", str(out), "--set", "frames=80") == 0
    )
