"""Synthetic sequences: determinism, exact ground truth, options, GOT-10k round trip."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from jaxtrack.data import load_dataset, make_sequence
from jaxtrack.data.synthetic import make_dataset, write_got10k_layout

CLEAN = dict(occlusion=False, distractors=0, illumination=False, blur=False)


def _crop(img, box, size=(24, 24)):
    x, y, w, h = box
    x0, y0 = int(round(x)), int(round(y))
    x1, y1 = int(round(x + w)), int(round(y + h))
    return cv2.resize(img[y0:y1, x0:x1].astype(np.float32), size, interpolation=cv2.INTER_AREA)


def test_deterministic_per_seed():
    a, b = make_sequence(3, num_frames=30), make_sequence(3, num_frames=30)
    assert a.images.tobytes() == b.images.tobytes()
    np.testing.assert_array_equal(a.gt, b.gt)
    c = make_sequence(4, num_frames=30)
    assert a.images.tobytes() != c.images.tobytes()


def test_shapes_convention_and_speed():
    t = time.perf_counter()
    seq = make_sequence(0)
    elapsed = time.perf_counter() - t
    assert elapsed < 2.0, f"100 frames took {elapsed:.2f}s"
    assert seq.images.shape == (100, 240, 320, 3) and seq.images.dtype == np.uint8
    assert seq.gt.shape == (100, 4) and seq.index_base == 0 and seq.dataset == "synthetic"
    x, y, w, h = seq.gt.T
    assert (x >= 0).all() and (y >= 0).all() and (x + w <= 320).all() and (y + h <= 240).all()
    assert (w > 4).all() and (h > 4).all()
    assert np.ptp(w) > 0.2 * w.mean()  # scale changes
    assert set(seq.attrs) == {"SV", "OCC", "BC", "IV", "MB"}
    assert seq.frame(5).flags.c_contiguous and seq.frame_size() == (240, 320)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gt_matches_drawn_target(seed):
    seq = make_sequence(seed, num_frames=60, shape="rect", **CLEAN)
    ref = _crop(seq.frame(0), seq.gt[0])
    H, W = seq.frame_size()
    for i in range(0, 60, 7):
        img, box = seq.frame(i), seq.gt[i]
        same = np.abs(_crop(img, box) - ref).mean()
        assert same < 10, (i, same)
        # half a box away the content is different (background / target edge)
        x, y, w, h = box
        shifted = [min(max(x + w / 2 * (1 if x + 1.5 * w < W else -1), 0), W - w), y, w, h]
        assert np.abs(_crop(img, shifted) - ref).mean() > same + 25
    # the target differs from the background it covers: look at the same place when it is gone
    far = [i for i in range(60) if _overlap(seq.gt[i], seq.gt[0]) == 0]
    if far:
        assert np.abs(_crop(seq.frame(far[0]), seq.gt[0]) - ref).mean() > 25


def _overlap(a, b):
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy


def test_options_change_only_their_part():
    base = make_sequence(7, num_frames=60, **CLEAN)
    occ = make_sequence(7, num_frames=60, **{**CLEAN, "occlusion": True})
    np.testing.assert_array_equal(base.gt, occ.gt)  # same scene, same path
    diff = np.abs(base.images.astype(int) - occ.images.astype(int)).sum(axis=(1, 2, 3))
    changed = np.flatnonzero(diff)
    assert 3 <= len(changed) <= 15  # only the occlusion window
    i = changed[len(changed) // 2]
    x, y, w, h = base.gt[i]
    region = np.abs(base.images[i].astype(int) - occ.images[i].astype(int)).sum(-1) > 0
    inside = region[int(y):int(y + h), int(x):int(x + w)].mean()
    assert 0.1 < inside < 0.9  # partial occlusion of the target
    assert "OCC" in occ.attrs and "OCC" not in base.attrs

    ill = make_sequence(7, num_frames=60, **{**CLEAN, "illumination": True})
    means = ill.images.reshape(60, -1).mean(1) / base.images.reshape(60, -1).mean(1)
    assert means.max() - means.min() > 0.2

    blur = make_sequence(7, num_frames=60, **{**CLEAN, "blur": True})
    changed = np.flatnonzero(np.abs(base.images.astype(int) - blur.images.astype(int)).sum(axis=(1, 2, 3)))
    assert 2 <= len(changed) <= 10 and "MB" in blur.attrs
    sharp = cv2.Laplacian(base.images[changed[0]], cv2.CV_32F).var()
    assert cv2.Laplacian(blur.images[changed[0]], cv2.CV_32F).var() < sharp

    dis = make_sequence(7, num_frames=60, **{**CLEAN, "distractors": 2})
    assert "BC" in dis.attrs and dis.images.tobytes() != base.images.tobytes()
    fixed = make_sequence(7, num_frames=20, scale_change=False, **CLEAN)
    assert np.ptp(fixed.gt[:, 2]) == 0 and np.ptp(fixed.gt[:, 3]) == 0


def test_appearance_change_turns_the_target_only():
    base = make_sequence(7, num_frames=40, shape="rect", **CLEAN)
    app = make_sequence(7, num_frames=40, shape="rect", appearance_change=1.0, **CLEAN)
    np.testing.assert_array_equal(base.gt, app.gt)
    np.testing.assert_array_equal(base.images[0], app.images[0])      # starts as the first texture
    assert "APP" in app.attrs and "APP" not in base.attrs
    # the change grows monotonically and stays inside the target's box
    inner = lambda box: (box[0] + 2, box[1] + 2, box[2] - 4, box[3] - 4)  # noqa: E731
    change = [np.abs(_crop(app.frame(i), inner(app.gt[i])) - _crop(base.frame(i), inner(base.gt[i]))).mean()
              for i in range(0, 40, 6)]
    assert all(b >= a - 1 for a, b in zip(change, change[1:])) and change[-1] > 20, change
    outside = np.abs(base.images.astype(int) - app.images.astype(int)).sum(-1) > 0
    for i in (20, 39):
        x, y, w, h = app.gt[i]
        outside[i, int(y) - 1:int(np.ceil(y + h)) + 1, int(x) - 1:int(np.ceil(x + w)) + 1] = False
    assert not outside[[20, 39]].any()
    # the other components draw the same as before the option existed
    np.testing.assert_array_equal(make_sequence(7, num_frames=40, shape="rect", appearance_change=0.0,
                                                **CLEAN).images, base.images)
    with pytest.raises(ValueError, match="appearance_change"):
        make_sequence(7, num_frames=10, appearance_change=1.5)


def test_make_dataset_and_got10k_round_trip(tmp_path):
    seqs = make_dataset(5, 2, num_frames=8, size=(64, 96))
    assert [s.name for s in seqs] == ["synthetic-5-0000", "synthetic-5-0001"]
    assert seqs[0].images.tobytes() != seqs[1].images.tobytes()
    write_got10k_layout(seqs, tmp_path)
    back = load_dataset("got10k", tmp_path, split="train")
    assert [s.name for s in back] == [s.name for s in seqs]
    for a, b in zip(seqs, back):
        assert len(a) == len(b) and b.index_base == 0
        np.testing.assert_allclose(b.gt, a.gt, atol=5e-5)
        assert np.abs(b.frame(3).astype(int) - a.frame(3).astype(int)).mean() < 6  # JPEG q95
