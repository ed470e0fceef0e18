"""The plume's Solver-in-the-Loop correction: what the network sees of the smoke.

``configs/fluids/plume_sol_cpu.yaml`` (MSE loss, m = 4, every window start, 15 epochs:
1,440 updates, as many as the Kármán CPU runs) is trained with each ``method.density``:

- ``carry``: the solver advects the density, the network never sees it (every plume run
  before the option);
- ``input``: the network also sees the density (scaled by its training std);
- ``correct``: it also corrects the density, and the loss adds the density's distance.

After every epoch each run's own loss is measured on the data set's val simulations
(buoyancy 4 and 8: inside the training range 3 ... 9, values no training flow has). The
density mode is chosen on the val split: 50-step rollouts from the first frame after
the warm-up, relative L1 of the velocity against the downsampled reference (the test
metric, measured on val). Only then is every mode evaluated on the test simulations
(buoyancy 6 inside the range, 11 outside it), beside the uncorrected source and the
nearest training trajectory. Writes ``<out>.md``, ``<out>.json`` and ``<out>_val.png``.

    python scripts/plume_sol.py --out docs/results/plume_sol

Runs resume; about 5 minutes per mode on a quiet core.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from coldflow.experiment import evaluate, load_run, train
from coldflow.io import atomic_path, write_json, write_text
from coldflow.metrics import metric_functions
from coldflow.tasks.sol.evaluation import evaluate_rollouts

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "fluids" / "plume_sol_cpu.yaml"
MODES = ("carry", "input", "correct")
STEPS = 50
METRICS = ("rel_l1", "mse", "lsim")


def _shown(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def run_mode(mode: str, runs: Path) -> dict:
    """Train (or resume) one mode, score it on val, then on test."""
    run_dir = runs / mode
    overrides = [f"method.density={mode}", f"name=plume_sol_{mode}"]
    done = (run_dir / "evaluation.json").is_file()
    if not done:
        train(CONFIG, run_dir, overrides=overrides, resume=run_dir.exists())
    loaded = load_run(run_dir, device="cpu")
    fns = metric_functions(list(METRICS), "staggered")
    val, _ = evaluate_rollouts(
        loaded.model, loaded.cfg.data.path, fns, STEPS, None, "val", torch.device("cpu")
    )
    test = json.loads((run_dir / "evaluation.json").read_text()) if done else None
    if test is None or test.get("steps") != STEPS:
        test = evaluate(run_dir, steps=STEPS, metrics=list(METRICS))
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "run_dir": _shown(run_dir),
        "mode": mode,
        "val_loss": [e["value"] for e in history if e["split"] == "val" and e["name"] == "loss"],
        "train_loss": [
            e["value"] for e in history if e["split"] == "train" and e["name"] == "loss"
        ],
        "val": {"mean": val["mean"], "per_simulation": val["per_simulation"]},
        "test": {
            "mean": test["mean"],
            "per_simulation": test["per_simulation"],
            "simulations": test["simulations"],
            "nearest_training": test.get("nearest_training"),
            "verdict": test.get("verdict"),
        },
    }


def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for i, (mode, r) in enumerate(results.items()):
        x = range(1, len(r["val_loss"]) + 1)
        ax.plot(x, r["val_loss"], marker="o", ms=3, color=f"C{i}", label=f"{mode}: val")
        ax.plot(x, r["train_loss"], ls="--", color=f"C{i}", alpha=0.6, label=f"{mode}: train")
    ax.set_xlabel("epoch (96 updates each)")
    ax.set_ylabel("the run's own loss (m = 4)")
    ax.set_yscale("log")
    ax.legend(fontsize="small", ncol=2)
    ax.set_title("Plume CPU SOL by method.density")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def page(results: dict, chosen: str, out: Path) -> str:
    first = next(iter(results.values()))
    lines = [
        "# The plume's Solver-in-the-Loop correction and the smoke it sees",
        "",
        f"`python scripts/plume_sol.py --out {_shown(out)}`: `plume_sol_cpu.yaml` (MSE loss, "
        "m = 4, every window start, 15 epochs = 1,440 updates, as many as the Kármán CPU "
        "runs) on `data/plume_cpu.h5` (64x64 source solver, 128x128 reference), one seed, "
        "trained with each `method.density`. The loss curves are each run's own loss (the "
        "`correct` run's includes the density term, so its level is not comparable with "
        "the others'). The mode is chosen on the val simulations (buoyancy 4 and 8), by "
        f"the relative L1 error of {STEPS}-step velocity rollouts; the test simulations "
        "(buoyancy 6 inside the training range 3-9, 11 outside it) are scored after.",
        "",
        f"![validation and training loss by epoch]({out.name}_val.png)",
        "",
        f"## Validation ({STEPS}-step rollouts, val simulations)",
        "",
        "| density | " + " | ".join(f"val {m}" for m in METRICS) + " | val loss, last epoch |",
        "|---|" + "---|" * (len(METRICS) + 1),
    ]
    for mode, r in results.items():
        cells = [f"{r['val']['mean']['corrected'][m]:.4g}" for m in METRICS]
        lines.append(f"| {mode} | " + " | ".join(cells) + f" | {r['val_loss'][-1]:.4g} |")
    src = first["val"]["mean"]["source"]
    lines.append("| uncorrected source | " + " | ".join(f"{src[m]:.4g}" for m in METRICS) + " | |")
    lines += ["", f"Chosen on val: **{chosen}** (lowest val rel. L1).", ""]
    lines += [
        f"## Test ({STEPS}-step rollouts, test simulations)",
        "",
        "| model | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    test = first["test"]["mean"]
    for row, label in (
        ("source", "uncorrected source"),
        ("nearest_training", "nearest training trajectory"),
    ):
        lines.append(f"| {label} | " + " | ".join(f"{test[row][m]:.4g}" for m in METRICS) + " |")
    for mode, r in results.items():
        star = " (chosen on val)" if mode == chosen else ""
        cells = [f"{r['test']['mean']['corrected'][m]:.4g}" for m in METRICS]
        lines.append(f"| SOL, density {mode}{star} | " + " | ".join(cells) + " |")
    sims = first["test"]["simulations"]
    lines += [
        "",
        "rel. L1 per test simulation (mean over the rollout's steps):",
        "",
        "| simulation | nearest training | source | nearest | "
        + " | ".join(f"SOL {m}" for m in results)
        + " |",
        "|---|---|---|---|" + "---|" * len(results),
    ]
    per = first["test"]["per_simulation"]
    for i, s in enumerate(sims):
        where = first["test"]["nearest_training"][i] if first["test"]["nearest_training"] else ""
        cells = [f"{per['source']['rel_l1'][i]:.4g}", f"{per['nearest_training']['rel_l1'][i]:.4g}"]
        cells += [
            f"{r['test']['per_simulation']['corrected']['rel_l1'][i]:.4g}" for r in results.values()
        ]
        lines.append(
            f"| {s['index']} (buoyancy {s['buoyancy']:g}) | {where} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "Each run's verdict (as its evaluation words it, every metric against both baselines):",
        "",
    ]
    lines += [f"- {mode}: {r['test']['verdict']}" for mode, r in results.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "plume_sol")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "plume_sol")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {mode: run_mode(mode, args.runs) for mode in args.modes}
    chosen = min(results, key=lambda m: results[m]["val"]["mean"]["corrected"]["rel_l1"])
    write_json(args.out.with_suffix(".json"), {"chosen_on_val": chosen, "runs": results})
    figure(results, args.out.parent / f"{args.out.name}_val.png")
    write_text(args.out.with_suffix(".md"), page(results, chosen, args.out))
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
