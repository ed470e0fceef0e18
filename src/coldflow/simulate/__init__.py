"""Fluid data-set generation: batched, sharded and resumable.

- :mod:`~coldflow.simulate.run`: :func:`simulate` (a data-set config to one HDF5 file).
- :mod:`~coldflow.simulate.specs`: which simulations a config asks for, and their hashes.
- :mod:`~coldflow.simulate.checkpoint`: the mid-simulation checkpoint of a batch.
"""
