"""LSiM, the learned simulation metric of Kohl, Um and Thuerey (ICML 2020).

A Siamese network compares two fields: a small AlexNet-like base network (five slices,
32/96/192/128/128 channels) extracts features of both inputs, every feature map is
normalised with mean and standard deviation statistics stored with the weights, and the
squared feature differences are weighted channel-wise by non-negative learned 1×1
layers, averaged over space, summed over the five layers and square-rooted.

Two entry points share that network:

- :meth:`LSiM.distance` reproduces the official ``DistanceModel.computeDistance`` of
  tum-pbs/LSIM on numpy arrays or tensors in ``[batch, height, width, channels]`` layout:
  1 → 3 channel repetition, resizing to 224 (``scipy.ndimage.zoom``), one min-max scaling
  to [0, 255] over both inputs and the whole batch (per channel), then the network.
- :meth:`LSiM.forward` is the differentiable loss on ``[batch, C, H, W]`` tensors at their
  own size, with each sample scaled to [0, 255] by itself, as the LSiM authors scale
  inputs for backpropagation.

Weights: ``LSiM.pth`` from the official repository, through :func:`coldflow.hub.resolve`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F
from torch import nn

from coldflow.losses._common import (
    check_min_size,
    check_pair,
    freeze,
    load_checkpoint,
    minmax_scale,
    safe_sqrt,
    to_rgb,
    zoom_like_scipy,
)

__all__ = ["LSiM", "LSiMBase", "feature_masks", "lsim_head", "zoom_like_scipy"]

_CHANNELS = (32, 96, 192, 128, 128)
_STORED_SIZES = (55, 26, 12, 12, 12)  # feature-map sizes of a 224x224 input
_EPSILON = 1e-10
_SCALINGS = ("separate", "joint", "none")


class LSiMBase(nn.Module):
    """The five-slice base network of LSiM; module names match the official state dict."""

    channels = _CHANNELS

    def __init__(self) -> None:
        super().__init__()
        self.slice1 = nn.Sequential(nn.Conv2d(3, 32, 12, stride=4, padding=2), nn.ReLU())
        self.slice2 = nn.Sequential(
            nn.MaxPool2d(4, stride=2), nn.Conv2d(32, 96, 5, padding=2), nn.ReLU()
        )
        self.slice3 = nn.Sequential(
            nn.MaxPool2d(4, stride=2), nn.Conv2d(96, 192, 3, padding=1), nn.ReLU()
        )
        self.slice4 = nn.Sequential(nn.Conv2d(192, 128, 3, padding=1), nn.ReLU())
        self.slice5 = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the outputs of the five slices for ``x`` ``[batch, 3, H, W]`` in [0, 255]."""
        outputs = []
        for block in (self.slice1, self.slice2, self.slice3, self.slice4, self.slice5):
            x = block(x)
            outputs.append(x)
        return outputs


def feature_masks(base: LSiMBase, mask: torch.Tensor) -> list[torch.Tensor]:
    """How much of each feature of ``base`` an input ``mask`` covers, per slice.

    ``mask`` ``[batch, 1, H, W]`` is 1 on the field's own pixels and 0 on padding; each
    layer of the base network is followed by the box average over its own window (kernel,
    stride, padding), so a feature gets the fraction of its receptive field (box
    approximation, the network's own zero padding not counted) that lies on the field.
    An all-ones mask gives all ones: unpadded fields are averaged as without a mask.
    """
    out = []
    for block in (base.slice1, base.slice2, base.slice3, base.slice4, base.slice5):
        for layer in block:
            if isinstance(layer, nn.Conv2d | nn.MaxPool2d):
                mask = F.avg_pool2d(
                    mask, layer.kernel_size, layer.stride, layer.padding, count_include_pad=False
                )
        out.append(mask)
    return out


def _normalise(
    feature: torch.Tensor, mean: torch.Tensor, m2: torch.Tensor, count: torch.Tensor
) -> torch.Tensor:
    """Standardise one feature map with the stored per-position statistics.

    ``mean`` and ``m2`` (Welford accumulators, ``[h, w]``) are resized bilinearly
    (``align_corners=True``) to the feature map when its size differs, as the original
    does, before the standard deviation is formed; the result is divided by
    ``sqrt(channels) - 1``.
    """
    size = feature.shape[-2:]
    if tuple(mean.shape) != tuple(size):
        mean = F.interpolate(mean[None, None], size=size, mode="bilinear", align_corners=True)[0, 0]
        m2 = F.interpolate(m2[None, None], size=size, mode="bilinear", align_corners=True)[0, 0]
    std = torch.sqrt(m2 / (count - 1))
    normalised = (feature - mean) / (std + _EPSILON)
    return normalised / (math.sqrt(feature.shape[1]) - 1)


def lsim_head(
    features_a: list[torch.Tensor],
    features_b: list[torch.Tensor],
    weights: list[torch.Tensor],
    means: list[torch.Tensor],
    m2s: list[torch.Tensor],
    counts: torch.Tensor,
    masks: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """LSiM distance from base-network features: one value per sample.

    d(a, b) = sqrt(sum_l mean_xy(w_l^+ . (n_l(f_l(a)) - n_l(f_l(b)))^2))   (Kohl et al. 2020)

    with ``n_l`` the stored normalisation and ``w_l^+`` the linear weights clamped to be
    non-negative. With ``masks`` (``[batch, 1, h_l, w_l]`` per layer, e.g.
    :func:`feature_masks`) the spatial mean is weighted by them.
    """
    total = torch.zeros(features_a[0].shape[0], device=features_a[0].device)
    for layer, (fa, fb) in enumerate(zip(features_a, features_b, strict=True)):
        na = _normalise(fa, means[layer], m2s[layer], counts[layer])
        nb = _normalise(fb, means[layer], m2s[layer], counts[layer])
        weighted = F.conv2d((nb - na) ** 2, weights[layer].clamp(min=0))
        if masks is None:
            total = total + weighted.mean(dim=3).mean(dim=2)[:, 0]
        else:
            m = masks[layer]
            total = total + (weighted * m).sum(dim=(2, 3))[:, 0] / m.sum(dim=(2, 3))[:, 0]
    return safe_sqrt(total)


def _input_to_nchw(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """[H, W, C] or [B, H, W, C] array or tensor -> float [B, C, H, W] tensor on ``device``."""
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x.detach()
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4:
        raise ValueError(
            f"LSiM.distance expects [height, width, channels] or [batch, height, width, "
            f"channels], got shape {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        t = t.to(torch.float64)
    return t.to(device).permute(0, 3, 1, 2)


class LSiM(nn.Module):
    """The LSiM metric with its official weights, frozen.

    Parameters
    ----------
    pretrained
        Load ``LSiM.pth`` through the hub (``"lsim"``). ``False`` keeps a random base
        network, unit linear weights and identity normalisation (for tests only).
    scaling
        How :meth:`forward` maps inputs to [0, 255], per sample and per channel:
        ``"separate"`` (default) scales ``a`` and ``b`` each by its own min-max, as the LSiM
        authors do for backpropagation; ``"joint"`` uses the min-max over both (like
        :meth:`distance` but per sample); ``"none"`` expects inputs already in [0, 255].

    Notes
    -----
    ``min_size`` (64) is the smallest height and width :meth:`forward` accepts; smaller
    fields go through :class:`coldflow.losses.FieldDistance`, which by default enlarges
    them as :attr:`fit` says: resized (bilinear, aspect ratio kept), not padded.

    Why resize. A 64x32 Kármán velocity component padded to 64x64 with repeated border
    columns holds each wall column 17 times (scripts/lsim_padding.py,
    docs/results/lsim_padding.md; 16 test frames of data/karman_cpu.h5, joint scaling).
    Against LSiM on the 128x64 reference itself, which needs no enlarging: a perturbation
    on the two columns next to each wall scores 0.44x the same-energy perturbation on two
    interior strips there (LSiM weights an image's border less); edge padding turns that
    into 1.68x (over-counting the walls by about 4x), reflect 0.62x, zeros 0.62x, zeros
    with the padding masked out of every layer's spatial mean 0.60x (the 2x2 deepest maps
    cannot be masked), bilinear resizing 0.46x. Rank correlation (Spearman) with the
    unpadded metric over perturbations and time-shifted pairs: edge 0.926, reflect 0.986,
    zeros 0.987, masked 0.988, resize 0.999; loss gradient on the wall columns over that
    on interior columns: native 0.33, edge 1.37, reflect 0.50, resize 0.36. All grow
    monotonically with the perturbation's size. Resizing cost 1.4 to 2.7 times the CPU
    time of padding per pair in three runs (130x64 instead of 64x64 inputs); bicubic
    instead of bilinear changes nothing measurable.
    """

    min_size = 64
    #: smallest input for which every slice still has a non-empty output
    hard_min_size = 44
    #: how :class:`~coldflow.losses.FieldDistance` enlarges smaller fields unless told
    #: otherwise (see the notes above; runs that name ``fit: pad`` keep their padding)
    fit = "resize"
    #: :meth:`forward` takes a ``mask`` of the field's own pixels (padding excluded)
    supports_mask = True

    def __init__(self, pretrained: bool = True, scaling: str = "separate") -> None:
        super().__init__()
        if scaling not in _SCALINGS:
            raise ValueError(f"LSiM scaling must be one of {_SCALINGS}, got {scaling!r}")
        checkpoint = load_checkpoint("lsim") if pretrained else None
        self.scaling = scaling
        self.basenet = LSiMBase()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS)
        for layer, size in enumerate(_STORED_SIZES):
            self.register_buffer(f"norm_mean{layer}", torch.zeros(size, size))
            self.register_buffer(f"norm_m2{layer}", torch.ones(size, size))
        self.register_buffer("norm_count", torch.full((len(_CHANNELS),), 2, dtype=torch.int64))
        for lin in self.lins:
            nn.init.ones_(lin.weight)
        if checkpoint is not None:
            self.load_official(checkpoint)
        freeze(self)

    def load_official(self, checkpoint: Mapping) -> None:
        """Load an official ``LSiM.pth`` dict (``stateDict``, ``normAcc``, ``normM2``,
        ``normCount``) strictly into this module."""
        try:
            state = dict(checkpoint["stateDict"])
            means, m2s, counts = (
                checkpoint["normAcc"],
                checkpoint["normM2"],
                checkpoint["normCount"],
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"not an official LSiM checkpoint: missing {error}") from None
        renamed = {k: v for k, v in state.items() if k.startswith("basenet.")}
        for layer in range(len(_CHANNELS)):
            renamed[f"lins.{layer}.weight"] = state.pop(f"lin{layer}.1.weight")
            renamed[f"norm_mean{layer}"] = torch.as_tensor(means[layer]).float()
            renamed[f"norm_m2{layer}"] = torch.as_tensor(m2s[layer]).float()
        renamed["norm_count"] = torch.as_tensor(list(counts), dtype=torch.int64)
        extra = sorted(k for k in state if not k.startswith("basenet."))
        if extra:
            raise ValueError(f"unexpected entries in the LSiM state dict: {extra}")
        self.load_state_dict(renamed, strict=True)

    def _stats(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        n = len(_CHANNELS)
        means = [getattr(self, f"norm_mean{i}") for i in range(n)]
        m2s = [getattr(self, f"norm_m2{i}") for i in range(n)]
        return means, m2s

    def compare(
        self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Distance between prepared inputs ``[batch, 3, H, W]`` in [0, 255]: shape [batch].

        ``mask`` ``[batch, 1, H, W]`` (1 on the field, 0 on padding) weights each layer's
        spatial mean by :func:`feature_masks`.
        """
        features = self.basenet(torch.cat([a, b]))
        batch = a.shape[0]
        means, m2s = self._stats()
        return lsim_head(
            [f[:batch] for f in features],
            [f[batch:] for f in features],
            [lin.weight for lin in self.lins],
            means,
            m2s,
            self.norm_count,
            None if mask is None else feature_masks(self.basenet, mask.to(a.dtype)),
        )

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Differentiable LSiM loss: one distance per sample.

        Parameters
        ----------
        a, b
            ``[batch, C, H, W]`` with C = 1 (repeated to 3) or 3, H and W at least
            :attr:`min_size`. Compared at their own size (no resizing).
        mask
            Optional ``[batch, 1, H, W]``: 1 on the field's own pixels, 0 on padding. The
            min-max scaling then spans the field's pixels only, and every layer's spatial
            mean is weighted by the share of each feature's receptive field on the field
            (:func:`feature_masks`); ``FieldDistance(pad_mode="masked")`` passes it.

        Returns
        -------
        torch.Tensor
            ``[batch]``, non-negative; gradients reach ``a`` and ``b`` only.
        """
        check_pair(a, b, "lsim")
        check_min_size(a, self.min_size, "lsim")
        a, b = to_rgb(a, "lsim"), to_rgb(b, "lsim")
        if self.scaling == "separate":
            a = minmax_scale(a, _amin(a, mask), _amax(a, mask), (0.0, 255.0))
            b = minmax_scale(b, _amin(b, mask), _amax(b, mask), (0.0, 255.0))
        elif self.scaling == "joint":
            low = torch.minimum(_amin(a, mask), _amin(b, mask))
            high = torch.maximum(_amax(a, mask), _amax(b, mask))
            a = minmax_scale(a, low, high, (0.0, 255.0))
            b = minmax_scale(b, low, high, (0.0, 255.0))
        return self.compare(a, b, mask)

    @torch.no_grad()
    def distance(
        self,
        a: np.ndarray | torch.Tensor,
        b: np.ndarray | torch.Tensor,
        interpolate_to: int | None = 224,
        interpolate_order: int = 0,
    ) -> np.ndarray:
        """LSiM distance exactly as the official ``computeDistance``.

        Parameters
        ----------
        a, b
            Arrays or tensors of equal shape ``[height, width, channels]`` or
            ``[batch, height, width, channels]`` with 1 or 3 channels.
        interpolate_to
            Resize both inputs to this square size when they are not already of it;
            ``None`` (or 0) compares them at their own size.
        interpolate_order
            Spline order of the resizing, as in ``scipy.ndimage.zoom``: 0 nearest
            (default), 1 linear (both computed on the module's device), higher orders
            through scipy on the CPU.

        Returns
        -------
        numpy.ndarray
            float32 distances, shape ``[batch]`` (``[1]`` for a single pair).

        Notes
        -----
        Min-max scaling to [0, 255] runs per channel over both inputs and the whole batch,
        so a distance depends on the other pairs of the batch, as in the original.
        Integer inputs are converted to float64 before resizing (the original resizes them
        in their integer type, which rounds linear interpolation).
        """
        device = self.norm_count.device
        ta, tb = _input_to_nchw(a, device), _input_to_nchw(b, device)
        if ta.shape != tb.shape:
            raise ValueError(
                f"LSiM.distance needs inputs of identical shape, got {tuple(ta.shape)} "
                f"and {tuple(tb.shape)}"
            )
        ta, tb = to_rgb(ta, "LSiM.distance"), to_rgb(tb, "LSiM.distance")
        size = (interpolate_to, interpolate_to)
        if interpolate_to and ta.shape[-2:] != size:
            ta = _resize(ta, size, interpolate_order)
            tb = _resize(tb, size, interpolate_order)
        check_min_size(ta, self.hard_min_size, "LSiM.distance")
        low = torch.minimum(ta.amin(dim=(0, 2, 3)), tb.amin(dim=(0, 2, 3)))[None, :, None, None]
        high = torch.maximum(ta.amax(dim=(0, 2, 3)), tb.amax(dim=(0, 2, 3)))[None, :, None, None]
        ta = minmax_scale(ta, low, high, (0, 255)).float()
        tb = minmax_scale(tb, low, high, (0, 255)).float()
        return self.compare(ta, tb).cpu().numpy()


def _amin(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    if mask is not None:
        x = torch.where(mask > 0, x, torch.full((), torch.inf, dtype=x.dtype, device=x.device))
    return x.amin(dim=(2, 3), keepdim=True)


def _amax(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    if mask is not None:
        x = torch.where(mask > 0, x, torch.full((), -torch.inf, dtype=x.dtype, device=x.device))
    return x.amax(dim=(2, 3), keepdim=True)


def _resize(x: torch.Tensor, size: tuple[int, int], order: int) -> torch.Tensor:
    if order in (0, 1):
        return zoom_like_scipy(x, size, order)
    array = x.permute(0, 2, 3, 1).cpu().numpy()
    zoom = (1, size[0] / array.shape[1], size[1] / array.shape[2], 1)
    resized = scipy.ndimage.zoom(array, zoom, order=order)
    return torch.from_numpy(resized).to(x.device).permute(0, 3, 1, 2)
