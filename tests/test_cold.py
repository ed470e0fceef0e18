from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from coldflow.config import load_config
from coldflow.degradations.blur import GaussianBlur
from coldflow.experiment import evaluate, train
from coldflow.methods.cold import ColdDiffusion, fit_gmm, fit_prior
from coldflow.runs import RunDir
from coldflow.tasks.diffusion.config import DiffusionRunConfig

ROOT = Path(__file__).resolve().parents[1]


class Oracle(nn.Module):
    """A perfect restorer: returns the true x0 of the batch it was built for."""

    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.x0 = x0
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x_t, t_norm):
        return self.x0.clone()


def _digits(n=4):
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    blobs = [
        torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2))
        for cy, cx, s in [(10, 12, 3), (18, 9, 2), (14, 20, 4), (7, 7, 2)][:n]
    ]
    return torch.stack(blobs)[:, None].double() - 0.5


@pytest.mark.parametrize("sampler", ["naive", "improved"])
@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_perfect_restorer_walks_the_degradation_path_back(sampler, noise):
    x0 = _digits()
    deg = GaussianBlur(n_T=20, sigma_scale=0.25, noise_start=0.0, noise_end=noise)
    model = ColdDiffusion(Oracle(x0), deg, prior="black")
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=x0.dtype)
    t_T = torch.full((4,), 20)
    x_T = deg.degrade(x0, t_T, noise=eps)
    res = model.sample(4, (1, 28, 28), sampler=sampler, start=x_T, snapshots=[20, 10, 3, 1])
    assert torch.allclose(res.images, x0, atol=1e-12)
    for k, t in enumerate(res.timesteps):
        expected = deg.degrade(x0, torch.full((4,), t), noise=eps)
        assert torch.allclose(res.trajectory[k], expected, atol=1e-9), (sampler, t)


def test_fit_gmm_recovers_two_separated_clusters():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(600, 2, generator=gen) * 0.3 + torch.tensor([4.0, 0.0])
    b = torch.randn(200, 2, generator=gen) * 0.5 + torch.tensor([-4.0, 1.0])
    gmm = fit_gmm(torch.cat([a, b]), components=2, seed=3)
    order = gmm["means"][:, 0].argsort(descending=True)
    means, weights, var = gmm["means"][order], gmm["weights"][order], gmm["variances"][order]
    assert torch.allclose(
        means, torch.tensor([[4.0, 0.0], [-4.0, 1.0]], dtype=means.dtype), atol=0.1
    )
    assert torch.allclose(weights, torch.tensor([0.75, 0.25], dtype=weights.dtype), atol=0.02)
    assert torch.allclose(
        var.sqrt(), torch.tensor([[0.3, 0.3], [0.5, 0.5]], dtype=var.dtype), atol=0.06
    )


def test_gmm_prior_gives_diverse_starts_and_black_gives_one():
    from coldflow.data import mnist_dataset

    x = mnist_dataset("train", subset=2000).tensors[0]
    deg = GaussianBlur(n_T=50, sigma_scale=0.1)
    degraded = deg.degrade(x, torch.full((len(x),), 50))
    model = ColdDiffusion(nn.Conv2d(1, 1, 1), deg, prior_components=5, prior_dims=16)
    model.set_prior(fit_prior(degraded, 16, 5))
    gen = torch.Generator().manual_seed(0)
    starts = model.start(500, (1, 28, 28), generator=gen)
    # the fitted starts look like degraded digits: same mean image, similar spread
    assert torch.allclose(starts.mean(0), degraded.mean(0), atol=0.03)
    assert starts.std(0).mean() == pytest.approx(degraded.std(0).mean().item(), rel=0.2)
    assert torch.cdist(starts[:50].flatten(1), starts[:50].flatten(1)).fill_diagonal_(1).min() > 0.1
    black = model.start(3, (1, 28, 28), prior="black")
    assert torch.all(black == -0.5)


def test_tiny_cold_model_restores_better_than_the_degraded_input(tmp_path):
    cfg = load_config(
        ROOT / "configs" / "mnist" / "quick_blur.yaml",
        DiffusionRunConfig,
        [
            "data.train_subset=3000",
            "degradation.n_T=10",
            "degradation.sigma_scale=0.2",
            "model.hidden=[8, 8]",
            "training.epochs=2",
            "training.progress=false",
            "training.device=cpu",
            "sampling.snapshot_timesteps=[10, 5, 1]",
            "sampling.n_grid=4",
            "evaluation.fid.enabled=false",
            "method.conditional_images=100",
            "method.prior_fit_images=500",
        ],
    )
    run = train(cfg, tmp_path / "cold")
    final = RunDir(run.path).samples_path()
    assert final.is_file()
    events = {e["name"]: e["value"] for e in run.read_metrics() if e["split"] == "eval"}
    assert {"cond_rmse", "cond_ssim"} <= events.keys()
    result = evaluate(run.path, n=100, device="cpu")
    table = result["conditional"]
    assert table["direct"]["rmse"] < table["degraded"]["rmse"]
    assert table["improved"]["rmse"] < table["degraded"]["rmse"]
    assert table["improved"]["ssim"] > table["degraded"]["ssim"]
    assert set(result["unconditional_fid"]) == {"gmm", "black"}


class BiasedOracle(Oracle):
    """An imperfect restorer: the true x0 plus an offset that grows with t."""

    def forward(self, x_t, t_norm):
        return self.x0.clone() + 0.1 * t_norm.view(-1, 1, 1, 1).to(self.x0.dtype)


def _biased(noise=0.0):
    x0 = _digits()
    deg = GaussianBlur(n_T=10, sigma_scale=0.3, noise_start=0.0, noise_end=noise)
    model = ColdDiffusion(BiasedOracle(x0), deg, prior="black")
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2), dtype=x0.dtype)
    return model, deg, deg.degrade(x0, torch.full((4,), 10), noise=eps)


def test_improved_sampler_ends_with_the_papers_last_step_by_default():
    model, deg, x_T = _biased()
    assert model.result == "last_step"
    restored = model.sample(4, (1, 28, 28), start=x_T, snapshots=[1], result="restoration")
    x1 = restored.trajectory[-1]
    one = torch.ones(4, dtype=torch.long)
    x0_hat = model.restore(x1, one)
    assert torch.allclose(restored.images, x0_hat)  # R(x_1, 1)
    paper = model.sample(4, (1, 28, 28), start=x_T)
    # Algorithm 2: x_0 = x_1 - D(x0_hat, 1) + D(x0_hat, 0)
    expected = x1 - deg.degrade(x0_hat, one) + deg.degrade(x0_hat, 0 * one)
    assert torch.allclose(paper.images, expected, atol=1e-12)
    assert (paper.images - restored.images).abs().max() > 1e-3


def test_result_option_comes_from_the_config():
    cfg = load_config(ROOT / "configs" / "mnist" / "quick_blur.yaml", DiffusionRunConfig)
    assert cfg.method.result == "last_step"
    cfg = load_config(
        ROOT / "configs" / "mnist" / "quick_blur.yaml",
        DiffusionRunConfig,
        ["method.result=restoration"],
    )
    from coldflow.tasks import TASKS

    assert TASKS["cold"].build(cfg, {}).result == "restoration"
    with pytest.raises(ValueError, match="result"):
        ColdDiffusion(Oracle(_digits()), GaussianBlur(n_T=5), result="x0")


def test_hybrid_improved_sampler_coincides_with_naive_and_pure_blur_does_not():
    # hybrid: implied noise makes D(x0_hat, t) = x_t, so Algorithm 2 reduces to Algorithm 1
    model, _, x_T = _biased(noise=0.1)
    naive = model.sample(4, (1, 28, 28), start=x_T, sampler="naive")
    improved = model.sample(4, (1, 28, 28), start=x_T, sampler="improved")
    assert torch.allclose(naive.images, improved.images, atol=1e-10)
    # pure blur: with the same imperfect restorer the samplers differ
    model, _, x_T = _biased(noise=0.0)
    naive = model.sample(4, (1, 28, 28), start=x_T, sampler="naive")
    improved = model.sample(4, (1, 28, 28), start=x_T, sampler="improved")
    assert (naive.images - improved.images).abs().max() > 1e-3


def test_black_start_stays_black_for_a_restorer_that_keeps_constants():
    # D(black, t) = black; a restorer mapping a constant image to itself never leaves it
    class Identity(nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(()))

        def forward(self, x_t, t_norm):
            return x_t

    model = ColdDiffusion(Identity(), GaussianBlur(n_T=10, sigma_scale=0.3), prior_noise=0.0)
    res = model.sample(3, (1, 28, 28), prior="black")
    assert torch.allclose(res.images, torch.full_like(res.images, -0.5), atol=1e-6)


def test_lookup_restoration_returns_the_training_digit_a_blurred_input_came_from():
    from coldflow.data import mnist_dataset
    from coldflow.tasks import TASKS

    over = ["data.train_subset=2000"]
    cfg = load_config(ROOT / "configs" / "mnist" / "quick_blur.yaml", DiffusionRunConfig, over)
    task = TASKS["cold"]
    model = task.build(cfg, {})
    train_x = mnist_dataset("train", tuple(cfg.data.range), 2000).tensors[0]
    pick = torch.tensor([3, 1999, 500])
    t = torch.full((3,), model.n_T, dtype=torch.long)
    x_T = model.degradation.degrade(train_x[pick], t, noise=torch.zeros(3, 1, 28, 28))
    assert torch.equal(task.lookup_restoration(model, cfg, x_T), train_x[pick])
    # digits beyond the run's training subset are not searched
    outside = mnist_dataset("train", tuple(cfg.data.range), 2001).tensors[0][-1:]
    x_T = model.degradation.degrade(outside, t[:1], noise=torch.zeros(1, 1, 28, 28))
    assert not torch.equal(task.lookup_restoration(model, cfg, x_T), outside)
