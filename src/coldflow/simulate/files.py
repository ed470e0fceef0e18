"""The files of ``coldflow simulate`` beside its output: one part file per simulation in
``<out>.parts/``, the temporaries a killed run leaves there, and the attributes of the
assembled data set file (every parameter that made it, and the library versions)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coldflow.config.base import dump_yaml
from coldflow.config.fluids import FluidDataConfig
from coldflow.data.store import LAYOUT
from coldflow.physics import Scene
from coldflow.simulate.specs import SimulationSpec, physics_hash, versions

__all__ = [
    "dataset_attrs",
    "part_path",
    "parts_dir",
    "remove_stale_temporaries",
    "up_to_date",
]


def parts_dir(out: Path) -> Path:
    """The folder beside ``out`` that holds one part file per simulation."""
    return out.with_name(out.name + ".parts")


def part_path(out: Path, index: int) -> Path:
    """The part file of simulation ``index`` of the data set ``out``."""
    return parts_dir(out) / f"sim_{index:04d}.h5"


def up_to_date(cfg: FluidDataConfig, out: Path, specs: Sequence[SimulationSpec]) -> bool:
    """Whether ``out`` holds exactly the simulations ``cfg`` describes."""
    from coldflow.data.store import FieldData, FieldDataError

    try:
        with FieldData(out) as data:
            stored = [s.attrs.get("physics_hash") for s in data.simulations()]
    except (FieldDataError, OSError, KeyError):
        return False
    return stored == [physics_hash(cfg, s) for s in specs]


def stored_prefix(cfg: FluidDataConfig, out: Path, specs: Sequence[SimulationSpec]) -> int | None:
    """How many of ``specs`` a complete data set ``out`` already holds, when it holds
    exactly the first ones (a config that only added simulations, e.g. a ``val``
    split); None when it holds anything else or cannot be read."""
    from coldflow.data.store import FieldData, FieldDataError

    try:
        with FieldData(out) as data:
            stored = [s.attrs.get("physics_hash") for s in data.simulations()]
    except (FieldDataError, OSError, KeyError):
        return None
    wanted = [physics_hash(cfg, s) for s in specs]
    if not stored or len(stored) >= len(wanted) or stored != wanted[: len(stored)]:
        return None
    return len(stored)


def remove_stale_temporaries(out: Path, specs: Sequence[SimulationSpec]) -> None:
    """Delete temporary files a killed run left behind (only this shard's)."""
    for spec in specs:
        part = part_path(out, spec.index)
        for stale in part.parent.glob(f".{part.name}.*"):
            stale.unlink(missing_ok=True)
        for stale in part.parent.glob(f".batch_{spec.index:04d}.*"):
            stale.unlink(missing_ok=True)


def dataset_attrs(cfg: FluidDataConfig, scene: Scene, n: int) -> dict[str, Any]:
    """The attributes of the data set file: every setting that made it, and versions."""
    probe = cfg.probe or scene.default_probe()
    return {
        "name": cfg.name,
        "scene": scene.name,
        "dt": scene.dt,
        "frames": cfg.frames,
        "spin_up": cfg.spin_up,
        "warmup": cfg.warmup,
        "source_start": cfg.start,
        "factor": cfg.factor,
        "resolution_high": list(cfg.resolution),
        "resolution_low": list(cfg.low_resolution),
        "domain_size": list(scene.size),
        "param_names": list(scene.param_names),
        "probe": [float(probe[0]), float(probe[1])],
        "layout": LAYOUT,
        "scene_json": json.dumps(scene.describe()),
        "config_yaml": dump_yaml(cfg),
        "n_simulations": n,
        **{f"version_{k}": v for k, v in versions().items()},
    }
