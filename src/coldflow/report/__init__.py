"""Figures (matplotlib, one house style) and static HTML reports of training runs.

- :mod:`~coldflow.report.style`: the figure style and :func:`save_figure`.
- :mod:`~coldflow.report.figures`: pure plotting functions of arrays and tensors.
- :mod:`~coldflow.report.runs`: every figure of a run directory, ``report.html``, and
  comparisons of several runs.
"""

from coldflow.report.runs import plot_schedules, write_comparison, write_run_report
from coldflow.report.style import save_figure, style_context

__all__ = ["plot_schedules", "save_figure", "style_context", "write_comparison", "write_run_report"]
