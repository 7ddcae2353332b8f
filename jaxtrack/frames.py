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

BUCKET_LADDER = (128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192)


def bucket_dim(n: int) -> int:
    for b in BUCKET_LADDER:
        if n <= b:
            return b
    raise ValueError(f"frame dimension {n} exceeds the largest bucket {BUCKET_LADDER[-1]}")


def bucket_shape(h: int, w: int) -> tuple[int, int]:
    return bucket_dim(h), bucket_dim(w)


def check_image(image, where: str = "frame") -> np.ndarray:
    """A frame must be uint8-like [H, W, 3]; grayscale [H, W] or [H, W, 1] becomes RGB."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"{where}: expected an image [H, W, 3], got shape {image.shape}")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    if image.shape[-1] != 3:
        raise ValueError(f"{where}: expected 3 colour channels, got {image.shape[-1]}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{where}: empty image of shape {image.shape}")
    return image


def pad_frame(image, where: str = "frame") -> Frame:
    """Pad an [H, W, 3] image (numpy) into its bucket; returns a host-side Frame."""
    image = check_image(image, where)
    h, w = image.shape[:2]
    hb, wb = bucket_shape(h, w)
    padded = np.zeros((hb, wb, 3), image.dtype)
    padded[:h, :w] = image
    return Frame(padded, np.array([h, w], np.int32))


def sequence_key(seed: int, name: str):
    """The per-sequence PRNG key: ``fold_in(PRNGKey(seed), crc32(name))`` (recorded via seed)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), zlib.crc32(name.encode()) & 0x7FFFFFFF)
