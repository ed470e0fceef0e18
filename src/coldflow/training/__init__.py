"""The one training loop and its parts.

- :mod:`~coldflow.training.trainer`: :class:`Trainer` (epochs, EMA, AMP, gradient
  clipping, DDP, checkpoints, progress, hooks).
- :mod:`~coldflow.training.device`: devices, seeding, moving batches, DDP state.
- :mod:`~coldflow.training.hashes`: hashes of the config fields that fix a trajectory.
- :mod:`~coldflow.training.parts`: EMA, optimizers, compiled steps.
- :mod:`~coldflow.training.state`: what a checkpoint holds, and restoring it.
- :mod:`~coldflow.training.progress`: the progress reporter (also of ``coldflow simulate``).
- :mod:`~coldflow.training.allocator`: the CPU allocator tuning the command line applies.
"""
