"""The resolution-lowering degradation: identity at t = 0, the study's bicubic input at
t = n_T, linear and separable in between, and cold diffusion's samplers on top of it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from coldflow.degradations.resolution import ResolutionLowering, area_matrix, coarse_sizes
from coldflow.methods.cold import ColdDiffusion
from coldflow.nets.superres import cubic_weights, upsample
from coldflow.physics.grid import downsample_centered


def _fields(shape=(3, 2, 24, 40), seed=0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("factor", [2, 4])
def test_t0_is_the_identity_and_t_max_the_bicubic_low_resolution_field(factor):
    x0 = _fields()  # non-square
    d = ResolutionLowering(n_T=7, factor=factor)
    assert torch.equal(d.degrade(x0, 0), x0)
    low = downsample_centered(x0, factor)
    torch.testing.assert_close(d.degrade(x0, 7), upsample(low, factor), rtol=0, atol=1e-12)


def test_the_average_is_the_block_mean_and_rows_sum_to_one():
    torch.testing.assert_close(
        area_matrix(8, 2),
        torch.kron(
            torch.eye(2, dtype=torch.float64), torch.full((1, 4), 0.25, dtype=torch.float64)
        ),
    )
    a = area_matrix(10, 7)
    torch.testing.assert_close(a.sum(1), torch.ones(7, dtype=torch.float64))
    torch.testing.assert_close(a.sum(0) * 10 / 7, torch.ones(10, dtype=torch.float64))  # mass
    assert torch.allclose(
        cubic_weights(5, 4, torch.float64).sum(1), torch.ones(20, dtype=torch.float64)
    )


def test_sizes_shrink_from_the_grid_to_the_coarse_grid():
    sizes = coarse_sizes(64, 4, 10)
    assert sizes[0] == 64 and sizes[-1] == 16 and len(sizes) == 11
    assert all(a >= b for a, b in zip(sizes, sizes[1:], strict=False))
    with pytest.raises(ValueError, match="not divisible"):
        coarse_sizes(30, 4, 10)


def test_the_degradation_is_per_sample_and_loses_detail_with_t():
    d = ResolutionLowering(n_T=6, factor=4)
    x0 = _fields((6, 1, 32, 16))
    t = torch.arange(6)
    batch = d.degrade(x0, t)
    for k in range(6):  # each sample at its own step
        torch.testing.assert_close(batch[k : k + 1], d.degrade(x0[k : k + 1], int(t[k])))
    # a constant field is kept at every step (rows sum to one); white noise loses energy
    const = torch.full((1, 1, 32, 16), 2.5, dtype=torch.float64)
    torch.testing.assert_close(d.degrade(const, 6), const)
    energy = [float(d.degrade(x0[:1], k).square().mean()) for k in range(7)]
    assert all(a > b for a, b in zip(energy, energy[1:], strict=False))
    with pytest.raises(ValueError, match="0..6"):
        d.degrade(x0, 7)


class _Oracle(nn.Module):
    """A perfect restorer: it returns the clean fields whatever it is given."""

    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.x0 = x0

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.x0


@pytest.mark.parametrize("sampler", ["naive", "improved"])
def test_with_a_perfect_restorer_both_samplers_return_x0(sampler):
    x0 = _fields((2, 2, 16, 24)).float()
    d = ResolutionLowering(n_T=5, factor=4)
    model = ColdDiffusion(_Oracle(x0), d, prior="black", image_shape=(2, 16, 24))
    start = d.degrade(x0, 5)  # the bicubic-upsampled low-resolution field
    out = model.sample(2, (2, 16, 24), sampler=sampler, start=start).images
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-5)


def test_cold_diffusion_on_mnist_super_resolves_with_it(tmp_path):
    """The degradation plugs into the MNIST cold-diffusion task: a tiny restorer trained on
    it restores 4x-downsampled digits better than their bicubic upsampling."""
    from pathlib import Path

    from coldflow.config import load_config
    from coldflow.experiment import evaluate, train
    from coldflow.tasks.diffusion.config import DiffusionRunConfig

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(
        root / "configs" / "mnist" / "quick_blur.yaml",
        DiffusionRunConfig,
        [
            "degradation={kind: resolution, n_T: 6, factor: 4}",
            "data.train_subset=3000",
            "model.hidden=[8, 8]",
            "training.epochs=2",
            "training.progress=false",
            "training.device=cpu",
            "sampling.snapshot_timesteps=[6, 3, 1]",
            "sampling.n_grid=4",
            "evaluation.fid.enabled=false",
            "method.conditional_images=100",
            "method.prior_fit_images=500",
        ],
    )
    run = train(cfg, tmp_path / "cold_sr")
    table = evaluate(run.path, n=100, device="cpu")["conditional"]
    assert table["direct"]["rmse"] < table["degraded"]["rmse"]
    assert table["improved"]["rmse"] < table["degraded"]["rmse"]
