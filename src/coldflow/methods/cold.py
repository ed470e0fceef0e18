"""Cold diffusion (Bansal et al. 2022): restore a deterministic degradation step by step.

Training (the study's Algorithm 3): t ~ U{1..n_T}, z_t = D(x0, t), loss ||x0 - R(z_t, t)||.
Sampling, from x_T, for t = n_T .. 1 with x0_hat = R(x_t, t):

- naive (paper Algorithm 1):    x_{t-1} = D(x0_hat, t - 1)
- improved (paper Algorithm 2): x_{t-1} = x_t - D(x0_hat, t) + D(x0_hat, t - 1)

The result (``result``) is the paper's: the state x_0 after the last step
(``"last_step"``, default; for the improved sampler x_0 = x_1 - D(x0_hat, 1) + D(x0_hat, 0)),
or the last restoration R(x_1, 1) (``"restoration"``). With a perfect restorer both
samplers and both results return x0 exactly (D(x0, 0) = x0 up to the blur of sigma_0).

Blur plus noise (the hybrid degradation D(x0, t) = B(x0, t) + s_t eps): the noise in
D(x0_hat, t) is the one implied by x_t, eps_hat = (x_t - B(x0_hat, t)) / s_t, as DDIM
does for pure noise (and as the paper does for its noise degradation). Then
D(x0_hat, t) = x_t exactly, so the improved update reduces to the naive one:
x_t - D(x0_hat, t) + D(x0_hat, t - 1) = D(x0_hat, t - 1). Splitting off the
deterministic blur does not change this: x_t - B(x0_hat, t) + B(x0_hat, t - 1) +
(s_{t-1} - s_t) eps_hat = B(x0_hat, t - 1) + s_{t-1} eps_hat, again the naive update.
Any update that carries the residual r = x_t - B(x0_hat, t) scaled by s_{t-1} / s_t (the
noise part shrinking as its schedule says) coincides with the naive sampler; the improved
sampler's first-order cancellation of the restorer's error needs the residual carried
unscaled, which for s_t > 0 would carry the noise unshrunk to t = 0. So for a hybrid
degradation (``noise_std(t) > 0`` at some step) the two samplers coincide by construction:
the difference appears only where the noise std is 0 (pure blur).

Unconditional samples need a start x_T. The study used the black image. Since
D(black, t) = black (the blur keeps a constant image) the restorer sees no structure at
any step: with the improved sampler the state stays (close to) black and the samples are
near-empty images (FID far above any digit model), not digits of one shape.
:func:`fit_prior` instead fits a Gaussian mixture to fully degraded training images in a
PCA basis; sampling from it gives diverse starts.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from coldflow.methods.common import SampleResult, snapshot_steps

__all__ = ["RESULTS", "ColdDiffusion", "fit_gmm", "fit_prior"]

RESULTS = ("last_step", "restoration")
"""What sampling returns: the state x_0 after the last step (paper) or R(x_1, 1)."""


def fit_gmm(
    x: torch.Tensor, components: int, iters: int = 50, seed: int = 0, min_var: float = 1e-6
) -> dict[str, torch.Tensor]:
    """Fit a diagonal-covariance Gaussian mixture to rows of ``x`` [N, D] with EM.

    Initialised from ``components`` distinct rows chosen with ``seed``; returns
    ``weights`` [K], ``means`` [K, D] and ``variances`` [K, D] (float64).
    """
    x = x.double()
    n, _ = x.shape
    k = min(components, n)
    gen = torch.Generator().manual_seed(seed)
    means = x[torch.randperm(n, generator=gen)[:k]].clone()
    variances = x.var(0, keepdim=True).expand(k, -1).clone() + min_var
    weights = torch.full((k,), 1.0 / k, dtype=x.dtype)
    for _ in range(iters):
        # E step: responsibilities from diagonal Gaussian log densities
        log_p = (
            -0.5
            * (
                ((x[:, None, :] - means[None]) ** 2 / variances[None]).sum(-1)
                + torch.log(2 * math.pi * variances).sum(-1)[None]
            )
            + torch.log(weights)[None]
        )
        resp = torch.softmax(log_p, dim=1)
        # M step
        nk = resp.sum(0) + 1e-12
        weights = nk / n
        means = resp.T @ x / nk[:, None]
        variances = resp.T @ (x**2) / nk[:, None] - means**2
        variances = variances.clamp(min=min_var)
    return {"weights": weights, "means": means, "variances": variances}


def fit_prior(
    degraded: torch.Tensor, dims: int, components: int, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Fit the start distribution of unconditional sampling to degraded images.

    Parameters
    ----------
    degraded
        Fully degraded training images D(x, n_T), [N, C, H, W].
    dims
        PCA dimensions kept (blurred digits vary in few directions).
    components
        Mixture components.

    Returns
    -------
    dict
        ``mean`` [C*H*W], ``basis`` [dims, C*H*W] (orthonormal rows), and the mixture
        ``weights``, ``means``, ``variances`` over the PCA coefficients (float32).
    """
    flat = degraded.reshape(len(degraded), -1).double()
    mean = flat.mean(0)
    centred = flat - mean
    dims = min(dims, min(centred.shape))
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    basis = vh[:dims]
    gmm = fit_gmm(centred @ basis.T, components, seed=seed)
    return {k: v.float() for k, v in {"mean": mean, "basis": basis, **gmm}.items()}


class ColdDiffusion(nn.Module):
    """A restoration network ``R(x_t, t / n_T) ~ x0`` for a deterministic degradation.

    Parameters
    ----------
    net
        Network called as ``net(x_t, t / n_T)``, predicting the clean image.
    degradation
        Object with ``n_T``, ``degrade(x0, t, noise=None)`` and ``noise_std(t)``.
    loss
        ``"mse"`` (the study) or ``"l1"`` (the official cold diffusion code).
    prior
        ``"gmm"`` or ``"black"``: default start of unconditional sampling.
    prior_components, prior_dims
        Size of the fitted mixture (:func:`fit_prior`); its parameters are buffers, saved
        with every checkpoint.
    prior_noise
        Std of the Gaussian noise added to every start to break symmetry.
    black
        Pixel value of the black image (the data range's minimum, not 0).
    image_shape
        (C, H, W) of the data, for the prior buffers.
    result
        ``"last_step"`` (paper, default) or ``"restoration"``; see the module docstring.
    """

    def __init__(
        self,
        net: nn.Module,
        degradation,
        loss: str = "mse",
        prior: str = "gmm",
        prior_components: int = 10,
        prior_dims: int = 32,
        prior_noise: float = 0.002,
        black: float = -0.5,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        result: str = "last_step",
    ) -> None:
        super().__init__()
        if result not in RESULTS:
            raise ValueError(f"cold diffusion result must be one of {RESULTS}, got {result!r}")
        self.result = result
        if loss not in ("mse", "l1"):
            raise ValueError(f"cold diffusion loss must be 'mse' or 'l1', got {loss!r}")
        self.net = net
        self.degradation = degradation
        self.n_T = degradation.n_T
        self.loss_kind = loss
        self.prior = prior
        self.prior_noise = prior_noise
        self.black = black
        d = math.prod(image_shape)
        dims = min(prior_dims, d)
        self.register_buffer("prior_mean", torch.zeros(d))
        self.register_buffer("prior_basis", torch.zeros(dims, d))
        self.register_buffer("prior_weights", torch.zeros(prior_components))
        self.register_buffer("prior_means", torch.zeros(prior_components, dims))
        self.register_buffer("prior_variances", torch.ones(prior_components, dims))
        self.register_buffer("prior_fitted", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ training
    def restore(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """R(x_t, t): the network's estimate of x0 at integer timesteps ``t`` [B]."""
        return self.net(x_t, t.float() / self.n_T)

    def forward(self, batch: torch.Tensor | tuple) -> torch.Tensor:
        """Training loss of Algorithm 3: ||x0 - R(D(x0, t), t)|| with t ~ U{1..n_T}."""
        x0 = batch[0] if isinstance(batch, tuple | list) else batch
        t = torch.randint(1, self.n_T + 1, (x0.shape[0],), device=x0.device)
        x0_hat = self.restore(self.degradation.degrade(x0, t), t)
        if self.loss_kind == "l1":
            return (x0_hat - x0).abs().mean()
        return nn.functional.mse_loss(x0_hat, x0)

    # ------------------------------------------------------------------- priors
    @torch.no_grad()
    def set_prior(self, params: dict[str, torch.Tensor]) -> None:
        """Store the result of :func:`fit_prior` in the buffers."""
        k = len(params["weights"])
        dims = params["basis"].shape[0]
        if k != len(self.prior_weights) or dims != self.prior_basis.shape[0]:
            raise ValueError(
                f"prior has {k} components in {dims} dims; the model was built for "
                f"{len(self.prior_weights)} in {self.prior_basis.shape[0]}"
            )
        self.prior_mean.copy_(params["mean"])
        self.prior_basis.copy_(params["basis"])
        self.prior_weights.copy_(params["weights"])
        self.prior_means.copy_(params["means"])
        self.prior_variances.copy_(params["variances"])
        self.prior_fitted.fill_(True)

    @torch.no_grad()
    def start(
        self,
        n: int,
        shape: tuple[int, ...],
        prior: str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Starting points x_T of unconditional sampling (before the symmetry noise)."""
        device = self.prior_mean.device
        prior = prior or self.prior
        if prior == "black":
            return torch.full((n, *shape), self.black, device=device)
        if prior != "gmm":
            raise ValueError(f"unknown prior {prior!r}; use 'gmm' or 'black'")
        if not bool(self.prior_fitted):
            raise RuntimeError("the GMM prior is not fitted: call set_prior(fit_prior(...)) first")
        comp = torch.multinomial(self.prior_weights, n, replacement=True, generator=generator)
        z = (
            torch.randn((n, self.prior_means.shape[1]), device=device, generator=generator)
            * self.prior_variances[comp].sqrt()
            + self.prior_means[comp]
        )
        return (self.prior_mean + z @ self.prior_basis).reshape(n, *shape)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        shape: tuple[int, ...],
        *,
        sampler: str = "improved",
        start: torch.Tensor | None = None,
        prior: str | None = None,
        snapshots: list[int] | tuple[int, ...] = (),
        generator: torch.Generator | None = None,
        steps: int | None = None,
        eta: float = 0.0,
        result: str | None = None,
    ) -> SampleResult:
        """Restore from x_T: ``start`` (conditional) or a draw from the prior.

        Parameters
        ----------
        sampler
            ``"naive"`` (Algorithm 1) or ``"improved"`` (Algorithm 2).
        start
            x_T, e.g. D(x_test, n_T) for conditional sampling; overrides ``prior``.
        prior
            ``"gmm"`` or ``"black"`` (default: the model's); symmetry noise is added.
        snapshots
            Timesteps at which the state x_t is recorded.
        steps, eta
            Accepted for a common sampling call; cold sampling always takes n_T steps.
        result
            ``"last_step"`` or ``"restoration"`` (default: the model's).
        """
        if sampler not in ("naive", "improved"):
            raise ValueError(f"unknown sampler {sampler!r}; use 'naive' or 'improved'")
        if start is None:
            x = self.start(n, shape, prior, generator)
            if self.prior_noise > 0:
                x = x + self.prior_noise * torch.randn(
                    x.shape, device=x.device, generator=generator
                )
        else:
            x = start.to(self.prior_mean.device)
        return self.run_sampler(x, sampler, snapshots, result or self.result)

    def run_sampler(
        self,
        x: torch.Tensor,
        sampler: str,
        snapshots: list[int] | tuple[int, ...] = (),
        result: str = "last_step",
    ) -> SampleResult:
        """Iterate the naive or improved update from x_T = ``x``; returns x_0 or R(x_1, 1)."""
        if result not in RESULTS:
            raise ValueError(f"cold diffusion result must be one of {RESULTS}, got {result!r}")
        ts = list(range(self.n_T, 0, -1))
        wanted = snapshot_steps(ts, snapshots)
        traj, traj_t = [], []
        x0_hat = x
        for t in ts:
            if t in wanted:
                traj.append(x.clone())
                traj_t.append(wanted[t])
            t_b = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            x0_hat = self.restore(x, t_b)
            noise = self._implied_noise(x, x0_hat, t_b)
            prev = self.degradation.degrade(x0_hat, t_b - 1, noise=noise)
            if sampler == "naive":
                x = prev  # Algorithm 1
            else:  # Algorithm 2
                x = x - self.degradation.degrade(x0_hat, t_b, noise=noise) + prev
        trajectory = torch.stack(traj) if traj else None
        images = x if result == "last_step" else x0_hat
        return SampleResult(images=images, trajectory=trajectory, timesteps=traj_t)

    def _implied_noise(self, x_t, x0_hat, t):
        """The noise that makes D(x0_hat, t) = x_t (zero for a pure blur)."""
        std = self.degradation.noise_std(t).to(x_t.dtype).view(-1, *([1] * (x_t.ndim - 1)))
        if not torch.any(std > 0):
            return torch.zeros_like(x_t)
        clean = self.degradation.degrade(x0_hat, t, noise=torch.zeros_like(x_t))
        return torch.where(std > 0, (x_t - clean) / std.clamp(min=1e-12), 0.0)
