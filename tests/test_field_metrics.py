"""Field metrics: known values, layouts, per-sample reporting, HDF5 files."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from coldflow import hub
from coldflow.metrics import FIELD_METRICS, evaluate_pairs, psnr, relative_l1
from coldflow.metrics.files import evaluate_fields, format_table

HAS_LSIM = hub.locate("lsim") is not None


def smooth_fields(n: int, size: int = 32, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Random smooth fields [n, channels, size, size] (float32): sums of low-frequency waves."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    out = np.zeros((n, channels, size, size))
    for _ in range(4):
        kx, ky = rng.uniform(0, 6, (2, n, channels, 1, 1))
        phase = rng.uniform(0, 2 * math.pi, (n, channels, 1, 1))
        out += rng.uniform(0, 1, (n, channels, 1, 1)) * np.sin(kx * x + ky * y + phase)
    return out.astype(np.float32)


def test_registry_names() -> None:
    assert set(FIELD_METRICS) == {"mse", "mae", "rel_l1", "psnr", "lsim", "lpips", "vgg"}
    with pytest.raises(ValueError, match="unknown metrics \\['ssim'\\]"):
        evaluate_pairs(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 4)), ["ssim"])


def test_relative_l1_and_psnr_known_values() -> None:
    b = torch.tensor([[1.0, -1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    a = torch.tensor([[1.5, -1.0, 1.0, 0.5], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert relative_l1(a, b).tolist() == [0.5, math.inf, 0.0]  # (0.5+0+1+0.5)/4
    # sample 0: MSE = (0.25 + 0 + 1 + 0.25) / 4 = 0.375, peak = 2 - (-1) = 3
    assert psnr(a[:1], b[:1]).item() == pytest.approx(10 * math.log10(9 / 0.375))
    assert psnr(a[:1], b[:1], data_range=1.0).item() == pytest.approx(10 * math.log10(1 / 0.375))
    assert psnr(b[:1], b[:1]).item() == math.inf


def test_evaluate_pairs_reports_per_sample_values_and_means() -> None:
    a, b = smooth_fields(5, seed=1), smooth_fields(5, seed=2)
    result = evaluate_pairs(a, b, ["mse", "mae", "rel_l1", "psnr"], batch_size=2)
    assert list(result) == ["mse", "mae", "rel_l1", "psnr"]
    diff = (a - b).reshape(5, -1)
    np.testing.assert_allclose(result["mse"]["per_sample"], (diff**2).mean(1), rtol=1e-5)
    np.testing.assert_allclose(result["mae"]["per_sample"], np.abs(diff).mean(1), rtol=1e-5)
    expected_rel = np.abs(diff).sum(1) / np.abs(b.reshape(5, -1)).sum(1)
    np.testing.assert_allclose(result["rel_l1"]["per_sample"], expected_rel, rtol=1e-5)
    for entry in result.values():
        assert entry["per_sample"].shape == (5,)
        assert entry["mean"] == pytest.approx(entry["per_sample"].mean())


def test_layouts_and_leading_axes_agree() -> None:
    a, b = smooth_fields(6, seed=3), smooth_fields(6, seed=4)
    names = ["mse", "psnr"]
    nchw = evaluate_pairs(a, b, names)
    nhwc = evaluate_pairs(a.transpose(0, 2, 3, 1), b.transpose(0, 2, 3, 1), names, layout="NHWC")
    folded = evaluate_pairs(a.reshape(2, 3, 2, 32, 32), b.reshape(2, 3, 2, 32, 32), names)
    tensors = evaluate_pairs(torch.from_numpy(a), torch.from_numpy(b), names)
    for other in (nhwc, folded, tensors):
        for name in names:
            np.testing.assert_allclose(other[name]["per_sample"], nchw[name]["per_sample"])


def test_staggered_pixel_metrics_use_faces_only() -> None:
    a, b = smooth_fields(2, size=9, seed=5), smooth_fields(2, size=9, seed=6)
    # coldflow.physics.grid layout: y faces in channel 0 pad column W, x faces pad row H
    a[:, 0, :, -1], a[:, 1, -1, :] = 100.0, -100.0
    result = evaluate_pairs(a, b, ["mae"], grid="staggered")
    error = np.abs(a - b)
    faces = np.concatenate(
        [error[:, 0, :, :-1].reshape(2, -1), error[:, 1, :-1, :].reshape(2, -1)], 1
    )
    np.testing.assert_allclose(result["mae"]["per_sample"], faces.mean(1), rtol=1e-5)


@pytest.mark.skipif(not HAS_LSIM, reason="LSiM.pth not found (set COLDFLOW_WEIGHTS)")
def test_lsim_on_small_velocity_fields() -> None:
    a, b = smooth_fields(3, seed=7), smooth_fields(3, seed=8)  # 32x32, padded to 64
    d = evaluate_pairs(a, b, ["lsim"])["lsim"]["per_sample"]
    same = evaluate_pairs(a, a, ["lsim"])["lsim"]["per_sample"]
    swapped = evaluate_pairs(b, a, ["lsim"])["lsim"]["per_sample"]
    assert np.all(d > 0) and np.all(same == 0)
    np.testing.assert_allclose(d, swapped, rtol=1e-5)
    # joint scaling for evaluation: a field of the right pattern but twice too large counts
    assert np.all(evaluate_pairs(2 * a, a, ["lsim"])["lsim"]["per_sample"] > 0.01)
    refused = {"lsim": {"fit": "none"}}
    with pytest.raises(ValueError, match="at least 64x64"):
        evaluate_pairs(a, b, ["lsim"], options=refused)


def test_evaluate_fields_on_hdf5(tmp_path) -> None:
    a, b = smooth_fields(5, seed=9), smooth_fields(5, seed=10)
    for name, data in (("a.h5", a), ("b.h5", b)):
        with h5py.File(tmp_path / name, "w") as f:
            f.create_dataset("fields/velocity", data=data)
            f.create_dataset("fields/other", data=data[:2])
    table = evaluate_fields(
        tmp_path / "a.h5", tmp_path / "b.h5", "fields/velocity", ["mse", "rel_l1"], batch_size=2
    )
    direct = evaluate_pairs(a, b, ["mse", "rel_l1"])
    assert table["samples"] == 5 and table["shape"] == [5, 2, 32, 32]
    for name in ("mse", "rel_l1"):
        np.testing.assert_allclose(table["per_sample"][name], direct[name]["per_sample"])
        assert table["metrics"][name]["mean"] == pytest.approx(direct[name]["mean"])
    text = format_table(table)
    assert "rel_l1" in text and "5 samples" in text
    with pytest.raises(KeyError, match="fields/velocity"):
        evaluate_fields(tmp_path / "a.h5", tmp_path / "b.h5", "velocity", ["mse"])
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.create_dataset("fields/velocity", data=a[:3])
    with pytest.raises(ValueError, match="differs in shape"):
        evaluate_fields(tmp_path / "a.h5", tmp_path / "c.h5", "fields/velocity", ["mse"])
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        evaluate_fields(tmp_path / "missing.h5", tmp_path / "b.h5", "fields/velocity", ["mse"])
