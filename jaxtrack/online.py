"""Online updates: work that runs on some frames only, and fixed-size ring memories.

A tracker's periodic update ("every N frames, or when a test fires, re-train on the
stored samples") is :func:`when` over :func:`every`; its sample memories are ring buffers
written with :func:`ring_write`. Everything stays jittable and of fixed shape, and under
``vmap`` an update runs only on steps where some slot asks for it (:func:`lazy_cond`).
ATOM, GradNet and DAT use these.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def every(step, interval: int):
    """True on steps ``0, interval, 2 interval, ...`` (``step`` an int32 counter)."""
    return step % interval == 0


def when(pred, update_fn, state):
    """``update_fn(state)`` if ``pred`` else ``state`` (a real branch, also under vmap)."""
    return lazy_cond(pred, update_fn, lambda s: s, state)


def low_peak(frame_index, peak, peak_sum, frames: int, ratio: float):
    """(lost, new peak_sum): a frame's peak is low, and the target judged lost, when it is
    below ``ratio`` x the mean peak of frames ``1..frames`` (``frame_index`` counts from 1;
    ``peak_sum`` accumulates those first peaks). Never lost before the mean is known."""
    peak_sum = peak_sum + jnp.where(frame_index <= frames, peak, 0.0)
    return (frame_index > frames) & (peak < ratio * peak_sum / frames), peak_sum


def ring_slot(count, size: int):
    """The slot the ``count``-th write goes to in a ring of ``size`` entries."""
    return count % size


def ring_write(buffer, count, value, keep=None):
    """``buffer`` with entry ``count % len(buffer)`` set to ``value``; unchanged where
    ``keep`` is given and False."""
    new = buffer.at[ring_slot(count, buffer.shape[0])].set(value)
    return new if keep is None else jnp.where(keep, new, buffer)


def _hoist_closure(fn, operand):
    """(``g``, ``consts``) with ``g(operand, consts) == fn(operand)``: the values ``fn`` closes
    over (tracers of enclosing transformations included) become an explicit argument."""
    closed, shape = jax.make_jaxpr(fn, return_shape=True)(operand)
    out_tree = jax.tree.structure(shape)

    def g(op, consts):
        return jax.tree.unflatten(out_tree, jax.core.eval_jaxpr(closed.jaxpr, list(consts), *jax.tree.leaves(op)))
    return g, tuple(closed.consts)


def lazy_cond(pred, true_fn, false_fn, operand):
    """``lax.cond(pred, true_fn, false_fn, operand)`` that stays a branch under ``vmap``.

    Plain ``lax.cond`` with a batched predicate becomes a ``select``: both branches run for
    every slot on every step, so a tracker's periodic online update (every 10th frame) would
    run on every frame of a batched run. Here the batched rule runs the expensive branch only
    when at least one slot asks for it (``lax.cond(any(pred), ...)``) and then keeps each
    slot's own result, so ``B = 1`` costs what the unbatched step costs. Unbatched, it is
    exactly ``lax.cond``. Not differentiable through the predicate (nothing here needs it).
    """
    # a custom_vmap function may not close over batched values: make them inputs
    t_fn, t_consts = _hoist_closure(true_fn, operand)
    f_fn, f_consts = _hoist_closure(false_fn, operand)
    true_b = lambda a: t_fn(a[0], a[1])          # noqa: E731
    false_b = lambda a: f_fn(a[0], a[2])         # noqa: E731

    @jax.custom_batching.custom_vmap
    def branch(p, args):
        return jax.lax.cond(p, true_b, false_b, args)

    @branch.def_vmap
    def _batched(axis_size, in_batched, p, args):
        p_batched, args_batched = in_batched
        # unbatched inputs (params, closed-over constants) stay unbatched: broadcasting them
        # would turn a conv with shared weights into one with per-slot weights
        axes = (jax.tree.map(lambda b: 0 if b else None, args_batched),)
        vt = jax.vmap(true_b, in_axes=axes, axis_size=axis_size)
        vf = jax.vmap(false_b, in_axes=axes, axis_size=axis_size)
        if not p_batched:                         # one predicate for all slots: a real branch
            out = jax.lax.cond(p, vt, vf, args)
        else:
            def some(a):
                t, f = vt(a), vf(a)
                return jax.tree.map(lambda x, y: jnp.where(p.reshape((-1,) + (1,) * (x.ndim - 1)), x, y), t, f)
            out = jax.lax.cond(jnp.any(p), some, vf, args)
        return out, jax.tree.map(lambda _: True, out)

    return branch(pred, (operand, t_consts, f_consts))
