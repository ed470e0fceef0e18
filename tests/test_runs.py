"""Run directories: checksummed checkpoints, fallback past damaged ones, atomic writes."""

from __future__ import annotations

import errno
import json
import os
import warnings

import numpy as np
import pytest
import torch

from coldflow import io
from coldflow.errors import (
    CheckpointError,
    CheckpointWarning,
    DiskFullError,
    NoCheckpointError,
    UserError,
)
from coldflow.runs import SHA_KEY, RunDir, load_tensors, save_tensors


def _tensors(epoch: int) -> dict[str, torch.Tensor]:
    return {"model.w": torch.full((4, 4), float(epoch)), "rng.torch": torch.arange(8).byte()}


def _run_with(tmp_path, epochs=(1, 2, 3), keep=3) -> RunDir:
    run = RunDir(tmp_path / "run")
    for e in epochs:
        run.save_checkpoint(e, _tensors(e), {"epoch": e, "step": 10 * e}, keep=keep)
    return run


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip(path, at=-5):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


def test_sidecar_stores_the_sha256_of_the_tensors(tmp_path):
    run = _run_with(tmp_path, (1,))
    weights, meta = run.checkpoint_paths(1)
    import hashlib

    assert json.loads(meta.read_text())[SHA_KEY] == hashlib.sha256(weights.read_bytes()).hexdigest()
    tensors, sidecar = run.load_checkpoint()
    assert sidecar["epoch"] == 1 and torch.equal(tensors["model.w"], _tensors(1)["model.w"])


@pytest.mark.parametrize(
    "damage",
    ["truncate_tensors", "flip_tensors", "flip_tensor_header", "empty_tensors", "torn_sidecar",
     "garbage_sidecar", "sidecar_not_object", "sidecar_wrong_epoch"],
)  # fmt: skip
def test_damaged_latest_checkpoint_falls_back_with_a_warning(tmp_path, damage):
    run = _run_with(tmp_path)
    weights, meta = run.checkpoint_paths(3)
    if damage == "truncate_tensors":
        _truncate(weights)
    elif damage == "flip_tensors":
        _flip(weights)
    elif damage == "flip_tensor_header":
        _flip(weights, at=12)
    elif damage == "empty_tensors":
        weights.write_bytes(b"")
    elif damage == "torn_sidecar":
        _truncate(meta)
    elif damage == "garbage_sidecar":
        meta.write_bytes(os.urandom(64))
    elif damage == "sidecar_not_object":
        meta.write_text("[1, 2]")
    else:
        meta.write_text(json.dumps({"epoch": 7, "step": 1}))
    with pytest.warns(CheckpointWarning, match="epoch_0003") as record:
        tensors, sidecar = run.load_checkpoint()
    assert "Loaded epoch 2" in str(record[0].message)
    assert sidecar["epoch"] == 2 and torch.equal(tensors["model.w"], _tensors(2)["model.w"])
    with pytest.raises(CheckpointError, match="epoch_0003") as info:
        run.load_checkpoint(3)  # an explicit damaged epoch is an error, not a fallback
    assert isinstance(info.value, UserError)


def test_every_checkpoint_damaged_is_one_clear_error(tmp_path):
    run = _run_with(tmp_path, (1, 2))
    _flip(run.checkpoint_paths(2)[0])
    run.checkpoint_paths(1)[1].write_text("{")
    with pytest.raises(CheckpointError) as info:
        run.load_checkpoint()
    msg = str(info.value)
    assert "epoch_0002.safetensors" in msg and "checksum" in msg
    assert "epoch_0001.json" in msg and "not valid JSON" in msg


def test_missing_checkpoints_are_file_not_found(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(NoCheckpointError):
        run.load_checkpoint()
    run = _run_with(tmp_path, (1,))
    with pytest.raises(FileNotFoundError, match="available: \\[1\\]"):
        run.load_checkpoint(5)


def test_old_checkpoint_without_checksum_still_loads_and_damage_is_clear(tmp_path):
    run = _run_with(tmp_path, (1, 2))
    for e in (1, 2):
        meta = run.checkpoint_paths(e)[1]
        sidecar = json.loads(meta.read_text())
        del sidecar[SHA_KEY]
        meta.write_text(json.dumps(sidecar))
    tensors, sidecar = run.load_checkpoint()
    assert sidecar["epoch"] == 2
    _truncate(run.checkpoint_paths(2)[0])
    with pytest.warns(CheckpointWarning, match="not a valid safetensors file"):
        _, sidecar = run.load_checkpoint()
    assert sidecar["epoch"] == 1


def test_load_tensors_names_the_file(tmp_path):
    path = tmp_path / "x.safetensors"
    sha = save_tensors(path, {"a": torch.ones(3)})
    assert torch.equal(load_tensors(path, sha)["a"], torch.ones(3))
    _truncate(path, 0.8)
    with pytest.raises(CheckpointError, match="x.safetensors"):
        load_tensors(path)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_tensors(path, sha)


# --------------------------------------------------------------------- atomic writes


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_atomic_open_and_atomic_path_are_one_implementation(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    with io.atomic_open(target) as f:
        f.write("new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), io.atomic_open(target) as f:
        f.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "new" and _leftovers(target.parent) == []
    # np.savez appends .npz unless the temporary name already ends with it
    with io.atomic_path(tmp_path / "a.npz") as tmp:
        np.savez(tmp, x=np.arange(3))
    assert np.load(tmp_path / "a.npz")["x"].tolist() == [0, 1, 2]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _FullFile:
    """A file whose first write lands one byte and then finds the disk full."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[:1])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def __getattr__(self, name):
        return getattr(self.f, name)


def disk_full_for(monkeypatch, target_name: str) -> None:
    """Make writes to the temporary files of ``target_name`` run out of disk space."""
    import builtins

    real_open = builtins.open

    def full_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        name = os.path.basename(str(path))
        return _FullFile(f) if "w" in mode and name.startswith(f".{target_name}.") else f

    monkeypatch.setattr(builtins, "open", full_open)


@pytest.mark.parametrize("kind", ["text", "json", "bytes"])
def test_disk_full_keeps_the_previous_file(tmp_path, monkeypatch, kind):
    target = tmp_path / "f.json"
    io.write_text(target, "old")
    disk_full_for(monkeypatch, target.name)
    write = {"text": lambda: io.write_text(target, "new"),
             "json": lambda: io.write_json(target, {"a": 1}),
             "bytes": lambda: io.write_bytes(target, b"new")}[kind]  # fmt: skip
    with pytest.raises(DiskFullError, match="out of disk space") as info:
        write()
    monkeypatch.undo()
    assert str(target) in str(info.value) and isinstance(info.value, UserError | OSError)
    assert info.value.path == str(target)
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("part", ["safetensors", "json"])
def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, part):
    run = _run_with(tmp_path, (1,))
    before = {p.name: p.read_bytes() for p in run.checkpoint_dir.iterdir()}
    disk_full_for(monkeypatch, f"epoch_0002.{part}")
    with pytest.raises(DiskFullError, match=f"epoch_0002.{part}") as info:
        run.save_checkpoint(2, _tensors(2), {"epoch": 2, "step": 20}, keep=1)
    assert "disk space" in str(info.value)
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in run.checkpoint_dir.iterdir()}
    assert all(after[k] == v for k, v in before.items())  # nothing pruned or changed
    assert run.checkpoints() == [1] and _leftovers(run.checkpoint_dir) == []
    assert run.load_checkpoint()[1]["epoch"] == 1


def test_disk_full_while_appending_metrics_is_clear(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    run.log(1, 1, "train", "loss", 1.0)

    def full_open(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("builtins.open", full_open)
    with pytest.raises(DiskFullError, match="metrics.jsonl"):
        run.log(1, 2, "train", "loss", 1.0)


def test_truncate_metrics_keeps_earlier_epochs(tmp_path):
    run = RunDir(tmp_path / "run")
    for e in (1, 2, 3):
        run.log(e, e, "train", "loss", e)
    with run.metrics_path.open("a") as f:
        f.write('{"torn": ')
    run.truncate_metrics(2)
    assert [e["epoch"] for e in run.read_metrics()] == [1, 2]


def test_warning_category_is_a_user_warning():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        warnings.warn("x", CheckpointWarning, stacklevel=1)
    assert issubclass(w[0].category, UserWarning)
