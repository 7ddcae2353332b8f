"""Checkpoint file formats read without their frameworks: torch pickles and TensorFlow bundles."""
