"""Pseudo-labelled tracks from unlabelled video (jaxtrack.data.motion_tracks): objects moving
in front of a fixed camera are found, linked and cut into sequences; ambiguous meetings and
the frame's edges end a track; training draws pairs from them."""
import numpy as np
import pytest

from jaxtrack import boxes as bx
from jaxtrack.data import motion_tracks as M


def _scene(n=120, hw=(120, 200), walkers=((20, 30, 1.5, 0.0),), size=(14, 30), seed=0, appear=30):
    """A fixed textured background, empty for ``appear`` frames (the background model
    learns it), then textured rectangles moving at constant velocity: frames [n, h, w, 3]
    and each walker's true xywh box per frame [n, k, 4] (from ``appear`` on)."""
    rng = np.random.default_rng(seed)
    h, w = hw
    background = rng.integers(60, 140, (h, w, 3)).astype(np.uint8)
    frames = np.repeat(background[None], n, 0)
    truth = np.zeros((n, len(walkers), 4))
    for k, (x0, y0, vx, vy) in enumerate(walkers):
        texture = rng.integers(0, 255, (size[1], size[0], 3)).astype(np.uint8)
        texture[..., k % 3] = 250                    # each walker its own colour
        for i in range(appear, n):
            x, y = int(round(x0 + vx * (i - appear))), int(round(y0 + vy * (i - appear)))
            x0c, x1c = max(x, 0), min(x + size[0], w)           # the part inside the frame
            if x1c > x0c:
                frames[i, y:y + size[1], x0c:x1c] = texture[:, x0c - x:x1c - x]
            truth[i, k] = (x, y, size[0], size[1])
    return frames, truth


def test_one_walker_is_found_and_followed_with_tight_boxes():
    frames, truth = _scene()
    found = M.foreground_boxes(frames, min_area=100)
    tracks = M.link_tracks(found, frames.shape[1:3], start=5, min_len=30)
    assert len(tracks) == 1
    first, boxes = tracks[0]
    assert 30 <= first < 40 and len(boxes) >= 75
    ious = [bx.iou(b, truth[first + i, 0]) for i, b in enumerate(boxes)]
    assert min(ious) > 0.7, min(ious)
    seqs = M.track_sequences(frames, tracks, "scene")
    assert seqs[0].name == f"scene_{first:04d}_0" and len(seqs[0]) == len(boxes)
    np.testing.assert_array_equal(seqs[0].frame(3), frames[first + 3])


def test_meeting_walkers_and_the_frame_edge_end_tracks():
    """Two walkers crossing: no track runs through the meeting (it would swap identity or
    hold both); a walker leaving the frame ends before its box is cut by the edge."""
    frames, truth = _scene(n=150, walkers=((10, 40, 1.5, 0.0), (170, 45, -1.5, 0.0)))
    found = M.foreground_boxes(frames, min_area=100)
    tracks = M.link_tracks(found, frames.shape[1:3], start=5, min_len=10)
    assert len(tracks) >= 2
    meet = 30 + 53     # they meet at x = 90: the boxes overlap from about frame 74 to 92
    for first, boxes in tracks:
        span = range(first, first + len(boxes))
        assert not (first < meet - 12 and first + len(boxes) > meet + 12), (first, len(boxes))
        ok = [max(bx.iou(b, truth[i, k]) for k in range(2)) for i, b in zip(span, boxes)]
        assert min(ok) > 0.6                      # every kept box is one walker, tightly
        assert np.all(boxes[:, 0] >= 4) and np.all(boxes[:, 0] + boxes[:, 2] <= 196)


def test_split_ranges_are_disjoint_and_checked():
    (a0, a1), (b0, b1) = M.TIME_SPLIT["train"], M.TIME_SPLIT["validation"]
    assert a0 >= M.WARMUP and a1 < b0
    with pytest.raises(ValueError, match="split must be one of"):
        M.video_tracks("any.avi", "test")


def test_video_pairs_come_from_one_track():
    """``raw_pair(videos=...)``: kind "video" draws two frames of one pseudo-labelled track;
    without videos the kind is absent (other pair streams unchanged)."""
    from jaxtrack.data.sources import raw_pair
    frames, _ = _scene()
    tracks = M.link_tracks(M.foreground_boxes(frames, min_area=100), frames.shape[1:3], start=5)
    seqs = M.track_sequences(frames, tracks, "scene")
    photo = np.zeros((64, 64, 3), np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(5):
        z, box_z, x, box_x = raw_pair(rng, [photo], [], None, 0, kinds=("video",), videos=seqs)
        assert z.shape == frames.shape[1:] and abs(box_z[2] - 14) <= 3 and abs(box_x[3] - 30) <= 3
    with pytest.raises(ValueError, match="no training pair source left"):
        raw_pair(rng, [photo], [], None, 0, kinds=("video",))


def test_a_video_file_is_split_by_time(tmp_path, monkeypatch):
    """``video_tracks`` reads a video file and keeps the tracks of one part of its time split:
    a walker crossing in the validation part is a validation track and no training one."""
    import cv2
    monkeypatch.setitem(M.TIME_SPLIT, "train", (5, 40))          # a short video, the same rule
    monkeypatch.setitem(M.TIME_SPLIT, "validation", (60, None))
    start = M.TIME_SPLIT["validation"][0]
    frames, truth = _scene(n=start + 80, appear=start + 5)
    path = str(tmp_path / "walk.avi")                 # lossless: the test is about the split
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"FFV1"), 10, (frames.shape[2], frames.shape[1]))
    for f in frames:
        out.write(np.ascontiguousarray(f[..., ::-1]))
    out.release()
    assert M.video_tracks(path, "train") == []
    (seq,) = M.video_tracks(path, "validation", min_len=30)
    first = int(seq.name.split("_")[-2])
    assert seq.name.startswith("walk_") and first >= start + 5
    assert bx.iou(seq.gt[10], truth[first + 10, 0]) > 0.6
