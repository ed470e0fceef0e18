from __future__ import annotations

import sys
from pathlib import Path

import pytest

from coldflow.config import ConfigError, apply_overrides, load_config, parse_value
from coldflow.tasks.diffusion.config import DiffusionRunConfig

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "configs" / "mnist"

SEED_CONFIGS = {
    "diffusion_model": (1e-4, 0.02, 1000, [1000, 750, 500, 250, 100, 50, 10, 5, 1]),
    "model1": (1e-5, 0.01, 1840, [1840, 1000, 540, 140, 40, 10, 5, 2, 1]),
    "model2": (1e-5, 1e-3, 18300, [18300, 10000, 5000, 1000, 500, 100, 50, 10, 1]),
    "model2_T1000": (1e-5, 1e-3, 1000, [1000, 750, 500, 250, 100, 50, 10, 5, 1]),
}


@pytest.mark.parametrize("name", SEED_CONFIGS)
def test_seed_configs_carry_the_study_values(name):
    cfg = load_config(MNIST / f"{name}.yaml", DiffusionRunConfig)
    beta1, beta2, n_T, snaps = SEED_CONFIGS[name]
    assert (cfg.degradation.beta1, cfg.degradation.beta2, cfg.degradation.n_T) == (
        beta1,
        beta2,
        n_T,
    )
    assert cfg.sampling.snapshot_timesteps == snaps
    assert cfg.training.epochs == 100 and cfg.evaluation.interval == 9
    assert cfg.training.batch_size == 128 and cfg.training.optimizer.lr == 2e-4
    assert cfg.training.optimizer.kind == "adam" and cfg.seed == 12042000
    assert cfg.model.hidden == (16, 32, 32, 16)


def test_every_shipped_config_validates():
    for path in sorted((ROOT / "configs" / "mnist").glob("*.yaml")):
        load_config(path, DiffusionRunConfig)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-5", 1e-5), ("3", 3), ("2.5", 2.5), ("true", True), ("[1, 2]", [1, 2]), ("abc", "abc")],
)
def test_override_values_are_typed(text, value):
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_overrides_reach_nested_keys(tmp_path):
    cfg = load_config(
        MNIST / "diffusion_model.yaml",
        DiffusionRunConfig,
        ["training.epochs=5", "degradation.beta1=1e-5", "training.optimizer.lr=1e-3"],
    )
    assert cfg.training.epochs == 5
    assert cfg.degradation.beta1 == 1e-5
    assert cfg.training.optimizer.lr == 1e-3


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, DiffusionRunConfig)
    msg = str(e.value)
    assert str(path) in msg and "training.epoch" in msg and "epochs" in msg


def test_wrong_type_names_key_and_value(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("degradation:\n  kind: linear_noise\n  n_T: many\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, DiffusionRunConfig)
    assert "degradation.n_T" in str(e.value) and "'many'" in str(e.value)


def test_semantic_checks():
    with pytest.raises(ConfigError, match="beta1"):
        load_config(MNIST / "diffusion_model.yaml", DiffusionRunConfig, ["degradation.beta1=0.5"])
    with pytest.raises(ConfigError, match="snapshot_timesteps"):
        load_config(MNIST / "diffusion_model.yaml", DiffusionRunConfig, ["degradation.n_T=100"])


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["training.epochs"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"a": 1}, ["a.b=2"])


def test_cli_exits_2_on_a_bad_key(tmp_path, monkeypatch, capsys):
    from coldflow import cli

    monkeypatch.setattr(
        sys, "argv", ["coldflow", "train", str(MNIST / "quick.yaml"), "--set", "training.epoc=1"]
    )
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2
    out = capsys.readouterr().err
    assert "training.epoc" in out and "quick.yaml" in out
