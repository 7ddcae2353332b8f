"""Readers and Sequence: the six shared real sequences, every layout, every error path."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from jaxtrack import boxes
from jaxtrack.data import FrameError, Sequence, load_dataset, load_sequence
from jaxtrack.data import readers

from fakes import FAKES, otb_seq, write_frames, write_gt

SHARED = Path(os.environ.get("JAXTRACK_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
OTB = SHARED / "data" / "otb"
COUNTS = {"David": 471, "Crossing": 120, "bag": 196, "Couple": 140, "Walking2": 500, "Skiing": 81}


def _need_shared():
    if not OTB.is_dir():
        pytest.skip(f"{OTB} not present (shared benchmark data)")


# ----------------------------------------------------------------------------- shared sequences

def test_shared_otb_sequences_load_with_right_counts():
    _need_shared()
    seqs = {s.name: s for s in load_dataset("otb", OTB)}
    assert {n: len(s) for n, s in seqs.items()} == COUNTS
    for s in seqs.values():
        assert s.gt.shape == (len(s), 4) and s.gt.dtype == np.float64
        assert s.index_base == 1 and s.dataset == "otb"
        img = s.frame(0)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.flags.c_contiguous
        assert s.frame_size(0) == img.shape[:2]
        boxes.validate_box(s.init_box, img.shape[:2])


def test_shared_first_boxes_in_jaxtrack_convention():
    _need_shared()
    seqs = {s.name: s for s in load_dataset("otb", OTB)}
    np.testing.assert_array_equal(seqs["David"].init_box, boxes.from_dataset([129, 80, 64, 78], 1))
    np.testing.assert_array_equal(seqs["David"].init_box, [128, 79, 64, 78])
    np.testing.assert_array_equal(seqs["Walking2"].init_box, [129, 131, 31, 115])  # tabs + CRLF
    np.testing.assert_array_equal(seqs["Crossing"].init_box, [204, 150, 17, 50])  # tabs
    assert seqs["David"].frame_paths[0].endswith("0300.jpg")
    assert seqs["David"].frame_paths[-1].endswith("0770.jpg")
    assert seqs["Couple"].attrs == ("SV", "DEF", "FM", "OPR", "BC")
    poly = [334.02, 128.36, 438.19, 188.78, 396.39, 260.83, 292.23, 200.41]
    np.testing.assert_allclose(seqs["bag"].init_box, boxes.from_dataset(boxes.polygon_to_xywh(poly), 1))
    assert seqs["bag"].frame_paths[0].endswith("00000001.jpg")
    assert seqs["bag"].frame_size() == (360, 480)


def test_shared_load_sequence_single_folder():
    _need_shared()
    bag = load_sequence(OTB / "bag", "otb")
    assert len(bag) == 196 and bag.name == "bag"
    assert len(load_sequence(OTB / "bag", "vot")) == 196
    assert len(load_dataset("otb", OTB, sequences=["Skiing"])[0]) == 81


# ----------------------------------------------------------------------------- error paths

def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_sequence(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="nope"):
        load_dataset("otb", tmp_path / "nope")
    otb_seq(tmp_path)
    with pytest.raises(FileNotFoundError, match="Missing"):
        load_dataset("otb", tmp_path, sequences=["Missing"])


def test_wrong_field_count_names_file_and_line(tmp_path):
    folder = otb_seq(tmp_path, rows=[[1, 2, 10, 10], [1, 2, 3], [1, 2, 10, 10]])
    expected = r"groundtruth_rect\.txt:2: expected 4 values x,y,w,h \(or 8 for a polygon\), got 3"
    with pytest.raises(ValueError, match=expected):
        load_sequence(folder)


def test_non_numeric_field(tmp_path):
    folder = otb_seq(tmp_path, rows=[[1, 2, "abc", 10]] * 5)
    with pytest.raises(ValueError, match=r"groundtruth_rect\.txt:1: non-numeric value 'abc'"):
        load_sequence(folder)


def test_zero_size_first_box(tmp_path):
    folder = otb_seq(tmp_path, rows=[[5, 5, 0, 10]] + [[5, 5, 10, 10]] * 4)
    with pytest.raises(ValueError, match=r"groundtruth_rect\.txt:1: .*zero or negative size"):
        load_sequence(folder)


def test_out_of_image_first_box(tmp_path):
    folder = otb_seq(tmp_path, rows=[[100, 5, 10, 10]] + [[5, 5, 10, 10]] * 4)  # image is 48 wide
    with pytest.raises(ValueError, match=r"groundtruth_rect\.txt:1: .*outside the 48x32 image"):
        load_sequence(folder)


def test_count_mismatch(tmp_path):
    folder = otb_seq(tmp_path, n=5, rows=[[3, 4, 10, 12]] * 4)
    with pytest.raises(ValueError, match=r"groundtruth_rect\.txt: 4 ground-truth boxes but 5 frames"):
        load_sequence(folder)


def test_no_frames(tmp_path):
    folder = tmp_path / "Empty"
    (folder / "img").mkdir(parents=True)
    write_gt(folder / "groundtruth_rect.txt", [[1, 1, 5, 5]])
    with pytest.raises(FileNotFoundError, match="no frames found"):
        load_sequence(folder)


def test_unreadable_frame(tmp_path):
    folder = otb_seq(tmp_path)
    (folder / "img" / "0003.jpg").write_bytes(b"this is not a jpeg")
    seq = load_sequence(folder)  # construction only reads the first frame
    with pytest.raises(FrameError, match="0003.jpg"):
        seq.frame(2)
    os.unlink(folder / "img" / "0004.jpg")
    with pytest.raises(FrameError, match="0004.jpg"):
        seq.frame(3)
    assert issubclass(FrameError, IOError) and issubclass(FrameError, ValueError)
    write_frames(folder / "img", 1, start=4)
    (folder / "img" / "0001.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(FrameError, match="0001.jpg"):
        load_sequence(folder)


def test_gray_and_rgba_frames_become_rgb(tmp_path):
    folder = tmp_path / "Gray"
    (folder / "img").mkdir(parents=True)
    cv2.imwrite(str(folder / "img" / "1.png"), np.full((20, 30), 77, np.uint8))
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0], rgba[..., 2], rgba[..., 3] = 10, 200, 128  # BGRA on disk
    cv2.imwrite(str(folder / "img" / "2.png"), rgba)
    write_gt(folder / "groundtruth_rect.txt", [[1, 1, 5, 5]] * 2)
    seq = load_sequence(folder)
    g, c = seq.frame(0), seq.frame(1)
    assert g.shape == c.shape == (20, 30, 3) and g.dtype == np.uint8
    assert (g == 77).all()
    assert tuple(c[0, 0]) == (200, 0, 10)  # RGB order
    for shape in [(1, 20, 30, 3), (1, 20, 30), (1, 20, 30, 4)]:
        mem = Sequence("m", np.array([[1, 1, 5, 5]]), 0, images=np.zeros(shape, np.uint8))
        assert mem.frame(0).shape == (20, 30, 3) and mem.frame_size() == (20, 30)


# ----------------------------------------------------------------------------- OTB quirks

def test_otb_numbering_separators_and_two_targets(tmp_path):
    folder = tmp_path / "Jogging"
    write_frames(folder / "img", 3, start=9, fmt="{}.jpg")  # 9.jpg, 10.jpg, 11.jpg
    write_gt(folder / "groundtruth_rect.1.txt", [[1, 2, 5, 6]] * 3, sep="\t")
    (folder / "groundtruth_rect.2.txt").write_text("3 4 5 6\r\n3 4 5 6\r\n3 4 5 6\r\n\r\n")
    seqs = load_dataset("otb", tmp_path)
    assert [s.name for s in seqs] == ["Jogging.1", "Jogging.2"]
    assert [Path(p).name for p in seqs[0].frame_paths] == ["9.jpg", "10.jpg", "11.jpg"]
    np.testing.assert_array_equal(seqs[0].init_box, [0, 1, 5, 6])
    np.testing.assert_array_equal(seqs[1].init_box, [2, 3, 5, 6])
    assert load_sequence(folder, target=2).name == "Jogging.2"
    with pytest.raises(ValueError, match="targets"):
        load_sequence(folder)
    assert [s.name for s in load_dataset("otb", tmp_path, sequences=["Jogging.2"])] == ["Jogging.2"]


def test_otb_surplus_frames_use_cfg_range(tmp_path):
    folder = tmp_path / "Clip"
    write_frames(folder / "img", 6)
    write_gt(folder / "groundtruth_rect.txt", [[1, 2, 5, 6]] * 3)
    (folder / "cfg.json").write_text(json.dumps({"startFrame": 2, "endFrame": 4}))
    seq = load_sequence(folder)
    assert [Path(p).name for p in seq.frame_paths] == ["0002.jpg", "0003.jpg", "0004.jpg"]


# ----------------------------------------------------------------------------- other layouts

def test_vot_layout(tmp_path):
    root = tmp_path / "vot"
    write_frames(root / "a" / "color", 3, size=(40, 50), fmt="{:08d}.jpg")
    poly = [10, 10, 30, 10, 30, 20, 10, 20]
    write_gt(root / "a" / "groundtruth.txt", [poly, [1, 1, 5, 5], poly])
    write_frames(root / "b", 2, size=(40, 50), fmt="{:08d}.jpg")
    write_gt(root / "b" / "groundtruth.txt", [[2, 3, 4, 5]] * 2)
    (root / "list.txt").write_text("b\na\n")
    seqs = load_dataset("vot", root)
    assert [s.name for s in seqs] == ["b", "a"] and [len(s) for s in seqs] == [2, 3]
    np.testing.assert_allclose(seqs[1].init_box, boxes.from_dataset(boxes.polygon_to_xywh(poly), 1))
    np.testing.assert_array_equal(seqs[1].gt[1], [0, 0, 5, 5])
    assert seqs[0].index_base == 1


def test_got10k_layout(tmp_path):
    root = tmp_path / "got10k"
    for name in ("GOT-10k_Train_000001", "GOT-10k_Train_000002"):
        write_frames(root / "train" / name, 4, fmt="{:08d}.jpg")
        write_gt(root / "train" / name / "groundtruth.txt", [[2.5, 3.0, 10.0, 11.0]] * 4)
    (root / "train" / "GOT-10k_Train_000001" / "absence.label").write_text("0\n1\n0\n0\n")
    (root / "train" / "list.txt").write_text("GOT-10k_Train_000001\nGOT-10k_Train_000002\n")
    write_frames(root / "test" / "GOT-10k_Test_000001", 5, fmt="{:08d}.jpg")
    write_gt(root / "test" / "GOT-10k_Test_000001" / "groundtruth.txt", [[1, 2, 8, 9]])
    train = load_dataset("got10k", root, split="train")
    assert [len(s) for s in train] == [4, 4] and train[0].index_base == 0
    np.testing.assert_array_equal(train[0].init_box, [2.5, 3.0, 10.0, 11.0])  # 0-based: unchanged
    assert train[0].visible.tolist() == [True, False, True, True]
    assert train[0].valid.tolist() == [True, False, True, True]
    test = load_dataset("got10k", root, split="test")[0]
    assert len(test) == 5 and np.isnan(test.gt[1:]).all()
    np.testing.assert_array_equal(test.init_box, [1, 2, 8, 9])
    with pytest.raises(ValueError, match="split="):
        load_dataset("got10k", root)
    with pytest.raises(FileNotFoundError, match="val"):
        load_dataset("got10k", root, split="val")


def test_lasot_layout(tmp_path):
    root = tmp_path / "lasot"
    for name in ("airplane-1", "airplane-2"):
        d = root / "airplane" / name
        write_frames(d / "img", 3, fmt="{:08d}.jpg")
        write_gt(d / "groundtruth.txt", [[5, 6, 7, 8]] * 3)
        (d / "full_occlusion.txt").write_text("0,0,1")
        (d / "out_of_view.txt").write_text("0,1,0")
    seqs = load_dataset("lasot", root)
    assert [s.name for s in seqs] == ["airplane-1", "airplane-2"]
    np.testing.assert_array_equal(seqs[0].init_box, [4, 5, 7, 8])
    np.testing.assert_array_equal(seqs[0].gt[2], [4, 5, 7, 8])  # gt kept for evaluation
    assert seqs[0].visible.tolist() == [True, False, False]
    with pytest.raises(FileNotFoundError, match="airplane-9"):
        load_dataset("lasot", root, sequences=["airplane-9"])


def test_trackingnet_layout(tmp_path):
    root = tmp_path / "trackingnet"
    write_frames(root / "TRAIN_0" / "frames" / "vid_a", 12, start=0, fmt="{}.jpg")
    write_gt(root / "TRAIN_0" / "anno" / "vid_a.txt", [[1.5, 2, 3, 4]] * 12)
    write_frames(root / "TEST" / "frames" / "vid_t", 3, start=0, fmt="{}.jpg")
    write_gt(root / "TEST" / "anno" / "vid_t.txt", [[1, 2, 3, 4]])
    seq = load_dataset("trackingnet", root)[0]
    assert len(seq) == 12 and seq.index_base == 0
    assert [Path(p).name for p in seq.frame_paths[:3]] == ["0.jpg", "1.jpg", "2.jpg"]
    assert Path(seq.frame_paths[-1]).name == "11.jpg"
    np.testing.assert_array_equal(seq.init_box, [1.5, 2, 3, 4])
    test = load_dataset("trackingnet", root, split="test")[0]
    assert len(test) == 3 and np.isnan(test.gt[1:]).all()
    assert len(load_sequence(root / "TRAIN_0" / "frames" / "vid_a", "trackingnet")) == 12


def test_uav123_layout(tmp_path, monkeypatch):
    root = tmp_path / "uav"
    write_frames(root / "data_seq" / "UAV123" / "car1", 6, fmt="{:06d}.jpg")
    rows = [[11, 12, 5, 6], ["NaN"] * 4, [11, 12, 5, 6], [11, 12, 5, 6], [11, 12, 5, 6], [11, 12, 5, 6]]
    write_gt(root / "anno" / "UAV123" / "car1.txt", rows)
    write_gt(root / "anno" / "UAV123" / "car1_2.txt", [[1, 1, 4, 4]] * 3)  # a sub-sequence
    monkeypatch.setattr(readers.uav123, "_uav123_table", lambda version: {
        "car1_2": {"start_frame": 4, "end_frame": 6, "folder_name": "car1"}})
    seqs = {s.name: s for s in load_dataset("uav123", root)}
    car = seqs["car1"]
    assert len(car) == 6 and car.index_base == 1 and np.isnan(car.gt[1]).all()
    np.testing.assert_array_equal(car.init_box, [10, 11, 5, 6])
    assert car.valid.tolist() == [True, False, True, True, True, True]
    assert [Path(p).name for p in seqs["car1_2"].frame_paths] == ["000004.jpg", "000005.jpg", "000006.jpg"]
    write_gt(root / "anno" / "UAV20L" / "car1.txt", rows)  # UAV20L frames sit in data_seq/UAV123
    assert len(load_dataset("uav123", root, split="UAV20L")[0]) == 6
    monkeypatch.setattr(readers.uav123, "_uav123_table", lambda version: {})
    with pytest.raises(FileNotFoundError, match="car1_2"):
        load_dataset("uav123", root, sequences=["car1_2"])


def test_unknown_layout(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset layout"):
        load_dataset("imagenet", tmp_path)
    choose = "choose from " + ", ".join(readers.LAYOUTS)
    for call in (lambda: load_dataset("no-such", tmp_path), lambda: load_sequence(tmp_path, "no-such")):
        with pytest.raises(ValueError, match=f"^unknown dataset layout 'no-such'; {choose}$"):
            call()
    with pytest.raises(FileNotFoundError, match="nope: folder not found"):  # the folder is checked first
        load_sequence(tmp_path / "nope", "no-such")


# ----------------------------------------------------------------------------- every layout

@pytest.mark.parametrize("layout", readers.LAYOUTS)
def test_every_layout_dataset_and_folder_readers_agree(tmp_path, layout):
    """load_dataset and load_sequence give the same Sequence for every layout in LAYOUTS."""
    if layout not in FAKES:
        pytest.fail(f"layout {layout!r} has no fake dataset: add a _fake_{layout} to FAKES")
    split, folders = FAKES[layout](tmp_path)
    seqs = load_dataset(layout, tmp_path, split=split)
    assert [s.name for s in seqs] == list(folders)
    base = getattr(readers, layout).INDEX_BASE
    assert readers.INDEX_BASE[layout] == base
    for s in seqs:
        folder, target = folders[s.name]
        one = load_sequence(folder, layout, target=target)
        assert (one.name, one.frame_paths, one.index_base, one.attrs, one.dataset, one.gt_file) == \
            (s.name, s.frame_paths, base, s.attrs, layout, s.gt_file)
        assert one.gt.dtype == s.gt.dtype and one.gt.tobytes() == s.gt.tobytes()  # NaN rows too
        assert (one.visible is None) == (s.visible is None)
        if s.visible is not None:
            np.testing.assert_array_equal(one.visible, s.visible)


def test_paste_pair_box_is_the_tight_box_of_the_pasted_shape():
    """Copy-paste training pairs: the boxes enclose exactly the pixels where the object
    differs from the (plain) background, and a seed repeats the pair byte for byte."""
    from jaxtrack.data import pairs
    h, w = 120, 160
    background = np.full((h, w, 3), 40, np.uint8)
    source = np.full((200, 200, 3), 220, np.uint8)
    cutout = np.zeros((60, 90, 4), np.uint8)                  # an RGBA object: a filled ellipse
    cutout[..., :3] = 220
    alpha = np.zeros((60, 90), np.uint8)
    cv2.ellipse(alpha, (45, 30), (44, 29), 0, 0, 360, 255, -1)
    cutout[..., 3] = alpha
    for seed, src in [(s, source) for s in range(5)] + [(s, cutout) for s in range(5)]:
        z, bz, x, bx_ = pairs.paste_pair(np.random.default_rng(seed), background, src)
        for img, b in ((z, bz), (x, bx_)):
            assert img.shape == (h, w, 3) and img.dtype == np.uint8
            ys, xs = np.nonzero(img[..., 0] > 130)          # more than half object
            assert len(xs) > 0
            np.testing.assert_allclose(b, [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()],
                                       atol=1.0)
            assert b[0] >= 0 and b[1] >= 0 and b[0] + b[2] <= w and b[1] + b[3] <= h
    a = pairs.paste_pair(np.random.default_rng(7), background, source)
    b = pairs.paste_pair(np.random.default_rng(7), background, source)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
