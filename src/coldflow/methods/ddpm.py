"""DDPM (Ho et al. 2020): epsilon-prediction training, ancestral and DDIM sampling.

The schedule is the seed study's: index 0 is already one noise step,
``alpha_bar_0 = 1 - beta_0`` with ``beta_0`` the config's ``beta1``
(see :func:`~coldflow.degradations.noise.linear_beta_schedule`). The seed's last
ancestral step (t = 1) therefore ends at z_0 with ``alpha_bar_0 < 1``:
z_0 = sqrt(abar_0) x0 + c eps with, for an exact noise prediction,
c = sqrt(alpha_1) (1 - abar_0) / sqrt(1 - abar_1) ~ beta_0 / sqrt(beta_0 + beta_1)
(~ sqrt(beta1 / 2): 0.0067 for diffusion_model, 0.0022 for model1 and model2) and x0
shrunk by sqrt(abar_0) (``result="last_step"``). By default (``result="x0_estimate"``)
the last step instead returns the noiseless estimate
x0_hat = (z_1 - sqrt(1 - abar_1) eps) / sqrt(abar_1), as DDIM's last step (to
alpha_bar = 1) already does.

The two samplers add noise of different variance at step t -> t - 1. The ancestral
sampler uses sigma_t^2 = beta_t (DDPM's "fixed large" choice; diffusers'
``variance_type="fixed_large"``). DDIM with ``eta`` uses DDIM eq. (16),
sigma_t^2 = eta^2 (1 - abar_prev) / (1 - abar_t) (1 - abar_t / abar_prev); at eta = 1
without skipped steps that is the posterior variance
beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t < beta_t (DDPM's "fixed small"; diffusers'
``"fixed_small"``). Both share the posterior mean, so DDIM at eta = 1 is the ancestral
sampler with the smaller variance, not the ancestral sampler with skipped steps.
``variance="large"`` gives DDIM (with skipped steps too) the ancestral sampler's choice:
the same mean as eta = 1 and noise of variance eta^2 (1 - abar_t / abar_prev), which is
beta_t without skipped steps; so DDIM with eta = 1, ``variance="large"`` and every step is
the ancestral sampler, and a study can compare the two variances at any number of steps.
"""

from __future__ import annotations

import torch
from torch import nn

from coldflow.degradations.noise import LinearNoise
from coldflow.methods.common import SampleResult, snapshot_steps

__all__ = ["DDIM_STEPS", "DDPM", "PREDICTIONS", "RESULTS", "VARIANCES", "ddim_timesteps"]

DDIM_STEPS = 50
"""DDIM steps of a sampling call (and of a config) that names none."""

VARIANCES = ("small", "large")
"""DDIM's noise variance: eq. (16) ("small", the posterior variance at eta = 1) or the
ancestral sampler's ("large", eta^2 (1 - abar_t / abar_prev))."""

PREDICTIONS = ("eps", "v")
"""What the network predicts: the noise, or v (see :class:`DDPM`)."""

RESULTS = ("x0_estimate", "last_step")
"""What the ancestral sampler returns: the noiseless x0 estimate at t = 1, or the seed's z_0."""


def ddim_timesteps(n_T: int, steps: int) -> list[int]:
    """Evenly spaced, strictly decreasing timesteps from n_T down to 1 (``steps`` of them)."""
    steps = max(1, min(steps, n_T))
    ts = torch.linspace(n_T, 1, steps).round().long().tolist()
    return sorted(set(ts), reverse=True)


class DDPM(nn.Module):
    """A noise-prediction network ``g(z_t, t / n_T)`` and the linear noise schedule.

    ``forward(x0)`` returns the training loss (Algorithm 1); ``sample`` draws images.

    Parameters
    ----------
    net
        Network called as ``net(z_t, t / n_T)``.
    degradation
        The :class:`~coldflow.degradations.noise.LinearNoise` forward process.
    result
        ``"x0_estimate"`` (default): the ancestral sampler's last step returns the
        noiseless estimate of x0; ``"last_step"``: the seed's z_0 (residual noise, see
        the module docstring).
    prediction
        What the network predicts: ``"eps"`` (the noise, DDPM's and the MNIST study's) or
        ``"v"`` (Salimans & Ho 2022, ``v = sqrt(abar) eps - sqrt(1 - abar) x0``, trained
        with the MSE of v). Sampling converts v to the noise it implies,
        ``eps = sqrt(1 - abar) z + sqrt(abar) v``, so both use the same samplers. With v
        the x0 estimate ``sqrt(abar) z - sqrt(1 - abar) v`` never multiplies the
        network's error by ``sqrt((1 - abar) / abar)`` (160 at t = n_T of the default
        schedule), which eps-prediction does at high noise.
    """

    def __init__(
        self,
        net: nn.Module,
        degradation: LinearNoise,
        result: str = "x0_estimate",
        prediction: str = "eps",
    ) -> None:
        super().__init__()
        if result not in RESULTS:
            raise ValueError(f"DDPM result must be one of {RESULTS}, got {result!r}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"DDPM prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.result = result
        self.prediction = prediction
        self.net = net
        self.degradation = degradation
        self.n_T = degradation.n_T
        self.register_buffer("beta", degradation.beta.clone(), persistent=False)
        self.register_buffer("alpha_bar", degradation.alpha_bar.clone(), persistent=False)

    def predict(
        self, z_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predicted noise at integer timesteps ``t`` [B].

        ``cond`` (conditional DDPM, e.g. the upsampled low-resolution field of
        super-resolution) is concatenated to ``z_t`` along the channels: the network sees
        ``[z_t, cond]`` and predicts for ``z_t`` only. A v-predicting network's output is
        converted to the noise it implies.
        """
        out = self._net(z_t, t, cond)
        if self.prediction == "eps":
            return out
        abar = self.alpha_bar[t].to(z_t.dtype).view(-1, *([1] * (z_t.ndim - 1)))
        return (1 - abar).sqrt() * z_t + abar.sqrt() * out  # the noise this v implies

    def _net(self, z_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None):
        x = z_t if cond is None else torch.cat([z_t, cond.to(z_t.dtype)], dim=1)
        return self.net(x, t.float() / self.n_T)

    def forward(
        self, batch: torch.Tensor | tuple, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Training loss of DDPM Algorithm 1: MSE between the noise and its prediction.

        ``batch`` is the clean images x0, or a tuple whose first entry they are; ``cond``
        the conditioning channels of a conditional model (see :meth:`predict`).
        """
        x0 = batch[0] if isinstance(batch, tuple | list) else batch
        t = torch.randint(1, self.n_T + 1, (x0.shape[0],), device=x0.device)
        eps = torch.randn_like(x0)
        z_t = self.degradation.degrade(x0, t, noise=eps)
        if self.prediction == "eps":
            return nn.functional.mse_loss(self._net(z_t, t, cond), eps)
        abar = self.alpha_bar[t].to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
        v = abar.sqrt() * eps - (1 - abar).sqrt() * x0
        return nn.functional.mse_loss(self._net(z_t, t, cond), v)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        shape: tuple[int, ...],
        *,
        sampler: str = "ancestral",
        steps: int | None = None,
        eta: float = 0.0,
        variance: str = "small",
        snapshots: list[int] | tuple[int, ...] = (),
        generator: torch.Generator | None = None,
        result: str | None = None,
        cond: torch.Tensor | None = None,
    ) -> SampleResult:
        """Draw ``n`` images of ``shape`` (C, H, W) starting from z_T ~ N(0, I).

        Parameters
        ----------
        sampler
            ``"ancestral"`` (Algorithm 2 with sigma_t^2 = beta_t, "fixed large", n_T steps)
            or ``"ddim"`` (DDIM eq. 12 with the variance of eq. 16, see ``eta``).
        steps
            DDIM steps (default :data:`DDIM_STEPS`); ignored by the ancestral sampler.
        eta
            DDIM stochasticity: 0 is deterministic; 1 gives, without skipped steps, the
            posterior variance beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t ("fixed
            small"), not the ancestral sampler's beta_t (see the module docstring).
        variance
            DDIM's noise: ``"small"`` (eq. 16) or ``"large"`` (the ancestral sampler's,
            eta^2 (1 - abar_t / abar_prev), on the same mean); see :data:`VARIANCES`.
        snapshots
            Timesteps at which to record the state (see :class:`SampleResult`). For DDIM
            the nearest visited timestep at or above each requested one is recorded.
        generator
            Source of randomness (on the model's device) for reproducible samples.
        result
            Overrides the model's ``result`` (ancestral sampler only).
        cond
            Conditioning channels ``[n, C', H, W]`` given to every network call (see
            :meth:`predict`); ``None``: unconditional.
        """
        result = result or self.result
        if variance not in VARIANCES:
            raise ValueError(f"DDIM variance must be one of {VARIANCES}, got {variance!r}")
        if result not in RESULTS:
            raise ValueError(f"DDPM result must be one of {RESULTS}, got {result!r}")
        device = self.alpha_bar.device
        z = torch.randn((n, *shape), device=device, generator=generator)
        if sampler == "ancestral":
            ts = list(range(self.n_T, 0, -1))
        elif sampler == "ddim":
            ts = ddim_timesteps(self.n_T, steps or DDIM_STEPS)
        else:
            raise ValueError(f"unknown sampler {sampler!r}; use 'ancestral' or 'ddim'")
        wanted = snapshot_steps(ts, snapshots)
        traj, traj_t = [], []
        for i, t in enumerate(ts):
            if t in wanted:
                traj.append(z.clone())
                traj_t.append(wanted[t])
            t_batch = torch.full((n,), t, device=device, dtype=torch.long)
            eps = self.predict(z, t_batch, cond)
            if sampler == "ancestral" and t == 1 and result == "x0_estimate":
                z = self._x0_estimate(z, eps, t)
            elif sampler == "ancestral":
                z = self._ancestral_step(z, eps, t, generator)
            else:
                t_prev = ts[i + 1] if i + 1 < len(ts) else 0
                z = self._ddim_step(z, eps, t, t_prev, eta, generator, variance)
        trajectory = torch.stack(traj) if traj else None
        return SampleResult(images=z, trajectory=trajectory, timesteps=traj_t)

    def _x0_estimate(self, z, eps, t):
        abar = self.alpha_bar[t]
        return (z - (1 - abar).sqrt() * eps) / abar.sqrt()  # DDPM eq. (4) solved for x0

    def _ancestral_step(self, z, eps, t, generator):
        """One step t -> t - 1 of DDPM Algorithm 2, noise variance sigma_t^2 = beta_t."""
        beta, abar = self.beta[t], self.alpha_bar[t]
        # DDPM Algorithm 2 line 4: z_{t-1} = (z_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)
        z = (z - beta / (1 - abar).sqrt() * eps) / (1 - beta).sqrt()
        if t > 1:
            z = z + beta.sqrt() * torch.randn(z.shape, device=z.device, generator=generator)
        return z

    def _ddim_step(self, z, eps, t, t_prev, eta, generator, variance="small"):
        """One DDIM step t -> t_prev; noise variance sigma^2 of eq. (16), which for
        t_prev = t - 1 and eta = 1 is the posterior variance beta~_t (not beta_t), or
        with ``variance="large"`` eta^2 (1 - abar_t / abar_prev) on the same mean."""
        abar = self.alpha_bar[t]
        abar_prev = self.alpha_bar[t_prev] if t_prev > 0 else torch.ones_like(abar)
        x0 = (z - (1 - abar).sqrt() * eps) / abar.sqrt()
        # DDIM eq. (16): sigma = eta sqrt((1 - abar_prev)/(1 - abar)) sqrt(1 - abar/abar_prev)
        sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).clamp(min=0).sqrt()
        z = abar_prev.sqrt() * x0 + (1 - abar_prev - sigma**2).clamp(min=0).sqrt() * eps
        if variance == "large":
            sigma = eta * (1 - abar / abar_prev).clamp(min=0).sqrt()
        if eta > 0 and t_prev > 0:
            z = z + sigma * torch.randn(z.shape, device=z.device, generator=generator)
        return z
