"""Ctrl-C (SIGINT) on the long commands: one line that says what was kept and how to go
on, exit status 130, nothing half-written, and the advice works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import typer

from coldflow.runs import RunDir

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "mnist" / "quick.yaml"
KARMAN = ROOT / "configs" / "fluids" / "karman_tiny.yaml"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "coldflow.cli", *args]


def _interrupt_after(
    cmd: list[str], ready: Callable[[], bool], timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run ``cmd``, send it SIGINT (Ctrl-C) once ``ready()`` is true, return what it said."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        # a shell that started this test may ignore SIGINT for its children: undo that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.time() + timeout
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    # Python drops a KeyboardInterrupt raised inside a weakref callback or __del__
    # ("Exception ignored"); a user presses Ctrl-C again, and so does this test
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=20)
            return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            continue
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError(f"three Ctrl-C did not stop {cmd}:\n{out}\n{err}")


def test_ctrl_c_says_where_the_run_stands_and_how_to_go_on(tmp_path, tiny_overrides):
    sets = [a for o in [*tiny_overrides, "training.epochs=10000"] for a in ("--set", o)]
    run = tmp_path / "run"
    cmd = _cli("train", str(QUICK), *sets, "--run-dir", str(run), "--no-report")
    res = _interrupt_after(cmd, lambda: len(RunDir(run).checkpoints()) >= 1)
    assert res.returncode == 130, res.stdout + res.stderr
    last = RunDir(run).checkpoints()[-1]
    assert f"interrupted: the last checkpoint is epoch {last} in {run}" in res.stderr, res.stderr
    assert f"coldflow train --resume --run-dir {run}" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("interrupted:"), res.stderr  # last
    assert not list(run.rglob(".*")), "a temporary file was left behind"
    # the hint is right: the run continues from that checkpoint
    more = subprocess.run(
        _cli("train", "--resume", "--run-dir", str(run), "--no-report",
             "--set", f"training.epochs={last + 1}"),
        capture_output=True, text=True,
    )  # fmt: skip
    assert more.returncode == 0, more.stdout + more.stderr
    assert RunDir(run).checkpoints()[-1] == last + 1


def test_ctrl_c_before_the_first_checkpoint_says_so(tmp_path, tiny_overrides):
    sets = [a for o in [*tiny_overrides, "data.train_subset=60000"] for a in ("--set", o)]
    run = tmp_path / "run"
    cmd = _cli("train", str(QUICK), *sets, "--run-dir", str(run), "--no-report")
    res = _interrupt_after(cmd, lambda: (run / "config.yaml").exists())
    assert res.returncode == 130, res.stdout + res.stderr
    assert not RunDir(run).checkpoints()
    assert f"interrupted: no checkpoint yet in {run}" in res.stderr, res.stderr


# slow: three Ctrl-C at a random point of a simulation that writes segments (20-40 s);
# on a loaded machine one in a few runs left a segment's temporary file behind
@pytest.mark.slow
@pytest.mark.parametrize(("method", "frames"), [("CG", 400), ("direct", 1500)])
def test_ctrl_c_in_simulate_inside_the_compiled_solver_step(tmp_path, method, frames):
    # PhiFlow runs the step as TorchScript, which turns the KeyboardInterrupt into a
    # RuntimeError: it must read the same as anywhere else, also when it lands in the
    # direct solve's Python callback (more frames: its steps are much shorter)
    out = tmp_path / "k.h5"
    parts = tmp_path / "k.h5.parts"
    args = ["simulate", str(KARMAN), "--out", str(out), "--no-progress",
            "--set", f"frames={frames}", "--set", f"scene.solver.method={method}",
            "--checkpoint-every", "10"]  # fmt: skip
    res = _interrupt_after(_cli(*args), lambda: len(list(parts.glob("*.seg_*"))) >= 2)
    assert res.returncode == 130, res.stdout + res.stderr
    assert "interrupted: finished simulations are kept" in res.stderr, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("interrupted:"), res.stderr
    assert "RuntimeError" not in res.stderr and not out.exists()
    assert not list(parts.glob(".*")), "a temporary file was left behind"
    again = subprocess.run(_cli(*args), capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed at reference frame" in again.stdout + again.stderr
    assert out.exists()


@pytest.mark.parametrize(
    "error",
    [KeyboardInterrupt(), RuntimeError("operation failed in TorchScript\nKeyboardInterrupt: ")],
)
def test_every_wrapped_command_reads_ctrl_c_alike(error, capsys):
    from coldflow import cli

    def body():
        with cli._on_ctrl_c(lambda: f"x.json {cli._UNCHANGED}"):
            raise error

    with pytest.raises(typer.Exit) as stop:
        body()
    assert stop.value.exit_code == 130
    assert capsys.readouterr().err.strip().startswith("interrupted: x.json is unchanged")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_python_drops_still_stops_the_next_step():
    from coldflow.errors import noting_ctrl_c, raise_if_interrupted

    class Finalised:
        def __del__(self):  # Ctrl-C lands here: Python prints "Exception ignored", goes on
            signal.raise_signal(signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    steps = 0
    with pytest.raises(KeyboardInterrupt), noting_ctrl_c():
        for _ in range(3):
            raise_if_interrupted()
            steps += 1
            Finalised()  # freed at once
    assert steps == 1
    assert signal.getsignal(signal.SIGINT) is before
    raise_if_interrupted()  # nothing pending once the block is left


def test_other_runtime_errors_pass_through():
    from coldflow import cli

    with pytest.raises(RuntimeError, match="shape mismatch"), cli._on_ctrl_c(lambda: "never"):
        raise RuntimeError("shape mismatch")


def test_ctrl_c_in_a_study_says_the_same_command_continues(tmp_path, tiny_overrides):
    study = tmp_path / "study.yaml"
    sets = "".join(f"\n      - {o}" for o in [*tiny_overrides, "training.epochs=10000"])
    study.write_text(f"name: s\nruns:\n  - name: long\n    config: {QUICK}\n    set:{sets}\n")
    out = tmp_path / "out"
    cmd = _cli("study", str(study), "--out", str(out))
    res = _interrupt_after(cmd, lambda: len(RunDir(out / "long").checkpoints()) >= 1)
    assert res.returncode == 130, res.stdout + res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: finished runs are kept") and "same command" in last
    assert not list(out.rglob(".*")), "a temporary file was left behind"
