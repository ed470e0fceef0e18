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
    assert set(FIELD_METRICS) == {
        *("mse", "mae", "rel_l1", "psnr", "lsim", "lpips", "vgg"),
        *("vort_l1", "div", "ssim", "lse_top"),
    }
    with pytest.raises(ValueError, match="unknown metrics \\['ms_ssim'\\]"):
        evaluate_pairs(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 4)), ["ms_ssim"])


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


# ----------------------------------------------------------- metrics nobody trains on


def _centred_grid(n: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell-centre coordinates ``(y, x)`` in cells, ``[n, H, W]`` each (float64)."""
    y, x = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + 0.5,
        torch.arange(width, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    return y.expand(n, height, width), x.expand(n, height, width)


def test_vorticity_of_a_solid_body_rotation_is_twice_its_rate() -> None:
    from coldflow.metrics.velocity import vorticity
    from coldflow.physics.diagnostics import vorticity as face_vorticity
    from coldflow.physics.grid import centered_to_faces, faces_to_centered

    rate = torch.tensor([0.5, -2.0], dtype=torch.float64)[:, None, None]
    y, x = _centred_grid(2, 12, 20)
    cy, cx = y - 6.0, x - 10.0  # about the domain's centre
    rotation = torch.stack((-rate * cx, rate * cy), dim=1)  # (v_y, v_x) = rate (-x, y)
    w = vorticity(rotation)
    torch.testing.assert_close(w[:, 1:-1, 1:-1], (2 * rate).expand(2, 10, 18), rtol=0, atol=1e-12)
    # the staggered diagnostic gives the same numbers once the faces are centred
    faces = centered_to_faces(rotation)
    torch.testing.assert_close(vorticity(faces_to_centered(faces)), face_vorticity(faces, (1, 1)))
    # the metric: 0 against itself, |2 r1 - 2 r0| / |2 r0| against another rate
    metric = FIELD_METRICS["vort_l1"]()
    other = torch.stack((-3 * rate * cx, 3 * rate * cy), dim=1)
    assert metric(rotation, rotation).tolist() == [0.0, 0.0]
    torch.testing.assert_close(metric(other, rotation), torch.full((2,), 2.0, dtype=torch.float64))
    # density as a third channel is ignored
    with_density = torch.cat((rotation, torch.rand(2, 1, 12, 20, dtype=torch.float64)), 1)
    torch.testing.assert_close(
        metric(other[:, :2], rotation),
        metric(torch.cat((other, with_density[:, 2:]), 1), with_density),
    )


def test_divergence_of_an_expansion_a_rotation_and_a_stream_function_flow() -> None:
    metric = FIELD_METRICS["div"]()
    y, x = _centred_grid(1, 10, 14)
    expansion = torch.stack((y, x), dim=1)  # div = 1 + 1
    rotation = torch.stack((-x, y), dim=1)  # div = 0
    zeros = torch.zeros_like(expansion)
    assert metric(expansion, zeros).item() == pytest.approx(2.0, abs=1e-12)
    assert metric(rotation, zeros).item() == pytest.approx(0.0, abs=1e-12)
    # the excess over the reference, cell by cell: div 2 against div 0.5, none below it
    assert metric(expansion, 0.25 * expansion).item() == pytest.approx(1.5, abs=1e-12)
    assert metric(0.25 * expansion, expansion).item() == 0.0
    assert metric(expansion, expansion).item() == 0.0
    # staggered: faces from a stream function psi on the nodes have zero net outflow
    psi = torch.randn(2, 11, 15, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    faces = torch.zeros(2, 2, 11, 15, dtype=torch.float64)
    faces[:, 0, :, :14] = psi[:, :, 1:] - psi[:, :, :-1]  # v_y = d psi / dx
    faces[:, 1, :10, :] = -(psi[:, 1:, :] - psi[:, :-1, :])  # v_x = -d psi / dy
    staggered = FIELD_METRICS["div"](grid="staggered")
    assert staggered(faces, torch.zeros_like(faces)).max().item() < 1e-12
    # faces of the expansion (v_y = y on y faces, v_x = x on x faces): net outflow 2 per cell
    grow = torch.zeros(1, 2, 11, 15, dtype=torch.float64)
    grow[:, 0, :, :14] = torch.arange(11, dtype=torch.float64)[:, None]
    grow[:, 1, :10, :] = torch.arange(15, dtype=torch.float64)[None, :]
    assert staggered(grow, torch.zeros_like(grow)).item() == pytest.approx(2.0, abs=1e-12)
    # centring the faces first: the central differences of the centred expansion, also 2
    centred = FIELD_METRICS["div"](grid="staggered", faces="center")
    assert centred(grow, torch.zeros_like(grow)).item() == pytest.approx(2.0, abs=1e-12)


def test_ssim_of_a_field_with_itself_is_one_and_drops_with_noise() -> None:
    metric = FIELD_METRICS["ssim"]()
    assert metric_spec_higher("ssim")
    ref = torch.from_numpy(smooth_fields(3, size=32, channels=3, seed=11)).double()
    assert metric(ref, ref).tolist() == [1.0, 1.0, 1.0]
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    slight, strong = metric(ref + 0.05 * noise, ref), metric(ref + 0.5 * noise, ref)
    assert (strong < slight).all() and (slight < 1).all()
    # the data range is the reference's: the score does not change with the units
    torch.testing.assert_close(metric(10 * (ref + 0.05 * noise), 10 * ref), slight)
    # a constant reference component keeps the score finite
    flat = ref.clone()
    flat[:, 2] = 0.7
    assert torch.isfinite(metric(flat + 0.05 * noise, flat)).all()
    # staggered faces, each component with its own shape; small fields shrink the window
    faces = torch.randn(2, 2, 7, 9, generator=g, dtype=torch.float64)
    assert FIELD_METRICS["ssim"](grid="staggered")(faces, faces).tolist() == [1.0, 1.0]


def metric_spec_higher(name: str) -> bool:
    from coldflow.metrics import metric_spec

    return metric_spec(name).higher_is_better


def test_top_octave_spectral_error_metric() -> None:
    from coldflow.metrics.spectrum import top_octave_error
    from coldflow.physics.grid import faces_to_centered

    metric = FIELD_METRICS["lse_top"]()
    ref = torch.from_numpy(smooth_fields(2, size=32, seed=12)).double()
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(ref.shape, dtype=torch.float64, generator=g)
    noisy = ref + 0.1 * noise
    assert metric(ref, ref).tolist() == [0.0, 0.0]
    torch.testing.assert_close(metric(noisy, ref), top_octave_error(noisy, ref))
    assert (metric(ref + 0.3 * noise, ref) > metric(noisy, ref)).all()  # more small-scale energy
    assert (metric(noisy, ref) > 0).all()
    faces = torch.randn(2, 2, 17, 33, dtype=torch.float64, generator=g)
    torch.testing.assert_close(
        FIELD_METRICS["lse_top"](grid="staggered")(faces, 0.5 * faces),
        top_octave_error(faces_to_centered(faces), faces_to_centered(0.5 * faces)),
    )


def test_velocity_metrics_need_two_channels_and_are_in_every_fluid_default() -> None:
    from coldflow.config.metric_defaults import (
        DEFAULT_FIELD_METRICS,
        DEFAULT_FRAME_METRICS,
        INDEPENDENT_METRICS,
    )

    scalar = np.random.default_rng(0).normal(size=(2, 1, 16, 16))
    for name in ("vort_l1", "div", "lse_top"):
        with pytest.raises(ValueError, match=r"velocity \(v_y, v_x\) in channels 0 and 1"):
            evaluate_pairs(scalar, scalar, [name])
    assert evaluate_pairs(scalar, scalar, ["ssim"])["ssim"]["mean"] == 1.0  # any channels
    assert set(INDEPENDENT_METRICS) == {"vort_l1", "div", "ssim", "lse_top"}
    assert set(INDEPENDENT_METRICS) <= set(DEFAULT_FIELD_METRICS)
    assert set(INDEPENDENT_METRICS) <= set(DEFAULT_FRAME_METRICS)
