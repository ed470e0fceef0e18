"""The library: coldflow's public names, what a loaded run of each task offers, and the
README's Python example, run as written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import coldflow
from coldflow.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "tests" / "data" / "stored_runs"


@pytest.fixture
def stored(tmp_path, monkeypatch) -> Path:
    shutil.copytree(STORED, tmp_path / "stored_runs")
    monkeypatch.chdir(tmp_path)  # the fluid runs name their data set relative to here
    return tmp_path / "stored_runs"


def test_importing_coldflow_is_cheap_and_names_its_api():
    code = "import coldflow, sys; print('torch' in sys.modules, sorted(coldflow.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded_torch, names = out.stdout.split(" ", 1)
    assert loaded_torch == "False"
    for name in ("load_run", "field_loss", "train", "evaluate", "open_dataset"):
        assert name in names and callable(getattr(coldflow, name))


def test_a_loaded_diffusion_run_samples(stored):
    run = coldflow.load_run(stored / "ddpm", device="cpu")
    result = run.sample(3, sampler="ddim", steps=4, seed=1)
    assert result.images.shape == (3, 1, 28, 28) and torch.isfinite(result.images).all()
    again = run.sample(3, sampler="ddim", steps=4, seed=1)
    assert torch.equal(result.images, again.images)  # seeded
    with pytest.raises(UserError, match="has no rollout"):
        run.rollout()


def test_a_loaded_sol_run_rolls_out_and_the_source_rollout_is_the_stored_one(stored):
    run = coldflow.load_run(stored / "sol", device="cpu")
    with coldflow.open_dataset(stored / "karman_tiny.h5") as data:
        sim = data.simulations("test")[0]
        start = data.source_start
        source = torch.from_numpy(data.read(sim, "source", "velocity", slice(None)))
        params = torch.tensor([[sim.params[n] for n in run.model.scene.param_names]])
    steps = min(3, source.shape[0] - 1 - start)
    plain = run.rollout(source[start][None], params, steps, correct=False)
    assert torch.allclose(plain.velocity[:, 0], source[start : start + steps + 1], atol=1e-4)
    corrected = run.rollout(source[start][None], params, steps)
    assert corrected.velocity.shape == plain.velocity.shape
    with pytest.raises(UserError, match="draws no samples"):
        run.sample(2)


@pytest.mark.parametrize("kind", ["superres", "autoencoder"])
def test_a_loaded_run_evaluates_like_the_command(stored, kind):
    before = (stored / kind / "evaluation.json").read_text()
    run = coldflow.load_run(stored / kind, device="cpu")
    # every cell scored, as when the runs were stored (obstacle cells are left out now)
    result = run.evaluate(data="stored_runs/karman_tiny.h5", mask_obstacle=False)
    stored_result = json.loads(before)
    # rows added since: the PCA and DCT codecs beside the autoencoder
    assert result["mean"].keys() - {"PCA", "DCT"} == stored_result["mean"].keys()
    for row, values in stored_result["mean"].items():
        assert result["mean"][row] == pytest.approx(values, rel=1e-6), row
    assert (stored / kind / "evaluation.json").read_text() == before  # returned, not written


def test_field_loss_is_a_differentiable_distance_of_vector_fields():
    mse = coldflow.field_loss("mse")
    a = torch.rand(3, 2, 16, 8, requires_grad=True)
    b = torch.rand(3, 2, 16, 8)
    d = mse(a, b)
    assert d.shape == (3,)
    # per component, summed: the mean squared error of each of the two components, added
    expected = ((a - b) ** 2).mean(dim=(2, 3)).sum(dim=1)
    assert torch.allclose(d, expected)
    d.sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert torch.equal(mse(b, b), torch.zeros(3))


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md shows no Python example"
    return blocks[0]


def test_the_readme_python_example_runs_as_written(tmp_path):
    example = _readme_example()
    body = [ln for ln in example.splitlines() if ln.strip() and not ln.startswith("import")]
    assert len(body) <= 5  # the first screen: five lines after the import
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    done = subprocess.run(
        [sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "tensor([" in done.stdout  # the four LSiM distances
    assert (tmp_path / "runs" / "api" / "config.yaml").is_file()
