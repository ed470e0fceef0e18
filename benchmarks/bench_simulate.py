"""Measure how long the study's fluid data sets take to generate.

Generates the training simulations (8 each) of ``configs/fluids/karman.yaml``
(128x64 reference -> 64x32 source) and ``configs/fluids/plume.yaml`` (128x128 -> 64x64),
i.e. the four study trajectory sets, with ``coldflow.simulate.run``; prints a table and
writes JSON (wall time, frames/s, file size, the Kármán Strouhal number). Data sets
go to a temporary directory and are deleted unless ``--keep DIR`` is given. Never
asserts on time.

    .venv/bin/python benchmarks/bench_simulate.py                  # the study sets
    .venv/bin/python benchmarks/bench_simulate.py --jobs 2         # one process per set
    .venv/bin/python benchmarks/bench_simulate.py --set frames=50  # a quick check
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = ["configs/fluids/karman.yaml", "configs/fluids/plume.yaml"]
TRAIN_ONLY = ["simulations.test.params={}", "simulations.test.seeds=[]"]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def run_one(config: str, out: str, overrides: list[str], threads: int | None) -> dict:
    """Generate one data set and measure it (runs in a worker process)."""
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    import torch

    from coldflow.config.base import load_config
    from coldflow.config.fluids import FluidDataConfig
    from coldflow.data.store import FieldData
    from coldflow.report.datasets import probe_analysis
    from coldflow.simulate.run import generate

    cfg = load_config(ROOT / config, FluidDataConfig, TRAIN_ONLY + overrides)
    if threads:
        cfg.threads = threads
    n = len(cfg.simulations.train) + len(cfg.simulations.test)
    t0 = time.perf_counter()
    generate(cfg, out, progress=False, log=lambda msg: None)
    wall = time.perf_counter() - t0
    reference_frames = n * (cfg.frames - 1)
    source_frames = n * (cfg.frames - 1 - cfg.start)
    result = {
        "config": config,
        "name": cfg.name,
        "scene": cfg.scene.kind,
        "resolution_high": list(cfg.resolution),
        "resolution_low": list(cfg.low_resolution),
        "simulations": n,
        "frames": cfg.frames,
        "batch_size": cfg.batch_size,
        "torch_threads": torch.get_num_threads(),
        "precision": cfg.scene.precision,
        "wall_s": round(wall, 2),
        "simulated_frames": reference_frames + source_frames,
        "frames_per_s": round((reference_frames + source_frames) / wall, 1),
        "file_mb": round(Path(out).stat().st_size / 2**20, 1),
    }
    if cfg.scene.kind == "karman":
        with FieldData(out) as data:
            for kind in ("reference", "source"):
                st = [probe_analysis(data, s, kind) for s in data.simulations()]
                # None where a simulation is too short for a spectrum (the tiny sets)
                result[f"strouhal_{kind}"] = [_round(a["strouhal"], 4) for a in st]
                result[f"peak_power_fraction_{kind}"] = [_round(a["power_fraction"], 3) for a in st]
            result["re"] = [s.params["re"] for s in data.simulations()]
            result["re_diameter"] = [round(s.attrs["re_diameter"], 1) for s in data.simulations()]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE")
    ap.add_argument("--jobs", type=int, default=1, help="data sets generated in parallel")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per job")
    ap.add_argument("--keep", type=Path, default=None, help="keep the data sets in this directory")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/simulate.json")
    args = ap.parse_args()

    data_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="coldflow-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    jobs = [
        (c, str(data_dir / (Path(c).stem + ".h5")), args.overrides, args.threads)
        for c in args.configs
    ]
    try:
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
            results = list(pool.map(run_one, *zip(*jobs, strict=True)))
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    total = time.perf_counter() - t0

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"coldflow simulate: {total:.0f} s in all, {args.jobs} job(s)")
    for col in (
        "data set",
        "high -> low",
        "sims x frames",
        "wall s",
        "frames/s",
        "MB",
        "Strouhal (ref)",
    ):
        table.add_column(col, justify="right", no_wrap=True)
    for r in results:
        st = r.get("strouhal_reference")
        high, low = ("x".join(map(str, r[k])) for k in ("resolution_high", "resolution_low"))
        table.add_row(
            r["name"],
            f"{high} -> {low}",
            f"{r['simulations']} x {r['frames']}",
            f"{r['wall_s']:.0f}",
            f"{r['frames_per_s']:.0f}",
            f"{r['file_mb']:.0f}",
            f"{min(st):.3f}..{max(st):.3f}" if st and None not in st else "-",
        )
    Console().print(table)

    import phi
    import phiml
    import torch

    report = {
        "total_wall_s": round(total, 2),
        "jobs": args.jobs,
        "overrides": args.overrides,
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "machine": platform.processor() or platform.machine(),
        "versions": {
            "phiflow": phi.__version__,
            "phiml": phiml.__version__,
            "torch": str(torch.__version__),
        },
        "datasets": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from coldflow.io import write_json

    write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
