"""The tracker contract and the registry.

A tracker is four things:

* ``config``: a frozen dataclass of hyper-parameters (static under ``jit``);
* ``params``: a pytree of arrays (learned weights);
* ``init(params, frame, box, key) -> state``;
* ``track_step(params, state, frame) -> (state, TrackOutput)``.

Both functions are pure and jittable: everything a tracker remembers between
frames lives in ``state``, a pytree. ``frame`` is a :class:`Frame`: the image
padded to a shape bucket plus its true size, so that sequences of different
frame sizes share compiled code (see :mod:`jaxtrack.driver`). Boxes follow
:mod:`jaxtrack.boxes` (0-based continuous ``xywh``).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax.numpy as jnp


class Frame(NamedTuple):
    """An RGB image padded to a bucket shape, and its true size.

    ``image``: uint8 or float ``[Hb, Wb, 3]`` with the real pixels in the top-left
    ``size[0] x size[1]`` corner; ``size``: int32 ``[2]`` = (height, width).
    """
    image: Any
    size: Any

    @staticmethod
    def of(image) -> "Frame":
        """Wrap an unpadded ``[H, W, 3]`` image."""
        image = jnp.asarray(image)
        return Frame(image, jnp.asarray(image.shape[:2], jnp.int32))


class TrackOutput(NamedTuple):
    box: Any      # float32 [4], xywh, 0-based continuous pixel coordinates
    score: Any    # float32 [], the tracker's confidence (peak response)


@dataclasses.dataclass(frozen=True)
class Tracker:
    """A built tracker: a name, its config, its params and the two pure functions.

    ``init`` and ``track_step`` already have the config bound (it is static), so
    ``jax.jit(tracker.track_step)`` is all research code needs.
    """
    name: str
    config: Any
    params: Any
    init: Callable
    track_step: Callable


_REGISTRY: dict[str, Callable[..., Tracker]] = {}


def register_tracker(name: str):
    """Decorator: ``build(**overrides) -> Tracker`` becomes ``make_tracker(name, ...)``."""
    def deco(build):
        _REGISTRY[name] = build
        return build
    return deco


def make_tracker(name: str, **overrides) -> Tracker:
    """Build a registered tracker; ``overrides`` replace config fields (or name weights)."""
    import jaxtrack.trackers  # noqa: F401  (registers the built-in trackers)
    if name not in _REGISTRY:
        raise KeyError(f"unknown tracker {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name](**overrides)


def available_trackers() -> list[str]:
    import jaxtrack.trackers  # noqa: F401
    return sorted(_REGISTRY)


def replace_config(config, overrides: dict, where: str):
    """``dataclasses.replace`` that names the unknown field instead of a bare TypeError."""
    names = {f.name for f in dataclasses.fields(config)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise TypeError(f"{where}: unknown config field(s) {bad}; known: {sorted(names)}")
    return dataclasses.replace(config, **overrides)


def bind_config(fn, config):
    """``fn(config, *args)`` as ``f(*args)``: the static config bound, a readable name kept."""
    def bound(*args):
        return fn(config, *args)
    bound.__name__ = bound.__qualname__ = f"{fn.__name__}"
    bound.__doc__ = fn.__doc__
    return bound
