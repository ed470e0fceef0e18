"""Study matrices: a run entry expanded into one run per combination of config values,
and the base configs of ``configs/fluids/`` that replaced one file per loss."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from coldflow.config import ConfigError, StudyConfig, load_config, load_yaml, validate
from coldflow.config.study import StudyRun, expand_matrix
from coldflow.config.training import FieldLossConfig
from coldflow.experiment import load_config_file
from coldflow.losses import LOSSES

ROOT = Path(__file__).resolve().parents[1]
FLUIDS = ROOT / "configs" / "fluids"
STUDIES = ROOT / "configs" / "studies"
#: the last commit with one config file per loss (68 files in configs/fluids/)
PER_LOSS_COMMIT = "349c82d76e9002de44d1c18587349e4211cd05a9"
#: study -> suffix of its old per-loss files (karman_sol_mse_cpu.yaml, ...)
FLUID_STUDIES = {"fluids.yaml": "", "fluids_cpu.yaml": "_cpu", "demo.yaml": "_demo"}
#: the run configs of configs/fluids/ but the book's (data-set configs have no method)
BASES = sorted(
    p
    for p in FLUIDS.glob("*.yaml")
    if "method" in load_yaml(p)
    and "book" not in p.stem
    and load_yaml(p)["method"].get("kind") != "diffusion_sr"  # trains its own objective
)


def study(runs: list[dict], **extra) -> StudyConfig:
    return validate({"runs": runs, **extra}, StudyConfig, "s.yaml")


def matrix_run(name: str, matrix: dict, **extra) -> dict:
    return {"name": name, "config": "base.yaml", "matrix": matrix, **extra}


# ------------------------------------------------------------------------ expansion


def test_cartesian_product_first_key_slowest_with_names_and_overrides():
    runs = study(
        [
            {"name": "before", "config": "a.yaml"},
            matrix_run(
                "r_{loss}_{lr}",
                {"method.loss.name": ["mse", "lsim"], "training.optimizer.lr": [1e-3, 0.01]},
                set=["seed=3"],
                evaluate=True,
            ),
            {"name": "after", "config": "a.yaml"},
        ]
    ).runs
    names = [r.name for r in runs]
    assert names == [
        "before",
        "r_mse_0.001",
        "r_mse_0.01",
        "r_lsim_0.001",
        "r_lsim_0.01",
        "after",
    ]
    first = runs[1]
    # the config's name, then the entry's own set, then the matrix in its key order
    assert first.set == [
        "name=r_mse_0.001",
        "seed=3",
        "method.loss.name=mse",
        "training.optimizer.lr=0.001",
    ]
    assert first.config == "base.yaml" and first.evaluate is True and first.matrix == {}
    assert runs[0].set == [] and runs[0] is not first


def test_placeholders_whole_keys_format_specs_and_single_values():
    runs = expand_matrix(
        StudyRun(
            name="r_{model}_{seed}_{training.optimizer.lr:.0e}",
            config="c.yaml",
            matrix={"model.kind": ["unet"], "seed": [0, 1], "training.optimizer.lr": [1e-4]},
        )
    )
    assert [r.name for r in runs] == ["r_unet_0_1e-04", "r_unet_1_1e-04"]
    # a key with one value needs no placeholder
    (run,) = expand_matrix(StudyRun(name="fixed", config="c.yaml", matrix={"seed": [7]}))
    assert run.name == "fixed" and run.set == ["name=fixed", "seed=7"]


def test_values_keep_their_yaml_type_in_the_overrides():
    from coldflow.config import apply_overrides

    values = ["yes", "1e-5", "null", 2, 1e-5, True, None]
    runs = expand_matrix(StudyRun(name="r{x}", config="c.yaml", matrix={"x": values}))
    back = [apply_overrides({}, [r.set[-1]])["x"] for r in runs]
    assert back == values and [type(v) for v in back] == [type(v) for v in values]
    assert [r.name for r in runs][:4] == ["ryes", "r1e-5", "rnull", "r2"]


def test_matrix_overrides_win_over_the_runs_own_set_and_the_command_line(tmp_path):
    cfg = tmp_path / "sr.yaml"
    cfg.write_text(
        "name: sr\ndata: {path: x.h5}\nmethod: {kind: superres, loss: {name: mse}}\n"
        "training: {epochs: 1}\n"
    )
    (run,) = study(
        [matrix_run("r_{loss}", {"method.loss.name": ["lsim"]}, set=["method.loss.name=mae"])]
    ).runs
    loaded = load_config_file(cfg, ["name=cli", "training.epochs=2", *run.set])
    assert loaded.name == "r_lsim" and loaded.method.loss.name == "lsim"
    assert loaded.training.epochs == 2
    # lsim without options gets the studies' joint scaling; the run's own options stay
    assert loaded.method.loss.options == {"scaling": "joint"}
    (run,) = study(
        [matrix_run("r_{loss}", {"method.loss.name": ["lsim"]}, set=["method.loss.options={}"])]
    ).runs
    assert load_config_file(cfg, run.set).method.loss.options == {}


def test_default_loss_options_only_when_left_out():
    assert FieldLossConfig(name="lsim").options == {"scaling": "joint"}
    assert FieldLossConfig(name="lsim", options={}).options == {}
    assert FieldLossConfig(name="lsim", options={"scaling": "none"}).options == {"scaling": "none"}
    for name in ("mse", "mae", "vgg", "lpips"):
        assert FieldLossConfig(name=name).options == {}


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("run", "match"),
    [
        (matrix_run("r_{loss}", {"method.loss.name": []}),
         r"run 'r_\{loss\}': matrix key 'method.loss.name' has no values; list at least one"),
        (matrix_run("r_{loss}", {}), r"run 'r_\{loss\}': the matrix is empty; give a key"),
        (matrix_run("r", {"method.loss.name": ["mse", "lsim"]}),
         r"run 'r': the name has no placeholder for matrix key 'method.loss.name' \(2 values\)"
         r", so its runs would share one name; name it e.g. r_\{loss\}"),
        (matrix_run("r_{los}", {"method.loss.name": ["mse"]}),
         r"run 'r_\{los\}': unknown placeholder \{los\}; this matrix offers \{loss\}, "
         r"\{method.loss.name\}"),
        (matrix_run("r_{name}", {"model.name": [1, 2], "method.name": [1, 2]}),
         r"unknown placeholder \{name\}"),
        (matrix_run("r_{model}", {"model.name": [1, 2], "a.model.kind": [1, 2]}),
         r"placeholder \{model\} is ambiguous \(model.name, a.model.kind\); write the whole "
         r"key, e.g. \{model.name\}"),
        (matrix_run("r_{loss}", {"method.loss": [{"name": "lsim"}]}),
         r"matrix key 'method.loss': \{'name': 'lsim'\} is no scalar; .* one key at a time"),
        (matrix_run("r_{loss}", {"method.loss.name": ["mse", "mse"]}),
         r"matrix key 'method.loss.name' lists mse more than once"),
        (matrix_run("r_{x}", {"a=b": [1]}), r"matrix key 'a=b' is no config key"),
        (matrix_run("r_{loss}", {"method.loss.name": ["a b"]}),
         r"run 'r_\{loss\}': expands to 'r_a b', which is no run name"),
        (matrix_run("r_{loss!r}", {"method.loss.name": ["a"]}), r"write placeholders as"),
        (matrix_run("r_{x:d}", {"x": ["a"]}), r"format spec 'd' does not fit 'a'"),
        ({"name": "r_{loss}", "config": "c.yaml"},
         r"run 'r_\{loss\}': .*\(\{...\} placeholders need a matrix\)"),
    ],
)  # fmt: skip
def test_bad_matrices_name_the_run_the_key_and_the_fix(run, match):
    with pytest.raises(ConfigError, match=r"s\.yaml: invalid config:\n  runs\.0: .*" + match):
        study([run])


def test_expanded_names_must_not_collide_with_other_runs_or_pipelines():
    other = {"name": "r_mse", "config": "c.yaml"}
    with pytest.raises(ConfigError, match="run names must be unique; repeated: r_mse"):
        study([matrix_run("r_{loss}", {"method.loss.name": ["mse"]}), other])
    pipe = {"name": "p", "sol": ["r_lsim"]}
    assert study([matrix_run("r_{loss}", {"method.loss.name": ["lsim"]})], pipelines=[pipe])
    with pytest.raises(ConfigError, match=r"names runs not in the study: \['r_vgg'\]"):
        study(
            [matrix_run("r_{loss}", {"method.loss.name": ["lsim"]})],
            pipelines=[pipe | {"sol": ["r_vgg"]}],
        )


# ------------------------------------------------------------------------ study files


def test_fluid_studies_keep_the_run_names_of_one_file_per_loss():
    sol, recon = ["mse", "lsim", "vgg", "lpips"], ["mse", "mae", "lsim", "vgg", "lpips"]
    tasks = (("sol", sol), ("ae", recon), ("sr", recon), ("srsolver", ["mse", "lsim"]))
    expected = [
        f"{scene}_{task}_{loss}" for scene in ("karman", "plume") for task, losses in tasks
        for loss in losses
    ]  # fmt: skip

    def with_diffusion(names: list[str]) -> list[str]:
        names = list(names)
        for scene in ("karman", "plume"):  # the diffusion upsamplers after the loss-trained
            last = max(i for i, n in enumerate(names) if n.startswith(f"{scene}_"))
            names[last + 1 : last + 1] = [f"{scene}_ddpmsr", f"{scene}_coldsr"]
        return names

    full = load_config(STUDIES / "fluids.yaml", StudyConfig)
    assert [r.name for r in full.runs] == with_diffusion(expected)
    assert full.pipelines[0].sr == ["karman_srsolver_mse", "karman_srsolver_lsim", "karman_ddpmsr"]
    # the CPU study: three seeds of each configuration but MAE, every configuration of
    # seed 0 before any of seed 1
    cpu = load_config(STUDIES / "fluids_cpu.yaml", StudyConfig)
    configurations = with_diffusion([n for n in expected if not n.endswith("_mae")])
    assert [r.name for r in cpu.runs] == [f"{n}_s{s}" for s in range(3) for n in configurations]
    assert cpu.seeds_of() == {n: [f"{n}_s{s}" for s in range(3)] for n in configurations}
    assert [p.name for p in cpu.pipelines] == [f"{n}_s{s}" for n in ("karman", "plume")
                                               for s in range(3)]  # fmt: skip
    assert cpu.pipelines[4].sol == ["plume_sol_mse_s1", "plume_sol_lsim_s1"]
    demo = load_config(STUDIES / "demo.yaml", StudyConfig)
    assert [r.name for r in demo.runs] == ["ddpm", "blur", "sol_mse", "sol_lsim"]


def test_configs_fluids_holds_one_base_per_scene_task_and_size():
    files = sorted(p.name for p in FLUIDS.glob("*"))
    assert len(files) <= 32, files
    for scene in ("karman", "plume"):
        for task in ("sol", "ae", "sr", "ddpmsr", "coldsr"):
            for size in ("", "_cpu"):
                assert f"{scene}_{task}{size}.yaml" in files
    for base in BASES:  # the header says how to pick a loss
        assert "--set method.loss.name=lsim" in base.read_text()


def _dump(cfg) -> dict:
    return cfg.model_dump(mode="json", exclude={"name"})


@pytest.mark.parametrize("base", BASES, ids=lambda p: p.stem)
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_base_config_trains_every_loss(base, loss):
    """Picking a loss changes the loss section only, with the studies' options (and
    resizing) for LSiM."""
    plain = load_config_file(base)
    assert plain.method.loss.name == "mse" and plain.method.loss.options == {}
    cfg = load_config_file(base, [f"method.loss.name={loss}"])
    assert cfg.method.loss.options == ({"scaling": "joint"} if loss == "lsim" else {})
    assert cfg.method.loss.fit == ("resize" if loss == "lsim" else "pad")  # LSiM.fit
    expected = _dump(plain)
    expected["method"]["loss"] |= {"name": loss, "options": cfg.method.loss.options}
    expected["method"]["loss"]["fit"] = cfg.method.loss.fit
    assert _dump(cfg) == expected


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("git is not installed: the per-loss files cannot be read back")
    if out.returncode:
        pytest.skip(f"commit {PER_LOSS_COMMIT[:7]} (one file per loss) is not in this checkout")
    return out.stdout


# base configs changed on purpose since the per-loss files: the change, applied to the
# old file, must give the study's run
CHANGED_SINCE = {
    # the plume correction sees and corrects its smoke, with as many updates as Kármán's
    "../fluids/plume_sol_cpu.yaml": [
        "method.density=correct", "data.stride=1", "training.epochs=15",
    ],
}  # fmt: skip


def _study_runs():
    for study_file, suffix in FLUID_STUDIES.items():
        path = STUDIES / study_file
        for run in load_config(path, StudyConfig).runs:
            # one run per configuration: the old files had seed 0
            if Path(run.config).parent.name == "fluids" and run.seed in (None, 0):
                yield pytest.param(path, run, suffix, id=f"{path.stem}/{run.name}")


@pytest.mark.parametrize(("path", "run", "suffix"), list(_study_runs()))
def test_study_runs_equal_the_per_loss_files_they_replace(path, run, suffix, tmp_path):
    """Base config + the run's overrides validate to the old file's config (but its name)."""
    scene = "karman_" if suffix == "_demo" else ""
    old_name = f"{scene}{run.configuration or run.name}{suffix}.yaml"
    old = tmp_path / old_name
    old.write_text(_git("show", f"{PER_LOSS_COMMIT}:configs/fluids/{old_name}"))
    new = load_config_file((path.parent / run.config).resolve(), run.set)
    # how a study evaluates its runs, and how many epochs it can afford, are its own choices
    # (the CPU study scores the solver output from fewer starts and shrinks epochs to fit
    # three seeds): they are applied to the old file too
    evaluation = [o for o in run.set if o.startswith(("evaluation.", "training.epochs="))]
    before = load_config_file(old, [*CHANGED_SINCE.get(run.config, []), *evaluation])
    assert new.name == (run.configuration or run.name) and before.name == old.stem
    assert _dump(new) == _dump(before)


def test_every_removed_per_loss_file_is_a_study_run():
    old = set(_git("ls-tree", "--name-only", PER_LOSS_COMMIT, "configs/fluids/").split())
    removed = {Path(p).name for p in old if not (ROOT / p).exists()}
    covered = {
        f"{'karman_' if suffix == '_demo' else ''}{run.configuration or run.name}{suffix}.yaml"
        for _, run, suffix in (p.values for p in _study_runs())
    }
    # the CPU study left MAE out to afford three seeds; its base configs still train it
    dropped = {f"{scene}_{task}_mae_cpu.yaml" for scene in ("karman", "plume")
               for task in ("ae", "sr")}  # fmt: skip
    assert len(removed) == 58 and removed - dropped <= covered, sorted(removed - covered)


# ------------------------------------------------------------------------ seeds


def _seeded(text: str) -> StudyConfig:
    return StudyConfig.model_validate(yaml.safe_load(text))


def test_seeds_expand_each_configuration_once_per_seed_seed_outermost():
    study = _seeded(
        """
seeds: [3, 7]
runs:
  - {name: "a_{loss}", config: x.yaml, matrix: {method.loss.name: [mse, lsim]}}
  - {name: once, config: y.yaml, seeds: []}
  - {name: own, config: y.yaml, seeds: [9]}
pipelines:
  - {name: p, sol: [a_mse, once], sr: [a_lsim, own]}
"""
    )
    names = [r.name for r in study.runs]
    assert names == ["once", "a_mse_s3", "a_lsim_s3", "a_mse_s7", "a_lsim_s7", "own_s9"]
    run = study.runs[3]
    assert (run.configuration, run.seed) == ("a_mse", 7)
    assert run.set[-1] == "seed=7" and "method.loss.name=mse" in run.set
    assert study.seeds_of()["a_lsim"] == ["a_lsim_s3", "a_lsim_s7"]
    assert study.seeds_of()["once"] == ["once"]
    # a pipeline per seed pairs that seed's runs; an unseeded run joins every seed
    pipes = {p.name: (p.sol, p.sr) for p in study.pipelines}
    assert pipes == {
        "p_s3": (["a_mse_s3", "once"], ["a_lsim_s3"]),
        "p_s7": (["a_mse_s7", "once"], ["a_lsim_s7"]),
        "p_s9": (["once"], ["own_s9"]),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seeds: [1, 1]\nruns: [{name: a, config: x.yaml}]", "more than once"),
        ("runs: [{name: a, config: x.yaml, seeds: [-1]}]", ">= 0"),
        ("runs: [{name: a, config: x.yaml, seed: 2}]", "set by the study"),
        ("seeds: [0]\nruns: [{name: a, config: x.yaml}]\npipelines: [{name: p, sol: [b]}]",
         "names runs not in the study"),
    ],
)  # fmt: skip
def test_bad_seeds_are_refused_with_the_fix(text, message):
    with pytest.raises(ValueError, match=message):
        _seeded(text)


def test_a_study_without_seeds_keeps_its_names():
    study = _seeded("runs: [{name: a, config: x.yaml}, {name: b, config: x.yaml}]")
    assert [(r.name, r.seed, r.configuration) for r in study.runs] == [
        ("a", None, None), ("b", None, None)
    ]  # fmt: skip
    assert study.seeds_of() == {"a": ["a"], "b": ["b"]}
