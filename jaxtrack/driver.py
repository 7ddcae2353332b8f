"""Run a tracker over one sequence: ``init`` and ``track_step`` jitted once per frame
bucket (:mod:`jaxtrack.frames`), frames decoded one ahead, each frame timed."""
from __future__ import annotations

import concurrent.futures
import time
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxtrack import boxes, xla_options
from jaxtrack.core import Tracker
from jaxtrack.frames import pad_frame, sequence_key


class JitTracker:
    """A tracker's ``init`` and ``track_step`` under ``jax.jit``, with a compilation count.

    ``track_step`` donates its state argument so XLA can update buffers in place; both are
    compiled with the tracker's ``compiler_options``.
    ``checked=True`` is the debug mode: both run under ``jax.experimental.checkify`` (NaN
    and division checks) and raise at the first operation that makes a NaN, naming it.
    """

    def __init__(self, tracker: Tracker, checked: bool = False):
        self.tracker = tracker
        self.params = tracker.params
        opts = tracker.compiler_options
        if checked:
            self._init = xla_options.jit(_checkified(tracker.init), opts)
            self._step = xla_options.jit(_checkified(tracker.track_step), opts, donate_argnums=(1,))
            self.init, self.step = _throwing(self._init), _throwing(self._step)
        else:
            self._init = self.init = xla_options.jit(tracker.init, opts)
            self._step = self.step = xla_options.jit(tracker.track_step, opts, donate_argnums=(1,))

    @property
    def num_compilations(self) -> int:
        return self._init._cache_size() + self._step._cache_size()


def _checkified(fn):
    from jax.experimental import checkify
    return checkify.checkify(fn, errors=checkify.float_checks)


def _throwing(checked_fn):
    def call(*args):
        err, out = checked_fn(*args)
        err.throw()
        return out
    return call


class SequenceResult(NamedTuple):
    boxes: np.ndarray    # (N, 4) xywh, jaxtrack convention; row 0 is the init box
    scores: np.ndarray   # (N,)
    times: np.ndarray    # (N,) seconds per frame (init for frame 0)
    lost: np.ndarray     # (N,) bool: the tracker judged the target lost (frame 0: False)
    finite: np.ndarray   # (N,) bool: the state was finite after this frame
    notes: tuple = ()    # what went wrong without stopping the run, each naming the frame

    @property
    def nonfinite_frame(self) -> int | None:
        """The first frame after which the state was not finite, or None."""
        bad = np.flatnonzero(~self.finite)
        return int(bad[0]) if len(bad) else None


def finish_result(name: str, boxes, scores, times, lost, finite, sizes) -> SequenceResult:
    """A sequence's result, with what went wrong named by frame (also warned): a state that
    became non-finite (the boxes from there repeat the last finite one instead of spreading
    NaN) and frames whose size differs from the first's."""
    notes = []
    bad = np.flatnonzero(~np.asarray(finite, bool))
    if len(bad):
        i = int(bad[0])
        boxes[i:] = boxes[i - 1]
        finite[i:] = False
        notes.append(f"{name}: the tracker's state became non-finite at frame {i}; the boxes from "
                     f"there repeat frame {i - 1}'s")
    sizes = np.asarray(sizes)
    other = np.flatnonzero(np.any(sizes != sizes[0], axis=1))
    if len(other):
        j = int(other[0])
        notes.append(f"{name}: the frame size changes within the sequence (frame {j} is "
                     f"{sizes[j][0]}x{sizes[j][1]}, frame 0 {sizes[0][0]}x{sizes[0][1]}); "
                     f"{len(other)} frame(s) differ from frame 0")
    for note in notes:
        warnings.warn(note)
    return SequenceResult(boxes, scores, times, np.asarray(lost, bool), np.asarray(finite, bool), tuple(notes))


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
    lost, finite = np.zeros(n, bool), np.ones(n, bool)
    sizes = np.zeros((n, 2), np.int64)
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
            sizes[i] = frame.size
            if i == 0:
                box = boxes.validate_box(seq.gt[0], image.shape[:2], where=f"{seq.name}: first box")
                state = jt.init(jt.params, frame, jnp.asarray(box, jnp.float32), key)
                jax.block_until_ready(state)
                out_boxes[0], scores[0] = box, 1.0
            else:
                state, out = jt.step(jt.params, state, frame)
                out_boxes[i] = np.asarray(out.box)
                scores[i], lost[i], finite[i] = float(out.score), bool(out.lost), bool(out.finite)
            times[i] = time.perf_counter() - t0
    finally:
        if pool:
            pool.shutdown(wait=False, cancel_futures=True)
    return finish_result(seq.name, out_boxes, scores, times, lost, finite, sizes)


class _Done:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value
