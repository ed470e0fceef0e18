from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from coldflow.degradations.blur import (
    GaussianBlur,
    blur,
    blur_by_convolution,
    blur_matrix,
    blur_sigma_schedule,
    gaussian_kernel1d,
    noise_std_schedule,
)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """The first 256 MNIST test digits in [0, 1], float64, [256, 1, 28, 28]."""
    from coldflow import hub
    from coldflow.data import mnist_dataset

    if hub.locate("mnist-test-images") is None:
        pytest.skip("MNIST test images not found (set COLDFLOW_DATA)")
    return mnist_dataset("test", (0.0, 1.0), subset=256).tensors[0].double()


def relative_mean_change(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per image: (mean(y) - mean(x)) / mean(x)."""
    before = x.mean(dim=(1, 2, 3))
    return (y.mean(dim=(1, 2, 3)) - before) / before


# ------------------------------------------------------------------------------ schedules


def test_linear_schedule_values():
    s = blur_sigma_schedule(500, 0.02, 0.01, "linear")
    assert s.shape == (501,)
    assert s[0].item() == pytest.approx(0.02, abs=1e-12)
    assert s[1].item() == pytest.approx(0.03, abs=1e-12)
    assert s[250].item() == pytest.approx(2.52, abs=1e-12)
    assert s[500].item() == pytest.approx(5.02, abs=1e-12)


@pytest.mark.parametrize("schedule", ["linear", "exponential", "cosine"])
def test_schedules_share_endpoints_and_increase(schedule):
    s = blur_sigma_schedule(500, 0.02, 0.01, schedule)
    assert s[0].item() == pytest.approx(0.02, rel=1e-12)
    assert s[-1].item() == pytest.approx(5.02, rel=1e-12)
    assert torch.all(s[1:] > s[:-1])


def test_exponential_has_a_constant_ratio_and_cosine_a_slow_start():
    exp = blur_sigma_schedule(100, 0.1, 0.05, "exponential")
    ratio = exp[1:] / exp[:-1]
    assert torch.allclose(ratio, torch.full_like(ratio, (5.1 / 0.1) ** (1 / 100)), rtol=1e-12)
    lin = blur_sigma_schedule(100, 0.1, 0.05, "linear")
    cos = blur_sigma_schedule(100, 0.1, 0.05, "cosine")
    # 1 - cos(pi/200) ~ 1.2e-4 of the range in the first step, vs 1e-2 for linear
    assert (cos[1] - cos[0]).item() == pytest.approx(5.0 * (1 - math.cos(math.pi / 200)))
    assert torch.all(cos[1:-1] < lin[1:-1])
    # the midpoint in u of the cosine schedule is cos(pi/4) away from the end
    assert cos[50].item() == pytest.approx(0.1 + 5.0 * (1 - math.cos(math.pi / 4)))


def test_schedule_errors():
    with pytest.raises(ValueError, match="sigma_base > 0"):
        blur_sigma_schedule(10, 0.0, 0.1, "exponential")
    with pytest.raises(ValueError, match="unknown blur schedule"):
        blur_sigma_schedule(10, 0.1, 0.1, "quadratic")
    with pytest.raises(ValueError, match="sigma_scale > 0"):
        blur_sigma_schedule(10, 0.1, 0.0)


def test_noise_std_schedule_is_linear():
    s = noise_std_schedule(200, 0.1, 0.5)
    assert s[0].item() == pytest.approx(0.1)
    assert s[100].item() == pytest.approx(0.3)
    assert s[200].item() == pytest.approx(0.5)
    assert torch.all(noise_std_schedule(10) == 0)


# --------------------------------------------------------------------------------- kernel


def test_kernel_is_normalised_symmetric_and_peaked():
    sigma = torch.tensor([0.3, 1.0, 2.5, 5.02, 50.0], dtype=torch.float64)
    k = gaussian_kernel1d(sigma, 29)
    assert k.shape == (5, 29)
    assert torch.allclose(k.sum(dim=1), torch.ones(5, dtype=torch.float64), atol=1e-15)
    assert torch.equal(k, k.flip(1))
    assert torch.all(k.argmax(dim=1) == 14)
    # wider sigma: flatter kernel
    assert torch.all(k[1:, 14] < k[:-1, 14])


def test_kernel_known_values():
    k = gaussian_kernel1d(torch.tensor([1.0], dtype=torch.float64), 3)[0]
    e = math.exp(-0.5)
    expected = torch.tensor([e, 1.0, e], dtype=torch.float64) / (1 + 2 * e)
    assert torch.allclose(k, expected, atol=1e-15)


def test_kernel_of_tiny_sigma_is_a_delta_without_nan():
    k = gaussian_kernel1d(torch.tensor([0.0, 1e-9, 1e-3, 0.02]), 29)
    assert not torch.isnan(k).any()
    delta = torch.zeros(29)
    delta[14] = 1.0
    assert all(torch.equal(row, delta) for row in k)


def test_kernel_size_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        gaussian_kernel1d(torch.tensor([1.0]), 4)


# ----------------------------------------------------------------------------------- blur


def test_blur_known_answer_in_1d():
    # x = [1, 0, 0, 0], kernel [a, b, a]; reflect pads x_1 before x_0
    x = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64).view(1, 1, 1, 4)
    y = blur(x, 1.0, kernel_size=(1, 3)).flatten()
    e = math.exp(-0.5)
    a, b = e / (1 + 2 * e), 1 / (1 + 2 * e)
    assert torch.allclose(y, torch.tensor([b, a, 0.0, 0.0], dtype=torch.float64), atol=1e-15)


@pytest.mark.parametrize("sigma", [0.0, 1e-8, 0.02])
def test_vanishing_sigma_is_the_identity(digits, sigma):
    x = digits[:16].float() - 0.5
    assert torch.equal(blur(x, sigma), x)


def test_constant_image_stays_constant():
    x = torch.full((3, 2, 28, 20), 0.37, dtype=torch.float64)
    sigma = torch.tensor([0.5, 2.0, 5.02], dtype=torch.float64)
    for padding in ("reflect", "replicate", "circular"):
        assert torch.allclose(blur(x, sigma, padding=padding), x, atol=1e-15)


def test_whole_image_kernel_is_derived_from_the_input():
    # 29 x 29 for 28 x 28: blurring with None equals blurring with 29 explicitly
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([1.0, 3.0, 5.02, 9.0])
    assert torch.equal(blur(x, sigma), blur(x, sigma, kernel_size=29))
    with pytest.raises(ValueError, match="too large for reflect"):
        blur(x, sigma, kernel_size=57)


def dense_reference(x: torch.Tensor, sigma: torch.Tensor, k: int) -> torch.Tensor:
    """A full k x k outer-product kernel per image, 2-D reflect padding, one grouped conv2d."""
    b, c, h, w = x.shape
    k1 = gaussian_kernel1d(sigma.to(x.dtype), k)
    k2 = (k1[:, :, None] * k1[:, None, :]).repeat_interleave(c, dim=0)
    padded = F.pad(x.reshape(1, b * c, h, w), (k // 2,) * 4, mode="reflect")
    return F.conv2d(padded, k2[:, None], groups=b * c).reshape(b, c, h, w)


def test_separable_equals_dense_2d_convolution(digits):
    gen = torch.Generator().manual_seed(1)
    x = digits[:32].repeat(1, 2, 1, 1)  # two channels
    x[:, 1] = torch.rand(x[:, 1].shape, generator=gen, dtype=torch.float64)
    sigma = torch.rand(32, generator=gen, dtype=torch.float64) * 6
    for k in (29, 11):
        expected = dense_reference(x, sigma, k)
        assert torch.allclose(blur(x, sigma, k), expected, atol=1e-13)
    assert torch.allclose(
        blur(x.float(), sigma, 29), dense_reference(x, sigma, 29).float(), atol=1e-6
    )


def test_batched_blur_equals_blurring_each_image_alone(digits):
    x = digits[:24]
    sigma = torch.linspace(0, 6, 24, dtype=torch.float64)
    batched = blur(x, sigma)
    for i in range(24):
        assert torch.allclose(batched[i : i + 1], blur(x[i : i + 1], sigma[i : i + 1]), atol=1e-14)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return x.diff(dim=-1).abs().sum(dim=(1, 2, 3)) + x.diff(dim=-2).abs().sum(dim=(1, 2, 3))


def high_frequency_energy(x: torch.Tensor) -> torch.Tensor:
    """Spectral energy at |frequency| > 1/4 cycle per pixel (of 1/2 possible).

    Taken over the mirror extension that reflect padding implies (period 2N - 2 per axis),
    so the image borders add no artificial jump and the blur is a pure spectral filter.
    """
    x = torch.cat([x, x.flip(-1)[..., 1:-1]], dim=-1)
    x = torch.cat([x, x.flip(-2)[..., 1:-1, :]], dim=-2)
    spectrum = torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs() ** 2
    fy = torch.fft.fftfreq(x.shape[-2], dtype=x.dtype).abs()
    fx = torch.fft.fftfreq(x.shape[-1], dtype=x.dtype).abs()
    high = (fy[:, None] > 0.25) | (fx[None, :] > 0.25)
    return (spectrum * high).sum(dim=(1, 2, 3))


def test_more_blur_lowers_total_variation_and_high_frequencies(digits):
    x = digits[:64]
    results = [x] + [blur(x, s) for s in (0.5, 1.0, 2.0, 5.02)]
    tv = torch.stack([total_variation(r) for r in results])
    hf = torch.stack([high_frequency_energy(r) for r in results])
    assert torch.all(tv[1:] < tv[:-1])
    assert torch.all(hf[1:] < hf[:-1])
    assert torch.all(hf[-1] < 1e-3 * hf[0])  # sigma 5 leaves almost no fine detail


# ------------------------------------------------------------------------ mean preservation


@pytest.mark.parametrize("n", [5, 8, 28])
def test_reflect_changes_the_sum_by_half_the_edge_change(n):
    # the identity of the module docstring, for every kernel reflect padding allows
    x = torch.randn(50, 1, 1, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    sigma = torch.rand(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 6
    for k in range(1, 2 * n, 2):
        y = blur(x, sigma, (1, k))
        change = y.sum(-1) - x.sum(-1)
        edges = ((y[..., 0] - x[..., 0]) + (y[..., -1] - x[..., -1])) / 2
        assert torch.allclose(change, edges, atol=1e-12)


def test_mean_is_kept_for_content_away_from_the_border(digits):
    canvas = torch.zeros(256, 1, 64, 64, dtype=torch.float64)
    canvas[:, :, 18:46, 18:46] = digits
    for sigma, bound in ((1.0, 1e-14), (2.0, 1e-14), (3.0, 1e-9), (5.02, 2e-5)):
        change = relative_mean_change(blur(canvas, sigma), canvas).abs().max().item()
        assert change < bound, (sigma, change)
    circular = relative_mean_change(blur(digits, 5.02, padding="circular"), digits)
    assert circular.abs().max().item() < 1e-14


def test_mean_change_for_content_touching_the_border(digits):
    # measured values, stated in the blur module docstring
    as_is = relative_mean_change(blur(digits, 5.02), digits).abs()
    assert 0.03 < as_is.median().item() < 0.04
    assert as_is.max().item() < 0.055
    first_ink = [int((im[0].sum(0) > 0).nonzero().min()) for im in digits]
    touching = torch.stack([im.roll(-f, dims=2) for im, f in zip(digits, first_ink, strict=True)])
    assert torch.all(touching[:, :, :, 0].sum(dim=(1, 2)) > 0)
    for sigma, lo, hi in ((2.0, 0.12, 0.13), (5.02, 0.09, 0.095)):
        change = relative_mean_change(blur(touching, sigma), touching).abs().max().item()
        assert lo < change < hi, (sigma, change)


# ---------------------------------------------------------------------------- GaussianBlur


def test_degrade_uses_sigma_t_per_image(digits):
    deg = GaussianBlur()
    t = torch.tensor([1, 7, 100, 250, 500])
    x = digits[:5]
    expected = blur(x, torch.tensor([0.03, 0.09, 1.02, 2.52, 5.02], dtype=torch.float64))
    assert torch.allclose(deg.degrade(x, t), expected, atol=1e-14)
    assert torch.allclose(deg.sigma(t), torch.tensor([0.03, 0.09, 1.02, 2.52, 5.02]).double())
    # one int for the whole batch
    assert torch.equal(deg.degrade(x, 250), deg.degrade(x, torch.full((5,), 250)))


def test_t_zero_is_the_clean_image(digits):
    x = digits[:4].float() - 0.5
    assert torch.equal(GaussianBlur().degrade(x, 0), x)
    hybrid = GaussianBlur(sigma_base=1.0, noise_start=0.3, noise_end=0.5)
    t = torch.tensor([0, 3, 0, 500])
    out = hybrid.degrade(x, t)
    assert torch.equal(out[0], x[0]) and torch.equal(out[2], x[2])
    assert not torch.allclose(out[1], x[1])


def test_float32_and_float64_agree(digits):
    deg = GaussianBlur(schedule="cosine")
    t = torch.arange(1, 501, 20)
    x = digits[: len(t)]
    y64, y32 = deg.degrade(x, t), deg.degrade(x.float(), t)
    assert y64.dtype == torch.float64 and y32.dtype == torch.float32
    assert torch.allclose(y32.double(), y64, atol=1e-6)


def test_hybrid_noise_has_the_scheduled_std(digits):
    deg = GaussianBlur(noise_start=0.05, noise_end=0.45)
    x = digits.float()
    t = torch.tensor([100, 250, 500]).repeat_interleave(len(x) // 3 + 1)[: len(x)]
    torch.manual_seed(0)
    residual = deg.degrade(x, t) - blur(x, deg.sigma(t))
    for step in (100, 250, 500):
        r = residual[t == step]
        expected = 0.05 + 0.4 * step / 500
        # ~67,000 samples each: the sample std is within 0.5 % with overwhelming probability
        assert r.std().item() == pytest.approx(expected, rel=0.01)
        assert abs(r.mean().item()) < 4 * expected / math.sqrt(r.numel())
    assert torch.allclose(deg.noise_std(t[:3]), torch.tensor([0.13] * 3).double())


def test_given_noise_is_used_exactly_and_pure_blur_ignores_it(digits):
    x, t = digits[:8], torch.arange(1, 9) * 60
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    hybrid = GaussianBlur(noise_start=0.1, noise_end=0.3)
    std = (0.1 + 0.2 * t / 500).double().view(-1, 1, 1, 1)
    assert torch.allclose(hybrid.degrade(x, t, noise=eps), blur(x, hybrid.sigma(t)) + std * eps)
    pure = GaussianBlur()
    assert torch.equal(pure.degrade(x, t, noise=eps), pure.degrade(x, t))


def test_gradients_flow_to_x0():
    deg = GaussianBlur(n_T=10, sigma_scale=0.3, noise_start=0.1, noise_end=0.2)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 6, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 4, 10])
    eps = torch.randn(3, 2, 6, 7, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: deg.degrade(z, t, noise=eps), (x,))
    # the blur is linear, y = M x: d <y, v> / dx = M^T v, equal to the dense reference's
    v = torch.randn(3, 2, 6, 7, generator=gen, dtype=torch.float64)
    sigma = torch.tensor([0.5, 1.5, 3.0], dtype=torch.float64)
    (grad,) = torch.autograd.grad((blur(x, sigma, 5) * v).sum(), x)
    (grad_ref,) = torch.autograd.grad((dense_reference(x, sigma, 5) * v).sum(), x)
    assert grad.abs().min() > 0
    assert torch.allclose(grad, grad_ref, atol=1e-14)


def test_interface_curves_describe_and_errors():
    deg = GaussianBlur(schedule="exponential")
    curves = deg.schedule_curves()
    assert list(curves) == ["sigma"]
    t, sigma = curves["sigma"]
    assert torch.equal(t, torch.arange(501))
    assert sigma[0].item() == pytest.approx(0.02) and sigma[-1].item() == pytest.approx(5.02)
    hybrid = GaussianBlur(noise_end=0.2)
    assert list(hybrid.schedule_curves()) == ["sigma", "noise_std"]
    assert hybrid.schedule_curves()["noise_std"][1][-1].item() == pytest.approx(0.2)
    text = hybrid.describe()
    assert "\n" not in text and "5.02" in text and "noise" in text
    assert deg.to("cpu") is deg
    with pytest.raises(ValueError, match="0..500"):
        deg.degrade(torch.zeros(2, 1, 8, 8), torch.tensor([1, 501]))
    # the matrix path (whole-image kernel) and the convolution path (short kernel, long axis)
    for blur_of, size in ((deg, 28), (GaussianBlur(kernel_size=3), 64)):
        for bad in (-1, 501):
            with pytest.raises(ValueError, match=rf"0..500, got {min(bad, 1)}..{max(bad, 1)}"):
                blur_of.degrade(torch.zeros(2, 1, size, size), torch.tensor([1, bad]))
    with pytest.raises(ValueError, match="odd"):
        GaussianBlur(kernel_size=4)
    with pytest.raises(ValueError, match="padding"):
        GaussianBlur(padding="mirror")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    deg = GaussianBlur(noise_start=0.1, noise_end=0.2).to("cuda")
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    t = torch.arange(16) * 31 + 1
    eps = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    gpu = deg.degrade(x.cuda(), t.cuda(), noise=eps.cuda())
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), deg.degrade(x, t, noise=eps), atol=1e-6)


# ------------------------------------------------- matmul form against the convolution form


def mixed_batch(b: int, c: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=gen) - 0.5
    t = torch.randint(0, 501, (b,), generator=gen)
    t[:3] = torch.tensor([0, 1, 500])[:b]
    return x, t


@pytest.mark.parametrize("shape", [(28, 28), (64, 64), (128, 128), (28, 45), (37, 16)])
def test_matmul_blur_equals_the_convolution_at_mixed_t(shape):
    x, t = mixed_batch(128 if shape[0] < 128 else 32, 1, *shape, seed=sum(shape))
    deg = GaussianBlur()
    sigma = deg.sigma(t).float().masked_fill(t == 0, 0.0)
    reference = blur_by_convolution(x, sigma)
    assert torch.allclose(blur(x, sigma), reference, atol=1e-6, rtol=0)
    assert torch.allclose(deg.degrade(x, t), reference, atol=1e-6, rtol=0)
    assert torch.equal(deg.degrade(x, t)[t == 0], x[t == 0])


@pytest.mark.parametrize("padding", ["reflect", "replicate", "circular", "zeros"])
@pytest.mark.parametrize("kernel_size", [None, 5, (3, 9)])
def test_matmul_blur_equals_the_convolution_for_every_padding(padding, kernel_size):
    x, _ = mixed_batch(6, 3, 11, 14, seed=7)
    x = x.double()
    sigma = torch.tensor([0.0, 0.4, 1.0, 2.5, 5.0, 30.0], dtype=torch.float64)
    expected = blur_by_convolution(x, sigma, kernel_size, padding)
    assert torch.allclose(blur(x, sigma, kernel_size, padding), expected, atol=1e-13)
    if isinstance(kernel_size, tuple):
        return  # GaussianBlur takes one kernel size for both axes
    deg = GaussianBlur(n_T=20, sigma_scale=0.3, kernel_size=kernel_size, padding=padding)
    t = torch.tensor([0, 1, 5, 10, 17, 20])
    reference = blur_by_convolution(x, deg.sigma(t).masked_fill(t == 0, 0.0), kernel_size, padding)
    assert torch.allclose(deg.degrade(x, t), reference, atol=1e-13)


def test_blur_matrix_folds_reflect_padding_and_rows_sum_to_one():
    m = blur_matrix(torch.tensor([1.0], dtype=torch.float64), 4, 3)[0]
    e = math.exp(-0.5)
    a, b = e / (1 + 2 * e), 1 / (1 + 2 * e)
    # reflect pads x_1 before x_0: the first row reads x_1 twice
    expected = torch.tensor(
        [[b, 2 * a, 0, 0], [a, b, a, 0], [0, a, b, a], [0, 0, 2 * a, b]], dtype=torch.float64
    )
    assert torch.allclose(m, expected, atol=1e-15)
    wide = blur_matrix(torch.rand(5, dtype=torch.float64) * 9, 28)
    assert torch.allclose(wide.sum(-1), torch.ones(5, 28, dtype=torch.float64), atol=1e-14)


def test_long_axes_with_short_kernels_use_the_convolution_and_agree():
    x, _ = mixed_batch(2, 1, 96, 200, seed=3)
    sigma = torch.tensor([0.7, 2.0])
    # 200 px > 4 x 11: convolution along the width, the same numbers either way
    expected = dense_reference(x.double(), sigma.double(), 11).float()
    assert torch.allclose(blur(x, sigma, 11), expected, atol=1e-6)
    assert torch.allclose(blur(x, sigma), blur_by_convolution(x, sigma), atol=1e-6)


def test_degrade_checks_the_shape_of_t():
    with pytest.raises(ValueError, match="one per image"):
        GaussianBlur().degrade(torch.zeros(3, 1, 8, 8), torch.tensor([1, 2]))
