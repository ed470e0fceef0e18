"""Real-digit baselines of generated MNIST digits: nearest training digit and FID floor."""

from __future__ import annotations

import pytest
import torch

from coldflow.data.mnist import load_mnist, to_range
from coldflow.metrics.baselines import memorisation, nearest_rms, real_fid_floor
from coldflow.metrics.features import build_feature_extractor
from coldflow.metrics.fid import fid_from_images, mnist_real_statistics


def test_nearest_rms_finds_the_perturbed_reference_and_its_exact_distance():
    gen = torch.Generator().manual_seed(0)
    refs = torch.rand(500, 1, 28, 28, generator=gen)
    pick = torch.tensor([7, 123, 499, 0, 250])
    noise = 0.01 * torch.randn(5, 1, 28, 28, generator=gen)
    dist, idx = nearest_rms(refs[pick] + noise, refs, chunk=2)  # chunks smaller than N
    assert idx.tolist() == pick.tolist()
    exact = noise.double().flatten(1).pow(2).mean(1).sqrt()
    assert torch.allclose(dist, exact, rtol=1e-6, atol=1e-9)
    copy, at = nearest_rms(refs[[42]], refs)
    assert at.item() == 42 and copy.item() == 0.0  # a copy reads exactly 0
    with pytest.raises(ValueError, match="784"):
        nearest_rms(refs, refs[:, :, :14])


def test_copies_of_training_digits_are_caught_and_unseen_digits_are_not():
    train = load_mnist("train")[0]
    copies = to_range(train[:200], (-0.5, 0.5))
    summary, neighbours = memorisation(copies, (-0.5, 0.5), train_digits=20000, n_test=500)
    assert summary["near_copies"] == 1.0  # float32 range mapping: distances of ~1e-9
    assert summary["median_sample_to_train"] == pytest.approx(0.0, abs=1e-6)
    assert summary["ratio"] == pytest.approx(0.0, abs=1e-5)
    assert torch.allclose(neighbours, copies, atol=1e-6)
    assert summary["training_digits"] == 20000 and summary["test_digits"] == 500
    # held-out test digits the check did not use as its reference: a ratio near 1
    unseen = to_range(load_mnist("test")[0][5000:5500], (0.0, 1.0))
    summary, _ = memorisation(unseen, (0.0, 1.0), train_digits=20000, n_test=500)
    assert 0.85 < summary["ratio"] < 1.15, summary
    assert summary["near_copies"] < 0.05, summary  # 1 % by construction, up to sampling


def test_fid_floor_is_what_real_digits_score_at_that_count():
    extractor = build_feature_extractor("mnist_classifier")
    floor = real_fid_floor(extractor, 500)
    # the same number through the path a model's samples take
    images = to_range(load_mnist("train")[0][:500], (-0.5, 0.5))
    real = mnist_real_statistics(extractor, "test", n=10000)
    assert fid_from_images(images, real, extractor, (-0.5, 0.5)) == pytest.approx(floor, rel=1e-6)
    assert 0 < real_fid_floor(extractor, 5000) < floor  # the small-count bias shrinks
    noise = torch.rand(500, 1, 28, 28) - 0.5
    assert fid_from_images(noise, real, extractor, (-0.5, 0.5)) > 20 * floor
    with pytest.raises(ValueError, match="50,000"):
        real_fid_floor(extractor, 1)


def _evaluated(tmp_path, name, ratio, near_copies, fid=300.0):
    import json

    run = tmp_path / name
    run.mkdir()
    near = {
        "median_sample_to_train": 0.17 * ratio, "median_test_to_train": 0.17, "ratio": ratio,
        "near_copies": near_copies, "samples": 1000,
    }  # fmt: skip
    ev = {"fid": fid, "n_samples": 1000, "fid_real_train": 6.4, "nearest_train": near}
    (run / "evaluation.json").write_text(json.dumps(ev))
    return run


@pytest.mark.parametrize(
    ("ratio", "near_copies", "copies"),
    [(1.3, 0.0, False), (0.5, 0.0, True), (1.0, 0.2, True), (0.85, 0.03, False)],
)
def test_findings_call_copying_by_distance_or_by_share_of_near_copies(
    tmp_path, ratio, near_copies, copies
):
    from coldflow.tasks.diffusion.findings import baseline_findings

    runs = [_evaluated(tmp_path, "honest", 1.3, 0.0), _evaluated(tmp_path, "x", ratio, near_copies)]
    floor, near = baseline_findings(runs, ["honest", "x"])
    assert "reach FID 6.4 at 1000 digits" in floor and "honest 300, x 300" in floor
    assert ("the samples of x lie closer" in near.lower()) is copies, near
    assert "honest lie" not in near and ("No run's samples" in near) is not copies
