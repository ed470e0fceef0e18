"""FID: Fréchet distance known answers, feature extractors, real-statistics cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from coldflow import hub
from coldflow.data.mnist import mnist_dataset
from coldflow.metrics.features import (
    FEATURE_EXTRACTORS,
    InceptionFeatures,
    MNISTClassifierFeatures,
    build_feature_extractor,
    classifier_accuracy,
    state_dict_digest,
    train_mnist_classifier,
)
from coldflow.metrics.fid import (
    compute_features,
    feature_statistics,
    fid_from_images,
    frechet_distance,
    mnist_real_statistics,
    real_statistics,
    stats_cache_path,
)
from coldflow.nets.inception import FIDInceptionV3, InceptionA, _pool_3x3, load_fid_inception


def random_spd(d: int, rng: np.random.Generator, cond: float = 10.0) -> np.ndarray:
    """Random symmetric positive definite matrix with eigenvalues in [1/cond, 1]."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (q * np.geomspace(1.0 / cond, 1.0, d)) @ q.T


# ------------------------------------------------------------------ Fréchet distance maths


def test_identical_statistics_give_zero():
    rng = np.random.default_rng(0)
    mu, s = rng.standard_normal(16), random_spd(16, rng)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize(
    ("m1", "s1", "m2", "s2"), [(0, 1, 0, 2), (1.5, 0.3, -2, 0.3), (3, 2, 1, 0.5)]
)
def test_one_dimensional_closed_form(m1, s1, m2, s2):
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2
    got = frechet_distance([m1], [[s1**2]], [m2], [[s2**2]])
    assert got == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, rel=1e-12)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    a, b = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_matches_general_matrix_square_root_on_well_conditioned_input():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.standard_normal(12), rng.standard_normal(12)
    s1, s2 = random_spd(12, rng), random_spd(12, rng)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_symmetric_and_rotation_invariant():
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    s1, s2 = random_spd(10, rng, cond=1e3), random_spd(10, rng, cond=1e3)
    d12 = frechet_distance(mu1, s1, mu2, s2)
    assert d12 > 0.1
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(d12, rel=1e-10)
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    rotated = frechet_distance(q @ mu1, q @ s1 @ q.T, q @ mu2, q @ s2 @ q.T)
    assert rotated == pytest.approx(d12, rel=1e-10)


def test_singular_covariances_from_few_samples():
    # N = 10 samples in D = 64 dimensions: rank-9 covariances
    rng = np.random.default_rng(4)
    mu, s = feature_statistics(rng.standard_normal((10, 64)))
    assert np.linalg.matrix_rank(s) == 9
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9 * np.trace(s))
    mu2, s2 = feature_statistics(rng.standard_normal((10, 64)) + 0.5)
    d = frechet_distance(mu, s, mu2, s2)
    assert np.isfinite(d)
    assert d == pytest.approx(frechet_distance(mu2, s2, mu, s), rel=1e-9)


def test_near_singular_commuting_covariances_closed_form():
    # eigenvalues down to 0 and 1e-14: the closed form sum (sqrt a - sqrt b)^2 still holds
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((20, 20)))
    a = np.concatenate([np.geomspace(1e-14, 1, 15), np.zeros(5)])
    b = np.concatenate([np.geomspace(1, 1e-14, 15), np.zeros(3), [1e-3, 2.0]])
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(np.zeros(20), (q * a) @ q.T, np.zeros(20), (q * b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-7)


def test_bad_shapes_are_an_error():
    with pytest.raises(ValueError, match="sigma"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))


def test_feature_statistics_known_answer():
    mu, sigma = feature_statistics(torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]]))
    np.testing.assert_allclose(mu, [2.0, 2.0])
    np.testing.assert_allclose(sigma, [[4.0, 3.0], [3.0, 3.0]])  # unbiased (N - 1)
    assert mu.dtype == sigma.dtype == np.float64


# ------------------------------------------------------------------ MNIST classifier features


def _have_mnist() -> bool:
    return all(hub.locate(f"mnist-{s}-images") for s in ("train", "test"))


needs_mnist = pytest.mark.skipif(not _have_mnist(), reason="MNIST not found (set COLDFLOW_DATA)")


@pytest.fixture(scope="module")
def extractor():
    return MNISTClassifierFeatures()


@pytest.fixture(scope="module")
def mnist_test():
    return mnist_dataset("test", subset=2000).tensors


@pytest.fixture(scope="module")
def test_features(extractor, mnist_test):
    return compute_features(mnist_test[0], extractor)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(3 * sigma)
    k = torch.exp(-(torch.arange(-r, r + 1.0) ** 2) / (2 * sigma**2))
    k = (k / k.sum()).to(x.dtype)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


def test_registry_builds_extractors():
    assert set(FEATURE_EXTRACTORS) == {"mnist_classifier", "inception"}
    assert build_feature_extractor("mnist_classifier").dim == 128
    with pytest.raises(ValueError, match="known: inception, mnist_classifier"):
        build_feature_extractor("vgg")


@needs_mnist
def test_shipped_classifier_accuracy(extractor, mnist_test):
    images, labels = mnist_test
    assert classifier_accuracy(extractor.net, images, labels) >= 0.98


def test_shipped_classifier_sidecar_records_accuracy(extractor):
    from coldflow.metrics.features import shipped_classifier_path

    info = json.loads(shipped_classifier_path().with_suffix(".json").read_text())
    assert info["test_accuracy"] >= 0.99 and info["test_images"] == 10000
    assert info["weights_id"] == extractor.weights_id
    assert shipped_classifier_path().stat().st_size < 1_000_000


@needs_mnist
def test_features_do_not_depend_on_value_range(extractor, mnist_test, test_features):
    unit = (mnist_test[0][:200] + 0.5).clone()  # the same images in [0, 1]
    f = compute_features(unit, extractor, value_range=(0.0, 1.0))
    np.testing.assert_allclose(f, test_features[:200], atol=1e-5)
    assert f.shape == (200, 128) and f.dtype == np.float64


def test_extractor_rejects_wrong_image_shape(extractor):
    with pytest.raises(ValueError, match=r"\[N, 1, 28, 28\]"):
        extractor(torch.zeros(2, 3, 28, 28), (-0.5, 0.5))


def test_extractor_stays_frozen(extractor):
    extractor.train()
    assert not extractor.net.training
    assert not any(p.requires_grad for p in extractor.parameters())


@needs_mnist
def test_fid_same_images_is_zero(extractor, mnist_test, test_features):
    real = feature_statistics(test_features)
    assert fid_from_images(mnist_test[0], real, extractor) == pytest.approx(0.0, abs=1e-6)


@needs_mnist
def test_fid_orders_image_sets_by_quality(extractor, mnist_test, test_features):
    real = feature_statistics(test_features)
    test_images = mnist_test[0]
    train_images = mnist_dataset("train", subset=2000).tensors[0]
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(2000, 1, 28, 28, generator=g) - 0.5
    blurred = gaussian_blur(test_images, sigma=2.0)
    slightly_blurred = gaussian_blur(test_images, sigma=0.7)

    fid_train = fid_from_images(train_images, real, extractor)
    fid_slight = fid_from_images(slightly_blurred, real, extractor)
    fid_blur = fid_from_images(blurred, real, extractor)
    fid_noise = fid_from_images(noise, real, extractor)
    scale = np.trace(real[1])  # total feature variance, the natural unit of FID
    assert fid_train < 0.05 * scale
    assert fid_train < fid_slight < fid_blur
    assert fid_blur > 10 * fid_train
    assert fid_noise > 50 * fid_train


@needs_mnist
def test_fid_between_disjoint_halves_is_small_but_positive(extractor, test_features):
    a, b = feature_statistics(test_features[:1000]), feature_statistics(test_features[1000:])
    d = frechet_distance(*a, *b)
    assert 0 < d < 0.05 * np.trace(a[1])


# ------------------------------------------------------------------ real-statistics cache


class CountingImages:
    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.calls = images, 0

    def __call__(self) -> torch.Tensor:
        self.calls += 1
        return self.images


@needs_mnist
def test_real_statistics_cache_round_trip(tmp_path, monkeypatch, extractor, mnist_test):
    monkeypatch.setenv("COLDFLOW_CACHE", str(tmp_path))
    images = CountingImages(mnist_test[0][:500])
    mu, sigma = real_statistics(extractor, images, "mnist", "test", 500)
    path = stats_cache_path(extractor, "mnist", "test", 500)
    assert path.is_file() and path.parent == tmp_path / "fid_stats"
    assert extractor.weights_id in path.name and "mnist_test_n500_mnist_classifier" in path.name
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left

    mu2, sigma2 = real_statistics(extractor, images, "mnist", "test", 500)
    assert images.calls == 1  # second call read the .npz
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_array_equal(sigma, sigma2)
    np.testing.assert_allclose(mu, compute_features(mnist_test[0][:500], extractor).mean(0))

    path.write_bytes(b"not an npz")  # a corrupt cache file is recomputed, not trusted
    mu3, _ = real_statistics(extractor, images, "mnist", "test", 500)
    assert images.calls == 2
    np.testing.assert_array_equal(mu, mu3)


@needs_mnist
def test_mnist_real_statistics_uses_first_n_images(tmp_path, monkeypatch, extractor, test_features):
    monkeypatch.setenv("COLDFLOW_CACHE", str(tmp_path))
    mu, sigma = mnist_real_statistics(extractor, split="test", n=300)
    np.testing.assert_allclose(mu, test_features[:300].mean(0), atol=1e-9)
    assert stats_cache_path(extractor, "mnist", "test", 300).is_file()


def test_cache_key_changes_with_weights(extractor):
    other = MNISTClassifierFeatures()
    assert other.weights_id == extractor.weights_id
    with torch.no_grad():
        other.net.fc1.bias[0] += 1e-3
    assert state_dict_digest(other.net) != extractor.weights_id


@needs_mnist
def test_train_mnist_classifier_writes_loadable_weights(tmp_path):
    out = tmp_path / "clf.safetensors"
    info = train_mnist_classifier(out, epochs=2, train_subset=2048, progress=False, threads=1)
    assert out.is_file()
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["test_accuracy"] == info["test_accuracy"] and sidecar["train_images"] == 2048
    assert "train_mnist_classifier(" in sidecar["command"]
    loaded = MNISTClassifierFeatures(weights=out)
    assert loaded.weights_id == info["weights_id"]
    assert info["test_accuracy"] > 0.6  # 2048 images, two epochs (~0.83): far above chance


# ------------------------------------------------------------------ Inception-v3 (FID graph)


@pytest.fixture(scope="module")
def inception_net():
    torch.manual_seed(0)
    return FIDInceptionV3().eval()


def test_inception_state_dict_matches_pytorch_fid_layout(inception_net):
    # Layout of torchvision Inception3(num_classes=1008, aux_logits=False), which the
    # pytorch-fid file pt_inception-2015-12-05-6726825d.pth fills: 94 BasicConv2d
    # (stem 5, Mixed_5b..d 3x7, Mixed_6a 4, Mixed_6b..e 4x10, Mixed_7a 6, Mixed_7b..c 2x9),
    # each conv.weight + bn.{weight, bias, running_mean, running_var}, then fc.
    state = inception_net.state_dict()
    keys = [k for k in state if not k.endswith("num_batches_tracked")]
    assert len(keys) == 94 * 5 + 2 == 472
    assert len(state) - len(keys) == 94
    assert sum(p.numel() for p in inception_net.parameters()) == 23_850_960
    expected = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_1a_3x3.bn.running_mean": (32,),
        "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
        "Mixed_5b.branch1x1.conv.weight": (64, 192, 1, 1),
        "Mixed_5b.branch5x5_2.conv.weight": (64, 48, 5, 5),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_5d.branch_pool.conv.weight": (64, 288, 1, 1),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
        "Mixed_6b.branch7x7dbl_2.conv.weight": (128, 128, 7, 1),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7b.branch3x3_2b.conv.weight": (384, 384, 3, 1),
        "Mixed_7c.branch3x3dbl_1.conv.weight": (448, 2048, 1, 1),
        "Mixed_7c.branch_pool.bn.running_var": (192,),
        "fc.weight": (1008, 2048),
        "fc.bias": (1008,),
    }
    assert {k: tuple(state[k].shape) for k in expected} == expected
    assert not any(k.startswith("AuxLogits") for k in state)


def test_inception_pools_follow_the_tensorflow_graph(inception_net):
    ones = torch.ones(1, 1, 5, 5)
    np.testing.assert_array_equal(_pool_3x3(ones, "avg"), ones)  # padding not counted
    assert inception_net.Mixed_7b.pool == "avg" and inception_net.Mixed_7c.pool == "max"
    assert isinstance(inception_net.Mixed_5b, InceptionA)


def test_inception_loads_a_weights_file_strictly(tmp_path, inception_net):
    # files written before BatchNorm had num_batches_tracked lack those keys
    state = {k: v for k, v in inception_net.state_dict().items() if "num_batches" not in k}
    path = tmp_path / "pt_inception.pth"
    torch.save(state, path)
    loaded = load_fid_inception(path)
    assert state_dict_digest(loaded) == state_dict_digest(inception_net)
    del state["fc.bias"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="fc.bias"):
        load_fid_inception(path)


def test_inception_features_prepare_and_forward_shape():
    ext = InceptionFeatures(pretrained=False)
    lo, hi = torch.full((1, 1, 28, 28), -0.5), torch.full((1, 1, 28, 28), 0.5)
    x = ext.prepare(torch.cat([lo, hi]), (-0.5, 0.5))
    assert x.shape == (2, 3, 299, 299)
    torch.testing.assert_close(x[0], torch.full_like(x[0], -1.0))
    torch.testing.assert_close(x[1], torch.full_like(x[1], 1.0))
    images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) - 0.5
    f = compute_features(images, ext, batch_size=2)
    assert f.shape == (2, 2048) and np.isfinite(f).all()


def test_inception_without_weights_names_the_file(tmp_path, monkeypatch):
    for var in ("COLDFLOW_DATA", "COLDFLOW_WEIGHTS", "COLDFLOW_CACHE"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("COLDFLOW_OFFLINE", "1")
    with pytest.raises(hub.HubError) as err:
        InceptionFeatures()
    message = str(err.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in message
    assert str(tmp_path / "coldflow_weights" / "fid") in message  # where to put it
    assert "mnist_classifier" in message
