"""The one training loop and its parts.

- :mod:`~coldflow.training.trainer`: :class:`Trainer` (epochs, EMA, AMP, gradient
  clipping, DDP, checkpoints, progress, hooks).
- :mod:`~coldflow.training.parts`: devices, seeding, hashes of a config, EMA, optimizers,
  compiled steps.
- :mod:`~coldflow.training.allocator`: the CPU allocator tuning the command line applies.
"""
