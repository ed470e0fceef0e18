"""The field-metric spec (one entry per metric, the default lists) and the one scorer."""

from __future__ import annotations

import math

import pytest
import torch

from coldflow import hub
from coldflow.config import metric_defaults
from coldflow.config.study import StudyPipeline
from coldflow.metrics import (
    DEFAULT_FIELD_METRICS,
    FIELD_METRIC_SPECS,
    FIELD_METRICS,
    METRIC_COLUMNS,
    UnknownMetricError,
    metric_functions,
    metric_spec,
    metric_specs,
    psnr,
    relative_l1,
    score_fields,
)
from coldflow.tasks.sol.config import SolEvaluationConfig


def _pair(n: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A reference ``[n, 2, 8, 8]`` and a prediction: the reference plus noise."""
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(n, 2, 8, 8, generator=g)
    return ref + 0.3 * torch.randn(n, 2, 8, 8, generator=g), ref


def test_every_metric_has_a_spec_with_a_label_and_known_weights() -> None:
    assert set(FIELD_METRIC_SPECS) == set(FIELD_METRICS)
    labels = [spec.label for spec in FIELD_METRIC_SPECS.values()]
    assert all(labels) and len(set(labels)) == len(labels)
    assert list(METRIC_COLUMNS.values()) == labels and METRIC_COLUMNS["rel_l1"] == "rel. L1"
    for name, spec in FIELD_METRIC_SPECS.items():
        assert spec.name == name and spec.description
        assert all(w in hub.RESOURCES for w in spec.weights), (name, spec.weights)


def test_a_metric_needs_exactly_the_weights_its_spec_names(tmp_path, monkeypatch) -> None:
    for var in ("COLDFLOW_WEIGHTS", "COLDFLOW_DATA", "COLDFLOW_CACHE"):
        monkeypatch.setenv(var, str(tmp_path))  # an empty directory: no weights anywhere
    monkeypatch.setenv("COLDFLOW_OFFLINE", "1")
    for name, spec in FIELD_METRIC_SPECS.items():
        if not spec.weights:
            spec.build()  # builds without any file
            continue
        with pytest.raises(hub.HubError) as missing:
            spec.build()
        assert any(hub.RESOURCES[w].filename in str(missing.value) for w in spec.weights), name


def test_default_lists_name_known_metrics_and_are_the_config_defaults() -> None:
    for name in metric_defaults.__all__:
        assert metric_specs(getattr(metric_defaults, name))  # every name has a spec
    assert DEFAULT_FIELD_METRICS == ("mse", "rel_l1", "lsim", "vort_l1", "div", "ssim", "lse_top")
    assert SolEvaluationConfig().metrics == list(DEFAULT_FIELD_METRICS)
    assert StudyPipeline(name="p", sol=["a"]).metrics == list(DEFAULT_FIELD_METRICS)


def test_higher_is_better_for_psnr_and_lower_for_mse_on_a_known_pair() -> None:
    pred, ref = _pair()
    worse = ref + 2 * (pred - ref)  # twice the error of pred
    scored = {}
    for name in ("mse", "psnr"):
        metric = FIELD_METRICS[name]()
        scored[name] = (float(metric(pred, ref).mean()), float(metric(worse, ref).mean()))
    assert scored["mse"][0] < scored["mse"][1] and scored["psnr"][0] > scored["psnr"][1]
    for name, (good, bad) in scored.items():
        assert metric_spec(name).better(good, bad) and not metric_spec(name).better(bad, good)
    assert metric_spec("psnr").higher_is_better and not metric_spec("mse").higher_is_better
    # doubling the error: MSE x 4, PSNR - 10 log10(4) dB
    assert scored["mse"][1] == pytest.approx(4 * scored["mse"][0], rel=1e-5)
    assert scored["psnr"][0] - scored["psnr"][1] == pytest.approx(10 * math.log10(4), rel=1e-4)


def test_the_scorer_gives_each_metrics_own_numbers_per_sample() -> None:
    pred, ref = _pair(7)
    names = ["mse", "mae", "rel_l1", "psnr"]
    scores = score_fields(metric_functions(names), pred, ref, batch_size=3)
    assert list(scores) == names
    direct = {
        "mse": (pred - ref).square().flatten(1).mean(1),
        "mae": (pred - ref).abs().flatten(1).mean(1),
        "rel_l1": relative_l1(pred, ref),
        "psnr": psnr(pred, ref),
    }
    for name in names:
        assert scores[name].dtype == torch.float64 and scores[name].shape == (7,)
        torch.testing.assert_close(scores[name], direct[name].double(), rtol=1e-6, atol=0)
        # and each spec's own build, called on the whole stack at once
        torch.testing.assert_close(scores[name], FIELD_METRICS[name]()(pred, ref).double())


def test_the_scorer_on_a_staggered_grid_skips_the_padding() -> None:
    pred, ref = torch.zeros(2, 2, 5, 5), torch.zeros(2, 2, 5, 5)
    pred[:, 0, :, :4] = 1.0  # every y face; the padding column stays 0
    pred[:, 1, :4, :] = 1.0  # every x face
    scores = score_fields(metric_functions(["mse"], "staggered"), pred, ref)
    assert scores["mse"].tolist() == [1.0, 1.0]


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(UnknownMetricError, match=r"unknown metrics \['ms_ssim'\]; known: mse, mae"):
        metric_spec("ms_ssim")
    with pytest.raises(ValueError, match=r"unknown metrics \['ms_ssim', 'fid'\]"):
        metric_functions(["mse", "ms_ssim", "fid"])
    with pytest.raises(ValueError, match="no field metrics given"):
        metric_functions([])


def test_the_scorer_refuses_fields_of_different_shapes() -> None:
    with pytest.raises(ValueError, match=r"differ in shape: \(2, 1, 4, 4\) and \(2, 1, 4, 5\)"):
        score_fields(metric_functions(["mse"]), torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))
