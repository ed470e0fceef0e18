"""Property-based tests: config overrides never crash, pixel metrics keep their contracts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from coldflow.config import ConfigError, load_config  # noqa: E402
from coldflow.metrics import FIELD_METRICS  # noqa: E402
from coldflow.tasks.diffusion.config import DiffusionRunConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "mnist" / "quick.yaml"

KEYS = [
    "name",
    "seed",
    "data.train_subset",
    "data.range",
    "degradation.n_T",
    "degradation.beta1",
    "model.hidden",
    "method.kind",
    "training.epochs",
    "training.batch_size",
    "training.optimizer.lr",
    "training.ema",
    "training.grad_clip",
    "training.device",
    "training.progress",
    "sampling.sampler",
    "sampling.snapshot_timesteps",
    "evaluation.interval",
    "evaluation.fid.n_samples",
    "evaluation.fid.eta",
]

values = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"-?[0-9]{1,6}(\.[0-9]{0,3})?(e-?[0-9])?", fullmatch=True),
    st.sampled_from(["", "null", "true", "[]", "[1, 2]", "{a: 1}", "nan", "inf", "-1", "1e999"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(KEYS), value=values)
def test_any_override_value_gives_a_config_or_a_config_error_naming_the_key(key, value):
    try:
        cfg = load_config(QUICK, DiffusionRunConfig, [f"{key}={value}"])
    except ConfigError as e:
        assert key in str(e) or key.split(".")[-1] in str(e), (key, value, str(e))
        return
    assert isinstance(cfg, DiffusionRunConfig)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 4),
    c=st.integers(1, 3),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_pixel_metrics_give_one_finite_value_per_sample(n, c, h, w, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
    b = torch.randn(n, c, h, w, generator=gen, dtype=dtype) + 0.1
    for name in ("mse", "rel_l1", "psnr"):
        metric = FIELD_METRICS[name]()
        out = metric(a, b)
        assert out.shape == (n,), (name, out.shape)
        assert out.dtype.is_floating_point
        if name != "psnr" or c * h * w > 1:  # one value: the peak (range of b) is 0
            assert torch.isfinite(out).all(), name
    mse, rel = FIELD_METRICS["mse"](), FIELD_METRICS["rel_l1"]()
    assert (mse(a, b) >= 0).all() and (rel(a, b) >= 0).all()
    assert torch.allclose(mse(a, b), mse(b, a))  # symmetric
    assert (mse(b, b) == 0).all() and (rel(b, b) == 0).all()
    assert torch.isinf(FIELD_METRICS["psnr"]()(b, b)).all() or c * h * w == 1


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(2, 8), w=st.integers(2, 8), seed=st.integers(0, 999))
def test_pixel_metrics_are_per_sample(n, h, w, seed):
    """A sample's value does not depend on the other samples of the batch."""
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, n, 1, h, w, generator=gen, dtype=torch.float64)
    for name in ("mse", "rel_l1", "psnr"):
        metric = FIELD_METRICS[name]()
        whole = metric(a, b)
        alone = torch.cat([metric(a[i : i + 1], b[i : i + 1]) for i in range(n)])
        assert torch.allclose(whole, alone, equal_nan=True), name
        if name == "psnr":
            peak = (b.amax((1, 2, 3)) - b.amin((1, 2, 3))) ** 2
            expect = 10 * torch.log10(peak / ((a - b) ** 2).mean((1, 2, 3)))
            assert torch.allclose(whole, expect.to(whole.dtype)) or not math.isfinite(
                float(whole.sum())
            )
