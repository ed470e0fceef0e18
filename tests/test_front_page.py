"""The study's front page: key figures as thumbnails, tables that scroll in their own box,
and a check in a real headless browser (Chromium) that the page fits a 1280 px window."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from test_report import make_run

from coldflow.config import StudyConfig, load_config
from coldflow.report.html import markdown_to_html, page, thumbnails_markdown
from coldflow.runs import RunDir
from coldflow.study import write_study_page
from coldflow.tasks.diffusion.config import DiffusionRunConfig
from coldflow.tasks.pipeline.evaluation import pipeline_table
from coldflow.tasks.pipeline.figures import write_figures

WINDOW = 1280
GRIDS = ("images", "images_conditional")  # the final grids of the constructed runs
# metric names without a space: their columns cannot wrap, so the table is wider than
# the page's 62rem column
WIDE_METRICS = [f"relative_error_of_the_field_component_number_{i}" for i in range(6)]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


class _Page(HTMLParser):
    """The ``<img>`` sources and ``<a>`` targets of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.imgs.append(dict(attrs))
        elif tag == "a":
            self.links.append(dict(attrs)["href"])


def _parse(path: Path) -> _Page:
    parser = _Page()
    parser.feed(path.read_text())
    return parser


def _fake_pipeline(folder: Path) -> Path:
    """``pipeline.md`` and its figures as the pipeline evaluation writes them, from a
    constructed result with long metric names (a deliberately wide table)."""
    steps = 4
    pipelines = {}
    for k, (solver, up) in enumerate([("source", "bicubic"), ("sol_mse", "superres_mse")]):
        per_step = {m: [0.1 * (k + 1) * (s + 1) for s in range(steps)] for m in WIDE_METRICS}
        pipelines[f"{solver} -> {up}"] = {
            "solver": solver,
            "upsampling": up,
            "per_step": per_step,
            "mean": {m: sum(v) / steps for m, v in per_step.items()},
            "seconds_per_frame": 0.01 * (k + 1),
            "speedup": 10.0 / (k + 1),
        }
    result = {
        "data": "test.h5", "start": 4, "steps": steps, "simulations": [2],
        "metrics": WIDE_METRICS, "channels": ["v_y", "v_x"],
        "high_res_seconds_per_frame": 0.1, "pipelines": pipelines,
    }  # fmt: skip
    (folder / "pipeline.md").parent.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.md").write_text(pipeline_table(result))
    write_figures(result, folder / "figures")
    return folder / "pipeline.md"


@pytest.fixture(scope="module")
def study_page(tmp_path_factory) -> Path:
    """A study page of two (constructed) DDPM runs and a pipeline with a wide table."""
    out = tmp_path_factory.mktemp("study") / "front"
    runs = []
    for i, name in enumerate(("noise_a", "noise_b")):
        run = make_run(out / name, name=name, fid=i == 0, samples=False)
        gen = torch.Generator().manual_seed(i)
        grids = {k: torch.rand(16, 1, 28, 28, generator=gen) - 0.5 for k in GRIDS}
        RunDir(run).save_samples(grids)  # final grids only: a fast fixture
        runs.append(run)
    configs = {r.name: load_config(r / "config.yaml", DiffusionRunConfig) for r in runs}
    study = StudyConfig(
        name="front",
        description="Two constructed DDPM runs and a pipeline.",
        runs=[{"name": r.name, "config": "unused.yaml"} for r in runs],
    )
    table = _fake_pipeline(out / "pipelines" / "wide")
    return write_study_page(study, out, {"ddpm": runs}, [], configs, pipelines=[("wide", table)])


# ------------------------------------------------------------------------ no browser


def test_the_front_page_shows_each_groups_key_figures_linking_to_their_pages(study_page):
    out = study_page.parent
    parsed = _parse(study_page)
    srcs = [img["src"] for img in parsed.imgs]
    # the DDPM group's grids (the black-start grid of cold runs does not exist: left off)
    # and the pipeline's two figures, every one an existing file, relative to the page
    assert srcs == [
        "ddpm/figures/samples.png",
        "ddpm/figures/samples_conditional.png",
        "pipelines/wide/figures/pipeline_error_vs_step.png",
        "pipelines/wide/figures/pipeline_error_vs_cost.png",
    ]
    assert all((out / s).is_file() for s in srcs)
    # each thumbnail links to its group's comparison page (the pipeline's: the figure)
    assert "ddpm/index.html" in parsed.links
    assert parsed.links.count("ddpm/index.html") == 3  # the text link and two thumbnails
    assert "pipelines/wide/figures/pipeline_error_vs_step.png" in parsed.links
    text = study_page.read_text()
    assert text.count('<figure class="thumb">') == 4
    assert "samples_black_start" not in text
    # results.md says the same in markdown: linked images
    md = (out / "results.md").read_text()
    assert "[![Final samples of every run](ddpm/figures/samples.png)](ddpm/index.html)" in md


def test_every_table_sits_in_a_box_that_scrolls_sideways(study_page):
    for path in (study_page, study_page.parent / "ddpm" / "index.html"):
        text = path.read_text()
        tables = text.count("<table")
        assert tables >= 1
        assert text.count('<div class="wide"><table') == tables
        assert text.count("</table></div>") == tables
    assert ".wide { max-width: 100%; overflow-x: auto;" in study_page.read_text()


def test_thumbnails_skip_missing_files_and_encode_their_paths(tmp_path):
    (tmp_path / "a run" / "figures").mkdir(parents=True)
    shown = tmp_path / "a run" / "figures" / "x.png"
    shown.write_bytes(b"png")
    line = thumbnails_markdown(
        [
            (shown, "a [bracketed] caption", tmp_path / "a run" / "report.html"),
            (tmp_path / "missing.png", "never shown", tmp_path / "index.html"),
        ],
        tmp_path,
    )
    assert line == "[![a bracketed caption](a%20run/figures/x.png)](a%20run/report.html)"
    html = "\n".join(markdown_to_html(line))
    assert '<a href="a%20run/report.html"><img src="a%20run/figures/x.png"' in html
    assert "<figcaption>a bracketed caption</figcaption>" in html
    assert thumbnails_markdown([(tmp_path / "missing.png", "c", tmp_path)], tmp_path) == ""
    # a figure line that is not linked stays a full-size figure
    assert '<figure class="thumb">' not in "\n".join(markdown_to_html("![c](x.png)"))


def test_page_wraps_tables_written_as_html_too() -> None:
    text = page("t", ["<p>x</p>", "<table>", "<tr><td>1</td></tr>", "</table>", "<table></table>"])
    assert text.count('<div class="wide"><table>') == 2
    assert text.count("</table></div>") == 2


# --------------------------------------------------------------------------- browser

_MEASURE = """
<script>
window.addEventListener("load", () => {
  const wide = [...document.querySelectorAll("div.wide")]
    .filter((d) => d.textContent.includes("MARKER"));
  const thumbs = [...document.querySelectorAll("figure.thumb img")];
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({
    window: window.innerWidth,
    page: document.documentElement.scrollWidth,
    wide: wide.map((d) => [d.scrollWidth, d.clientWidth]),
    thumbs: thumbs.map((i) => [i.getAttribute("src"), i.naturalWidth, i.clientWidth]),
  });
  document.body.appendChild(out);
});
</script>
"""


def _measure(chromium: str, page_path: Path) -> dict:
    """Load a copy of ``page_path`` (beside it, so relative paths resolve) with a script
    that writes its measurements into the DOM, and read them from Chromium's dump."""
    probe = page_path.with_name("measured.html")
    script = _MEASURE.replace("MARKER", WIDE_METRICS[0])
    probe.write_text(page_path.read_text().replace("</body>", script + "</body>"))
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                f"--window-size={WINDOW},900", "--virtual-time-budget=5000", "--dump-dom",
                probe.resolve().as_uri(),
            ],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    probe.unlink()
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found, f"chromium measured nothing (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_the_page_fits_a_1280px_window_in_a_real_browser(study_page, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no chromium binary found (apt-get install chromium)")
    # moved elsewhere, the page still finds its figures (every path is relative)
    moved = tmp_path / "moved"
    shutil.copytree(study_page.parent, moved)
    m = _measure(chromium, moved / study_page.name)
    assert m["window"] == WINDOW
    assert m["page"] <= WINDOW, m  # the page itself is not wider than the window
    assert len(m["wide"]) == 1, m
    scroll, client = m["wide"][0]
    assert scroll > client, m  # the wide table scrolls inside its own box
    assert len(m["thumbs"]) == 4
    for src, natural, shown in m["thumbs"]:
        assert natural > 0, f"{src} did not load"
        assert 0 < shown <= natural, (src, shown)  # shown small, never blown up


STORED = Path(__file__).resolve().parent / "data" / "stored_runs"


@pytest.mark.slow
def test_every_tasks_key_figures_are_on_the_front_page(tmp_path, monkeypatch):
    """The stored runs of every task, reported and put on one study page: each group
    shows the figures its task names, each linking to the page it came from."""
    from coldflow.experiment import report_run
    from coldflow.tasks import TASKS, kind_of, task_for

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "study"
    configs, groups = {}, {}
    for kind in ("ddpm", "cold", "sol", "autoencoder", "superres"):
        run = out / f"{kind}_run"  # not the group's name: a group's page has its own folder
        shutil.copytree(STORED / kind, run, ignore=shutil.ignore_patterns("checkpoints"))
        cfg = configs[run.name] = load_config(run / "config.yaml", TASKS[kind_of(run)].config_model)
        report_run(run)
        groups.setdefault(task_for(cfg).group(cfg), []).append(run)
    study = StudyConfig(name="all", runs=[{"name": n, "config": "unused.yaml"} for n in configs])
    index = write_study_page(study, out, groups, [], configs)
    md = (out / "results.md").read_text()
    expected = {  # figure -> the page its thumbnail opens
        "ddpm/figures/samples.png": "ddpm/index.html",
        "cold/figures/samples.png": "cold/index.html",
        "cold/figures/samples_black_start.png": "cold/index.html",
        "cold/figures/samples_conditional.png": "cold/index.html",
        "sol_karman_tiny/figures/sol_snapshots.png": "sol_karman_tiny/index.html",
        "sol_karman_tiny/figures/sol_error_vs_step.png": "sol_karman_tiny/index.html",
        "autoencoder_run/figures/autoencoder_frame0.png": "autoencoder_run/report.html",
        "superres_run/figures/superres_frame0.png": "superres_run/report.html",
    }
    shown = dict(re.findall(r"\[!\[[^\]]*\]\(([^)]+)\)\]\(([^)]+)\)", md))
    assert shown == expected
    assert all((out / f).is_file() and (out / p).is_file() for f, p in shown.items())
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no chromium binary found (apt-get install chromium)")
    thumbs = _measure(chromium, index)["thumbs"]
    assert [src for src, _, _ in thumbs] == list(expected)
    assert all(natural > 0 for _, natural, _ in thumbs), thumbs
