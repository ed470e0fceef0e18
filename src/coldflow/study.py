"""Studies: train several runs (resuming any that exist) and compare them in one report."""

from __future__ import annotations

from pathlib import Path

from coldflow.config import RunConfig, StudyConfig, load_config
from coldflow.experiment import evaluate, train
from coldflow.runs import RunDir

__all__ = ["run_study"]


def run_study(path: str | Path, out: str | Path | None = None, overrides: list[str] = ()) -> Path:
    """Train every run of the study file ``path`` into ``out/<run name>`` and compare them.

    A run whose directory already holds checkpoints is resumed, so an interrupted study
    continues where it stopped and a finished one only redraws its report.

    Returns
    -------
    Path
        The comparison page ``out/index.html``.
    """
    from coldflow.report import write_comparison, write_run_report

    path = Path(path)
    study = load_config(path, StudyConfig)
    out = Path(out) if out else Path("runs") / study.name
    run_dirs = []
    for spec in study.runs:
        cfg_path = (path.parent / spec.config).resolve()
        cfg = load_config(cfg_path, RunConfig, [*spec.set, *overrides])
        run_dir = out / spec.name
        run = RunDir(run_dir)
        done = run.checkpoints()
        if done and done[-1] >= cfg.training.epochs and run.samples_path().is_file():
            print(f"{spec.name}: already trained ({done[-1]} epochs)", flush=True)
        else:
            print(f"{spec.name}: training {cfg_path.name} into {run_dir}", flush=True)
            train(cfg, run_dir, resume=bool(done))
        if spec.evaluate and not (run.path / "evaluation.json").is_file():
            print(f"{spec.name}: evaluating on {spec.evaluate} samples", flush=True)
            evaluate(run_dir, n=spec.evaluate, device=cfg.training.device)
        write_run_report(run_dir)
        run_dirs.append(run_dir)
    return write_comparison(run_dirs, out)
