"""MNIST's validation split: the last sixth of the official training file is held out,
every choice made during training (the FID curve, cold diffusion's conditional
restorations) reads it, and only evaluation opens the test file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import coldflow.data.mnist as mnist
from coldflow.data.mnist import load_mnist, split_sizes
from coldflow.experiment import evaluate, train

ROOT = Path(__file__).resolve().parents[1]


def test_train_and_val_divide_the_training_file_and_test_is_its_own():
    assert split_sizes(60000) == (50000, 10000)
    train, _ = load_mnist("train")
    val, val_labels = load_mnist("val")
    test, _ = load_mnist("test")
    assert len(train) == 50000 and len(val) == 10000 and len(test) == 10000
    whole = np.concatenate([train, val])
    assert len(np.unique(whole.reshape(len(whole), -1)[:2000], axis=0)) == 2000
    assert not np.array_equal(val[:100], test[:100])
    assert set(np.unique(val_labels)) == set(range(10))  # every digit is held out
    with pytest.raises(ValueError, match="train, val, test"):
        load_mnist("validation")


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """The MNIST files each ``load_mnist`` call reads, in order."""
    seen: list[str] = []
    resolve = mnist.hub.resolve

    def spy(name: str, *args, **kwargs):
        if name.startswith("mnist-"):
            seen.append(name)
        return resolve(name, *args, **kwargs)

    monkeypatch.setattr(mnist.hub, "resolve", spy)
    return seen


@pytest.mark.parametrize("config", ["quick.yaml", "quick_blur.yaml"])
def test_training_and_its_fid_curve_never_open_the_test_digits(
    config, tmp_path, tiny_overrides, opened
):
    overrides = [o for o in tiny_overrides if not o.startswith("evaluation.fid.enabled")]
    overrides += ["evaluation.fid.enabled=true", "evaluation.fid.n_samples=8",
                  "evaluation.interval=1", "training.epochs=1"]  # fmt: skip
    if "blur" in config:
        overrides += ["method.conditional_images=4", "method.prior_fit_images=32"]
    run = train(ROOT / "configs/mnist" / config, tmp_path / "run", overrides=overrides)
    assert [e for e in run.read_metrics() if e.get("name") == "fid"]  # the curve was drawn
    assert opened and not any("test" in name for name in opened), opened
    evaluate(run.path, device="cpu", n=8)
    assert any("test" in name for name in opened)  # evaluation scores on the test digits
