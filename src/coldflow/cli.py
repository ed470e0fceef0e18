"""The ``coldflow`` command line: one Typer app for every job of the lab."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from coldflow import hub
from coldflow.config import ConfigError
from coldflow.config.metric_defaults import DEFAULT_FIELD_METRICS, DEFAULT_FILE_METRICS
from coldflow.errors import DeviceError, UserError, is_interrupt, noting_ctrl_c, user_message
from coldflow.io import LockedError, check_writable_dir, check_writable_file
from coldflow.training.allocator import tune_malloc

app = typer.Typer(
    help="coldflow: learn to undo degradations of 2-D fields and judge the result perceptually.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Fetch and verify data sets.", no_args_is_help=True)
weights_app = typer.Typer(help="List and fetch pretrained weights.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(weights_app, name="weights")
console = Console()
errors = Console(stderr=True)  # user errors go to stderr, so that piped output stays clean

SET_HELP = "Override a config key, e.g. --set training.epochs=5 (repeatable; values typed as YAML)."


def _check_device(name: str | None, where: str) -> None:
    """Refuse a device this machine lacks before any work (``where``: the setting)."""
    if name is not None:
        from coldflow.training.device import resolve_device

        resolve_device(name, where)


_UNCHANGED = "is unchanged (it is written at the end): run the command again"


@contextlib.contextmanager
def _on_ctrl_c(what_now: Callable[[], str]) -> Iterator[None]:
    """On Ctrl-C, say what the command kept and how to go on; exit status 130 (SIGINT).

    A Ctrl-C inside a TorchScript function (PhiFlow's compiled solver step) arrives as a
    ``RuntimeError`` that wraps the ``KeyboardInterrupt``; it is treated the same.
    """
    try:
        with noting_ctrl_c():
            yield
    except (KeyboardInterrupt, RuntimeError) as e:
        if not is_interrupt(e):
            raise
        if os.environ.get("RANK", "0") == "0":  # once per multi-process run
            errors.print(
                f"[yellow]interrupted:[/yellow] {escape(what_now())}",
                highlight=False, soft_wrap=True,
            )  # fmt: skip
        raise typer.Exit(130) from None


def _resume_config(config: Path | None, run_dir: Path | None, resume: bool) -> Path:
    if config is not None:
        return config
    if not (resume and run_dir):
        raise ConfigError("give a config file, or --resume with --run-dir of an existing run")
    return run_dir / "config.yaml"


@app.command()
def train(
    config: Path = typer.Argument(
        None, help="YAML config (omit with --resume to reuse the run's)."
    ),
    set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
    run_dir: Path = typer.Option(None, "--run-dir", help="Output directory (default runs/<name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint."),
    report: bool = typer.Option(True, help="Write figures and report.html at the end."),
) -> None:
    """Train a model (any task: diffusion, Solver-in-the-Loop, autoencoder, super-resolution)."""
    from coldflow.experiment import load_config_file, report_run, resume_hint
    from coldflow.experiment import train as train_run

    path = _resume_config(config, run_dir, resume)
    cfg = load_config_file(path, set_)
    _check_device(cfg.training.device, f"{path}: training.device")
    target = check_writable_dir(run_dir or Path("runs") / cfg.name, "--run-dir")
    with _on_ctrl_c(lambda: resume_hint(target)):
        run = train_run(cfg, target, resume=resume)
    console.print(f"trained: {run.path}")
    if report and run.write:
        console.print(f"report: {report_run(run.path)}")


@app.command()
def sample(
    run_dir: Path = typer.Argument(..., help="A trained diffusion run directory."),
    n: int = typer.Option(16, "--n", help="Number of samples."),
    sampler: str = typer.Option(
        None, help="ancestral | ddim (DDPM); naive | improved (cold). Default: the config's."
    ),
    steps: int = typer.Option(None, help="DDIM steps (default: the config's, else 50)."),
    eta: float = typer.Option(None, help="DDIM eta (default: the config's sampling.eta)."),
    prior: str = typer.Option(None, help="Cold diffusion start: gmm | black (default: config's)."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = typer.Option(Path("samples.png"), "--out", help="Grid image (.png)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """Draw samples from a trained diffusion run and save them as an image grid."""
    import math

    from coldflow.experiment import sample as sample_run
    from coldflow.report.figures import image_grid_figure
    from coldflow.report.style import save_figure
    from coldflow.tasks import task_for

    _check_device(device, "--device")
    check_writable_file(out, "--out")
    res, loaded = sample_run(
        run_dir, n, device, sampler=sampler, steps=steps, eta=eta, prior=prior, seed=seed
    )
    cfg = loaded.cfg
    title = task_for(cfg).sample_title(cfg, sampler=sampler, steps=steps, eta=eta, prior=prior)
    ncol = math.ceil(math.sqrt(n))
    fig = image_grid_figure(res.images, tuple(cfg.data.range), ncol=ncol, title=title)
    save_figure(fig, out)
    console.print(f"{n} samples ({title}) from epoch {loaded.epoch} -> {out}")


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A trained run directory."),
    n: int = typer.Option(None, "--n", help="Diffusion: number of samples (default 10000)."),
    sampler: str = typer.Option(None, help="Diffusion: sampler (default: the config's)."),
    steps: int = typer.Option(None, help="DDIM steps (DDPM); rollout steps (SOL)."),
    eta: float = typer.Option(None, help="DDPM: DDIM eta (default: the config's)."),
    data: Path = typer.Option(None, "--data", help="Fluid runs: test data set (.h5)."),
    start: int = typer.Option(None, help="SOL: first frame of the rollouts."),
    split: str = typer.Option(None, help="Fluid runs: simulations to evaluate (default test)."),
    seed: int = typer.Option(None, help="Diffusion: random seed (default 0)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """Evaluate a run with its task's evaluation; writes evaluation.json into the run.

    Diffusion: FID (cold diffusion: the paper's Table 1 too). Solver-in-the-Loop: rollouts
    of source, corrected solver and nearest training trajectory. Autoencoder and
    super-resolution: field metrics on the test simulations against their baselines.
    """
    from coldflow.experiment import evaluate as evaluate_run
    from coldflow.experiment import report_run

    options = {
        "n": n, "sampler": sampler, "steps": steps, "eta": eta, "data": data, "start": start,
        "split": split, "seed": seed,
    }  # fmt: skip
    _check_device(device, "--device")
    with _on_ctrl_c(lambda: f"{run_dir / 'evaluation.json'} {_UNCHANGED}"):
        result = evaluate_run(run_dir, device, **options)
    shown = {k: v for k, v in result.items() if k not in ("per_step", "per_simulation")}
    console.print_json(json.dumps(shown, default=str))
    console.print(f"report: {report_run(run_dir)}")


@app.command()
def report(
    paths: list[Path] = typer.Argument(
        ...,
        help="Run directories (several of one task: also a comparison), config YAMLs "
        "(diffusion: their schedules together) or fluid data sets (.h5).",
    ),
    out: Path = typer.Option(None, "--out", help="Output directory of a comparison."),
) -> None:
    """report.html of runs (and a comparison); schedules of configs; data-set figures."""
    from coldflow.experiment import report_paths

    if out is not None:
        check_writable_dir(out, "--out")
    for line in report_paths(paths, out):
        console.print(line)


@app.command()
def simulate(
    config: Path = typer.Argument(..., help="Fluid data-set YAML (configs/fluids/...)."),
    out: Path = typer.Option(..., "--out", help="HDF5 file to write, e.g. data/karman.h5."),
    shard: str = typer.Option("0/1", help="Run only simulations i, i+n, ... (cluster arrays)."),
    set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    checkpoint_every: int = typer.Option(
        None, help="Save a running batch every N frames (default 50; 0: never)."
    ),
) -> None:
    """Simulate a fluid data set (high-res reference, downsampled, low-res source) to HDF5.

    A killed run resumes where it stopped: finished simulations are kept, and a running
    batch restarts from its last saved frame.
    """
    from coldflow.runs import parse_shard
    from coldflow.simulate.run import simulate as run_simulation

    check_writable_file(out, "--out")
    kept = (
        "finished simulations are kept and a running batch restarts from its last saved "
        "frame: the same command continues"
    )
    with _on_ctrl_c(lambda: kept):
        done = run_simulation(
            config, out, parse_shard(shard), set_ or [], progress=progress,
            checkpoint_every=checkpoint_every,
        )  # fmt: skip
    if done is None:
        console.print(f"shard {shard} done; run the other shards to complete {out}")
    else:
        console.print(f"data set complete: {done}")


@app.command()
def study(
    config: Path = typer.Argument(..., help="Study YAML: runs of any tasks to train and compare."),
    out: Path = typer.Option(None, "--out", help="Output directory (default runs/<study name>)."),
    set_: list[str] = typer.Option(None, "--set", help="Override applied to every run."),
    shard: str = typer.Option("0/1", help="Run only runs i, i+n, ... of the study (arrays)."),
    collect: bool = typer.Option(False, help="Train nothing: build the pages from finished runs."),
    pipelines: bool = typer.Option(
        True,
        help="Evaluate the pipelines whose runs are finished (--no-pipelines: show only those "
        "already evaluated, for a quick page).",
    ),
) -> None:
    """Train, evaluate and compare every run of a study (finished runs are not redone)."""
    from coldflow.runs import parse_shard
    from coldflow.study import run_study

    shards = parse_shard(shard)
    if out is not None:
        check_writable_dir(out, "--out")
    kept = (
        "finished runs are kept and the run in training resumes from its last checkpoint: "
        "the same command continues"
    )
    with _on_ctrl_c(lambda: kept):
        index = run_study(config, out, set_ or [], shards, collect, run_pipelines=pipelines)
    if index is not None:
        console.print(f"study report: {index}")


@app.command("evaluate-pipeline")
def evaluate_pipeline(
    sol: list[Path] = typer.Option(..., "--sol", help="Solver-in-the-Loop run (repeatable)."),
    sr: list[Path] = typer.Option(None, "--sr", help="Super-resolution run (repeatable)."),
    out: Path = typer.Option(..., "--out", help="Output directory (pipeline.json, .md, figures)."),
    data: Path = typer.Option(None, "--data", help="Test data set (default: the SOL run's)."),
    steps: int = typer.Option(50, help="Rollout steps."),
    start: int = typer.Option(None, help="First frame (default: the data set's warm-up)."),
    metric: list[str] = typer.Option(list(DEFAULT_FIELD_METRICS), "--metric", help="Metrics."),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    repeats: int = typer.Option(3, help="Interleaved timing rounds of every solver and upsampler."),
    timing_steps: int = typer.Option(10, help="Steps (or frames) of each job per timing round."),
) -> None:
    """The cheap simulator: low-res solver (plain or SOL-corrected), then bicubic or SR,
    compared with the high-resolution solver at its resolution, with time per frame (the
    median of interleaved rounds in one process, with their spread)."""
    from coldflow.tasks.pipeline.evaluation import evaluate_pipeline as run_pipeline
    from coldflow.tasks.pipeline.evaluation import pipeline_table

    _check_device(device, "--device")
    check_writable_dir(out, "--out")
    with _on_ctrl_c(lambda: f"{out / 'pipeline.json'} {_UNCHANGED}"):
        result = run_pipeline(
            sol, sr or [], out, data, steps, start, metric, device, repeats, timing_steps
        )
    console.print(pipeline_table(result), markup=False, highlight=False)
    console.print(f"written: {out / 'pipeline.md'}")


@app.command("evaluate-fields")
def evaluate_fields(
    a: Path = typer.Argument(..., help="HDF5 file with the fields to judge."),
    b: Path = typer.Argument(..., help="HDF5 file with the reference fields (may be A)."),
    key: str = typer.Option(..., "--key", help="Dataset path inside A (and B)."),
    key_b: str = typer.Option(
        None,
        "--key-b",
        help="Dataset path inside B (default: --key), e.g. to compare "
        "sims/0000/source/velocity with sims/0000/downsampled/velocity of one data set.",
    ),  # fmt: skip
    metric: list[str] = typer.Option(
        list(DEFAULT_FILE_METRICS),
        "--metric",
        help="mse | mae | rel_l1 | psnr | lsim | lpips | vgg",
    ),
    layout: str = typer.Option("NCHW", help="NCHW (channels first) or NHWC."),
    grid: str = typer.Option(
        None,
        help="centered | staggered velocity (default: staggered for the velocities of "
        "coldflow data sets, else centered).",
    ),  # fmt: skip
    out: Path = typer.Option(None, "--out", help="Also write the table as JSON here."),
    device: str = typer.Option(None, help="cpu | cuda (default: auto)."),
) -> None:
    """Compare two stored field data sets sample by sample with field metrics."""
    from coldflow.io import write_json
    from coldflow.metrics.files import evaluate_fields as run_metrics
    from coldflow.metrics.files import format_table

    _check_device(device, "--device")
    if out is not None:
        check_writable_file(out, "--out")
    table = run_metrics(
        a, b, key, metric, key_b=key_b, layout=layout, grid=grid, device=device
    )  # fmt: skip
    console.print(format_table(table), highlight=False, markup=False)
    if out:
        write_json(out, table)


@app.command("fid-classifier")
def fid_classifier(
    out: Path = typer.Option(..., "--out", help="Where to write the weights (.safetensors)."),
    epochs: int = typer.Option(4, help="Training epochs."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("cpu", help="cpu | cuda"),
) -> None:
    """Retrain the MNIST classifier whose features the default FID uses."""
    from coldflow.metrics.features import train_mnist_classifier

    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {epochs}")
    _check_device(device, "--device")
    check_writable_file(out, "--out")
    info = train_mnist_classifier(out, epochs=epochs, seed=seed, device=device)
    console.print_json(json.dumps(info))


@data_app.command("mnist")
def data_mnist() -> None:
    """Fetch (or find) the four MNIST IDX files and verify their checksums."""
    for split in ("train", "test"):
        for part in ("images", "labels"):
            path = hub.resolve(f"mnist-{split}-{part}")
            console.print(f"[green]ok[/green] mnist-{split}-{part}: {path}")


@weights_app.command("list")
def weights_list() -> None:
    """List known weight and data files and where they are found."""
    table = Table("name", "kind", "status", "description")
    for column in table.columns:  # paths and file names stay complete at any width
        column.overflow = "fold"
    for name, res in hub.RESOURCES.items():
        found = hub.locate(name)
        table.add_row(name, res.kind, str(found) if found else "[yellow]missing", res.description)
    console.print(table)


@weights_app.command("fetch")
def weights_fetch(
    name: str = typer.Argument(..., help="Resource name (see `weights list`)."),
) -> None:
    """Download (if needed) and verify one weight file."""
    console.print(f"[green]ok[/green] {name}: {hub.fetch(name)}")


_DEBUG = {"on": False}


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of any error."),
) -> None:
    _DEBUG["on"] = debug
    tune_malloc()  # freed activations stay in the process: faster CPU steps (allocator.py)


def main() -> None:
    """Entry point: run the app and turn errors about the user's input into one clear line.

    Errors of the program itself keep their traceback; ``--debug`` shows it for all.
    The line is not wrapped at the terminal width, so that paths stay whole.
    """
    try:
        app()
    except Exception as e:
        message = user_message(e)
        if message is None or _DEBUG["on"] or "--debug" in sys.argv:
            raise
        config = isinstance(e, ConfigError | DeviceError)  # fix it in the config: exit 2
        kind = "config error" if config else "error"
        config = config or isinstance(e, LockedError)  # another process writes there: 2
        line = " ".join(message.split()) if "\n" not in message.strip() else message.strip()
        errors.print(f"[red]{kind}:[/red] {escape(line)}", highlight=False, soft_wrap=True)
        sys.exit(2 if config else 1)


if __name__ == "__main__":
    main()
