"""How should LSiM see a field smaller than its 64x64 minimum? Padding against resizing.

A 64x32 Kármán field (the SOL study's low resolution) is narrower than LSiM's minimum
input (64): the field adapter (:class:`coldflow.losses.FieldDistance`) enlarges each
velocity component before the metric sees it, for the training loss and for the metric
alike. This script compares the ways it can:

- ``edge``: repeat the border column (each wall column copied 16 times);
- ``reflect``: mirror the field about its border column;
- ``zero``: pad with zeros;
- ``masked``: pad with zeros and average LSiM's feature maps over the field's own share
  of each receptive field only (:func:`coldflow.losses.lsim.feature_masks`), min-max
  scaling over the field only;
- ``resize-bilinear`` / ``resize-bicubic``: interpolate to 64 on the short side (aspect
  ratio kept: 65x33 -> 130x64).

on controlled perturbations of test frames (``data/karman_cpu.h5`` if it exists, else a
small Kármán case simulated here with the project's scene):

1. *Walls against interior*: the same smooth perturbation, with the same energy, on the
   two columns next to each side wall or on two interior strips of two columns. Both
   cover the same area of the field (area ratio 1); a method that over-counts the walls
   gives a wall/interior ratio far above that, and far above LSiM's own ratio on the
   unpadded 128x64 field.
2. *Monotonicity*: the distance must grow with the perturbation's amplitude.
3. *Agreement with LSiM where no padding is needed*: the same physical perturbations
   (applied on the 128x64 reference, then restricted to 64x32 as the data set does),
   and natural differences (the flow against itself some frames later), scored at
   128x64 without any fitting; Spearman's rank correlation of each method's distances
   with those.
4. *Gradients*: the share of the loss gradient on the wall columns, against the share
   on the same number of interior columns (what training sees).

Run (about half a minute on one core)::

    python scripts/lsim_padding.py --out docs/results/lsim_padding

and it writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from coldflow.io import atomic_path
from coldflow.losses import FieldDistance, LSiM
from coldflow.physics import downsample_velocity

METHODS: dict[str, dict] = {
    "edge": {"fit": "pad", "pad_mode": "edge"},
    "reflect": {"fit": "pad", "pad_mode": "reflect"},
    "zero": {"fit": "pad", "pad_mode": "constant"},
    "masked": {"fit": "pad", "pad_mode": "masked"},
    "resize-bilinear": {"fit": "resize", "resize_mode": "bilinear"},
    "resize-bicubic": {"fit": "resize", "resize_mode": "bicubic"},
}
AMPLITUDES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4)  # in units of each component's std
SHIFTS = (1, 2, 5, 10, 20, 40)  # frames between the two fields of a natural pair
STRIP = 2 / 32  # width of one perturbed strip, as a fraction of the channel width


# ------------------------------------------------------------------ data


def load_frames(path: Path, frames_per_sim: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(high [N, 2, 129, 65], shifted high [N, S, ...], source)`` of test frames."""
    from coldflow.data.store import FieldData

    with FieldData(path) as data:
        sims = data.simulations("test") or data.simulations()
        last = data.frames - 1 - max(SHIFTS)
        picks = np.linspace(data.warmup, last, frames_per_sim).round().astype(int)
        high, later = [], []
        for sim in sims:
            for t in picks:
                high.append(data.read(sim, "reference", "velocity", int(t)))
                later.append(
                    np.stack([data.read(sim, "reference", "velocity", int(t + s)) for s in SHIFTS])
                )
        name = f"{path} ({len(sims)} test simulations, frames {[int(t) for t in picks]})"
    return torch.from_numpy(np.stack(high)), torch.from_numpy(np.stack(later)), name


def simulate_frames(frames: int, spin_up: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """A Kármán flow at 128x64 (the data set's scene) when no data set file is there."""
    from coldflow.physics import KarmanScene

    scene = KarmanScene(resolution=(128, 64))
    params = {"re": [2e5], "inflow_speed": [1.0]}
    state = scene.initial_state(params, [0])
    kept = []
    stride = 7
    total = spin_up + stride * (frames - 1) + max(SHIFTS)
    with torch.no_grad():
        for t in range(1, total + 1):
            state = scene.step(state, params)
            if t >= spin_up:
                kept.append(state.velocity[0].float().clone())
    kept = torch.stack(kept)
    picks = [stride * i for i in range(frames)]
    high = kept[picks]
    later = torch.stack([kept[[p + s for s in SHIFTS]] for p in picks])
    return high, later, f"a simulated Kármán flow (128x64, U 1, Re 2e5, {spin_up} spin-up steps)"


# ------------------------------------------------------------------ perturbations


def face_coordinates(h: int, w: int) -> tuple[torch.Tensor, ...]:
    """Normalised ``(Y, X)`` of the y faces ``[h + 1, w]`` and the x faces ``[h, w + 1]``."""
    yy = (torch.arange(h + 1.0) / h)[:, None].expand(h + 1, w)
    yx = ((torch.arange(w) + 0.5) / w)[None, :].expand(h + 1, w)
    xy = ((torch.arange(h) + 0.5) / h)[:, None].expand(h, w + 1)
    xx = (torch.arange(w + 1.0) / w)[None, :].expand(h, w + 1)
    return yy, yx, xy, xx


def strips(x: torch.Tensor, where: str) -> torch.Tensor:
    """1 on the perturbed columns: two strips of width :data:`STRIP` at the side walls
    (``wall``), in the interior (``interior``, centred at X = 1/4 and 3/4, clear of the
    cylinder) or everywhere (``global``)."""
    if where == "wall":
        return ((x < STRIP) | (x > 1 - STRIP)).float()
    if where == "interior":
        inside = (x >= 0.25 - STRIP / 2) & (x < 0.25 + STRIP / 2)
        return (inside | ((x >= 0.75 - STRIP / 2) & (x < 0.75 + STRIP / 2))).float()
    return torch.ones_like(x)


def perturbation(h: int, w: int, where: str, scale: tuple[float, float]) -> torch.Tensor:
    """A smooth pattern along the flow, ``sin(2 pi 4 Y)`` (and ``cos`` for v_x), on the
    columns of ``where``, in the padded staggered layout ``[2, h + 1, w + 1]``, each
    component times its own ``scale``."""
    yy, yx, xy, xx = face_coordinates(h, w)
    out = torch.zeros(2, h + 1, w + 1)
    out[0, :, :w] = scale[0] * torch.sin(2 * math.pi * 4 * yy + 0.3) * strips(yx, where)
    out[1, :h, :] = scale[1] * torch.cos(2 * math.pi * 4 * xy + 0.3) * strips(xx, where)
    if where == "global":
        out[0, :, :w] *= torch.sin(math.pi * yx)
        out[1, :h, :] *= torch.sin(math.pi * xx)
    return out


def component_std(v: torch.Tensor) -> tuple[float, float]:
    return float(v[:, 0, :, :-1].std()), float(v[:, 1, :-1, :].std())


# ------------------------------------------------------------------ measurement


def metrics() -> dict[str, torch.nn.Module]:
    """The LSiM metric (joint min-max scaling, as evaluation uses it) with each method."""
    lsim = LSiM(scaling="joint")
    out = {name: FieldDistance(lsim, grid="staggered", **options)
           for name, options in METHODS.items()}  # fmt: skip
    out["native"] = FieldDistance(lsim, grid="staggered", fit="none")
    return out


def distances(fn, a: torch.Tensor, b: torch.Tensor, batch: int = 32) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate(
            [fn(a[i : i + batch], b[i : i + batch]).numpy() for i in range(0, len(a), batch)]
        )


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def measure(high: torch.Tensor, later: torch.Tensor) -> dict:
    low = downsample_velocity(high, 2)
    low_later = downsample_velocity(later, 2)
    n = len(high)
    H, W = high.shape[-2] - 1, high.shape[-1] - 1
    sigma = component_std(high)  # restriction keeps the scale; one perturbation per grid
    fns = metrics()
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # grid -> (a, b) per case
    cases = []
    a_hi, b_hi, a_lo, b_lo = [], [], [], []
    for where in ("wall", "interior", "global"):
        p_hi = perturbation(H, W, where, sigma)
        p_lo = downsample_velocity(p_hi, 2)
        for amp in AMPLITUDES:
            cases.append((where, amp))
            a_hi.append(high), b_hi.append(high + amp * p_hi)
            a_lo.append(low), b_lo.append(low + amp * p_lo)
    for s, shift in enumerate(SHIFTS):
        cases.append(("shift", shift))
        a_hi.append(high), b_hi.append(later[:, s])
        a_lo.append(low), b_lo.append(low_later[:, s])
    pairs["high"] = (torch.cat(a_hi), torch.cat(b_hi))
    pairs["low"] = (torch.cat(a_lo), torch.cat(b_lo))
    # energy check: wall and interior perturbations are equal on both grids
    energy = {
        grid: {w: float((downsample_velocity(perturbation(H, W, w, sigma), f) ** 2).sum())
               for w in ("wall", "interior")}
        for grid, f in (("high", 1), ("low", 2))
    }  # fmt: skip
    values, seconds = {}, {}
    for name, fn in fns.items():
        grid = "high" if name == "native" else "low"
        t0 = time.perf_counter()
        d = distances(fn, *pairs[grid])
        seconds[name] = (time.perf_counter() - t0) / len(d)
        values[name] = d.reshape(len(cases), n)
    out: dict = {"cases": [list(c) for c in cases], "energy": energy, "methods": {}}
    index = {c: i for i, c in enumerate(cases)}
    native = values["native"]
    for name, d in values.items():
        wall = np.array([d[index[("wall", a)]] for a in AMPLITUDES])  # [amps, n]
        inner = np.array([d[index[("interior", a)]] for a in AMPLITUDES])
        ratio = wall / inner
        curves = [
            np.array([d[index[(w, a)]] for a in AMPLITUDES]) for w in ("wall", "interior", "global")
        ]
        shifts = np.array([d[index[("shift", s)]] for s in SHIFTS])
        increasing = sum(int(np.all(np.diff(c[:, j]) > 0)) for c in curves for j in range(n))
        increasing_shift = sum(int(np.all(np.diff(shifts[:, j]) > 0)) for j in range(n))
        out["methods"][name] = {
            "wall_over_interior": {
                f"{a:g}": float(np.median(ratio[i])) for i, a in enumerate(AMPLITUDES)
            },
            "wall_over_interior_range": [float(ratio.min()), float(ratio.max())],
            "monotone_in_amplitude": [increasing, 3 * n],
            "monotone_in_shift": [increasing_shift, n],
            "spearman_vs_native": spearman(d.ravel(), native.ravel()),
            "spearman_vs_native_perturbations": spearman(d[: 3 * len(AMPLITUDES)].ravel(),
                                                         native[: 3 * len(AMPLITUDES)].ravel()),
            "spearman_vs_native_shifts": spearman(shifts.ravel(), native[-len(SHIFTS):].ravel()),
            "seconds_per_pair": seconds[name],
        }  # fmt: skip
    out["gradients"] = gradient_shares(fns, high, low, sigma)
    return out


def gradient_shares(fns, high: torch.Tensor, low: torch.Tensor, sigma) -> dict:
    """Mean |dL/dv| on the wall columns over that on the interior strips (same count of
    faces), for the field against a globally perturbed copy: the weight training puts on
    the walls."""
    out = {}
    for name, fn in fns.items():
        field = high if name == "native" else low
        H, W = field.shape[-2] - 1, field.shape[-1] - 1
        target = field + 0.1 * perturbation(H, W, "global", sigma)
        pred = field.clone().requires_grad_(True)
        fn(pred, target).sum().backward()
        g = pred.grad.abs()
        yy, yx, xy, xx = face_coordinates(H, W)
        share = {}
        for where in ("wall", "interior"):
            my, mx = strips(yx, where).bool(), strips(xx, where).bool()
            parts = torch.cat([g[:, 0, :, :W][:, my], g[:, 1, :H, :][:, mx]], dim=1)
            share[where] = float(parts.mean())
        out[name] = share["wall"] / share["interior"]
    return out


# ------------------------------------------------------------------ report

OLD_RUNS = (
    "A run directory stores its resolved config, which names `fit: pad` and "
    "`pad_mode: edge`: runs trained with the LSiM loss before it resized keep training, "
    "resuming (same trajectory hash) and loading with edge padding. A loss section that "
    "names `lsim` without `fit` now gets `fit: resize` (config.training.DEFAULT_LOSS_FIT, "
    "= `LSiM.fit`), so a study run again over its old directories refuses to reuse "
    "their finished LSiM runs (another config: the message says to delete them) unless "
    "it sets `method.loss.fit=pad`; runs with other losses keep their hashes. The LSiM "
    "*metric* resizes for every run: re-evaluating an old run "
    "changes its LSiM numbers, and `evaluation.json` files written before report "
    "edge-padded LSiM, so evaluate all runs again before comparing LSiM columns."
)


def choose(result: dict) -> str:
    """The method closest to the unpadded metric, in words: smallest sum of the distance
    of its wall/interior ratio from the native one (|log| of their quotient, median over
    amplitudes) and of its rank disagreement (1 - Spearman)."""
    m = result["methods"]
    native = np.array(list(m["native"]["wall_over_interior"].values()))

    def score(name: str) -> float:
        ratio = np.array(list(m[name]["wall_over_interior"].values()))
        return float(np.median(np.abs(np.log(ratio / native)))) + 1 - m[name]["spearman_vs_native"]

    ranked = sorted((k for k in m if k != "native"), key=score)
    cost = m["resize-bilinear"]["seconds_per_pair"] / m["edge"]["seconds_per_pair"]
    best = ranked[0]
    small = next(iter(m["native"]["wall_over_interior"]))

    def ratio(name: str) -> str:
        return f"{m[name]['wall_over_interior'][small]:.2f}"

    ties = [k for k in ranked[1:] if score(k) - score(best) < 0.01]
    tie = f", tied within 0.01 with {' and '.join(ties)}" if ties else ""
    return (
        f"Closest to LSiM on the unpadded field: **{best}**{tie} (score {score(best):.3f}; "
        + ", ".join(f"{k} {score(k):.3f}" for k in ranked[1:])
        + "; the score adds |log| of the wall/interior ratio over the native one, median "
        "over amplitudes, and 1 - Spearman). At the smallest amplitude the native metric "
        f"weights a wall perturbation {ratio('native')}x an interior one (LSiM's own "
        f"network weights an image's border less); edge padding makes it {ratio('edge')}x, "
        f"reflect {ratio('reflect')}x, zeros {ratio('zero')}x, masked zeros "
        f"{ratio('masked')}x, bilinear resizing {ratio('resize-bilinear')}x. Masking "
        "cannot do more: at 64x64 the three deepest LSiM layers are 2x2 maps, every "
        "feature of which sees the padding, so their averages cannot leave it out. "
        f"Resizing cost {cost:.1f}x the CPU time of edge padding per pair in this run "
        "(a shared machine: times vary between runs). coldflow resizes, bilinearly: "
        "`LSiM.fit = 'resize'` for the loss and the metric (bicubic ties with it here and "
        "can leave the field's value range, which the min-max scaling then stretches)."
    )


def write(result: dict, out: Path) -> None:
    with atomic_path(out.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2) + "\n")
    m = result["methods"]
    names = list(m)
    lines = [
        "# LSiM on fields smaller than its 64x64 minimum",
        "",
        f"`{result['command']}` ({result['seconds']:.0f} s): {result['frames']} frames of "
        f"{result['source']}. LSiM with joint min-max scaling (as the metric and the loss "
        "use it), summed over the two velocity components of the 64x32 staggered field "
        "(components 65x32 and 64x33); `native` is LSiM on the 128x64 reference itself "
        "(components 129x64 and 128x65: no padding or resizing). Perturbations are made on "
        "the 128x64 grid and restricted to 64x32 as the data set is; amplitudes in units "
        "of each component's standard deviation.",
        "",
        "## Walls against interior",
        "",
        "Ratio of the distance for a perturbation on the two columns next to each side wall "
        "to that for the same perturbation (same energy, same number of faces: "
        f"{result['energy']['low']['wall']:.1f} and {result['energy']['low']['interior']:.1f} "
        "at 64x32) on two interior strips. Both cover the same area of the field: a metric "
        "that weights every part of the field alike gives about 1; LSiM's own ratio on "
        "the unpadded field is the `native` row. Median over the frames per amplitude, "
        "then the range over all.",
        "",
        "| method | "
        + " | ".join(f"amp {a}" for a in m["edge"]["wall_over_interior"])
        + " | range |",
        "|---|" + "---|" * (len(m["edge"]["wall_over_interior"]) + 1),
    ]
    for name in names:
        r = m[name]
        lo, hi = r["wall_over_interior_range"]
        cells = " | ".join(f"{v:.2f}" for v in r["wall_over_interior"].values())
        lines.append(f"| {name} | {cells} | {lo:.2f} - {hi:.2f} |")
    lines += [
        "",
        "## Monotonicity, agreement with the unpadded metric, gradients, cost",
        "",
        "Monotone: sequences (frame x location) whose distance grows strictly with the "
        "amplitude, and natural pairs (a frame against the same flow "
        f"{', '.join(map(str, SHIFTS))} frames later) whose distance grows with the shift. "
        "Spearman: rank correlation with `native` over all pairs, the perturbations only, "
        "and the natural pairs only. Gradient wall/interior: mean |dL/dv| on the wall "
        "columns over that on the interior strips for a global perturbation (the weight "
        "training puts on the walls). Time: CPU seconds per pair (both components).",
        "",
        "| method | monotone (amplitude) | monotone (shift) | Spearman all | perturbations "
        "| natural pairs | gradient wall/interior | s/pair |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        r = m[name]
        a, b = r["monotone_in_amplitude"]
        c, d = r["monotone_in_shift"]
        lines.append(
            f"| {name} | {a}/{b} | {c}/{d} | {r['spearman_vs_native']:.3f} | "
            f"{r['spearman_vs_native_perturbations']:.3f} | {r['spearman_vs_native_shifts']:.3f} | "
            f"{result['gradients'][name]:.2f} | {r['seconds_per_pair']:.4f} |"
        )
    lines += ["", "## Choice", "", choose(result), "", "## Runs made before", "", OLD_RUNS, ""]
    with atomic_path(out.with_suffix(".md")) as tmp:
        Path(tmp).write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/karman_cpu.h5"))
    parser.add_argument("--frames-per-sim", type=int, default=4)
    parser.add_argument("--simulate-frames", type=int, default=8,
                        help="frames of the simulated flow when --data does not exist")  # fmt: skip
    parser.add_argument("--spin-up", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path("docs/results/lsim_padding"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if args.data.is_file():
        high, later, source = load_frames(args.data, args.frames_per_sim)
    else:
        high, later, source = simulate_frames(args.simulate_frames, args.spin_up)
    result = measure(high, later)
    result |= {
        "source": source,
        "frames": len(high),
        "seconds": time.perf_counter() - t0,
        "command": "python scripts/lsim_padding.py --out " + str(args.out),
    }
    write(result, args.out)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
