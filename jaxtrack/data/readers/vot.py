"""VOT layout: ``<root>/list.txt`` (or the folder listing) and ``<seq>/groundtruth.txt``; 1-based.

Ground truth holds 8-value polygons (converted by ``boxes.polygon_to_xywh``, as the VOT
toolkit's rotated boxes) or 4-value boxes; frames sit in ``color/`` (VOT2020+) or at the
sequence root (older releases).
"""
from __future__ import annotations

import os

from jaxtrack.data.readers.common import _make, _require_dir, _select, _seq_dirs, list_frames, read_boxes
from jaxtrack.data.sequence import Sequence

INDEX_BASE = 1  # MATLAB heritage


def read_vot_folder(folder) -> Sequence:
    folder = _require_dir(folder)
    gt_file = os.path.join(folder, "groundtruth.txt")
    color = os.path.join(folder, "color")
    frames = list_frames(color if os.path.isdir(color) else folder)
    return _make(os.path.basename(os.path.normpath(folder)), gt_file, read_boxes(gt_file), frames,
                 "vot", INDEX_BASE)


def load(root, split, sequences) -> list[Sequence]:
    """The sequences of ``list.txt`` (or every subfolder with gt); ``split`` is ignored."""
    root = _require_dir(root)
    dirs = _seq_dirs(root, os.path.join(root, "list.txt"))
    return [read_vot_folder(dirs[n]) for n in _select(dirs, sequences, root)]


def load_folder(path, target: int | None = None) -> Sequence:
    """One sequence folder (``target`` is ignored: one target per VOT sequence)."""
    return read_vot_folder(path)
