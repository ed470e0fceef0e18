"""LSiM: the official test vectors, the scipy resizing, and metric properties of the loss.

The test vectors and weights are read through the hub, i.e. from ``COLDFLOW_DATA`` /
``COLDFLOW_WEIGHTS`` (CI points them at ``../shared/data``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import torch
from fields_util import smooth_fields

from coldflow import hub
from coldflow.losses import LSiM, build_loss
from coldflow.losses.lsim import zoom_like_scipy

pytestmark = pytest.mark.skipif(
    hub.locate("lsim") is None, reason="LSiM.pth not found (set COLDFLOW_WEIGHTS)"
)


def vectors_dir() -> Path | None:
    root = os.environ.get("COLDFLOW_DATA")
    path = Path(root) / "testvectors" / "lsim" if root else None
    return path if path is not None and (path / "lsim_vectors.json").is_file() else None


def load_cases() -> list[dict]:
    directory = vectors_dir()
    if directory is None:
        return []
    return json.loads((directory / "lsim_vectors.json").read_text())["cases"]


@pytest.fixture(scope="module")
def lsim() -> LSiM:
    return LSiM()


# ---------------------------------------------------------------- official test vectors


@pytest.mark.skipif(vectors_dir() is None, reason="LSiM test vectors not found (COLDFLOW_DATA)")
@pytest.mark.parametrize("case", load_cases(), ids=lambda c: c["name"])
def test_official_test_vectors(lsim, case) -> None:
    arrays = np.load(vectors_dir() / "lsim_vectors.npz")
    a, b = arrays[f"{case['name']}__a"], arrays[f"{case['name']}__b"]
    assert list(a.shape) == case["shape"]
    options = {
        "interpolate_to": case["interpolate_to"],
        "interpolate_order": case["interpolate_order"],
    }
    expected = np.atleast_1d(np.asarray(case["distance_ab"], dtype=np.float64))
    got = lsim.distance(a, b, **options)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    if "distance_ba" in case:
        np.testing.assert_allclose(lsim.distance(b, a, **options), case["distance_ba"], atol=1e-5)
    if "distance_aa" in case:
        np.testing.assert_allclose(lsim.distance(a, a, **options), case["distance_aa"], atol=1e-5)


@pytest.mark.skipif(vectors_dir() is None, reason="LSiM test vectors not found (COLDFLOW_DATA)")
def test_tensor_inputs_give_the_numpy_answer(lsim) -> None:
    arrays = np.load(vectors_dir() / "lsim_vectors.npz")
    a, b = arrays["batch4_64x64x1__a"], arrays["batch4_64x64x1__b"]
    np.testing.assert_array_equal(
        lsim.distance(torch.from_numpy(a), torch.from_numpy(b)), lsim.distance(a, b)
    )


# ---------------------------------------------------------------- pieces of the pipeline


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize(("height", "width"), [(64, 64), (32, 63), (128, 96), (229, 17), (1, 5)])
def test_zoom_like_scipy_matches_scipy(order, height, width) -> None:
    # 32 -> 224 and 63 -> 224 hit scipy's zero at the last sample (coordinate overshoot)
    x = np.random.default_rng(0).standard_normal((2, height, width, 3)).astype(np.float32)
    expected = scipy.ndimage.zoom(x, (1, 224 / height, 224 / width, 1), order=order)
    got = zoom_like_scipy(torch.from_numpy(x).permute(0, 3, 1, 2), (224, 224), order)
    np.testing.assert_allclose(got.permute(0, 2, 3, 1).numpy(), expected, rtol=0, atol=1e-6)


def test_official_checkpoint_layout(lsim) -> None:
    checkpoint = torch.load(hub.resolve("lsim"), map_location="cpu", weights_only=True)
    state = checkpoint["stateDict"]
    for key, value in state.items():
        ours = key if key.startswith("basenet.") else f"lins.{key[3]}.weight"
        assert torch.equal(lsim.state_dict()[ours], value), key
    assert lsim.norm_count.tolist() == [345400] * 5
    assert [tuple(getattr(lsim, f"norm_mean{i}").shape) for i in range(5)] == [
        (55, 55), (26, 26), (12, 12), (12, 12), (12, 12),
    ]  # fmt: skip


def test_negative_linear_weights_act_as_zero() -> None:
    a, b = smooth_fields(1, 64, seed=1) * 255, smooth_fields(1, 64, seed=2) * 255
    a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
    results = {}
    for value in (-1.0, 0.0, 0.5):
        model = LSiM()
        with torch.no_grad():
            model.lins[1].weight[0, :10] = value
        results[value] = model.compare(a, b)
    torch.testing.assert_close(results[-1.0], results[0.0])
    assert torch.all(results[0.5] > results[0.0] + 1e-3)


def test_batch_scaling_spans_the_batch(lsim) -> None:
    a = smooth_fields(3, 64, seed=3).permute(0, 2, 3, 1).numpy()
    b = smooth_fields(3, 64, seed=4).permute(0, 2, 3, 1).numpy()
    batched = lsim.distance(a, b)
    looped = np.concatenate([lsim.distance(a[i], b[i]) for i in range(3)])
    assert not np.allclose(batched, looped, atol=1e-5)  # the original couples the batch
    # when every pair spans the same value range, batch and loop scale alike
    for x in (a, b):
        x[:, 0, 0, 0], x[:, -1, -1, 0] = -5.0, 5.0
    np.testing.assert_allclose(
        lsim.distance(a, b),
        np.concatenate([lsim.distance(a[i], b[i]) for i in range(3)]),
        atol=1e-6,
    )


def test_distance_ignores_a_common_affine_map(lsim) -> None:
    a = smooth_fields(2, 64, seed=5).permute(0, 2, 3, 1).numpy()
    b = smooth_fields(2, 64, seed=6).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(lsim.distance(7 * a - 2, 7 * b - 2), lsim.distance(a, b), atol=1e-5)


def test_loss_form_matches_distance_for_one_pair_at_224(lsim) -> None:
    a, b = smooth_fields(1, 224, seed=7), smooth_fields(1, 224, seed=8)
    joint = LSiM(scaling="joint")
    expected = lsim.distance(a[0].permute(1, 2, 0), b[0].permute(1, 2, 0), interpolate_to=None)
    np.testing.assert_allclose(joint(a, b).detach().numpy(), expected, atol=1e-5)


def test_scalings_differ_as_documented() -> None:
    a = smooth_fields(2, 64, seed=9)
    b = 3 * a + 1  # same pattern, other magnitude
    separate, joint = LSiM(scaling="separate"), LSiM(scaling="joint")
    assert torch.all(separate(a, b) < 1e-3)  # each input scaled by itself: magnitude is lost
    assert torch.all(joint(a, b) > 0.05)
    # inputs whose joint range is already [0, 255] are left as they are by "joint"
    low, high = a.amin(dim=(2, 3), keepdim=True), a.amax(dim=(2, 3), keepdim=True)
    x = 255 * (a - low) / (high - low)
    y = 0.5 * x + 60
    torch.testing.assert_close(LSiM(scaling="none")(x, y), joint(x, y))


def test_small_inputs_are_refused_with_advice(lsim) -> None:
    with pytest.raises(ValueError, match="at least 64x64.*FieldDistance"):
        lsim(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="at least 44x44"):
        lsim.distance(np.zeros((32, 32, 1)), np.ones((32, 32, 1)), interpolate_to=None)
    with pytest.raises(ValueError, match="1- or 3-channel"):
        lsim(torch.zeros(1, 2, 64, 64), torch.zeros(1, 2, 64, 64))


# ---------------------------------------------------------------- metric properties


def test_loss_is_a_metric_on_smooth_fields(lsim) -> None:
    x, y, z = (smooth_fields(4, 64, seed=s) for s in (10, 11, 12))
    with torch.no_grad():
        dxy, dyx, dxx = lsim(x, y), lsim(y, x), lsim(x, x)
        dyz, dxz = lsim(y, z), lsim(x, z)
    assert torch.all(dxy > 0)
    torch.testing.assert_close(dxy, dyx, rtol=1e-5, atol=1e-6)
    assert torch.all(dxx == 0)
    assert torch.all(dxz <= dxy + dyz + 1e-6)  # triangle inequality on four triples


def test_distance_is_symmetric_and_zero_on_identical_inputs(lsim) -> None:
    a = smooth_fields(2, 96, seed=13).permute(0, 2, 3, 1).numpy()
    b = smooth_fields(2, 96, seed=14).permute(0, 2, 3, 1).numpy()
    dab, dba = lsim.distance(a, b), lsim.distance(b, a)
    assert np.all(dab > 0)
    np.testing.assert_allclose(dab, dba, atol=1e-6)
    assert np.all(lsim.distance(a, a) == 0)


def test_gradients_reach_inputs_not_weights_and_stay_finite_at_zero() -> None:
    lsim = build_loss("lsim")
    a = smooth_fields(2, 64, seed=15).requires_grad_(True)
    b = smooth_fields(2, 64, seed=16).requires_grad_(True)
    lsim(a, b).sum().backward()
    for x in (a, b):
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in lsim.parameters())
    c = smooth_fields(1, 64, seed=17).requires_grad_(True)
    lsim(c, c.detach().clone()).sum().backward()
    assert torch.isfinite(c.grad).all()


def test_training_with_lsim_does_not_change_it() -> None:
    lsim = LSiM()
    before = {k: v.clone() for k, v in lsim.state_dict().items()}
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    optimiser = torch.optim.SGD([*model.parameters(), *lsim.parameters()], lr=0.01)
    target = smooth_fields(2, 64, seed=18)
    start = model.weight.detach().clone()
    for _ in range(2):
        optimiser.zero_grad()
        lsim(model(target), target).mean().backward()
        optimiser.step()
    assert not torch.equal(model.weight, start)
    for key, value in lsim.state_dict().items():
        assert torch.equal(value, before[key]), key


# ---------------------------------------------------------------- fields below 64x64


def test_feature_masks_are_the_share_of_each_receptive_field_on_the_field(lsim) -> None:
    from coldflow.losses.lsim import feature_masks

    ones = torch.ones(1, 1, 64, 64)
    assert all(torch.equal(m, torch.ones_like(m)) for m in feature_masks(lsim.basenet, ones))
    x, y = smooth_fields(2, 64, seed=20), smooth_fields(2, 64, seed=21)
    torch.testing.assert_close(lsim(x, y, mask=ones.expand(2, -1, -1, -1)), lsim(x, y))
    # columns 0..31 padding: slice 1 (kernel 12, stride 4, padding 2) sees input columns
    # 4i - 2 .. 4i + 9 of which those inside the image count
    half = ones.clone()
    half[..., :32] = 0
    first = feature_masks(lsim.basenet, half)[0][0, 0, 7]  # one row: all rows are alike
    for i, value in enumerate(first.tolist()):
        cols = [c for c in range(4 * i - 2, 4 * i + 10) if 0 <= c < 64]
        assert value == pytest.approx(sum(c >= 32 for c in cols) / len(cols)), i


def test_reflect_padding_mirrors_again_where_the_field_is_narrower_than_the_padding():
    seen = []

    class Probe(torch.nn.Module):
        min_size = 20

        def forward(self, a, b):
            seen.append(a)
            return (a - b).abs().flatten(1).sum(dim=1)

    from coldflow.losses import FieldDistance

    a = torch.arange(24.0).view(1, 1, 4, 6)
    FieldDistance(Probe(), fit="pad", pad_mode="reflect")(a, torch.zeros_like(a))
    expected = np.pad(a[0, 0].numpy(), ((8, 8), (7, 7)), mode="reflect")
    np.testing.assert_array_equal(seen[-1][0, 0].numpy(), expected)
    with pytest.raises(ValueError, match="pad_mode 'masked' needs a distance"):
        FieldDistance(Probe(), fit="pad", pad_mode="masked")


def test_lsim_resizes_small_fields_unless_a_run_names_its_padding() -> None:
    from coldflow.config.training import DEFAULT_LOSS_FIT, FieldLossConfig
    from coldflow.losses import build_field_loss
    from coldflow.metrics import metric_functions

    assert LSiM.fit == DEFAULT_LOSS_FIT["lsim"] == "resize"  # one choice, loss and metric
    assert build_field_loss("lsim", pretrained=False).fit == "resize"
    assert metric_functions(["lsim"], "staggered")["lsim"].fit == "resize"
    assert build_field_loss("mse").fit == "pad"
    assert FieldLossConfig(name="lsim").fit == "resize"
    assert FieldLossConfig(name="mse").fit == "pad"
    # run directories store the resolved config: a run trained with padding keeps it
    old = FieldLossConfig(name="lsim", fit="pad", pad_mode="edge", faces="keep", options={})
    assert (old.fit, old.pad_mode) == ("pad", "edge")
    assert FieldLossConfig.model_validate(old.model_dump()) == old


def _wall_over_interior(fn, field: torch.Tensor, factor: int) -> torch.Tensor:
    """Distance of a perturbation on the 4 fine columns next to each side wall over that
    of the same perturbation on two interior strips of 4 columns (same energy)."""
    from coldflow.physics import downsample_velocity

    H, W = field.shape[-2] - 1, field.shape[-1] - 1
    y = torch.arange(H + 1.0)[:, None] / H
    out = []
    for cols in ([0, 1, 2, 3, W - 4, W - 3, W - 2, W - 1], [14, 15, 16, 17, 46, 47, 48, 49]):
        p = torch.zeros_like(field)
        p[:, 0][..., cols] = 0.1 * torch.sin(2 * np.pi * 4 * y).expand(-1, len(cols))
        a, b = (downsample_velocity(x, factor) for x in (field, field + p))
        with torch.no_grad():
            out.append(fn(a, b))
    return out[0] / out[1]


def test_edge_padding_over_counts_the_walls_and_resizing_agrees_with_the_unpadded_metric(
    lsim,
) -> None:
    from coldflow.losses import FieldDistance

    s = smooth_fields(1, 129, channels=2, seed=3)
    field = torch.zeros(1, 2, 129, 65)  # a staggered 128x64 field, needs no enlarging
    field[:, 0, :, :64] = 1 + 0.5 * s[:, 0, :, :64]
    field[:, 1, :128, :] = 0.5 * s[:, 1, :128, :65]
    joint = LSiM(scaling="joint")

    def ratio(**fit):
        return _wall_over_interior(FieldDistance(joint, "staggered", **fit), field, 2)

    native = _wall_over_interior(FieldDistance(joint, "staggered", fit="none"), field, 1)
    edge, resize = ratio(fit="pad", pad_mode="edge"), ratio()  # default: resize
    assert torch.all(edge > 5 * native)  # each wall column 17 times in the 64x64 input
    assert torch.all((resize / native - 1).abs() < 0.3)
