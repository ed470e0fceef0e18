"""coldflow: learning to undo degradations of 2-D fields, judged perceptually.

The library in five lines (every name below is importable from ``coldflow``)::

    import coldflow

    run = coldflow.train("configs/mnist/quick.yaml", "runs/quick", overrides=["training.epochs=1"])
    images = run.sample(16).images               # a trained run offers what its task does
    lsim = coldflow.field_loss("lsim")           # a differentiable loss on vector fields
    distance = lsim(prediction, reference)       # [batch, 2, H, W] -> [batch]

Importing ``coldflow`` is cheap: PyTorch, PhiFlow and the rest load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from coldflow.data.store import FieldData
    from coldflow.losses.vector import FieldDistance
    from coldflow.tasks.base import LoadedRun

__all__ = [
    "__version__",
    "evaluate",
    "field_loss",
    "load_run",
    "open_dataset",
    "simulate_dataset",
    "train",
]


def load_run(path: str | Path, device: str = "auto", epoch: int | None = None) -> LoadedRun:
    """Load a trained run directory (any task) with its config and model.

    Parameters
    ----------
    path
        A run directory written by ``coldflow train`` or :func:`train`.
    device
        ``auto``, ``cpu`` or ``cuda``.
    epoch
        A checkpoint's epoch (default: the latest intact one).

    Returns
    -------
    LoadedRun
        ``cfg``, ``model`` (EMA weights when the run kept them), ``epoch``; and what its
        task does: ``sample(n)`` (diffusion), ``rollout(...)`` (Solver-in-the-Loop),
        ``evaluate()`` (every task).

    Examples
    --------
    >>> run = coldflow.load_run("runs/quick", device="cpu")  # doctest: +SKIP
    >>> run.sample(4, steps=10).images.shape  # doctest: +SKIP
    torch.Size([4, 1, 28, 28])
    """
    from coldflow.tasks.handle import load_run as _load

    return _load(path, device, epoch)


def train(
    config: str | Path,
    run_dir: str | Path,
    *,
    overrides: list[str] | None = None,
    resume: bool = False,
    device: str = "auto",
) -> LoadedRun:
    """Train the run of a YAML config (any task) into ``run_dir`` and load it.

    ``overrides`` are ``--set`` strings, e.g. ``["training.epochs=2"]``; ``resume``
    continues the latest checkpoint of ``run_dir``. Only one process may write a run
    directory at a time.

    Examples
    --------
    >>> run = coldflow.train("configs/mnist/quick.yaml", "runs/q",
    ...                      overrides=["training.epochs=1"])  # doctest: +SKIP
    """
    from coldflow.experiment import train as _train

    done = _train(config, run_dir, overrides=overrides, resume=resume)
    return load_run(done.path, device)


def evaluate(path: str | Path, device: str = "auto", **options: Any) -> dict[str, Any]:
    """Evaluate a trained run with its task's evaluation and write ``evaluation.json``.

    ``options`` are those of ``coldflow evaluate`` (``n``, ``steps``, ``data``, ...).
    """
    from coldflow.experiment import evaluate as _evaluate

    return _evaluate(path, device, **options)


def field_loss(name: str, *, grid: str = "centered", **options: Any) -> FieldDistance:
    """A differentiable distance between vector fields by registry name.

    Parameters
    ----------
    name
        ``mse``, ``mae``, ``lsim``, ``lpips`` or ``vgg`` (the perceptual ones load their
        pretrained weights, downloading them once).
    grid
        ``centered`` (``[batch, C, H, W]``, each channel a component) or ``staggered``
        (a PhiFlow staggered velocity, ``[batch, 2, H + 1, W + 1]``).
    options
        Options of the loss (e.g. ``scaling="joint"`` for LSiM) and of the field adapter
        (``fit``, ``pad_mode``, ``min_size``).

    Returns
    -------
    FieldDistance
        A module ``f(a, b) -> [batch]``: the loss of each component, summed (a
        perceptual metric sees each component as an image).

    Examples
    --------
    >>> lsim = coldflow.field_loss("lsim")  # doctest: +SKIP
    >>> lsim(torch.rand(2, 2, 64, 64), torch.rand(2, 2, 64, 64)).shape  # doctest: +SKIP
    torch.Size([2])
    """
    from coldflow.losses import build_field_loss

    return build_field_loss(name, grid=grid, **options)


def open_dataset(path: str | Path) -> FieldData:
    """Open a fluid data set written by ``coldflow simulate`` (read-only; a context manager).

    Examples
    --------
    >>> with coldflow.open_dataset("data/karman_tiny.h5") as data:  # doctest: +SKIP
    ...     sim = data.simulations("test")[0]
    ...     velocity = data.read(sim, "reference", "velocity", 0)
    """
    from coldflow.data.store import FieldData

    return FieldData(path)


def simulate_dataset(
    config: str | Path,
    out: str | Path,
    *,
    overrides: list[str] | None = None,
    progress: bool = True,
) -> Path:
    """Simulate a fluid data set (high-resolution reference, downsampled, low-resolution
    source) from a data-set YAML into the HDF5 file ``out``; resumes a killed run.

    Examples
    --------
    >>> coldflow.simulate_dataset("configs/fluids/karman_tiny.yaml", "tiny.h5")  # doctest: +SKIP

    (Not ``coldflow.simulate``: that is the package of the data-set generator.)
    """
    from coldflow.simulate.run import simulate as _simulate

    return _simulate(config, out, overrides=overrides or [], progress=progress)
