"""What the tests against the official code's fixtures share: reading the fixture arrays,
running a jitted tracker over a sequence while recording maps, and the per-frame box check."""
import functools

import jax
import numpy as np

from jaxtrack.frames import pad_frame


@functools.lru_cache(maxsize=4)
def load_arrays(path) -> dict:
    """Every array of a fixture ``.npz`` (read once per path)."""
    with np.load(path) as z:
        return dict(z)


def track_recording(params, step, maps, state, seq, num_frames: int, maps_at=()):
    """``step`` from ``state`` over frames 1..num_frames-1 of ``seq``: the boxes [N, 4] (frame
    0 is the ground truth) and ``maps(params, state, frame)`` (numpy) before the frames in
    ``maps_at``."""
    boxes, recorded = [np.asarray(seq.gt[0])], {}
    for i in range(1, num_frames):
        frame = pad_frame(seq.frame(i))
        if i in maps_at:
            recorded[i] = jax.tree_util.tree_map(np.asarray, maps(params, state, frame))
        state, out = step(params, state, frame)
        boxes.append(np.asarray(out.box, np.float64))
    return np.stack(boxes), recorded


def check_boxes(ours, ref, tol: float, reference: str, first: int = 0):
    """Every coordinate of frames ``first``.. within ``tol`` px of the reference's, or a failure
    naming the first frame that is not."""
    ref = np.asarray(ref)[:len(ours)]
    diff = np.max(np.abs(ours[first:] - ref[first:]), axis=1)
    bad = np.nonzero(diff > tol)[0]
    if len(bad):
        k = bad[0] + first
        raise AssertionError(f"frame {k}: jaxtrack {ours[k].round(4).tolist()} against {reference} "
                             f"{ref[k].round(4).tolist()} (max {diff.max():.3g} px)")
