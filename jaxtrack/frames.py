"""Frames of any size into a few compiled shapes: shape buckets, padding, per-sequence keys.

Frames of different sizes would recompile ``init`` and ``track_step`` for every new size.
Each frame is padded into a *shape bucket* instead: height and width are rounded up to the
next value of :data:`BUCKET_LADDER` (steps of at most 1.5x), and the true size travels with
the pixels in a :class:`~jaxtrack.core.Frame`. Trackers treat pixels beyond the true size as
outside the image, so padding never changes a result, and a whole dataset compiles at most
``len(BUCKET_LADDER)**2`` times, in practice a handful.
"""
from __future__ import annotations

import zlib

import jax
import numpy as np

from jaxtrack.core import Frame
from jaxtrack.errors import FrameError

BUCKET_LADDER = (128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192)


def bucket_dim(n: int, where: str = "frame") -> int:
    for b in BUCKET_LADDER:
        if n <= b:
            return b
    raise FrameError(f"{where}: frame dimension {n} exceeds the largest bucket {BUCKET_LADDER[-1]} px")


def bucket_shape(h: int, w: int, where: str = "frame") -> tuple[int, int]:
    return bucket_dim(h, where), bucket_dim(w, where)


def check_image(image, where: str = "frame") -> np.ndarray:
    """A frame must be [H, W, 3] of pixel values 0-255: uint8, or float in that range (a float
    frame whose values all lie in [0, 1] is refused: it would track as a near-black image);
    grayscale [H, W] or [H, W, 1] becomes RGB, an alpha channel is dropped."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        _check_range(image, where)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise FrameError(f"{where}: expected an image [H, W, 3], got shape {image.shape}")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    if image.shape[-1] != 3:
        raise FrameError(f"{where}: expected 3 colour channels, got {image.shape[-1]}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise FrameError(f"{where}: empty image of shape {image.shape}")
    return image


def _check_range(image: np.ndarray, where: str) -> None:
    if not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)):
        raise FrameError(f"{where}: pixels of type {image.dtype}; expected uint8 or float 0-255")
    if image.size == 0:
        return
    lo, hi = float(np.min(image)), float(np.max(image))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise FrameError(f"{where}: the image holds non-finite values")
    if lo < 0 or hi > 255:
        raise FrameError(f"{where}: pixel values span [{lo:g}, {hi:g}]; expected 0-255")
    if 0 < hi <= 1.0:
        raise FrameError(f"{where}: a {image.dtype} image with values in [0, 1]; trackers expect "
                         "0-255 (multiply by 255, or pass uint8)")


def check_box(box, image) -> np.ndarray:
    """A first box ``x, y, w, h`` checked against its image (finite, positive size, overlapping
    the image), as float32: the eager check before a jitted ``init``."""
    from jaxtrack.boxes import validate_box
    return np.asarray(validate_box(box, np.shape(image)[:2], where="first box"), np.float32)


def pad_frame(image, where: str = "frame") -> Frame:
    """Pad an [H, W, 3] image (numpy) into its bucket; returns a host-side Frame."""
    image = check_image(image, where)
    h, w = image.shape[:2]
    hb, wb = bucket_shape(h, w, where)
    padded = np.zeros((hb, wb, 3), image.dtype)
    padded[:h, :w] = image
    return Frame(padded, np.array([h, w], np.int32))


def sequence_key(seed: int, name: str):
    """The per-sequence PRNG key: ``fold_in(PRNGKey(seed), crc32(name))`` (recorded via seed)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), zlib.crc32(name.encode()) & 0x7FFFFFFF)
