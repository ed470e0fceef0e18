"""The validation split: numbered after train and test, appended to an existing data set
without touching its simulations, and scored (never trained on) after every epoch."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from tiny_model import LeastSquares
from torch.utils.data import TensorDataset

from coldflow.config import ConfigError, load_config
from coldflow.config.fluids import SPLITS, FluidDataConfig
from coldflow.config.training import TrainingConfig
from coldflow.data.store import FieldData
from coldflow.runs import RunDir
from coldflow.simulate.run import simulate
from coldflow.simulate.specs import physics_hash, simulation_specs
from coldflow.training.trainer import Trainer
from coldflow.training.validation import ValidationHook, spread_subset

torch.set_num_threads(1)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "fluids"
TINY = CONFIGS / "karman_tiny.yaml"
VAL = [
    "simulations.val.params={re: [2.0e5]}",
    "simulations.val.seeds=[200]",
]


def test_val_is_numbered_last_and_left_out_of_the_dump_when_empty():
    assert SPLITS == ("train", "test", "val")
    plain = load_config(TINY, FluidDataConfig)
    with_val = load_config(TINY, FluidDataConfig, VAL)
    assert "val" not in plain.model_dump()["simulations"]  # old data sets keep their config
    specs = simulation_specs(with_val)
    assert [s.split for s in specs] == ["train", "train", "test", "val"]
    # the first simulations are the same ones with or without the val split
    old = simulation_specs(plain)
    assert [physics_hash(plain, s) for s in old] == [physics_hash(with_val, s) for s in specs[:3]]


def test_val_params_are_checked_like_the_other_splits():
    with pytest.raises(ConfigError, match="simulations.val.params"):
        load_config(TINY, FluidDataConfig, ["simulations.val.params={buoyancy: [1.0]}",
                                            "simulations.val.seeds=[1]"])  # fmt: skip


@pytest.mark.slow
def test_adding_a_val_split_appends_simulations_and_keeps_the_others(tmp_path):
    out = tmp_path / "k.h5"
    simulate(TINY, out, progress=False, overrides=["frames=6"])
    with h5py.File(out) as f:
        before = {k: f[f"sims/{k}/reference/velocity"][()] for k in f["sims"]}
    simulate(TINY, out, progress=False, overrides=["frames=6", *VAL])
    with FieldData(out) as data:
        assert [(s.index, s.split) for s in data.simulations()] == [
            (0, "train"), (1, "train"), (2, "test"), (3, "val"),
        ]  # fmt: skip
        assert data.simulations("val")[0].params["re"] == 2.0e5
        for k, v in before.items():
            assert np.array_equal(data.read(int(k), "reference", "velocity"), v)
        cfg_text = data.attrs["config_yaml"]
    assert "val" in cfg_text
    # complete now: a rerun does nothing; a changed simulation is still refused
    simulate(TINY, out, progress=False, overrides=["frames=6", *VAL])
    with pytest.raises(ConfigError, match="not made by this config"):
        simulate(TINY, out, progress=False, overrides=["frames=6", "simulations.test.seeds=[7]"])


_Line = LeastSquares


def _fit(tmp_path: Path, name: str, hooks=(), ema: float | None = 0.9) -> tuple[dict, list]:
    gen = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(32, 3, generator=gen), torch.randn(32, generator=gen))
    cfg = TrainingConfig(epochs=3, batch_size=8, device="cpu", progress=False, ema=ema)
    model = _Line()
    run = RunDir(tmp_path / name)
    Trainer(model, data, cfg, run, seed=3, hooks=hooks).fit()
    return {k: v.clone() for k, v in model.state_dict().items()}, run.read_metrics()


def _val_data() -> TensorDataset:
    gen = torch.Generator().manual_seed(2)
    return TensorDataset(torch.randn(20, 3, generator=gen), torch.randn(20, generator=gen))


def test_validation_hook_changes_nothing_in_training(tmp_path):
    plain, _ = _fit(tmp_path, "plain")
    with_val, metrics = _fit(tmp_path, "val", [ValidationHook(_val_data(), 6, "20 items")])
    assert all(torch.equal(plain[k], with_val[k]) for k in plain)  # same training
    logged = [e for e in metrics if e["split"] == "val" and e["name"] == "loss"]
    assert [e["epoch"] for e in logged] == [1, 2, 3]


def test_validation_hook_logs_the_loss_over_every_item(tmp_path):
    val = _val_data()
    weights, metrics = _fit(tmp_path, "noema", [ValidationHook(val, 6)], ema=None)
    model = _Line()
    model.load_state_dict(weights)
    x, y = val.tensors
    with torch.no_grad():
        direct = float(((model.lin(x).squeeze(-1) - y) ** 2).mean())
    last = [e for e in metrics if e["split"] == "val"][-1]
    assert last["value"] == pytest.approx(direct, rel=1e-6)


def test_validation_loss_is_the_size_weighted_mean():
    val = TensorDataset(torch.arange(5.0)[:, None].expand(5, 3), torch.zeros(5))

    class Mean(torch.nn.Module):
        def forward(self, batch):
            return batch[0][:, 0].mean()

    hook = ValidationHook(val, batch_size=2)
    assert hook.loss(Mean(), torch.device("cpu")) == pytest.approx(2.0)  # (0+1+2+3+4) / 5


def test_spread_subset_takes_evenly_spread_items():
    data = TensorDataset(torch.arange(100))
    sub = spread_subset(data, 5)
    assert [int(sub[i][0]) for i in range(5)] == [0, 25, 50, 74, 99]
    assert spread_subset(data, 200) is data
