"""Every command of ``coldflow`` with every class of bad input: one clear line, no traceback.

The matrix below walks each command of :data:`coldflow.cli.app` with bad or missing
paths, files of the wrong kind (a PNG as config, a YAML as run directory, a directory as
HDF5), runs of another task, HDF5 files that are no coldflow data set, empty configs,
read-only output directories, ``--n 0`` and bad ``--shard`` values. Each case must exit
non-zero with one line that names the file or option (and never print ``Traceback``).

The cases run in-process through :func:`coldflow.cli.main` (an exception escaping it is
exactly what Python would print as a traceback); a few run as real subprocesses of the
installed ``coldflow`` script to check the exit codes and streams end to end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from coldflow import cli

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "mnist" / "quick.yaml"
KARMAN = ROOT / "configs" / "fluids" / "karman_tiny.yaml"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(64)

TINY_DDPM = [
    "data.train_subset=32", "degradation.n_T=10", "model.hidden=[4, 8, 4]",
    "model.time_embeddings=4", "training.epochs=1", "training.batch_size=16",
    "training.progress=false", "training.device=cpu", "sampling.snapshot_timesteps=[10, 1]",
    "sampling.n_grid=4", "evaluation.interval=5", "evaluation.fid.enabled=false",
]  # fmt: skip


@dataclass
class World:
    """Files made once per module: a tiny data set, runs of three tasks, bad inputs."""

    root: Path
    h5: Path
    ddpm: Path
    sol: Path
    sr: Path
    png: Path
    yaml: Path
    empty_yaml: Path
    list_yaml: Path
    empty_dir: Path
    foreign_h5: Path
    dir_h5: Path
    readonly: Path
    sr_yaml: Path
    sol_yaml: Path


def _readonly_dir(root: Path) -> Path:
    """A directory nobody can write into: chmod 555, or read-only /sys for root."""
    if os.geteuid() != 0:
        path = root / "readonly"
        path.mkdir()
        path.chmod(0o555)
        return path
    probe = Path("/sys") / "coldflow-probe.txt"
    try:
        probe.write_text("x")
    except OSError:
        return Path("/sys")
    probe.unlink()
    pytest.skip("no read-only directory available")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    from coldflow.config import load_config
    from coldflow.experiment import load_config_file, train
    from coldflow.simulate.run import simulate
    from coldflow.tasks.diffusion.config import DiffusionRunConfig

    root = tmp_path_factory.mktemp("cli_errors")
    h5 = root / "karman.h5"
    simulate(KARMAN, h5, progress=False)
    ddpm = root / "ddpm"
    train(load_config(QUICK, DiffusionRunConfig, TINY_DDPM), ddpm, finish=False)
    training = "training: {epochs: 1, batch_size: 8, progress: false, device: cpu}\n"
    sr_yaml = root / "sr.yaml"
    sr_yaml.write_text(
        f"name: sr\ndata: {{path: {h5}}}\nmodel: {{width: 4, blocks: 1}}\n"
        f"method: {{kind: superres}}\n{training}"
        "evaluation: {metrics: [mse], figure_frames: 1}\n"
    )
    sol_yaml = root / "sol.yaml"
    sol_yaml.write_text(
        f"name: sol\ndata: {{path: {h5}}}\n"
        "model: {kind: sol_resnet_small, width: 4, blocks: 1, kernel_size: 3}\n"
        f"method: {{kind: sol, m: 1, loss: {{name: mse}}}}\n{training}"
        "evaluation: {steps: 2, metrics: [mse], timing_steps: 1}\n"
    )
    sr, sol = root / "sr", root / "sol"
    train(load_config_file(sr_yaml), sr, finish=False)
    train(load_config_file(sol_yaml), sol, finish=False)
    png = root / "picture.png"
    png.write_bytes(PNG_BYTES)
    yaml = root / "quick.yaml"
    shutil.copy(QUICK, yaml)
    empty_yaml = root / "empty.yaml"
    empty_yaml.write_text("")
    list_yaml = root / "list.yaml"
    list_yaml.write_text("- 1\n- 2\n")
    empty_dir = root / "empty_dir"
    empty_dir.mkdir()
    foreign_h5 = root / "foreign.h5"
    with h5py.File(foreign_h5, "w") as f:
        f["velocity"] = np.zeros((2, 2, 4, 4), np.float32)
    dir_h5 = root / "folder.h5"
    dir_h5.mkdir()
    return World(
        root, h5, ddpm, sol, sr, png, yaml, empty_yaml, list_yaml, empty_dir, foreign_h5,
        dir_h5, _readonly_dir(root), sr_yaml, sol_yaml,
    )  # fmt: skip


@dataclass
class Outcome:
    code: int | str
    out: str
    err: str
    trace: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(monkeypatch, capsys, *args: str) -> Outcome:
    """Run ``coldflow *args`` in-process; an escaping exception is recorded as a traceback."""
    monkeypatch.setattr(sys, "argv", ["coldflow", *args])
    monkeypatch.chdir(os.environ.get("COLDFLOW_TEST_CWD", os.getcwd()))
    code: int | str = 0
    trace = ""
    try:
        cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (1 if e.code else 0)
    except BaseException:  # noqa: BLE001 - what Python would print as a traceback
        trace = traceback.format_exc(limit=-3)
        code = "traceback"
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err, trace)


def assert_one_clear_line(outcome: Outcome, *names: str) -> str:
    """Non-zero exit, no traceback, an error line naming every one of ``names``.

    The message is the line starting ``error:`` (or ``config error:``) and any lines
    after it (a config error lists each bad key on its own line).
    """
    assert not outcome.trace, outcome.trace
    assert "Traceback" not in outcome.text, outcome.text
    assert outcome.code not in (0, "traceback"), outcome.text
    lines = [line for line in outcome.text.splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith(("error:", "config error:"))]
    assert starts, outcome.text
    message = "\n".join(lines[starts[0] :])
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"
    return message


# Each case: (id, argv builder, fragments the error line must contain). The builders take
# the module's World; the fragments are format strings over its fields.
CASES: list = [
    # ------------------------------------------------------------------------ train
    ("train/missing-config", ["train", "{root}/nope.yaml"], ["nope.yaml"]),
    ("train/png-as-config", ["train", "{png}"], ["picture.png"]),
    ("train/dir-as-config", ["train", "{empty_dir}"], ["empty_dir"]),
    ("train/empty-config", ["train", "{empty_yaml}"], ["empty.yaml"]),
    ("train/list-config", ["train", "{list_yaml}"], ["list.yaml"]),
    ("train/bad-set-key", ["train", "{yaml}", "--set", "training.epoc=1"], ["training.epoc"]),
    ("train/resume-missing-run", ["train", "--resume", "--run-dir", "{root}/none"], ["none"]),
    ("train/resume-empty-dir", ["train", "--resume", "--run-dir", "{empty_dir}"], ["empty_dir"]),
    ("train/run-dir-is-file", ["train", "{yaml}", "--run-dir", "{png}"], ["picture.png"]),
    ("train/run-dir-readonly", ["train", "{sr_yaml}", "--run-dir", "{readonly}/r"], ["{readonly}"]),
    ("train/run-dir-of-other-run", ["train", "{sr_yaml}", "--run-dir", "{sol}"], ["sol"]),
    (
        "train/data-missing",
        ["train", "{sr_yaml}", "--set", "data.path={root}/absent.h5"],
        ["absent.h5"],
    ),
    (
        "train/data-foreign-h5",
        ["train", "{sr_yaml}", "--set", "data.path={foreign_h5}"],
        ["foreign.h5"],
    ),
    ("train/data-dir-as-h5", ["train", "{sr_yaml}", "--set", "data.path={dir_h5}"], ["folder.h5"]),
    ("train/data-png-as-h5", ["train", "{sol_yaml}", "--set", "data.path={png}"], ["picture.png"]),
    (
        "train/missing-gpu",
        ["train", "{sr_yaml}", "--set", "training.device=cuda:7", "--run-dir", "{root}/gpu"],
        ["cuda"],
    ),
    # ----------------------------------------------------------------------- sample
    ("sample/missing-run", ["sample", "{root}/none"], ["none"]),
    ("sample/yaml-as-run", ["sample", "{yaml}"], ["quick.yaml"]),
    ("sample/png-as-run", ["sample", "{png}"], ["picture.png"]),
    ("sample/empty-dir", ["sample", "{empty_dir}"], ["empty_dir"]),
    ("sample/sol-run", ["sample", "{sol}"], ["sol", "no samples"]),
    ("sample/superres-run", ["sample", "{sr}"], ["sr", "no samples"]),
    ("sample/n-zero", ["sample", "{ddpm}", "--n", "0"], ["--n"]),
    ("sample/bad-sampler", ["sample", "{ddpm}", "--sampler", "improved", "--n", "1"], ["improved"]),
    (
        "sample/out-readonly",
        [
            "sample",
            "{ddpm}",
            "--n",
            "1",
            "--sampler",
            "ddim",
            "--steps",
            "2",
            "--device",
            "cpu",
            "--out",
            "{readonly}/s.png",
        ],
        ["{readonly}"],
    ),
    (
        "sample/out-is-dir",
        [
            "sample",
            "{ddpm}",
            "--n",
            "1",
            "--sampler",
            "ddim",
            "--steps",
            "2",
            "--device",
            "cpu",
            "--out",
            "{empty_dir}",
        ],
        ["empty_dir"],
    ),
    (
        "sample/out-under-file",
        [
            "sample",
            "{ddpm}",
            "--n",
            "1",
            "--sampler",
            "ddim",
            "--steps",
            "2",
            "--device",
            "cpu",
            "--out",
            "{png}/s.png",
        ],
        ["picture.png"],
    ),
    ("sample/missing-gpu", ["sample", "{ddpm}", "--n", "1", "--device", "cuda:7"], ["cuda"]),
    # --------------------------------------------------------------------- evaluate
    ("evaluate/missing-run", ["evaluate", "{root}/none"], ["none"]),
    ("evaluate/yaml-as-run", ["evaluate", "{yaml}"], ["quick.yaml"]),
    ("evaluate/empty-dir", ["evaluate", "{empty_dir}"], ["empty_dir"]),
    ("evaluate/sampler-on-fluid-run", ["evaluate", "{sr}", "--sampler", "ddim"], ["--sampler"]),
    ("evaluate/data-on-ddpm-run", ["evaluate", "{ddpm}", "--data", "{h5}"], ["--data"]),
    ("evaluate/n-zero", ["evaluate", "{ddpm}", "--n", "0", "--device", "cpu"], ["--n"]),
    ("evaluate/n-one", ["evaluate", "{ddpm}", "--n", "1", "--device", "cpu"], ["--n", "2"]),
    ("evaluate/data-missing", ["evaluate", "{sr}", "--data", "{root}/absent.h5"], ["absent.h5"]),
    ("evaluate/data-foreign-h5", ["evaluate", "{sol}", "--data", "{foreign_h5}"], ["foreign.h5"]),
    ("evaluate/data-dir-as-h5", ["evaluate", "{sr}", "--data", "{dir_h5}"], ["folder.h5"]),
    ("evaluate/data-png", ["evaluate", "{sol}", "--data", "{png}"], ["picture.png"]),
    (
        "evaluate/bad-split",
        ["evaluate", "{sr}", "--split", "nosuch", "--device", "cpu"],
        ["nosuch"],
    ),
    (
        "evaluate/sol-bad-split",
        ["evaluate", "{sol}", "--split", "nosuch", "--device", "cpu"],
        ["nosuch"],
    ),
    (
        "evaluate/sol-start-too-late",
        ["evaluate", "{sol}", "--start", "999", "--device", "cpu"],
        ["999"],
    ),
    ("evaluate/missing-gpu", ["evaluate", "{sr}", "--device", "cuda:7"], ["cuda"]),
    # ----------------------------------------------------------------------- report
    ("report/missing-path", ["report", "{root}/none"], ["none"]),
    ("report/png", ["report", "{png}"], ["picture.png"]),
    ("report/empty-dir", ["report", "{empty_dir}"], ["empty_dir"]),
    ("report/empty-config", ["report", "{empty_yaml}"], ["empty.yaml"]),
    ("report/fluid-config-as-schedule", ["report", "{sr_yaml}"], ["sr.yaml"]),
    ("report/foreign-h5", ["report", "{foreign_h5}"], ["foreign.h5"]),
    ("report/dir-as-h5", ["report", "{dir_h5}"], ["folder.h5"]),
    ("report/several-runs-no-out", ["report", "{sr}", "{sr}"], ["--out"]),
    ("report/runs-of-two-tasks", ["report", "{sr}", "{sol}", "--out", "{root}/cmp"], ["sol"]),
    ("report/out-readonly", ["report", "{yaml}", "--out", "{readonly}/x"], ["{readonly}"]),
    # --------------------------------------------------------------------- simulate
    (
        "simulate/missing-config",
        ["simulate", "{root}/nope.yaml", "--out", "{root}/o.h5"],
        ["nope.yaml"],
    ),
    ("simulate/png-config", ["simulate", "{png}", "--out", "{root}/o.h5"], ["picture.png"]),
    ("simulate/empty-config", ["simulate", "{empty_yaml}", "--out", "{root}/o.h5"], ["empty.yaml"]),
    ("simulate/run-config", ["simulate", "{sr_yaml}", "--out", "{root}/o.h5"], ["sr.yaml"]),
    (
        "simulate/bad-shard-text",
        ["simulate", KARMAN, "--out", "{root}/o.h5", "--shard", "x"],
        ["--shard"],
    ),
    (
        "simulate/bad-shard-range",
        ["simulate", KARMAN, "--out", "{root}/o.h5", "--shard", "2/2"],
        ["--shard"],
    ),
    (
        "simulate/bad-shard-zero",
        ["simulate", KARMAN, "--out", "{root}/o.h5", "--shard", "0/0"],
        ["--shard"],
    ),
    (
        "simulate/bad-set",
        ["simulate", KARMAN, "--out", "{root}/o.h5", "--set", "framez=3"],
        ["framez"],
    ),
    ("simulate/out-is-dir", ["simulate", KARMAN, "--out", "{empty_dir}"], ["empty_dir"]),
    ("simulate/out-readonly", ["simulate", KARMAN, "--out", "{readonly}/o.h5"], ["{readonly}"]),
    ("simulate/out-under-file", ["simulate", KARMAN, "--out", "{png}/o.h5"], ["picture.png"]),
    ("simulate/out-exists-foreign", ["simulate", KARMAN, "--out", "{foreign_h5}"], ["foreign.h5"]),
    # ------------------------------------------------------------------------ study
    ("study/missing", ["study", "{root}/nope.yaml"], ["nope.yaml"]),
    ("study/png", ["study", "{png}"], ["picture.png"]),
    ("study/empty", ["study", "{empty_yaml}"], ["empty.yaml"]),
    ("study/run-config", ["study", "{sr_yaml}", "--out", "{root}/st"], ["sr.yaml"]),
    ("study/bad-shard", ["study", "{root}/study.yaml", "--shard", "3/2"], ["--shard"]),
    (
        "study/collect-nothing",
        ["study", "{root}/study.yaml", "--collect", "--out", "{empty_dir}"],
        ["finished"],
    ),
    (
        "study/out-readonly",
        ["study", "{root}/study.yaml", "--out", "{readonly}/st"],
        ["{readonly}"],
    ),
    (
        "study/missing-run-config",
        ["study", "{root}/broken_study.yaml", "--out", "{root}/bs"],
        ["absent_run.yaml"],
    ),
    # ------------------------------------------------------------ evaluate-pipeline
    (
        "evaluate-pipeline/missing-sol",
        ["evaluate-pipeline", "--sol", "{root}/none", "--out", "{root}/p"],
        ["none"],
    ),
    (
        "evaluate-pipeline/sr-as-sol",
        ["evaluate-pipeline", "--sol", "{sr}", "--out", "{root}/p"],
        ["sr", "not a sol run"],
    ),
    (
        "evaluate-pipeline/sol-as-sr",
        ["evaluate-pipeline", "--sol", "{sol}", "--sr", "{sol}", "--out", "{root}/p"],
        ["sol", "not a superres or diffusion_sr run"],
    ),
    (
        "evaluate-pipeline/yaml-as-run",
        ["evaluate-pipeline", "--sol", "{yaml}", "--out", "{root}/p"],
        ["quick.yaml"],
    ),
    (
        "evaluate-pipeline/foreign-data",
        ["evaluate-pipeline", "--sol", "{sol}", "--data", "{foreign_h5}", "--out", "{root}/p"],
        ["foreign.h5"],
    ),
    (
        "evaluate-pipeline/steps-zero",
        ["evaluate-pipeline", "--sol", "{sol}", "--steps", "0", "--out", "{root}/p"],
        ["--steps"],
    ),
    (
        "evaluate-pipeline/out-readonly",
        ["evaluate-pipeline", "--sol", "{sol}", "--out", "{readonly}/p"],
        ["{readonly}"],
    ),
    # -------------------------------------------------------------- evaluate-fields
    ("evaluate-fields/missing", ["evaluate-fields", "{root}/a.h5", "{h5}", "--key", "x"], ["a.h5"]),
    ("evaluate-fields/dir", ["evaluate-fields", "{dir_h5}", "{h5}", "--key", "x"], ["folder.h5"]),
    ("evaluate-fields/png", ["evaluate-fields", "{png}", "{h5}", "--key", "x"], ["picture.png"]),
    (
        "evaluate-fields/no-key",
        ["evaluate-fields", "{h5}", "{h5}", "--key", "nosuch"],
        ["nosuch", "karman.h5"],
    ),
    ("evaluate-fields/group-key", ["evaluate-fields", "{h5}", "{h5}", "--key", "sims"], ["sims"]),
    (
        "evaluate-fields/shape-mismatch",
        [
            "evaluate-fields",
            "{h5}",
            "{h5}",
            "--key",
            "sims/0000/source/velocity",
            "--key-b",
            "sims/0000/reference/velocity",
        ],
        ["(12, 2, 17, 9)", "(12, 2, 33, 17)"],
    ),
    (
        "evaluate-fields/bad-metric",
        [
            "evaluate-fields",
            "{foreign_h5}",
            "{foreign_h5}",
            "--key",
            "velocity",
            "--metric",
            "nosuch",
        ],
        ["nosuch"],
    ),
    (
        "evaluate-fields/bad-layout",
        ["evaluate-fields", "{foreign_h5}", "{foreign_h5}", "--key", "velocity", "--layout", "HWC"],
        ["HWC"],
    ),
    (
        "evaluate-fields/bad-grid",
        ["evaluate-fields", "{foreign_h5}", "{foreign_h5}", "--key", "velocity", "--grid", "hex"],
        ["hex"],
    ),
    (
        "evaluate-fields/centered-on-staggered",
        [
            "evaluate-fields",
            "{h5}",
            "{h5}",
            "--key",
            "sims/0000/source/velocity",
            "--grid",
            "centered",
        ],
        ["staggered"],
    ),
    (
        "evaluate-fields/out-readonly",
        [
            "evaluate-fields",
            "{foreign_h5}",
            "{foreign_h5}",
            "--key",
            "velocity",
            "--out",
            "{readonly}/t.json",
        ],
        ["{readonly}"],
    ),
    # --------------------------------------------------------------- fid-classifier
    (
        "fid-classifier/out-readonly",
        ["fid-classifier", "--out", "{readonly}/c.safetensors"],
        ["{readonly}"],
    ),
    ("fid-classifier/out-is-dir", ["fid-classifier", "--out", "{empty_dir}"], ["empty_dir"]),
    (
        "fid-classifier/out-under-file",
        ["fid-classifier", "--out", "{png}/c.safetensors"],
        ["picture.png"],
    ),
    (
        "fid-classifier/zero-epochs",
        ["fid-classifier", "--out", "{root}/c.safetensors", "--epochs", "0"],
        ["--epochs"],
    ),
    (
        "fid-classifier/missing-gpu",
        ["fid-classifier", "--out", "{root}/c.safetensors", "--device", "cuda:7"],
        ["cuda"],
    ),
    # ------------------------------------------------------------------ weights
    ("weights-fetch/unknown", ["weights", "fetch", "nosuch"], ["nosuch"]),
]


def _format(world: World, arg: object) -> str:
    return str(arg).format(**{k: str(v) for k, v in vars(world).items()})


def _write_studies(world: World) -> None:
    study = world.root / "study.yaml"
    if not study.exists():
        study.write_text(f"name: s\nruns:\n  - name: a\n    config: {world.sr_yaml}\n")
        broken = world.root / "broken_study.yaml"
        absent = world.root / "absent_run.yaml"
        broken.write_text(f"name: b\nruns:\n  - name: a\n    config: {absent}\n")


def _case_id(case) -> str:
    return case.values[0] if hasattr(case, "values") else case[0]


def _as_param(case):
    if hasattr(case, "values"):
        return pytest.param(*case.values[1:], marks=case.marks, id=case.values[0])
    return pytest.param(*case[1:], id=case[0])


@pytest.mark.parametrize(("args", "names"), [_as_param(c) for c in CASES])
def test_bad_input_is_one_clear_line(world, monkeypatch, capsys, args, names):
    _write_studies(world)
    argv = [_format(world, a) for a in args]
    outcome = run_cli(monkeypatch, capsys, *argv)
    assert_one_clear_line(outcome, *[_format(world, n) for n in names])


def test_the_matrix_covers_every_command():
    """Every command of the app (and of its sub-apps) appears in the matrix."""
    import typer.main

    group = typer.main.get_command(cli.app)
    commands = set()
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        commands |= {f"{name}-{s}" for s in sub} if sub else {name}
    walked = {_case_id(c).split("/")[0] for c in CASES} | {"data-mnist", "weights-list"}
    assert commands <= walked, commands - walked


# ---------------------------------------------------------- commands with environments


def test_data_mnist_without_the_files_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLDFLOW_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("COLDFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLDFLOW_OFFLINE", "1")
    line = assert_one_clear_line(run_cli(monkeypatch, capsys, "data", "mnist"))
    assert "mnist" in line.lower()


def test_weights_fetch_of_a_missing_file_offline_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLDFLOW_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("COLDFLOW_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("COLDFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLDFLOW_OFFLINE", "1")
    assert_one_clear_line(run_cli(monkeypatch, capsys, "weights", "fetch", "lsim"), "lsim")


def test_debug_shows_the_traceback(world, monkeypatch, capsys):
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        run_cli_raw(monkeypatch, "--debug", "sample", str(world.root / "none"))


def run_cli_raw(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["coldflow", *args])
    cli.main()


# ---------------------------------------------------------------- real processes

COLDFLOW = Path(sys.executable).with_name("coldflow")


def _process(*args: str, columns: int | None = None) -> subprocess.CompletedProcess:
    exe = [str(COLDFLOW)] if COLDFLOW.exists() else [sys.executable, "-m", "coldflow.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if columns:
        env["COLUMNS"] = str(columns)
    return subprocess.run([*exe, *args], env=env, capture_output=True, text=True, timeout=300)


def test_real_processes_exit_with_one_line(world):
    """The installed script: exit 1 for a user error, 2 for a config error, one line each."""
    res = _process("sample", str(world.sr), "--n", "2")
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr
    assert not res.stdout.strip()  # errors go to stderr
    assert [line for line in res.stderr.splitlines() if line.strip()] == [
        f"error: {world.sr} is a superres run, which draws no samples; use `coldflow evaluate`"
    ]
    res = _process("train", str(world.png), columns=40)
    assert res.returncode == 2 and "Traceback" not in res.stdout + res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(world.png) in lines[0]  # long lines are not wrapped


def _table_column(text: str, column: int) -> list[str]:
    """The cells of one column of a rich table, each joined over its folded lines."""
    cells: list[str] = []
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        parts = line.split("│")[1:-1]
        if parts[0].strip():  # a new row (the first column is never empty)
            cells.append("")
        cells[-1] += parts[column].strip()
    return cells


def test_weights_list_keeps_full_paths_at_80_columns():
    from coldflow import hub

    res = _process("weights", "list", columns=80)
    assert res.returncode == 0, res.stdout + res.stderr
    assert max(len(line) for line in res.stdout.splitlines()) <= 80
    status = _table_column(res.stdout, 2)
    names = _table_column(res.stdout, 0)
    assert names == list(hub.RESOURCES)
    for name, cell in zip(names, status, strict=True):
        found = hub.locate(name)
        assert cell == (str(found) if found else "missing"), (name, cell)
    descriptions = _table_column(res.stdout, 3)
    assert not any("…" in d for d in descriptions), descriptions


# ---------------------------------------------------------------------- report


def test_report_of_one_sol_run_writes_into_the_run(world, monkeypatch, capsys, tmp_path):
    run = tmp_path / "sol"
    shutil.copytree(world.sol, run)
    outcome = run_cli(monkeypatch, capsys, "report", str(run))
    assert outcome.code == 0, outcome.text + outcome.trace
    assert (run / "report.html").is_file()
    assert str(run / "report.html") in "".join(outcome.out.split())


def test_report_of_several_runs_needs_out(world, monkeypatch, capsys, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(world.sr, a)
    shutil.copytree(world.sr, b)
    line = assert_one_clear_line(run_cli(monkeypatch, capsys, "report", str(a), str(b)))
    assert "--out" in line
    outcome = run_cli(monkeypatch, capsys, "report", str(a), str(b), "--out", str(tmp_path / "c"))
    assert outcome.code == 0, outcome.text + outcome.trace
    assert (tmp_path / "c" / "index.html").is_file() or list((tmp_path / "c").glob("*.html"))


def test_resume_with_a_changed_config_is_one_line(world, monkeypatch, capsys, tmp_path):
    run = tmp_path / "ddpm"
    shutil.copytree(world.ddpm, run)
    args = ["train", "--resume", "--run-dir", str(run), "--no-report"]
    outcome = run_cli(monkeypatch, capsys, *args, "--set", "model.hidden=[4, 4, 4]")
    message = assert_one_clear_line(outcome, str(run))
    assert outcome.code == 2 and "config differs" in message
