"""Distances of coldflow.losses: registry, pixel losses, VGG-16, LPIPS, the field adapter.

The ImageNet backbones are not available offline, so VGG and LPIPS are checked with
random backbones (invariants, gradients, layouts) and with the real LPIPS v0.1 linear
layers where those matter.
"""

from __future__ import annotations

import pytest
import torch
from fields_util import smooth_fields

from coldflow import hub
from coldflow.losses import (
    LOSSES,
    LPIPS,
    FieldDistance,
    VGGFeatureLoss,
    build_field_loss,
    build_loss,
    field_components,
)
from coldflow.nets.alexnet import AlexNetFeatures
from coldflow.nets.vgg import VGG16Features


def needs(resource: str):
    return pytest.mark.skipif(
        hub.locate(resource) is None,
        reason=f"{resource} weights not found (set COLDFLOW_WEIGHTS, see data/README)",
    )


# torchvision layouts, written out independently of coldflow.nets
TORCHVISION_VGG16 = {
    **{
        f"features.{i}.weight": (o, c, 3, 3)
        for i, c, o in [
            (0, 3, 64),
            (2, 64, 64),
            (5, 64, 128),
            (7, 128, 128),
            (10, 128, 256),
            (12, 256, 256),
            (14, 256, 256),
            (17, 256, 512),
            (19, 512, 512),
            (21, 512, 512),
            (24, 512, 512),
            (26, 512, 512),
            (28, 512, 512),
        ]
    },  # fmt: skip
    "classifier.0.weight": (4096, 25088),
    "classifier.3.weight": (4096, 4096),
    "classifier.6.weight": (1000, 4096),
}
TORCHVISION_ALEXNET = {
    "features.0.weight": (64, 3, 11, 11),
    "features.3.weight": (192, 64, 5, 5),
    "features.6.weight": (384, 192, 3, 3),
    "features.8.weight": (256, 384, 3, 3),
    "features.10.weight": (256, 256, 3, 3),
    "classifier.1.weight": (4096, 9216),
    "classifier.4.weight": (4096, 4096),
    "classifier.6.weight": (1000, 4096),
}


def torchvision_state_dict(layout: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """A state dict with the given weights plus the matching biases.

    Feature weights are random (the test compares values); the large classifier matrices
    are left uninitialised, only their names and shapes matter.
    """
    state = {}
    for key, shape in layout.items():
        make = torch.randn if key.startswith("features.") else torch.empty
        state[key] = make(shape)
        state[key.replace(".weight", ".bias")] = make(shape[0])
    return state


# ---------------------------------------------------------------- registry


def test_registry_names_and_unknown_options() -> None:
    assert set(LOSSES) == {"mse", "mae", "vgg", "lpips", "lsim"}
    with pytest.raises(ValueError, match="unknown loss 'l3'"):
        build_loss("l3")
    with pytest.raises(ValueError, match="unknown options \\['layer'\\].*accepted"):
        build_loss("vgg", layer="relu1_2", pretrained=False)
    with pytest.raises(ValueError, match="accepted: none"):
        build_loss("mse", reduction="mean")


# ---------------------------------------------------------------- pixel losses


def test_mse_and_mae_known_values() -> None:
    a = torch.zeros(2, 1, 2, 2)
    b = torch.tensor([[[[1.0, -1.0], [3.0, 1.0]]], [[[0.0, 0.0], [0.0, 2.0]]]])
    assert build_loss("mse")(a, b).tolist() == [3.0, 1.0]  # (1+1+9+1)/4, 4/4
    assert build_loss("mae")(a, b).tolist() == [1.5, 0.5]  # (1+1+3+1)/4, 2/4


def test_pair_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="same shape"):
        build_loss("mse")(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))


# ---------------------------------------------------------------- backbones


@pytest.mark.parametrize(
    ("stack", "layout", "arch"),
    [
        (VGG16Features, TORCHVISION_VGG16, "vgg16"),
        (AlexNetFeatures, TORCHVISION_ALEXNET, "alexnet"),
    ],
)
def test_torchvision_state_dict_loads_key_for_key(stack, layout, arch) -> None:
    state = torchvision_state_dict(layout)
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    net = stack()
    assert set(net.state_dict()) == set(features)
    net.load_state_dict(features, strict=True)  # plain torch, strict
    fresh = stack()
    fresh.load_torchvision(state)  # whole checkpoint, classifier ignored
    for key, value in features.items():
        assert torch.equal(fresh.state_dict()[key], value)
    broken = dict(state)
    broken["features.0.weight"] = torch.zeros(1, 3, 3, 3)
    with pytest.raises(ValueError, match="wrong shapes"):
        stack().load_torchvision(broken)
    with pytest.raises(ValueError, match=f"not a torchvision {arch}"):
        stack().load_torchvision({**state, "fc.weight": torch.zeros(1)})


def test_vgg16_tap_shapes() -> None:
    net = VGG16Features().eval()
    with torch.no_grad():
        outs = net(torch.zeros(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8), (512, 4, 4),
    ]  # fmt: skip


def test_alexnet_tap_shapes() -> None:
    net = AlexNetFeatures().eval()
    with torch.no_grad():
        outs = net(torch.zeros(1, 3, 224, 224))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (64, 55, 55), (192, 27, 27), (384, 13, 13), (256, 13, 13), (256, 13, 13),
    ]  # fmt: skip


# ---------------------------------------------------------------- missing ImageNet weights


@pytest.mark.parametrize(
    ("name", "options", "filename"),
    [
        ("vgg", {}, "vgg16-397923af.pth"),
        ("lpips", {"net": "alex"}, "alexnet-owt-7be5be79.pth"),
        ("lpips", {"net": "vgg"}, "vgg16-397923af.pth"),
    ],
)
def test_missing_backbone_stops_at_build_with_the_file_name(
    name, options, filename, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("COLDFLOW_OFFLINE", "1")
    monkeypatch.setenv("COLDFLOW_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("COLDFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COLDFLOW_DATA", raising=False)
    with pytest.raises(hub.HubError) as error:
        build_loss(name, **options)
    message = str(error.value)
    assert filename in message
    assert "put it at" in message
    assert str(tmp_path / "cache") in message


# ---------------------------------------------------------------- VGG feature loss


def random_vgg(layers="relu3_3", input_range=(-1.0, 1.0)) -> VGGFeatureLoss:
    torch.manual_seed(0)
    return VGGFeatureLoss(layers=layers, pretrained=False, input_range=input_range)


def test_vgg_layers_combine_linearly() -> None:
    a, b = smooth_fields(2, 32, seed=1), smooth_fields(2, 32, seed=2)
    single = {n: random_vgg(n)(a, b) for n in ("relu1_2", "relu2_2")}
    both = random_vgg({"relu1_2": 2.0, "relu2_2": 0.5})(a, b)
    torch.testing.assert_close(both, 2.0 * single["relu1_2"] + 0.5 * single["relu2_2"])
    assert torch.all(single["relu1_2"] > 0)


def test_vgg_input_range_and_channel_repetition() -> None:
    a, b = smooth_fields(2, 32, seed=3), smooth_fields(2, 32, seed=4)
    reference = random_vgg(input_range=(-1, 1))(a, b)
    shifted = random_vgg(input_range=(0, 4))(2 * a + 2, 2 * b + 2)
    torch.testing.assert_close(shifted, reference)
    torch.testing.assert_close(random_vgg()(a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1)), reference)


def test_vgg_joint_minmax_is_invariant_to_a_common_affine_map() -> None:
    a, b = smooth_fields(2, 32, seed=5), smooth_fields(2, 32, seed=6)
    loss = random_vgg(input_range=None)
    torch.testing.assert_close(loss(10 * a - 3, 10 * b - 3), loss(a, b), rtol=1e-4, atol=1e-9)


def test_vgg_rejects_fields_smaller_than_the_deepest_layer() -> None:
    loss = random_vgg("relu5_3")
    assert loss.min_size == 16
    with pytest.raises(ValueError, match="at least 16x16.*FieldDistance"):
        loss(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


# ---------------------------------------------------------------- LPIPS


@needs("lpips-alex")
@needs("lpips-vgg")
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_linear_layers_are_the_v01_weights(net) -> None:
    loss = LPIPS(net=net, pretrained=False)
    official = torch.load(hub.resolve(f"lpips-{net}"), map_location="cpu", weights_only=True)
    for i, lin in enumerate(loss.lins):
        assert torch.equal(lin.weight, official[f"lin{i}.model.1.weight"])


@needs("lpips-alex")
def test_lpips_head_with_v01_weights_on_known_features() -> None:
    # features one-hot in channel i for a and channel j for b at every position: after the
    # unit normalisation the squared difference is 1 at channels i and j and 0 elsewhere,
    # so each layer contributes w_i + w_j, whatever the spatial size.
    loss = LPIPS(net="alex", pretrained=False)
    official = torch.load(hub.resolve("lpips-alex"), map_location="cpu", weights_only=True)
    channels = (64, 192, 384, 256, 256)
    picks = [(3, 7), (10, 100), (0, 383), (5, 6), (200, 1)]
    fa, fb, expected = [], [], 0.0
    for c, (i, j), size in zip(channels, picks, (7, 5, 3, 3, 2), strict=True):
        x, y = torch.zeros(1, c, size, size), torch.zeros(1, c, size, size)
        x[:, i], y[:, j] = 2.5, 0.3  # lengths do not matter after normalisation
        fa.append(x)
        fb.append(y)
    for layer, (i, j) in enumerate(picks):
        w = official[f"lin{layer}.model.1.weight"].flatten()
        expected += float(w[i] + w[j])
    from coldflow.losses.lpips import lpips_head

    got = lpips_head(fa, fb, [lin.weight for lin in loss.lins])
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, rel=1e-6)


@needs("lpips-alex")
@needs("lpips-vgg")
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_metric_properties(net) -> None:
    torch.manual_seed(0)
    loss = LPIPS(net=net, pretrained=False)
    a, b = smooth_fields(3, 64, seed=7), smooth_fields(3, 64, seed=8)
    dab, dba, daa = loss(a, b), loss(b, a), loss(a, a)
    assert torch.all(dab > 0)
    torch.testing.assert_close(dab, dba)
    assert torch.all(daa.abs() < 1e-6)


def test_lpips_scaling_layer_constants() -> None:
    loss = LPIPS(net="alex", pretrained=False, calibrated=False)
    torch.testing.assert_close(loss.shift.flatten(), torch.tensor([-0.030, -0.088, -0.188]))
    torch.testing.assert_close(loss.scale.flatten(), torch.tensor([0.458, 0.448, 0.450]))
    assert all(torch.all(lin.weight == 1) for lin in loss.lins)


# ---------------------------------------------------------------- gradients, frozen weights


def frozen_losses() -> list:
    torch.manual_seed(0)
    losses = [build_loss("mse"), build_loss("mae"), random_vgg()]
    if hub.locate("lpips-alex") is not None:
        losses.append(LPIPS(net="alex", pretrained=False))
    return losses


@pytest.mark.parametrize("loss", frozen_losses(), ids=lambda m: type(m).__name__)
def test_gradients_reach_both_inputs_and_not_the_weights(loss) -> None:
    a = smooth_fields(2, 64, seed=9).requires_grad_(True)
    b = smooth_fields(2, 64, seed=10).requires_grad_(True)
    d = loss(a, b)
    assert d.shape == (2,)
    d.sum().backward()
    for x in (a, b):
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.parameters())


@pytest.mark.parametrize("loss", frozen_losses()[2:], ids=lambda m: type(m).__name__)
def test_training_with_a_frozen_loss_does_not_change_it(loss) -> None:
    torch.manual_seed(1)
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    # a careless trainer hands every parameter to the optimiser, the loss's included
    optimiser = torch.optim.Adam([*model.parameters(), *loss.parameters()], lr=0.1)
    target = smooth_fields(2, 64, seed=11)
    model_before = model.weight.detach().clone()
    for _ in range(2):
        optimiser.zero_grad()
        loss(model(target), target).mean().backward()
        optimiser.step()
    assert not torch.equal(model.weight, model_before)
    for key, value in loss.state_dict().items():
        assert torch.equal(value, before[key]), key


# ---------------------------------------------------------------- vector-field adapter


def test_field_distance_sums_components() -> None:
    a, b = smooth_fields(2, 16, channels=2, seed=12), smooth_fields(2, 16, channels=2, seed=13)
    field = FieldDistance(build_loss("mae"))
    expected = sum(build_loss("mae")(a[:, c : c + 1], b[:, c : c + 1]) for c in range(2))
    torch.testing.assert_close(field(a, b), expected)


def test_staggered_pair_and_padded_tensor_agree_and_padding_is_ignored() -> None:
    # coldflow.physics.grid layout: channel 0 = y faces (H + 1, W), 1 = x faces (H, W + 1)
    g = torch.Generator().manual_seed(0)
    vy, vx = torch.randn(2, 9, 8, generator=g), torch.randn(2, 8, 9, generator=g)
    vy2, vx2 = torch.randn(2, 9, 8, generator=g), torch.randn(2, 8, 9, generator=g)

    def padded(vy, vx, fill):
        x = torch.full((2, 2, 9, 9), fill)
        x[:, 0, :, :8] = vy
        x[:, 1, :8, :] = vx
        return x

    field = FieldDistance(build_loss("mse"), grid="staggered")
    from_pair = field((vy, vx), (vy2, vx2))
    torch.testing.assert_close(field(padded(vy, vx, 0.0), padded(vy2, vx2, 7.0)), from_pair)
    expected = ((vy - vy2) ** 2).mean(dim=(1, 2)) + ((vx - vx2) ** 2).mean(dim=(1, 2))
    torch.testing.assert_close(from_pair, expected)
    with pytest.raises(ValueError, match="v_y \\[batch, H \\+ 1, W\\]"):
        field((vx, vy), (vx2, vy2))


def test_staggered_faces_to_centres() -> None:
    vy = torch.tensor([[[0.0, 0.0], [2.0, 4.0], [4.0, 8.0]]])  # [1, H + 1 = 3, W = 2]
    vx = torch.arange(3.0).repeat(1, 2, 1)  # [1, H = 2, W + 1 = 3]: faces at x = 0, 1, 2
    cy, cx = field_components((vy, vx), "staggered", faces="center")
    assert cy[0, 0].tolist() == [[1.0, 2.0], [3.0, 6.0]]
    assert cx[0, 0].tolist() == [[0.5, 1.5], [0.5, 1.5]]


def test_small_fields_are_padded_resized_or_refused() -> None:
    seen = []

    class Probe(torch.nn.Module):
        min_size = 12

        def forward(self, a, b):
            seen.append(tuple(a.shape))
            return (a - b).abs().flatten(1).sum(dim=1)

    a, b = smooth_fields(1, 8, channels=2, seed=14), smooth_fields(1, 8, channels=2, seed=15)
    edge = FieldDistance(Probe(), fit="pad", pad_mode="edge")(a, b)
    zeros = FieldDistance(Probe(), fit="pad", pad_mode="constant")(a, b)
    assert seen[-1] == (2, 1, 12, 12)  # both components in one call
    torch.testing.assert_close(zeros, (a - b).abs().flatten(1).sum(dim=1))  # zeros add nothing
    assert torch.all(edge > zeros)  # repeated borders count the border errors again
    FieldDistance(Probe(), fit="resize")(
        smooth_fields(1, 6, seed=0)[..., :4], torch.zeros(1, 1, 6, 4)
    )
    assert seen[-1] == (1, 1, 18, 12)  # aspect ratio kept
    with pytest.raises(ValueError, match="at least 12x12.*fit='pad'"):
        FieldDistance(Probe(), fit="none")(a, b)


def test_build_field_loss_passes_options_through() -> None:
    field = build_field_loss(
        "vgg", grid="staggered", fit="resize", layers="relu1_2", pretrained=False
    )
    assert isinstance(field, FieldDistance) and field.grid == "staggered" and field.fit == "resize"
    assert field.min_size == 1 and field.distance.weights == {"relu1_2": 1.0}
