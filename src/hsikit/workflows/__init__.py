"""hsikit.workflows: high-level Python APIs that chain data, training and prediction for one family of models.

* :mod:`hsikit.workflows.deephyp` - deephyp's spectral autoencoders and 1-D CNN classifier:
  :class:`~hsikit.workflows.deephyp.SpectralData`, named trainings, save/load, encode/decode,
  predict_labels, predict_features.

Each module imports Lightning; import the one you use.
"""
