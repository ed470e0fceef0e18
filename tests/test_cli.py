from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "mnist" / "quick.yaml"


def test_help_lists_every_command(monkeypatch, capsys):
    assert run_cli(monkeypatch, "--help") == 0
    out = capsys.readouterr().out
    for command in (
        "train",
        "sample",
        "evaluate",
        "report",
        "study",
        "data",
        "weights",
        "evaluate-fields",
    ):
        assert command in out


def test_train_sample_evaluate_report(tmp_path, monkeypatch, tiny_overrides, capsys):
    run = tmp_path / "run"
    sets = [a for o in [*tiny_overrides, "training.epochs=1"] for a in ("--set", o)]
    assert run_cli(monkeypatch, "train", str(QUICK), *sets, "--run-dir", str(run)) == 0
    assert (run / "report.html").is_file()
    grid = tmp_path / "grid.png"
    code = run_cli(
        monkeypatch, "sample", str(run), "--n", "4", "--sampler", "ddim", "--steps", "5",
        "--out", str(grid), "--device", "cpu",
    )  # fmt: skip
    assert code == 0 and grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run_cli(monkeypatch, "sample", str(run), "--sampler", "improved") != 0
    code = run_cli(monkeypatch, "evaluate", str(run), "--n", "64", "--device", "cpu")
    assert code == 0
    result = json.loads((run / "evaluation.json").read_text())
    assert result["fid"] > 0 and result["n_samples"] == 64
    assert run_cli(monkeypatch, "report", str(run)) == 0
    assert "Evaluation" in (run / "report.html").read_text()


def test_resume_needs_a_run_dir(monkeypatch, capsys):
    assert run_cli(monkeypatch, "train", "--resume") == 2
    assert "--run-dir" in capsys.readouterr().err


def test_missing_config_file_is_a_clear_error(monkeypatch, capsys, tmp_path):
    assert run_cli(monkeypatch, "train", str(tmp_path / "nope.yaml")) == 2
    assert "not found" in capsys.readouterr().err


def test_weights_list_shows_where_files_are(monkeypatch, capsys):
    assert run_cli(monkeypatch, "weights", "list") == 0
    out = capsys.readouterr().out
    assert "lsim" in out and "vgg16" in out


@pytest.mark.parametrize("name", ["nonexistent"])
def test_weights_fetch_unknown_name(monkeypatch, capsys, name):
    assert run_cli(monkeypatch, "weights", "fetch", name) == 1
    assert "unknown resource" in capsys.readouterr().err


@pytest.fixture(scope="module")
def karman_h5(tmp_path_factory) -> Path:
    from coldflow.simulate.run import simulate

    out = tmp_path_factory.mktemp("cli_fields") / "karman.h5"
    simulate(ROOT / "configs" / "fluids" / "karman_tiny.yaml", out, progress=False)
    return out


def test_evaluate_fields_compares_two_keys_of_one_file_on_the_staggered_grid(
    karman_h5, tmp_path, monkeypatch, capsys
):
    import h5py

    from coldflow.metrics.field import evaluate_pairs

    source, down = "sims/0000/source/velocity", "sims/0000/downsampled/velocity"
    out = tmp_path / "table.json"
    args = ["evaluate-fields", str(karman_h5), str(karman_h5), "--key", source]
    code = run_cli(monkeypatch, *args, "--key-b", down, "--out", str(out), "--device", "cpu")
    assert code == 0, capsys.readouterr().out
    table = json.loads(out.read_text())
    assert table["grid"] == "staggered" and table["key_b"] == down  # detected, not centred
    with h5py.File(karman_h5, "r") as f:
        a, b = f[source][()], f[down][()]
    direct = evaluate_pairs(a, b, ["mse"], grid="staggered", device="cpu")
    assert table["metrics"]["mse"]["mean"] == pytest.approx(direct["mse"]["mean"])
    padded = evaluate_pairs(a, b, ["mse"], grid="centered", device="cpu")  # counts the padding
    assert padded["mse"]["mean"] < direct["mse"]["mean"]
    assert table["per_sample"]["mse"][0] == 0  # source starts as the downsampled reference
    capsys.readouterr()
    assert run_cli(monkeypatch, *args, "--key-b", down, "--grid", "centered") == 1
    assert "--grid staggered" in capsys.readouterr().err
