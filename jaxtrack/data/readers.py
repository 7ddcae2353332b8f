"""Readers for the common tracking-benchmark folder layouts -> ``Sequence`` lists.

Layouts (``load_dataset(name, root, split, sequences)``):

* ``otb``: ``<root>/<seq>/groundtruth_rect.txt`` (commas, tabs or spaces; CRLF ok) and
  ``img/0001.jpg..``. Numbering may start anywhere (David: 0300..0770); frames are sorted
  numerically. Two-target folders (``groundtruth_rect.1.txt``/``.2.txt``) give
  ``<seq>.1``/``<seq>.2`` as in the got10k toolkit. A VOT-style folder (frames at the
  root next to ``groundtruth.txt``, like ``bag``) loads too. If there are more frames
  than boxes, the frame range comes from ``cfg.json`` (startFrame/endFrame) or OTB's
  published ranges for David/Football1/Freeman3/Freeman4/Diving; otherwise the file
  listing and the gt length must agree.
* ``vot``: ``<root>/list.txt`` (or the folder listing), ``<seq>/groundtruth.txt`` with
  8-value polygons (converted by ``boxes.polygon_to_xywh``) or 4-value boxes, frames in
  ``color/`` or at the sequence root.
* ``got10k``: ``<root>/<split>/<seq>/00000001.jpg``, ``groundtruth.txt``, ``list.txt``;
  the test split has only the first box (the other rows become NaN). ``absence.label``
  fills ``Sequence.visible``.
* ``lasot``: ``<root>/<class>/<class-N>/img/00000001.jpg`` and ``groundtruth.txt``;
  ``full_occlusion.txt``/``out_of_view.txt`` fill ``Sequence.visible`` (gt is unchanged).
* ``trackingnet``: ``<root>/TRAIN_k|TEST/frames/<seq>/<i>.jpg`` (from 0) and
  ``anno/<seq>.txt``; ``split`` is ``train`` (all TRAIN_k), ``test``, or a chunk name.
* ``uav123``: ``<root>/data_seq/UAV123/<seq>/000001.jpg`` and ``anno/UAV123/<seq>.txt``
  (NaN rows allowed; ``split`` picks ``UAV123`` (default) or ``UAV20L``, whose frames are
  read from ``data_seq/UAV20L`` if present, else ``data_seq/UAV123``). Sub-sequences
  such as ``bird1_1`` that have no folder of their own are cut out of ``bird1`` by the
  start/end frame table of the got10k toolkit (``got10k/datasets/uav123.json``, read if
  that package is installed); without it such sequences raise a clear error.

Index bases follow the got10k toolkit and pytracking: OTB, VOT, LaSOT, UAV123 files are
1-based (MATLAB heritage), GOT-10k and TrackingNet 0-based. Boxes are converted to
jaxtrack xywh with ``boxes.from_dataset``.
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import re

import numpy as np

from jaxtrack import boxes as boxes_lib
from jaxtrack.data.sequence import Sequence

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
INDEX_BASE = {"otb": 1, "vot": 1, "lasot": 1, "uav123": 1, "got10k": 0, "trackingnet": 0}

# OTB-100 folders that ship more frames than annotated boxes: (first, last) frame number.
_OTB_FRAME_RANGES = {"David": (300, 770), "Football1": (1, 74), "Freeman3": (1, 460),
                     "Freeman4": (1, 283), "Diving": (1, 215)}


# ----------------------------------------------------------------------------- files

def _require_dir(path) -> str:
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: folder not found")
    return path


def _frame_number(name: str):
    """Sort key: the last run of digits in the file stem, numerically (then the name)."""
    digits = re.findall(r"\d+", os.path.splitext(name)[0])
    return (0, int(digits[-1]), name) if digits else (1, 0, name)


def list_frames(folder: str) -> list[str]:
    """Image files in ``folder`` sorted by frame number; FileNotFoundError if there are none."""
    folder = _require_dir(folder)
    names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTS)
             and not n.startswith(".") and os.path.isfile(os.path.join(folder, n))]
    if not names:
        raise FileNotFoundError(f"{folder}: no frames found (looked for {', '.join(IMAGE_EXTS)})")
    return [os.path.join(folder, n) for n in sorted(names, key=_frame_number)]


def read_boxes(path: str) -> np.ndarray:
    """Reads a ground-truth file -> (N, 4) boxes in the file's own convention.

    Fields may be separated by commas, tabs or spaces (mixed is fine); CRLF line ends
    and blank lines are tolerated. Each line holds 4 values (x,y,w,h) or 8 (a polygon,
    converted with ``boxes.polygon_to_xywh``); NaN is accepted.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: ground-truth file not found")
    rows = []
    with open(path, "r", encoding="utf-8-sig", newline=None) as f:
        for lineno, line in enumerate(f, start=1):
            fields = [s for s in re.split(r"[,\s]+", line.strip()) if s]
            if not fields:
                continue
            if len(fields) not in (4, 8):
                raise ValueError(f"{path}:{lineno}: expected 4 values x,y,w,h (or 8 for a polygon), "
                                 f"got {len(fields)}")
            try:
                values = [float(s) for s in fields]
            except ValueError:
                bad = next(s for s in fields if not _is_float(s))
                raise ValueError(f"{path}:{lineno}: non-numeric value {bad!r}") from None
            rows.append(boxes_lib.polygon_to_xywh(values) if len(values) == 8 else values)
    if not rows:
        raise ValueError(f"{path}: no boxes in the ground-truth file")
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _read_flags(path: str) -> np.ndarray | None:
    """A per-frame 0/1 label file (comma/space/newline separated), or None if absent."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        values = [s for s in re.split(r"[,\s]+", f.read().strip()) if s]
    return np.asarray([float(v) for v in values]) > 0


def _read_list(path: str) -> list[str] | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return [s.strip() for s in f.read().splitlines() if s.strip()]


def _make(name, gt_file, boxes, frames, dataset, *, pad=False, visible=None, attrs=()):
    """Dataset boxes -> Sequence (jaxtrack xywh), NaN-padding when only the first box is given."""
    base = INDEX_BASE[dataset]
    gt = boxes_lib.from_dataset(boxes, base)
    if pad and len(gt) < len(frames):
        gt = np.concatenate([gt, np.full((len(frames) - len(gt), 4), np.nan)])
    if visible is not None and len(visible) != len(gt):
        visible = None  # a damaged flag file must not block evaluation; gt still validated
    return Sequence(name=name, gt=gt, index_base=base, frame_paths=tuple(frames),
                    attrs=tuple(attrs), dataset=dataset, gt_file=gt_file, visible=visible)


def _select(items, sequences, what: str):
    """Keeps ``items`` (name -> value) named in ``sequences`` (all if None), in that order."""
    if sequences is None:
        return list(items)
    if isinstance(sequences, str):
        sequences = [sequences]
    missing = [s for s in sequences if s not in items]
    if missing:
        raise FileNotFoundError(f"{what}: sequence(s) not found: {', '.join(missing)}")
    return list(sequences)


# ----------------------------------------------------------------------------- OTB

def _otb_gt_files(folder: str) -> list[tuple[str, str]]:
    """[(sequence name, gt file)] for one OTB/VOT-style folder."""
    seq = os.path.basename(os.path.normpath(folder))
    multi = sorted(glob.glob(os.path.join(folder, "groundtruth_rect.*.txt")))
    multi = [f for f in multi if re.fullmatch(r"groundtruth_rect\.\d+\.txt", os.path.basename(f))]
    if multi:
        return [(f"{seq}.{os.path.basename(f).split('.')[1]}", f) for f in multi]
    for name in ("groundtruth_rect.txt", "groundtruth.txt"):
        if os.path.isfile(os.path.join(folder, name)):
            return [(seq, os.path.join(folder, name))]
    return []


def _otb_trim(folder: str, seq: str, frames: list[str], n_boxes: int) -> list[str]:
    """More frames than boxes: keep the annotated frame range (cfg.json or OTB's table)."""
    rng = None
    cfg = os.path.join(folder, "cfg.json")
    if os.path.isfile(cfg):
        try:
            with open(cfg, encoding="utf-8") as f:
                c = json.load(f)
            rng = (int(c["startFrame"]), int(c["endFrame"]))
        except (ValueError, KeyError, TypeError):
            rng = None
    if rng is None or rng[1] - rng[0] + 1 != n_boxes:
        rng = _OTB_FRAME_RANGES.get(seq)
    if rng is None or rng[1] - rng[0] + 1 != n_boxes:
        return frames
    kept = [p for p in frames if rng[0] <= _frame_number(os.path.basename(p))[1] <= rng[1]]
    return kept if len(kept) == n_boxes else frames


def read_otb_folder(folder) -> list[Sequence]:
    """All targets of one OTB-style (or VOT-style) sequence folder."""
    folder = _require_dir(folder)
    targets = _otb_gt_files(folder)
    if not targets:
        raise FileNotFoundError(f"{folder}: no groundtruth_rect.txt or groundtruth.txt found")
    img = os.path.join(folder, "img")
    frames_all = list_frames(img if os.path.isdir(img) else folder)
    attrs = ()
    attrs_file = os.path.join(folder, "attrs.txt")
    if os.path.isfile(attrs_file):
        with open(attrs_file, encoding="utf-8") as f:
            attrs = tuple(a for a in re.split(r"[,\s]+", f.read().strip()) if a)
    seq = os.path.basename(os.path.normpath(folder))
    out = []
    for name, gt_file in targets:
        boxes = read_boxes(gt_file)
        frames = frames_all
        if len(frames) > len(boxes):
            frames = _otb_trim(folder, seq, frames, len(boxes))
        out.append(_make(name, gt_file, boxes, frames, "otb", attrs=attrs))
    return out


def _load_otb(root, split, sequences):
    root = _require_dir(root)
    folders = {}
    for d in sorted(os.listdir(root)):
        path = os.path.join(root, d)
        if os.path.isdir(path) and _otb_gt_files(path):
            folders[d] = path
    # A name may be a folder ("Jogging") or one target of it ("Jogging.1").
    wanted = None if sequences is None else ([sequences] if isinstance(sequences, str) else list(sequences))
    out = []
    for d, path in folders.items():
        if wanted is not None and d not in wanted and not any(w.startswith(d + ".") for w in wanted):
            continue
        for s in read_otb_folder(path):
            if wanted is None or d in wanted or s.name in wanted:
                out.append(s)
    if wanted is not None:
        found = {s.name for s in out} | {s.name.rsplit(".", 1)[0] for s in out}
        missing = [w for w in wanted if w not in found]
        if missing:
            raise FileNotFoundError(f"{root}: sequence(s) not found: {', '.join(missing)}")
    return out


# ----------------------------------------------------------------------------- VOT

def read_vot_folder(folder) -> Sequence:
    folder = _require_dir(folder)
    gt_file = os.path.join(folder, "groundtruth.txt")
    color = os.path.join(folder, "color")
    frames = list_frames(color if os.path.isdir(color) else folder)
    return _make(os.path.basename(os.path.normpath(folder)), gt_file, read_boxes(gt_file), frames, "vot")


def _seq_dirs(root: str, list_file: str, gt_name: str = "groundtruth.txt") -> dict[str, str]:
    """Sequence folders of ``root``: from ``list_file`` if present, else every subfolder with gt."""
    names = _read_list(list_file)
    if names is None:
        names = [d for d in sorted(os.listdir(root))
                 if os.path.isfile(os.path.join(root, d, gt_name))]
    return {n: os.path.join(root, n) for n in names}


def _load_vot(root, split, sequences):
    root = _require_dir(root)
    dirs = _seq_dirs(root, os.path.join(root, "list.txt"))
    return [read_vot_folder(dirs[n]) for n in _select(dirs, sequences, root)]


# ----------------------------------------------------------------------------- GOT-10k

def read_got10k_folder(folder, test: bool | None = None) -> Sequence:
    """One GOT-10k sequence; ``test`` (default: the parent folder is ``test``) NaN-pads the gt."""
    folder = _require_dir(folder)
    if test is None:
        test = os.path.basename(os.path.dirname(os.path.normpath(folder))) == "test"
    gt_file = os.path.join(folder, "groundtruth.txt")
    frames = list_frames(folder)
    boxes = read_boxes(gt_file)
    absence = _read_flags(os.path.join(folder, "absence.label"))
    visible = None if absence is None else ~absence
    return _make(os.path.basename(os.path.normpath(folder)), gt_file, boxes, frames, "got10k",
                 pad=test, visible=visible)


def _load_got10k(root, split, sequences):
    root = _require_dir(root)
    if split is None:
        if os.path.isfile(os.path.join(root, "list.txt")) or not any(
                os.path.isdir(os.path.join(root, s)) for s in ("train", "val", "test")):
            split_dir = root  # root is itself a split folder
        else:
            present = [s for s in ("train", "val", "test") if os.path.isdir(os.path.join(root, s))]
            if len(present) != 1:
                raise ValueError(f"{root}: several GOT-10k splits ({', '.join(present)}); pass split=")
            split_dir = os.path.join(root, present[0])
    else:
        split_dir = _require_dir(os.path.join(root, split))
    dirs = _seq_dirs(split_dir, os.path.join(split_dir, "list.txt"))
    test = os.path.basename(os.path.normpath(split_dir)) == "test"
    return [read_got10k_folder(dirs[n], test=test) for n in _select(dirs, sequences, split_dir)]


# ----------------------------------------------------------------------------- LaSOT

def read_lasot_folder(folder) -> Sequence:
    folder = _require_dir(folder)
    gt_file = os.path.join(folder, "groundtruth.txt")
    frames = list_frames(os.path.join(folder, "img"))
    occ = _read_flags(os.path.join(folder, "full_occlusion.txt"))
    oov = _read_flags(os.path.join(folder, "out_of_view.txt"))
    visible = None
    if occ is not None and oov is not None and len(occ) == len(oov):
        visible = ~(occ | oov)
    return _make(os.path.basename(os.path.normpath(folder)), gt_file, read_boxes(gt_file), frames,
                 "lasot", visible=visible)


def _load_lasot(root, split, sequences):
    root = _require_dir(root)
    dirs = {}
    for gt in sorted(glob.glob(os.path.join(root, "*", "*", "groundtruth.txt"))):
        d = os.path.dirname(gt)
        dirs[os.path.basename(d)] = d
    if split is not None:  # a split file: one sequence name per line (e.g. testing_set.txt)
        names = _read_list(split if os.path.isfile(split) else os.path.join(root, split))
        if names is None:
            raise FileNotFoundError(f"{split}: LaSOT split file not found")
        sequences = names if sequences is None else [s for s in sequences if s in set(names)]
    if sequences is not None and not isinstance(sequences, str):
        for s in sequences:  # name the expected folder for a missing sequence
            if s not in dirs:
                raise FileNotFoundError(f"{os.path.join(root, s.rsplit('-', 1)[0], s)}: sequence folder not found")
    return [read_lasot_folder(dirs[n]) for n in _select(dirs, sequences, root)]


# ----------------------------------------------------------------------------- TrackingNet

def _load_trackingnet(root, split, sequences):
    root = _require_dir(root)
    if split is None or split.lower() == "train":
        chunks = sorted((d for d in os.listdir(root) if re.fullmatch(r"TRAIN_\d+", d)),
                        key=lambda d: int(d.split("_")[1]))
        if not chunks:
            raise FileNotFoundError(f"{root}: no TRAIN_k folders found")
    elif split.lower() == "test":
        chunks = ["TEST"]
    else:
        chunks = [split]
    annos = {}
    for c in chunks:
        anno_dir = _require_dir(os.path.join(root, c, "anno"))
        for f in sorted(glob.glob(os.path.join(anno_dir, "*.txt"))):
            annos[os.path.splitext(os.path.basename(f))[0]] = (c, f)
    out = []
    for n in _select(annos, sequences, root):
        c, gt_file = annos[n]
        frames = list_frames(os.path.join(root, c, "frames", n))
        out.append(_make(n, gt_file, read_boxes(gt_file), frames, "trackingnet", pad=(c == "TEST")))
    return out


# ----------------------------------------------------------------------------- UAV123

def _uav123_table(version: str) -> dict:
    """Start/end frames of UAV123 sub-sequences, from the got10k package's data file if installed."""
    spec = importlib.util.find_spec("got10k")  # locate without importing the package
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "uav123.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f).get(version, {})


def _load_uav123(root, split, sequences):
    root = _require_dir(root)
    version = split or "UAV123"
    anno_dir = _require_dir(os.path.join(root, "anno", version))
    annos = {os.path.splitext(os.path.basename(f))[0]: f
             for f in sorted(glob.glob(os.path.join(anno_dir, "*.txt")))}
    # UAV20L's frames live in data_seq/UAV123 (its sequences are the long UAV123 folders)
    data_dir = os.path.join(root, "data_seq", version)
    if not os.path.isdir(data_dir):
        data_dir = os.path.join(root, "data_seq", "UAV123")
    table = None
    out = []
    for n in _select(annos, sequences, anno_dir):
        gt_file = annos[n]
        boxes = read_boxes(gt_file)
        folder = os.path.join(data_dir, n)
        frames = list_frames(folder) if os.path.isdir(folder) else []
        if len(frames) != len(boxes):  # a sub-sequence of a longer folder (bird1_1 of bird1)
            table = _uav123_table(version) if table is None else table
            meta = table.get(n)
            if meta is None:
                _require_dir(folder)  # names the folder that was expected; Sequence reports counts
            else:
                parent = _require_dir(os.path.join(data_dir, meta["folder_name"]))
                numbered = {_frame_number(os.path.basename(p))[1]: p for p in list_frames(parent)}
                frames = [numbered[i] for i in range(meta["start_frame"], meta["end_frame"] + 1)
                          if i in numbered]
        out.append(_make(n, gt_file, boxes, frames, "uav123"))
    return out


# ----------------------------------------------------------------------------- entry points

_LOADERS = {"otb": _load_otb, "vot": _load_vot, "got10k": _load_got10k, "lasot": _load_lasot,
            "trackingnet": _load_trackingnet, "uav123": _load_uav123}


def load_dataset(name: str, root, split=None, sequences=None) -> list[Sequence]:
    """Loads every sequence of a dataset folder (or only ``sequences``, by name).

    Args:
      name: layout, one of otb, vot, got10k, lasot, trackingnet, uav123.
      root: dataset root folder.
      split: got10k: train/val/test (None: the only split present, or root itself);
        trackingnet: train/test/TRAIN_k; uav123: UAV123/UAV20L; lasot: a split file of
        sequence names; ignored for otb and vot.
      sequences: optional list of sequence names to load, in that order.
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset layout {name!r}; choose from {', '.join(_LOADERS)}")
    return _LOADERS[key](os.fspath(root), split, sequences)


def load_sequence(path, dataset: str = "otb", target: int | None = None) -> Sequence:
    """Loads one sequence folder in the given layout.

    For an OTB folder with two targets (``groundtruth_rect.1.txt``/``.2.txt``) pass
    ``target=1`` or ``2``; ``read_otb_folder`` returns both.
    """
    key = dataset.lower().replace("-", "").replace("_", "")
    path = _require_dir(path)
    if key == "otb":
        seqs = read_otb_folder(path)
        if target is not None:
            seqs = [s for s in seqs if s.name.endswith(f".{target}")]
        if len(seqs) != 1:
            raise ValueError(f"{path}: {len(seqs)} targets ({', '.join(s.name for s in seqs)}); "
                             "pass target= or use read_otb_folder")
        return seqs[0]
    if key == "vot":
        return read_vot_folder(path)
    if key == "got10k":
        return read_got10k_folder(path)
    if key == "lasot":
        return read_lasot_folder(path)
    if key == "trackingnet":  # <chunk>/frames/<seq> -> <chunk>/anno/<seq>.txt
        chunk, seq = os.path.dirname(os.path.dirname(os.path.normpath(path))), os.path.basename(path)
        gt_file = os.path.join(chunk, "anno", seq + ".txt")
        return _make(seq, gt_file, read_boxes(gt_file), list_frames(path), "trackingnet",
                     pad=os.path.basename(chunk) == "TEST")
    if key == "uav123":  # data_seq/<version>/<seq> -> anno/<version>/<seq>.txt
        version_dir = os.path.dirname(os.path.normpath(path))
        root = os.path.dirname(os.path.dirname(version_dir))
        return _load_uav123(root, os.path.basename(version_dir), [os.path.basename(path)])[0]
    raise ValueError(f"unknown dataset layout {dataset!r}; choose from {', '.join(_LOADERS)}")
