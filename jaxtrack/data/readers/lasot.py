"""LaSOT layout: ``<root>/<class>/<class-N>/img/00000001.jpg`` and ``groundtruth.txt``; 1-based.

``full_occlusion.txt``/``out_of_view.txt`` (comma-separated 0/1 per frame) fill
``Sequence.visible``; the gt itself is unchanged (LaSOT's evaluation keeps those boxes).
``split`` is a split file of sequence names (e.g. ``testing_set.txt``).
"""
from __future__ import annotations

import glob
import os

from jaxtrack.data.readers.common import (_make, _read_flags, _read_list, _require_dir, _select,
                                          list_frames, read_boxes)
from jaxtrack.data.sequence import Sequence
from jaxtrack.errors import DatasetNotFoundError

INDEX_BASE = 1  # MATLAB heritage


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
                 "lasot", INDEX_BASE, visible=visible)


def load(root, split, sequences) -> list[Sequence]:
    root = _require_dir(root)
    dirs = {}
    for gt in sorted(glob.glob(os.path.join(root, "*", "*", "groundtruth.txt"))):
        d = os.path.dirname(gt)
        dirs[os.path.basename(d)] = d
    if split is not None:  # a split file: one sequence name per line (e.g. testing_set.txt)
        names = _read_list(split if os.path.isfile(split) else os.path.join(root, split))
        if names is None:
            raise DatasetNotFoundError(f"{split}: LaSOT split file not found")
        sequences = names if sequences is None else [s for s in sequences if s in set(names)]
    if sequences is not None and not isinstance(sequences, str):
        for s in sequences:  # name the expected folder for a missing sequence
            if s not in dirs:
                raise DatasetNotFoundError(f"{os.path.join(root, s.rsplit('-', 1)[0], s)}: sequence folder not found")
    return [read_lasot_folder(dirs[n]) for n in _select(dirs, sequences, root)]


def load_folder(path, target: int | None = None) -> Sequence:
    """One ``<class-N>`` folder."""
    return read_lasot_folder(path)
