"""The validation protocol (issue 23): content-based split, composed sequences, OTB root.

Tiny sizes only; the photographs and cut-outs are arrays built here (CI has no caches).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from jaxtrack.data import sources
from jaxtrack.data import validation as V
from jaxtrack.data.readers import otb

SIZE = (96, 128)
OFF = dict(scale_change=False, rotation=False, illumination=False, motion_blur=False, occlusion=False,
           distractor=False, camera=False, speed_variation=0.0)


def _photos(n=3, hw=(120, 160)):
    rng = np.random.default_rng(7)
    return [cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), hw[::-1]) for _ in range(n)]


def _cutouts(n=3):
    rng = np.random.default_rng(8)
    out = []
    for _ in range(n):
        obj = np.zeros((40, 30, 4), np.uint8)
        obj[..., :3] = rng.integers(0, 255, 3)
        cv2.ellipse(obj, (15, 20), (13, 18), 0, 0, 360, (*obj[0, 0, :3].tolist(), 255), -1)
        out.append(obj)
    return out


def test_composed_is_deterministic_per_seed():
    kw = dict(num_frames=6, size=SIZE, target_px=(15, 30), speed_px=(2, 6))
    a = V.composed_sequence(1, _photos(), _cutouts(), **kw)
    b = V.composed_sequence(1, _photos(), _cutouts(), **kw)
    assert a.images.tobytes() == b.images.tobytes()
    np.testing.assert_array_equal(a.gt, b.gt)
    assert a.attrs == b.attrs
    c = V.composed_sequence(2, _photos(), _cutouts(), **kw)
    assert a.images.tobytes() != c.images.tobytes()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_box_is_tight_around_a_solid_cutout(seed):
    grey = np.full((120, 160, 3), 100, np.uint8)
    square = np.zeros((20, 20, 4), np.uint8)
    square[...] = (250, 30, 30, 255)
    seq = V.composed_sequence(seed, [grey], [square], num_frames=6, size=SIZE, target_px=(14, 30),
                              speed_px=(3, 6), **OFF)
    for i in range(len(seq)):
        diff = np.abs(seq.frame(i).astype(int) - 100).max(-1)
        ys, xs = np.nonzero(diff > 75)                    # more than half-way to the target colour
        drawn = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)
        x, y, w, h = seq.gt[i]
        np.testing.assert_allclose([x, y, x + w, y + h], drawn, atol=1.0)


@pytest.mark.parametrize("seed", range(4))
def test_target_stays_inside_with_every_nuisance(seed):
    seq = V.composed_sequence(seed, _photos(), _cutouts(), num_frames=12, size=SIZE, target_px=(30, 60),
                              speed_px=(12, 30))
    x, y, w, h = seq.gt.T
    assert (x >= 0).all() and (y >= 0).all() and (x + w <= SIZE[1]).all() and (y + h <= SIZE[0]).all()
    assert (w > 2).all() and (h > 2).all()
    assert set(seq.attrs) <= {"SV", "IPR", "IV", "MB", "OCC", "BC", "FM", "LR"}


def test_composed_without_photographs_or_cutouts():
    seq = V.composed_sequence(3, [], [], num_frames=6, size=SIZE, target_px=(20, 30))
    assert seq.images.shape == (6, *SIZE, 3) and np.isfinite(seq.gt).all()


def test_probe_has_constant_size_and_speed():
    (name, seq, attrs), = V.probe_sequences(_photos(), _cutouts(), seed=5, sizes=(24,), speeds=(6,),
                                            num_frames=8, size=SIZE)
    assert name == "probe_s24_v6" and "LR" in attrs
    area = seq.gt[:, 2] * seq.gt[:, 3]
    assert np.ptp(area) < 1e-6 * area.mean()
    centre = seq.gt[:, :2] + seq.gt[:, 2:] / 2
    step = np.linalg.norm(np.diff(centre, axis=0), axis=1)
    # 6 px of arc per frame: the chord is shorter where the path turns
    assert (step <= 6 + 1e-6).all() and (step > 5).all() and abs(np.median(step) - 6) < 0.1


def test_split_is_disjoint_and_covers_everything():
    blobs = [os.urandom(64) for _ in range(500)]
    val = [V.in_split(b, "validation") for b in blobs]
    train = [V.in_split(b, "train") for b in blobs]
    assert all(v != t for v, t in zip(val, train))
    assert all(V.in_split(b, None) for b in blobs)
    assert 0.12 < np.mean(val) < 0.28
    assert V.is_validation(blobs[0]) == V.is_validation(bytes(blobs[0]))  # content alone decides
    with pytest.raises(ValueError):
        V.in_split(blobs[0], "test")


def test_load_images_and_objects_partition_a_folder(tmp_path):
    for i, img in enumerate(_photos(12, (8, 8))):
        cv2.imwrite(str(tmp_path / f"{i:04d}.png"), img)
    for i, obj in enumerate(_cutouts(12)):
        obj = obj.copy()
        obj[0, 0, :3] = i                                # distinct bytes per file
        cv2.imwrite(str(tmp_path / f"obj{i:04d}.png"), obj)
    for load in (lambda s: sources.image_files(str(tmp_path), s), lambda s: sources.object_files(str(tmp_path), s)):
        every, tr, va = load(None), load("train"), load("validation")
        assert sorted(tr + va) == sorted(every) and not set(tr) & set(va)
        assert all(V.is_validation(Path(f).read_bytes()) for f in va)
    assert len(sources.load_images(str(tmp_path))) == 24          # default unchanged: every file
    n_tr, n_va = (len(sources.load_images(str(tmp_path), split=s)) for s in ("train", "validation"))
    assert n_tr + n_va == 24
    n_obj = [len(sources.load_objects(str(tmp_path), split=s)) for s in (None, "train", "validation")]
    assert n_obj[0] == 12 and n_obj[1] + n_obj[2] == 12


def test_write_otb_root_reads_back_and_is_idempotent(tmp_path):
    entries = V.probe_sequences(_photos(), _cutouts(), seed=1, sizes=(20,), speeds=(3, 9), num_frames=5,
                                size=SIZE)
    assert V.write_otb_root(entries, tmp_path, {"seed": 1})
    back = {s.name: s for s in otb.load(str(tmp_path), None, None)}
    assert sorted(back) == ["probe_s20_v3", "probe_s20_v9"]
    for name, seq, attrs in entries:
        got = back[name]
        assert len(got) == 5 and got.index_base == 1 and list(got.attrs) == attrs
        np.testing.assert_allclose(got.gt, seq.gt, atol=1e-4)        # 1-based on disk, 0-based here
        assert np.abs(got.frame(2).astype(int) - seq.frame(2)).mean() < 3   # JPEG quality 95
    first = (tmp_path / "probe_s20_v3" / "img" / "0001.jpg").stat().st_mtime_ns
    assert not V.write_otb_root(entries, tmp_path, {"seed": 1})
    assert (tmp_path / "probe_s20_v3" / "img" / "0001.jpg").stat().st_mtime_ns == first
    assert V.is_current(tmp_path, {"seed": 1}) and not V.is_current(tmp_path, {"seed": 2})
    assert V.write_otb_root(entries[:1], tmp_path, {"seed": 2})       # a changed set: stale folder goes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attributes.json", "manifest.json", "probe_s20_v3"]


def test_validation_parts_are_named_by_prefix_and_averaged_apart():
    """The validation log reports each part's mean AUC: synthetic, composed, real video."""
    from jaxtrack.train.selection import part_means, part_of
    assert [part_of(n) for n in ("val_syn_00", "val_comp_03", "val_small_01", "val_real_vtest_0540_0")] == \
        ["synthetic", "composed", "composed", "real"]
    per = {"val_syn_00": 0.8, "val_syn_01": 0.6, "val_fast_00": 0.5, "val_real_vtest_0540_0": 0.25}
    assert part_means(per) == {"composed": 0.5, "real": 0.25, "synthetic": 0.7}
