"""The tracker contract, and the one build path every tracker shares.

A tracker is four things:

* ``config``: a frozen dataclass of hyper-parameters (static under ``jit``);
* ``params``: a pytree of arrays (learned weights);
* ``init(params, frame, box, key) -> state``;
* ``track_step(params, state, frame) -> (state, TrackOutput)``.

Both functions are pure and jittable: everything a tracker remembers between frames
lives in ``state``, a pytree of fixed shapes. ``frame`` is a :class:`Frame`: the image
padded to a shape bucket plus its true size (:mod:`jaxtrack.frames`). Boxes follow
:mod:`jaxtrack.boxes` (0-based continuous ``xywh``).

A tracker *module* (``jaxtrack/trackers/<name>.py``) provides ``Config`` (the frozen
dataclass, validated in its ``__post_init__``), ``init(config, params, frame, box, key)``,
``track_step(config, params, state, frame)`` and ``load_params(config, weights, seed,
allow_random)``; :func:`build_tracker` turns it into a :class:`Tracker`. Two optional
hooks: ``make_config(**overrides)`` (defaults that depend on a field) and
``config_for_weights(config, weights)`` (settings read from the weights file); and one
constant, ``COMPILER_OPTIONS`` (:mod:`jaxtrack.xla_options`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax.numpy as jnp

from jaxtrack.errors import ConfigError


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
    """What ``track_step`` reports for a frame.

    ``lost`` is the tracker's own judgement that the target is not in view (ATOM's
    not-found score, DAT's failure test, a low peak for the Siamese trackers); ``finite``
    says the state and the box are finite, and is set for every tracker by the build path
    (:func:`with_health`), so a tracker leaves it at its default.
    """
    box: Any              # float32 [4], xywh, 0-based continuous pixel coordinates
    score: Any            # float32 [], the tracker's confidence (peak response)
    lost: Any = False     # bool []: the target is judged lost on this frame
    finite: Any = True    # bool []: the new state holds no NaN and the box is finite


@dataclasses.dataclass(frozen=True)
class Tracker:
    """A built tracker: a name, its config, its params and the two pure functions.

    ``init`` and ``track_step`` already have the config bound (it is static), so
    ``jax.jit(tracker.track_step)`` is all research code needs. ``compiler_options``: XLA
    options to compile both with (:mod:`jaxtrack.xla_options`; None: XLA's defaults); they
    change speed, not the boxes.
    """
    name: str
    config: Any
    params: Any
    init: Callable
    track_step: Callable
    compiler_options: Any = None


def replace_config(config, overrides: dict, where: str):
    """``dataclasses.replace`` that names the unknown field instead of a bare TypeError."""
    names = {f.name for f in dataclasses.fields(config)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise ConfigError(f"{where}: unknown config field(s) {bad}; known: {sorted(names)}")
    return dataclasses.replace(config, **overrides)


def bind_config(fn, config):
    """``fn(config, *args)`` as ``f(*args)``: the static config bound, a readable name kept."""
    def bound(*args):
        return fn(config, *args)
    bound.__name__ = bound.__qualname__ = f"{fn.__name__}"
    bound.__doc__ = fn.__doc__
    return bound


def all_finite(tree):
    """True when no floating-point leaf of ``tree`` holds a NaN (a jittable scalar). Infinities
    are allowed: trackers use them as markers (GradNet's empty sample slots are ``-inf``)."""
    import jax
    leaves = [~jnp.any(jnp.isnan(x)) for x in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def with_health(track_step):
    """``track_step`` whose output also says whether the new state is finite, and whose
    ``lost`` is a bool array (the same contract for every tracker)."""
    def checked(*args):
        state, out = track_step(*args)
        out = out._replace(lost=jnp.asarray(out.lost, bool),
                           finite=all_finite(state) & jnp.all(jnp.isfinite(out.box)))
        return state, out
    checked.__name__ = checked.__qualname__ = track_step.__name__
    checked.__doc__ = track_step.__doc__
    return checked


def make_config(name: str, module, **overrides):
    """The module's ``Config`` with ``overrides`` (through ``module.make_config`` when the
    defaults depend on a field, as TADT's geometry depends on the backbone)."""
    if hasattr(module, "make_config"):
        return module.make_config(**overrides)
    return replace_config(module.Config(), overrides, name)


def build_tracker(name: str, module, *, weights: str | None = None, seed: int = 0,
                  allow_random: bool = False, params=None, **overrides) -> Tracker:
    """Config, then params (``module.load_params`` unless given), then the bound functions.

    ``weights`` names a checkpoint (default: the tracker's committed one, if any);
    ``allow_random`` permits untrained params where no checkpoint exists (tests, timing).
    """
    config = make_config(name, module, **overrides)
    if params is None:
        params = module.load_params(config, weights, seed, allow_random)
        if hasattr(module, "config_for_weights"):      # e.g. TADT: VGG input normalisation
            config = module.config_for_weights(config, weights)
    from jaxtrack import xla_options
    return Tracker(name, config, params, bind_config(module.init, config),
                   with_health(bind_config(module.track_step, config)),
                   xla_options.for_this_backend(getattr(module, "COMPILER_OPTIONS", None)))
