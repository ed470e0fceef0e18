"""Diffusion super-resolution of fields: the conditional DDPM and cold diffusion with
resolution lowering (methods.diffusion_sr), their known answers (a perfect restorer
returns x0 with both cold samplers; the DDPM's loss reaches its minimum 0 on one image),
shapes on non-square grids, the spread measure, the config's refusals, and a run trained,
evaluated and grouped with the loss-trained super-resolution runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from coldflow.experiment import evaluate, load_config_file, train
from coldflow.methods.diffusion_sr import ColdSuperResolution, DDPMSuperResolution
from coldflow.nets.superres import upsample
from coldflow.nets.unet import UNet
from coldflow.physics.grid import downsample_centered
from coldflow.simulate.run import simulate
from coldflow.tasks import task_of
from coldflow.tasks.recon.config import DiffusionSRConfig
from coldflow.tasks.recon.diffusion import residual_scale, spread_scores
from coldflow.tasks.recon.figures import comparison, diffusion_findings, run_figures

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def smooth_high(n: int = 2, C: int = 2, H: int = 24, W: int = 12, seed: int = 0) -> torch.Tensor:
    """Sums of a few low Fourier modes on an ``H x W`` grid, ``[n, C, H, W]``."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(H) + 0.5)[:, None] / H
    x = (torch.arange(W) + 0.5)[None, :] / W
    out = torch.zeros(n, C, H, W)
    for _ in range(4):
        ky, kx = torch.randint(1, 4, (2,), generator=g).tolist()
        a = torch.randn(n, C, 1, 1, generator=g)
        out += a * torch.sin(2 * math.pi * (ky * y + kx * x + torch.rand(1, generator=g)))
    return out


class _Oracle(nn.Module):
    """A cold restorer's correction that knows the answer: ``net(x, t) = x0 - x``."""

    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.x0 = x0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.x0 - x


@pytest.mark.parametrize("sampler", ["improved", "naive"])
def test_a_perfect_cold_restorer_returns_x0_with_either_sampler(sampler):
    high = smooth_high()
    scale = torch.tensor([0.5, 2.0])
    low = downsample_centered(high, 2)
    model = ColdSuperResolution(
        _Oracle(high / scale[:, None, None]), 2, (24, 12), scale, 2, n_T=6, sampler=sampler
    )
    # the sampler starts from exactly the bicubic-upsampled low-resolution field ...
    start = model.diffusion.degradation.degrade(high / scale[:, None, None], 6)
    torch.testing.assert_close(model.bicubic(low), start, rtol=0, atol=1e-5)
    # ... and a restorer that always answers x0 leads both samplers back to it
    torch.testing.assert_close(model.upscale(low), high, rtol=0, atol=1e-5)
    assert not torch.allclose(upsample(low, 2, "bicubic"), high, atol=1e-2)


class _OneImage(nn.Module):
    """A predictor with one learnable residual image ``p``: the noise
    ``eps_hat = (z_t - sqrt(abar_t) p) / sqrt(1 - abar_t)``, or the v it implies,
    ``sqrt(abar_t) eps_hat - sqrt(1 - abar_t) p``; exact when ``p`` is the one training
    residual. It checks that it reads ``[z_t, b]``."""

    def __init__(self, alpha_bar: torch.Tensor, shape, cond: torch.Tensor, v: bool) -> None:
        super().__init__()
        self.alpha_bar, self.cond, self.v = alpha_bar, cond, v
        self.n_T = len(alpha_bar) - 1
        self.p = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        C = x.shape[1] // 2
        torch.testing.assert_close(x[:, C:], self.cond.expand_as(x[:, C:]))
        abar = self.alpha_bar[(t * self.n_T).round().long()][:, None, None, None]
        eps = (x[:, :C] - abar.sqrt() * self.p) / (1 - abar).sqrt()
        return abar.sqrt() * eps - (1 - abar).sqrt() * self.p if self.v else eps


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_the_conditional_ddpm_loss_reaches_its_minimum_zero_on_one_image(prediction):
    torch.manual_seed(0)
    high = smooth_high(n=1)
    low = downsample_centered(high, 2) + 0.05  # the low field is not the high's average
    scale = torch.tensor([1.5, 0.7])
    rs = residual_scale(low, high, scale, 2)
    probe = DDPMSuperResolution(nn.Identity(), 2, scale, rs, 2, n_T=50, prediction=prediction)
    b = probe.bicubic(low)
    target = (high / scale[:, None, None] - b) / torch.tensor(rs)[:, None, None]
    abar = probe.diffusion.alpha_bar
    net = _OneImage(abar, target.shape[1:], b, prediction == "v")
    model = DDPMSuperResolution(net, 2, scale, rs, 2, n_T=50, prediction=prediction)
    batch = {"low": low.expand(16, -1, -1, -1), "high": high.expand(16, -1, -1, -1)}
    with torch.no_grad():
        start = float(model(batch))  # p = 0: the residual left unexplained
        net.p.copy_(target[0])
        assert float(model(batch)) < 1e-9  # eps predicted from the answer: the minimum 0
        net.p.zero_()
    assert start > 0.1
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for step in range(600):
        if step >= 300:  # settle: Adam's steps would otherwise hover at ~ lr
            opt.param_groups[0]["lr"] *= 0.98
        opt.zero_grad()
        loss = model(batch)
        loss.backward()
        opt.step()
    assert float(model(batch).detach()) < 1e-6 * start
    torch.testing.assert_close(net.p.detach(), target[0], rtol=0, atol=5e-3)
    # and DDIM from that exact predictor lands on the reference
    torch.testing.assert_close(model.upscale(low), high, rtol=0, atol=2e-2)


def test_residual_scale_is_the_std_of_the_normalised_residual():
    high, scale = smooth_high(n=3), [2.0, 0.5]
    low = downsample_centered(high, 2)
    s = torch.tensor(scale)[:, None, None]
    r = high / s - upsample(low / s, 2, "bicubic")
    got = residual_scale(low, high, scale, 2)
    for c in range(2):
        assert got[c] == pytest.approx(float(r[:, c].std()), rel=1e-5)


@pytest.mark.parametrize("process", ["ddpm", "cold"])
def test_shapes_on_a_non_square_grid_and_reproducible_samples(process):
    C, (H, W) = 2, (48, 24)
    low = torch.randn(3, C, H // 2, W // 2)
    if process == "ddpm":
        net = UNet(2 * C, (H, W), channels=(8, 16), time_dim=8, out_channels=C)
        model = DDPMSuperResolution(net, C, None, None, 2, n_T=20, steps=4)
    else:
        net = UNet(C, (H, W), channels=(8, 16), time_dim=8)
        model = ColdSuperResolution(net, C, (H, W), None, 2, n_T=4)
    assert net(torch.randn(2, net.stem.in_channels, H, W), torch.rand(2)).shape == (2, C, H, W)
    loss = model({"low": low, "high": torch.randn(3, C, H, W)})
    assert loss.ndim == 0 and torch.isfinite(loss)
    up = model.upscale(low)
    assert up.shape == (3, C, H, W)
    torch.testing.assert_close(model.upscale(low), up)  # a function of its input
    many = model.samples(low, 3)
    assert many.shape == (3, 3, C, H, W)
    torch.testing.assert_close(many[0], up)
    if process == "ddpm":
        assert not torch.allclose(many[1], many[0])  # another seed, another sample
    else:
        torch.testing.assert_close(many[1], many[0])  # cold sampling is deterministic
    with pytest.raises(ValueError, match="is not low"):
        model({"low": low, "high": torch.randn(3, C, H, W + 2)})


def test_spread_of_known_samples():
    ref = torch.ones(2, 1, 4, 4)
    same = ref[None].expand(3, -1, -1, -1, -1)
    got = spread_scores(same, ref, None)
    assert got["relative"] == [0.0, 0.0] and got["error_correlation"] == [None, None]
    # two samples at ref +- d on the right half: std d sqrt(2) there, error 0 (mean = ref)
    d = torch.zeros_like(ref)
    d[..., 2:] = 0.1
    pair = torch.stack([ref + d, ref - d])
    got = spread_scores(pair, ref, None)
    assert got["relative"][0] == pytest.approx(0.1 * math.sqrt(2) * 8 / 16)
    assert got["error_correlation"][0] is None  # the error is 0 everywhere
    # where the samples are biased the same way as their spread, the correlation is 1
    biased = torch.stack([ref + 2 * d, ref])
    got = spread_scores(biased, ref, None)
    assert got["error_correlation"][0] == pytest.approx(1.0)
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:, :2] = True  # only the left half scored: no spread there
    assert spread_scores(pair, ref, mask)["relative"][0] == 0.0


def test_the_config_refuses_a_sampler_or_loss_of_the_other_process():
    with pytest.raises(ValidationError, match="not a sampler of process 'cold'"):
        DiffusionSRConfig(process="cold", sampler="ddim")
    with pytest.raises(ValidationError, match="trains with its own objective"):
        DiffusionSRConfig(process="ddpm", loss={"name": "lsim"})
    assert DiffusionSRConfig(process="cold").chosen_sampler == "improved"
    assert DiffusionSRConfig().chosen_n_T == 1000


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dsr") / "tiny.h5"
    simulate(ROOT / "configs/fluids/karman_tiny.yaml", out, progress=False)
    return out


@pytest.mark.parametrize("process", ["ddpm", "cold"])
def test_a_diffusion_sr_run_is_evaluated_like_super_resolution(tiny_h5, tmp_path, process):
    cfg = tmp_path / f"{process}.yaml"
    cfg.write_text(
        f"name: dsr\ndata: {{path: {tiny_h5}, density: false}}\n"
        "model: {channels: [8, 16], time_dim: 8}\n"
        f"method: {{kind: diffusion_sr, process: {process}, n_T: 8, steps: 3}}\n"
        "training: {epochs: 1, batch_size: 8, progress: false, device: cpu}\n"
        "evaluation: {metrics: [mse, rel_l1], figure_frames: 1, samples: 3,\n"
        "  sampling_steps: [2, 4], sweep_frames: 3, solver_steps: 2, solver_starts: 1}\n"
    )
    run = train(cfg, tmp_path / "run")
    stats = json.loads((run.path / "field_stats.json").read_text())
    assert len(stats["residual_scale"]) == 2
    evaluate(run.path, device="cpu")
    ev = json.loads((run.path / "evaluation.json").read_text())
    rows = set(ev["mean"])
    assert {"super-resolution", "bicubic", "nearest training frame"} <= rows
    d = ev["diffusion"]
    if process == "ddpm":
        assert "super-resolution, mean of 3 samples" in rows
        assert [s["steps"] for s in d["sweep"]] == [2, 4] and d["spread"]["relative"] > 0
    else:
        assert d["samples"] == 1 and d["spread"]["relative"] == 0.0
        assert [s["sampler"] for s in d["sweep"]] == ["improved", "naive"]
        # the sweep's improved sampler is the evaluation's own: the same error
        assert d["sweep"][0]["mean"]["mse"] == pytest.approx(
            sum(ev["per_frame"]["super-resolution"]["mse"][i] for i in _picked(ev, 3)) / 3,
            rel=1e-4,
        )
    assert set(ev["spectra"]["energy"]) >= {"reference", "bicubic", "super-resolution"}
    assert "solver_output" in ev
    assert task_of(run.path).group(load_config_file(cfg)) == "superres_tiny"
    # on one page with a loss-trained super-resolution: the table, spectra, spread maps
    sr_cfg = tmp_path / "sr.yaml"
    sr_cfg.write_text(
        f"name: sr\ndata: {{path: {tiny_h5}, density: false}}\nmodel: {{width: 4, blocks: 1}}\n"
        "method: {kind: superres}\n"
        "training: {epochs: 1, batch_size: 8, progress: false, device: cpu}\n"
        "evaluation: {metrics: [mse, rel_l1, lse_top], figure_frames: 1, solver_steps: 0}\n"
    )
    sr = train(sr_cfg, tmp_path / "sr")
    evaluate(sr.path, device="cpu")
    page = comparison([sr.path, run.path], tmp_path / "page", ["sr", "dsr"], "superres")
    titles = dict(page.tables)
    table = titles["diffusion and loss-trained super-resolution"]
    assert "sr: super-resolution (mse)" in table and "dsr: super-resolution (" in table
    assert ("DDPM, 3 steps" if process == "ddpm" else "cold diffusion, 8 steps") in table
    assert (tmp_path / "page" / "figures" / "superres_spectra.png").is_file()
    figures = run_figures(run.path, "superres", [])
    has_spread = any("spread" in f.path.name for f in figures)
    assert has_spread == (process == "ddpm")


def _picked(ev: dict, k: int) -> list[int]:
    n = ev["frames"]
    return torch.linspace(0, n - 1, k).round().long().tolist()


def _constructed(loss: str, top: list[float], l1: float, t: float, diffusion=None) -> dict:
    spectra = {
        "k": [0, 1, 2, 3],
        "top_octave": [2, 4],
        "energy": {"reference": [9.0, 1.0, 2.0, 2.0], "bicubic": [9.0, 1.0, 0.5, 0.5],
                   "super-resolution": [9.0, 1.0, *top]},
    }  # fmt: skip
    ev = {
        "loss": loss, "training_input": "downsampled", "spectra": spectra,
        "mean": {"super-resolution": {"rel_l1": l1}, "bicubic": {"rel_l1": 0.04}},
        "seconds_per_frame": {"super-resolution": t},
    }  # fmt: skip
    if diffusion:
        ev["diffusion"] = diffusion
    return ev


def test_the_diffusion_finding_reports_the_top_octave_energy_and_its_price():
    mse = _constructed("mse", [1.0, 1.0], 0.01, 0.001)
    ddpm = _constructed("mse", [2.0, 2.0], 0.02, 0.1, {"process": "ddpm", "steps": 10})
    (sentence,) = diffusion_findings([mse, ddpm], ["sr_mse", "ddpm_sr"])
    assert sentence.startswith("ddpm_sr (DDPM, 10 steps, one sample per frame): has 100 % ")
    assert "top octave (bicubic 25 %, sr_mse 50 %)" in sentence
    assert "rel. L1 0.02 against 0.01 for sr_mse and 0.04 for bicubic" in sentence
    assert "0.1 s per frame (100 times sr_mse's)" in sentence


def test_the_unet_takes_widths_whose_skip_sums_are_not_multiples_of_eight():
    net = UNet(2, (16, 8), channels=(4, 8), time_dim=8, out_channels=1)  # 8 + 4 = 12 channels
    assert net(torch.randn(2, 2, 16, 8), torch.rand(2)).shape == (2, 1, 16, 8)
