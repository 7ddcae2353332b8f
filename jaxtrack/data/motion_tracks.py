"""Pseudo-labelled tracks from real, unlabelled video: moving objects of a static camera,
found by background subtraction and linked from frame to frame by overlap (issue 23).

The only real video that ships in a package is Debian ``opencv-doc``'s
``examples/data/vtest.avi`` (795 frames, 768x576, 10 fps: pedestrians walking across a
campus, seen from a fixed camera), collected by ``experiments/fetch_training_images.py
--videos-out``. Its boxes come from OpenCV's MOG2 background model, not from a person:
connected foreground regions (shadows dropped, opened and closed), linked when the best
match of a track's last box overlaps it by ``min_iou`` and no second region does. They are
loose (two people walking together make one box; a leg may be cut off), but the targets in
them deform, turn and pass each other as no composed sequence does.

The video is split by time (:data:`TIME_SPLIT`): tracks in the first part are training
data, tracks in the last part go into the validation set; a gap between the parts keeps a
walker from being in both.
"""
from __future__ import annotations

import os

import numpy as np

from jaxtrack.boxes import iou
from jaxtrack.data.sequence import Sequence

# frame ranges [start, stop) of each split of a video; the first WARMUP frames are left out
# while the background model learns the empty scene
WARMUP = 50
TIME_SPLIT = {"train": (WARMUP, 500), "validation": (540, None)}
MERGE_GROWTH = 1.25      # a region this much larger than a track's last box holds more than it


def read_video(path: str, max_frames: int | None = None) -> np.ndarray:
    """Every frame of the video at ``path`` as uint8 RGB ``[N, H, W, 3]``."""
    from jaxtrack.data.video import open_source
    return np.stack([frame for _, frame in open_source(path).frames(max_frames=max_frames)])


def foreground_boxes(frames: np.ndarray, *, history: int = 200, var_threshold: float = 25.0,
                     min_area: int = 300) -> list[np.ndarray]:
    """Per frame, the ``[k, 4]`` xywh boxes of the connected foreground regions of at least
    ``min_area`` pixels (MOG2 with shadow detection; shadows count as background)."""
    import cv2
    model = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=var_threshold,
                                               detectShadows=True)
    opening = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    closing = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 15))   # joins a body's parts
    out = []
    for frame in frames:
        mask = (model.apply(np.ascontiguousarray(frame[..., ::-1])) == 255).astype(np.uint8)
        mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, opening), cv2.MORPH_CLOSE, closing)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        keep = [j for j in range(1, n) if stats[j, 4] >= min_area]
        out.append(stats[keep, :4].astype(np.float64).reshape(-1, 4))
    return out


def _continues(prev: np.ndarray, found: np.ndarray, min_iou: float, max_area_change: float) -> np.ndarray:
    """(k,) bool: the regions ``found`` that may be ``prev`` one frame later: overlap by
    ``min_iou`` or more, area within a factor ``max_area_change``."""
    if not len(found):
        return np.zeros(0, bool)
    grow = found[:, 2] * found[:, 3] / (prev[2] * prev[3])
    return (iou(prev, found) >= min_iou) & (grow >= 1 / max_area_change) & (grow <= max_area_change)


def link_tracks(boxes: list[np.ndarray], frame_hw, *, start: int = 0, stop: int | None = None,
                min_iou: float = 0.4, ambiguous_iou: float = 0.1, max_area_change: float = 1.5,
                min_len: int = 30, border: int = 4) -> list[tuple[int, np.ndarray]]:
    """Tracks ``[(first frame, boxes [n, 4])]`` of at least ``min_len`` frames within frames
    ``[start, stop)``, from the per-frame regions ``boxes``.

    A track goes on while one region continues its last box (overlap ``min_iou`` or more,
    area within a factor ``max_area_change``: a merge or a split ends it), no other region
    overlaps that box by more than ``ambiguous_iou`` (two walkers meeting end both tracks),
    and the region keeps ``border`` px off the frame's edges (a walker entering or leaving
    is cut by the edge). A region that overlaps the last box of a track that ended and is
    :data:`MERGE_GROWTH` times larger, and its continuations, start no track: two walkers
    merged into one region are nobody's box. Any other region starts one.
    """
    h, w = frame_hw
    stop = len(boxes) if stop is None else min(stop, len(boxes))
    done, active, suspect = [], [], np.zeros((0, 4))     # active: (first frame, [boxes])
    for i in range(start, stop):
        found = boxes[i]
        inside = ((found[:, 0] >= border) & (found[:, 1] >= border)
                  & (found[:, 0] + found[:, 2] <= w - border) & (found[:, 1] + found[:, 3] <= h - border))
        claimed = np.zeros(len(found), bool)
        tainted = np.zeros(len(found), bool)
        for prev in suspect:                              # merged regions stay suspect
            tainted |= _continues(prev, found, min_iou, max_area_change)
        still = []
        for first, track in active:
            ok = _continues(track[-1], found, min_iou, max_area_change)
            near = iou(track[-1], found) > ambiguous_iou if len(found) else ok
            if ok.sum() == 1 and near.sum() == 1 and inside[ok].all() and not claimed[ok].any():
                claimed |= ok
                track.append(found[ok][0])
                still.append((first, track))
            else:                   # a region that grew over the ended track's box is a merge
                done.append((first, track))
                tainted |= near & (found[:, 2] * found[:, 3] > MERGE_GROWTH * track[-1][2] * track[-1][3])
        for j in np.flatnonzero(~claimed & ~tainted & inside):
            still.append((i, [found[j]]))
        active, suspect = still, found[tainted & ~claimed]
    done += active
    return sorted(((first, np.asarray(track)) for first, track in done if len(track) >= min_len),
                  key=lambda t: t[0])


def track_sequences(frames: np.ndarray, tracks, prefix: str) -> list[Sequence]:
    """One in-memory :class:`Sequence` per track (its frames only; names ``prefix_<first
    frame>_<k>``); frames are views of ``frames``, not copies."""
    out = []
    for k, (first, gt) in enumerate(tracks):
        out.append(Sequence(name=f"{prefix}_{first:04d}_{k}", gt=gt, index_base=0,
                            images=frames[first:first + len(gt)], attrs=("DEF",),
                            dataset="motion"))
    return out


def video_tracks(path: str, split: str, *, prefix: str | None = None, **link_kw) -> list[Sequence]:
    """The pseudo-labelled tracks of the video at ``path`` in ``split`` ("train" or
    "validation", :data:`TIME_SPLIT`) as sequences."""
    if split not in TIME_SPLIT:
        raise ValueError(f"split must be one of {sorted(TIME_SPLIT)}, got {split!r}")
    start, stop = TIME_SPLIT[split]
    frames = read_video(path, max_frames=stop)          # the background model needs every frame before
    tracks = link_tracks(foreground_boxes(frames), frames.shape[1:3], start=start, stop=stop, **link_kw)
    stem = prefix or os.path.splitext(os.path.basename(path))[0]
    return track_sequences(frames, tracks, stem)
