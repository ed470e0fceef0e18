"""Super-resolution of fields by diffusion: a conditional DDPM and cold diffusion with
resolution lowering, behind the interface of
:class:`~coldflow.methods.superres.FieldSuperResolution` (``upscale``, ``forward``,
``factor``, ``scale``), so that the fluid study evaluates them exactly as the
loss-trained upsamplers: same frames, same inputs, same baselines, same metrics.

Both work in the normalised units of every field method (the field divided channel-wise
by the training frames' standard deviation ``s``), and both start from what any
upsampler has, the bicubic-upsampled low-resolution field ``b = bicubic(low / s)``.

**Conditional DDPM** (SR3, Saharia et al. 2021) diffuses the *residual over bicubic*,
``r = (high / s - b) / s_r``, with ``s_r`` its per-channel standard deviation on the
training frames. The network sees ``[z_t, b]`` (the conditioning as extra input
channels) and predicts ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) r`` (or, with
``prediction="eps"``, the noise); the DDPM of the MNIST study
(:class:`~coldflow.methods.ddpm.DDPM`: its linear schedule, loss and samplers) does the
rest. A sample is ``s (b + s_r r_0)``.

- *Why the residual.* At the study's factors the bicubic field already holds nearly all
  of the energy; the detail it lacks is a few per cent of it. Diffusing the whole field
  would spend the schedule's signal-to-noise range on structure the condition already
  gives. Scaled to unit variance, the residual meets the schedule as MNIST digits do.
- *Why v, not eps.* An eps-model's estimate of the clean residual,
  ``(z_t - sqrt(1 - abar) eps_hat) / sqrt(abar)``, multiplies its error by
  ``sqrt((1 - abar) / abar)``: 160 at t = n_T of the default schedule. On the Kármán CPU
  frames an eps-model trained for 10 epochs (230 updates; noise MSE 0.014 at t = 1000)
  estimated the clean residual with a mean error of 13.6 (in units of its standard
  deviation) at t = 1000 against 0.01 at t = 1, and DDIM with 10 steps, which starts from
  those estimates, gave samples 22 times further from the reference than bicubic. The
  v estimate ``sqrt(abar) z_t - sqrt(1 - abar) v_hat`` has the error of ``v_hat`` at
  every t. Both give the same samplers (v is converted to the noise it implies) and the
  same known optimum (loss 0 on one training image, which the tests check for both).

**Cold diffusion** (Bansal et al. 2022) degrades ``x0 = high / s`` by
:class:`~coldflow.degradations.resolution.ResolutionLowering`: ``D(x0, n_T)`` is exactly
``b``, so sampling starts from the upsampled low-resolution field, and restores it with
the cold-diffusion method of the MNIST study (:class:`~coldflow.methods.cold.ColdDiffusion`,
training and the naive / improved samplers). The restorer predicts a correction of its
input, ``R(x_t, t) = x_t + net(x_t, t)``: at small t the state is almost clean. Its
training uses the high-resolution frames only (the degradation makes the input); with a
deterministic degradation and start, its samples do not vary: its spread is 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from coldflow.degradations.noise import LinearNoise
from coldflow.degradations.resolution import ResolutionLowering
from coldflow.methods.cold import ColdDiffusion
from coldflow.methods.common import channel_scale
from coldflow.methods.ddpm import DDPM
from coldflow.nets.superres import upsample

__all__ = ["COLD_SAMPLERS", "DDPM_SAMPLERS", "ColdSuperResolution", "DDPMSuperResolution"]

DDPM_SAMPLERS = ("ddim", "ancestral")
COLD_SAMPLERS = ("improved", "naive")


class _DiffusionSR(nn.Module):
    """Normalisation, the bicubic start and repeated sampling, shared by both methods."""

    def __init__(self, channels: int, scale, factor: int) -> None:
        super().__init__()
        if int(factor) != factor or factor < 2:
            raise ValueError(f"factor must be an integer >= 2, got {factor}")
        self.factor = int(factor)
        self.channels = int(channels)
        self.register_buffer("scale", channel_scale(scale, int(channels)))

    def _s(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale.to(x.device, x.dtype)[:, None, None]

    def bicubic(self, low: torch.Tensor) -> torch.Tensor:
        """``b``: the bicubic upsampling of ``low`` in normalised units."""
        return upsample(low / self._s(low), self.factor, "bicubic")

    def _check(self, low: torch.Tensor, high: torch.Tensor) -> None:
        if low.shape[1] != self.channels:
            raise ValueError(f"the model has {self.channels} channels, the data {low.shape[1]}")
        if tuple(high.shape[-2:]) != (low.shape[-2] * self.factor, low.shape[-1] * self.factor):
            raise ValueError(
                f"high {tuple(high.shape)} is not low {tuple(low.shape)} times {self.factor}"
            )

    def _generate(self, b: torch.Tensor, generator: torch.Generator | None, steps) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def upscale(
        self,
        low: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        steps: int | None = None,
    ) -> torch.Tensor:
        """One sample ``[B, C, h f, w f]`` (physical units) for each ``low`` ``[B, C, h, w]``.

        Parameters
        ----------
        generator
            Source of the sampler's noise (on the model's device). ``None``: a generator
            seeded with 0 for this call, so that the same input gives the same sample
            (evaluation is a function of its input).
        steps
            Sampling steps (DDIM steps of the DDPM; ignored by cold diffusion, which always
            takes ``n_T``); ``None``: the model's.
        """
        low = low.to(self.scale.device)
        if generator is None:
            generator = torch.Generator(low.device).manual_seed(0)
        return self._generate(self.bicubic(low), generator, steps) * self._s(low)

    @torch.no_grad()
    def samples(
        self, low: torch.Tensor, n: int, *, seed: int = 0, steps: int | None = None
    ) -> torch.Tensor:
        """``n`` samples ``[n, B, C, H, W]`` of every input, the k-th drawn with seed
        ``seed + k`` (sample 0 is what :meth:`upscale` returns for ``seed = 0``)."""
        low = low.to(self.scale.device)
        out = []
        for k in range(n):
            gen = torch.Generator(low.device).manual_seed(seed + k)
            out.append(self.upscale(low, generator=gen, steps=steps))
        return torch.stack(out)


class DDPMSuperResolution(_DiffusionSR):
    """Conditional DDPM super-resolution: noise prediction on the residual over bicubic.

    Parameters
    ----------
    net
        Network ``net([z_t, b], t / n_T) -> eps`` reading ``2 C`` channels and writing
        ``C`` (e.g. :class:`~coldflow.nets.unet.UNet` with ``out_channels = C``).
    channels
        Field channels C.
    scale
        ``[C]`` standard deviation of the training frames (physical units).
    residual_scale
        ``[C]`` standard deviation of the normalised residual ``high / s - b`` on the
        training frames.
    factor
        Upsampling factor.
    n_T, beta1, beta2
        The linear noise schedule (:class:`~coldflow.degradations.noise.LinearNoise`).
    sampler
        ``"ddim"`` (``steps`` steps, stochasticity ``eta``) or ``"ancestral"`` (n_T steps).
    steps, eta
        DDIM's defaults.
    prediction
        ``"v"`` (default) or ``"eps"``: what the network predicts (see the module
        docstring and :class:`~coldflow.methods.ddpm.DDPM`).
    """

    def __init__(
        self,
        net: nn.Module,
        channels: int,
        scale: torch.Tensor | Sequence[float] | None = None,
        residual_scale: torch.Tensor | Sequence[float] | None = None,
        factor: int = 2,
        n_T: int = 1000,
        beta1: float = 1e-4,
        beta2: float = 0.02,
        sampler: str = "ddim",
        steps: int = 20,
        eta: float = 0.0,
        prediction: str = "v",
    ) -> None:
        super().__init__(channels, scale, factor)
        if sampler not in DDPM_SAMPLERS:
            raise ValueError(f"DDPM sampler must be one of {DDPM_SAMPLERS}, got {sampler!r}")
        self.sampler, self.steps, self.eta = sampler, int(steps), float(eta)
        self.diffusion = DDPM(net, LinearNoise(beta1, beta2, n_T), prediction=prediction)
        self.n_T = self.diffusion.n_T
        self.register_buffer(
            "residual_scale", channel_scale(residual_scale, int(channels), "residual_scale")
        )

    def _r(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual_scale.to(x.device, x.dtype)[:, None, None]

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Training loss of ``{"low", "high"}``: DDPM's MSE of v (or of the noise) on the
        scaled residual, conditioned on ``b``."""
        low, high = batch["low"], batch["high"]
        self._check(low, high)
        b = self.bicubic(low)
        residual = (high / self._s(high) - b) / self._r(b)
        return self.diffusion(residual, cond=b)

    def _generate(self, b, generator, steps):
        out = self.diffusion.sample(
            len(b), tuple(b.shape[1:]), sampler=self.sampler, steps=steps or self.steps,
            eta=self.eta, generator=generator, cond=b,
        )  # fmt: skip
        return b + self._r(b) * out.images

    def extra_repr(self) -> str:
        return f"factor={self.factor}, sampler={self.sampler}, steps={self.steps}"


class _Correction(nn.Module):
    """``x + net(x, t)``: a restorer that corrects its input."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x + self.net(x, t)


class ColdSuperResolution(_DiffusionSR):
    """Cold-diffusion super-resolution: restore a resolution lowered step by step.

    Parameters
    ----------
    net
        Network ``net(x_t, t / n_T)`` reading and writing ``C`` channels; the restorer is
        ``x_t + net(x_t, t / n_T)``.
    channels, scale, factor
        As :class:`DDPMSuperResolution`.
    image_shape
        ``(H, W)`` of the high-resolution frames.
    n_T
        Steps of the degradation (:class:`ResolutionLowering`); sampling takes all of them.
    sampler
        ``"improved"`` (cold diffusion's Algorithm 2) or ``"naive"`` (Algorithm 1).
    loss
        The restorer's training loss, ``"mse"`` or ``"l1"``.
    """

    def __init__(
        self,
        net: nn.Module,
        channels: int,
        image_shape: tuple[int, int],
        scale: torch.Tensor | Sequence[float] | None = None,
        factor: int = 2,
        n_T: int = 16,
        sampler: str = "improved",
        loss: str = "mse",
    ) -> None:
        super().__init__(channels, scale, factor)
        if sampler not in COLD_SAMPLERS:
            raise ValueError(f"cold sampler must be one of {COLD_SAMPLERS}, got {sampler!r}")
        self.sampler = sampler
        self.diffusion = ColdDiffusion(
            _Correction(net),
            ResolutionLowering(n_T, factor),
            loss=loss,
            prior="black",  # never used: sampling always starts from b
            prior_components=1,
            prior_dims=1,
            image_shape=(channels, *image_shape),
        )
        self.n_T = self.diffusion.n_T

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Training loss: ``||x0 - R(D(x0, t), t)||`` on ``x0 = high / s`` (``low`` is only
        checked: the degradation makes the input)."""
        low, high = batch["low"], batch["high"]
        self._check(low, high)
        return self.diffusion(high / self._s(high))

    def _generate(self, b, generator, steps):
        return self.diffusion.sample(
            len(b), tuple(b.shape[1:]), sampler=self.sampler, start=b
        ).images

    def extra_repr(self) -> str:
        return f"factor={self.factor}, n_T={self.n_T}, sampler={self.sampler}"
