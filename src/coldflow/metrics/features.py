"""Feature extractors for FID: a small MNIST classifier and the FID Inception-v3.

An extractor is an ``nn.Module`` with ``forward(images, value_range) -> [N, D]`` that
accepts images as the rest of coldflow holds them (float [N, C, H, W] in
``value_range``, MNIST default ``(-0.5, 0.5)``) and converts them to what its network
expects. ``name`` and ``weights_id`` (a digest of the weights) key the cache of real
statistics, so that statistics computed with other weights are never reused.

:func:`train_mnist_classifier` trains the MNIST classifier whose weights ship in
``coldflow/assets/mnist_classifier.safetensors``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from coldflow import hub
from coldflow.data.mnist import from_range, mnist_dataset
from coldflow.io import atomic_path, write_json
from coldflow.nets.inception import FIDInceptionV3, load_fid_inception
from coldflow.nets.mnist_classifier import MNISTClassifier

__all__ = [
    "FEATURE_EXTRACTORS",
    "FeatureExtractor",
    "InceptionFeatures",
    "MNISTClassifierFeatures",
    "build_feature_extractor",
    "classifier_accuracy",
    "load_mnist_classifier",
    "shipped_classifier_path",
    "state_dict_digest",
    "train_mnist_classifier",
]

ValueRange = tuple[float, float]
MNIST_RANGE: ValueRange = (-0.5, 0.5)
_ASSET = "mnist_classifier.safetensors"


def state_dict_digest(module: nn.Module, length: int = 16) -> str:
    """Hex digest (sha256, first ``length`` characters) of a module's names and tensors.

    Two modules get the same digest exactly when their state dicts hold the same keys,
    dtypes, shapes and values, whatever file they came from.
    """
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        t = value.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:length]


class FeatureExtractor(nn.Module):
    """Base of the FID feature extractors: a frozen net that always stays in eval mode.

    Subclasses set ``name`` and ``dim``, build ``self.net`` and implement
    :meth:`prepare`; ``weights_id`` is computed once the weights are loaded.
    """

    name: str = ""
    dim: int = 0

    def _freeze(self) -> None:
        self.net.eval()
        self.net.requires_grad_(False)
        self.weights_id = state_dict_digest(self.net)

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Ignore ``mode``: batch-norm statistics and dropout of the extractor never change."""
        return super().train(False)

    def prepare(self, images: torch.Tensor, value_range: ValueRange) -> torch.Tensor:
        """Convert images in ``value_range`` to the net's input."""
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features of prepared input ``x``."""
        return self.net.features(x)

    def forward(self, images: torch.Tensor, value_range: ValueRange = MNIST_RANGE) -> torch.Tensor:
        """Features [N, dim] of images [N, C, H, W] with pixel values in ``value_range``.

        Values outside ``value_range`` are clipped, as they would be when saved as images.
        """
        if images.ndim != 4:
            raise ValueError(
                f"{self.name}: expected images [N, C, H, W], got {tuple(images.shape)}"
            )
        return self.embed(self.prepare(images, value_range))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, dim={self.dim}, weights_id={self.weights_id!r}"


# --------------------------------------------------------------------------- MNIST classifier


def shipped_classifier_path() -> Path:
    """Path of the MNIST classifier weights shipped inside the package."""
    resource = importlib.resources.files("coldflow") / "assets" / _ASSET
    # an installed or editable package is a real directory, so this path stays valid
    with importlib.resources.as_file(resource) as path:
        return Path(path)


def load_mnist_classifier(path: str | Path | None = None) -> MNISTClassifier:
    """Load :class:`MNISTClassifier` weights (safetensors), by default the shipped ones.

    Raises
    ------
    FileNotFoundError
        If the weights file does not exist; the message says how to train it.
    """
    path = Path(path) if path is not None else shipped_classifier_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"MNIST classifier weights not found at {path}. Train them with\n"
            f"  coldflow fid-classifier --out {path}"
        )
    net = MNISTClassifier()
    net.load_state_dict(safetensors.torch.load_file(str(path)), strict=True)
    return net.eval()


class MNISTClassifierFeatures(FeatureExtractor):
    """128-d hidden-layer features of the project's MNIST classifier.

    Parameters
    ----------
    weights
        A safetensors file of :class:`~coldflow.nets.mnist_classifier.MNISTClassifier`;
        default: the weights shipped in ``coldflow/assets``.

    Notes
    -----
    Takes one-channel 28x28 images (other sizes are an error, not silently resized).
    """

    name = "mnist_classifier"

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        self.net = load_mnist_classifier(weights)
        self.dim = self.net.feature_dim
        self._freeze()

    def prepare(self, images: torch.Tensor, value_range: ValueRange) -> torch.Tensor:
        size = MNISTClassifier.input_size
        if images.shape[1:] != (1, size, size):
            raise ValueError(
                f"mnist_classifier features need images [N, 1, {size}, {size}], "
                f"got {tuple(images.shape)}"
            )
        return from_range(images.float(), value_range)

    def logits(self, images: torch.Tensor, value_range: ValueRange = MNIST_RANGE) -> torch.Tensor:
        """Class logits [N, 10] of images in ``value_range``."""
        return self.net(self.prepare(images, value_range))


# --------------------------------------------------------------------------- Inception


class InceptionFeatures(FeatureExtractor):
    """Pool3 (2048-d) features of the FID Inception-v3, as in pytorch-fid.

    Images are clipped to ``value_range``, mapped to [0, 1], grayscale is repeated to
    three channels, resized to 299x299 (bilinear, ``align_corners=False``) and scaled to
    [-1, 1].

    Parameters
    ----------
    weights
        Path of ``pt_inception-2015-12-05-6726825d.pth``; default: resolved with
        ``coldflow.hub.resolve("fid-inception")`` (``$COLDFLOW_WEIGHTS/fid/...``, the
        cache, or a download).
    pretrained
        ``False`` builds the net with random weights (for tests of shapes only; such
        features mean nothing).

    Raises
    ------
    coldflow.hub.HubError
        If the weights file is not available; the message names the file and where to
        put it.
    """

    name = "inception"
    dim = FIDInceptionV3.feature_dim

    def __init__(self, weights: str | Path | None = None, pretrained: bool = True) -> None:
        super().__init__()
        if not pretrained:
            self.net = FIDInceptionV3()
        else:
            if weights is None:
                try:
                    weights = hub.resolve("fid-inception")
                except hub.HubError as e:
                    raise hub.HubError(
                        f"{e}\nThe 'inception' FID feature extractor needs this file; "
                        "the 'mnist_classifier' extractor works without it."
                    ) from None
            self.net = load_fid_inception(weights)
        self._freeze()

    def prepare(self, images: torch.Tensor, value_range: ValueRange) -> torch.Tensor:
        channels = images.shape[1]
        if channels not in (1, 3):
            raise ValueError(f"inception features need 1 or 3 channels, got {channels}")
        x = from_range(images.float(), value_range)
        if channels == 1:
            x = x.expand(-1, 3, -1, -1)
        size = FIDInceptionV3.input_size
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0


# config ``fid.features`` -> extractor constructor
FEATURE_EXTRACTORS: dict[str, Callable[..., FeatureExtractor]] = {
    "mnist_classifier": MNISTClassifierFeatures,
    "inception": InceptionFeatures,
}


def build_feature_extractor(name: str, **kwargs) -> FeatureExtractor:
    """Build the extractor registered as ``name`` in :data:`FEATURE_EXTRACTORS`."""
    try:
        ctor = FEATURE_EXTRACTORS[name]
    except KeyError:
        known = ", ".join(sorted(FEATURE_EXTRACTORS))
        raise ValueError(f"unknown FID feature extractor {name!r}; known: {known}") from None
    return ctor(**kwargs)


# --------------------------------------------------------------------------- training


@torch.no_grad()
def classifier_accuracy(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    value_range: ValueRange = MNIST_RANGE,
    batch_size: int = 1000,
) -> float:
    """Fraction of ``images`` (in ``value_range``) that ``net`` classifies as ``labels``.

    ``net`` takes [0, 1] images (:class:`MNISTClassifier`). It is put in eval mode.
    """
    net.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        x = from_range(images[i : i + batch_size].float(), value_range)
        correct += (net(x).argmax(1) == labels[i : i + batch_size]).sum().item()
    return correct / len(images)


def _random_affine(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Augment digits: rotation +-10 degrees, scale 0.9..1.1, shift +-2 pixels."""
    n = x.shape[0]
    u = torch.rand(n, 4, generator=generator) * 2 - 1
    angle = u[:, 0] * torch.pi / 18
    scale = 1 + 0.1 * u[:, 1]
    shift = u[:, 2:] * (2 * 2 / x.shape[-1])  # grid coordinates span 2 over the image
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def train_mnist_classifier(
    out_path: str | Path,
    epochs: int = 4,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    batch_size: int = 128,
    lr: float = 3e-3,
    threads: int | None = None,
    train_subset: int | None = None,
) -> dict:
    """Train :class:`MNISTClassifier` on the MNIST training set and save it.

    Adam with a one-cycle learning-rate schedule, light affine augmentation, then the
    accuracy on the 10,000 test images. The weights go to ``out_path`` (safetensors,
    written atomically) and a JSON sidecar with the same stem records the accuracy,
    the settings and the command to reproduce them.

    Parameters
    ----------
    out_path
        Destination ``.safetensors`` file; the sidecar is ``out_path.with_suffix(".json")``.
    epochs, seed, batch_size, lr
        Training settings (``lr`` is the peak of the one-cycle schedule).
    device
        Torch device to train on.
    progress
        Print one line per epoch.
    threads
        If given, ``torch.set_num_threads(threads)`` for the run.
    train_subset
        Train on the first ``train_subset`` training images only (for quick checks).

    Returns
    -------
    dict
        The sidecar's contents (``test_accuracy``, ``train_seconds``, ...).
    """
    out_path = Path(out_path)
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train_x, train_y = mnist_dataset("train", value_range=(0.0, 1.0), subset=train_subset).tensors
    test_x, test_y = mnist_dataset("test", value_range=MNIST_RANGE).tensors

    net = MNISTClassifier().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps_per_epoch = -(-len(train_x) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch
    )
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.randperm(len(train_x), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x = _random_affine(train_x[idx], gen).to(device)
            loss = F.cross_entropy(net(x), train_y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if progress:
            acc = classifier_accuracy(net, test_x.to(device), test_y.to(device))
            print(
                f"epoch {epoch}/{epochs}  train loss {total / len(train_x):.4f}  "
                f"test acc {acc:.4f}  {time.perf_counter() - start:.0f}s",
                flush=True,
            )
    seconds = time.perf_counter() - start
    net = net.cpu().eval()
    accuracy = classifier_accuracy(net, test_x, test_y)

    info = {
        "test_accuracy": accuracy,
        "test_errors": round((1 - accuracy) * len(test_x)),
        "test_images": len(test_x),
        "train_images": len(train_x),
        "epochs": epochs,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "threads": torch.get_num_threads(),
        "train_seconds": round(seconds, 1),
        "parameters": sum(p.numel() for p in net.parameters()),
        "weights_id": state_dict_digest(net),
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "command": (
            'python -c "from coldflow.metrics.features import train_mnist_classifier; '
            f"train_mnist_classifier('{out_path}', epochs={epochs}, seed={seed}, "
            f"batch_size={batch_size}, lr={lr}, threads={threads}, "
            f'train_subset={train_subset})"'
        ),
    }
    with atomic_path(out_path) as tmp:
        tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
        metadata = {k: str(info[k]) for k in ("test_accuracy", "epochs", "seed", "date")}
        safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)
    write_json(out_path.with_suffix(".json"), info)
    return info
