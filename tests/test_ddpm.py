from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from coldflow.degradations.noise import LinearNoise, linear_beta_schedule
from coldflow.methods.ddpm import DDPM, ddim_timesteps


def test_linear_schedule_matches_the_formula():
    s = linear_beta_schedule(1e-4, 0.02, 1000)
    assert s["beta"][0] == pytest.approx(1e-4)
    assert s["beta"][500] == pytest.approx(1e-4 + (0.02 - 1e-4) * 0.5)
    assert s["beta"][1000] == pytest.approx(0.02)
    expected = math.prod(1 - (1e-4 + (0.02 - 1e-4) * t / 1000) for t in range(0, 11))
    assert s["alpha_bar"][10].item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("b1", "b2", "n"), [(1e-4, 0.02, 1000), (1e-5, 1e-3, 18300)])
def test_alpha_bar_is_decreasing_in_unit_interval(b1, b2, n):
    abar = linear_beta_schedule(b1, b2, n)["alpha_bar"]
    assert torch.all(abar[1:] < abar[:-1])
    assert 0 < abar[-1] < abar[0] < 1


def test_under_diffused_schedule_keeps_signal():
    # model2's betas at n_T=1000 leave much of the image at t = n_T: the point of that config
    assert linear_beta_schedule(1e-5, 1e-3, 1000)["alpha_bar"][-1] > 0.5
    assert linear_beta_schedule(1e-4, 0.02, 1000)["alpha_bar"][-1] < 1e-4


def test_degrade_statistics():
    deg = LinearNoise(1e-4, 0.02, 1000)
    x0 = torch.full((20000, 1, 1, 1), 0.3)
    t = torch.full((20000,), 300, dtype=torch.long)
    z = deg.degrade(x0, t)
    abar = deg.alpha_bar[300].item()
    assert z.mean().item() == pytest.approx(math.sqrt(abar) * 0.3, abs=0.02)
    assert z.var().item() == pytest.approx(1 - abar, rel=0.05)
    noise = torch.zeros_like(x0)
    assert torch.allclose(deg.degrade(x0, t, noise=noise), math.sqrt(abar) * x0)


class Oracle(nn.Module):
    """The exact noise predictor when the data distribution is the single image x*."""

    def __init__(self, target: torch.Tensor, alpha_bar: torch.Tensor, n_T: int) -> None:
        super().__init__()
        self.target, self.alpha_bar, self.n_T = target, alpha_bar, n_T
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, z, t_norm):
        t = (t_norm * self.n_T).round().long()
        abar = self.alpha_bar[t].view(-1, 1, 1, 1)
        return (z - abar.sqrt() * self.target) / (1 - abar).sqrt()


def _oracle_ddpm(n_T=200):
    deg = LinearNoise(1e-4, 0.02, n_T)
    target = torch.linspace(-0.5, 0.5, 16).view(1, 1, 4, 4)
    return DDPM(Oracle(target, deg.alpha_bar, n_T), deg), target


def test_ddim_with_the_exact_predictor_lands_on_the_data_point():
    model, target = _oracle_ddpm()
    res = model.sample(8, (1, 4, 4), sampler="ddim", steps=20)
    assert torch.allclose(res.images, target.expand(8, -1, -1, -1), atol=1e-4)


def test_ancestral_with_the_exact_predictor_lands_on_the_data_point():
    model, target = _oracle_ddpm()
    gen = torch.Generator().manual_seed(0)
    res = model.sample(64, (1, 4, 4), sampler="ancestral", generator=gen)
    # the last step adds no noise; what is left is the posterior spread at t=1 (~sqrt(beta_1))
    assert (res.images - target).abs().max() < 0.05


def test_snapshots_and_their_order():
    model, _ = _oracle_ddpm(n_T=50)
    res = model.sample(3, (1, 4, 4), sampler="ancestral", snapshots=[50, 25, 1])
    assert res.timesteps == [50, 25, 1]
    assert res.trajectory.shape == (3, 3, 1, 4, 4)
    # the state at t = n_T is the starting noise: far from the data; at t = 1 it is close
    assert res.trajectory[0].std() > 0.5 and res.trajectory[2].std() < res.trajectory[0].std()


def test_sampling_is_reproducible_with_a_generator():
    model, _ = _oracle_ddpm(n_T=30)
    a = model.sample(2, (1, 4, 4), generator=torch.Generator().manual_seed(5)).images
    b = model.sample(2, (1, 4, 4), generator=torch.Generator().manual_seed(5)).images
    assert torch.equal(a, b)


def test_ddim_timesteps():
    ts = ddim_timesteps(1000, 50)
    assert ts[0] == 1000 and ts[-1] == 1 and len(ts) == 50
    assert all(a > b for a, b in zip(ts, ts[1:], strict=False))
    assert ddim_timesteps(10, 50) == list(range(10, 0, -1))


def test_training_loss_is_the_noise_regression():
    model, _ = _oracle_ddpm()
    x0 = model.net.target.expand(32, -1, -1, -1)
    # the oracle predicts the true noise exactly, so the training loss is ~0
    assert model(x0).item() < 1e-8


def test_ancestral_x0_estimate_removes_the_residual_noise_of_the_seed_last_step():
    model, target = _oracle_ddpm()
    x = target.expand(64, -1, -1, -1)
    gen = torch.Generator().manual_seed(0)
    clean = model.sample(64, (1, 4, 4), generator=gen, snapshots=[1])
    assert model.result == "x0_estimate"
    assert torch.allclose(clean.images, x, atol=1e-4)  # noiseless final step
    gen = torch.Generator().manual_seed(0)
    seed = model.sample(64, (1, 4, 4), generator=gen, snapshots=[1], result="last_step")
    # same path up to t = 1, then z_0 = sqrt(abar_0) x0 + c eps_1 with
    # c = sqrt(alpha_1) (1 - abar_0) / sqrt(1 - abar_1) (module docstring)
    z1 = seed.trajectory[-1]
    assert torch.equal(z1, clean.trajectory[-1])
    abar, beta = model.alpha_bar.double(), model.beta.double()
    eps1 = (z1.double() - abar[1].sqrt() * x) / (1 - abar[1]).sqrt()
    c = (1 - beta[1]).sqrt() * (1 - abar[0]) / (1 - abar[1]).sqrt()
    expected = abar[0].sqrt() * x + c * eps1
    assert torch.allclose(seed.images.double(), expected, atol=1e-5)
    approx = beta[0] / (beta[0] + beta[1]).sqrt()  # ~ sqrt(beta1 / 2) for a large n_T
    assert c.item() == pytest.approx(approx.item(), rel=0.01)
    residual = (seed.images - x).abs().max().item()
    assert 1e-3 < residual < 0.05


def test_ddpm_result_is_validated():
    with pytest.raises(ValueError, match="result"):
        _oracle_ddpm()[0].sample(1, (1, 4, 4), result="z0")


def test_draw_samples_in_the_device_default_batch_or_the_given_one():
    from coldflow.methods import SampleResult
    from coldflow.tasks.diffusion.sampling import (
        CPU_SAMPLE_BATCH,
        GPU_SAMPLE_BATCH,
        draw,
        sample_batch_size,
    )

    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))
            self.sizes: list[int] = []

        def sample(self, m, shape, snapshots=(), generator=None, **options):
            self.sizes.append(m)
            return SampleResult(torch.full((m, *shape), float(len(self.sizes))))

    model = Recorder()
    out = draw(model, 2 * CPU_SAMPLE_BATCH + 3)
    assert model.sizes == [CPU_SAMPLE_BATCH, CPU_SAMPLE_BATCH, 3]  # on a CPU: 64 per call
    assert out.images.shape[0] == 2 * CPU_SAMPLE_BATCH + 3
    assert out.images[-1].max().item() == 3.0  # the batches in order
    model.sizes.clear()
    draw(model, 10, batch_size=4)
    assert model.sizes == [4, 4, 2]
    assert sample_batch_size(None, torch.device("cuda")) == GPU_SAMPLE_BATCH
    assert sample_batch_size(7, torch.device("cuda")) == 7
