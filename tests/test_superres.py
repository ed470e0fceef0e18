"""Super-resolution of fields: the interpolation baselines, the residual network (shapes,
exactly bicubic when untrained), the method's normalisation and loss, gradients through
every buildable loss, and that a tiny trained network beats bicubic."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fields_util import smooth_fields

from coldflow.hub import HubError
from coldflow.losses import build_field_loss
from coldflow.methods import METHODS, FieldSuperResolution, build_method, upsample
from coldflow.nets import NETS, FieldSuperResolutionNet, build_net

torch.set_num_threads(1)


def field_loss(name: str):
    """The centred field distance ``name``, or skip when its weights are absent."""
    try:
        return build_field_loss(name)
    except HubError as e:
        pytest.skip(f"{name}: pretrained weights are not available here ({e})")


def linear_field(H: int, W: int, a: float, b: float, c: float) -> torch.Tensor:
    """``a y + b x + c`` at the centres of an ``H x W`` grid of unit cells, ``[H, W]``."""
    y = torch.arange(H, dtype=torch.float64)[:, None] + 0.5
    x = torch.arange(W, dtype=torch.float64)[None, :] + 0.5
    return a * y + b * x + c


# ------------------------------------------------------------------------ baselines


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_interpolation_of_a_linear_field_is_exact_in_the_interior(factor, mode):
    h, w = 12, 7
    low = torch.stack((linear_field(h, w, 0.3, -1.2, 2.0), linear_field(h, w, -2.0, 0.5, 0.1)))
    # the fine cells are 1 / factor as large: the same field in fine-cell units
    high = torch.stack(
        (
            linear_field(h * factor, w * factor, 0.3 / factor, -1.2 / factor, 2.0),
            linear_field(h * factor, w * factor, -2.0 / factor, 0.5 / factor, 0.1),
        )
    )
    got = upsample(low[None], factor, mode)[0]
    assert got.shape == (2, h * factor, w * factor)
    m = 2 * factor  # two coarse cells of the border: clamped samples there
    torch.testing.assert_close(got[:, m:-m, m:-m], high[:, m:-m, m:-m], rtol=0, atol=1e-5)
    assert not torch.allclose(got[:, :1], high[:, :1], atol=1e-3)  # but not at the border


def test_constants_are_kept_everywhere_and_nearest_repeats():
    const = torch.full((1, 2, 5, 3), 1.25)
    for mode in ("bicubic", "bilinear", "nearest"):
        torch.testing.assert_close(upsample(const, 4, mode), torch.full((1, 2, 20, 12), 1.25))
    x = torch.arange(6.0).view(1, 1, 2, 3)
    up = upsample(x, 2, "nearest")
    assert torch.equal(up[0, 0, ::2, ::2], x[0, 0]) and torch.equal(up[0, 0, 1::2, 1::2], x[0, 0])
    with pytest.raises(ValueError, match="mode"):
        upsample(x, 2, "lanczos")
    with pytest.raises(ValueError, match="factor"):
        upsample(x, 1.5, "bicubic")


# ------------------------------------------------------------------------ network


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("shape", [(64, 32), (32, 16)])
def test_output_shapes_and_untrained_net_is_exactly_bicubic(factor, shape):
    torch.manual_seed(0)
    net = FieldSuperResolutionNet(3, width=8, blocks=2, factor=factor)
    low = torch.randn(2, 3, *shape)
    out = net(low)
    assert out.shape == (2, 3, shape[0] * factor, shape[1] * factor)
    assert torch.equal(out, upsample(low, factor, "bicubic"))


def test_options_are_checked():
    with pytest.raises(ValueError, match="factor"):
        FieldSuperResolutionNet(2, factor=3)
    with pytest.raises(ValueError, match="odd"):
        FieldSuperResolutionNet(2, kernel_size=4)


def test_registry_builds_net_and_method_and_factors_must_agree():
    assert NETS["field_superres"] is FieldSuperResolutionNet
    assert METHODS["superres"] is FieldSuperResolution
    net = build_net({"kind": "field_superres", "width": 4, "blocks": 1, "factor": 4}, 2, (16, 8))
    assert net.factor == 4 and net.in_channels == 2
    loss = build_field_loss("mae")
    model = build_method({"kind": "superres"}, net, loss=loss, scale=[1.0, 2.0], factor=4)
    assert model.factor == 4 and model.shared.loss is loss
    assert set(model.state_dict()) >= {"scale"}
    with pytest.raises(ValueError, match="factor"):
        build_method({"kind": "superres"}, net, loss=loss, factor=2)


# ------------------------------------------------------------------------ method


def test_untrained_method_is_bicubic_in_physical_units_and_loss_is_normalised():
    torch.manual_seed(0)
    s = torch.tensor([0.1, 10.0])
    model = FieldSuperResolution(FieldSuperResolutionNet(2, width=4, blocks=1), None, s, 2)
    low = torch.randn(3, 2, 8, 4) * s[:, None, None]
    with torch.no_grad():
        torch.testing.assert_close(model.upscale(low), upsample(low, 2, "bicubic"))
    model.shared.loss = build_field_loss("mse")
    high = torch.randn(3, 2, 16, 8) * s[:, None, None]
    with torch.no_grad():
        d = (upsample(low, 2, "bicubic") - high) / s[:, None, None]
        torch.testing.assert_close(
            model({"low": low, "high": high}), (d**2).mean((2, 3)).sum(1).mean()
        )
    with pytest.raises(ValueError, match="times 2"):
        model({"low": low, "high": high[..., :-1]})


@pytest.mark.parametrize("name", ["mse", "mae", "lsim", "vgg", "lpips"])
def test_gradients_reach_every_parameter(name):
    loss = field_loss(name)
    torch.manual_seed(0)
    net = FieldSuperResolutionNet(3, width=4, blocks=1, factor=2)
    torch.nn.init.normal_(net.tail.weight, std=0.1)  # zero tail: gradients stop there
    model = FieldSuperResolution(net, loss, [1.0, 1.0, 0.5], 2)
    model({"low": torch.randn(2, 3, 16, 8), "high": torch.randn(2, 3, 32, 16)}).backward()
    for n, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
        assert p.grad.abs().sum() > 0, n


@pytest.mark.parametrize("factor", [2, 4])
def test_tiny_network_beats_bicubic(factor):
    torch.manual_seed(0)
    train, test = smooth_fields(512, 32, 2, seed=0), smooth_fields(64, 32, 2, seed=1)
    train, test = train + train.flip(-1) ** 2, test + test.flip(-1) ** 2  # sharper features
    net = FieldSuperResolutionNet(2, width=8, blocks=2, factor=factor)
    model = FieldSuperResolution(net, build_field_loss("mse"), train.std(dim=(0, 2, 3)), factor)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        high = train[torch.randint(0, len(train), (32,), generator=g)]
        loss = model({"low": F.avg_pool2d(high, factor), "high": high})
        opt.zero_grad()
        loss.backward()
        opt.step()
    low = F.avg_pool2d(test, factor)
    with torch.no_grad():
        error = F.mse_loss(model.upscale(low), test).item()
    baseline = F.mse_loss(upsample(low, factor, "bicubic"), test).item()
    assert error < 0.5 * baseline, (error, baseline)


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_upsampling_commutes_with_the_mirror_the_nearest_frame_search_uses(mode):
    """Mirroring a low-resolution input and upsampling it gives the mirrored upsampled
    frame: a mirrored training frame is a fair candidate for every method alike."""
    from coldflow.tasks.recon.baselines import mirror_centered

    low = smooth_fields(3, 16, 3, seed=4)
    channels = ["v_y", "v_x", "density"]
    mirrored = upsample(mirror_centered(low, channels), 2, mode)
    torch.testing.assert_close(mirrored, mirror_centered(upsample(low, 2, mode), channels))
