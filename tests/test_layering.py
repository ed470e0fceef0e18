"""The package's floors (README, Development): a module imports its own floor or below.

Every ``coldflow`` import is read from the source with :mod:`ast`, including imports
inside functions (the lazy ones that keep start-up fast), so a lazy import cannot hide an
upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "coldflow"

# top to bottom; a unit is a top-level module or sub-package of coldflow
FLOORS = [
    ["cli"],
    ["study"],
    ["experiment"],
    ["tasks"],
    ["metrics", "report", "simulate"],
    ["losses", "data", "training", "methods"],
    ["physics", "config", "hub", "runs"],
    ["nets", "degradations", "io", "errors"],
]
# the top level holds only these modules; everything else lives in a sub-package
TOP_LEVEL = {"cli", "study", "experiment", "hub", "runs", "io", "errors"}
LEVEL = {unit: i for i, floor in enumerate(FLOORS) for unit in floor}


def _unit(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imported_units(source: str, package: tuple[str, ...]) -> set[str]:
    """Top-level coldflow units that a module of ``coldflow.<package>`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:  # relative
            base = list(package[: len(package) - node.level + 1])
            if node.module:
                names = ["coldflow." + ".".join([*base, node.module])]
            else:
                names = ["coldflow." + ".".join([*base, a.name]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "coldflow":
            names = ["coldflow." + a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "coldflow" and len(parts) > 1:
                found.add(parts[1])
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if _unit(p) != "__init__")


def _imports(path: Path) -> set[str]:
    return _imported_units(path.read_text(), path.relative_to(PACKAGE).parent.parts)


def test_every_unit_has_a_floor():
    units = {_unit(p) for p in _modules()} | {u for p in _modules() for u in _imports(p)}
    missing = sorted(units - LEVEL.keys())
    assert not missing, f"add these to FLOORS (and to ARCHITECTURE's layout): {missing}"


def test_imports_go_down_or_sideways():
    upward = [
        f"{path.relative_to(PACKAGE)} ({_unit(path)}) imports {u}"
        for path in _modules()
        for u in sorted(_imports(path))
        if LEVEL.get(u, 99) < LEVEL.get(_unit(path), 99)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles_between_units():
    graph: dict[str, set[str]] = {}
    for path in _modules():
        unit = _unit(path)
        graph.setdefault(unit, set()).update(_imports(path) - {unit})

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(u for u in graph if reaches(u, u, {u}))
    assert not cycles, f"units in an import cycle: {cycles}"


@pytest.mark.parametrize(
    "source",
    [
        "def f():\n    from coldflow.cli import app\n",  # lazy, absolute
        "def f():\n    from ..cli import app\n",  # lazy, relative
        "import coldflow.cli as c\n",
        "from coldflow import cli\n",
    ],
)
def test_the_checker_sees_every_form_of_import(source):
    assert _imported_units(source, ("nets",)) == {"cli"}
    assert _imported_units("from . import unet\nimport torch\n", ("nets",)) == {"nets"}


def test_the_top_level_holds_only_the_generic_modules():
    top = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert top <= TOP_LEVEL, f"move into a sub-package: {sorted(top - TOP_LEVEL)}"


# inside tasks/: the study packages build on base, handle and fluid, not on each other,
# except the pipeline, which evaluates SOL and super-resolution runs together
STUDY_PACKAGES = {"diffusion": set(), "sol": set(), "recon": set(), "pipeline": {"sol", "recon"}}


def _study_imports(path: Path) -> set[str]:
    """The study packages of ``coldflow.tasks`` that a module imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[:2] == ["coldflow", "tasks"] and len(parts) > 2:
                found.add(parts[2])
    return found & STUDY_PACKAGES.keys()


def test_study_packages_do_not_import_each_other():
    crossing = []
    for study, allowed in STUDY_PACKAGES.items():
        for path in sorted((PACKAGE / "tasks" / study).rglob("*.py")):
            for other in sorted(_study_imports(path) - allowed - {study}):
                crossing.append(f"{path.relative_to(PACKAGE)} imports tasks.{other}")
    for path in (PACKAGE / "tasks").glob("*.py"):  # base, handle, fluid: below every study
        if path.stem != "__init__":
            crossing += [
                f"{path.relative_to(PACKAGE)} imports tasks.{o}" for o in _study_imports(path)
            ]
    assert not crossing, "\n".join(crossing)


def test_every_study_package_is_checked():
    packages = {p.name for p in (PACKAGE / "tasks").iterdir() if (p / "__init__.py").is_file()}
    assert packages == STUDY_PACKAGES.keys()


def test_docs_architecture_shows_these_floors_and_packages():
    """docs/architecture.md is kept in step: the same floors, in order, and every package."""
    text = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    section = text.split("## Floors", 1)[1].split("\n## ", 1)[0]
    documented = [
        [u.strip().strip("`") for u in line.split(".", 1)[1].split(",")]
        for line in section.splitlines()
        if line[:1].isdigit()
    ]
    assert documented == FLOORS
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    packages |= {p.name for p in (PACKAGE / "tasks").iterdir() if (p / "__init__.py").is_file()}
    missing = sorted(name for name in packages if f"{name}/" not in text)
    assert not missing, f"docs/architecture.md does not show {missing}"
