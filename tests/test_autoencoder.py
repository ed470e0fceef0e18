"""The field autoencoder: shapes on non-square grids, the compression ratio, the
normalisation, gradients through every buildable loss, and that a tiny one trained for a
few hundred steps beats interpolating a downsampled field of the same size."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from coldflow.hub import HubError
from coldflow.losses import build_field_loss
from coldflow.methods import METHODS, FieldAutoencoder, build_method, upsample
from coldflow.nets import NETS, FieldAutoencoderNet, build_net

torch.set_num_threads(1)

LOSSES = ["mse", "mae", "lsim", "vgg", "lpips"]


def field_loss(name: str):
    """The centred field distance ``name``, or skip when its weights are absent."""
    try:
        return build_field_loss(name)
    except HubError as e:
        pytest.skip(f"{name}: pretrained weights are not available here ({e})")


def vortices(n: int, H: int, W: int, radius: float = 2.5, count: int = 3, seed: int = 0):
    """``[n, 2, H, W]`` velocities of ``count`` Gaussian vortices (random place, sign)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    out = torch.zeros(n, 2, H, W)
    for _ in range(count):
        cy, cx = torch.rand(n, 1, 1, generator=g) * H, torch.rand(n, 1, 1, generator=g) * W
        strength = torch.rand(n, 1, 1, generator=g) * 2 - 1
        dy, dx = yy - cy, xx - cx
        e = strength * torch.exp(-(dy**2 + dx**2) / (2 * radius**2))
        out[:, 0] += -dx / radius * e
        out[:, 1] += dy / radius * e
    return out


# ------------------------------------------------------------------------ network


@pytest.mark.parametrize("shape", [(128, 64), (64, 32), (32, 16)])
@pytest.mark.parametrize("channels", [2, 3])
def test_shapes_and_compression_on_non_square_grids(shape, channels):
    torch.manual_seed(0)
    H, W = shape
    net = FieldAutoencoderNet(channels, width=4, levels=3, compression=8)
    x = torch.randn(2, channels, H, W)
    z = net.encode(x)
    assert z.shape == (2, channels * 64 // 8, H // 8, W // 8)
    assert net.decode(z).shape == x.shape and net(x).shape == x.shape
    # compression = input numbers / latent numbers, exactly
    assert channels * H * W / net.latent_numbers(x.shape) == 8
    assert z[0].numel() == net.latent_numbers((H, W)) and net.compression == 8


def test_compression_and_levels_are_checked():
    assert FieldAutoencoderNet(3, levels=2, compression=48).latent_channels == 1
    with pytest.raises(ValueError, match="compression=5 with levels=2"):
        FieldAutoencoderNet(2, levels=2, compression=5)  # 32 / 5 channels
    with pytest.raises(ValueError, match="compression=64"):
        FieldAutoencoderNet(2, levels=2, compression=64)  # half a channel
    net = FieldAutoencoderNet(2, width=4, levels=3, compression=8)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.zeros(1, 2, 32, 20))
    with pytest.raises(ValueError, match="divisible by 8"):
        FieldAutoencoderNet(2, levels=3, compression=8, image_shape=(32, 12))
    with pytest.raises(ValueError, match="upsample"):
        FieldAutoencoderNet(2, upsample="transposed")


def test_resize_convolution_decoder_has_no_checkerboard():
    """A constant latent decodes to a field without period-2 artefacts (untrained net)."""
    torch.manual_seed(0)
    net = FieldAutoencoderNet(2, width=8, levels=2, compression=16, upsample="nearest")
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.bias.zero_()
        out = net.decode(torch.ones(1, net.latent_channels, 16, 16))[0, :, 12:-12, 12:-12]
    # constant away from the border (zero padding reaches 11 cells in): no period-2 pattern
    assert torch.allclose(out, out[:, :1, :1].expand_as(out), atol=1e-5)


def test_registry_builds_net_and_method():
    assert NETS["field_autoencoder"] is FieldAutoencoderNet
    assert METHODS["autoencoder"] is FieldAutoencoder
    net = build_net(
        {"kind": "field_autoencoder", "width": 4, "levels": 2, "compression": 16},
        in_channels=3,
        image_shape=(32, 16),
        out_channels=3,  # offered, not named by the constructor: left out
    )
    assert net.latent_channels == 3
    loss = build_field_loss("mse")
    model = build_method({"kind": "autoencoder"}, net, loss=loss, scale=[1.0, 2.0, 3.0])
    assert model.scale.tolist() == [1.0, 2.0, 3.0] and model.shared.loss is loss
    keys = set(model.state_dict())
    assert "scale" in keys and not any(k.startswith("shared") for k in keys)
    ema = copy.deepcopy(model)  # the trainer's EMA copy shares the loss, copies the rest
    assert ema.shared.loss is loss and ema.net is not net and torch.equal(ema.scale, model.scale)
    with pytest.raises(ValueError, match="one value per field channel"):
        FieldAutoencoder(net, loss, scale=[1.0, 2.0])


# ------------------------------------------------------------------------ method


def test_scale_normalises_and_reconstruct_is_in_physical_units():
    torch.manual_seed(0)
    net = FieldAutoencoderNet(2, width=4, levels=2, compression=8)
    s = torch.tensor([0.5, 4.0])
    unit = FieldAutoencoder(net, None)
    scaled = FieldAutoencoder(net, None, s)
    x = torch.randn(3, 2, 16, 8)
    with torch.no_grad():
        got = scaled.reconstruct(x * s[:, None, None])
        torch.testing.assert_close(got, unit.reconstruct(x) * s[:, None, None])
        torch.testing.assert_close(scaled.encode(x * s[:, None, None]), net.encode(x))
    assert scaled.latent_numbers((2, 16, 8)) == 2 * 16 * 8 // 8
    with pytest.raises(RuntimeError, match="without a loss"):
        scaled({"x": x})


def test_loss_is_the_mean_distance_in_normalised_units():
    torch.manual_seed(0)
    net = FieldAutoencoderNet(2, width=4, levels=1, compression=2)
    s = torch.tensor([2.0, 0.25])
    model = FieldAutoencoder(net, build_field_loss("mse"), s)
    x = torch.randn(4, 2, 8, 8) * s[:, None, None]
    with torch.no_grad():
        xn = x / s[:, None, None]
        expected = ((net(xn) - xn) ** 2).mean(dim=(2, 3)).sum(1).mean()  # per-component sum
        torch.testing.assert_close(model({"x": x}), expected)


@pytest.mark.parametrize("name", LOSSES)
def test_gradients_reach_every_parameter(name):
    loss = field_loss(name)
    torch.manual_seed(0)
    net = FieldAutoencoderNet(3, width=4, levels=2, compression=12)
    model = FieldAutoencoder(net, loss, [0.5, 0.5, 2.0])
    model({"x": torch.randn(2, 3, 32, 16)}).backward()
    for n, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
        assert p.grad.abs().sum() > 0, n
    assert all(p.grad is None for p in loss.parameters())  # frozen metric weights


def test_tiny_autoencoder_beats_interpolating_the_same_number_of_values():
    """Compression 16 with two levels: 2 latent channels at H/4 x W/4, as many numbers as
    the 4x area-downsampled field; bicubic of that is the baseline."""
    torch.manual_seed(0)
    H, W = 32, 16
    train, test = vortices(1024, H, W, seed=0), vortices(64, H, W, seed=1)
    net = FieldAutoencoderNet(2, width=8, levels=2, compression=16)
    low = F.avg_pool2d(test, 4)
    assert low[0].numel() == net.latent_numbers(test.shape)
    model = FieldAutoencoder(net, build_field_loss("mse"), train.std(dim=(0, 2, 3)))
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(250):
        loss = model({"x": train[torch.randint(0, len(train), (32,), generator=g)]})
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        error = F.mse_loss(model.reconstruct(test), test).item()
    baseline = F.mse_loss(upsample(low, 4, "bicubic"), test).item()
    assert error < 0.6 * baseline, (error, baseline)


def test_coarse_latent_starts_as_interpolated_block_averages():
    net = FieldAutoencoderNet(in_channels=3, width=4, levels=2, compression=8, coarse=True)
    x = torch.randn(2, 3, 32, 16, generator=torch.Generator().manual_seed(0))
    z = net.encode(x)
    assert z.shape == (2, 6, 8, 4)  # 3 averaged + 3 learned channels: 8x fewer numbers
    assert x[0].numel() / z[0].numel() == 8
    assert torch.allclose(z[:, :3], F.avg_pool2d(x, 4))
    with torch.no_grad():
        assert torch.allclose(net(x), upsample(F.avg_pool2d(x, 4), 4, "bicubic"), atol=1e-6)
    with pytest.raises(ValueError, match="lower the compression"):
        FieldAutoencoderNet(in_channels=3, levels=2, compression=16, coarse=True)


def test_pca_and_dct_codecs_store_as_many_values_as_the_latent_code():
    """The evaluation's codecs are sized by the latent code: same numbers per frame."""
    from coldflow.tasks.recon.baselines import DCTCodec, PCACodec, resample_baseline

    net = FieldAutoencoderNet(2, width=4, levels=2, compression=16)
    train, test = vortices(256, 32, 16, seed=0), vortices(4, 32, 16, seed=1)
    n = net.latent_numbers(test.shape)
    assert net.encode(test)[0].numel() == n == 64
    assert PCACodec.fit(train, n).encode(test).shape == (4, n)
    assert DCTCodec((2, 32, 16), n).encode(test).shape == (4, n)
    assert resample_baseline(test, n)[1] == n  # 2 x 8 x 4: exactly the latent size here
