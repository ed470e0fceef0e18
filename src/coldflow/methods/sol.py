"""Solver-in-the-Loop (Um et al. 2020): a network corrects a low-resolution solver.

One corrected step is the differentiable solver step followed by the learned correction,

    v_{t+1} = S(v_t) + C(S(v_t), Re)            (Um et al. 2020, eq. 3)

where ``S`` is the low-resolution solver of the data set's scene (advection, viscosity,
pressure projection; gradients flow through all of it) and ``C`` the network. Training
unrolls ``m`` corrected steps from the first frame of a window of downsampled reference
frames and sums the distance of every corrected state to the reference of that step,

    L = sum_{i=1}^{m} F(v_i, r_i)                (Um et al. 2020, eq. 4)

``m = 1`` is the non-unrolled baseline ("NON"). ``F`` is any field distance of
:mod:`coldflow.losses` applied to the staggered velocity.

The network sees cell-centred velocity and one constant channel per scene parameter
(the Reynolds number and inflow speed of the Kármán flow, the buoyancy of the plume),
each divided by its data-set standard deviation; its output,
multiplied by the velocity standard deviation, is interpolated back to the faces and
added where the solver evolves the velocity: boundary faces keep the boundary condition
and faces inside obstacles keep the obstacle's velocity (zero: obstacles are at rest).
The velocity standard deviation is one number for both components, or one per component
(as in Um et al.'s code); ``net_faces="lower"`` replaces the face averages by the
original code's layout: each cell's lower y face and left x face (the last face of each
axis is dropped), and the output corrects those faces (the last face gets none).

Where the scene carries a density (the buoyant plume: the density drives the flow
through the buoyancy force), ``density`` says what the correction does with it:
``"carry"`` (the solver advects it, the network never sees it), ``"input"`` (the
network also sees the density, divided by its standard deviation, as one more channel)
or ``"correct"`` (the network's third output channel, times that standard deviation, is
added to the advected density, and the training loss adds the distance of the corrected
density to the reference, measured in units of the velocity's standard deviation so
that both terms weigh alike: ``F(v_i, r_i) + F(d_i s_v / s_d, q_i s_v / s_d)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from coldflow.methods.common import Unowned
from coldflow.physics import FluidState, Scene, centered_to_faces, faces_to_centered

__all__ = ["DENSITY_MODES", "NET_FACES", "Rollout", "SolverInTheLoop", "net_channels"]

NET_FACES = ("average", "lower")
"""How the network's cells map to the staggered faces (see the module docstring)."""

DENSITY_MODES = ("carry", "input", "correct")
"""What the correction does with a scene's density (see the module docstring)."""


def net_channels(n_params: int, density: str = "carry") -> tuple[int, int]:
    """``(in_channels, out_channels)`` of the correction network: two velocity
    components, the density where ``density`` is ``"input"`` or ``"correct"``, one
    channel per scene parameter in; two velocity components (and the density for
    ``"correct"``) out."""
    if density not in DENSITY_MODES:
        raise ValueError(f"density must be one of {DENSITY_MODES}, got {density!r}")
    sees = density != "carry"
    return 2 + int(sees) + n_params, 2 + int(density == "correct")


def _face_fluid_fraction(obstacle: torch.Tensor) -> torch.Tensor:
    """``[2, H + 1, W + 1]``: 1 - the larger obstacle fraction of a face's two cells."""
    o = obstacle[None, None].float()
    oy = F.pad(o, (0, 0, 1, 1), mode="replicate")[0, 0]
    ox = F.pad(o, (1, 1, 0, 0), mode="replicate")[0, 0]
    fy = 1 - torch.maximum(oy[:-1], oy[1:])
    fx = 1 - torch.maximum(ox[:, :-1], ox[:, 1:])
    return torch.stack((F.pad(fy, (0, 1, 0, 0)), F.pad(fx, (0, 0, 0, 1))))


@dataclass(frozen=True)
class Rollout:
    """States of a rollout: ``velocity`` ``[steps + 1, B, 2, H + 1, W + 1]`` (frame 0 is
    the start), the wall time of each step in seconds, and the advected ``density``
    ``[steps + 1, B, H, W]`` when the rollout carried one."""

    velocity: torch.Tensor
    step_seconds: list[float]
    density: torch.Tensor | None = None


class SolverInTheLoop(nn.Module):
    """A low-resolution solver with a learned correction after every step.

    Parameters
    ----------
    net
        Correction network with the channels of :func:`net_channels`: ``[B, 2 + P, H, W]
        -> [B, 2, H, W]`` for P scene parameters (one more channel in, and out for
        ``density="correct"``, where it sees the density).
    scene
        The low-resolution scene of the data set (its ``step`` is differentiable).
    loss
        Field distance ``F(a, b) -> [B]`` on padded staggered velocities (e.g.
        ``build_field_loss("mse", grid="staggered")``); ``None`` for evaluation only.
    velocity_std
        Standard deviation of the velocity in the training data: one number for both
        components, or ``(std_y, std_x)`` one per component.
    param_std
        Standard deviation of each scene parameter (order of ``scene.param_names``).
    correct
        ``False`` turns the correction off (the source solver alone).
    net_faces
        ``"average"`` (face averages in, interpolation back to the faces out) or
        ``"lower"`` (each cell's lower faces in and out, as in Um et al.'s code).
    density
        ``"carry"``, ``"input"`` or ``"correct"`` (see the module docstring); the last
        two need a scene with a density and ``density_std``.
    density_std
        Standard deviation of the density in the training data.
    density_loss
        Distance for the corrected density (cell-centred, one channel) in the training
        loss of ``density="correct"``; default: none (the density is then learned only
        through its effect on the later velocities).
    """

    def __init__(
        self,
        net: nn.Module,
        scene: Scene,
        loss: nn.Module | None = None,
        velocity_std: float | Sequence[float] = 1.0,
        param_std: Sequence[float] = (1.0,),
        correct: bool = True,
        net_faces: str = "average",
        density: str = "carry",
        density_std: float | None = None,
        density_loss: nn.Module | None = None,
    ) -> None:
        super().__init__()
        net_channels(0, density)  # checks the mode
        if density != "carry" and not scene.has_density:
            raise ValueError(
                f"density={density!r} needs a scene that carries a density; the {scene.name} "
                "scene has none (use density='carry')"
            )
        if density != "carry" and not (density_std and density_std > 0):
            raise ValueError(f"density={density!r} needs a positive density_std, got {density_std}")
        if net_faces not in NET_FACES:
            raise ValueError(f"net_faces must be one of {NET_FACES}, got {net_faces!r}")
        std = torch.as_tensor(velocity_std, dtype=torch.float32)
        if std.numel() not in (1, 2) or std.ndim > 1:
            raise ValueError(
                f"velocity_std must be one number or one per component (y, x), got {velocity_std}"
            )
        if len(param_std) != len(scene.param_names):
            raise ValueError(
                f"param_std needs one value per scene parameter {list(scene.param_names)}, "
                f"got {list(param_std)}"
            )
        self.net = net
        self.shared = Unowned(scene=scene, loss=loss, density_loss=density_loss)
        self.correct = correct
        self.net_faces = net_faces
        self.density = density
        if density != "carry":  # not in the checkpoints of runs made before the option
            self.register_buffer("density_std", torch.tensor(float(density_std)))
        # a scalar buffer for one shared std (the checkpoints of earlier runs hold one)
        self.register_buffer("velocity_std", std.reshape(()) if std.numel() == 1 else std)
        self.register_buffer("param_std", torch.tensor([float(s) for s in param_std]))
        mask = scene.free_faces().float() * _face_fluid_fraction(scene.obstacle_mask())
        self.register_buffer("face_mask", mask, persistent=False)

    @property
    def scene(self) -> Scene:
        return self.shared.scene

    # ------------------------------------------------------------------ one step
    def _params(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: params[:, i] for i, n in enumerate(self.scene.param_names)}

    def corrections(
        self, velocity: torch.Tensor, params: torch.Tensor, density: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The network's corrections: of ``velocity`` ``[B, 2, H + 1, W + 1]`` on the
        faces (zero on fixed faces and inside obstacles), in velocity units, and, for
        ``density="correct"``, of ``density`` ``[B, H, W]`` (else None).

        Parameters
        ----------
        velocity
            Padded staggered velocity after the solver step.
        params
            ``[B, P]`` scene parameters.
        density
            The advected density after the solver step (needed unless
            ``density="carry"``).
        """
        std = self.velocity_std.to(velocity.dtype).reshape(-1, 1, 1)  # (1 or 2, 1, 1)
        h, w = velocity.shape[-2] - 1, velocity.shape[-1] - 1
        if self.net_faces == "lower":
            centered = velocity[..., :h, :w] / std
        else:
            centered = faces_to_centered(velocity) / std
        channels = [centered]
        if self.density != "carry":
            if density is None:
                raise ValueError(f"density={self.density!r}: the state carries no density")
            channels.append((density / self.density_std.to(density.dtype))[:, None])
        constants = (params / self.param_std)[:, :, None, None].expand(-1, -1, h, w)
        channels.append(constants.to(centered.dtype))
        dtype = next(self.net.parameters()).dtype  # e.g. float32 net, float64 plume solver
        out = self.net(torch.cat(channels, dim=1).to(dtype)).to(velocity.dtype)
        d_density = None
        if self.density == "correct":
            fluid = 1 - self.scene.obstacle_mask().to(out.device, out.dtype)
            d_density = out[:, 2] * self.density_std.to(out.dtype) * fluid
        out = out[:, :2] * std
        if self.net_faces == "lower":
            return F.pad(out, (0, 1, 0, 1)) * self.face_mask, d_density
        return centered_to_faces(out) * self.face_mask, d_density

    def correction(
        self, velocity: torch.Tensor, params: torch.Tensor, density: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The velocity part of :meth:`corrections`."""
        return self.corrections(velocity, params, density)[0]

    def step(self, state: FluidState, params: torch.Tensor, correct: bool = True) -> FluidState:
        """One solver step, then (if ``correct``) the learned correction."""
        out = self.scene.step(state, self._params(params))
        if not correct:
            return out
        dv, dd = self.corrections(out.velocity, params, out.density)
        density = out.density if dd is None else out.density + dd.to(out.density.dtype)
        return FluidState(out.velocity + dv, density, out.pressure)

    # ------------------------------------------------------------------ training
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Unrolled training loss of a batch of windows (eq. 4), averaged over the batch.

        Parameters
        ----------
        batch
            ``downsampled_velocity`` ``[B, m + 1, 2, H + 1, W + 1]``, ``params`` ``[B, P]``
            and optionally ``downsampled_density`` ``[B, m + 1, H, W]`` (carried along by
            the solver; corrected and in the loss only for ``density="correct"`` with a
            ``density_loss``).
        """
        loss_fn = self.shared.loss
        if loss_fn is None:
            raise RuntimeError("this SolverInTheLoop was built without a loss (evaluation only)")
        frames = batch["downsampled_velocity"]
        params = batch["params"].to(frames.dtype)
        density = batch.get("downsampled_density")
        loss_fn.to(frames.device)
        state = FluidState(frames[:, 0], None if density is None else density[:, 0])
        total = frames.new_zeros(frames.shape[0])
        density_loss = self.shared.density_loss if self.density == "correct" else None
        if density_loss is not None:
            density_loss.to(frames.device)
            # the density in units of the velocity's std (see the module docstring)
            scale = self.velocity_std.mean().to(frames.dtype) / self.density_std.to(frames.dtype)
        for i in range(1, frames.shape[1]):
            state = self.step(state, params, correct=self.correct)
            total = total + loss_fn(state.velocity.to(frames.dtype), frames[:, i])
            if density_loss is not None:
                d, q = state.density.to(frames.dtype), density[:, i].to(frames.dtype)
                total = total + density_loss((d * scale)[:, None], (q * scale)[:, None])
        return total.mean()

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def rollout(
        self,
        velocity: torch.Tensor,
        params: torch.Tensor,
        steps: int,
        *,
        density: torch.Tensor | None = None,
        correct: bool = True,
    ) -> Rollout:
        """Run ``steps`` (corrected or plain) solver steps from ``velocity``.

        Parameters
        ----------
        velocity
            ``[B, 2, H + 1, W + 1]`` start state.
        params
            ``[B, P]`` scene parameters.
        steps
            Number of steps.
        density
            Optional ``[B, H, W]`` start density (advected, never corrected).
        correct
            ``False`` runs the source solver alone.

        Returns
        -------
        Rollout
            Velocities ``[steps + 1, B, ...]`` on the CPU and seconds per step.
        """
        import time

        state = FluidState(velocity, density)
        params = params.to(velocity.dtype)
        frames, seconds = [velocity.cpu()], []
        dens = [] if density is None else [density.cpu()]
        sync = torch.cuda.synchronize if velocity.is_cuda else (lambda: None)
        for _ in range(steps):
            t0 = time.perf_counter()
            state = self.step(state, params, correct=correct)
            sync()
            seconds.append(time.perf_counter() - t0)
            frames.append(state.velocity.cpu())
            if dens:
                dens.append(state.density.cpu())
        return Rollout(torch.stack(frames), seconds, torch.stack(dens) if dens else None)

    def extra_repr(self) -> str:
        H, W = self.scene.resolution
        return f"scene={self.scene.name} {H}x{W}, params={list(self.scene.param_names)}"
