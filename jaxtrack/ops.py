"""Image and response-map operations shared by every tracker (pure jax.numpy, jittable).

Coordinates follow :mod:`jaxtrack.boxes`: continuous 0-based pixel coordinates,
pixel ``(i, j)`` covering ``[j, j+1) x [i, i+1)``. Images are ``[H, W, C]``
(channels last); a padded :class:`jaxtrack.core.Frame` carries its true size and
pixels beyond it count as outside the image.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np


# ----------------------------------------------------------------- patch sampling

def valid_mean_color(image, size):
    """Mean colour over the valid ``size = (h, w)`` top-left part of a padded image."""
    h, w = image.shape[:2]
    mask = (jnp.arange(h)[:, None] < size[0]) & (jnp.arange(w)[None, :] < size[1])
    image = image.astype(jnp.float32)
    total = jnp.sum(image * mask[..., None], axis=(0, 1))
    return total / jnp.maximum(jnp.sum(mask), 1).astype(jnp.float32)


def _axis_weights(coords, limit):
    """Bilinear taps along one axis: indices (2, n) and weights (2, n), zero weight outside."""
    u = coords - 0.5                      # continuous -> pixel-centre coordinates
    i0 = jnp.floor(u)
    frac = u - i0
    idx = jnp.stack([i0, i0 + 1]).astype(jnp.int32)
    wts = jnp.stack([1.0 - frac, frac])
    inside = (idx >= 0) & (idx < limit)
    return idx, wts * inside


def crop_patch(image, size, center, side, out_size: int, fill, supersample: int = 1):
    """Sample a patch of ``side`` image pixels around ``center`` onto an ``out_size`` grid.

    This is the SiamFC / pytracking patch sampler: the patch is axis-aligned, centred
    on ``center = (cx, cy)``, ``side`` is a scalar (square) or ``(w, h)``; it is
    resampled bilinearly (output pixel centres map exactly, no rounding of the crop
    window), and everything outside the image takes the colour ``fill`` (usually the
    frame's mean colour), as if the image were padded with it. ``supersample = k``
    averages ``k x k`` bilinear taps per output pixel, an anti-aliasing filter for
    strong downscaling (pytracking pools before resizing for the same reason).

    image: [H, W, C] (may be a padded frame), size: (h, w) true size, returns
    float32 [out_size, out_size, C].
    """
    side = jnp.broadcast_to(jnp.asarray(side, jnp.float32), (2,))
    center = jnp.asarray(center, jnp.float32)
    k = supersample
    # sub-sample offsets inside one output pixel, in output-pixel units
    sub = (jnp.arange(k, dtype=jnp.float32) + 0.5) / k
    grid = (jnp.arange(out_size, dtype=jnp.float32)[:, None] + sub[None, :]).reshape(-1)
    xs = center[0] - side[0] / 2 + grid * side[0] / out_size
    ys = center[1] - side[1] / 2 + grid * side[1] / out_size
    xi, xw = _axis_weights(xs, size[1])
    yi, yw = _axis_weights(ys, size[0])
    hb, wb = image.shape[:2]
    img = image.astype(jnp.float32) - fill          # fill becomes 0: "padding" by masking
    rows = jnp.take(img, jnp.clip(yi, 0, hb - 1), axis=0)          # (2, n, W, C)
    rows = jnp.einsum("an,anwc->nwc", yw, rows)
    cols = jnp.take(rows, jnp.clip(xi, 0, wb - 1), axis=1)         # (n, 2, m, C)
    patch = jnp.einsum("am,namc->nmc", xw, cols)
    if k > 1:
        c = patch.shape[-1]
        patch = patch.reshape(out_size, k, out_size, k, c).mean(axis=(1, 3))
    return patch + fill


def crop_pyramid(image, size, center, side, scales, out_size: int, fill, supersample: int = 1):
    """``crop_patch`` at ``side * s`` for each ``s`` in ``scales``: [S, out, out, C]."""
    return jax.vmap(lambda s: crop_patch(image, size, center, side * s, out_size, fill, supersample))(
        jnp.asarray(scales, jnp.float32))


def f32_quotient(num, den):
    """``num / den`` rounded to the nearest float32 (ties to even), exactly, from int32
    ``num`` and ``den > 0`` (|num| / den < 2^24).

    XLA:CPU's float32 division is not correctly rounded (often one ulp off), and OpenCV's
    resize positions are double values cast to float: its fixed-point weights flip on that
    ulp. So the quotient is found by integer long division: 24 significant bits, then the
    guard bit and the remainder decide the rounding.
    """
    num, den = jnp.asarray(num, jnp.int32), jnp.asarray(den, jnp.int32)
    neg = num < 0
    a = jnp.abs(num)
    q = a // den
    r = a - q * den
    nbits = 32 - lax.clz(q)                                      # significant bits so far

    def body(_, carry):
        m, nbits, fbits, r = carry
        more = nbits < 24
        r2 = 2 * r
        b = (r2 >= den).astype(jnp.int32)
        m = jnp.where(more, 2 * m + b, m)
        r = jnp.where(more, r2 - b * den, r)
        fbits = fbits + more.astype(jnp.int32)
        nbits = nbits + (more & ((nbits > 0) | (b > 0))).astype(jnp.int32)
        return m, nbits, fbits, r

    m, _, fbits, r = lax.fori_loop(0, 48, body, (q, nbits, jnp.zeros_like(q), r))
    r2 = 2 * r
    guard = r2 >= den
    sticky = (r2 - guard.astype(jnp.int32) * den) > 0
    m = m + (guard & (sticky | (m % 2 == 1))).astype(jnp.int32)
    v = jnp.ldexp(m.astype(jnp.float32), -fbits)
    return jnp.where(neg, -v, v)


def cv2_linear_taps(n_in, n_out, out_index, clamp_weights: bool):
    """``cv2.resize(INTER_LINEAR)``'s taps for output samples ``out_index`` of an
    ``n_in -> n_out`` resize of 8-bit images (either size may be traced): (i0, i1, w0, w1),
    indices into ``[0, n_in)`` and weights in units of 1/2048, each shaped as ``out_index``.

    The source position ``(d + 0.5) n_in / n_out - 0.5`` is rounded to float32 (OpenCV's
    ``(float)`` of a double, :func:`f32_quotient`) and split into ``floor`` and a fraction
    ``f``; the weights are ``round(2048 (1 - f))`` and ``round(2048 f)``. Beyond the ends the
    indices repeat the edge sample; along x (``clamp_weights``) OpenCV also sets ``f = 0``
    there, along y it keeps the fraction (its ``resizeGeneric`` tables).
    """
    n_in = jnp.maximum(jnp.asarray(n_in, jnp.int32), 1)
    n_out = jnp.asarray(n_out, jnp.int32)
    fx = f32_quotient((2 * jnp.asarray(out_index, jnp.int32) + 1) * n_in - n_out, 2 * n_out)
    sx = jnp.floor(fx)
    fx = fx - sx
    last = (n_in - 1).astype(jnp.float32)
    if clamp_weights:
        fx = jnp.where((sx < 0) | (sx >= last), 0.0, fx)
    w0 = jnp.round((1.0 - fx) * 2048.0).astype(jnp.int32)      # round half to even, as cvRound
    w1 = jnp.round(fx * 2048.0).astype(jnp.int32)
    i0 = jnp.clip(sx, 0, last).astype(jnp.int32)
    i1 = jnp.clip(sx + 1, 0, last).astype(jnp.int32)
    return i0, i1, w0, w1


def cv2_vertical(s0, s1, b0, b1):
    """OpenCV's vertical pass for uint8 (``VResizeLinearVec_32s8u``): the 16-bit high
    products of the horizontal sums ``s`` (weights in 1/2048) with ``b``, then ``(v + 2) >> 2``."""
    v = (((s0 >> 4) * b0) >> 16) + (((s1 >> 4) * b1) >> 16)
    return jnp.clip((v + 2) >> 2, 0, 255)


def cv2_resize_window(image, valid_hw, origin_xy, n_src, n_dst, count: int, fill):
    """``cv2.resize(window, (n_dst, n_dst), INTER_LINEAR)`` of the ``n_src`` square window at
    ``origin_xy`` (x, y) of ``image`` [H, W, C] int32, pixels outside ``valid_hw`` (h, w)
    taking ``fill`` (int32, per channel): the first ``count`` rows and columns of the result
    (``count`` static; both sizes may be traced), int32, bit for bit OpenCV's fixed-point path."""
    d = jnp.arange(count, dtype=jnp.int32)
    xi0, xi1, a0, a1 = cv2_linear_taps(n_src, n_dst, d, clamp_weights=True)
    yi0, yi1, b0, b1 = cv2_linear_taps(n_src, n_dst, d, clamp_weights=False)
    hb, wb = image.shape[:2]

    def pixels(yi, xi):
        ys, xs = origin_xy[1] + yi, origin_xy[0] + xi
        rows = jnp.take(image, jnp.clip(ys, 0, hb - 1), axis=0)
        vals = jnp.take(rows, jnp.clip(xs, 0, wb - 1), axis=1)
        inside = (((ys >= 0) & (ys < valid_hw[0]))[:, None]
                  & ((xs >= 0) & (xs < valid_hw[1]))[None, :])
        return jnp.where(inside[..., None], vals, fill)

    def horizontal(yi):
        return pixels(yi, xi0) * a0[None, :, None] + pixels(yi, xi1) * a1[None, :, None]

    return cv2_vertical(horizontal(yi0), horizontal(yi1), b0[:, None, None], b1[:, None, None])


def crop_patch_rounded(image, size, center, side, out_size: int, fill):
    """siamfc-pytorch's ``ops.crop_and_resize`` with jaxtrack arguments: the crop window is
    rounded to whole pixels and resized as OpenCV resizes 8-bit images.

    The side is rounded (``round(side)``, half to even), the top-left corner is
    ``round(c - (side - 1) / 2)`` in pixel-index coordinates (``c = center - 0.5``), pixels
    outside the image take ``round(fill)`` (``cv2.copyMakeBorder`` of a uint8 image), and the
    ``side x side`` window is resized to ``out_size`` by :func:`cv2_resize_window`, so the
    patch holds the integers OpenCV returns (bit-exact against opencv-python 5.1 on x86).
    Compare :func:`crop_patch`: continuous, bilinear at the exact position, float.

    image: [H, W, C] uint8 or integer-valued (may be a padded frame), size: (h, w) true
    size, center: (cx, cy) continuous, side: scalar. Returns float32 [out_size, out_size, C].
    """
    side = jnp.round(jnp.asarray(side, jnp.float32))
    c = jnp.asarray(center, jnp.float32) - 0.5
    corner = jnp.round(c - (side - 1.0) / 2.0).astype(jnp.int32)  # (left, top)
    img = jnp.round(image.astype(jnp.float32)).astype(jnp.int32)
    fill = jnp.clip(jnp.round(jnp.asarray(fill, jnp.float32)), 0, 255).astype(jnp.int32)
    out = cv2_resize_window(img, size, corner, side.astype(jnp.int32), out_size, out_size, fill)
    return out.astype(jnp.float32)


def scale_factors(num_scales: int, step: float) -> np.ndarray:
    """Search-scale pyramid ``step ** [-(n//2) .. n//2]`` as SiamFC uses (static numpy)."""
    return step ** np.linspace(-(num_scales // 2), num_scales // 2, num_scales)


# --------------------------------------------------------------- correlation / maps

def xcorr(z, x):
    """Batched cross-correlation (SiamFC's head, no flipping), VALID.

    z: [B, hz, wz, C] templates, x: [B, hx, wx, C] search features (B may be 1 on
    either side and is broadcast). Returns [B, hx-hz+1, wx-wz+1].

    One GEMM, then a sum of shifted diagonals: ``p[i, j, b, y, x] = <x[b, y, x], z[b, i, j]>``
    over channels, and ``out[b, r, s] = sum_ij p[i, j, b, r+i, s+j]``. The channel
    contraction, the only costly part, is a plain matrix product (fast on every
    backend); the shifted sums touch hz*wz*B*hx*wx numbers. A per-sample convolution
    would become a grouped convolution under ``vmap``, which XLA:CPU runs much slower
    (docs/trackers/siamfc.md, ``experiments/bench_xcorr.py``). The sum over template rows
    is a ``lax.scan``, which keeps the program (and its compile time) small for
    second-order differentiation.
    """
    b = max(z.shape[0], x.shape[0])
    hz, wz = z.shape[1:3]
    ho, wo = x.shape[1] - hz + 1, x.shape[2] - wz + 1
    z = jnp.broadcast_to(z, (b,) + z.shape[1:])
    x = jnp.broadcast_to(x, (b,) + x.shape[1:])
    p = jnp.einsum("byxc,bijc->ijbyx", x, z)                      # [hz, wz, B, hx, wx]

    def row(acc, i):
        pi = lax.dynamic_index_in_dim(p, i, 0, keepdims=False)     # [wz, B, hx, wx]
        pi = lax.dynamic_slice_in_dim(pi, i, ho, axis=2)           # rows i .. i+ho
        return acc + sum(pi[j, :, :, j:j + wo] for j in range(wz)), None

    out, _ = lax.scan(row, jnp.zeros((b, ho, wo), p.dtype), jnp.arange(hz))
    return out


def hann_window(n: int, normalize: bool = True) -> np.ndarray:
    """2-D cosine (Hann) window ``outer(hanning(n), hanning(n))``; sums to 1 if normalised."""
    w = np.outer(np.hanning(n), np.hanning(n))
    return (w / w.sum() if normalize else w).astype(np.float32)


def gaussian_label(shape, sigma, center=None):
    """Gaussian map exp(-d^2 / 2 sigma^2) on a ``shape = (h, w)`` grid.

    ``center`` = (cx, cy) in grid coordinates (index units); default the grid centre
    ``((w-1)/2, (h-1)/2)``. ``sigma`` is a scalar or (sx, sy).
    """
    h, w = shape
    if center is None:
        center = ((w - 1) / 2.0, (h - 1) / 2.0)
    sx, sy = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), (2,))
    x = jnp.arange(w, dtype=jnp.float32)[None, :] - center[0]
    y = jnp.arange(h, dtype=jnp.float32)[:, None] - center[1]
    return jnp.exp(-0.5 * ((x / sx) ** 2 + (y / sy) ** 2))


def logistic_label(shape, radius_pos: float, radius_neg: float = 0.0) -> np.ndarray:
    """SiamFC's training labels: 1 within city-block distance ``radius_pos`` of the centre,
    0.5 up to ``radius_neg`` (ignored by the balanced loss), 0 beyond. Radii in map cells."""
    h, w = shape
    x = np.arange(w) - (w - 1) / 2
    y = np.arange(h) - (h - 1) / 2
    dist = np.abs(x)[None, :] + np.abs(y)[:, None]
    return np.where(dist <= radius_pos, 1.0, np.where(dist < radius_neg, 0.5, 0.0)).astype(np.float32)


def balanced_logistic_loss(logits, labels, neg_weight: float = 1.0):
    """SiamFC's balanced BCE: positives and negatives each weighted to sum to 1/2-ish.

    Cells labelled 1 share weight ``1/num_pos``, cells labelled 0 ``neg_weight/num_neg``,
    others (0.5) are ignored; the weighted sum is divided by the total weight, per map,
    then averaged over the batch (siamfc-pytorch's BalancedLoss).
    """
    pos = (labels == 1).astype(jnp.float32)
    neg = (labels == 0).astype(jnp.float32)
    axes = tuple(range(1, logits.ndim))
    wpos = pos / jnp.maximum(pos.sum(axes, keepdims=True), 1.0)
    wneg = neg_weight * neg / jnp.maximum(neg.sum(axes, keepdims=True), 1.0)
    weight = wpos + wneg
    bce = jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    return jnp.mean(jnp.sum(weight * bce, axes) / jnp.sum(weight, axes))


@functools.lru_cache(maxsize=64)
def cubic_resize_matrix(n_in: int, n_out: int, a: float = -0.75, align_corners: bool = False) -> np.ndarray:
    """[n_out, n_in] float32: resampling a length-``n_in`` signal to ``n_out`` samples with
    Keys' cubic kernel (``a = -0.75``), edge samples repeated: OpenCV's ``INTER_CUBIC``
    (half-pixel centres), or with ``align_corners`` PyTorch's ``bicubic, align_corners=True``
    (the end samples map onto each other)."""
    if align_corners:
        src = np.arange(n_out) * ((n_in - 1) / max(n_out - 1, 1))
    else:
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    i0 = np.floor(src).astype(int)
    t = src - i0
    m = np.zeros((n_out, n_in))
    for k in range(-1, 3):
        x = np.abs(t - k)
        w = np.where(x <= 1, (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1,
                     np.where(x < 2, a * (x ** 3 - 5 * x ** 2 + 8 * x - 4), 0.0))
        np.add.at(m, (np.arange(n_out), np.clip(i0 + k, 0, n_in - 1)), w)
    return m.astype(np.float32)


def resize_bicubic(maps, out_hw, align_corners: bool = False):
    """Bicubic resize of [..., h, w] maps exactly as ``cv2.resize(..., INTER_CUBIC)`` (the
    official SiamFC and GradNet), or PyTorch's ``align_corners=True`` bicubic (the official
    TADT): two small matmuls."""
    h, w = maps.shape[-2:]
    mh = jnp.asarray(cubic_resize_matrix(h, int(out_hw[0]), align_corners=align_corners))
    mw = jnp.asarray(cubic_resize_matrix(w, int(out_hw[1]), align_corners=align_corners))
    return jnp.einsum("ai,...ij,bj->...ab", mh, maps, mw)
