"""What the truncated adjoint did: the Kármán CPU Solver-in-the-Loop run trained three ways.

The run of ``configs/fluids/karman_sol_cpu.yaml`` (MSE loss, m = 4, 8 epochs) is trained
for each seed (``--seeds``, default 0 1 2) on the same data through three pressure solves:

- ``truncated CG``: CG whose adjoint (gradient) solve stops at the absolute tolerance
  1e-5, as every published coldflow run until this change was trained (1-7 adjoint
  iterations for a mean-squared loss);
- ``exact CG``: the same CG with the adjoint converged to its relative tolerance;
- ``direct``: the pressure matrix factorised once (sparse LU), exact forward and adjoint.

After every epoch each run's unrolled training loss (m = 4, MSE) is measured on windows
of validation simulations: two Kármán flows inside the training range (U 0.85 and 1.05,
Reynolds numbers and seeds no training or test flow has), simulated into their own file.
At the end each run is evaluated on the data set's test simulations as the study does
(100-step rollouts from frame 0) beside the uncorrected source. Writes ``<out>.json``,
``<out>.md`` and ``<out>_curves.png``.

    python scripts/sol_adjoint.py --data data/karman_cpu.h5 --out docs/results/sol_adjoint

About 25 minutes on one core (the exact-CG run is the slow one). Runs resume.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from coldflow.config.base import load_config
from coldflow.config.fluids import FluidDataConfig
from coldflow.data.store import FieldWindows
from coldflow.experiment import evaluate, load_run, train
from coldflow.io import atomic_path, write_json
from coldflow.losses import build_field_loss
from coldflow.methods.common import Unowned
from coldflow.simulate.run import generate

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "fluids" / "karman_sol_cpu.yaml"
DATA_CONFIG = ROOT / "configs" / "fluids" / "karman_cpu.yaml"
VARIANTS = {
    "truncated CG": "{method: CG, adjoint_abs_tol: 1.0e-5}",
    "exact CG": "{method: CG}",
    "direct": "{method: sparse-LU}",
}
VALIDATION = [  # inside the training range (U 0.8-1.2, Re 1e5-8e5), unseen values
    "simulations.train.params={re: [2.5e5, 5.5e5], inflow_speed: [0.85, 1.05]}",
    "simulations.train.seeds=[200, 201]",
    "simulations.test.params={}",
    "simulations.test.seeds=[]",
    "frames=200",
    "name=karman_cpu_validation",
]


def validation_data(path: Path) -> Path:
    """The validation simulations' file (generated once)."""
    if not path.exists():
        cfg = load_config(DATA_CONFIG, FluidDataConfig, VALIDATION)
        generate(cfg, path, progress=False, log=print)
    return path


@torch.no_grad()
def validation_loss(run_dir: Path, windows: FieldWindows) -> float:
    """Mean unrolled MSE loss of the run's model over the validation windows."""
    loaded = load_run(run_dir, device="cpu")
    model = loaded.model
    model.shared = Unowned(scene=model.scene, loss=build_field_loss("mse", grid="staggered"))
    total, n = 0.0, 0
    for start in range(0, len(windows), 8):
        items = [windows[i] for i in range(start, min(start + 8, len(windows)))]
        batch = torch.utils.data.default_collate(items)
        total += float(model(batch)) * len(items)
        n += len(items)
    return total / n


def _shown(path: Path) -> str:
    """``path`` relative to the project when inside it (pages hold no machine paths)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_variant(name: str, solver: str, seed: int, args) -> dict:
    slug = name.replace(" ", "_")
    run_dir = args.runs / f"{slug}_seed{seed}"
    overrides = [
        f"data.path={args.data}",
        f"method.solver={solver}",
        f"name={slug}",
        f"seed={seed}",
    ]
    windows = FieldWindows(args.validation, 4, split="train", kinds=("downsampled",), stride=10)
    curve, seconds = [], []
    log = run_dir / "validation.json"
    done = json.loads(log.read_text()) if log.exists() else {"curve": [], "seconds": []}
    curve, seconds = done["curve"], done["seconds"]
    for epoch in range(len(curve) + 1, args.epochs + 1):
        t0 = time.perf_counter()
        train(
            CONFIG,
            run_dir,
            overrides=[*overrides, f"training.epochs={epoch}"],
            resume=epoch > 1,
            finish=False,
        )
        seconds.append(time.perf_counter() - t0)
        curve.append(validation_loss(run_dir, windows))
        print(f"{name}: epoch {epoch}, validation loss {curve[-1]:.5g} ({seconds[-1]:.0f} s)")
        write_json(log, {"curve": curve, "seconds": seconds})
    ev = evaluate(run_dir, steps=100)
    train_log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "run_dir": _shown(run_dir),
        "seed": seed,
        "solver": solver,
        "validation_loss": curve,
        "train_seconds_per_epoch": seconds,
        "train_loss": [r["loss"] for r in train_log if "loss" in r and r.get("epoch")],
        "evaluation": ev["mean"],
        "per_simulation": ev.get("per_simulation"),
    }


def _mean_spread(values: list[float]) -> str:
    """``mean`` or ``mean ± half range`` (over seeds)."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {(max(values) - min(values)) / 2:.2g}"


def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for i, (name, runs) in enumerate(results.items()):
        for j, r in enumerate(runs):
            curve = r["validation_loss"]
            label = name if j == 0 else None
            x = range(1, len(curve) + 1)
            ax.plot(x, curve, marker="o", ms=3, color=f"C{i}", alpha=0.8, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (m = 4, MSE)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Kármán CPU SOL: adjoint of the pressure solve")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


METRICS = [("rel_l1", "rel. L1"), ("mse", "MSE"), ("lsim", "LSiM")]


def table(results: dict) -> list[str]:
    """Mean ± half range over seeds of each variant (and each seed's row)."""
    lines = [
        "| training | seeds | val. loss, last epoch | s/epoch | "
        + " | ".join(f"test {label}" for _, label in METRICS)
        + " |",
        "|---|---|---|---|" + "---|" * len(METRICS),
    ]
    for name, runs in results.items():
        seeds = ", ".join(str(r["seed"]) for r in runs)
        val = _mean_spread([r["validation_loss"][-1] for r in runs])
        sec = sum(
            sum(r["train_seconds_per_epoch"]) / len(r["train_seconds_per_epoch"]) for r in runs
        )
        cells = [_mean_spread([r["evaluation"]["corrected"][k] for r in runs]) for k, _ in METRICS]
        lines.append(
            f"| {name} | {seeds} | {val} | {sec / len(runs):.0f} | " + " | ".join(cells) + " |"
        )
    src = next(iter(results.values()))[0]["evaluation"]["source"]
    cells = [f"{src[k]:.4g}" for k, _ in METRICS]
    lines.append("| uncorrected source | | | | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Each seed:",
        "",
        "| training | seed | val. loss by epoch | test rel. L1 |",
        "|---|---|---|---|",
    ]
    for name, runs in results.items():
        for r in runs:
            curve = ", ".join(f"{v:.3g}" for v in r["validation_loss"])
            rel = r["evaluation"]["corrected"]["rel_l1"]
            lines.append(f"| {name} | {r['seed']} | {curve} | {rel:.4g} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "karman_cpu.h5")
    parser.add_argument("--validation", type=Path, default=ROOT / "data" / "karman_cpu_val.h5")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "sol_adjoint")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "sol_adjoint")
    parser.add_argument("--only", nargs="*", default=None, help="variants to run (default all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--no-page", action="store_true", help="train only (e.g. one seed per process)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    validation_data(args.validation)
    results: dict[str, list[dict]] = {}
    for name, solver in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        results[name] = [run_variant(name, solver, seed, args) for seed in args.seeds]
    if args.no_page:
        return
    write_json(args.out.with_suffix(".json"), results)
    png = args.out.parent / f"{args.out.name}_curves.png"
    figure(results, png)
    rows = table(results)
    print("\n".join(rows))
    page = [
        "# Solver-in-the-Loop through a truncated and an exact adjoint (Kármán, CPU)",
        "",
        f"`python scripts/sol_adjoint.py --seeds {' '.join(map(str, args.seeds))}` "
        "(one core per process).",
        "",
        *__doc__.split("\n\n")[1:3],
        "",
        "Means over seeds ± half their range; test: 100-step rollouts from frame 0 of the "
        "four test flows of data/karman_cpu.h5 (two inside, two outside the training range); "
        "validation: the unrolled m = 4 MSE over windows of the two validation flows.",
        "",
        *rows,
        "",
        f"![validation loss by epoch]({png.name})",
        "",
    ]
    with atomic_path(args.out.with_suffix(".md")) as tmp:
        Path(tmp).write_text("\n".join(page), encoding="utf-8")


if __name__ == "__main__":
    main()
