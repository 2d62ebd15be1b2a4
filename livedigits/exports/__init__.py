"""Exports: the collected dataset (MNIST's IDX files) and the retrained models (a zip any Keras reads)."""
