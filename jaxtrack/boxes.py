"""Box convention and geometry, shared by every tracker, reader and metric.

The one convention inside jaxtrack
----------------------------------
A box is ``xywh = (x, y, w, h)`` in **0-based continuous pixel coordinates**:
pixel ``(row i, col j)`` covers the unit square ``[j, j+1) x [i, i+1)``, so the
image spans ``[0, W) x [0, H)`` and the centre of pixel ``(0, 0)`` is ``(0.5, 0.5)``.
``(x, y)`` is the top-left corner, ``(w, h)`` the size. Trackers may use
``cxcywh = (cx, cy, w, h)`` internally; ``xyxy = (x1, y1, x2, y2)`` is the corner form.

Benchmark files use 1-based pixel indices (OTB, VOT, LaSOT, UAV123: MATLAB
heritage) or 0-based ones (GOT-10k, TrackingNet). ``from_dataset`` and
``to_dataset`` convert with ``index_base`` (1 or 0); results are written back in
the dataset's own convention, as pytracking and got10k expect. Metrics
(``iou``, ``center_error``) are invariant to that shift, and follow the got10k
toolkit's definitions exactly.

All functions accept ``(..., 4)`` arrays and work for both numpy and jax.numpy
inputs (the array module is picked from the input).
"""
from __future__ import annotations

import numpy as np

from jaxtrack.errors import BoxError


def _xp(a):
    """numpy for numpy/list input, jax.numpy for jax arrays and tracers."""
    if isinstance(a, (np.ndarray, list, tuple, float, int)):
        return np
    import jax.numpy as jnp
    return jnp


def xywh_to_cxcywh(b):
    xp = _xp(b)
    b = xp.asarray(b)
    return xp.concatenate([b[..., :2] + b[..., 2:] / 2, b[..., 2:]], axis=-1)


def cxcywh_to_xywh(b):
    xp = _xp(b)
    b = xp.asarray(b)
    return xp.concatenate([b[..., :2] - b[..., 2:] / 2, b[..., 2:]], axis=-1)


def xywh_to_xyxy(b):
    xp = _xp(b)
    b = xp.asarray(b)
    return xp.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def xyxy_to_xywh(b):
    xp = _xp(b)
    b = xp.asarray(b)
    return xp.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1)


def from_dataset(b, index_base: int = 1):
    """Dataset ``x,y,w,h`` (pixel indices starting at ``index_base``) -> jaxtrack xywh."""
    b = np.asarray(b, dtype=np.float64).copy()
    b[..., :2] -= index_base
    return b


def to_dataset(b, index_base: int = 1):
    """jaxtrack xywh -> dataset ``x,y,w,h`` with pixel indices starting at ``index_base``."""
    b = np.asarray(b, dtype=np.float64).copy()
    b[..., :2] += index_base
    return b


def polygon_to_xywh(poly):
    """VOT 8-value rotated polygons ``(x1,y1,...,x4,y4)`` -> axis-aligned xywh.

    Uses the area-preserving rule of the VOT toolkit and pysot (``get_axis_aligned_bbox``):
    the box keeps the polygon's centre and the bounding rectangle is shrunk so that its
    area equals the polygon's area. Applies to ``(..., 8)``; ``(..., 4)`` input passes through.
    """
    p = np.asarray(poly, dtype=np.float64)
    if p.shape[-1] == 4:
        return p
    if p.shape[-1] != 8:
        raise BoxError(f"a polygon needs 8 values, got {p.shape[-1]}")
    xs, ys = p[..., 0::2], p[..., 1::2]
    cx, cy = xs.mean(-1), ys.mean(-1)
    x1, x2 = xs.min(-1), xs.max(-1)
    y1, y2 = ys.min(-1), ys.max(-1)
    # polygon area by the parallelogram of two adjacent edges, as the VOT toolkit does
    a1 = np.linalg.norm(p[..., 0:2] - p[..., 2:4], axis=-1) * np.linalg.norm(p[..., 2:4] - p[..., 4:6], axis=-1)
    a2 = (x2 - x1) * (y2 - y1)
    s = np.sqrt(np.divide(a1, a2, out=np.ones_like(a1), where=a2 > 0))
    w = s * (x2 - x1) + 1
    h = s * (y2 - y1) + 1
    return np.stack([cx - w / 2, cy - h / 2, w, h], axis=-1)


def iou(a, b):
    """Intersection over union of xywh boxes, as got10k's ``rect_iou`` (clipped to [0, 1])."""
    xp = _xp(a) if _xp(b) is np else _xp(b)
    a, b = xp.asarray(a), xp.asarray(b)
    x1 = xp.maximum(a[..., 0], b[..., 0])
    y1 = xp.maximum(a[..., 1], b[..., 1])
    x2 = xp.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    y2 = xp.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    inter = xp.maximum(x2 - x1, 0) * xp.maximum(y2 - y1, 0)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return xp.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


def center_error(a, b):
    """Euclidean distance between box centres (pixels), as got10k's ``center_error``."""
    xp = _xp(a) if _xp(b) is np else _xp(b)
    a, b = xp.asarray(a), xp.asarray(b)
    ca = a[..., :2] + (a[..., 2:] - 1) / 2
    cb = b[..., :2] + (b[..., 2:] - 1) / 2
    return xp.sqrt(xp.sum((ca - cb) ** 2, axis=-1))


def normalized_center_error(a, b):
    """Centre error divided by the ground-truth size ``b`` (LaSOT's normalised precision)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ca = a[..., :2] + (a[..., 2:] - 1) / 2
    cb = b[..., :2] + (b[..., 2:] - 1) / 2
    return np.sqrt(np.sum(((ca - cb) / np.maximum(1.0, b[..., 2:])) ** 2, axis=-1))


def validate_box(box, image_hw=None, where: str = "box"):
    """Raise :class:`~jaxtrack.errors.BoxError` naming ``where`` if a box is not finite, empty, or
    outside the image; returns it as float64."""
    b = np.asarray(box, dtype=np.float64)
    if b.shape != (4,):
        raise BoxError(f"{where}: a box needs 4 values x,y,w,h, got shape {b.shape}")
    if not np.all(np.isfinite(b)):
        raise BoxError(f"{where}: box {b.tolist()} has a non-finite value")
    if b[2] <= 0 or b[3] <= 0:
        raise BoxError(f"{where}: box {b.tolist()} has zero or negative size")
    if image_hw is not None:
        h, w = image_hw
        if b[0] >= w or b[1] >= h or b[0] + b[2] <= 0 or b[1] + b[3] <= 0:
            raise BoxError(f"{where}: box {b.tolist()} lies outside the {w}x{h} image")
    return b
