"""What makes one simulation of a data set: its spec, its physics hash, the library versions.

:func:`simulation_specs` numbers the simulations of a data-set config (train first);
:func:`physics_hash` is what decides whether a stored simulation still matches its
config.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch

from coldflow.config.fluids import SPLITS, FluidDataConfig
from coldflow.physics.solver import DIRECT_METHODS

__all__ = ["SimulationSpec", "physics_hash", "simulation_specs", "versions"]


@dataclass(frozen=True)
class SimulationSpec:
    """One simulation of a data set: global index, split, seed and parameters."""

    index: int
    split: str
    seed: int
    params: dict[str, float]

    def describe(self) -> str:
        values = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"simulation {self.index} ({self.split}, seed={self.seed}, {values})"


def versions() -> dict[str, str]:
    """Versions of the libraries that made a data set."""
    import h5py
    import phi
    import phiml

    import coldflow

    return {
        "phiflow": phi.__version__,
        "phiml": phiml.__version__,
        "torch": str(torch.__version__),
        "h5py": h5py.__version__,
        "numpy": np.__version__,
        "coldflow": coldflow.__version__,
    }


def simulation_specs(cfg: FluidDataConfig) -> list[SimulationSpec]:
    """All simulations of a data set, numbered from 0 in the order of
    :data:`~coldflow.config.fluids.SPLITS` (train, test, val)."""
    out: list[SimulationSpec] = []
    for split in SPLITS:
        sc = getattr(cfg.simulations, split)
        for seed, params in zip(sc.seeds, cfg.simulation_params(split), strict=True):
            out.append(SimulationSpec(len(out), split, int(seed), params))
    return out


def physics_hash(cfg: FluidDataConfig, spec: SimulationSpec) -> str:
    """Hash of the settings that decide one simulation's data.

    Left out: the name, compression, probe and the other simulations, and the batch size
    and threads; a direct pressure solve counts as CG (see below). Batch size and threads
    do not change the physics but do change the bits: the
    pressure solve of a batch iterates until every simulation in it has converged, and
    reductions run in another order, so one simulation's frames differ with its batch
    at the level of the solver tolerance (about 3e-5 relative in float32). A part made
    with another ``batch_size`` is therefore accepted as the same simulation, and an
    interrupted run resumed with another batch size is equal to the uninterrupted one
    only to that tolerance (with the same batch size it is equal bit for bit).
    """
    keep = cfg.model_dump(
        mode="json",
        exclude={"name", "batch_size", "threads", "compression", "simulations", "probe"},
    )
    if not keep.get("spin_up"):  # data sets made before spin_up existed keep their hash
        keep.pop("spin_up", None)
    solver = keep["scene"]["solver"]
    solver.pop("adjoint_abs_tol", None)  # only gradients use it, never a data set
    if solver["method"] in DIRECT_METHODS:
        # the exact solve of the system that CG solves to rel_tol: the same simulation to
        # that tolerance (like batch_size), so data sets made with CG stay complete
        solver["method"] = "CG"
    keep["simulation"] = {"split": spec.split, "seed": spec.seed, "params": spec.params}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]
