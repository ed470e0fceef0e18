"""Reconstruction of fields: the autoencoder and super-resolution tasks.

- :mod:`~coldflow.tasks.recon.config`: the config model of an AE or SR run.
- :mod:`~coldflow.tasks.recon.task`: both tasks, their evaluation and baselines.
- :mod:`~coldflow.tasks.recon.figures`: reconstructions and error maps.
- :mod:`~coldflow.tasks.recon.baselines`: PCA, DCT and resampling codecs, the nearest
  training frame (with mirror images), the obstacle cells left out of scoring.
"""
