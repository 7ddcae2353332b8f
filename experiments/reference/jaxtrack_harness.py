"""What every reference harness here shares: relative differences, box agreement between two
trajectories, frames per second, the first frames of a sequence, and compact JSON fixtures.

Imported by the harnesses beside it (their folder is on ``sys.path`` when they run); it
imports nothing of any reference.
"""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np


def rel(a, b) -> float:
    """Largest absolute difference over the largest absolute reference value ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def first_frames(seq, n: int):
    """The first ``n`` frames of a sequence (on disk or in memory); all of it for ``n <= 0``."""
    if n <= 0 or n >= len(seq):
        return seq
    if seq.images is not None:
        return dataclasses.replace(seq, gt=seq.gt[:n], images=seq.images[:n])
    return dataclasses.replace(seq, gt=seq.gt[:n], frame_paths=seq.frame_paths[:n])


def agreement(ours, ref0) -> dict:
    """Per-frame agreement of two [N, 4] xywh trajectories (0-based): the largest coordinate
    difference per frame, the first frames over 1 and 0.5 px, the mean IoU."""
    from jaxtrack import boxes as bx
    diff = np.max(np.abs(ours - ref0), axis=1)
    over = np.nonzero(diff > 1.0)[0]
    half = np.nonzero(diff > 0.5)[0]
    return {"frames": int(len(diff)), "max_px": float(diff.max()), "mean_px": float(diff.mean()),
            "first_frame_over_1px": int(over[0]) if len(over) else None,
            "frames_over_1px": int(len(over)), "frames_over_0.5px": int(len(half)),
            "first_frame_over_0.5px": int(half[0]) if len(half) else None,
            "mean_iou": float(np.mean(bx.iou(ours, ref0))),
            "max_center_px": float(np.max(bx.center_error(ours, ref0)))}


def fps(times) -> float:
    """Frames per second of the updates (``times[1:]``; frame 0 is initialisation)."""
    t = np.asarray(times, np.float64)[1:]
    return float(len(t) / t.sum())


def compact_json(obj) -> str:
    """JSON with one line per list of numbers (boxes, layer rows)."""
    text = json.dumps(obj, indent=1)
    return re.sub(r"\[[^\[\]{}]*\]", lambda m: re.sub(r"\s+", " ", m.group(0)).replace("[ ", "[").replace(" ]", "]"),
                  text)
