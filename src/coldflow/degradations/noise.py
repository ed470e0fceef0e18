"""Gaussian noise degradation of DDPM (Ho et al. 2020) with the linear beta schedule."""

from __future__ import annotations

import torch

__all__ = ["linear_beta_schedule", "LinearNoise"]


def linear_beta_schedule(beta1: float, beta2: float, n_T: int) -> dict[str, torch.Tensor]:
    """Linear schedule, indexed by t = 0..n_T.

    Returns ``beta_t = beta1 + (beta2 - beta1) * t / n_T`` and
    ``alpha_bar_t = exp(sum_{s<=t} log(1 - beta_s))`` as float64 tensors of length n_T + 1,
    exactly as in the seed study's ``ddpm_schedules``. Index 0 is *not* the clean image:
    ``beta_0 = beta1`` and ``alpha_bar_0 = 1 - beta1 < 1`` is already one noise step (the
    clean image would be ``alpha_bar = 1``, which no index holds; see
    :mod:`coldflow.methods.ddpm` for what this does to the last sampling step).
    """
    if not 0 < beta1 < beta2 < 1:
        raise ValueError(f"need 0 < beta1 < beta2 < 1, got beta1={beta1}, beta2={beta2}")
    t = torch.arange(0, n_T + 1, dtype=torch.float64)
    beta = (beta2 - beta1) * t / n_T + beta1
    alpha_bar = torch.exp(torch.cumsum(torch.log1p(-beta), dim=0))
    return {"beta": beta, "alpha_bar": alpha_bar}


class LinearNoise:
    """Forward process ``z_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` (DDPM eq. 4).

    Parameters
    ----------
    beta1, beta2, n_T
        Linear schedule endpoints and number of steps.
    """

    def __init__(self, beta1: float = 1e-4, beta2: float = 0.02, n_T: int = 1000) -> None:
        self.beta1, self.beta2, self.n_T = beta1, beta2, n_T
        sched = linear_beta_schedule(beta1, beta2, n_T)
        self.beta64 = sched["beta"]
        self.alpha_bar64 = sched["alpha_bar"]
        self.beta = self.beta64.float()
        self.alpha_bar = self.alpha_bar64.float()
        self._alpha_bar_on: dict[torch.device, torch.Tensor] = {}

    def _alpha_bar(self, device: torch.device) -> torch.Tensor:
        """alpha_bar on ``device``, copied there once (not on every training step)."""
        if device not in self._alpha_bar_on:
            self._alpha_bar_on[device] = self.alpha_bar.to(device)
        return self._alpha_bar_on[device]

    def degrade(
        self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Noise ``x0`` to integer timesteps ``t`` (shape [B], values 1..n_T)."""
        if noise is None:
            noise = torch.randn_like(x0)
        abar = self._alpha_bar(x0.device)[t].view(-1, *([1] * (x0.ndim - 1)))
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise  # DDPM eq. (4)

    def schedule_curves(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Curves for the schedule figure: name -> (t, value), t = 0..n_T."""
        t = torch.arange(self.n_T + 1)
        return {"alpha_bar": (t, self.alpha_bar64), "beta": (t, self.beta64)}

    def describe(self) -> str:
        return f"linear noise: beta {self.beta1:g} -> {self.beta2:g}, n_T={self.n_T}"
