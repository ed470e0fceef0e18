"""A Solver-in-the-Loop configuration's rollout errors over the first K steps, over seeds.

A study's SOL evaluation scores its whole rollout (e.g. 99 steps); each ``evaluation.json``
also stores the per-step means over the test simulations (``per_step``). This reads them
for every seed of each configuration (run directories ``<configuration>_s<seed>``), takes
the mean over steps 1 .. K of the corrected solver, the source and the nearest training
trajectory, and gives the mean over seeds ± a 95 % Student-t interval and the paired
differences corrected - source and corrected - nearest (paired by seed; no bootstrap over
test simulations: the per-step means are already averaged over them)::

    python scripts/sol_horizon.py runs/fluids_cpu --steps 50 plume_sol_mse plume_sol_lsim

prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from coldflow.metrics.intervals import format_interval, mean_interval

ROWS = ("corrected", "source", "nearest_training")


def horizon_means(out: Path, configuration: str, steps: int, metric: str) -> dict[str, list[float]]:
    """``{row: [mean over steps 1 .. steps, one per seed]}`` of one configuration."""
    values: dict[str, list[float]] = {row: [] for row in ROWS}
    for ev in sorted(out.glob(f"{configuration}_s*/evaluation.json")):
        per_step = json.loads(ev.read_text())["per_step"]
        for row in ROWS:
            v = per_step[row][metric][:steps]
            values[row].append(sum(v) / len(v))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the study's output directory")
    parser.add_argument("configurations", nargs="+")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--metric", default="rel_l1")
    args = parser.parse_args()
    print("| configuration | seeds | " + " | ".join(ROWS) + " | corrected - source "
          "| corrected - nearest |")  # fmt: skip
    print("|---" * (len(ROWS) + 4) + "|")
    for conf in args.configurations:
        v = horizon_means(args.out, conf, args.steps, args.metric)
        cells = [format_interval(*_mh(v[row])) for row in ROWS]
        for other in ("source", "nearest_training"):
            iv = mean_interval([a - b for a, b in zip(v["corrected"], v[other], strict=True)])
            cells.append(f"{iv.mean:+.4f} [{iv.low:+.4f}, {iv.high:+.4f}]")
        print(f"| {conf} | {len(v['corrected'])} | " + " | ".join(cells) + " |")


def _mh(values: list[float]) -> tuple[float, float]:
    iv = mean_interval(values)
    return iv.mean, iv.half_width


if __name__ == "__main__":
    main()
