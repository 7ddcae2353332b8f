"""Guided backpropagation and DAT's reciprocative attention regulariser (pure JAX).

Guided backprop (Springenberg et al. 2015) changes only the backward rule of each
rectifier: the gradient passes where the input was active and the incoming gradient is
positive. The rule is a :func:`jax.custom_vjp` written in differentiable JAX, so ``jax.grad``
of :func:`reciprocative_loss` (whose attention maps are gradients) is DAT's second-order
objective. With ``A = sum_c g_c^2`` the map of a sample (``g``: the guided gradient of
``10 x`` a class score w.r.t. the input patch), ``mu`` / ``sigma`` its spatial mean and
population std, and ``x|c`` the maps of samples ``x`` for the class-``c`` score, the
regulariser of the official ``tracking/run_tracker.py`` (sums over the batch) is::

      sum(sigma_pos|pos) / sum(mu_pos|pos)  +  sum(sigma_neg|neg) / sum(mu_neg|neg)
    + sum(mu_pos|neg)    / sum(sigma_pos|neg) + sum(mu_neg|pos)  / sum(sigma_neg|pos)

Design notes: docs/trackers/dat.md.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_vjp
def guided_relu(x):
    """ReLU whose backward pass keeps only positive gradients at active units."""
    return jnp.maximum(x, 0.0)


def _relu_fwd(x):
    return jnp.maximum(x, 0.0), x


def _relu_bwd(x, g):
    return (jnp.where(x > 0, jnp.maximum(g, 0.0), 0.0),)


guided_relu.defvjp(_relu_fwd, _relu_bwd)


@jax.custom_vjp
def guided_relu6(x):
    """ReLU6 (MobileNetV2) with the guided backward rule (active = 0 < x < 6)."""
    return jnp.clip(x, 0.0, 6.0)


def _relu6_fwd(x):
    return jnp.clip(x, 0.0, 6.0), x


def _relu6_bwd(x, g):
    return (jnp.where((x > 0) & (x < 6), jnp.maximum(g, 0.0), 0.0),)


guided_relu6.defvjp(_relu6_fwd, _relu6_bwd)


def relu(guided: bool):
    return guided_relu if guided else jax.nn.relu


def relu6(guided: bool):
    return guided_relu6 if guided else jax.nn.relu6


def attention_maps(score_fn, patches, classes=(1, 0), scale: float = 10.0):
    """Attention maps of ``patches`` for each class in ``classes``.

    ``score_fn(patches) -> [B, num_classes]`` must treat samples independently (no
    batch statistics, no dropout), so the gradient of the batch sum gives each
    sample's own gradient. One forward pass serves every class (``jax.vjp``). Returns
    ``[len(classes), B, H, W]``: ``sum_c (d(scale * s_class)/d patch)^2``.
    """
    scores, vjp = jax.vjp(score_fn, patches)
    maps = []
    for c in classes:
        cot = jnp.zeros_like(scores).at[:, c].set(scale)
        (g,) = vjp(cot)
        maps.append(jnp.sum(jnp.square(g), axis=-1))
    return jnp.stack(maps)


def map_stats(maps, eps: float = 1e-30):
    """Spatial mean and (population) standard deviation of ``[..., H, W]`` maps."""
    mu = jnp.mean(maps, axis=(-2, -1))
    var = jnp.mean(jnp.square(maps - mu[..., None, None]), axis=(-2, -1))
    return mu, jnp.sqrt(var + eps)


def reciprocative_terms(pos_maps, neg_maps, eps: float = 1e-30):
    """DAT's four ratios from ``[2, B, H, W]`` maps ordered (positive class, negative class).

    Returns ``(pos_true, neg_true, pos_opposite, neg_opposite)``; their sum is the
    regulariser (see the module docstring).
    """
    mu_p, sd_p = map_stats(pos_maps)         # [2, Bp]
    mu_n, sd_n = map_stats(neg_maps)         # [2, Bn]
    pos_true = jnp.sum(sd_p[0]) / (jnp.sum(mu_p[0]) + eps)
    neg_true = jnp.sum(sd_n[1]) / (jnp.sum(mu_n[1]) + eps)
    pos_opp = jnp.sum(mu_p[1]) / (jnp.sum(sd_p[1]) + eps)
    neg_opp = jnp.sum(mu_n[0]) / (jnp.sum(sd_n[0]) + eps)
    return pos_true, neg_true, pos_opp, neg_opp


def reciprocative_loss(score_fn, pos_patches, neg_patches):
    """The regulariser of DAT for positive / negative patch batches (differentiable)."""
    pos = attention_maps(score_fn, pos_patches, classes=(1, 0))
    neg = attention_maps(score_fn, neg_patches, classes=(1, 0))
    return sum(reciprocative_terms(pos, neg))
