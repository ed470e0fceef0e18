"""Wall times that can be compared: every job timed in the same process, in rounds.

A time measured once, in its own stretch of a shared machine, says as much about the
machine's load at that moment as about the job: two pipelines of equal cost measured a
minute apart differed by 20 %. :func:`interleaved_seconds` times several jobs in
``repeats`` rounds, each round running every job once (in an order rotated from round to
round, so no job always runs first or last), after one untimed warm-up call of each; a
load spike then hits all jobs of its round instead of one job. Each job's time is the
median over the rounds, with the lowest and highest round beside it as its spread.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["interleaved_seconds", "timing_entry"]


def interleaved_seconds(
    jobs: Mapping[str, Callable[[], int]], repeats: int = 3
) -> dict[str, dict[str, Any]]:
    """Seconds per unit of work of every job, over interleaved rounds.

    Parameters
    ----------
    jobs
        ``{name: job}``; a job does its work and returns how many units it did (frames
        times simulations, say), over which its time is divided.
    repeats
        Timed rounds (at least 1; 3 or more give a spread).

    Returns
    -------
    dict
        ``{name: {"seconds": median, "low": min, "high": max, "rounds": [per round]}}``,
        seconds per unit.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(jobs)
    for name in names:  # warm-up: tracing, caches, lazy allocations
        _units(name, jobs[name]())
    rounds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            units = _units(name, jobs[name]())
            rounds[name].append((time.perf_counter() - t0) / units)
    return {n: timing_entry(rounds[n]) for n in names}


def timing_entry(rounds: list[float]) -> dict[str, Any]:
    """``{"seconds", "low", "high", "rounds"}`` of per-round times (median, min, max)."""
    if not rounds:
        raise ValueError("no rounds to summarise")
    return {
        "seconds": float(statistics.median(rounds)),
        "low": float(min(rounds)),
        "high": float(max(rounds)),
        "rounds": [float(x) for x in rounds],
    }


def _units(name: str, units: Any) -> int:
    if not isinstance(units, int) or isinstance(units, bool) or units < 1:
        raise ValueError(f"timed job {name!r} must return a positive unit count, got {units!r}")
    return units
