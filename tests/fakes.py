"""Small fake datasets on disk, one per reader layout: shared by the data and fuzz tests."""
from pathlib import Path

import cv2
import numpy as np


def write_frames(folder, n, size=(32, 48), start=1, fmt="{:04d}.jpg"):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        p = folder / fmt.format(start + i)
        assert cv2.imwrite(str(p), img)
        paths.append(p)
    return paths


def write_gt(path, rows, sep=","):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(sep.join(str(v) for v in r) + "\n" for r in rows))


def otb_seq(tmp_path, name="Seq", n=5, rows=None, sep=","):
    folder = tmp_path / name
    write_frames(folder / "img", n)
    rows = rows if rows is not None else [[3 + i, 4, 10, 12] for i in range(n)]
    write_gt(folder / "groundtruth_rect.txt", rows, sep)
    return folder


def _fake_otb(root):
    otb_seq(root, "Plain", n=3)
    folder = root / "Jog"
    write_frames(folder / "img", 3, start=9, fmt="{}.jpg")
    write_gt(folder / "groundtruth_rect.1.txt", [[1, 2, 5, 6]] * 3, sep="\t")
    write_gt(folder / "groundtruth_rect.2.txt", [[3, 4, 5, 6]] * 3, sep=" ")
    return None, {"Jog.1": (folder, 1), "Jog.2": (folder, 2), "Plain": (root / "Plain", None)}


def _fake_vot(root):
    write_frames(root / "a" / "color", 2, fmt="{:08d}.jpg")
    write_gt(root / "a" / "groundtruth.txt", [[10, 10, 30, 10, 30, 20, 10, 20], [1, 1, 5, 5]])
    return None, {"a": (root / "a", None)}


def _fake_got10k(root):
    d = root / "test" / "GOT-10k_Test_000001"
    write_frames(d, 3, fmt="{:08d}.jpg")
    write_gt(d / "groundtruth.txt", [[1, 2, 8, 9]])  # test split: first box only
    (d / "absence.label").write_text("0\n0\n1\n")
    return "test", {d.name: (d, None)}


def _fake_lasot(root):
    d = root / "cat" / "cat-2"
    write_frames(d / "img", 3, fmt="{:08d}.jpg")
    write_gt(d / "groundtruth.txt", [[5, 6, 7, 8]] * 3)
    (d / "full_occlusion.txt").write_text("0,0,1")
    (d / "out_of_view.txt").write_text("0,1,0")
    return None, {"cat-2": (d, None)}


def _fake_trackingnet(root):
    write_frames(root / "TEST" / "frames" / "vid_t", 3, start=0, fmt="{}.jpg")
    write_gt(root / "TEST" / "anno" / "vid_t.txt", [[1, 2, 3, 4]])
    return "test", {"vid_t": (root / "TEST" / "frames" / "vid_t", None)}


def _fake_uav123(root):
    write_frames(root / "data_seq" / "UAV123" / "car1", 3, fmt="{:06d}.jpg")
    write_gt(root / "anno" / "UAV123" / "car1.txt", [[11, 12, 5, 6], ["NaN"] * 4, [11, 12, 5, 6]])
    return None, {"car1": (root / "data_seq" / "UAV123" / "car1", None)}


FAKES = {"otb": _fake_otb, "vot": _fake_vot, "got10k": _fake_got10k, "lasot": _fake_lasot,
          "trackingnet": _fake_trackingnet, "uav123": _fake_uav123}
