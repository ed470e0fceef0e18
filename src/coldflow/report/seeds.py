"""Results over seeds: each configuration's mean with an interval, and paired verdicts.

A study with ``seeds:`` trains every configuration several times (runs ``<name>_s<seed>``).
This module turns the evaluations of those runs into

- a table of each configuration's headline numbers (:meth:`Task.results_row`) as the
  mean over its seeds with a 95 % Student-t interval
  (:func:`~coldflow.metrics.intervals.mean_interval`);
- paired differences (:func:`~coldflow.metrics.intervals.paired_difference`, over seeds
  and test simulations) of each configuration against the task's baselines and against
  the configuration that differs from it only in its loss being MSE, with the verdict each
  interval allows (:func:`~coldflow.metrics.intervals.verdict`): "A beats B" only when the
  interval excludes zero.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coldflow.metrics.intervals import format_interval, mean_interval, paired_difference
from coldflow.metrics.spec import UnknownMetricError, metric_spec
from coldflow.report.html import markdown_table

__all__ = [
    "SeededRuns",
    "paired_rows",
    "paired_table",
    "pipeline_seed_table",
    "seed_findings",
    "seed_table",
    "thesis_findings",
]

SeededRuns = Mapping[str, Sequence[Path]]
"""Configuration name -> the directories of its finished runs (one per seed)."""


def _evaluation(run: Path) -> dict[str, Any] | None:
    path = Path(run) / "evaluation.json"
    return json.loads(path.read_text()) if path.is_file() else None


def seed_table(task: Any, configurations: SeededRuns, configs: Mapping[str, Any]) -> str:
    """One row per configuration: the number of seeds and every numeric column of its
    runs' results rows as ``mean ± half-width`` (95 %, over seeds; ``± inf`` for one
    seed: its spread is unknown). ``configs``: run name -> its config. ``""`` when no
    run of the task has a results row."""
    rows, columns = [], {}
    for name, runs in configurations.items():
        values: dict[str, list[float]] = {}
        text: dict[str, str] = {}
        for run in runs:
            ev = _evaluation(run)
            row = task.results_row(configs[Path(run).name], ev) if ev else None
            for col, v in (row or {}).items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    values.setdefault(col, []).append(float(v))
                else:
                    text.setdefault(col, str(v))
        if not values:
            continue
        cells = dict(text)
        for col, vs in values.items():
            if all(math.isfinite(v) for v in vs):
                iv = mean_interval(vs)
                cells[col] = format_interval(iv.mean, iv.half_width)
        columns |= dict.fromkeys(cells)
        rows.append((name, len(runs), cells))
    if not rows:
        return ""
    return markdown_table(
        ["configuration", "seeds", *columns],
        [[name, n, *(c.get(col, "") for col in columns)] for name, n, c in rows],
    )


def _scores_by_seed(
    task: Any, runs: Sequence[Path], configs: Mapping[str, Any]
) -> tuple[str, dict[Any, dict]] | None:
    """The model row and ``{seed: per-simulation scores}`` of a configuration's runs, each
    evaluation read once (None: a run has no such scores)."""
    out, model = {}, None
    for run in runs:
        ev = _evaluation(run)
        got = task.per_simulation(ev) if ev else None
        if got is None:
            return None
        model, out[configs[Path(run).name].seed] = got
    return (model, out) if out else None


def _matrix(per_seed: list[dict], row: str, metric: str) -> np.ndarray | None:
    """``[seeds, simulations]`` of one row and metric, or None where a seed lacks it or
    the seeds were scored on different simulations."""
    values = [s.get(row, {}).get(metric) for s in per_seed]
    if any(v is None for v in values) or len({len(v) for v in values}) != 1:
        return None
    x = np.asarray(values, dtype=np.float64)
    return x if np.isfinite(x).all() else None


def _loss_twin(cfg: Any, others: Mapping[str, Any]) -> str | None:
    """The configuration among ``others`` equal to ``cfg`` but for an MSE loss; for a
    diffusion super-resolution, the MSE-trained super-resolution of the same data and
    input (what a diffusion model must beat to be worth its sampling steps)."""
    if cfg.method.kind == "diffusion_sr":
        for name, other in others.items():
            if (
                other.method.kind == "superres"
                and other.method.loss.name == "mse"
                and other.method.input == cfg.method.input
                and other.data.model_dump(exclude={"stride"})
                == cfg.data.model_dump(exclude={"stride"})
            ):
                return name
        return None
    if cfg.method.loss.name == "mse":
        return None

    def key(c: Any) -> dict:
        dump = c.model_dump(mode="json", exclude={"name", "seed"})
        dump["method"].pop("loss", None)
        return dump

    mine = key(cfg)
    for name, other in others.items():
        if other.method.loss.name == "mse" and key(other) == mine:
            return name
    return None


def _differences(
    metrics: Sequence[str], a: list[dict], row_a: str, b: list[dict], row_b: str
) -> dict[str, Any]:
    """``{metric: paired_difference(a[row_a], b[row_b])}`` where both have the metric."""
    diffs = {}
    for m in metrics:
        x, y = _matrix(a, row_a, m), _matrix(b, row_b, m)
        if x is not None and y is not None and x.shape == y.shape:
            diffs[m] = paired_difference(x, y)
    return diffs


def paired_rows(
    task: Any, configurations: SeededRuns, configs: Mapping[str, Any]
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(configuration, against, {metric: Interval of configuration - against})`` for
    each configuration against each baseline row of its evaluations and against its MSE
    twin (same config, MSE loss; paired seed by seed over the seeds both have)."""
    first_cfg = {n: configs[Path(r[0]).name] for n, r in configurations.items() if r}
    scores = {n: _scores_by_seed(task, r, configs) for n, r in configurations.items()}
    out = []
    for name, got in scores.items():
        if got is None:
            continue
        model, by_seed = got
        per_seed = list(by_seed.values())
        metrics = list(per_seed[0].get(model, {}))
        # "source, ..." rows score methods on another input (the solver's frames)
        # (and a model's own variants, as the mean of a diffusion model's samples)
        baselines = [
            r for r in per_seed[0] if not r.startswith(model) and not r.startswith("source,")
        ]
        for base in baselines:
            diffs = _differences(metrics, per_seed, model, per_seed, base)
            if diffs:
                out.append((name, base, diffs))
        twin = _loss_twin(first_cfg[name], {n: c for n, c in first_cfg.items() if n != name})
        if twin is None or scores[twin] is None:
            continue
        twin_model, twin_seeds = scores[twin]
        common = [s for s in by_seed if s in twin_seeds]
        diffs = _differences(
            metrics, [by_seed[s] for s in common], model, [twin_seeds[s] for s in common],
            twin_model,
        ) if common else {}  # fmt: skip
        if diffs:
            out.append((name, twin, diffs))
    return out


def _label(metric: str) -> str:
    try:
        return metric_spec(metric).label
    except UnknownMetricError:  # a score of the task's own
        return metric


def _lower_is_better(metric: str) -> bool:
    try:
        return not metric_spec(metric).higher_is_better
    except UnknownMetricError:
        return True


def seed_findings(
    pairs: Sequence[tuple[str, str, dict[str, Any]]], seeds: Mapping[str, int]
) -> list[str]:
    """One sentence per pair of :func:`paired_rows`: the metrics in which the
    configuration is better, worse, or cannot be told apart from what it is compared
    with, at 95 % over seeds and test simulations. ``seeds``: configuration -> seeds."""
    out = []
    for name, against, diffs in pairs:
        said: dict[str, list[str]] = {"better": [], "worse": [], "tie": []}
        for m, iv in diffs.items():
            said[_word(m, iv)].append(_label(m))
        better, worse, tied = said["better"], said["worse"], said["tie"]
        parts = []
        if better:
            parts.append(f"beats {against} in {', '.join(better)}")
        if worse:
            parts.append(f"is worse than {against} in {', '.join(worse)}")
        if tied:
            parts.append(f"cannot be told apart from {against} in {', '.join(tied)}")
        n = seeds.get(name, 0)
        note = "one seed: the seed spread is unknown" if n == 1 else f"{n} seeds"
        out.append(f"{name} ({note}): " + "; ".join(parts) + ".")
    return out


def _word(metric: str, iv: Any) -> str:
    if not iv.excludes_zero():
        return "tie"
    return "better" if (iv.high < 0) == _lower_is_better(metric) else "worse"


def paired_table(pairs: Sequence[tuple[str, str, dict[str, Any]]]) -> str:
    """Each pair's difference (configuration minus what it is compared with) per metric,
    ``d [low, high]`` (95 %), and whether the configuration is better, worse, or tied."""
    metrics = list(dict.fromkeys(m for _, _, d in pairs for m in d))
    rows = []
    for name, against, diffs in pairs:
        cells = []
        for m in metrics:
            iv = diffs.get(m)
            cells.append(
                ""
                if iv is None
                else f"{iv.mean:+.3g} [{iv.low:+.3g}, {iv.high:+.3g}] {_word(m, iv)}"
            )
        rows.append([name, against, *cells])
    return markdown_table(["configuration", "against", *(_label(m) for m in metrics)], rows)


def _training_seconds(run: Path) -> float | None:
    """The wall time of a run's epochs (the sum of its logged ``epoch_seconds``)."""
    from coldflow.runs import RunDir

    values = [
        float(e["value"]) for e in RunDir(run).read_metrics() if e.get("name") == "epoch_seconds"
    ]
    return sum(values) if values else None


def thesis_findings(
    pairs: Sequence[tuple[str, str, dict[str, Any]]], configurations: SeededRuns
) -> list[str]:
    """The thesis's question, one sentence per configuration compared with its MSE twin:
    on the metrics no loss trains on (:data:`INDEPENDENT_METRICS`: vorticity, divergence,
    SSIM, top-octave spectrum), is it better, worse, or indistinguishable at 95 %, and how
    long did it train against the MSE twin (mean over seeds)."""
    from coldflow.config.metric_defaults import INDEPENDENT_METRICS

    out = []
    for name, against, diffs in pairs:
        if against not in configurations:  # a baseline row, not the MSE twin
            continue
        independent = {m: iv for m, iv in diffs.items() if m in INDEPENDENT_METRICS}
        if not independent:
            continue
        said: dict[str, list[str]] = {"better": [], "worse": [], "tie": []}
        for m, iv in independent.items():
            said[_word(m, iv)].append(_label(m))
        if said["better"] and not said["worse"]:
            head = f"yes: better in {', '.join(said['better'])}"
        elif said["worse"] and not said["better"]:
            head = f"no: worse in {', '.join(said['worse'])}"
        elif said["better"]:
            head = (
                f"mixed: better in {', '.join(said['better'])}, worse in {', '.join(said['worse'])}"
            )
        else:
            head = "no: it cannot be told apart from MSE"
        if said["tie"] and (said["better"] or said["worse"]):
            head += f"; cannot be told apart in {', '.join(said['tie'])}"
        times = [
            [t for r in configurations[c] if (t := _training_seconds(r)) is not None]
            for c in (name, against)
        ]
        cost = ""
        if all(times):
            mine, theirs = (sum(t) / len(t) for t in times)
            cost = (
                f" Training took {mine / theirs:.1f} times as long ({mine:.0f} s against "
                f"{theirs:.0f} s per run)."
            )
        n = len(configurations[name])
        out.append(
            f"{name} against {against}, on the metrics no loss trains on ({n} seed"
            f"{'s' if n != 1 else ''}): {head}.{cost}"
        )
    return out


PIPELINE_METRICS = ("rel_l1", "lsim", "lse_top", "vort_l1")
"""Columns of the pipelines-over-seeds table, where the pipelines scored them."""


def _pipeline_row_name(row: str, configuration_of: Mapping[str, str]) -> str:
    """A pipeline row of one seed's runs named by their configurations:
    ``SOL karman_sol_mse_s0 -> SR karman_srsolver_mse_s0`` -> ``SOL karman_sol_mse -> SR
    karman_srsolver_mse``."""
    words = [configuration_of.get(w, w) for w in row.split(" ")]
    return " ".join(words)


def pipeline_seed_table(
    results: Sequence[dict[str, Any]], configuration_of: Mapping[str, str]
) -> tuple[str, list[str]]:
    """The pipelines of one study pipeline over its seeds: every row (named by its
    configurations) as mean ± 95 % interval over seeds (Student t) of its errors, its
    time per frame and speed-up; and, per row, whether it beats ``source -> bicubic``
    (the cheapest pipeline) in rel. L1, paired seed by seed: "beats" only where the
    interval of the per-seed differences excludes zero.

    Parameters
    ----------
    results
        ``pipeline.json`` of each seed (the same test simulations and steps).
    configuration_of
        Run name -> its configuration (``karman_sol_mse_s0`` -> ``karman_sol_mse``).

    Returns
    -------
    tuple
        ``(markdown table, verdict sentences)``; ``("", [])`` for fewer than two seeds.
    """
    if len(results) < 2:
        return "", []
    rows: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        for name, row in result["pipelines"].items():
            rows.setdefault(_pipeline_row_name(name, configuration_of), []).append(row)
    # the uncorrected solver's rows first, then each SOL run's (pipeline.json may be sorted)
    rows = dict(sorted(rows.items(), key=lambda kv: (not kv[0].startswith("source "), kv[0])))
    metrics = [m for m in PIPELINE_METRICS if all(m in r["mean"] for v in rows.values() for r in v)]
    table = []
    for name, per_seed in rows.items():
        cells = [name, len(per_seed)]
        for m in metrics:
            iv = mean_interval([r["mean"][m] for r in per_seed])
            cells.append(format_interval(iv.mean, iv.half_width))
        for key in ("seconds_per_frame", "speedup"):
            iv = mean_interval([r[key] for r in per_seed])
            cells.append(format_interval(iv.mean, iv.half_width))
        table.append(cells)
    head = ["pipeline", "seeds", *(_label(m) for m in metrics), "s/frame", "speed-up"]
    said = []
    base = "source -> bicubic"
    if base in rows and "rel_l1" in metrics:
        ref = [r["mean"]["rel_l1"] for r in rows[base]]
        for name, per_seed in rows.items():
            if name == base or len(per_seed) != len(ref):
                continue
            iv = mean_interval(
                [r["mean"]["rel_l1"] - b for r, b in zip(per_seed, ref, strict=True)]
            )
            word = _word("rel_l1", iv)
            text = {"better": "beats", "worse": "is worse than", "tie": "cannot be told apart from"}
            said.append(
                f"{name} {text[word]} {base} in rel. L1 (difference {iv.mean:+.3g} "
                f"[{iv.low:+.3g}, {iv.high:+.3g}], {len(ref)} seeds, 95 %)."
            )
    return markdown_table(head, table), said
