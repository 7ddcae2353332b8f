"""Precise RoI Pooling (Jiang et al., ECCV 2018, "IoU-Net") in closed form.

The feature map is the bilinear interpolant of its values on the integer grid (cell
``(i, j)`` at the point ``(x=j, y=i)``; 0 outside the map); each output bin is the exact
integral over the bin divided by its area (an empty bin pools to 0). Boxes map to feature
coordinates by ``spatial_scale`` with no half-pixel shift, as the reference CUDA kernel.
The integral splits per axis into two small matmuls, ``Wy @ F @ Wx^T``, differentiable in
the features and the box coordinates. Design notes: docs/trackers/atom.md.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def hat_integral(t):
    """Antiderivative of ``max(0, 1 - |t|)`` that is 0 at -inf and 1 at +inf."""
    t = jnp.clip(t, -1.0, 1.0)
    return jnp.where(t <= 0, 0.5 * (t + 1.0) ** 2, 1.0 - 0.5 * (1.0 - t) ** 2)


def bin_weights(start, end, num_bins: int, size: int):
    """Closed-form 1-D weights ``[num_bins, size]``: the integral of each grid point's
    hat function over each of ``num_bins`` equal bins splitting ``[start, end]``.

    Grid points are ``0 .. size-1``; beyond them the map is 0, which is why only those
    points get weights. Rows are integrals, not averages (divide by the bin length).
    """
    dtype = jnp.result_type(start, end, jnp.float32)
    edges = start + (end - start) * jnp.arange(num_bins + 1, dtype=dtype) / num_bins
    grid = jnp.arange(size, dtype=dtype)
    cum = hat_integral(edges[:, None] - grid[None, :])          # [num_bins + 1, size]
    return cum[1:] - cum[:-1]


def prroi_pool(features, boxes, out_size, spatial_scale: float):
    """Pool ``boxes`` from one feature map.

    Args:
      features: ``[H, W, C]`` (channels last).
      boxes: ``[N, 4]`` as ``(x1, y1, x2, y2)`` in image coordinates.
      out_size: ``(out_h, out_w)`` or an int.
      spatial_scale: image → feature coordinates (1/stride).

    Returns ``[N, out_h, out_w, C]``.
    """
    oh, ow = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
    h, w = features.shape[:2]
    boxes = jnp.asarray(boxes, jnp.result_type(boxes, jnp.float32)) * spatial_scale

    def one(box):
        x1, y1, x2, y2 = box[0], box[1], box[2], box[3]
        wy = bin_weights(y1, y2, oh, h)
        wx = bin_weights(x1, x2, ow, w)
        area = (y2 - y1) / oh * (x2 - x1) / ow
        ok = (x2 > x1) & (y2 > y1)      # the kernel clamps each side at 0: inverted boxes pool 0
        pooled = jnp.einsum("ph,hwc,qw->pqc", wy, features, wx)
        return jnp.where(ok, pooled / jnp.where(ok, area, 1.0), 0.0)

    return jax.vmap(one)(boxes)


def prroi_pool_batch(features, boxes, out_size, spatial_scale: float):
    """``prroi_pool`` per image: features ``[B, H, W, C]``, boxes ``[B, N, 4]`` xyxy →
    ``[B, N, out_h, out_w, C]``."""
    return jax.vmap(lambda f, b: prroi_pool(f, b, out_size, spatial_scale))(features, boxes)
