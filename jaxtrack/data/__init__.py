"""Tracking data: sequences, benchmark readers, synthetic sequences.

The TFDS packing/sampling lives in ``jaxtrack.data.tfds_dataset`` and is imported
on demand (it pulls in tensorflow_datasets, but never TensorFlow).
"""
from jaxtrack.data.readers import load_dataset, load_sequence
from jaxtrack.data.sequence import FrameError, Sequence
from jaxtrack.data.synthetic import make_dataset, make_sequence

__all__ = ["Sequence", "FrameError", "load_dataset", "load_sequence", "make_sequence",
           "make_dataset"]
