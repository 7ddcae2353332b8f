"""Named variants, ablation rows and training recipes of every tracker, in plain Python.

``jaxtrack/configs/<tracker>.py`` holds (as pytracking's ``parameter/<tracker>/*.py`` and
big_vision's ``configs/``):

* ``VARIANTS``: ``{name: config overrides}``. ``default`` is the official values (the
  config dataclass's own defaults); ``tiny`` is small and fast, for tests;
* ``ABLATION``: ``{row: Row}``, the rows of the tracker's ablation table
  (``experiments/ablate.py``), and ``DEFAULT_ROWS``, those run when none are named;
* ``SWEEP``: what the table adds to the generic sweep (:class:`jaxtrack.eval.sweep.Hooks`:
  weights to train, a step to tune, a metric per sequence), where it adds anything;
* training recipes where the tracker trains offline.

``make_tracker(name, variant=V, **overrides)`` applies ``VARIANTS[V]`` then ``overrides``.
"""
from __future__ import annotations

import dataclasses
import importlib
from types import MappingProxyType, ModuleType


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of an ablation table: a tracker, its variant plus ``overrides``, and the
    training recipe whose exported weights it tracks with (``None``: the default weights)."""
    tracker: str
    variant: str = "default"
    overrides: dict = dataclasses.field(default_factory=dict)
    train: str | None = None


def frozen(d: dict) -> MappingProxyType:
    """A read-only view, so that a variant table cannot be changed by accident."""
    return MappingProxyType(d)


def configs_module(tracker: str) -> ModuleType | None:
    """``jaxtrack.configs.<tracker>``, or None for a tracker without a configs file."""
    try:
        return importlib.import_module(f"jaxtrack.configs.{tracker}")
    except ModuleNotFoundError as e:
        if e.name != f"jaxtrack.configs.{tracker}":
            raise
        return None


def variants(tracker: str) -> dict:
    """``{variant: config overrides}`` of ``tracker`` (just ``default`` without a configs file)."""
    module = configs_module(tracker)
    return dict(module.VARIANTS) if module is not None else {"default": {}}


def variant_overrides(tracker: str, variant: str) -> dict:
    """The config overrides of ``tracker``'s ``variant``; an error lists the known ones."""
    table = variants(tracker)
    if variant not in table:
        from jaxtrack.errors import UnknownNameError
        raise UnknownNameError(f"{tracker}: unknown variant {variant!r}; known: {sorted(table)}")
    return dict(table[variant])
