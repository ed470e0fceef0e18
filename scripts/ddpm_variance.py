"""DDIM at eta = 1 against the ancestral sampler's variance: does the choice matter for FID?

coldflow's two DDPM samplers share the posterior mean and differ in the noise they add at
each step: the ancestral sampler uses sigma_t^2 = beta_t (DDPM's "fixed large"), DDIM at
eta = 1 the posterior variance beta~_t < beta_t ("fixed small"; see
:mod:`coldflow.methods.ddpm`). The MNIST studies sample with DDIM at eta = 1 and 50
skipped steps; ``variance="large"`` keeps that sampler and its mean and swaps in the
ancestral sampler's noise, eta^2 (1 - abar_t / abar_prev) (beta_t without skipped steps).

For every given DDPM run (one configuration over its seeds), both variances draw the same
number of samples from the same seed (the same z_T and the same per-step draws, scaled
differently); FID, precision and recall are computed on the MNIST-classifier features
against the test digits, exactly as ``coldflow evaluate`` does, and the difference
large - small is paired seed by seed (95 % Student-t interval).

Run (about 2 min per run for 500 samples of 50 steps on one core)::

    python scripts/ddpm_variance.py runs/mnist_cpu/diffusion_model_s{0,1,2} \
        --n 500 --steps 50 --out docs/results/ddpm_variance

and it writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from coldflow.io import write_json, write_text
from coldflow.methods.ddpm import VARIANCES
from coldflow.metrics.intervals import format_interval, mean_interval, verdict
from coldflow.tasks.diffusion.sampling import draw
from coldflow.tasks.diffusion.scoring import sample_scores
from coldflow.tasks.handle import load_run

METRICS = {"fid": True, "precision": False, "recall": False}
"""Scores compared, and whether lower is better."""


def score_run(run: Path, n: int, steps: int, seed: int) -> dict[str, dict[str, float]]:
    """``{variance: {metric: value, "seconds": s}}`` of one DDPM run."""
    loaded = load_run(run, device="cpu")
    if loaded.cfg.method.kind != "ddpm":
        raise SystemExit(f"{run}: a {loaded.cfg.method.kind} run; give DDPM runs")
    out = {}
    for variance in VARIANCES:
        t0 = time.perf_counter()
        images = draw(
            loaded.model, n, seed=seed, sampler="ddim", steps=steps, eta=1.0, variance=variance
        ).images
        scores = sample_scores(images, loaded.cfg, loaded.device)
        out[variance] = {m: float(scores[m]) for m in METRICS} | {
            "seconds": time.perf_counter() - t0
        }
        print(
            f"{run.name} {variance}: " + ", ".join(f"{m} {out[variance][m]:.4g}" for m in METRICS)
        )
    return out


def compare(results: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Table rows and verdicts of large - small, paired over the runs (seeds)."""
    lines = ["| run | " + " | ".join(f"{m} ({v})" for m in METRICS for v in VARIANCES) + " |"]
    lines.append("|---" * (1 + len(METRICS) * len(VARIANCES)) + "|")
    for run, res in results.items():
        cells = [f"{res[v][m]:.4g}" for m in METRICS for v in VARIANCES]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    lines.append("")
    for m, lower in METRICS.items():
        diffs = [res["large"][m] - res["small"][m] for res in results.values()]
        iv = mean_interval(diffs)
        said = verdict("variance large (ancestral)", "variance small (DDIM eta = 1)", iv, m, lower)
        a = mean_interval([res["large"][m] for res in results.values()])
        b = mean_interval([res["small"][m] for res in results.values()])
        lines.append(
            f"- {m}: large {format_interval(a.mean, a.half_width)}, small "
            f"{format_interval(b.mean, b.half_width)} over {len(diffs)} runs; {said}."
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="DDPM run directories (seeds)")
    parser.add_argument("--n", type=int, default=500, help="samples per run and variance")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--out", type=Path, default=Path("ddpm_variance"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    results = {run.name: score_run(run, args.n, args.steps, args.seed) for run in args.runs}
    wall = time.perf_counter() - t0
    record = {"n": args.n, "steps": args.steps, "seed": args.seed, "results": results}
    write_json(args.out.with_suffix(".json"), record | {"seconds": wall})
    cmd = " ".join(["python scripts/ddpm_variance.py", *(str(r) for r in args.runs)])
    md = [
        "# DDIM at eta = 1: posterior variance (small) against the ancestral sampler's (large)",
        "",
        f"`{cmd} --n {args.n} --steps {args.steps} --out {args.out}` ({wall / 60:.1f} min on "
        "one CPU core). Both variances draw the same samples' noise from seed "
        f"{args.seed}, {args.n} samples of {args.steps} DDIM steps each; FID, precision and "
        "recall on the MNIST-classifier features against the test digits. Verdicts pair "
        "the two variances run by run (each run one training seed).",
        "",
        *compare(results),
        "",
    ]
    write_text(args.out.with_suffix(".md"), "\n".join(md))
    print(json.dumps({k: v for k, v in record.items() if k != "results"}))


if __name__ == "__main__":
    main()
