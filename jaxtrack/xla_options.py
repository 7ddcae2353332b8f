"""XLA compile options a tracker asks for: ``Tracker.compiler_options``, which ``JitTracker``
and ``BatchTracker`` pass to ``jax.jit`` (research code: ``jax.jit(t.track_step,
compiler_options=t.compiler_options)``).

``EIGEN_CONVOLUTIONS``: on XLA:CPU, convolutions run through Eigen instead of YNNPACK; dots
(1x1 convolutions included, which XLA rewrites to dots) and reductions stay in YNNPACK. This
jaxlib's default YNNPACK fusion set is {individual dot, individual convolution, reduce}; the
option is that set less the convolutions, and compiles to the same executable as
``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution`` (checked on
SiamFC's, GradNet's and TADT's ``track_step``: identical HLO text).
YNNPACK's convolutions run at 40 % of a dense 3x3's rate on the 2-core CPU and its grouped
ones slower still (``docs/speed.md``). A tracker module opts in with ``COMPILER_OPTIONS``, and
only where its boxes were checked unchanged by it. The options are used only on the CPU
backend and only when this jaxlib accepts them (checked once by compiling a small
convolution); otherwise ``Tracker.compiler_options`` is None and XLA's defaults apply.
"""
from __future__ import annotations

import functools

import jax

EIGEN_CONVOLUTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


@functools.lru_cache(maxsize=None)
def _accepted(items: tuple) -> bool:
    """Whether this jaxlib compiles a small convolution with these options."""
    x = jax.ShapeDtypeStruct((1, 8, 8, 4), jax.numpy.float32)
    w = jax.ShapeDtypeStruct((3, 3, 4, 4), jax.numpy.float32)
    conv = lambda a, b: jax.lax.conv_general_dilated(a, b, (1, 1), "VALID",  # noqa: E731
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    try:
        jax.jit(conv).lower(x, w).compile(compiler_options=dict(items))
    except Exception:           # an older or newer jaxlib without the option or its value
        return False
    return True


def jit(fn, options: dict | None = None, **kw):
    """``jax.jit(fn, **kw)`` compiled with ``options`` (left out when None, so a jax without
    ``jit(compiler_options=...)`` still works)."""
    return jax.jit(fn, **kw, **({"compiler_options": options} if options else {}))


def for_this_backend(options: dict | None) -> dict | None:
    """``options`` when the default backend is the CPU and this jaxlib accepts them, else None."""
    if not options or jax.default_backend() != "cpu":
        return None
    items = tuple(sorted(options.items()))
    return dict(items) if _accepted(items) else None
