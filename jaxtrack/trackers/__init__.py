"""The trackers, looked up by name: ``make_tracker("atom", variant="no_iou", learning_rate=0.02)``.

``TRACKERS`` is the one list of built-in trackers; ``jaxtrack.trackers.<name>`` is imported
only when that tracker is made (no registry to fill, no import cycle). A tracker from
outside the package is added with :func:`register` (its module follows
:mod:`jaxtrack.core`'s module contract). Named variants live in ``jaxtrack.configs.<name>``.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from jaxtrack.core import Tracker, build_tracker
from jaxtrack.errors import UnknownNameError

TRACKERS = ("siamfc", "gradnet", "tadt", "atom", "dat")
_EXTERNAL: dict[str, str] = {}           # name -> module path, from register()


def register(name: str, module: str) -> None:
    """Make ``make_tracker(name)`` build the tracker defined in module ``module``
    (a dotted path, imported on first use)."""
    if name in TRACKERS:
        raise ValueError(f"{name!r} is a built-in tracker")
    _EXTERNAL[name] = module


def available_trackers() -> list[str]:
    return sorted(TRACKERS + tuple(_EXTERNAL))


def tracker_module(name: str) -> ModuleType:
    """The module that defines tracker ``name``."""
    if name in TRACKERS:
        return importlib.import_module(f"jaxtrack.trackers.{name}")
    if name in _EXTERNAL:
        return importlib.import_module(_EXTERNAL[name])
    raise UnknownNameError(f"unknown tracker {name!r}; available: {available_trackers()}")


def make_tracker(name: str, variant: str = "default", **overrides) -> Tracker:
    """Build tracker ``name``: its ``variant`` (``jaxtrack.configs.<name>``), then
    ``overrides`` (config fields, or ``weights`` / ``seed`` / ``allow_random`` / ``params``)."""
    from jaxtrack.configs import variant_overrides
    module = tracker_module(name)
    return build_tracker(name, module, **{**variant_overrides(name, variant), **overrides})
