"""TrackingNet layout: ``<root>/TRAIN_k|TEST/frames/<seq>/<i>.jpg`` (from 0) and ``anno/<seq>.txt``; 0-based.

The data ships in chunks: ``split`` is ``train`` (every TRAIN_k, in numeric order),
``test`` (the TEST chunk, whose annotation holds only the first box: the other rows become
NaN) or one chunk name.
"""
from __future__ import annotations

import glob
import os
import re

from jaxtrack.data.readers.common import _make, _require_dir, _select, list_frames, read_boxes
from jaxtrack.data.sequence import Sequence
from jaxtrack.errors import DatasetNotFoundError

INDEX_BASE = 0  # got10k toolkit / pytracking


def load(root, split, sequences) -> list[Sequence]:
    root = _require_dir(root)
    if split is None or split.lower() == "train":
        chunks = sorted((d for d in os.listdir(root) if re.fullmatch(r"TRAIN_\d+", d)),
                        key=lambda d: int(d.split("_")[1]))
        if not chunks:
            raise DatasetNotFoundError(f"{root}: no TRAIN_k folders found")
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
        out.append(_make(n, gt_file, read_boxes(gt_file), frames, "trackingnet", INDEX_BASE,
                         pad=(c == "TEST")))
    return out


def load_folder(path, target: int | None = None) -> Sequence:
    """``<chunk>/frames/<seq>`` with its gt from ``<chunk>/anno/<seq>.txt``."""
    path = _require_dir(path)
    chunk, seq = os.path.dirname(os.path.dirname(os.path.normpath(path))), os.path.basename(path)
    gt_file = os.path.join(chunk, "anno", seq + ".txt")
    return _make(seq, gt_file, read_boxes(gt_file), list_frames(path), "trackingnet", INDEX_BASE,
                 pad=os.path.basename(chunk) == "TEST")
