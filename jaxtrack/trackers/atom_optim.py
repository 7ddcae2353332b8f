"""ATOM's online target classifier: a factorised conv trained by Gauss-Newton + CG.

Features ``x [N, H, W, D]`` (L2-normalised per sample) go through a 1x1 projection
``P [D, 64]`` and a ``4x4x64`` filter ``f`` (padding 2): scores ``[N, H+1, W+1]``, with
``mlu(0.05)`` on the output in training. The loss is pytracking's weighted least squares
(``FactorizedConvProblem`` / ``ConvProblem``)::

    r(f, P) = [ sqrt(w_n) * (mlu(conv(x_n P, f)) - y_n) ,  sqrt(0.1) f ,  sqrt(1e-4) P ]

:func:`gauss_newton_cg` minimises it (first frame: ``f`` and ``P``; later: ``f`` only);
:func:`gradient_descent` is the ablation. Everything is pure and jittable. Design notes:
docs/trackers/atom.md.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def mlu(x, a: float):
    """pytracking's ``elu(leaky_relu(x, 1/a), a)``: identity for x >= 0, a(exp(x/a)-1) below."""
    return jnp.where(x >= 0, x, a * jnp.expm1(jnp.minimum(x, 0.0) / a))


def normalize_features(x):
    """pytracking's ``normalize_power=2``: divide each sample by its RMS over C, H, W."""
    return x / jnp.sqrt(jnp.mean(x * x, axis=(-3, -2, -1), keepdims=True) + 1e-10)


def project(x, proj):
    return jnp.einsum("nhwd,dc->nhwc", x, proj)


def apply_filter(x, filt, same: bool = False):
    """Scores ``[N, H+1, W+1]`` of samples ``[N, H, W, C]`` with filter ``[k, k, C]`` (pad k//2).

    ``same``: pytracking's ``operation.conv2d(mode='same')``, which for an even kernel drops
    the last row and column of that map: ``[N, H, W]`` (``libs/operation.py:16-29``).

    Written as one channel contraction to ``k*k`` tap maps (a GEMM) followed by ``k*k``
    shifted adds, instead of ``lax.conv``: XLA:CPU's convolution with one output channel,
    and its transpose w.r.t. the filter that every CG iteration needs, is much slower.
    """
    k = filt.shape[0]
    p = k // 2
    n, h, w, _ = x.shape
    ho, wo = (h, w) if same else (h + 2 * p - k + 1, w + 2 * p - k + 1)
    taps = jnp.einsum("nhwc,ijc->nhwij", x, filt)
    taps = jnp.pad(taps, ((0, 0), (p, p), (p, p), (0, 0), (0, 0)))
    out = 0.0
    for i in range(k):
        for j in range(k):
            out = out + taps[:, i:i + ho, j:j + wo, i, j]
    return out


# ----------------------------------------------------------------- residuals

def joint_residuals(var, x, y, w, filter_reg, projection_reg, act, same: bool = False):
    """Residuals of the first-frame problem in ``var = (filter, projection)``
    (``same``: on the ``[H, W]`` map of :func:`apply_filter`)."""
    filt, proj = var
    scores = mlu(apply_filter(project(x, proj), filt, same), act)
    data = jnp.sqrt(w)[:, None, None] * (scores - y)
    return (data, jnp.sqrt(filter_reg) * filt, jnp.sqrt(projection_reg) * proj)


def filter_residuals(filt, x, y, w, filter_reg, act, same: bool = False):
    """Residuals of the later-frame problem (projected samples ``x``, filter only)."""
    scores = mlu(apply_filter(x, filt, same), act)
    return (jnp.sqrt(w)[:, None, None] * (scores - y), jnp.sqrt(filter_reg) * filt)


def loss_of(residuals):
    """0.5 * ||r||^2."""
    return 0.5 * sum(jnp.sum(r * r) for r in jax.tree_util.tree_leaves(residuals))


# ----------------------------------------------------------------- optimisers

def _tmap(f, *ts):
    return jax.tree_util.tree_map(f, *ts)


def gauss_newton_cg(residual_fn, x0, num_gn: int, num_cg: int, precond=None):
    """``num_gn`` Gauss-Newton steps, each ``num_cg`` CG iterations (fixed count).

    ``precond``: a pytree like ``x0`` of positive diagonal scales (``M^-1 v = v * precond``)
    or None. Returns ``(x, losses [num_gn + 1])``, the loss before each step and at the end.
    """
    def step(x, _):
        r, jvp = jax.linearize(residual_fn, x)
        jt = jax.linear_transpose(jvp, x)
        normal = lambda v: jt(jvp(v))[0]                                  # noqa: E731
        b = _tmap(jnp.negative, jt(r)[0])
        m = None if precond is None else (lambda v: _tmap(jnp.multiply, v, precond))
        # tol=atol=0: always exactly num_cg iterations (fixed cost, as pytracking)
        dx, _ = jax.scipy.sparse.linalg.cg(normal, b, tol=0.0, atol=0.0, maxiter=num_cg, M=m)
        return _tmap(jnp.add, x, dx), loss_of(r)

    x, losses = lax.scan(step, x0, None, length=num_gn)
    return x, jnp.concatenate([losses, loss_of(residual_fn(x))[None]])


def gradient_descent(residual_fn, x0, num_steps: int, step_size: float, momentum: float = 0.9):
    """Heavy-ball gradient descent on ``0.5 ||r||^2`` (one VJP per step). Returns (x, losses)."""
    loss_fn = lambda x: loss_of(residual_fn(x))                              # noqa: E731

    def step(carry, _):
        x, v = carry
        loss, g = jax.value_and_grad(loss_fn)(x)
        v = _tmap(lambda vi, gi: momentum * vi - step_size * gi, v, g)
        return (_tmap(jnp.add, x, v), v), loss

    (x, _), losses = lax.scan(step, (x0, _tmap(jnp.zeros_like, x0)), None, length=num_steps)
    return x, jnp.concatenate([losses, loss_fn(x)[None]])


def jacobian_products_gn(num_gn: int, num_cg: int) -> int:
    """Jacobian-vector/vector-Jacobian products spent by :func:`gauss_newton_cg`:
    per GN step one ``J^T r`` and per CG iteration one ``J v`` and one ``J^T u``."""
    return num_gn * (1 + 2 * num_cg)


# ----------------------------------------------------------------- sample memory

def update_sample_weights(weights, prev_ind, num_init: int, lr, min_init_weight: float):
    """pytracking's ``update_sample_weights`` on a fixed-size memory.

    Replaces the lowest-weight slot after the initial samples (empty slots have weight 0
    so they fill first); the new sample's weight grows geometrically by ``1/(1-lr)``
    relative to the previous one; the initial samples keep at least ``min_init_weight``
    in total. ``prev_ind < 0`` means no sample was added since init.
    Returns ``(weights, replace_index)``.
    """
    m = weights.shape[0]
    idx = jnp.arange(m)
    r_ind = jnp.argmin(jnp.where(idx >= num_init, weights, jnp.inf))
    first = prev_ind < 0
    w_first = (weights / (1 - lr)).at[r_ind].set(lr)
    w_next = weights.at[r_ind].set(weights[jnp.maximum(prev_ind, 0)] / (1 - lr))
    w = jnp.where(first, w_first, w_next)
    w = w / jnp.sum(w)
    init_mask = idx < num_init
    init_sum = jnp.sum(jnp.where(init_mask, w, 0.0))
    rest = jnp.sum(jnp.where(init_mask, 0.0, w))
    fixed = jnp.where(init_mask, min_init_weight / num_init, w / (min_init_weight + rest))
    w = jnp.where(init_sum < min_init_weight, fixed, w)
    return w, r_ind
