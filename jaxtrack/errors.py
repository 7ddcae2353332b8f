"""The errors jaxtrack raises for bad input, each naming the file, line, frame or argument.

Every class also derives from the built-in error a caller would expect (``ValueError``,
``FileNotFoundError``...), so ``except ValueError`` keeps working; ``except JaxtrackError``
catches exactly the input problems jaxtrack recognised.
"""
from __future__ import annotations


class JaxtrackError(Exception):
    """Bad input that jaxtrack recognised and named."""

    __str__ = Exception.__str__          # plain messages, also for the KeyError kinds


class ConfigError(JaxtrackError, TypeError, ValueError):
    """A config field that does not exist, or a value a tracker cannot use."""


class UnknownNameError(JaxtrackError, KeyError):
    """A tracker, variant or layout name that is not known; the message lists the known ones."""


class BoxError(JaxtrackError, ValueError):
    """A box is not finite, has no area, or lies outside its image."""


class FrameError(JaxtrackError, OSError, ValueError):
    """A frame is missing, cannot be decoded, is truncated, or has an unusable shape, type or range."""


class DatasetError(JaxtrackError, ValueError):
    """A dataset file (ground truth, list, flags) is malformed."""


class DatasetNotFoundError(JaxtrackError, FileNotFoundError):
    """A dataset folder, file or sequence does not exist, or a root holds no sequence."""


class CheckpointError(JaxtrackError, ValueError):
    """A weights file is not what it should be: wrong format, truncated, corrupt, or shaped
    for another network."""


class RunMismatchError(JaxtrackError, RuntimeError):
    """A results folder holds the results of a different run."""


class ResultsError(JaxtrackError, ValueError):
    """A results folder (ours or another toolkit's) is missing, incomplete or unreadable."""


class ResultsFolderError(JaxtrackError, OSError):
    """A results folder cannot be written (read-only, full disk...)."""
