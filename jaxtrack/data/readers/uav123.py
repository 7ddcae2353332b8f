"""UAV123 layout: ``<root>/data_seq/UAV123/<seq>/000001.jpg`` and ``anno/UAV123/<seq>.txt``; 1-based.

NaN rows are allowed. ``split`` picks ``UAV123`` (default) or ``UAV20L``, whose frames are
read from ``data_seq/UAV20L`` if present, else ``data_seq/UAV123``. Sub-sequences such as
``bird1_1`` that have no folder of their own are cut out of ``bird1`` by the start/end
frame table of the got10k toolkit (``got10k/datasets/uav123.json``, read if that package
is installed; ``_uav123_table``); without it such sequences raise a clear error.
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os

from jaxtrack.data.readers.common import (_frame_number, _make, _require_dir, _select, list_frames,
                                          read_boxes)
from jaxtrack.data.sequence import Sequence

INDEX_BASE = 1  # MATLAB heritage


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


def load(root, split, sequences) -> list[Sequence]:
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
        out.append(_make(n, gt_file, boxes, frames, "uav123", INDEX_BASE))
    return out


def load_folder(path, target: int | None = None) -> Sequence:
    """``data_seq/<version>/<seq>`` with its gt from ``anno/<version>/<seq>.txt``."""
    path = _require_dir(path)
    version_dir = os.path.dirname(os.path.normpath(path))
    root = os.path.dirname(os.path.dirname(version_dir))
    return load(root, os.path.basename(version_dir), [os.path.basename(path)])[0]
