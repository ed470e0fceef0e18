"""Fluid data sets: generation (atomic parts, resume, shards, failures), the HDF5 layout,
the windowed Dataset and the data-set figures, on tiny configs."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import coldflow.simulate.run as simulate_module
from coldflow.config.base import ConfigError, load_config
from coldflow.config.fluids import FluidDataConfig
from coldflow.data.store import FieldData, FieldDataError, FieldWindows
from coldflow.physics import (
    FluidState,
    Scene,
    build_scene,
    downsample_centered,
    downsample_velocity,
)
from coldflow.report.datasets import probe_analysis, report_dataset
from coldflow.runs import parse_shard
from coldflow.simulate.run import SimulationError, simulate

torch.set_num_threads(1)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "fluids"
KARMAN = CONFIGS / "karman_tiny.yaml"
PLUME = CONFIGS / "plume_tiny.yaml"


@pytest.fixture(scope="module")
def karman_h5(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("karman") / "karman.h5"
    assert simulate(KARMAN, out, progress=False) == out
    return out


@pytest.fixture(scope="module")
def plume_h5(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plume") / "plume.h5"
    assert simulate(PLUME, out, progress=False, overrides=["frames=6"]) == out
    return out


def read_all(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(
            lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None
        )
    return out


# ----------------------------------------------------------------- layout and attributes


def test_dataset_layout_and_attributes(karman_h5):
    import phi
    import phiml

    with FieldData(karman_h5) as data:
        assert data.scene == "karman" and data.dt == 1.0
        assert (data.frames, data.warmup, data.source_start) == (12, 4, 4)
        assert data.resolution("reference") == (32, 16) and data.resolution("source") == (16, 8)
        assert data.attrs["version_phiflow"] == phi.__version__ == "3.4.0"
        assert data.attrs["version_phiml"] == phiml.__version__ == "1.16.1"
        assert data.attrs["version_torch"] == str(torch.__version__)
        assert data.param_names == ["re", "inflow_speed"]
        assert data.scene_description["obstacle_radius"] == 10.0
        sims = data.simulations()
        assert [(s.index, s.split, s.seed) for s in sims] == [
            (0, "train", 0),
            (1, "train", 1),
            (2, "test", 100),
        ]
        for s in sims:
            assert s.attrs["nu"] == pytest.approx(1e4 / s.params["re"])
            assert s.attrs["re_diameter"] == pytest.approx(s.params["re"] / 500)
        v = data.read(0, "reference", "velocity")
        assert v.shape == (12, 2, 33, 17) and v.dtype == np.float32
        assert data.read(0, "source", "density").shape == (12, 16, 8)
        assert np.all(v[:, 0, 0, :16] == 1.0)  # the inflow face row holds the inflow speed
        assert np.all(v[:, 0, :, 16] == 0) and np.all(v[:, 1, 32, :] == 0)  # padding
        # the obstacle covers about pi r^2 of the domain at both resolutions
        for kind in ("reference", "source"):
            dy, dx = data.spacing(kind)
            area = data.obstacle(kind).sum() * dy * dx
            assert area == pytest.approx(np.pi * 10.0**2, rel=0.3)  # 3 to 6 cells across
            mask = data.obstacle(kind)
            ys, xs = np.nonzero(mask > 0.5)
            assert (ys.mean() + 0.5) * dy == pytest.approx(50.0, abs=dy)
            assert (xs.mean() + 0.5) * dx == pytest.approx(50.0, abs=dx)


def test_downsampled_and_source_trajectories(karman_h5):
    with FieldData(karman_h5) as data:
        ref = torch.from_numpy(data.read(1, "reference", "velocity"))
        down = data.read(1, "downsampled", "velocity")
        source = data.read(1, "source", "velocity")
        np.testing.assert_array_equal(downsample_velocity(ref, 2).numpy(), down)
        rho = torch.from_numpy(data.read(1, "reference", "density"))
        np.testing.assert_array_equal(
            downsample_centered(rho, 2).numpy(), data.read(1, "downsampled", "density")
        )
        start = data.source_start
        np.testing.assert_array_equal(source[: start + 1], down[: start + 1])
        assert np.abs(source[start + 1 :] - down[start + 1 :]).max() > 1e-3  # it drifts away
        # the source is the low-resolution solver stepping from the downsampled state
        cfg = load_config(KARMAN, FluidDataConfig)
        low = build_scene(cfg, cfg.low_resolution)
        state = FluidState(
            torch.from_numpy(down[start : start + 1]),
            torch.from_numpy(data.read(1, "downsampled", "density", slice(start, start + 1))),
        )
        step = low.step(state, {"re": [data.simulations()[1].params["re"]]})
        np.testing.assert_allclose(step.velocity[0].numpy(), source[start + 1], atol=1e-5)


def test_plume_dataset(plume_h5):
    with FieldData(plume_h5) as data:
        assert data.scene == "plume" and data.dt == pytest.approx(0.1)
        assert data.param_names == ["buoyancy"] and data.frames == 6
        assert [s.params["buoyancy"] for s in data.simulations()] == [4.0, 8.0, 6.0]
        assert np.all(data.obstacle("reference") == 0)
        rho = data.read(0, "reference", "density")
        assert rho[0].sum() == 0 and rho[-1].sum() > 0  # the source fills in smoke
        v = data.read(0, "reference", "velocity")
        assert np.all(v[:, 0, 0] == 0) and np.all(v[:, 0, -1] == 0)  # closed box walls
        assert np.all(v[:, 1, :, 0] == 0) and np.all(v[:, 1, :, -1] == 0)


def test_reading_a_missing_or_foreign_file_fails_clearly(tmp_path):
    with pytest.raises(FieldDataError, match="coldflow simulate"):
        FieldData(tmp_path / "nope.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(FieldDataError, match="not a coldflow fields file"):
        FieldData(tmp_path / "other.h5")


# ------------------------------------------------------------------ generation


def test_sharded_run_equals_a_single_run(tmp_path, karman_h5):
    out = tmp_path / "k.h5"
    assert simulate(KARMAN, out, shard=(1, 2), progress=False) is None
    parts = sorted(p.name for p in (tmp_path / "k.h5.parts").iterdir())
    assert parts == ["sim_0001.h5"] and not out.exists()
    assert simulate(KARMAN, out, shard=(0, 2), progress=False) == out
    a, b = read_all(out), read_all(karman_h5)
    assert a.keys() == b.keys()
    for key in a:
        # the same simulations in other batches: equal up to float32 rounding
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5, err_msg=key)


def test_interrupted_run_leaves_no_partial_simulation_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "k.h5"
    overrides = ["batch_size=1", "frames=8"]
    real_step = Scene.step
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 20:  # inside the second simulation (each takes 7 + 3 steps + 1)
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Scene, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        simulate(KARMAN, out, overrides=overrides, progress=False)
    parts_dir = tmp_path / "k.h5.parts"
    assert sorted(p.name for p in parts_dir.iterdir()) == ["sim_0000.h5"]  # no temporaries
    with h5py.File(parts_dir / "sim_0000.h5") as f:
        assert bool(f.attrs["complete"])
    assert not out.exists()

    monkeypatch.setattr(Scene, "step", real_step)
    ran = []
    monkeypatch.setattr(simulate_module, "_run_batch", _spy(ran, simulate_module._run_batch))
    assert simulate(KARMAN, out, overrides=overrides, progress=False) == out
    assert ran == [[1], [2]]  # only the missing simulations ran
    assert not parts_dir.exists()
    with FieldData(out) as data:
        assert len(data.simulations()) == 3


def _spy(record: list, fn):
    def wrapper(cfg, scene, low, batch, out, bar):
        record.append([s.index for s in batch])
        return fn(cfg, scene, low, batch, out, bar)

    return wrapper


def test_diverging_simulation_names_index_frame_and_parameters(tmp_path, monkeypatch):
    out = tmp_path / "k.h5"
    real_step = Scene.step
    calls = {"n": 0}

    def blow_up(self, state, params, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # initial projection + 4 steps: the step to frame 5
            v = state.velocity.clone()
            v[1, 0, 10, 5] = float("inf")
            state = FluidState(v, state.density, state.pressure)
        return real_step(self, state, params, **kwargs)

    monkeypatch.setattr(Scene, "step", blow_up)
    with pytest.raises(SimulationError) as err:
        simulate(KARMAN, out, progress=False)
    first_line = str(err.value).split("\n")[0]
    assert "reference run at 32x16 failed at frame 5" in first_line
    assert "simulation 1 (train, seed=1, re=800000, inflow_speed=1)" in first_line
    assert "simulation 0" not in first_line
    assert "not finite" in str(err.value)
    parts = tmp_path / "k.h5.parts"
    assert not list(parts.iterdir())  # the batch's simulations were discarded, not half-written


def test_parts_of_another_config_are_refused(tmp_path):
    out = tmp_path / "k.h5"
    assert simulate(KARMAN, out, shard=(0, 3), overrides=["frames=6"], progress=False) is None
    with pytest.raises(ConfigError, match="different config"):
        simulate(KARMAN, out, shard=(0, 3), overrides=["frames=7"], progress=False)


def test_complete_dataset_is_not_regenerated(karman_h5, tmp_path):
    before = karman_h5.stat().st_mtime_ns
    assert simulate(KARMAN, karman_h5, progress=False) == karman_h5
    assert karman_h5.stat().st_mtime_ns == before
    with pytest.raises(ConfigError, match="not made by this config"):
        simulate(KARMAN, karman_h5, overrides=["frames=11"], progress=False)


def test_stale_temporary_parts_are_cleaned_up(tmp_path):
    out = tmp_path / "k.h5"
    parts = tmp_path / "k.h5.parts"
    parts.mkdir()
    (parts / ".sim_0002.h5.abc123.h5").write_bytes(b"half written")
    simulate(KARMAN, out, shard=(2, 3), overrides=["frames=6"], progress=False)
    assert sorted(p.name for p in parts.iterdir()) == ["sim_0002.h5"]


@pytest.mark.parametrize(
    ("override", "match"),
    [
        (
            "simulations.train.params={buoyancy: [1.0, 2.0]}",
            "must give \\['re'\\] and may give \\['inflow_speed'\\]",
        ),
        ("simulations.train.seeds=[0]", "one value per seed"),
        ("resolution=[31, 16]", "not divisible"),
        ("scene.solver.method=auto", "method"),
        ("warmup=20", "warmup"),
    ],
)
def test_bad_configs_are_rejected_with_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(KARMAN, FluidDataConfig, [override])


def test_shard_parsing():
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "x", "1/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_study_configs_load():
    for name, scene, pair in [
        ("karman.yaml", "karman", ((128, 64), (64, 32))),
        ("plume.yaml", "plume", ((128, 128), (64, 64))),
        ("plume_256.yaml", "plume", ((256, 256), (128, 128))),
    ]:
        cfg = load_config(CONFIGS / name, FluidDataConfig)
        assert cfg.scene.kind == scene and (cfg.resolution, cfg.low_resolution) == pair
        assert len(cfg.simulations.train) == 8 and len(cfg.simulations.test) >= 1
        train = set(next(iter(cfg.simulations.train.params.values())))
        test = set(next(iter(cfg.simulations.test.params.values())))
        assert not train & test  # tested on other parameters
        assert not set(cfg.simulations.train.seeds) & set(cfg.simulations.test.seeds)
    for name in ("karman.yaml", "karman_cpu.yaml"):
        karman = load_config(CONFIGS / name, FluidDataConfig)
        assert karman.spin_up >= 600 and karman.warmup == 0 and karman.scene.dt == 1.0
        assert min(karman.simulations.train.params["re"]) == 1e5
        assert max(karman.simulations.train.params["re"]) == 8e5
        # the flows differ by inflow speed, and some test flows lie outside its range
        speeds = karman.simulations.train.params["inflow_speed"]
        test_speeds = karman.simulations.test.params["inflow_speed"]
        assert any(u < min(speeds) for u in test_speeds)
        assert any(u > max(speeds) for u in test_speeds)
        assert any(min(speeds) < u < max(speeds) for u in test_speeds)
        # at least three shedding periods (about 124 / U steps) of the slowest flow
        assert karman.frames >= 3 * 124 / min(speeds + test_speeds)


# ------------------------------------------------------------------ windows


def test_windows_yield_consecutive_frames_with_parameters(karman_h5):
    kinds, fields = ("reference", "downsampled", "source"), ("velocity", "density")
    ds = FieldWindows(karman_h5, m=3, split="train", kinds=kinds, fields=fields)
    assert len(ds) == 2 * (12 - 3 - 4)  # 2 simulations, starts 4..8
    item = ds[6]  # second simulation, second window
    assert int(item["sim"]) == 1 and int(item["frame"]) == 5
    assert item["params"].tolist() == [8e5, 1.0]
    with FieldData(karman_h5) as data:
        for kind in kinds:
            for field in fields:
                expected = data.read(1, kind, field, slice(5, 9))
                np.testing.assert_array_equal(item[f"{kind}_{field}"].numpy(), expected)
    assert item["downsampled_velocity"].shape == (4, 2, 17, 9)
    assert item["reference_velocity"].shape == (4, 2, 33, 17)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False)
    batch = next(iter(loader))
    assert batch["downsampled_velocity"].shape == (4, 4, 2, 17, 9)
    assert batch["params"].shape == (4, 2)
    assert pickle.loads(pickle.dumps(ds))[0]["frame"] == 4  # workers can unpickle it


def test_window_options(karman_h5):
    assert len(FieldWindows(karman_h5, m=1, skip_warmup=False)) == 2 * 11
    assert len(FieldWindows(karman_h5, m=2, split="test")) == 1 * (12 - 2 - 4)
    assert len(FieldWindows(karman_h5, m=2, split=None, stride=3)) == 3 * 2  # starts 4, 7
    with pytest.raises(ValueError, match="do not fit"):
        FieldWindows(karman_h5, m=8)
    with pytest.raises(ValueError, match="kinds"):
        FieldWindows(karman_h5, m=2, kinds=("high",))


# ------------------------------------------------------------------ figures


def test_report_draws_snapshots_and_probe(karman_h5, plume_h5, tmp_path):
    png = b"\x89PNG\r\n\x1a\n"
    figures = report_dataset(karman_h5, tmp_path / "k")
    names = sorted(p.name for p in figures)
    assert names == sorted(
        f"{q}_sim{i}.png" for q in ("vorticity", "density", "probe") for i in (0, 2)
    )
    assert all(p.read_bytes()[:8] == png for p in figures)
    assert not list((tmp_path / "k").glob(".*"))  # written atomically, no temporaries left
    figures = report_dataset(plume_h5, tmp_path / "p", sims=[1])
    assert sorted(p.name for p in figures) == sorted(
        f"{q}_sim1.png" for q in ("vorticity", "density", "probe", "mass")
    )
    assert all(p.read_bytes()[:8] == png for p in figures)
    with pytest.raises(ValueError, match="no simulations"):
        report_dataset(plume_h5, tmp_path / "p", sims=[7])
    with FieldData(karman_h5) as data:
        a = probe_analysis(data, 0, "reference")
        # the whole developed reference (after the warm-up) is analysed ...
        assert a["start"] == data.warmup and len(a["series"]) == data.frames - data.warmup
        # ... and 8 frames of a tiny wake are far fewer than three periods: refused
        assert a["refused"] is not None and a["strouhal"] is None
        assert probe_analysis(data, 0, "reference", start=0)["start"] == 0
        assert probe_analysis(data, 0, "source", start=0)["start"] == data.source_start
        with pytest.raises(ValueError, match="outside"):
            probe_analysis(data, 0, start=data.frames)


def test_probe_analysis_reports_a_developed_wake(karman_h5, monkeypatch):
    # a stored probe signal replaced by a clean oscillation of known frequency
    import coldflow.report.datasets as report_fields

    f0 = 0.3  # 8 frames after the warm-up span 2.4 periods (refused), all 12 frames 3.6
    monkeypatch.setattr(
        report_fields,
        "probe_series",
        lambda v, *a: torch.sin(2 * torch.pi * f0 * torch.arange(v.shape[0], dtype=torch.float64)),
    )
    with FieldData(karman_h5) as data:
        assert "2.4 periods" in probe_analysis(data, 0)["refused"]
        a = probe_analysis(data, 0, start=0)
    assert a["refused"] is None and a["periods"] >= 3
    assert abs(a["frequency"] - f0) < 0.5 / len(a["series"])
    assert a["strouhal"] == pytest.approx(a["frequency"] * 20.0)
    assert a["width"] > 0 and 0 < a["power_fraction"] <= 1


def test_unknown_scene_key_lists_only_the_selected_kinds_keys():
    with pytest.raises(ConfigError) as err:
        load_config(KARMAN, FluidDataConfig, ["scene.viscosity=0.1"])
    message = str(err.value)
    assert "scene.viscosity: unknown key" in message
    assert "viscosity_scale" in message and "inflow_speed" in message
    assert "source_box" not in message and "buoyancy" not in message
    with pytest.raises(ConfigError) as err:
        load_config(PLUME, FluidDataConfig, ["scene.inflow_speed=2"])
    assert "source_box" in str(err.value) and "viscosity_scale" not in str(err.value)


def test_rollout_animation_is_a_gif(tmp_path):
    from PIL import Image

    from coldflow.tasks.sol.figures import animate_rollout

    gen = torch.Generator().manual_seed(0)
    rollout = {k: torch.randn((6, 2, 9, 5), generator=gen) for k in ("reference", "source")}
    rollout["corrected"] = rollout["source"] * 0.5
    path = animate_rollout(rollout, ["reference", "source", "SOL"], tmp_path / "a.gif", True,
                           stride=2)  # fmt: skip
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 3
    assert not list(tmp_path.glob(".*"))  # written atomically
    with pytest.raises(ValueError, match="labels"):
        animate_rollout(rollout, ["one"], tmp_path / "b.gif", False)
    with pytest.raises(ValueError, match="none of"):
        animate_rollout({"other": rollout["source"]}, [], tmp_path / "c.gif", False)


def test_physics_hash_of_existing_plume_data_sets_is_unchanged():
    """Data sets made before spin_up existed stay complete (their parts' hashes match)."""
    from coldflow.simulate.specs import physics_hash, simulation_specs

    cfg = load_config(CONFIGS / "plume_tiny.yaml", FluidDataConfig)
    hashes = [physics_hash(cfg, s) for s in simulation_specs(cfg)]
    assert hashes == ["1db0195cfe108cd0", "88ddbf65960f73c9", "de7b54625e2da52f"]
    spun = cfg.model_copy(update={"spin_up": 10})
    assert physics_hash(spun, simulation_specs(spun)[0]) != hashes[0]
