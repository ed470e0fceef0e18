"""Results over seeds: the mean and interval per configuration, and paired verdicts that
say "beats" only when the interval of the paired difference excludes zero."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from coldflow.metrics.intervals import mean_interval, paired_difference
from coldflow.report.seeds import paired_rows, paired_table, seed_findings, seed_table


class Loss(BaseModel):
    name: str


class Method(BaseModel):
    kind: str = "sol"
    loss: Loss
    width: int = 8


class Cfg(BaseModel):
    name: str
    seed: int
    method: Method


class StandIn:
    """A task whose evaluation.json holds per-simulation rel_l1 of a model and a baseline."""

    def results_row(self, cfg: Any, ev: dict) -> dict:
        return {"loss": cfg.method.loss.name, "rel. L1": float(np.mean(ev["s"]["model"]["rel_l1"]))}

    def per_simulation(self, ev: dict):
        return "model", ev["s"]


def _runs(tmp_path: Path, name: str, loss: str, model: list[list[float]], base, width=8):
    runs, configs = [], {}
    for seed, values in enumerate(model):
        run = tmp_path / f"{name}_s{seed}"
        run.mkdir()
        scores = {"model": {"rel_l1": values}, "source": {"rel_l1": base[seed]}}
        (run / "evaluation.json").write_text(json.dumps({"s": scores}))
        runs.append(run)
        configs[run.name] = Cfg(
            name=name, seed=seed, method=Method(loss=Loss(name=loss), width=width)
        )
    return runs, configs


def test_the_table_gives_each_configuration_its_mean_and_t_interval(tmp_path):
    base = [[1.0, 1.0, 1.0]] * 3
    runs, configs = _runs(
        tmp_path, "a_mse", "mse", [[0.1, 0.2, 0.3], [0.2, 0.3, 0.4], [0.3, 0.4, 0.5]], base
    )
    table = seed_table(StandIn(), {"a_mse": runs}, configs)
    iv = mean_interval([0.2, 0.3, 0.4])
    assert "| a_mse | 3 | mse |" in table
    assert f"{iv.mean:.2f} ± {iv.half_width:.2f}" in table  # 0.30 ± 0.25


def test_a_clear_win_beats_and_noise_ties(tmp_path):
    rng = np.random.default_rng(0)
    base = [[1.0, 2.0, 3.0, 4.0]] * 3
    better = [[0.5 + 0.01 * rng.standard_normal(), 1.5, 2.5, 3.5] for _ in range(3)]
    runs_m, configs = _runs(tmp_path, "sol_mse", "mse", better, base)
    # the LSiM twin: MSE's scores plus noise of either sign, much larger than its mean
    noisy = [[v + 0.3 * rng.standard_normal() for v in row] for row in better]
    runs_l, more = _runs(tmp_path, "sol_lsim", "lsim", noisy, base)
    configs |= more
    pairs = paired_rows(StandIn(), {"sol_mse": runs_m, "sol_lsim": runs_l}, configs)
    got = {(a, b): d["rel_l1"] for a, b, d in pairs}
    assert set(got) == {("sol_mse", "source"), ("sol_lsim", "source"), ("sol_lsim", "sol_mse")}
    want = paired_difference(np.array(noisy), np.array(better))
    assert got[("sol_lsim", "sol_mse")] == want
    said = seed_findings(pairs, {"sol_mse": 3, "sol_lsim": 3})
    assert said[0] == "sol_mse (3 seeds): beats source in rel. L1."
    assert not want.excludes_zero()  # the noise (0.3) swamps the mean difference
    assert said[2] == "sol_lsim (3 seeds): cannot be told apart from sol_mse in rel. L1."
    table = paired_table(pairs)
    assert "| sol_mse | source | -0.499 [-0.502, -0.497] better |" in table
    assert "| sol_lsim | sol_mse | -0.104 [-0.603, +0.388] tie |" in table


def test_one_seed_never_wins_and_says_why(tmp_path):
    runs, configs = _runs(tmp_path, "one", "mse", [[0.1, 0.2]], [[1.0, 2.0]])
    pairs = paired_rows(StandIn(), {"one": runs}, configs)
    ((_, _, diffs),) = pairs
    assert not diffs["rel_l1"].excludes_zero()  # the seed spread is unknown: inf bounds
    assert seed_findings(pairs, {"one": 1}) == [
        "one (one seed: the seed spread is unknown): cannot be told apart from source in rel. L1."
    ]


@pytest.mark.parametrize("width", [8, 16])
def test_the_mse_twin_differs_in_the_loss_only(tmp_path, width):
    base = [[1.0, 1.0]] * 2
    runs_m, configs = _runs(tmp_path, "m", "mse", [[0.1, 0.2], [0.2, 0.1]], base)
    runs_l, more = _runs(tmp_path, "l", "lsim", [[0.1, 0.2], [0.2, 0.1]], base, width=width)
    pairs = paired_rows(StandIn(), {"m": runs_m, "l": runs_l}, configs | more)
    assert (("l", "m") in {(a, b) for a, b, _ in pairs}) == (width == 8)


def test_the_thesis_answer_uses_only_the_independent_metrics_and_the_training_times(tmp_path):
    from coldflow.report.seeds import thesis_findings

    def run(name: str, seconds: list[float]) -> Path:
        d = tmp_path / name
        d.mkdir()
        lines = [
            {"epoch": i + 1, "name": "epoch_seconds", "value": s} for i, s in enumerate(seconds)
        ]
        (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        return d

    configurations = {
        "sr_lsim": [run("sr_lsim_s0", [30.0, 30.0]), run("sr_lsim_s1", [30.0, 30.0])],
        "sr_mse": [run("sr_mse_s0", [10.0, 10.0]), run("sr_mse_s1", [10.0, 10.0])],
    }
    base = np.array([[1.0, 1.1, 0.9], [1.05, 1.0, 0.95]])
    diffs = {
        "lsim": paired_difference(base - 0.5, base),  # trained on: not part of the answer
        "vort_l1": paired_difference(base - 0.2, base),  # lower is better: better
        "ssim": paired_difference(base - 0.2, base),  # higher is better: worse
        "div": paired_difference(base + np.array([[0.01, -0.01, 0.0]] * 2), base),  # tie
    }
    pairs = [("sr_lsim", "bicubic", diffs), ("sr_lsim", "sr_mse", diffs)]
    (sentence,) = thesis_findings(pairs, configurations)  # the bicubic row is no twin
    assert sentence.startswith("sr_lsim against sr_mse, on the metrics no loss trains on (2 seeds)")
    from coldflow.metrics.spec import metric_spec

    vort, ssim, div = (metric_spec(m).label for m in ("vort_l1", "ssim", "div"))
    assert f"mixed: better in {vort}, worse in {ssim}; cannot be told apart in {div}." in sentence
    assert metric_spec("lsim").label not in sentence
    assert "Training took 3.0 times as long (60 s against 20 s per run)." in sentence


def test_pipelines_over_seeds_name_rows_by_configuration_and_pair_by_seed():
    from coldflow.report.seeds import pipeline_seed_table

    def result(seed: int, base: float, sol: float) -> dict:
        def row(e: float) -> dict:
            return {"mean": {"rel_l1": e, "lsim": 2 * e}, "seconds_per_frame": 0.5, "speedup": 2.0}

        return {"pipelines": {
            "source -> bicubic": row(base),
            f"SOL sol_mse_s{seed} -> bicubic": row(sol),
        }}  # fmt: skip

    of = {"sol_mse_s0": "sol_mse", "sol_mse_s1": "sol_mse", "sol_mse_s2": "sol_mse"}
    # the corrected solver is better by 0.1 on every seed: a point interval below zero
    table, said = pipeline_seed_table([result(s, 0.3 + s, 0.2 + s) for s in range(3)], of)
    assert table.splitlines()[2].startswith("| source -> bicubic | 3 |")
    assert "| SOL sol_mse -> bicubic | 3 | 1.2 ± 2.5 |" in table  # mean 1.2 over 0.2, 1.2, 2.2
    assert said == [
        "SOL sol_mse -> bicubic beats source -> bicubic in rel. L1 "
        "(difference -0.1 [-0.1, -0.1], 3 seeds, 95 %)."
    ]
    # better on one seed, worse on another: cannot be told apart
    _, said = pipeline_seed_table([result(0, 0.3, 0.2), result(1, 0.3, 0.5)], of)
    assert said[0].startswith("SOL sol_mse -> bicubic cannot be told apart from source -> bicubic")
    assert pipeline_seed_table([result(0, 0.3, 0.2)], of) == ("", [])
