"""``training.loggers``: TensorBoard event files and W&B runs that mirror ``metrics.jsonl``.

The TensorBoard data is read back with TensorBoard's own reader (``EventAccumulator``,
which applies ``purge_step``) and compared with ``metrics.jsonl``; W&B is checked with a
recording stand-in of the ``wandb`` module and, where ``wandb`` is installed, with a real
offline run read back from its ``.wandb`` file.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import types
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_model import LeastSquares

from coldflow.config import ConfigError, dump_yaml, load_config, validate
from coldflow.config.training import TrainingConfig
from coldflow.experiment import train
from coldflow.runs import RunDir
from coldflow.tasks import TASKS, kind_of
from coldflow.tasks.diffusion.config import DiffusionRunConfig
from coldflow.training.hashes import trajectory_hash
from coldflow.training.loggers import LoggerUnavailableError, RunLoggers
from coldflow.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "mnist" / "quick.yaml"
STORED = ROOT / "tests" / "data" / "stored_runs"

needs_tensorboard = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None, reason="pip install 'coldflow[tensorboard]'"
)


# ----------------------------------------------------------------- reading back


def _jsonl_scalars(run: RunDir) -> dict[str, list[tuple[int, float, float]]]:
    """``split/name``: ``[(step, value, time)]`` of ``metrics.jsonl``, in file order."""
    out: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for e in run.read_metrics():
        out[f"{e['split']}/{e['name']}"].append((e["step"], e["value"], e["time"]))
    return dict(out)


def _tensorboard(run: RunDir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run.path / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def _assert_tensorboard_equals_jsonl(run: RunDir) -> Any:
    """Every scalar of the event files is a line of metrics.jsonl and back: same tags,
    steps (each once), float32 values and wall times."""
    acc = _tensorboard(run)
    expected = _jsonl_scalars(run)
    assert sorted(acc.Tags()["scalars"]) == sorted(expected)
    for tag, rows in expected.items():
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        assert steps == [s for s, _, _ in rows], tag
        assert len(set(steps)) == len(steps), f"{tag}: duplicate steps {steps}"
        assert [e.value for e in events] == [float(np.float32(v)) for _, v, _ in rows], tag
        assert [e.wall_time for e in events] == pytest.approx([t for _, _, t in rows]), tag
    return acc


# ------------------------------------------------------------- tiny MNIST runs


@needs_tensorboard
def test_tensorboard_event_file_reads_back_equal_to_metrics_jsonl(tmp_path, tiny_overrides):
    over = [*tiny_overrides, "training.loggers=[jsonl, tensorboard]"]
    cfg = load_config(QUICK, DiffusionRunConfig, over)  # 3 epochs of 6 steps, eval at 2, 3
    run = train(cfg, tmp_path / "run", finish=False)
    acc = _assert_tensorboard_equals_jsonl(run)
    assert {e["split"] for e in run.read_metrics()} == {"train"}  # FID off: train only
    assert [e.step for e in acc.Scalars("train/loss")] == [6, 12, 18]
    # the sample grids of the evaluation epochs, as images at their epoch's step
    images = acc.Images("samples/images")
    assert [e.step for e in images] == [12, 18]
    assert (images[0].width, images[0].height) == (4 * 28, 28)  # sampling.n_grid=4, one row
    assert "loggers:" in (run.path / "config.yaml").read_text()


@needs_tensorboard
def test_resumed_run_continues_the_same_tensorboard_run_without_duplicates(
    tmp_path, tiny_overrides
):
    over = [*tiny_overrides, "training.loggers=[jsonl, tensorboard]"]
    one = load_config(QUICK, DiffusionRunConfig, [*over, "training.epochs=1"])
    train(one, tmp_path / "run", finish=False)
    two = load_config(QUICK, DiffusionRunConfig, [*over, "training.epochs=2"])
    run = train(two, tmp_path / "run", resume=True, finish=False)
    acc = _assert_tensorboard_equals_jsonl(run)
    assert [e.step for e in acc.Scalars("train/loss")] == [6, 12]
    assert len(list((run.path / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert [e.step for e in acc.Images("samples/images")] == [6, 12]  # last epoch of each


def test_a_missing_tensorboard_package_fails_before_training(tmp_path, tiny_overrides, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now fails
    cfg = load_config(
        QUICK, DiffusionRunConfig, [*tiny_overrides, "training.loggers=[jsonl, tensorboard]"]
    )
    with pytest.raises(LoggerUnavailableError, match=r"pip install 'coldflow\[tensorboard\]'"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing trained, nothing left


# ------------------------------------------------- a least-squares trainer (fast)


_Tiny = LeastSquares


def _trainer(tmp_path, name="run", write=True, config_text="", **training) -> Trainer:
    from torch.utils.data import TensorDataset

    gen = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(32, 3, generator=gen), torch.randn(32, generator=gen))
    opts = {"epochs": 3, "batch_size": 8, "device": "cpu", "progress": False}
    cfg = TrainingConfig(**{"keep_checkpoints": 5, **opts, **training})
    run = RunDir(tmp_path / name, write=write)
    return Trainer(_Tiny(), data, cfg, run, seed=3, config_text=config_text)


@needs_tensorboard
def test_an_epoch_logged_before_its_checkpoint_is_purged_when_redone(tmp_path):
    """A kill after an epoch reached TensorBoard but before its checkpoint: the resumed run
    redoes the epoch and TensorBoard's reader keeps only the redone steps."""
    loggers = ["jsonl", "tensorboard"]
    _trainer(tmp_path, epochs=2, loggers=loggers).fit()
    run = RunDir(tmp_path / "run")
    for p in run.checkpoint_paths(2):  # as if killed between logging and checkpointing
        p.unlink()
    before = _tensorboard(run)
    assert [e.step for e in before.Scalars("train/loss")] == [4, 8]
    old_time = before.Scalars("train/epoch_seconds")[-1].wall_time
    resumed = _trainer(tmp_path, epochs=3, loggers=loggers)
    resumed.fit(resume=True)
    acc = _assert_tensorboard_equals_jsonl(run)
    assert [e.step for e in acc.Scalars("train/loss")] == [4, 8, 12]
    assert acc.Scalars("train/epoch_seconds")[1].wall_time > old_time  # the redone epoch's
    # what the raw files hold: step 8 twice (the purge is the reader's, as in TensorBoard)
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    raw = [
        e.step
        for f in sorted((run.path / "tensorboard").glob("events.out.tfevents.*"))
        for e in EventFileLoader(str(f)).Load()
        if e.HasField("summary") and e.summary.value[0].tag == "train/loss"
    ]
    assert raw == [4, 8, 8, 12]


def test_only_the_writing_process_logs(tmp_path):
    trainer = _trainer(tmp_path, write=False, loggers=["jsonl", "tensorboard", "wandb"])
    trainer.fit()  # a rank other than 0: no package is even imported
    assert trainer.loggers.names == [] and not (tmp_path / "run").exists()


# ------------------------------------------------------------------------ config


def test_loggers_must_include_jsonl_and_be_known():
    with pytest.raises(ConfigError, match=r"training\.loggers: .*must include jsonl.*"):
        validate({"training": {"loggers": ["tensorboard"]}}, DiffusionRunConfig)
    with pytest.raises(ConfigError, match=r"training\.loggers=\[jsonl, tensorboard\]"):
        validate({"training": {"loggers": ["tensorboard"]}}, DiffusionRunConfig)
    with pytest.raises(ConfigError, match=r"training\.loggers\.1: Input should be 'jsonl'"):
        validate({"training": {"loggers": ["jsonl", "tb"]}}, DiffusionRunConfig)
    with pytest.raises(ConfigError, match=r"training\.wandb\.projekt: unknown key"):
        validate({"training": {"wandb": {"projekt": "x"}}}, DiffusionRunConfig)
    cfg = validate({"training": {"loggers": "jsonl, tensorboard,jsonl"}}, DiffusionRunConfig)
    assert cfg.training.loggers == ["jsonl", "tensorboard"]
    with pytest.raises(ValueError, match="unknown loggers"):
        RunLoggers(RunDir("unused"), ["jsonl", "tb"])


@pytest.mark.parametrize("kind", sorted(p.name for p in STORED.iterdir() if p.is_dir()))
def test_the_new_options_leave_stored_runs_dumps_and_hashes_unchanged(kind):
    """A run made before ``loggers`` existed reads back to the same config.yaml and
    trajectory hash, and may be resumed with any loggers."""
    path = STORED / kind
    task = TASKS[kind_of(path)]
    cfg = load_config(path / "config.yaml", task.config_model)
    assert dump_yaml(cfg) == (path / "config.yaml").read_text()
    assert "loggers" not in cfg.model_dump()["training"]
    run = RunDir(path)
    stored = run.sidecar(run.checkpoints()[-1])["config_hash"]
    assert trajectory_hash(cfg, task.hash_exclude) == stored
    logged = load_config(
        path / "config.yaml",
        task.config_model,
        ["training.loggers=[jsonl, tensorboard, wandb]", "training.wandb.project=x"],
    )
    assert "loggers" in logged.model_dump()["training"]
    assert trajectory_hash(logged, task.hash_exclude) == stored


# ------------------------------------------------------------------------ W&B


class _FakeWandb(types.ModuleType):
    """Records what the ``wandb`` logger asks of the ``wandb`` package."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.inits: list[dict[str, Any]] = []
        self.logged: list[tuple[int, dict[str, Any]]] = []
        self.finished: list[int] = []

    def init(self, **kwargs: Any) -> Any:
        self.inits.append(kwargs)
        fake = self

        class Run:
            def log(self, values: dict[str, Any], step: int) -> None:
                fake.logged.append((step, values))

            def finish(self, exit_code: int = 0) -> None:
                fake.finished.append(exit_code)

        return Run()

    class Image:
        def __init__(self, array: np.ndarray) -> None:
            self.array = array


@pytest.fixture
def fake_wandb(monkeypatch) -> _FakeWandb:
    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return fake


def _wandb_scalars(logged: list[tuple[int, dict[str, Any]]]) -> dict[str, list[tuple[int, Any]]]:
    out: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for step, values in logged:
        for key, value in values.items():
            out[key].append((step, value))
    return dict(out)


def _assert_wandb_equals_jsonl(scalars: dict[str, list[tuple[int, Any]]], run: RunDir) -> None:
    """W&B got every scalar of metrics.jsonl at its step (each once), plus the epoch."""
    expected = _jsonl_scalars(run)
    assert sorted(scalars) == sorted([*expected, "epoch"])
    for tag, rows in expected.items():
        assert scalars[tag] == [(s, v) for s, v, _ in rows], tag
    epochs = {e["step"]: e["epoch"] for e in run.read_metrics()}
    assert scalars["epoch"] == sorted(epochs.items())


def test_wandb_logs_the_scalars_of_metrics_jsonl_offline_and_resumes_its_run(tmp_path, fake_wandb):
    _trainer(tmp_path, epochs=2, loggers=["jsonl", "wandb"], config_text="seed: 3\n").fit()
    run = RunDir(tmp_path / "run")
    first = fake_wandb.inits[0]
    assert first["mode"] == "offline" and first["resume"] == "allow"
    assert first["dir"] == str(run.path) and first["project"] == "coldflow"
    assert first["config"] == {"seed": 3}
    run_id = (run.path / "wandb" / "run_id").read_text().strip()
    assert first["id"] == run_id and fake_wandb.finished == [0]
    resumed = _trainer(tmp_path, epochs=3, loggers=["jsonl", "wandb"])
    resumed.fit(resume=True)
    assert [i["id"] for i in fake_wandb.inits] == [run_id, run_id]  # the same W&B run
    _assert_wandb_equals_jsonl(_wandb_scalars(fake_wandb.logged), run)
    assert [s for s, _ in fake_wandb.logged] == [4, 8, 12]


def test_wandb_mode_follows_the_config_then_the_environment(tmp_path, fake_wandb, monkeypatch):
    online = {"project": "p", "entity": "team", "mode": "online"}
    _trainer(tmp_path, "a", epochs=1, loggers=["jsonl", "wandb"], wandb=online).fit()
    assert {k: fake_wandb.inits[-1][k] for k in online} == online
    monkeypatch.setenv("WANDB_MODE", "disabled")
    _trainer(tmp_path, "b", epochs=1, loggers=["jsonl", "wandb"]).fit()
    assert fake_wandb.inits[-1]["mode"] is None  # wandb reads $WANDB_MODE itself


def test_wandb_logs_sample_grids_of_evaluation_epochs(tmp_path, fake_wandb):
    def hook(trainer: Trainer, epoch: int) -> None:  # what the diffusion tasks' hook saves
        images = torch.linspace(-1, 1, 2 * 28 * 28).reshape(2, 1, 28, 28)
        if epoch == 2:
            trainer.run.save_samples({"images": images}, epoch=epoch)

    config = "data:\n  range: [-1, 1]\n"
    trainer = _trainer(tmp_path, epochs=3, loggers=["jsonl", "wandb"], config_text=config)
    trainer.hooks.append(hook)
    trainer.fit()
    grids = [(s, v) for s, v in fake_wandb.logged if "samples/images" in v]
    assert [s for s, _ in grids] == [8]
    array = grids[0][1]["samples/images"].array
    assert array.shape == (28, 56, 3) and array.dtype == np.uint8
    assert array[0, 0, 0] == 0 and array[-1, -1, 0] == 255  # data.range -1..1 -> 0..255


def test_a_missing_wandb_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(LoggerUnavailableError, match=r"pip install 'coldflow\[wandb\]'"):
        _trainer(tmp_path, loggers=["jsonl", "wandb"])


def _wandb_history(path: Path) -> list[dict[str, Any]]:
    """The history rows of a ``.wandb`` file (W&B's LevelDB-style record log)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B transaction log this test can read"
    block, pos, chunks, rows = 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a record header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        chunks = chunk if kind in (1, 2) else chunks + chunk  # full / first; middle, last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            if record.WhichOneof("record_type") == "history":
                items = record.history.item
                rows.append(
                    {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}
                )
    return rows


def test_real_offline_wandb_run_holds_the_scalars_of_metrics_jsonl(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="pip install 'coldflow[wandb]'")
    for var in ("WANDB_MODE", "WANDB_DIR", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
    _trainer(tmp_path, epochs=1, loggers=["jsonl", "wandb"]).fit()
    _trainer(tmp_path, epochs=2, loggers=["jsonl", "wandb"]).fit(resume=True)
    run = RunDir(tmp_path / "run")
    run_id = (run.path / "wandb" / "run_id").read_text().strip()
    files = sorted(run.path.glob("wandb/offline-run-*/run-*.wandb"))
    assert [f.name for f in files] == [f"run-{run_id}.wandb"] * 2  # one W&B run, resumed
    scalars: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for f in files:
        for row in _wandb_history(f):
            for key, value in row.items():
                if not key.startswith("_"):
                    scalars[key].append((row["_step"], value))
    # the files' order is not the runs' order (``...-1`` sorts first): order by step
    _assert_wandb_equals_jsonl({k: sorted(v) for k, v in scalars.items()}, run)
