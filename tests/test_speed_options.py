"""The trainer's speed options change rounding only: same loss trajectory to a tolerance.

``training.channels_last``, ``training.optimizer.fused`` and ``training.compile`` are
compared against a default run of the same tiny DDPM config (3 epochs, 18 steps). The
tolerance, relative 1e-4 on each epoch's mean loss and absolute 1e-4 on the final
weights, is far above float32 rounding after 18 steps and far below what one changed
step would give (a different random draw changes the epoch loss by ~1e-2). Resume with
default settings stays bit-identical (tests/test_trainer.py), and the options may be
switched on when resuming (they are not part of the trajectory hash).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from coldflow.config import load_config
from coldflow.experiment import train
from coldflow.runs import RunDir
from coldflow.tasks.diffusion.config import DiffusionRunConfig
from coldflow.training import parts as trainer_module
from coldflow.training.hashes import trajectory_hash
from coldflow.training.parts import compile_unavailable

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "mnist" / "quick.yaml"
RTOL = 1e-4  # relative, on each epoch's mean training loss
ATOL = 1e-4  # absolute, on every final weight


def _run(tmp_path: Path, name: str, overrides: list[str]) -> tuple[list[float], dict]:
    cfg = load_config(QUICK, DiffusionRunConfig, overrides)
    run = train(cfg, tmp_path / name, finish=False)
    losses = [e["value"] for e in run.read_metrics() if e["name"] == "loss"]
    weights = load_file(str(run.checkpoint_paths(run.checkpoints()[-1])[0]))
    return losses, {k: v for k, v in weights.items() if k.startswith(("model.", "ema."))}


def _assert_close(a: tuple[list[float], dict], b: tuple[list[float], dict]) -> None:
    assert len(a[0]) == len(b[0]) == 3
    assert a[0] == pytest.approx(b[0], rel=RTOL)
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        torch.testing.assert_close(a[1][k], b[1][k], rtol=0, atol=ATOL, msg=k)


def _conv_overrides(tiny_overrides: list[str]) -> list[str]:
    # the tiny config, with the seed network's 7x7 convolutions (4-D weights)
    return [*tiny_overrides, "training.batch_size=32"]


def test_channels_last_gives_the_same_trajectory(tmp_path, tiny_overrides):
    base = _run(tmp_path, "base", _conv_overrides(tiny_overrides))
    fast = _run(tmp_path, "cl", [*_conv_overrides(tiny_overrides), "training.channels_last=true"])
    _assert_close(base, fast)


def test_fused_optimizer_gives_the_same_trajectory(tmp_path, tiny_overrides):
    base = _run(tmp_path, "base", tiny_overrides)
    fused = _run(tmp_path, "fused", [*tiny_overrides, "training.optimizer.fused=true"])
    _assert_close(base, fused)


def test_speed_options_are_not_part_of_the_trajectory_hash(tiny_overrides):
    base = load_config(QUICK, DiffusionRunConfig, tiny_overrides)
    fast = load_config(
        QUICK,
        DiffusionRunConfig,
        [
            *tiny_overrides,
            "training.compile=true",
            "training.channels_last=true",
            "training.optimizer.fused=true",
        ],
    )
    assert trajectory_hash(fast) == trajectory_hash(base)
    changed = load_config(
        QUICK, DiffusionRunConfig, [*tiny_overrides, "training.optimizer.lr=1e-3"]
    )
    assert trajectory_hash(changed) != trajectory_hash(base)


def test_resume_may_switch_speed_options_on(tmp_path, tiny_overrides):
    short = load_config(QUICK, DiffusionRunConfig, [*tiny_overrides, "training.epochs=1"])
    train(short, tmp_path / "b", finish=False)
    more = load_config(QUICK, DiffusionRunConfig, [*tiny_overrides, "training.channels_last=true"])
    train(more, tmp_path / "b", resume=True, finish=False)
    assert RunDir(tmp_path / "b").checkpoints()[-1] == 3


def test_compile_unavailable_falls_back_with_one_warning(tmp_path, tiny_overrides, monkeypatch):
    base = _run(tmp_path, "base", tiny_overrides)
    monkeypatch.setattr(trainer_module, "compile_unavailable", lambda device: "no C++ compiler")
    with pytest.warns(RuntimeWarning, match="training.compile: no C.. compiler") as record:
        eager = _run(tmp_path, "eager", [*tiny_overrides, "training.compile=true"])
    assert len([w for w in record if "training.compile" in str(w.message)]) == 1
    assert eager[0] == base[0]  # the eager path is the default path, bit for bit
    for k in base[1]:
        assert torch.equal(base[1][k], eager[1][k]), k


def test_a_failing_compile_reruns_the_step_eagerly(tmp_path, tiny_overrides, monkeypatch):
    base = _run(tmp_path, "base", tiny_overrides)

    def broken(module):
        def call(batch):
            torch.randn(100)  # draws from the generator before failing, as tracing might
            raise RuntimeError("CppCompileError: cc1plus not found\nmore lines")

        return call

    monkeypatch.setattr(trainer_module, "compile_unavailable", lambda device: None)
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(RuntimeWarning, match=r"compiling failed.*cc1plus not found\);"):
        eager = _run(tmp_path, "eager", [*tiny_overrides, "training.compile=true"])
    assert eager[0] == base[0]  # the RNG state was restored before the eager rerun
    for k in base[1]:
        assert torch.equal(base[1][k], eager[1][k]), k


def test_ctrl_c_inside_a_compiled_step_is_not_taken_for_a_compile_failure(monkeypatch):
    # TorchScript (PhiFlow's solver step) wraps a Ctrl-C in a RuntimeError
    def interrupted(module):
        def call(batch):
            raise RuntimeError("The following operation failed\nKeyboardInterrupt: <EMPTY>")

        return call

    eager_calls = []
    monkeypatch.setattr(trainer_module, "compile_unavailable", lambda device: None)
    monkeypatch.setattr(torch, "compile", interrupted)
    step = trainer_module.CompiledStep(lambda batch: eager_calls.append(batch), torch.device("cpu"))
    with pytest.raises(RuntimeError, match="KeyboardInterrupt"):
        step(1)
    assert eager_calls == [] and step.compiled is not None  # no eager rerun, compile kept


@pytest.mark.slow
@pytest.mark.skipif(
    compile_unavailable(torch.device("cpu")) is not None, reason="torch.compile unavailable"
)
def test_compile_gives_the_same_trajectory(tmp_path, tiny_overrides):
    base = _run(tmp_path, "base", _conv_overrides(tiny_overrides))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no silent fallback to eager
        compiled = _run(
            tmp_path,
            "compiled",
            [
                *_conv_overrides(tiny_overrides),
                "training.compile=true",
                "training.channels_last=true",
            ],
        )
    _assert_close(base, compiled)
