"""The ``coldflow`` command line: one Typer app for every job of the lab."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from coldflow import hub
from coldflow.config import ConfigError
from coldflow.errors import UserError

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

SET_HELP = "Override a config key, e.g. --set training.epochs=5 (repeatable; values typed as YAML)."


def _method_kind(config: Path) -> str | None:
    """``method.kind`` of a YAML config (or of a run directory's config.yaml)."""
    from coldflow.config import load_yaml

    path = config / "config.yaml" if config.is_dir() else config
    method = load_yaml(path).get("method")
    return method.get("kind") if isinstance(method, dict) else None


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
    """Train a model from a YAML config into a run directory."""
    from coldflow.config import RunConfig, load_config
    from coldflow.experiment import train as train_run

    if config is None:
        if not (resume and run_dir):
            raise ConfigError("give a config file, or --resume with --run-dir of an existing run")
        config = run_dir / "config.yaml"
    if _method_kind(config) == "sol":
        from coldflow.config.sol import SolRunConfig
        from coldflow.fluid_experiment import train_sol

        sol_cfg = load_config(config, SolRunConfig, set_)
        run = train_sol(sol_cfg, run_dir or Path("runs") / sol_cfg.name, resume=resume)
        console.print(f"trained: {run.path}")
        return
    cfg = load_config(config, RunConfig, set_)
    run_dir = run_dir or Path("runs") / cfg.name
    run = train_run(cfg, run_dir, resume=resume)
    if report and run.write:
        from coldflow.report import write_run_report

        console.print(f"report: {write_run_report(run.path)}")


@app.command()
def sample(
    run_dir: Path = typer.Argument(..., help="A trained run directory."),
    n: int = typer.Option(16, "--n", help="Number of samples."),
    sampler: str = typer.Option(
        None, help="ancestral | ddim (DDPM); naive | improved (cold). Default: the config's."
    ),
    steps: int = typer.Option(None, help="DDIM steps (default 50)."),
    eta: float = typer.Option(0.0, help="DDIM eta."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = typer.Option(Path("samples.png"), "--out", help="Grid image (.png)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """Draw samples from a trained run and save them as an image grid."""
    import math

    from coldflow.config import SAMPLERS, RunConfig, load_config
    from coldflow.experiment import sample as sample_run
    from coldflow.report.figures import image_grid_figure
    from coldflow.report.style import save_figure

    cfg = load_config(run_dir / "config.yaml", RunConfig)
    sampler = sampler or cfg.sampling.sampler
    if sampler not in SAMPLERS[cfg.method.kind]:
        allowed = " or ".join(SAMPLERS[cfg.method.kind])
        raise typer.BadParameter(f"--sampler for {cfg.method.kind} must be {allowed}")
    res, loaded = sample_run(run_dir, n, sampler, steps, eta, seed, device)
    title = f"{cfg.name}: {sampler}" + (f", {steps or 50} steps" if sampler == "ddim" else "")
    ncol = math.ceil(math.sqrt(n))
    fig = image_grid_figure(res.images, tuple(loaded.cfg.data.range), ncol=ncol, title=title)
    save_figure(fig, out)
    console.print(f"{n} samples ({sampler}) from epoch {loaded.epoch} -> {out}")


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A trained run directory."),
    fid: bool = typer.Option(True, "--fid/--no-fid", help="Score FID (diffusion runs)."),
    n: int = typer.Option(10000, "--n", help="Number of samples for FID."),
    sampler: str = typer.Option(None, help="Sampler (default: the config's evaluation sampler)."),
    steps: int = typer.Option(
        None, help="DDIM steps (diffusion); rollout steps (Solver-in-the-Loop)."
    ),
    data: Path = typer.Option(None, "--data", help="Test data set (Solver-in-the-Loop runs)."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
) -> None:
    """Evaluate a run: FID (+ Table 1 for cold diffusion) or solver rollouts (SOL).

    Writes evaluation.json into the run directory.
    """
    if _method_kind(run_dir) == "sol":
        from coldflow.fluid_experiment import evaluate_sol
        from coldflow.trainer import resolve_device

        result = evaluate_sol(run_dir, data, steps, device=str(resolve_device(device)))
        shown = {k: result[k] for k in ("mean", "improvement", "seconds_per_step") if k in result}
        console.print_json(json.dumps(shown))
        return
    from coldflow.experiment import evaluate as evaluate_run

    if not fid:
        console.print("nothing to evaluate: pass --fid")
        raise typer.Exit(0)
    result = evaluate_run(run_dir, n, sampler, steps, seed, device)
    console.print_json(json.dumps(result))


@app.command()
def report(
    paths: list[Path] = typer.Argument(
        ...,
        help="Run directories (several: also a comparison), config YAMLs (their schedules "
        "together) or fluid data sets (.h5).",
    ),
    out: Path = typer.Option(None, "--out", help="Output directory of a comparison."),
) -> None:
    """Figures and report.html of runs; schedules of configs; figures of fluid data sets."""
    from coldflow.config import RunConfig, load_config
    from coldflow.report import plot_schedules, write_comparison, write_run_report

    configs = [p for p in paths if p.suffix in (".yaml", ".yml")]
    datasets = [p for p in paths if p.suffix in (".h5", ".hdf5")]
    runs = [p for p in paths if p not in configs and p not in datasets]
    if configs:
        labelled = [(p.stem, load_config(p, RunConfig)) for p in configs]
        target = (out or Path("runs") / "schedules") / "schedules.png"
        console.print(f"schedules: {plot_schedules(labelled, target)}")
    for p in datasets:
        from coldflow.report.fields import report_dataset

        target = out / p.stem if out else p.with_name(f"{p.stem}_figures")
        figures = report_dataset(p, target)
        console.print(f"{p}: {len(figures)} figures in {target}")
    sol_runs = [p for p in runs if _method_kind(p) == "sol"]
    if sol_runs:
        from coldflow.report.sol import write_sol_report

        target = out or Path("runs") / "comparison"
        console.print(f"Solver-in-the-Loop comparison: {write_sol_report(sol_runs, target)}")
    runs = [p for p in runs if p not in sol_runs]
    for p in runs:
        console.print(f"{p}: {write_run_report(p)}")
    if len(runs) > 1:
        out = out or Path("runs") / "comparison"
        console.print(f"comparison: {write_comparison(runs, out)}")


@app.command()
def simulate(
    config: Path = typer.Argument(..., help="Fluid data-set YAML (configs/fluids/...)."),
    out: Path = typer.Option(..., "--out", help="HDF5 file to write, e.g. data/karman.h5."),
    shard: str = typer.Option("0/1", help="Run only simulations i, i+n, ... (cluster arrays)."),
    set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Simulate a fluid data set (high-res reference, downsampled, low-res source) to HDF5."""
    from coldflow.simulate import parse_shard
    from coldflow.simulate import simulate as run_simulation

    done = run_simulation(config, out, parse_shard(shard), set_ or [], progress=progress)
    if done is None:
        console.print(f"shard {shard} done; run the other shards to complete {out}")
    else:
        console.print(f"data set complete: {done}")


@app.command()
def study(
    config: Path = typer.Argument(..., help="Study YAML: a list of runs to train and compare."),
    out: Path = typer.Option(None, "--out", help="Output directory (default runs/<study name>)."),
    set_: list[str] = typer.Option(None, "--set", help="Override applied to every run."),
) -> None:
    """Train every run of a study (resuming finished or interrupted ones) and compare them."""
    from coldflow.study import run_study

    index = run_study(config, out, set_ or [])
    console.print(f"study report: {index}")


@app.command("evaluate-fields")
def evaluate_fields(
    a: Path = typer.Argument(..., help="HDF5 file with the fields to judge."),
    b: Path = typer.Argument(..., help="HDF5 file with the reference fields."),
    key: str = typer.Option(..., "--key", help="Dataset path inside both files."),
    metric: list[str] = typer.Option(
        ["mse", "rel_l1"], "--metric", help="mse | mae | rel_l1 | psnr | lsim | lpips | vgg"
    ),
    layout: str = typer.Option("NCHW", help="NCHW (channels first) or NHWC."),
    grid: str = typer.Option("centered", help="centered | staggered velocity."),
    out: Path = typer.Option(None, "--out", help="Also write the table as JSON here."),
    device: str = typer.Option(None, help="cpu | cuda (default: auto)."),
) -> None:
    """Compare two stored field data sets sample by sample with field metrics."""
    from coldflow.io import write_json
    from coldflow.metrics.fields import evaluate_fields as run_metrics
    from coldflow.metrics.fields import format_table

    table = run_metrics(a, b, key, metric, layout=layout, grid=grid, device=device)
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


def main() -> None:
    """Entry point: run the app and turn known errors into one clear line."""
    try:
        app()
    except ConfigError as e:
        console.print(f"[red]config error:[/red] {escape(str(e))}", highlight=False)
        sys.exit(2)
    except (UserError, FileNotFoundError, FileExistsError) as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
