from __future__ import annotations

import pytest
import torch

from coldflow.metrics.image import rmse, ssim


def test_rmse_known_answer():
    a = torch.zeros(2, 1, 4, 4)
    b = torch.cat([torch.full((1, 1, 4, 4), 0.5), torch.zeros(1, 1, 4, 4)])
    assert rmse(a, b).tolist() == [0.5, 0.0]


def test_ssim_identity_symmetry_and_monotonicity():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64))
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    z = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    assert torch.allclose(ssim(x, y), ssim(y, x))
    assert torch.all(ssim(x, z) < ssim(x, y))
    assert torch.all(ssim(x, y) < 1)


def test_ssim_of_constant_images_is_the_luminance_term():
    c1, c2 = 0.2, 0.6
    a = torch.full((1, 1, 16, 16), c1)
    b = torch.full((1, 1, 16, 16), c2)
    C1 = (0.01 * 1.0) ** 2
    expected = (2 * c1 * c2 + C1) / (c1**2 + c2**2 + C1)  # contrast/structure terms are 1
    assert ssim(a, b).item() == pytest.approx(expected, rel=1e-6)


def test_ssim_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="ssim"):
        ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9))
