"""PhiFlow scenes (Kármán vortex street, buoyant plume), their solver step on torch
tensors, the padded staggered layout and flow diagnostics.

``SCENES`` maps a config's ``scene.kind`` to the scene class; :func:`build_scene` builds
the scene of a data-set config. Nothing here reads or writes files.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from coldflow.physics.diagnostics import (
    dominant_frequency,
    probe_series,
    strouhal_number,
    vorticity,
)
from coldflow.physics.grid import (
    Domain,
    centered_to_faces,
    centered_to_tensor,
    downsample_centered,
    downsample_velocity,
    faces_to_centered,
    fixed_face_values,
    free_face_mask,
    staggered_to_tensor,
    tensor_to_centered,
    tensor_to_staggered,
)
from coldflow.physics.karman import KarmanScene
from coldflow.physics.plume import PlumeScene
from coldflow.physics.scene import Scene
from coldflow.physics.solver import FluidState, PressureSolver, SolverError

if TYPE_CHECKING:
    from coldflow.config.fluids import FluidDataConfig

SCENES: dict[str, type[Scene]] = {"karman": KarmanScene, "plume": PlumeScene}
"""Scene classes by config name."""

_SCENES_BUILT: dict[str, Scene] = {}


def build_scene(cfg: FluidDataConfig, resolution: tuple[int, int] | None = None) -> Scene:
    """The scene of a data-set config at ``resolution`` (default: the high resolution).

    Scenes are cached per process (by settings and resolution), so a second data set
    with the same scene reuses the compiled step instead of tracing it again.
    """
    resolution = tuple(resolution or cfg.resolution)
    key = json.dumps([cfg.scene.model_dump(mode="json"), resolution], sort_keys=True)
    if key not in _SCENES_BUILT:
        scene_cfg = cfg.scene.model_dump()
        kind = scene_cfg.pop("kind")
        solver = PressureSolver(**scene_cfg.pop("solver"))
        _SCENES_BUILT[key] = SCENES[kind](resolution=resolution, solver=solver, **scene_cfg)
    return _SCENES_BUILT[key]


__all__ = [
    "SCENES",
    "Domain",
    "FluidState",
    "KarmanScene",
    "PlumeScene",
    "PressureSolver",
    "Scene",
    "SolverError",
    "build_scene",
    "centered_to_faces",
    "centered_to_tensor",
    "dominant_frequency",
    "downsample_centered",
    "downsample_velocity",
    "faces_to_centered",
    "fixed_face_values",
    "free_face_mask",
    "probe_series",
    "staggered_to_tensor",
    "strouhal_number",
    "tensor_to_centered",
    "tensor_to_staggered",
    "vorticity",
]
