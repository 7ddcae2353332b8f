"""The thin driver: run a tracker over a sequence, with bounded compilation.

Frames of different sizes would recompile ``init`` and ``track_step`` for every new
size. The driver pads each frame into a *shape bucket* instead: height and width are
rounded up to the next value of :data:`BUCKET_LADDER` (steps of at most 1.5x), and the
true size travels with the pixels in a :class:`~jaxtrack.core.Frame`. Trackers treat
pixels beyond the true size as outside the image, so padding never changes a result,
and a whole dataset compiles at most ``len(BUCKET_LADDER)**2`` times, in practice a
handful (see ``JitTracker.num_compilations``).
"""
from __future__ import annotations

import concurrent.futures
import time
import zlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxtrack import boxes as bx
from jaxtrack.core import Frame, Tracker

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


class JitTracker:
    """A tracker's ``init`` and ``track_step`` under ``jax.jit``, with a compilation count.

    ``track_step`` donates its state argument so XLA can update buffers in place.
    """

    def __init__(self, tracker: Tracker):
        self.tracker = tracker
        self.params = tracker.params
        self.init = jax.jit(tracker.init)
        self.step = jax.jit(tracker.track_step, donate_argnums=(1,))

    @property
    def num_compilations(self) -> int:
        return self.init._cache_size() + self.step._cache_size()


class SequenceResult(NamedTuple):
    boxes: np.ndarray    # (N, 4) xywh, jaxtrack convention; row 0 is the init box
    scores: np.ndarray   # (N,)
    times: np.ndarray    # (N,) seconds per frame (init for frame 0)


def run_sequence(jt: JitTracker, seq, seed: int = 0, prefetch: bool = True) -> SequenceResult:
    """Track ``seq`` (a :class:`jaxtrack.data.Sequence`) from its first ground-truth box.

    Frames are decoded one ahead in a thread so I/O overlaps compute; the time of a
    frame runs from its decoded image to its box on the host (padding, transfer and
    the step included), as got10k times ``tracker.update``.
    """
    n = len(seq)
    out_boxes = np.zeros((n, 4), np.float64)
    scores = np.zeros(n, np.float64)
    times = np.zeros(n, np.float64)
    key = sequence_key(seed, seq.name)
    pool = concurrent.futures.ThreadPoolExecutor(1) if prefetch else None
    load = (lambda i: pool.submit(seq.frame, i)) if pool else (lambda i: _Done(seq.frame(i)))
    try:
        nxt = load(0)
        state = None
        for i in range(n):
            image = nxt.result()
            if i + 1 < n:
                nxt = load(i + 1)
            t0 = time.perf_counter()
            frame = pad_frame(image, where=f"{seq.name} frame {i}")
            if i == 0:
                box = bx.validate_box(seq.gt[0], image.shape[:2], where=f"{seq.name}: first box")
                state = jt.init(jt.params, frame, jnp.asarray(box, jnp.float32), key)
                jax.block_until_ready(state)
                out_boxes[0], scores[0] = box, 1.0
            else:
                state, out = jt.step(jt.params, state, frame)
                out_boxes[i] = np.asarray(out.box)
                scores[i] = float(out.score)
            times[i] = time.perf_counter() - t0
    finally:
        if pool:
            pool.shutdown(wait=False, cancel_futures=True)
    return SequenceResult(out_boxes, scores, times)


class _Done:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value
