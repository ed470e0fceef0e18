"""Resolution lowering: the super-resolution degradation of cold diffusion (Bansal et al.
2022), for fields on grids of any aspect ratio.

``D(x0, t)`` averages the field onto a coarser grid and interpolates it back (bicubic,
:func:`~coldflow.nets.superres.cubic_resampling`). The coarse grid shrinks with ``t``
geometrically, from the field's own grid at ``t = 0`` (``D`` is the identity) to the grid
``factor`` times coarser at ``t = n_T``, where ``D(x0, n_T)`` is exactly what the fluid study
feeds super-resolution and its bicubic baseline: the block average
(:func:`~coldflow.physics.grid.downsample_centered`) upsampled by
:func:`~coldflow.nets.superres.upsample`. Restoring from ``t = n_T`` therefore starts from
the bicubic-upsampled low-resolution field, which is all a super-resolution model sees.

Both steps are linear and separable: per axis an ``[h_t, H]`` cell-average matrix (the
overlap of each coarse cell with each fine cell, so integer ratios give the block mean)
followed by the ``[H, h_t]`` cubic matrix; ``D(x0, t) = M_t^rows x0 M_t^cols.T``.
"""

from __future__ import annotations

import torch

from coldflow.nets.superres import cubic_resampling

__all__ = ["ResolutionLowering", "area_matrix", "coarse_sizes"]


def area_matrix(n: int, m: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """``[m, n]`` matrix averaging ``n`` cells onto ``m <= n`` cells of one interval.

    Row ``i`` weights fine cell ``j`` by the length of ``[j, j + 1)`` inside the coarse cell
    ``[i n / m, (i + 1) n / m)``, divided by the coarse cell's length: rows sum to one and
    an integer ratio ``n = m f`` gives the block mean of ``f`` cells.
    """
    if not 1 <= m <= n:
        raise ValueError(f"area_matrix averages onto 1..{n} cells, got {m}")
    edges = torch.arange(m + 1, dtype=torch.float64) * n / m
    j = torch.arange(n, dtype=torch.float64)
    lo = torch.maximum(edges[:-1, None], j[None])
    hi = torch.minimum(edges[1:, None], j[None] + 1)
    return ((hi - lo).clamp(min=0) * m / n).to(dtype=dtype, device=device)


def coarse_sizes(n: int, factor: int, n_T: int) -> list[int]:
    """Cells of one axis at t = 0..n_T: ``n / factor ** (t / n_T)`` rounded, from ``n`` down
    to ``n / factor`` (never increasing)."""
    if n % factor:
        raise ValueError(f"{n} cells are not divisible by the factor {factor}")
    sizes = [n] + [round(n / factor ** (t / n_T)) for t in range(1, n_T)] + [n // factor]
    return [max(s, n // factor) for s in sizes]


class ResolutionLowering:
    """``D(x0, t)``: a field's resolution lowered by ``factor ** (t / n_T)``, then bicubic
    back onto its grid.

    Parameters
    ----------
    n_T
        Number of steps; ``D(., n_T)`` is the bicubic-upsampled block average by ``factor``.
    factor
        The super-resolution factor (the data set's high / low resolution).

    The interface is that of the other degradations (``n_T``, ``degrade``, ``noise_std``),
    so :class:`~coldflow.methods.cold.ColdDiffusion` trains and samples with it unchanged.
    """

    def __init__(self, n_T: int = 20, factor: int = 4) -> None:
        if n_T < 1:
            raise ValueError(f"n_T must be >= 1, got {n_T}")
        if int(factor) != factor or factor < 2:
            raise ValueError(f"factor must be an integer >= 2, got {factor}")
        self.n_T = int(n_T)
        self.factor = int(factor)
        self._cache: dict[tuple, torch.Tensor] = {}

    def to(self, device: torch.device | str) -> ResolutionLowering:
        """Matrices are built on the device of the fields they meet; nothing to move."""
        return self

    def matrices(self, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``[n_T + 1, n, n]``: the lowering of one axis of ``n`` cells at every step."""
        key = (n, dtype, str(device))
        if key not in self._cache:
            mats = [
                cubic_resampling(m, n, torch.float64) @ area_matrix(n, m)
                for m in coarse_sizes(n, self.factor, self.n_T)
            ]
            mats[0] = torch.eye(n, dtype=torch.float64)  # exactly the identity
            self._cache[key] = torch.stack(mats).to(dtype=dtype, device=device)
        return self._cache[key]

    def noise_std(self, t: torch.Tensor | int) -> torch.Tensor:
        """Zero at every step: the degradation is deterministic."""
        return torch.zeros_like(torch.as_tensor(t), dtype=torch.float64)

    def degrade(
        self, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``D(x0, t)`` of fields ``[B, C, H, W]`` at steps ``t`` (an int or ``[B]``, each in
        0..n_T); ``noise`` is accepted for the common interface and ignored."""
        t = torch.as_tensor(t, device=x0.device).long()
        if t.ndim == 0:
            t = t.expand(x0.shape[0])
        if t.shape != (x0.shape[0],):
            raise ValueError(f"t must be an int or [B] = [{x0.shape[0]}], got {tuple(t.shape)}")
        if bool((t < 0).any()) or bool((t > self.n_T).any()):
            raise ValueError(f"timesteps must lie in 0..{self.n_T}, got {t.tolist()}")
        rows = self.matrices(x0.shape[-2], x0.dtype, x0.device)[t]  # [B, H, H]
        cols = self.matrices(x0.shape[-1], x0.dtype, x0.device)[t]  # [B, W, W]
        return rows[:, None] @ x0 @ cols[:, None].transpose(-1, -2)
