"""Improved precision and recall (k-NN manifolds) on known configurations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coldflow.metrics.precision_recall import precision_recall


def test_a_set_against_itself_has_precision_and_recall_one() -> None:
    x = np.random.default_rng(0).normal(size=(300, 16))
    assert precision_recall(x, x) == (1.0, 1.0)
    assert precision_recall(torch.from_numpy(x).float(), torch.from_numpy(x).float()) == (1.0, 1.0)


def test_two_far_apart_clusters_have_precision_and_recall_zero() -> None:
    rng = np.random.default_rng(1)
    real = rng.normal(size=(200, 8))
    fake = rng.normal(size=(200, 8)) + 100.0
    assert precision_recall(real, fake) == (0.0, 0.0)


def test_a_collapsed_generator_is_precise_but_does_not_recall() -> None:
    # the real set: two clusters; the fake set covers one of them only (a missing mode)
    rng = np.random.default_rng(2)
    real = np.concatenate([rng.normal(size=(500, 4)), rng.normal(size=(500, 4)) + 20.0])
    fake = rng.normal(size=(1000, 4))
    precision, recall = precision_recall(real, fake, k=3)
    assert precision > 0.9
    assert 0.4 < recall < 0.6  # about half of the real points: those of the covered cluster


def test_precision_recall_is_the_count_of_points_inside_the_knn_balls() -> None:
    # 1-D: real {0, 1, 2, 3}, k=1 -> every real radius is 1; fake {0.5, 10, 11, 12}:
    # only 0.5 lies in a real ball (precision 1/4); fake radii are 1, 1, 1 and
    # 9.5 (0.5 to 10), so the 9.5-ball around 0.5 holds every real point (recall 1).
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[0.5], [10.0], [11.0], [12.0]])
    assert precision_recall(real, fake, k=1) == (0.25, 1.0)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="same extractor"):
        precision_recall(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(ValueError, match="more than 3"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))
    with pytest.raises(ValueError, match=r"\[N > 0, D\]"):
        precision_recall(np.zeros(10), np.zeros((10, 1)))


@pytest.mark.slow  # reads MNIST and runs the classifier: several seconds on a busy CPU
def test_a_diffusion_evaluation_reports_precision_and_recall_beside_fid(tmp_path, monkeypatch):
    """Real test digits scored as if sampled: the FID of the one feature pass, and
    precision and recall 1 against the same digits."""
    from types import SimpleNamespace

    from coldflow import hub

    if hub.locate("mnist-test-images") is None:
        pytest.skip("MNIST not found (set COLDFLOW_DATA)")
    from coldflow.data.mnist import mnist_dataset
    from coldflow.metrics.features import build_feature_extractor
    from coldflow.metrics.fid import features_cache_path, fid_from_images, mnist_real_statistics
    from coldflow.tasks.diffusion import scoring
    from coldflow.tasks.diffusion.scoring import fid_of_samples, sample_scores

    monkeypatch.setenv("COLDFLOW_CACHE", str(tmp_path))
    monkeypatch.setattr(scoring, "TEST_DIGITS", 500)  # the test set's first 500 (fast)
    cfg = SimpleNamespace(
        evaluation=SimpleNamespace(fid=SimpleNamespace(extractor="mnist_classifier")),
        data=SimpleNamespace(range=[-0.5, 0.5]),
    )
    digits = mnist_dataset("test", value_range=(-0.5, 0.5), subset=200).tensors[0]
    scores = sample_scores(digits, cfg, torch.device("cpu"))
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0
    extractor = build_feature_extractor("mnist_classifier")
    real = mnist_real_statistics(extractor, "test", n=500)
    assert scores["fid"] == fid_from_images(digits, real, extractor, (-0.5, 0.5))
    assert features_cache_path(extractor, "mnist", "test", 200).is_file()
    assert fid_of_samples(digits, cfg, torch.device("cpu")) == scores["fid"]
    assert set(sample_scores(digits[:3], cfg, torch.device("cpu"))) == {"fid"}  # 3 <= k
