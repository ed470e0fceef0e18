"""Baselines of the autoencoder and super-resolution evaluations: what a skeptic would
try before believing a network.

Codecs that store a frame ``[C, H, W]`` in a given number of values, beside the
autoencoder's latent code of the same size:

- :func:`resample_baseline`: the frame on a coarser grid (area average), read back
  bicubically;
- :class:`PCACodec`: the top principal components of the training frames (mean removed,
  channels divided by the training scale); a frame stores its coefficients. The basis
  and the mean are fitted once and are not counted per frame;
- :class:`DCTCodec`: the frame's 2-D orthonormal DCT-II per channel, keeping the
  coefficients of a fixed low-frequency set chosen in advance (by radial frequency), so
  no indices are stored.

For super-resolution, :func:`nearest_frames` finds the training frame whose
low-resolution input is closest to a test input, among every training frame and its
mirror images (:func:`mirror_maps`) where the scene declares a symmetry: memorisation.

:func:`scored_cells` gives the cells every method is scored on: those outside the
scene's obstacles.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from coldflow.data.store import FieldData
from coldflow.metrics.baselines import nearest_rms

__all__ = [
    "OBSTACLE_COVER",
    "DCTCodec",
    "PCACodec",
    "dct2",
    "dct_matrix",
    "idct2",
    "low_pass_mask",
    "mirror_centered",
    "mirror_maps",
    "nearest_frames",
    "resample_baseline",
    "scored_cells",
]

OBSTACLE_COVER = 0.5
"""A cell at least this much covered by an obstacle is not scored: the solver holds the
velocity there at (about) zero, which a network learns and an interpolation does not."""

_EXACT_BELOW = 2**23
"""Training matrices with fewer values are fitted in float64 (exact to round-off)."""

_RANDOMIZED_ABOVE = 4096
"""PCA uses a randomized SVD only when ``min(N, D)`` exceeds this (and ``n`` is well
below it): below, the exact eigen-decomposition of the Gram matrix is as fast."""


def resample_baseline(x: torch.Tensor, numbers: int) -> tuple[torch.Tensor, int]:
    """Store ``x`` ``[B, C, H, W]`` on a coarser grid of about ``numbers`` values per frame
    (area average, aspect ratio kept), then interpolate back bicubically.

    Returns the reconstruction and the number of values actually stored per frame.
    """
    C, H, W = x.shape[1:]
    r = math.sqrt(C * H * W / numbers)
    h, w = max(1, round(H / r)), max(1, round(W / r))
    coarse = F.adaptive_avg_pool2d(x, (h, w))
    return F.interpolate(coarse, size=(H, W), mode="bicubic", align_corners=False), C * h * w


# ------------------------------------------------------------------------------ PCA


def _scale(scale: Sequence[float] | torch.Tensor | None, channels: int) -> torch.Tensor:
    s = torch.ones(channels) if scale is None else torch.as_tensor(scale, dtype=torch.float32)
    if s.shape != (channels,):
        raise ValueError(f"scale needs one value per channel ({channels}), got {tuple(s.shape)}")
    return s.view(channels, 1, 1)


@dataclass(frozen=True)
class PCACodec:
    """Principal components of training frames: a frame is stored as ``numbers``
    coefficients.

    Attributes
    ----------
    mean
        ``[D]`` mean training frame (normalised units), ``D = C * H * W``.
    basis
        ``[numbers, D]`` orthonormal components, largest variance first.
    shape
        ``(C, H, W)`` of a frame.
    scale
        ``[C, 1, 1]``: frames are divided by it before the projection.
    """

    mean: torch.Tensor
    basis: torch.Tensor
    shape: tuple[int, int, int]
    scale: torch.Tensor

    @classmethod
    def fit(
        cls,
        frames: torch.Tensor,
        n: int,
        scale: Sequence[float] | torch.Tensor | None = None,
        device: str | torch.device | None = None,
    ) -> PCACodec:
        """The top ``n`` components of ``frames`` ``[N, C, H, W]`` divided by ``scale``.

        Exact (eigenvectors of the smaller Gram matrix, in float64) unless the rank
        bound ``min(N, D)`` is large and ``n`` well below it (a quarter), where a
        randomized low-rank SVD (``torch.svd_lowrank``, 4 power iterations) is used.
        Components the training frames do not span (variance at round-off) are left
        out: then fewer than ``n`` values are stored, at most ``N - 1`` (see
        :attr:`numbers`).
        """
        if n < 1:
            raise ValueError(f"PCA needs at least one component, got {n}")
        C, H, W = frames.shape[1:]
        s = _scale(scale, C)
        X = (frames.float() / s).flatten(1).to(device)
        X = X.double() if X.numel() <= _EXACT_BELOW else X
        mean = X.mean(0)
        X = X - mean
        N, D = X.shape
        k = min(N, D)
        if k > _RANDOMIZED_ABOVE and n + 16 <= k // 4:
            _, _, V = torch.svd_lowrank(X, q=n + 16, niter=4)
            basis = V[:, :n].T
        else:
            basis = _top_components(X, n)
        return cls(mean.float().cpu(), basis.float().cpu(), (C, H, W), s)

    @property
    def numbers(self) -> int:
        """Values stored per frame (the basis and the mean are not counted)."""
        return self.basis.shape[0]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, numbers]`` coefficients."""
        flat = (x.float() / self.scale.to(x.device)).flatten(1)
        return (flat - self.mean.to(x.device)) @ self.basis.T.to(x.device)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, numbers]`` -> ``[B, C, H, W]`` in physical units."""
        flat = z @ self.basis.to(z.device) + self.mean.to(z.device)
        return flat.view(-1, *self.shape) * self.scale.to(z.device)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``."""
        return self.decode(self.encode(x))


def _top_components(X: torch.Tensor, n: int) -> torch.Tensor:
    """Up to ``n`` leading right singular vectors of the centred ``X`` ``[N, D]`` as rows,
    from the eigenvectors of ``X X^T`` or ``X^T X`` (the smaller), in float64."""
    N, D = X.shape
    gram = (X @ X.T if N <= D else X.T @ X).double()
    e, vectors = torch.linalg.eigh(gram)
    e, vectors = e.flip(0), vectors.flip(1)  # largest first
    eps = torch.finfo(X.dtype).eps
    rank = int((e > e[0].clamp(min=0) * eps * max(N, D)).sum()) if e[0] > 0 else 0
    r = max(1, min(n, rank))
    if N <= D:  # v_i = X^T u_i / s_i
        basis = (vectors[:, :r].T.to(X.dtype) @ X) / e[:r].sqrt().to(X.dtype)[:, None]
    else:
        basis = vectors[:, :r].T.to(X.dtype)
    return torch.linalg.qr(basis.T).Q.T  # orthonormal to round-off


# ------------------------------------------------------------------------------ DCT


def dct_matrix(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``[n, n]``: ``c = M x``, ``x = M^T c``.

    ``M[k, i] = sqrt(2 / n) a_k cos(pi (2 i + 1) k / (2 n))``, ``a_0 = 1 / sqrt(2)``,
    ``a_k = 1`` otherwise (the DCT-II with ``norm="ortho"``).
    """
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = math.sqrt(2.0 / n) * torch.cos(math.pi * (2 * i + 1) * k / (2 * n))
    m[0] /= math.sqrt(2.0)
    return m.to(dtype)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two axes of ``x`` ``[..., H, W]``."""
    mh, mw = (dct_matrix(s, x.dtype).to(x.device) for s in x.shape[-2:])
    return mh @ x @ mw.T


def idct2(c: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2` (its transpose: the transform is orthonormal)."""
    mh, mw = (dct_matrix(s, c.dtype).to(c.device) for s in c.shape[-2:])
    return mh.T @ c @ mw


def low_pass_mask(shape: tuple[int, int, int], n: int) -> torch.Tensor:
    """``[C, H, W]`` boolean: the ``n`` DCT coefficients a :class:`DCTCodec` keeps.

    Each channel keeps ``n // C`` coefficients (the first ``n % C`` channels one more),
    the lowest by radial frequency ``(u / H)^2 + (v / W)^2`` of coefficient ``(u, v)``
    (ties: row-major order): a set fixed by the shape alone.
    """
    C, H, W = shape
    if not 1 <= n <= C * H * W:
        raise ValueError(f"a {C}x{H}x{W} frame has 1 to {C * H * W} coefficients, asked {n}")
    u = torch.arange(H, dtype=torch.float64)[:, None] / H
    v = torch.arange(W, dtype=torch.float64)[None, :] / W
    order = torch.argsort((u**2 + v**2).flatten(), stable=True)
    mask = torch.zeros(C, H * W, dtype=torch.bool)
    for c in range(C):
        mask[c, order[: n // C + (c < n % C)]] = True
    return mask.view(C, H, W)


@dataclass(frozen=True)
class DCTCodec:
    """Truncated orthonormal DCT: a frame is stored as the ``numbers`` coefficients of
    :func:`low_pass_mask` (indices fixed in advance, not stored)."""

    shape: tuple[int, int, int]
    numbers: int

    @property
    def mask(self) -> torch.Tensor:
        return low_pass_mask(self.shape, self.numbers)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, numbers]``."""
        return dct2(x)[:, self.mask.to(x.device)]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, numbers]`` -> ``[B, C, H, W]`` (the other coefficients zero)."""
        c = z.new_zeros(len(z), *self.shape)
        c[:, self.mask.to(z.device)] = z
        return idct2(c)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``."""
        return self.decode(self.encode(x))


# ------------------------------------------------------------------ nearest frame

_AXES = {"y": ("v_y", -2), "x": ("v_x", -1)}


def mirror_centered(x: torch.Tensor, channels: Sequence[str], axis: str = "x") -> torch.Tensor:
    """Mirror centred frames ``[..., C, H, W]`` across the centre line of ``axis``.

    ``axis="x"``: ``x -> W - x``, the cells reversed along the last axis and the ``v_x``
    channel negated (:func:`coldflow.tasks.sol.evaluation.mirror_staggered` on faces);
    ``axis="y"`` likewise with the rows and ``v_y``. Other channels (density) are only
    reflected. ``channels`` names the C channels (``v_y``, ``v_x``, ``density``).
    """
    if axis not in _AXES:
        raise ValueError(f"axis must be one of {sorted(_AXES)}, got {axis!r}")
    if len(channels) != x.shape[-3]:
        raise ValueError(f"{len(channels)} channel names for {x.shape[-3]} channels")
    component, dim = _AXES[axis]
    sign = torch.tensor([-1.0 if c == component else 1.0 for c in channels], dtype=x.dtype)
    return x.flip(dim) * sign.to(x.device).view(-1, 1, 1)


def mirror_maps(
    axes: Sequence[str], channels: Sequence[str]
) -> list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
    """``(label, mirror)`` for every non-empty combination of the scene's mirror ``axes``
    (:attr:`coldflow.config.fluids.KarmanSceneConfig.mirror_axes`): ``x`` gives one map,
    ``y`` and ``x`` three."""
    out = []
    for r in range(1, len(axes) + 1):
        for combo in itertools.combinations(axes, r):

            def mirror(x: torch.Tensor, combo=combo) -> torch.Tensor:
                for axis in combo:
                    x = mirror_centered(x, channels, axis)
                return x

            out.append((f"mirrored in {' and '.join(combo)}", mirror))
    return out


def nearest_frames(
    queries: torch.Tensor,
    references: torch.Tensor,
    scale: Sequence[float] | torch.Tensor | None = None,
    mirrors: Sequence[Callable[[torch.Tensor], torch.Tensor]] = (),
    chunk: int = 256,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each query, the closest reference, directly or through a mirror image.

    Parameters
    ----------
    queries, references
        ``[N, C, h, w]`` and ``[M, C, h, w]`` (e.g. test and training inputs).
    scale
        ``[C]``: channels are divided by it before the distance (the training units).
    mirrors
        Isometries of a frame (:func:`mirror_maps`); reference ``j`` seen through mirror
        ``m`` competes as well. Since a mirror is an isometry, the search compares the
        mirrored *query* with the references: no mirrored copy of the training set.
    chunk
        Queries per distance matrix (memory ``chunk x M``).

    Returns
    -------
    (index int64 [N], choice int64 [N], rms float64 [N])
        The reference, which map found it (0: none; ``m``: ``mirrors[m - 1]``, to apply
        to the reference's high-resolution frame) and the RMS distance in scaled units.
    """
    s = _scale(scale, queries.shape[1])
    q, r = queries.float() / s, references.float() / s
    best, index = nearest_rms(q, r, chunk)
    choice = torch.zeros(len(q), dtype=torch.long)
    for m, mirror in enumerate(mirrors, 1):
        d, i = nearest_rms(mirror(q), r, chunk)
        closer = d < best
        best, index = torch.where(closer, d, best), torch.where(closer, i, index)
        choice[closer] = m
    return index, choice, best


# ------------------------------------------------------------------------ masking


def scored_cells(path: str | Path, kind: str) -> torch.Tensor | None:
    """``[H, W]`` boolean cells to score of frames of trajectory ``kind`` of a data set:
    those covered less than :data:`OBSTACLE_COVER` by its obstacles. ``None`` where the
    scene has no obstacle (every cell is scored)."""
    with FieldData(path) as data:
        cover = torch.from_numpy(data.obstacle(kind))
    inside = cover >= OBSTACLE_COVER
    return ~inside if bool(inside.any()) else None
