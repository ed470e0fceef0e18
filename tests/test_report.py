"""Figures and HTML reports built from fake run directories."""

from __future__ import annotations

import html
import struct
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from coldflow.config import dump_yaml
from coldflow.degradations import build_degradation
from coldflow.experiment import report, report_run
from coldflow.report import save_figure
from coldflow.report.curves import metric_figure
from coldflow.report.figures import (
    image_grid_figure,
    tile_images,
    trajectory_figure,
)
from coldflow.report.style import DPI
from coldflow.runs import RunDir
from coldflow.tasks.diffusion.config import DiffusionRunConfig
from coldflow.tasks.diffusion.schedule_figures import (
    _degraded_strip,
    plot_schedules,
    strip_timesteps,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N_T = 20
LOW, HIGH = -0.5, 0.5  # the default data range


def make_run(
    path: Path,
    name: str = "tiny ddpm",
    n_T: int = N_T,
    fid: bool = True,
    samples: bool = True,
    final: torch.Tensor | None = None,
    **config: object,
) -> Path:
    """A run directory as training would leave it: config, metrics, samples."""
    run = RunDir(path)
    cfg = DiffusionRunConfig(name=name, degradation={"n_T": n_T}, training={"epochs": 4}, **config)
    run.save_config(dump_yaml(cfg))
    for epoch in range(4):
        for step in range(2):
            run.log(epoch, 2 * epoch + step, "train", "loss", 1.0 / (1 + epoch) ** 2)
        if epoch % 2 == 1:
            if fid:
                run.log(epoch, 2 * epoch, "eval", "fid", 50.0 - epoch)
            run.log(epoch, 2 * epoch, "eval", "ssim", 0.1 * epoch)
    if samples:
        gen = torch.Generator().manual_seed(0)
        for epoch in (1, 2, 3):
            run.save_samples({"images": torch.rand(8, 1, 28, 28, generator=gen) - 0.5}, epoch)
        images = torch.rand(16, 1, 28, 28, generator=gen) - 0.5 if final is None else final
        run.save_samples(
            {
                "images": images,
                "images_conditional": torch.rand(16, 1, 28, 28, generator=gen) - 0.5,
                "trajectory": torch.rand(3, 16, 1, 28, 28, generator=gen) - 0.5,
                "timesteps": torch.tensor([N_T, N_T // 2, 1]),
                "trajectory_conditional": torch.rand(2, 16, 1, 28, 28, generator=gen) - 0.5,
                "timesteps_conditional": torch.tensor([N_T, 1]),
            }
        )
    return path


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def read_png(path: Path) -> np.ndarray:
    """The image as [H, W, C] floats; its shape must agree with the PNG header."""
    width, height = png_size(path)
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (height, width)
    return image


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def img_srcs(page: Path) -> list[str]:
    parser = _Images()
    parser.feed(page.read_text())
    return parser.srcs


def brightness(image: np.ndarray) -> np.ndarray:
    return image[..., :3].mean(axis=-1)


# -------------------------------------------------------------------- run report


def test_run_report_writes_every_figure_and_references_it(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", name="noise <b>& co</b>")
    page = report_run(run)

    assert page == run / "report.html"
    expected = {
        "schedule.png",
        "samples_grid.png",
        "samples_grid_conditional.png",
        "trajectory.png",
        "trajectory_conditional.png",
        "samples_by_epoch.png",
        "loss.png",
        "fid.png",
        "eval_ssim.png",
    }
    written = {p.name for p in (run / "figures").iterdir()}
    assert written == expected  # and no temporary files left behind
    for name in expected:
        width, height = png_size(run / "figures" / name)
        assert width >= 200 and height >= 150, name
        read_png(run / "figures" / name)

    assert sorted(img_srcs(page)) == sorted(f"figures/{n}" for n in expected)
    text = page.read_text()
    assert "noise &lt;b&gt;&amp; co&lt;/b&gt;" in text  # the title, escaped
    assert "<b>" not in text
    assert f"<pre>{html.escape((run / 'config.yaml').read_text())}</pre>" in text
    assert "FID (epoch 3)" in text and ">47<" in text  # last FID value
    assert "train loss (epoch 3, mean)" in text and "0.0625" in text
    assert "4 of 4" in text  # epochs logged of configured


def test_missing_inputs_are_skipped(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", fid=False, samples=False)
    page = report_run(run)
    written = {p.name for p in (run / "figures").iterdir()}
    assert written == {"schedule.png", "loss.png", "eval_ssim.png"}
    assert "fid.png" not in page.read_text()

    bare = tmp_path / "bare"  # a config and nothing else yet
    RunDir(bare).save_config(dump_yaml(DiffusionRunConfig(name="bare")))
    page = report_run(bare)
    assert {p.name for p in (bare / "figures").iterdir()} == {"schedule.png"}
    assert "No metrics logged yet" in page.read_text()

    with pytest.raises(FileNotFoundError, match="no such run directory"):
        report_run(tmp_path / "absent")


def test_samples_by_epoch_uses_configured_epochs(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", evaluation={"sample_epochs": [1, 3]})
    text = report_run(run).read_text()
    assert "at epochs 1, 3:" in text


def test_sample_grid_pixels_follow_the_samples(tmp_path: Path) -> None:
    white = make_run(tmp_path / "white", final=torch.full((16, 1, 28, 28), HIGH))
    black = make_run(tmp_path / "black", final=torch.full((16, 1, 28, 28), LOW))
    report_run(white)
    report_run(black)
    bright = brightness(read_png(white / "figures" / "samples_grid.png"))
    dark = brightness(read_png(black / "figures" / "samples_grid.png"))
    assert bright.shape == dark.shape
    assert bright.mean() > 0.9
    assert dark.mean() < 0.5
    # the images occupy most of the figure: most pixels of the dark grid are black
    assert (dark < 0.05).mean() > 0.6


def test_image_grid_tiles_show_their_own_sample() -> None:
    # checkerboard of white (high) and black (low) samples, in the data range [-0.5, 0.5]
    images = torch.full((16, 1, 28, 28), LOW)
    white = [i for i in range(16) if (i // 4 + i % 4) % 2 == 0]
    images[white] = HIGH
    images[5, 0, :14] = 0.0  # mid grey upper half of one tile
    fig = image_grid_figure(images, (LOW, HIGH), ncol=4, title="checks")
    fig.canvas.draw()
    ax = fig.axes[0]
    width, height = (fig.get_size_inches() * DPI).round().astype(int)
    centres = {}
    for i in range(16):
        r, c = divmod(i, 4)
        for part, y in (("lower", 20.0), ("upper", 6.0)):
            x_px, y_px = ax.transData.transform((c * 29 + 13.5, r * 29 + y))
            centres[i, part] = (int(round(height - y_px)), int(round(x_px)))
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = save_figure(fig, Path(d) / "grid.png")
        assert png_size(path) == (width, height)
        image = brightness(read_png(path))
    for i in range(16):
        expected = 1.0 if i in white else 0.0
        assert image[centres[i, "lower"]] == pytest.approx(expected, abs=0.02), i
    assert image[centres[5, "upper"]] == pytest.approx(0.5, abs=0.02)
    assert image[centres[5, "lower"]] == pytest.approx(1.0, abs=0.02)


# ------------------------------------------------------------------ pure figures


def test_tile_images_places_tiles_row_by_row() -> None:
    images = np.arange(5, dtype=np.float32).reshape(5, 1, 1, 1) * np.ones((5, 1, 2, 3))
    mosaic = tile_images(images / 10, ncol=2, pad=1, pad_value=1.0)
    assert mosaic.shape == (3 * 3 - 1, 2 * 4 - 1)
    assert mosaic[0, 0] == 0.0 and mosaic[0, 4] == pytest.approx(0.1)  # tiles 0, 1
    assert mosaic[3, 0] == pytest.approx(0.2) and mosaic[7, 2] == pytest.approx(0.4)
    assert mosaic[2, 0] == 1.0 and mosaic[0, 3] == 1.0  # separators
    assert (mosaic[6:, 4:] == 1.0).all()  # the empty slot after tile 4
    rgb = tile_images(np.zeros((2, 3, 4, 4)), ncol=2)
    assert rgb.shape == (4, 9, 3)
    with pytest.raises(ValueError, match="1 or 3"):
        tile_images(np.zeros((2, 2, 4, 4)), ncol=2)


def test_trajectory_columns_are_labelled_by_timestep() -> None:
    traj = torch.zeros(3, 6, 1, 28, 28)
    fig = trajectory_figure(traj, torch.tensor([20, 10, 1]), (LOW, HIGH), n_rows=4)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["t=20", "t=10", "t=1"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["#0", "#1", "#2", "#3"]
    with pytest.raises(ValueError, match="2 timesteps for 3"):
        trajectory_figure(traj, [20, 1])


def test_metric_figure_uses_log_scale_only_over_a_decade() -> None:
    wide = metric_figure({"a": ([0, 1, 2], [1.0, 0.1, 0.01])}, "loss")
    narrow = metric_figure({"a": ([0, 1, 2], [1.0, 0.5, 0.2]), "b": ([0, 1], [0.9, 0.3])}, "loss")
    assert wide.axes[0].get_yscale() == "log"
    assert narrow.axes[0].get_yscale() == "linear"
    assert [t.get_text() for t in narrow.axes[0].get_legend().get_texts()] == ["a", "b"]


def test_strip_timesteps_and_degraded_strip() -> None:
    assert strip_timesteps(1000) == [0, 100, 200, 400, 600, 800, 1000]
    assert strip_timesteps(3) == [0, 1, 2, 3]  # rounded, deduplicated, within 1..n_T
    degradation = build_degradation(DiffusionRunConfig().degradation)
    x0 = torch.linspace(LOW, HIGH, 28 * 28).reshape(1, 28, 28)
    strip, ts = _degraded_strip(degradation, x0, seed=3)
    again, _ = _degraded_strip(degradation, x0, seed=3)
    assert ts == strip_timesteps(1000) and strip.shape == (7, 1, 28, 28)
    assert torch.equal(strip, again)  # reproducible
    assert torch.equal(strip[0], x0)  # t = 0 is the clean image
    error = ((strip - x0) ** 2).mean(dim=(1, 2, 3))
    assert (error[1:] > error[:-1]).all()  # more noise at every later timestep


def test_plot_schedules_draws_one_or_two_panels(tmp_path: Path) -> None:
    same = plot_schedules(
        {"a": DiffusionRunConfig(), "b": DiffusionRunConfig(degradation={"beta2": 0.03})},
        tmp_path / "same.png",
    )
    mixed = plot_schedules(
        [("a", DiffusionRunConfig()), ("short", DiffusionRunConfig(degradation={"n_T": 100}))],
        tmp_path / "mixed.png",
    )
    (w_same, _), (w_mixed, _) = png_size(same), png_size(mixed)
    assert w_mixed > w_same  # differing n_T: normalised and absolute panels side by side
    read_png(same)
    read_png(mixed)


# -------------------------------------------------------------------- comparison


def test_comparison_of_two_runs(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", name="same")
    b = make_run(tmp_path / "b", name="same", n_T=50, fid=False)
    page = report([a, b], tmp_path / "cmp")[-1]

    assert page == tmp_path / "cmp" / "index.html"
    figures = tmp_path / "cmp" / "figures"
    together = {"schedules.png", "samples.png", "samples_conditional.png", "loss.png"}
    together |= {"fid.png", "eval_ssim.png"}
    assert {p.name for p in figures.iterdir() if p.is_file()} == together
    # and each run's own final grids, samples by epoch and trajectories, under its name
    per_run = {"samples_by_epoch.png", "samples_grid.png", "samples_grid_conditional.png"}
    per_run |= {"trajectory.png", "trajectory_conditional.png"}
    for run in ("a", "b"):
        assert {p.name for p in (figures / run).iterdir()} == per_run
    drawn = [*together, *(f"{r}/{n}" for r in ("a", "b") for n in per_run)]
    for name in drawn:
        read_png(figures / name)
    assert sorted(img_srcs(page)) == sorted(f"figures/{n}" for n in drawn)
    text = page.read_text()
    # runs are labelled by their directories (unique), not their config names (same)
    assert ">a</a>" in text and ">b</a>" in text
    assert 'href="../a/report.html"' in text and 'href="../b/report.html"' in text
    assert "since n_T differ (20, 50)" in text


@pytest.mark.parametrize(
    "reason",
    [  # what a failed download and an offline machine say, as evaluation.json keeps it
        "could not download alexnet (alexnet-owt-7be5be79.pth): "
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth: <urlopen error> "
        "Put the official file at /home/u/.cache/coldflow/weights/x.pth or in $COLDFLOW_WEIGHTS/x",
        "alexnet (alexnet-owt-7be5be79.pth) is not available offline. Download it from "
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth and put it at "
        "/home/u/.cache/coldflow/weights/x.pth (also searched: /data/weights/x.pth)",
    ],
)
def test_results_table_names_a_skipped_metric_without_addresses_or_paths(reason) -> None:
    from coldflow.tasks.recon.figures import results_table

    ev = {
        "mean": {"bicubic": {"mse": 0.5}, "super-resolution": {"mse": 0.25}},
        "seconds_per_frame": {"super-resolution": 0.01},
        "frames": 8, "split": "test", "simulations": [3], "data": "d.h5", "loss": "mse",
        "skipped_metrics": {"lpips": reason},
    }  # fmt: skip
    table = results_table([ev], ["run"])
    note = [line for line in table.splitlines() if line.startswith("Not scored")]
    assert len(note) == 1 and "alexnet-owt-7be5be79.pth" in note[0], table
    assert "http" not in note[0] and "/home/" not in note[0] and not note[0].endswith(":)."), note


# ------------------------------------------------------------- losses of several kinds


def _fluid_run(path: Path, loss: str, scale: float) -> Path:
    """A run directory with a field task's config section and a falling training loss."""
    run = RunDir(path)
    run.save_config(f"name: {path.name}\nmethod:\n  kind: sol\n  m: 2\n  loss:\n    name: {loss}\n")
    for epoch in range(3):
        run.log(epoch, epoch, "train", "loss", scale / (1 + epoch))
    return path


def test_loss_kind_reads_the_loss_of_each_kind_of_config() -> None:
    from coldflow.report.runs import loss_kind

    cold = DiffusionRunConfig(method={"kind": "cold", "loss": "l1"}, degradation={"kind": "blur"})
    cold = dump_yaml(cold)
    assert loss_kind(cold) == ("cold", "l1")
    assert loss_kind(dump_yaml(DiffusionRunConfig())) == ("ddpm", "")  # one fixed loss
    assert loss_kind("method:\n  kind: superres\n  loss: {name: lsim, options: {}}\n") == (
        "superres",
        "lsim",
    )
    assert loss_kind("") == ("", "") and loss_kind("just text") == ("", "")


def test_losses_of_different_kinds_never_share_an_axis() -> None:
    from coldflow.report.runs import loss_panels

    # one kind: one axis
    assert loss_panels({"a": ("sol", "mse"), "b": ("sol", "mse")}) is None
    assert loss_panels({"a": ("sol", "mse")}) is None
    # MSE and LSiM runs: one panel each, in order of first appearance, runs kept together
    assert loss_panels({"a": ("sol", "mse"), "b": ("sol", "lsim"), "c": ("sol", "mse")}) == {
        "mse": ["a", "c"],
        "lsim": ["b"],
    }
    # the same loss name of two methods is two kinds; a method's fixed loss is its name
    assert loss_panels({"x": ("ddpm", ""), "y": ("cold", "mse"), "z": ("sol", "mse")}) == {
        "ddpm": ["x"],
        "cold mse": ["y"],
        "sol mse": ["z"],
    }
    assert loss_panels({"a": ("sol", "mse"), "b": ("", "")}) == {
        "mse": ["a"],
        "loss of unknown kind (no config.yaml)": ["b"],
    }


def test_metric_figure_draws_one_panel_per_group_keeping_each_runs_colour() -> None:
    series = {"a": ([0, 1], [1.0, 0.5]), "b": ([0, 1], [0.02, 0.01]), "c": ([0, 1], [0.9, 0.4])}
    fig = metric_figure(series, "training loss", panels={"mse": ["a", "c"], "lsim": ["b"]})
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["mse", "lsim"]
    drawn = [{line.get_label(): line.get_color() for line in ax.get_lines()} for ax in axes]
    assert [sorted(d) for d in drawn] == [["a", "c"], ["b"]]
    one = metric_figure(series, "training loss")
    colours = {line.get_label(): line.get_color() for line in one.axes[0].get_lines()}
    assert drawn[0] | drawn[1] == colours  # a run has the same colour with or without panels
    with pytest.raises(ValueError, match="curves in no panel: b"):
        metric_figure(series, "training loss", panels={"mse": ["a", "c"]})


def test_comparison_of_mse_and_lsim_runs_draws_their_losses_apart(tmp_path: Path) -> None:
    from coldflow.report import write_comparison

    mixed = [_fluid_run(tmp_path / "m", "mse", 0.01), _fluid_run(tmp_path / "l", "lsim", 0.5)]
    page = write_comparison(mixed, tmp_path / "mixed")
    assert "One panel per kind of loss (mse, lsim)" in page.read_text()
    read_png(tmp_path / "mixed" / "figures" / "loss.png")
    same = [_fluid_run(tmp_path / "m2", "mse", 0.02), mixed[0]]
    page = write_comparison(same, tmp_path / "same")
    assert "One panel per kind of loss" not in page.read_text()
    assert "Training loss (mean over each epoch" in page.read_text()
