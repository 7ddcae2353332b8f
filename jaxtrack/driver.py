"""Run a tracker over one sequence: ``init`` and ``track_step`` jitted once per frame
bucket (:mod:`jaxtrack.frames`), frames decoded one ahead, each frame timed."""
from __future__ import annotations

import concurrent.futures
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxtrack import boxes
from jaxtrack.core import Tracker
from jaxtrack.frames import pad_frame, sequence_key


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
                box = boxes.validate_box(seq.gt[0], image.shape[:2], where=f"{seq.name}: first box")
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
