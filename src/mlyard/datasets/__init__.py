"""Synthetic data sets for examples, demos and tests (they need the ``ml`` extra: numpy and pandas)."""
