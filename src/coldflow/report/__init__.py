"""Figures (matplotlib, one house style) and static HTML pages of runs and studies.

- :mod:`~coldflow.report.style`: the figure style and :func:`save_figure`.
- :mod:`~coldflow.report.figures`: image grids, tables and trajectories (pure functions).
- :mod:`~coldflow.report.curves`: schedule and metric curves (pure functions).
- :mod:`~coldflow.report.html`: page frame, tables, figure lists.
- :mod:`~coldflow.report.runs`: ``report.html`` of any run, comparison pages.
- :mod:`~coldflow.report.datasets`: figures of fluid data sets.

The figures of each study live with its task (``coldflow.tasks.<study>.figures``).
"""

from coldflow.report.runs import write_comparison, write_run_report
from coldflow.report.style import save_figure, style_context

__all__ = ["save_figure", "style_context", "write_comparison", "write_run_report"]
