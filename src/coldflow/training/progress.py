"""The one progress reporter of long loops: training epochs and data-set generation.

On a terminal it draws a live rich bar (description, bar, done/total, the caller's
fields, elapsed time, ETA); elsewhere (log files, cluster jobs) it prints plain lines
through ``say``: at most every ``line_every`` seconds, or each time another
``1 / line_marks`` of the total is done. The caller decides what a line says.

The reporter never reads a tensor: :meth:`Progress.step` says whether the display is due,
so a caller computes what it shows (a host sync for a loss) only then.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

__all__ = ["Progress", "is_terminal"]


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: stdout) is a terminal a live bar can redraw."""
    from rich.console import Console

    try:
        return Console(file=stream or sys.stdout).is_terminal
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


class Progress:
    """Units of work done out of a total, with their rate and the time left.

    Use as a context manager around the loop; call :meth:`start` for each stage (an
    epoch; a data set), :meth:`step` after each piece of work and :meth:`show` when it
    returns true.

    Parameters
    ----------
    enabled
        Show anything at all.
    say
        Where plain lines go (default: print to stderr).
    line
        The text of a plain line: ``line(progress, fields)``, with the ``fields`` given to
        :meth:`show`. Default: ``"<description>: done/total unit (p%), rate unit/s, ETA"``.
    unit
        What is counted (``"frames"``); shown after the count and in the default line.
    columns
        Rich ``TextColumn`` templates of fields shown after the count, e.g.
        ``"loss {task.fields[loss]:.4f}"``. A field named there must be given to
        :meth:`start` (initial value) and to :meth:`show`.
    line_every
        Plain lines at most this often (seconds); ``None``: no time-based lines.
    line_marks
        Also a plain line each time the work done passes another ``1 / line_marks`` of
        the total (20: every 5 %); 0: none.
    stream
        The stream whose being a terminal selects the live bar (default: stdout).
    bar_every
        The live bar is redrawn at most this often (seconds), besides after the first step.
    """

    def __init__(
        self,
        enabled: bool,
        say: Callable[[str], None] | None = None,
        *,
        line: Callable[[Progress, dict[str, Any]], str] | None = None,
        unit: str = "",
        columns: Sequence[str] = (),
        line_every: float | None = None,
        line_marks: int = 0,
        stream: TextIO | None = None,
        bar_every: float = 0.5,
    ) -> None:
        self.enabled = enabled
        self.say = say or (lambda m: print(m, file=sys.stderr, flush=True))
        self.unit = unit
        self.columns = tuple(columns)
        self.line_every = line_every
        self.line_marks = line_marks
        self.bar_every = bar_every
        self._line = line or _default_line
        self.live = enabled and is_terminal(stream)
        self._bar = None
        self._task = None
        self.start("", 0)

    # ------------------------------------------------------------------ display
    def __enter__(self) -> Progress:
        if self.live:
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            count = "{task.completed}/{task.total}" + (f" {self.unit}" if self.unit else "")
            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn(count),
                *(TextColumn(c) for c in self.columns),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            if self._task is not None:  # the last steps may have come between redraws
                self._bar.update(self._task, completed=self.done)
            self._bar.__exit__(*exc)
            self._bar = None

    # --------------------------------------------------------------------- work
    def start(self, description: str, total: int, **fields: Any) -> None:
        """Begin a stage of ``total`` units (a new bar on a terminal).

        ``fields`` are the initial values of the fields the ``columns`` name.
        """
        self.description, self.total = description, total
        self.done = 0  # units, restored ones included
        self.restored = 0  # units done before this process (not in the rate)
        self.t0 = self._shown = time.perf_counter()
        self._steps = 0
        self._mark = 0
        if self._bar is not None and total > 0:
            self._task = self._bar.add_task(description, total=total, **fields)

    def skip(self, units: int) -> None:
        """Count ``units`` done earlier (restored from a checkpoint): done, not in the rate."""
        self.restored += units
        self.advance(units)

    def advance(self, units: int) -> None:
        """:meth:`step` by ``units`` and :meth:`show` the default fields when due."""
        if self.step(self.done + units):
            self.show()

    def step(self, done: int) -> bool:
        """Record that ``done`` units of the stage are done; whether to :meth:`show` now."""
        self.done = done
        self._steps += 1
        if not self.enabled or self.total <= 0:
            return False
        now = time.perf_counter()
        if self.live:
            return self._steps == 1 or now - self._shown > self.bar_every
        if self.line_marks and self.line_marks * self.done // self.total > self._mark:
            return True
        return self.line_every is not None and now - self._shown > self.line_every

    def show(self, **fields: Any) -> None:
        """Redraw the bar, or print a line, with ``fields`` (default: ``rate``)."""
        self._shown = time.perf_counter()
        fields = {"rate": self.rate} | fields
        if self.line_marks and self.total > 0:
            self._mark = max(self._mark, self.line_marks * self.done // self.total)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done, **fields)
        elif self.enabled and not self.live:
            self.say(self._line(self, fields))

    # ------------------------------------------------------------------ numbers
    @property
    def elapsed(self) -> float:
        """Seconds since the stage started."""
        return time.perf_counter() - self.t0

    @property
    def rate(self) -> float:
        """Units done per second in this process (restored units left out)."""
        return (self.done - self.restored) / max(self.elapsed, 1e-9)

    @property
    def eta(self) -> float:
        """Seconds left at the current rate (``inf`` before any unit is done)."""
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else float("inf")


def _default_line(progress: Progress, fields: dict[str, Any]) -> str:
    """``simulate: 120/2400 frames (5%), 12.3 frames/s, ETA 3 min 05 s``."""
    from coldflow.io import format_duration

    p, unit = progress, progress.unit
    eta = format_duration(p.eta) if p.rate > 0 else "?"
    return (
        f"{p.description}: {p.done}/{p.total} {unit} ({100 * p.done // p.total}%), "
        f"{fields['rate']:.1f} {unit}/s, ETA {eta}"
    )
