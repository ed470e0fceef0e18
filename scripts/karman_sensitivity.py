"""Which Kármán scene parameters change the flow at the study's resolution?

Simulates the wake at one resolution for a baseline and for one change at a time (the
Reynolds number, the inflow speed, the obstacle's radius and position, the initial
poke) and measures, after the warm-up, how each flow differs from the baseline:

- the shedding period (probe spectrum) and the probe amplitude, in the first and the
  second half of the analysed window (settled when they agree);
- the relative L1 distance of the velocity fields at the same frames ("copying the
  baseline over the same frames"), and the smallest one over time shifts of up to one
  period and mirroring in x ("copying it at the best phase"): a flow that differs only
  by phase or by the sign of its poke is close in the second measure.

Run (about 5 minutes on one core at 128x64)::

    python scripts/karman_sensitivity.py --out docs/results/karman_sensitivity

and it writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from coldflow.io import atomic_path
from coldflow.physics.diagnostics import (
    crossing_period,
    dominant_frequency,
    probe_series,
    settling,
)
from coldflow.physics.karman import KarmanScene
from coldflow.tasks.sol.evaluation import mirror_staggered

BASE = {"re": 2e5, "inflow_speed": 1.0, "seed": 0}
# (label, scene changes, per-simulation changes)
VARIANTS: list[tuple[str, dict, dict]] = [
    ("baseline (Re 2e5, U 1, r 10, x 50, poke 0.5, seed 0)", {}, {}),
    ("Re 1e5", {}, {"re": 1e5}),
    ("Re 8e5", {}, {"re": 8e5}),
    ("Re 1e4 (nu = 1: viscous)", {}, {"re": 1e4}),
    ("seed 1 (other poke)", {}, {"seed": 1}),
    ("seed 3", {}, {"seed": 3}),
    ("U 0.8", {}, {"inflow_speed": 0.8}),
    ("U 1.2", {}, {"inflow_speed": 1.2}),
    ("U 1.5", {}, {"inflow_speed": 1.5}),
    ("poke 0.1", {"perturbation": 0.1}, {}),
    ("radius 8", {"obstacle_radius": 8.0}, {}),
    ("radius 12", {"obstacle_radius": 12.0}, {}),
    ("centre x 45", {"obstacle_center": (50.0, 45.0)}, {}),
]


def run_group(scene: KarmanScene, sims: list[dict], steps: int, keep_from: int):
    params = {k: [s[k] for s in sims] for k in ("re", "inflow_speed")}
    state = scene.initial_state(params, [s["seed"] for s in sims])
    frames = []
    for t in range(1, steps + 1):
        state = scene.step(state, params)
        if t >= keep_from:
            frames.append(state.velocity.detach().float().clone())
    return torch.stack(frames, 1)  # [B, T, 2, H+1, W+1]


def period_and_amplitude(part: np.ndarray, dt: float) -> dict:
    return {"period": crossing_period(part, dt), "amplitude": float(0.5 * np.ptp(part))}


def analyse(series: np.ndarray, dt: float) -> dict:
    """Period and amplitude of the whole window and of its halves (settled when they agree)."""
    halves = settling(series, dt)
    out = {
        half: {"period": halves["period"][k], "amplitude": halves["amplitude"][k]}
        for k, half in enumerate(("first", "second"))
    }
    out["all"] = period_and_amplitude(series, dt)
    out["all"]["settled"] = halves["settled"]
    peak = dominant_frequency(series, dt)
    out["all"]["spectral_period"] = 1 / peak.frequency if peak.frequency else float("inf")
    return out


def windows(series: np.ndarray, dt: float, first: int, size: int) -> list[dict]:
    """Period and amplitude in consecutive windows of ``size`` frames from frame ``first``."""
    return [
        {"frames": [first + a, first + a + size], **period_and_amplitude(series[a : a + size], dt)}
        for a in range(0, len(series) - size + 1, size)
    ]


def distances(a: torch.Tensor, b: torch.Tensor, max_shift: int) -> dict:
    """rel. L1 of ``a`` against ``b`` at the same frames, and best over shifts/mirroring."""
    n = a.shape[0] - max_shift

    def rel(x, y):
        return float((x - y).abs().sum() / y.abs().sum())

    same = rel(a[:n], b[:n])
    best = same
    for mirrored in (False, True):
        bb = mirror_staggered(b) if mirrored else b
        for s in range(0, max_shift + 1):
            best = min(best, rel(a[:n], bb[s : s + n]))
    return {"same_frames": same, "best_phase": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, nargs=2, default=(128, 64))
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--analyse-from", type=int, default=400)
    ap.add_argument("--window", type=int, default=300, help="frames per settling window")
    ap.add_argument("--out", default="docs/results/karman_sensitivity")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    groups: dict[str, list[int]] = {}
    for i, (_, scene_changes, _) in enumerate(VARIANTS):
        groups.setdefault(json.dumps(scene_changes, sort_keys=True), []).append(i)
    fields: dict[int, torch.Tensor] = {}
    scenes: dict[int, KarmanScene] = {}
    for key, idx in groups.items():
        scene = KarmanScene(resolution=tuple(args.resolution), **json.loads(key))
        sims = [{**BASE, **VARIANTS[i][2]} for i in idx]
        v = run_group(scene, sims, args.steps, 1)
        for j, i in enumerate(idx):
            fields[i], scenes[i] = v[j], scene
        print(f"simulated {[VARIANTS[i][0] for i in idx]} ({time.perf_counter() - t0:.0f} s)")
    base_scene = scenes[0]
    probe = base_scene.default_probe()
    rows = []
    base_period = None
    k0 = args.analyse_from - 1  # fields hold frames 1..steps
    for i, (label, _, _) in enumerate(VARIANTS):
        full = probe_series(fields[i], base_scene.domain.spacing, probe, "x").numpy()
        series = full[k0:]
        a = analyse(series, base_scene.dt)
        if i == 0:
            base_period = a["all"]["period"]
        d = distances(fields[i][k0:], fields[0][k0:], int(round(base_period)))
        rows.append(
            {
                "variant": label,
                **a["all"],
                "halves": a,
                "windows": windows(full, base_scene.dt, 1, args.window),
                **d,
            }
        )
    result = {
        "resolution": list(args.resolution),
        "steps": args.steps,
        "analysed_from": args.analyse_from,
        "probe": list(probe),
        "seconds": time.perf_counter() - t0,
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2))
    lines = [
        f"# Kármán sensitivity at {args.resolution[0]}x{args.resolution[1]}",
        "",
        f"`python scripts/karman_sensitivity.py`: frames {args.analyse_from}..{args.steps} "
        f"of each flow ({result['seconds'] / 60:.0f} min on one core). Period and "
        "amplitude of the x velocity at the probe (2.5 diameters behind the cylinder), in "
        "the first / second half of the window; rel. L1 distance of the velocity field "
        "to the baseline's at the same frames and at the best time shift (up to one "
        "period) and mirroring.",
        "",
        "| variant | period (1st / 2nd half) | amplitude (1st / 2nd half) | rel. L1 to "
        "baseline, same frames | best phase |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["halves"]
        lines.append(
            f"| {r['variant']} | {s['first']['period']:.1f} / {s['second']['period']:.1f} | "
            f"{s['first']['amplitude']:.3f} / {s['second']['amplitude']:.3f} | "
            f"{r['same_frames']:.4f} | {r['best_phase']:.4f} |"
        )
    lines += [
        "",
        f"Settling: probe period / amplitude in windows of {args.window} frames.",
        "",
        "| variant | "
        + " | ".join(f"{w['frames'][0]}-{w['frames'][1]}" for w in rows[0]["windows"])
        + " |",
        "|---|" + "---|" * len(rows[0]["windows"]),
    ]
    for r in rows:
        cells = [f"{w['period']:.0f} / {w['amplitude']:.2f}" for w in r["windows"]]
        lines.append(f"| {r['variant']} | " + " | ".join(cells) + " |")
    with atomic_path(out.with_suffix(".md")) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
