"""The cheap simulator: the low-resolution solver (plain or SOL-corrected), then upsampling,
against the high-resolution solver.

- :mod:`~coldflow.tasks.pipeline.evaluation`: :func:`evaluate_pipeline`.
- :mod:`~coldflow.tasks.pipeline.figures`: error against step and against cost.
"""
