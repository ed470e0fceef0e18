"""Fault injection: kills at many points, damaged files, full disks, pickled payloads.

Every fault must end in one of two outcomes: a resumed run equal bit for bit to an
uninterrupted one (or a fallback to the newest intact file, with a warning), or a clear
error that names the file (a ``UserError`` subclass). Never a silent wrong result.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from coldflow.errors import CheckpointError, CheckpointWarning, DiskFullError, UserError
from coldflow.runs import RunDir

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "mnist" / "quick.yaml"
KARMAN = ROOT / "configs" / "fluids" / "karman_tiny.yaml"
SHARED = ROOT.parent / "shared" / "data"

# ------------------------------------------------------------------ killed training

# A driver that runs the CLI with one function patched to SIGKILL the process at a chosen
# point: the kill lands exactly there, not after a guessed delay.
DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    import coldflow.io, coldflow.runs, coldflow.training.trainer
    from coldflow import cli

    point = os.environ["KILL_AT"]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "mid_epoch":  # the 9th batch: the middle of epoch 2 (6 batches an epoch)
        real_to_device, calls = coldflow.training.trainer.to_device, [0]

        def to_device(batch, device, *args):
            calls[0] += 1
            if calls[0] == 9:
                die()
            return real_to_device(batch, device, *args)

        coldflow.training.trainer.to_device = to_device
    elif point in ("tensors_write", "sidecar_write"):  # half of the bytes reach the disk
        real_open = coldflow.io.atomic_open
        target = "epoch_0002." + ("safetensors" if point == "tensors_write" else "json")

        import contextlib

        @contextlib.contextmanager
        def atomic_open(path, mode="w"):
            with real_open(path, mode) as f:
                if Path(path).name == target:
                    real_write = f.write

                    def write(data):
                        real_write(data[: len(data) // 2])
                        f.flush()
                        os.fsync(f.fileno())
                        die()

                    f.write = write
                yield f

        coldflow.io.atomic_open = atomic_open
    elif point in ("before_sidecar", "before_prune"):
        real_json = coldflow.runs.write_json

        def write_json(path, obj):
            if Path(path).name == "epoch_0002.json":
                if point == "before_sidecar":
                    die()
                real_json(path, obj)
                die()
            real_json(path, obj)

        coldflow.runs.write_json = write_json
    elif point == "eval_hook":  # while the epoch-2 evaluation saves its samples
        real_save = coldflow.runs.RunDir.save_samples

        def save_samples(self, tensors, epoch=None, meta=None):
            if epoch == 2:
                die()
            return real_save(self, tensors, epoch, meta)

        coldflow.runs.RunDir.save_samples = save_samples
    else:
        raise SystemExit(f"unknown kill point {point}")

    sys.argv = ["coldflow", *sys.argv[1:]]
    cli.main()
    """
)

KILL_POINTS = [
    "mid_epoch",
    "tensors_write",
    "sidecar_write",
    "before_sidecar",
    "before_prune",
    "eval_hook",
]


def _train_args(tiny_overrides: list[str], run_dir: Path) -> list[str]:
    sets = [a for o in [*tiny_overrides, "training.keep_checkpoints=1"] for a in ("--set", o)]
    return ["train", str(QUICK), *sets, "--run-dir", str(run_dir), "--no-report"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(*args: str, driver: Path | None = None, kill_at: str = "") -> subprocess.CompletedProcess:
    cmd = [sys.executable, *([str(driver)] if driver else ["-m", "coldflow.cli"]), *args]
    env = {**_env(), "KILL_AT": kill_at}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    run = RunDir(run_dir)
    weights, _ = run.checkpoint_paths(run.checkpoints()[-1])
    return load_file(str(weights))


_REFERENCE: dict[str, Path] = {}


@pytest.fixture
def reference(tmp_path_factory, tiny_overrides) -> Path:
    """An uninterrupted run (made once per session)."""
    if "run" not in _REFERENCE:
        run_dir = tmp_path_factory.mktemp("reference") / "run"
        res = _cli(*_train_args(tiny_overrides, run_dir))
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        _REFERENCE["run"] = run_dir
    return _REFERENCE["run"]


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_then_resume_is_bit_identical(tmp_path, tiny_overrides, point, reference):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    killed = tmp_path / "killed"
    res = _cli(*_train_args(tiny_overrides, killed), driver=driver, kill_at=point)
    assert res.returncode == -signal.SIGKILL, res.stdout[-2000:] + res.stderr[-2000:]
    run = RunDir(killed)
    assert not run.checkpoints() or run.checkpoints()[-1] < 3, "the kill came too late"
    res = _cli("train", "--resume", "--run-dir", str(killed), "--no-report")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    a, b = _final_weights(reference), _final_weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), (point, k)
    losses = [e["epoch"] for e in run.read_metrics() if e["name"] == "loss"]
    assert losses == [1, 2, 3], losses  # no epoch logged twice
    leftovers = [p.name for p in run.checkpoint_dir.iterdir() if p.name.startswith(".")]
    assert len(leftovers) <= 1  # at most the killed temporary file, never a torn checkpoint


# ------------------------------------------------------------- damaged files coldflow reads


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x04
    path.write_bytes(bytes(data))


@pytest.fixture
def local_hub(tmp_path, monkeypatch) -> Path:
    """COLDFLOW_DATA / COLDFLOW_WEIGHTS in a scratch directory with an empty cache."""
    monkeypatch.setenv("COLDFLOW_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("COLDFLOW_WEIGHTS", str(tmp_path / "data" / "weights"))
    monkeypatch.setenv("COLDFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLDFLOW_OFFLINE", "1")
    return tmp_path / "data"


needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")


@needs_shared
@pytest.mark.parametrize("damage", ["truncate", "flip_header", "flip_payload"])
@pytest.mark.parametrize("name", ["t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"])
def test_damaged_idx_file_is_a_hub_error_naming_it(local_hub, damage, name):
    from coldflow.data.mnist import load_mnist
    from coldflow.hub import HubError

    (local_hub / "mnist").mkdir(parents=True)
    for f in ("t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        shutil.copy(SHARED / "mnist" / f, local_hub / "mnist" / f)
    path = local_hub / "mnist" / name
    if damage == "truncate":
        _truncate(path)
    else:
        _flip(path, 3 if damage == "flip_header" else len(path.read_bytes()) // 2)
    with pytest.raises(HubError, match=name) as info:
        load_mnist("test")
    assert isinstance(info.value, UserError) and "checksum" in str(info.value)


@needs_shared
def test_truncated_idx_payload_is_named_by_the_reader(tmp_path):
    from coldflow.data.mnist import IDXError, read_idx

    raw = gzip.decompress((SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    path = tmp_path / "labels.idx"
    path.write_bytes(raw[:-10])
    with pytest.raises(IDXError, match="labels.idx.*truncated") as info:
        read_idx(path)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)
    (tmp_path / "bad.gz").write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(IDXError, match="bad.gz"):
        read_idx(tmp_path / "bad.gz")
    path.write_bytes(raw[:6])  # the header itself cut short
    with pytest.raises(IDXError, match="labels.idx.*header is truncated"):
        read_idx(path)


@needs_shared
@pytest.mark.parametrize("damage", ["truncate", "flip"])
@pytest.mark.parametrize("resource", ["lpips-alex", "lsim"])
def test_damaged_weights_file_is_a_hub_error_naming_it(local_hub, damage, resource):
    from coldflow import hub
    from coldflow.losses._common import load_checkpoint

    res = hub.RESOURCES[resource]
    src = SHARED / "weights" / res.relpath
    dest = local_hub / "weights" / res.relpath
    dest.parent.mkdir(parents=True)
    shutil.copy(src, dest)
    if damage == "truncate":
        _truncate(dest, 0.9)
    else:
        _flip(dest, len(dest.read_bytes()) // 3)
    with pytest.raises(hub.HubError, match=res.filename) as info:
        load_checkpoint(resource)
    assert "checksum" in str(info.value)


class _Payload:
    """Pickles to a call of ``os.system``: what a malicious ``.pth`` would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_payload_in_a_pth_file_is_refused(tmp_path, monkeypatch):
    from coldflow import hub
    from coldflow.losses._common import load_checkpoint
    from coldflow.nets.inception import load_fid_inception

    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.pth"
    torch.save({"weight": torch.ones(2), "extra": _Payload(marker)}, evil)
    monkeypatch.setattr(hub, "resolve", lambda name, download=None: evil)
    with pytest.raises(hub.HubError, match="evil.pth"):
        load_checkpoint("lsim")  # the loader for LSiM, LPIPS and the VGG/AlexNet backbones
    with pytest.raises(UserError, match="evil.pth.*(Weights only load failed|Unsupported global)"):
        load_fid_inception(evil)  # the FID Inception weights file
    assert not marker.exists()
    # every torch.load of the package says weights_only=True
    import re

    call = re.compile(r"(?<![\w.])torch\.load\(")
    for p in (ROOT / "src").rglob("*.py"):
        for line in p.read_text().splitlines():
            if call.search(line):
                assert "weights_only=True" in line, f"{p}: {line.strip()}"


@pytest.mark.parametrize(
    "damage",
    [
        "truncate_mid_key",
        "garbage_bytes",
        "flipped_number",
        "tab_indent",
        "empty",
        "binary_nul",
    ],
)
def test_damaged_config_yaml_is_a_config_error_naming_the_file(tmp_path, damage):
    from coldflow.config import ConfigError, load_config
    from coldflow.tasks.diffusion.config import DiffusionRunConfig

    path = tmp_path / "quick.yaml"
    text = QUICK.read_text()
    if damage == "truncate_mid_key":
        cut = text.index("batch_size")
        path.write_text(text[: cut + 5])
    elif damage == "garbage_bytes":
        path.write_bytes(os.urandom(200))
    elif damage == "flipped_number":
        path.write_text(text.replace("epochs: 2", "epochs: 2\x7f"))
    elif damage == "tab_indent":
        path.write_text(text.replace("  epochs: 2", "\tepochs: 2"))
    elif damage == "empty":
        path.write_text("")
    else:
        path.write_bytes(text.encode()[:300] + b"\x00\x00" + text.encode()[300:])
    with pytest.raises(ConfigError, match="quick.yaml"):
        load_config(path, DiffusionRunConfig)


@pytest.mark.parametrize("damage", ["truncate", "not_torch", "other_layout"])
def test_damaged_fid_inception_file_is_a_user_error_naming_it(tmp_path, damage):
    from coldflow.errors import WeightsFileError
    from coldflow.nets.inception import load_fid_inception

    path = tmp_path / "pt_inception.pth"
    torch.save({"fc.weight": torch.ones(2, 2)}, path)
    if damage == "truncate":
        _truncate(path, 0.5)
    elif damage == "not_torch":
        path.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(WeightsFileError, match="pt_inception.pth") as info:
        load_fid_inception(path)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)


# ------------------------------------------------------ damaged checkpoints of a real run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    from coldflow.config import load_config
    from coldflow.experiment import train
    from coldflow.tasks.diffusion.config import DiffusionRunConfig

    overrides = [
        "data.train_subset=64", "degradation.n_T=20", "model.hidden=[4, 8, 4]",
        "model.time_embeddings=4", "training.epochs=2", "training.batch_size=16",
        "training.ema=0.9", "training.progress=false", "training.device=cpu",
        "sampling.snapshot_timesteps=[20, 10, 1]", "sampling.n_grid=4",
        "evaluation.interval=5", "evaluation.fid.enabled=false",
    ]  # fmt: skip
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    train(load_config(QUICK, DiffusionRunConfig, overrides), run_dir, finish=False)
    return run_dir


@pytest.mark.parametrize("damage", ["truncate_tensors", "flip_tensors", "torn_sidecar"])
def test_load_run_falls_back_past_a_damaged_latest_checkpoint(tmp_path, trained_run, damage):
    from coldflow.experiment import load_run

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    weights, meta = RunDir(run_dir).checkpoint_paths(2)
    if damage == "truncate_tensors":
        _truncate(weights, 0.97)
    elif damage == "flip_tensors":
        _flip(weights, len(weights.read_bytes()) - 100)
    else:
        _truncate(meta, 0.5)
    with pytest.warns(CheckpointWarning, match="epoch_0002"):
        loaded = load_run(run_dir, device="cpu")
    assert loaded.epoch == 1
    _flip(RunDir(run_dir).checkpoint_paths(1)[0], -100)
    with pytest.raises(CheckpointError, match="epoch_0001.safetensors.*\\n.*|epoch_0002"):
        load_run(run_dir, device="cpu")


# ------------------------------------------------------------------- fluid data sets


def _h5_arrays(path: Path) -> dict:
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else 0)
    return out


def _karman(frames: int = 7):
    from coldflow.config.base import load_config
    from coldflow.config.fluids import FluidDataConfig

    return load_config(KARMAN, FluidDataConfig, [f"frames={frames}", "warmup=2"])


@pytest.fixture(scope="module")
def karman_data(tmp_path_factory) -> Path:
    from coldflow.simulate.run import generate

    out = tmp_path_factory.mktemp("karman") / "karman.h5"
    generate(_karman(), out, progress=False, log=lambda m: None, checkpoint_every=0)
    return out


@pytest.mark.parametrize("damage", ["truncate", "flip_signature", "empty"])
def test_damaged_hdf5_data_set_is_a_field_data_error(tmp_path, karman_data, damage):
    from coldflow.data.store import FieldData, FieldDataError

    path = tmp_path / "karman.h5"
    shutil.copy(karman_data, path)
    if damage == "truncate":
        _truncate(path, 0.6)
    elif damage == "flip_signature":
        _flip(path, 2)
    else:
        path.write_bytes(b"")
    with pytest.raises(FieldDataError, match="karman.h5"), FieldData(path) as data:
        data.read(0)


def _chunk_offset(path: Path, name: str, chunk: int = 0) -> tuple[int, int]:
    import h5py

    with h5py.File(path, "r") as f:
        info = f[name].id.get_chunk_info(chunk)
    return info.byte_offset, info.size


def test_every_dataset_carries_a_checksum(karman_data):
    import h5py

    with h5py.File(karman_data, "r") as f:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert names and all(f[n].fletcher32 for n in names), names
        assert f["sims/0000/source/velocity"].attrs["grid"] == "staggered"
        assert f["sims/0000/source/density"].attrs["grid"] == "centered"


@pytest.mark.parametrize("name", ["sims/0001/reference/velocity", "obstacle/low"])
def test_bit_flip_inside_a_dataset_chunk_is_a_field_data_error(tmp_path, karman_data, name):
    """Without a checksum the flipped bit would be read as a slightly wrong number."""
    from coldflow.data.store import FieldData, FieldDataError

    path = tmp_path / "karman.h5"
    shutil.copy(karman_data, path)
    offset, size = _chunk_offset(path, name, 0)
    _flip(path, offset + size // 2)
    with FieldData(path) as data:
        intact = data.read(0, "reference")  # other datasets still read
        assert intact.shape[0] == data.frames
        with pytest.raises(FieldDataError, match=f"karman.h5: dataset '{name}' is damaged"):
            if name.startswith("sims"):
                data.read(1, "reference", frames=0)
            else:
                data.obstacle("source")


def test_bit_flip_is_named_by_training_windows_and_evaluate_fields(tmp_path, karman_data):
    from coldflow.data.store import FieldDataError, FieldWindows
    from coldflow.metrics.field import FieldsInputError
    from coldflow.metrics.files import evaluate_fields

    path = tmp_path / "karman.h5"
    shutil.copy(karman_data, path)
    name = "sims/0000/downsampled/velocity"
    offset, size = _chunk_offset(path, name, 3)
    _flip(path, offset + size // 3)
    windows = FieldWindows(path, m=1, split="train", skip_warmup=False)
    with pytest.raises(FieldDataError, match=name):
        for i in range(len(windows)):
            windows[i]
    with pytest.raises(FieldsInputError, match=f"karman.h5: dataset '{name}' cannot be read"):
        evaluate_fields(path, path, "sims/0000/source/velocity", ["mse"], key_b=name)


def test_simulation_resumes_inside_a_batch_bit_identically(tmp_path, karman_data, monkeypatch):
    """A batch interrupted after 5 frames resumes from its 4-frame checkpoint."""
    from coldflow.physics import Scene
    from coldflow.simulate.run import generate

    out = tmp_path / "karman.h5"
    real_step, calls = Scene.step, [0]

    def failing_step(self, state, params, *a, **k):
        calls[0] += 1
        if calls[0] == 9:  # after the warm-up steps, in the middle of the first batch
            raise KeyboardInterrupt
        return real_step(self, state, params, *a, **k)

    monkeypatch.setattr(Scene, "step", failing_step)
    with pytest.raises(KeyboardInterrupt):
        generate(_karman(), out, progress=False, log=lambda m: None, checkpoint_every=2)
    monkeypatch.undo()
    parts = out.with_name(out.name + ".parts")
    manifest = json.loads((parts / "batch_0000.resume.json").read_text())
    assert len(manifest["segments"]) >= 2
    said: list[str] = []
    generate(_karman(), out, progress=False, log=said.append, checkpoint_every=2)
    assert any("resumed at" in m for m in said), said
    a, b = _h5_arrays(karman_data), _h5_arrays(out)
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), k
    assert not parts.exists()


def test_damaged_simulation_segment_falls_back_to_the_one_before(tmp_path, karman_data):
    from coldflow.simulate.run import generate

    out = tmp_path / "karman.h5"
    from coldflow.physics import Scene

    real_step, calls = Scene.step, [0]

    def failing_step(self, state, params, *a, **k):
        calls[0] += 1
        if calls[0] == 10:
            raise KeyboardInterrupt
        return real_step(self, state, params, *a, **k)

    Scene.step = failing_step
    try:
        with pytest.raises(KeyboardInterrupt):
            generate(_karman(), out, progress=False, log=lambda m: None, checkpoint_every=2)
    finally:
        Scene.step = real_step
    parts = out.with_name(out.name + ".parts")
    last = sorted(parts.glob("batch_0000.seg_*.safetensors"))[-1]
    _flip(last, len(last.read_bytes()) - 50)
    said: list[str] = []
    with pytest.warns(UserWarning, match=last.name):
        generate(_karman(), out, progress=False, log=said.append, checkpoint_every=2)
    a, b = _h5_arrays(karman_data), _h5_arrays(out)
    for k in a:
        assert (a[k] == b[k]).all(), k


def test_disk_full_while_writing_a_simulation_part(tmp_path, karman_data, monkeypatch):
    from coldflow.data.store_writer import SimulationWriter, part_attrs
    from coldflow.simulate.run import generate

    out = tmp_path / "karman.h5"
    real_write = SimulationWriter.write

    def write(self, name, frame, values):
        if self.path.name == "sim_0002.h5" and frame == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, name, frame, values)

    monkeypatch.setattr(SimulationWriter, "write", write)
    with pytest.raises(DiskFullError, match="sim_0002.h5") as info:
        generate(_karman(), out, progress=False, log=lambda m: None, checkpoint_every=0)
    assert "disk space" in str(info.value) and isinstance(info.value, UserError)
    monkeypatch.undo()
    parts = out.with_name(out.name + ".parts")
    assert part_attrs(parts / "sim_0000.h5") and part_attrs(parts / "sim_0001.h5")
    assert [p.name for p in parts.iterdir() if p.name.startswith(".")] == []
    assert not out.exists()
    generate(_karman(), out, progress=False, log=lambda m: None, checkpoint_every=0)
    a, b = _h5_arrays(karman_data), _h5_arrays(out)
    for k in a:
        assert (a[k] == b[k]).all(), k


@pytest.mark.parametrize("target", ["segment", "data set"])
def test_disk_full_while_writing_a_segment_or_the_data_set(tmp_path, monkeypatch, target):
    import builtins

    import h5py

    from coldflow.simulate.run import generate

    out = tmp_path / "karman.h5"
    if target == "segment":
        name = "batch_0000.seg_0000.safetensors"
        real_open = builtins.open

        def full_open(path, mode="r", *a, **k):
            if "w" in mode and os.path.basename(str(path)).startswith(f".{name}."):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_open(path, mode, *a, **k)

        monkeypatch.setattr(builtins, "open", full_open)
    else:
        name = "karman.h5"
        real_create = h5py.Group.create_dataset

        def create_dataset(self, *a, **k):
            if os.path.basename(self.file.filename).startswith(f".{name}."):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_create(self, *a, **k)

        monkeypatch.setattr(h5py.Group, "create_dataset", create_dataset)
    with pytest.raises(DiskFullError, match=name):
        generate(_karman(), out, progress=False, log=lambda m: None, checkpoint_every=3)
    monkeypatch.undo()
    assert not out.exists()
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]


def test_progress_without_a_terminal_prints_plain_lines_with_eta(tmp_path):
    from coldflow.simulate.run import generate

    said: list[str] = []
    generate(_karman(), tmp_path / "k.h5", progress=True, log=said.append, checkpoint_every=0)
    lines = [m for m in said if m.startswith("simulate:")]
    assert 5 <= len(lines) <= 21, said
    assert all("frames/s" in m and "ETA" in m for m in lines)
    assert lines[-1].startswith("simulate: 30/30 frames (100%)")  # 3 x (6 + 4) frames


@pytest.mark.slow
def test_sigkill_during_simulate_then_rerun_is_bit_identical(tmp_path):
    out, ref = tmp_path / "killed.h5", tmp_path / "ref.h5"
    cmd = [str(Path(sys.executable).with_name("coldflow")), "simulate", str(KARMAN)]
    env = {**_env(), "COLDFLOW_CHECKPOINT_FRAMES": "3"}
    done = subprocess.run([*cmd, "--out", str(ref)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    proc = subprocess.Popen(
        [*cmd, "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    manifest = out.with_name(out.name + ".parts") / "batch_0000.resume.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            if len(json.loads(manifest.read_text())["segments"]) >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the simulation finished before the kill"
    res = subprocess.run([*cmd, "--out", str(out)], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resumed at" in res.stderr + res.stdout
    a, b = _h5_arrays(ref), _h5_arrays(out)
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), k


def test_simulation_killed_during_spin_up_resumes_bit_identically(tmp_path, monkeypatch):
    """Spin-up steps are checkpointed like stored frames; frame 0 is the state after them."""
    import numpy as np

    from coldflow.physics import Scene
    from coldflow.simulate.run import generate

    def cfg(spin_up):
        return load_config(KARMAN, FluidDataConfig, ["frames=5", "warmup=1", f"spin_up={spin_up}"])

    from coldflow.config.base import load_config
    from coldflow.config.fluids import FluidDataConfig

    whole = tmp_path / "whole.h5"
    generate(cfg(4), whole, progress=False, log=lambda m: None, checkpoint_every=0)
    out = tmp_path / "killed.h5"
    real_step, calls = Scene.step, [0]

    def failing_step(self, state, params, *a, **k):
        calls[0] += 1
        if calls[0] == 4:  # initial projection, then the 3rd spin-up step of the first batch
            raise KeyboardInterrupt
        return real_step(self, state, params, *a, **k)

    monkeypatch.setattr(Scene, "step", failing_step)
    with pytest.raises(KeyboardInterrupt):
        generate(cfg(4), out, progress=False, log=lambda m: None, checkpoint_every=2)
    monkeypatch.undo()
    said: list[str] = []
    generate(cfg(4), out, progress=False, log=said.append, checkpoint_every=2)
    assert any("resumed at spin-up step" in m for m in said), said
    a, b = _h5_arrays(whole), _h5_arrays(out)
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), k

    # the stored frames are those of a run without spin-up, shifted by the spin-up
    plain = tmp_path / "plain.h5"
    generate(cfg(0).model_copy(update={"frames": 9}), plain, progress=False, log=lambda m: None)
    from coldflow.data.store import FieldData

    with FieldData(whole) as x, FieldData(plain) as y:
        assert x.attrs["spin_up"] == 4
        for s, t in zip(x.simulations(), y.simulations(), strict=True):
            got = x.read(s, "reference", "velocity", slice(0, 5))
            want = y.read(t, "reference", "velocity", slice(4, 9))
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
