"""Per-frame traces of a tracker's online state, for diagnosing what its updates do."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxtrack import boxes
from jaxtrack.driver import JitTracker
from jaxtrack.frames import pad_frame, sequence_key


def gradnet_trace(tracker, seq, seed: int = 0) -> list[dict]:
    """GradNet's online update on ``seq``, one record per frame after the first: IoU with the
    ground truth, the SiamFC peak and the reliability threshold, whether the frame was stored
    as a reliable sample, whether it is a periodic template update (the early rescue updates
    are not flagged), and the memory drift ``|m - m0| / |m0|`` of the shallow-feature memory."""

    jt = JitTracker(tracker)
    first = pad_frame(seq.frame(0), where=f"{seq.name} frame 0")
    box = boxes.validate_box(seq.gt[0], seq.frame(0).shape[:2], where=f"{seq.name}: first box")
    state = jt.init(jt.params, first, jnp.asarray(box, jnp.float32), sequence_key(seed, seq.name))
    m0 = np.asarray(state.memory)
    records = []
    for i in range(1, len(seq)):
        stored_before = int(state.num_stored)
        state, out = jt.step(jt.params, state, pad_frame(seq.frame(i), where=f"{seq.name} frame {i}"))
        b = np.asarray(out.box, np.float64)
        iou = float(boxes.iou(b[None], np.asarray(seq.gt[i:i + 1], np.float64))[0]) \
            if np.all(np.isfinite(seq.gt[i])) else float("nan")
        records.append({
            "frame": i, "iou": iou, "peak": float(out.score), "threshold": float(state.threshold),
            "stored": int(state.num_stored) - stored_before,
            "updated": int(tracker.config.online_update and i % tracker.config.update_interval == 0),
            "memory_drift": float(np.linalg.norm(np.asarray(state.memory) - m0) / np.linalg.norm(m0)),
            "box": [round(float(v), 1) for v in b]})
    jax.block_until_ready(state)
    return records
