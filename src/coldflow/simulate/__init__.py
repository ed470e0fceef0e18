"""Fluid data-set generation: batched, sharded and resumable.

- :mod:`~coldflow.simulate.run`: :func:`simulate` (a data-set config to one HDF5 file).
- :mod:`~coldflow.simulate.specs`: which simulations a config asks for, and their hashes.
- :mod:`~coldflow.simulate.files`: the part files beside the output, the data set's attributes.
- :mod:`~coldflow.simulate.checkpoint`: the mid-simulation checkpoint of a batch.

The scene comes from :func:`coldflow.physics.build_scene`, the progress display from
:class:`coldflow.training.progress.Progress`.
"""
