"""OTB layout: ``<root>/<seq>/groundtruth_rect.txt`` and ``img/0001.jpg..``; 1-based boxes.

Ground truth may be separated by commas, tabs or spaces (CRLF ok). Numbering may start
anywhere (David: 0300..0770); frames are sorted numerically. Two-target folders
(``groundtruth_rect.1.txt``/``.2.txt``) give ``<seq>.1``/``<seq>.2`` as in the got10k
toolkit. A VOT-style folder (frames at the root next to ``groundtruth.txt``, like ``bag``)
loads too. If there are more frames than boxes, the frame range comes from ``cfg.json``
(startFrame/endFrame) or OTB's published ranges for David/Football1/Freeman3/Freeman4/Diving
(``_OTB_FRAME_RANGES``); otherwise the file listing and the gt length must agree.
"""
from __future__ import annotations

import glob
import json
import os
import re

from jaxtrack.data.readers.common import _frame_number, _make, _require_dir, list_frames, read_boxes, read_text
from jaxtrack.data.sequence import Sequence
from jaxtrack.errors import DatasetError, DatasetNotFoundError

INDEX_BASE = 1  # MATLAB heritage

# OTB-100 folders that ship more frames than annotated boxes: (first, last) frame number.
_OTB_FRAME_RANGES = {"David": (300, 770), "Football1": (1, 74), "Freeman3": (1, 460),
                     "Freeman4": (1, 283), "Diving": (1, 215)}


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
            c = json.loads(read_text(cfg, "cfg.json"))
            rng = (int(c["startFrame"]), int(c["endFrame"]))
        except (ValueError, KeyError, TypeError, DatasetError):
            rng = None                     # a damaged cfg.json: the range comes from elsewhere
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
        raise DatasetNotFoundError(f"{folder}: no groundtruth_rect.txt or groundtruth.txt found")
    img = os.path.join(folder, "img")
    frames_all = list_frames(img if os.path.isdir(img) else folder)
    attrs = ()
    attrs_file = os.path.join(folder, "attrs.txt")
    if os.path.isfile(attrs_file):
        attrs = tuple(a for a in re.split(r"[,\s]+", read_text(attrs_file, "attrs.txt").strip()) if a)
    seq = os.path.basename(os.path.normpath(folder))
    out = []
    for name, gt_file in targets:
        boxes = read_boxes(gt_file)
        frames = frames_all
        if len(frames) > len(boxes):
            frames = _otb_trim(folder, seq, frames, len(boxes))
        out.append(_make(name, gt_file, boxes, frames, "otb", INDEX_BASE, attrs=attrs))
    return out


def load(root, split, sequences) -> list[Sequence]:
    """Every sequence folder of ``root`` (``split`` is ignored)."""
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
            raise DatasetNotFoundError(f"{root}: sequence(s) not found: {', '.join(missing)}")
    return out


def load_folder(path, target: int | None = None) -> Sequence:
    """One sequence folder; a two-target folder needs ``target=1`` or ``2``."""
    seqs = read_otb_folder(path)
    if target is not None:
        seqs = [s for s in seqs if s.name.endswith(f".{target}")]
    if len(seqs) != 1:
        raise DatasetError(f"{path}: {len(seqs)} targets ({', '.join(s.name for s in seqs)}); "
                         "pass target= or use read_otb_folder")
    return seqs[0]
