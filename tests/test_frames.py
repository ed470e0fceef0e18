"""Centred frames of fluid data sets for the autoencoder and super-resolution tasks: known
values from a hand-written data set (centring, channel order, splits, stride, scale),
then the shapes of a real tiny simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from coldflow.data import FieldData, FieldFrames, channel_names, read_centered
from coldflow.data.store_writer import SimulationWriter, merge_parts
from coldflow.physics import faces_to_centered
from coldflow.simulate.run import simulate

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
H, W, FACTOR, FRAMES, WARMUP = 8, 4, 2, 5, 1
SPLITS = {0: "train", 1: "train", 2: "test"}


def faces(vy: float, vx: float, T: int, h: int, w: int) -> np.ndarray:
    """Constant face velocity ``(T, 2, h + 1, w + 1)`` with garbage in the padding."""
    v = np.empty((T, 2, h + 1, w + 1), dtype=np.float32)
    v[:, 0], v[:, 1] = vy, vx
    v[:, 0, :, w] = 99.0
    v[:, 1, h, :] = -99.0
    return v


@pytest.fixture(scope="module")
def handmade(tmp_path_factory) -> Path:
    """Three simulations; sim ``s`` frame ``t`` has v_y = s + t / 10, v_x = -s and a
    density that is ``100 s + t`` plus a per-cell ramp."""
    root = tmp_path_factory.mktemp("frames")
    parts = []
    for s, split in SPLITS.items():
        t = np.arange(FRAMES, dtype=np.float32)
        ramp = np.arange(H * W, dtype=np.float32).reshape(H, W)
        rho = 100 * s + t[:, None, None] + ramp
        shapes = {}
        for kind, (h, w) in {"reference": (H, W), "downsampled": (H // 2, W // 2)}.items():
            shapes[f"{kind}/velocity"] = (FRAMES, 2, h + 1, w + 1)
            shapes[f"{kind}/density"] = (FRAMES, h, w)
        part = root / f"sim_{s}.h5"
        with SimulationWriter(
            part, {"index": s, "split": split, "seed": s, "re": 1.0}, shapes
        ) as sw:
            for kind, f in (("reference", 1), ("downsampled", FACTOR)):
                v = faces(0, -s, FRAMES, H // f, W // f)
                v[:, 0, :, : W // f] = (s + t / 10)[:, None, None]
                sw.write(f"{kind}/velocity", 0, v)
                coarse = rho.reshape(FRAMES, H // f, f, W // f, f).mean((2, 4))
                sw.write(f"{kind}/density", 0, coarse)
        parts.append(part)
    attrs = {
        "scene": "handmade",
        "frames": FRAMES,
        "warmup": WARMUP,
        "factor": FACTOR,
        "param_names": ["re"],
        "resolution_high": [H, W],
        "resolution_low": [H // FACTOR, W // FACTOR],
        "domain_size": [8.0, 4.0],
        "dt": 1.0,
        "source_start": 0,
    }
    return merge_parts(parts, root / "handmade.h5", attrs, {})


@pytest.fixture(scope="module")
def karman_h5(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("karman_frames") / "karman.h5"
    return simulate(ROOT / "configs" / "fluids" / "karman_tiny.yaml", out, progress=False)


def test_autoencoder_frames_are_centred_with_known_values(handmade):
    ds = FieldFrames(handmade, "autoencoder", split="train")
    assert ds.channels == ["v_y", "v_x", "density"] and ds.shape == (3, H, W)
    assert len(ds) == 2 * (FRAMES - WARMUP)  # two training simulations, after the warm-up
    for item in ds:
        s, t = int(item["sim"]), int(item["frame"])
        assert SPLITS[s] == "train" and t >= WARMUP
        x = item["x"]
        assert x.shape == (3, H, W) and x.dtype == torch.float32
        # a constant face field is constant at the centres; the padding is never read
        assert torch.allclose(x[0], torch.full((H, W), s + t / 10))
        assert torch.all(x[1] == -s)
        ramp = torch.arange(H * W, dtype=torch.float32).view(H, W)
        assert torch.equal(x[2], 100 * s + t + ramp)


def test_splits_stride_max_frames_and_fields(handmade):
    test = FieldFrames(handmade, split="test")
    assert set(test.sim.tolist()) == {2} and test.frame.tolist() == list(range(WARMUP, FRAMES))
    strided = FieldFrames(handmade, stride=2)
    assert strided.frame.tolist() == [1, 3] * 2
    assert FieldFrames(handmade, skip_warmup=False).frame.tolist()[:FRAMES] == list(range(FRAMES))
    few = FieldFrames(handmade, max_frames=3)
    assert len(few) == 3 and few.sim.tolist()[0] == 0 and few.sim.tolist()[-1] == 1
    velocity = FieldFrames(handmade, fields=["velocity"])
    assert velocity.shape == (2, H, W) and velocity.channels == ["v_y", "v_x"]
    density = FieldFrames(handmade, fields=["density"])
    assert density[0]["x"].shape == (1, H, W)
    with pytest.raises(ValueError, match=r"no split 'valid'; the file has \['test', 'train'\]"):
        FieldFrames(handmade, split="valid")
    with pytest.raises(ValueError, match="mode"):
        FieldFrames(handmade, mode="rollout")
    with pytest.raises(ValueError, match="fields"):
        FieldFrames(handmade, fields=["pressure"])


def test_superres_pairs_downsampled_with_reference(handmade):
    ds = FieldFrames(handmade, "superres", split="test")
    assert ds.factor == FACTOR and ds.shape == (3, H, W)
    item = ds[0]
    low, high = item["low"], item["high"]
    assert low.shape == (3, H // 2, W // 2) and high.shape == (3, H, W)
    t = int(item["frame"])
    assert torch.allclose(low[0], torch.full_like(low[0], 2 + t / 10)) and torch.all(low[1] == -2)
    # the stored downsampled density is the block average of the reference
    torch.testing.assert_close(low[2], high[2].view(H // 2, 2, W // 2, 2).mean((1, 3)))


def test_channel_std_is_per_channel_and_safe_for_constants(handmade):
    ds = FieldFrames(handmade, split="test")
    std = ds.channel_std()
    t = torch.arange(WARMUP, FRAMES, dtype=torch.float64)
    assert std.shape == (3,)
    torch.testing.assert_close(std[0], (t / 10).std(correction=0).float())
    assert std[1] == 1.0  # v_x is constant (-2): 1 rather than 0
    x = ds.tensors["x"][:, 2].double()
    torch.testing.assert_close(std[2], x.std(correction=0).float())


def test_read_centered_any_frame_order(handmade):
    with FieldData(handmade) as data:
        got = read_centered(data, 1, "reference", [3, 0, 2], ["velocity", "density"])
        assert got.shape == (3, 3, H, W) and got.dtype == np.float32
        np.testing.assert_allclose(got[:, 0, 0, 0], [1.3, 1.0, 1.2], rtol=1e-6)
        one = read_centered(data, 1, "downsampled", 4, ["density", "velocity"])
        assert one.shape == (1, 3, H // 2, W // 2) and np.all(one[0, 1] == -1)
    assert channel_names(["density", "velocity"]) == ["v_y", "v_x", "density"]


def test_frames_of_a_simulated_data_set(karman_h5):
    with FieldData(karman_h5) as data:
        (Hr, Wr), (h, w) = data.resolution("reference"), data.resolution("downsampled")
        n_train = len(data.simulations("train"))
        frames, warmup, factor = data.frames, data.warmup, int(data.attrs["factor"])
        sim = data.simulations("train")[1]
        expected = faces_to_centered(torch.from_numpy(data.read(sim, "reference")[warmup:]))
    ae = FieldFrames(karman_h5, "autoencoder", kind="downsampled")
    assert len(ae) == n_train * (frames - warmup) and ae.shape == (3, h, w)
    sr = FieldFrames(karman_h5, "superres", split="train")
    assert (Hr, Wr) == (h * factor, w * factor) and sr.factor == factor
    assert sr[0]["low"].shape == (3, h, w) and sr[0]["high"].shape == (3, Hr, Wr)
    rows = sr.sim == sim.index
    torch.testing.assert_close(sr.tensors["high"][rows, :2], expected)
    assert torch.all(sr.channel_std() > 0)
