"""Solver-in-the-Loop: a network that corrects the low-resolution solver inside the loop.

- :mod:`~coldflow.tasks.sol.config`: the config model of a SOL run.
- :mod:`~coldflow.tasks.sol.task`: the task (model, data, training windows).
- :mod:`~coldflow.tasks.sol.evaluation`: held-out rollouts and their baselines.
- :mod:`~coldflow.tasks.sol.figures`: rollout figures and tables.
"""
