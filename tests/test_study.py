from __future__ import annotations

import json
from pathlib import Path

import pytest

from coldflow.errors import UserError
from coldflow.runs import RunDir
from coldflow.study import run_study

ROOT = Path(__file__).resolve().parents[1]


def test_study_trains_compares_and_resumes(tmp_path, tiny_overrides, capsys):
    study = tmp_path / "study.yaml"
    study.write_text(
        "name: tiny\nruns:\n"
        f"  - name: noise\n    config: {ROOT / 'configs/mnist/quick.yaml'}\n"
        f"  - name: blur\n    config: {ROOT / 'configs/mnist/quick_blur.yaml'}\n"
        "    evaluate: 20\n"
        "    set: [method.conditional_images=20, method.prior_fit_images=200]\n"
    )
    overrides = [*tiny_overrides, "training.epochs=1"]
    index = run_study(study, tmp_path / "out", overrides)
    assert index == tmp_path / "out" / "index.html"
    text = index.read_text()
    assert "noise" in text and "blur" in text
    for name in ("noise", "blur"):
        assert (tmp_path / "out" / name / "report.html").is_file()
    assert (tmp_path / "out" / "blur" / "evaluation.json").is_file()
    figures = {p.name for p in (tmp_path / "out" / "blur" / "figures").iterdir()}
    assert {"samples_grid.png", "samples_grid_conditional.png", "schedule.png"} <= figures
    # a second call finds both runs trained and only redraws the reports
    capsys.readouterr()
    run_study(study, tmp_path / "out", overrides)
    assert capsys.readouterr().out.count("already trained") == 2
    assert RunDir(tmp_path / "out" / "noise").checkpoints() == [1]
    # a changed config is not mistaken for the finished run: the study says which and why
    with pytest.raises(UserError, match="noise: .* trained with a different config"):
        run_study(study, tmp_path / "out", [*overrides, "training.optimizer.lr=0.5"])


def test_the_plan_says_how_long_a_data_set_took_to_simulate(tmp_path):
    """Each simulation records its share of the time its batch took; the study's plan
    prints their sum for a data set it will reuse, and nothing where it cannot know."""
    import h5py

    from coldflow.data.store import FieldData
    from coldflow.simulate.run import simulate
    from coldflow.study import _simulated_in

    config = Path(__file__).resolve().parents[1] / "configs" / "fluids" / "karman_tiny.yaml"
    out = tmp_path / "k.h5"
    simulate(config, out, progress=False)
    with FieldData(out) as data:
        seconds = [float(s.attrs["simulate_seconds"]) for s in data.simulations()]
    assert all(s > 0 for s in seconds)
    took = _simulated_in(out)
    assert took and took[0].isdigit()
    with h5py.File(out, "r+") as f:  # a data set made before the time was recorded
        del f["sims"][next(iter(f["sims"]))].attrs["simulate_seconds"]
    assert _simulated_in(out) == ""
    assert _simulated_in(tmp_path / "missing.h5") == ""


def test_the_plan_lists_a_skipped_configuration_once_with_its_seeds(tmp_path, capsys):
    from types import SimpleNamespace

    from coldflow.config import StudyConfig
    from coldflow.study import _print_plan

    study = StudyConfig.model_validate(
        {"seeds": [0, 1], "runs": [{"name": "vgg", "config": "x.yaml"},
                                   {"name": "mse", "config": "x.yaml"}]}
    )  # fmt: skip
    configs = {r.name: SimpleNamespace(training=SimpleNamespace(epochs=2)) for r in study.runs}
    skipped = {"vgg_s0": "weights missing", "vgg_s1": "weights missing"}
    _print_plan(study, tmp_path, configs, study.runs, skipped)
    out = capsys.readouterr().out
    assert out.count("skipped (") == 1 and "run vgg (seeds 0, 1): skipped" in out
    assert "run mse_s0: to train, 2 epochs" in out and "run mse_s1: to train" in out


def test_a_pipeline_runs_again_when_more_of_its_runs_have_finished(tmp_path, monkeypatch):
    import types

    import coldflow.tasks.pipeline.evaluation as pe
    from coldflow.study import _pipelines

    calls = []

    def fake(sol, sr, target, **_):
        calls.append(([p.name for p in sol], [p.name for p in sr]))
        target.mkdir(parents=True, exist_ok=True)
        runs = {"sol": [p.name for p in sol], "sr": [p.name for p in sr]}
        (target / "pipeline.json").write_text(json.dumps({"runs": runs}))

    monkeypatch.setattr(pe, "evaluate_pipeline", fake)
    p = types.SimpleNamespace(name="k", sol=["sol_a"], sr=["sr_a", "sr_b"], steps=5, metrics=[])
    study = types.SimpleNamespace(pipelines=[p])
    assert _pipelines(study, tmp_path, {"sr_a"}) == ([], [])  # no SOL run finished: none
    _pipelines(study, tmp_path, {"sol_a", "sr_a"})
    _pipelines(study, tmp_path, {"sol_a", "sr_a"})  # nothing new: not again
    # --no-pipelines: the stored pipeline is on the page while it matches the finished runs;
    # once more of its runs have finished it is named as not evaluated, and nothing runs
    assert _pipelines(study, tmp_path, {"sol_a", "sr_a"}, run=False)[1] == []
    shown, pending = _pipelines(study, tmp_path, {"sol_a", "sr_a", "sr_b"}, run=False)
    assert shown == [] and pending == ["k"] and len(calls) == 1
    _pipelines(study, tmp_path, {"sol_a", "sr_a", "sr_b"})
    assert calls == [(["sol_a"], ["sr_a"]), (["sol_a"], ["sr_a", "sr_b"])]
