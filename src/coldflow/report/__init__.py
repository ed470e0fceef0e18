"""Figures (matplotlib, one house style) and static HTML pages of runs and studies.

- :mod:`~coldflow.report.style`: the figure style and :func:`save_figure`.
- :mod:`~coldflow.report.figures`: pure plotting functions of arrays and tensors.
- :mod:`~coldflow.report.html`: page frame, tables, figure lists.
- :mod:`~coldflow.report.runs`: ``report.html`` of any run, comparison pages.
- :mod:`~coldflow.report.diffusion`, :mod:`~coldflow.report.sol`,
  :mod:`~coldflow.report.frames`, :mod:`~coldflow.report.fields`: the figures of each
  task and of fluid data sets.
"""

from coldflow.report.diffusion import plot_schedules
from coldflow.report.runs import write_comparison, write_run_report
from coldflow.report.style import save_figure, style_context

__all__ = ["plot_schedules", "save_figure", "style_context", "write_comparison", "write_run_report"]
