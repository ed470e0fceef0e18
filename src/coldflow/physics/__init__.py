"""PhiFlow scenes (Kármán vortex street, buoyant plume), their solver step on torch
tensors, the padded staggered layout and flow diagnostics.

``SCENES`` maps a config's ``scene.kind`` to the scene class. Nothing here reads or
writes files.
"""

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

SCENES: dict[str, type[Scene]] = {"karman": KarmanScene, "plume": PlumeScene}
"""Scene classes by config name."""

__all__ = [
    "SCENES",
    "Domain",
    "FluidState",
    "KarmanScene",
    "PlumeScene",
    "PressureSolver",
    "Scene",
    "SolverError",
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
