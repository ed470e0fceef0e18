from __future__ import annotations

import pytest
import torch

from coldflow.nets import NetOptionError, build_net, call_with_context
from coldflow.tasks.diffusion.config import SeedCNNConfig, UNetConfig


@pytest.mark.parametrize("cfg", [SeedCNNConfig(), UNetConfig(channels=(8, 16, 16), time_dim=16)])
def test_networks_map_images_to_images_and_depend_on_time(cfg):
    torch.manual_seed(0)
    net = build_net(cfg, in_channels=1, image_shape=(28, 28))
    x = torch.randn(3, 1, 28, 28)
    y0 = net(x, torch.zeros(3))
    y1 = net(x, torch.ones(3))
    assert y0.shape == x.shape
    assert not torch.allclose(y0, y1)


def test_seed_cnn_has_the_seed_layout():
    net = build_net(SeedCNNConfig(), 1, (28, 28))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 16, (7, 7)),
        (16, 32, (7, 7)),
        (32, 32, (7, 7)),
        (32, 16, (7, 7)),
        (16, 1, (3, 3)),
    ]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert [tuple(n.normalized_shape) for n in norms] == [(c, 28, 28) for c in (16, 32, 32, 16)]


def test_unet_rejects_shapes_its_levels_cannot_halve():
    with pytest.raises(ValueError, match="divisible"):
        build_net(UNetConfig(channels=(8, 8, 8, 8)), 1, (28, 28))


def test_unet_fits_a_fixed_batch():
    torch.manual_seed(0)
    net = build_net(UNetConfig(channels=(8, 16), time_dim=16), 1, (28, 28))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    x, t = torch.randn(8, 1, 28, 28), torch.rand(8)
    target = x.flip(-1)
    first = None
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(net(x, t), target)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_build_net_passes_each_constructor_only_the_context_it_names():
    # SOL's net takes no image_shape, the autoencoder no out_channels: both are offered
    sol = build_net({"kind": "sol_resnet_small", "width": None}, 3, (16, 8), out_channels=2)
    assert sol.head[0].in_channels == 3 and sol.tail.out_channels == 2
    assert sol.head[0].out_channels == 16  # width None: the kind's own
    ae = build_net({"kind": "field_autoencoder", "levels": 1, "compression": 2}, 2, (8, 8))
    assert ae(torch.zeros(1, 2, 8, 8)).shape == (1, 2, 8, 8)
    with pytest.raises(ValueError, match="unknown model kind 'resnet'.*field_superres"):
        build_net({"kind": "resnet"}, 1)


def test_call_with_context_rules():
    def make(net, scene, loss=None, *, scale=1.0):
        return net, scene, loss, scale

    def loose(net, **options):
        return net, options

    # context wins over a config option of the same name; unnamed context is left out
    got = call_with_context(
        make, "n", options={"loss": "spec", "m": 2}, context={"loss": "built", "scene": "s", "x": 1}
    )
    assert got == ("n", "s", "built", 1.0)
    # **kwargs take config options, never unnamed context
    assert call_with_context(loose, "n", options={"m": 2}, context={"x": 1}) == ("n", {"m": 2})
    with pytest.raises(TypeError, match=r"building thing needs \['scene'\]"):
        call_with_context(make, "n", context={"loss": 1}, what="thing")


def test_a_net_built_from_config_rejects_an_option_it_does_not_take():
    with pytest.raises(NetOptionError, match=r"model\.width: the 'unet' net takes no option "
                       r"'width'; its options are channels, out_channels, time_dim"):  # fmt: skip
        build_net({"kind": "unet", "width": 8}, 1, (28, 28))
    # a constructor that passes **options on to another: the inner one's refusal, named
    with pytest.raises(NetOptionError, match=r"model\.depth: the 'sol_resnet_small' net"):
        build_net({"kind": "sol_resnet_small", "depth": 3}, 3, out_channels=2)


def test_diffusion_tasks_build_their_method_from_every_config_option():
    from coldflow.methods import DDPM, ColdDiffusion
    from coldflow.tasks.diffusion.cold import ColdTask
    from coldflow.tasks.diffusion.config import DiffusionRunConfig
    from coldflow.tasks.diffusion.ddpm import DDPMTask

    ddpm = DDPMTask().build(DiffusionRunConfig(method={"result": "last_step"}), {})
    assert isinstance(ddpm, DDPM) and ddpm.result == "last_step"
    cfg = DiffusionRunConfig(
        data={"range": (-1.0, 1.0)},
        degradation={"kind": "blur", "n_T": 5},
        model=UNetConfig(channels=(8, 8), time_dim=8),
        method={"kind": "cold", "loss": "l1", "prior_components": 3, "prior_dims": 4},
    )
    cold = ColdTask().build(cfg, {})
    assert isinstance(cold, ColdDiffusion) and cold.loss_kind == "l1" and cold.black == -1.0
    assert cold.prior_means.shape == (3, 4) and cold.n_T == 5
