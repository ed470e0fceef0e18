"""How exact is the gradient through the pressure solve? Autograd against central finite
differences for each pressure-solver setting, at loss scale 1 and 1e-6.

A corrected rollout of ``m = 3`` steps (solver step, then a small convolution adds its
correction) on the Kármán wake (32x16, float64) and the closed-box plume (32x32,
float64); the loss is the mean squared distance to fixed targets, times the scale. The
directional derivative along a random direction of the network's parameters is compared
with the central difference (step 1e-5). Prints a markdown table.

    python scripts/adjoint_gradients.py
"""

from __future__ import annotations

import torch

from coldflow.physics import FluidState, KarmanScene, PlumeScene, PressureSolver
from coldflow.physics.grid import centered_to_faces, faces_to_centered

SOLVERS = {
    "CG, adjoint abs_tol 1e-5 (truncated)": PressureSolver("CG", adjoint_abs_tol=1e-5),
    "CG, adjoint relative (exact)": PressureSolver("CG"),
    "sparse LU": PressureSolver("sparse-LU"),
    "dense inverse": PressureSolver("dense-inverse"),
}
SCENES = {
    "Kármán 32x16": (KarmanScene, (32, 16), {"re": [2e5, 4e5]}),
    "plume 32x32 (closed box)": (PlumeScene, (32, 32), {"buoyancy": [0.5, 0.8]}),
}


def relative_error(scene_cls, resolution, params, solver, scale, m=3, eps=1e-5) -> float:
    scene = scene_cls(resolution, solver=solver, precision=64)
    p = scene.params_tensor(params, 2)
    state = scene.initial_state(params, [0, 1])
    for _ in range(5):
        state = scene.step(state, p)
    state = state.detach()
    torch.manual_seed(1)
    net = torch.nn.Conv2d(2, 2, 3, padding=1).double()
    with torch.no_grad():
        net.weight.mul_(0.1)
        net.bias.zero_()
    gen = torch.Generator().manual_seed(2)
    targets = [
        state.velocity + 0.01 * torch.randn(state.velocity.shape, generator=gen).double()
        for _ in range(m)
    ]

    def loss() -> torch.Tensor:
        s, total = state, 0.0
        for target in targets:
            s = scene.step(s, p)
            v = s.velocity + centered_to_faces(net(faces_to_centered(s.velocity)))
            s = FluidState(v * scene.free_faces(), s.density, s.pressure)
            total = total + ((s.velocity - target) ** 2).mean()
        return scale * total

    direction = [torch.randn(q.shape, generator=gen, dtype=q.dtype) for q in net.parameters()]
    loss().backward()
    ad = sum(float((q.grad * d).sum()) for q, d in zip(net.parameters(), direction, strict=True))
    with torch.no_grad():
        for q, d in zip(net.parameters(), direction, strict=True):
            q.add_(eps * d)
        up = float(loss())
        for q, d in zip(net.parameters(), direction, strict=True):
            q.sub_(2 * eps * d)
        down = float(loss())
    fd = (up - down) / (2 * eps)
    return abs(ad - fd) / abs(fd)


def main() -> None:
    print("| scene | pressure solve | rel. error, loss x 1 | rel. error, loss x 1e-6 |")
    print("|---|---|---|---|")
    for scene_name, (cls, res, params) in SCENES.items():
        for name, solver in SOLVERS.items():
            errors = [relative_error(cls, res, params, solver, s) for s in (1.0, 1e-6)]
            print(f"| {scene_name} | {name} | {errors[0]:.1e} | {errors[1]:.1e} |", flush=True)


if __name__ == "__main__":
    main()
