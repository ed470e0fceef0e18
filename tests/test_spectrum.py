"""Kinetic-energy spectra (Parseval, single modes, shells on non-square grids), the
log-spectral error and the spectrum figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coldflow.metrics.spectrum import (
    energy_spectrum,
    log_spectral_error,
    nyquist_shell,
    octave_bands,
    spectral_shells,
    top_octave_error,
)
from coldflow.report.spectra import spectrum_figure
from coldflow.report.style import save_figure

H, W = 24, 48  # non-square: the longer side W sets the shell unit


def _centres(height: int = H, width: int = W) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre coordinates ``(y, x)`` in cells, ``[H, W]`` each."""
    return np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")


def _kinetic(v: np.ndarray) -> np.ndarray:
    return 0.5 * (v**2).sum(axis=-3).mean(axis=(-2, -1))


def test_a_single_mode_peaks_in_its_shell_with_its_energy() -> None:
    y, x = _centres()
    v = np.zeros((2, H, W))
    v[1] = np.cos(2 * np.pi * 3 * x / W)  # v_x: three waves along the longer side
    k, energy = energy_spectrum(v, dx=0.5)
    assert int(np.argmax(energy)) == 3
    assert energy[3] == pytest.approx(0.25, rel=1e-12)  # 0.5 * mean(cos^2) = 0.25
    assert np.delete(energy, 3) == pytest.approx(0.0, abs=1e-20)
    assert k[3] == pytest.approx(3 * 2 * np.pi / (W * 0.5))
    # along the shorter side one wave spans L / H = 2 shells
    v = np.zeros((2, H, W))
    v[0] = 2.0 * np.sin(2 * np.pi * 2 * y / H)
    _, energy = energy_spectrum(v)
    assert int(np.argmax(energy)) == 4 and energy[4] == pytest.approx(1.0, rel=1e-12)


def test_the_spectrum_sums_to_the_mean_kinetic_energy_with_the_mean_flow_in_shell_0() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(3, 2, H, W)) + np.array([1.5, -0.5])[:, None, None]
    _, energy = energy_spectrum(v)
    assert energy.shape[:-1] == (3,)
    np.testing.assert_allclose(energy.sum(-1), _kinetic(v), rtol=1e-12)
    means = v.mean(axis=(-2, -1))
    np.testing.assert_allclose(energy[:, 0], 0.5 * (means**2).sum(-1), rtol=1e-12)


def test_tensors_in_give_tensors_out_with_the_numbers_of_numpy() -> None:
    v = np.random.default_rng(1).normal(size=(2, 2, 16, 12)).astype(np.float32)
    k_np, e_np = energy_spectrum(v)
    k_t, e_t = energy_spectrum(torch.from_numpy(v))
    assert isinstance(e_t, torch.Tensor) and e_t.dtype == torch.float64
    np.testing.assert_allclose(e_t.numpy(), e_np, rtol=1e-12)
    np.testing.assert_allclose(k_t.numpy(), k_np)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, H, W\)"):
        energy_spectrum(np.zeros((3, 16, 16)))


def test_every_shell_up_to_nyquist_holds_a_mode_and_octaves_reach_it() -> None:
    shells = spectral_shells(H, W)
    assert shells.shape == (H, W) and int(shells[0, 0]) == 0
    top = nyquist_shell(H, W)
    assert top == 24
    assert set(range(top + 1)) <= set(shells.flatten().tolist())
    assert octave_bands(H, W) == [(1, 2), (2, 4), (4, 8), (8, 25)]
    assert octave_bands(64, 32) == [(1, 2), (2, 4), (4, 8), (8, 16), (16, 33)]


def test_log_spectral_error_is_zero_against_itself_and_log2_for_twice_the_energy() -> None:
    v = np.random.default_rng(2).normal(size=(4, 2, H, W))
    assert np.array_equal(log_spectral_error(v, v), np.zeros((4, 4)))
    assert np.array_equal(top_octave_error(v, v), np.zeros(4))
    # sqrt(2) times the velocity has twice the energy in every shell
    doubled = log_spectral_error(math.sqrt(2) * v, v)
    np.testing.assert_allclose(doubled, math.log(2), rtol=1e-6)
    # a smoothed field loses energy at the top, not at the bottom
    smooth = torch.nn.functional.avg_pool2d(torch.from_numpy(v), 3, 1, 1, count_include_pad=False)
    bands = log_spectral_error(smooth, torch.from_numpy(v))
    assert isinstance(bands, torch.Tensor) and bands.shape == (4, 4)
    assert (bands[:, -1] > 5 * bands[:, 0]).all()


def test_the_spectrum_figure_draws_one_line_per_spectrum(tmp_path) -> None:
    y, x = _centres()
    v = np.stack([np.sin(2 * np.pi * y / H), np.cos(2 * np.pi * 5 * x / W)])
    spectra = {
        "reference": energy_spectrum(v),
        "bicubic": energy_spectrum(0.5 * v),
        "model": energy_spectrum(0.9 * v),
    }
    fig = spectrum_figure(spectra, reference="reference", nyquist=float(spectra["model"][0][24]))
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()[:3]] == list(spectra)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    path = save_figure(fig, tmp_path / "spectrum.png")
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="reference 'truth'"):
        spectrum_figure(spectra, reference="truth")
