"""Slower formulations of :func:`jaxtrack.ops.xcorr`, kept as references: the tests check
``ops.xcorr`` against them and ``experiments/bench_xcorr.py`` times them side by side.

* :func:`xcorr_cells`: one einsum per template cell over the shifted search window;
* :func:`xcorr_rows`: a scan over template rows, one einsum over stacked column shifts;
* :func:`xcorr_grouped_conv`: the per-sample correlation as one grouped convolution.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def xcorr_cells(z, x):
    """z [B, hz, wz, C] against x [B, H, W, C] -> [B, H-hz+1, W-wz+1]."""
    hz, wz = z.shape[1:3]
    ho, wo = x.shape[1] - hz + 1, x.shape[2] - wz + 1
    out = 0.0
    for i in range(hz):
        for j in range(wz):
            out = out + jnp.einsum("brsc,bc->brs", x[:, i:i + ho, j:j + wo], z[:, i, j])
    return out


def xcorr_rows(z, x):
    """A scan over template rows, each one einsum over the stacked column shifts
    (GradNet's previous correlation)."""
    b = max(z.shape[0], x.shape[0])
    z = jnp.broadcast_to(z, (b,) + z.shape[1:])
    x = jnp.broadcast_to(x, (b,) + x.shape[1:])
    hz, wz = z.shape[1:3]
    ho, wo = x.shape[1] - hz + 1, x.shape[2] - wz + 1

    def row(acc, i):
        xr = lax.dynamic_slice_in_dim(x, i, ho, axis=1)
        zr = lax.dynamic_index_in_dim(z, i, axis=1, keepdims=False)
        shifts = jnp.stack([xr[:, :, j:j + wo] for j in range(wz)], axis=3)
        return acc + jnp.einsum("brsjc,bjc->brs", shifts, zr), None

    out, _ = lax.scan(row, jnp.zeros((b, ho, wo), jnp.result_type(z, x)), jnp.arange(hz))
    return out


def xcorr_grouped_conv(z, x):
    b = max(z.shape[0], x.shape[0])
    z = jnp.broadcast_to(z, (b,) + z.shape[1:])
    x = jnp.broadcast_to(x, (b,) + x.shape[1:])
    c = x.shape[-1]
    lhs = jnp.transpose(x, (1, 2, 0, 3)).reshape((1,) + x.shape[1:3] + (b * c,))  # [1, H, W, B*C]
    rhs = jnp.transpose(z, (1, 2, 3, 0))                                          # [hz, wz, C, B]
    out = lax.conv_general_dilated(lhs, rhs, (1, 1), "VALID", feature_group_count=b,
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.moveaxis(out[0], -1, 0)
