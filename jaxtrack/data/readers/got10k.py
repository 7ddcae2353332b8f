"""GOT-10k layout: ``<root>/<split>/<seq>/00000001.jpg``, ``groundtruth.txt``, ``list.txt``; 0-based.

The test split ships only the first box (the other rows become NaN, as the got10k toolkit
expects). ``absence.label`` fills ``Sequence.visible``. ``root`` may be the dataset folder
(with train/val/test) or one split folder.
"""
from __future__ import annotations

import os

from jaxtrack.data.readers.common import (_make, _read_flags, _require_dir, _select, _seq_dirs,
                                          list_frames, read_boxes)
from jaxtrack.data.sequence import Sequence
from jaxtrack.errors import DatasetError

INDEX_BASE = 0  # got10k toolkit / pytracking


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
                 INDEX_BASE, pad=test, visible=visible)


def load(root, split, sequences) -> list[Sequence]:
    """``split``: train/val/test (None: the only split present, or ``root`` itself)."""
    root = _require_dir(root)
    if split is None:
        if os.path.isfile(os.path.join(root, "list.txt")) or not any(
                os.path.isdir(os.path.join(root, s)) for s in ("train", "val", "test")):
            split_dir = root  # root is itself a split folder
        else:
            present = [s for s in ("train", "val", "test") if os.path.isdir(os.path.join(root, s))]
            if len(present) != 1:
                raise DatasetError(f"{root}: several GOT-10k splits ({', '.join(present)}); pass split=")
            split_dir = os.path.join(root, present[0])
    else:
        split_dir = _require_dir(os.path.join(root, split))
    dirs = _seq_dirs(split_dir, os.path.join(split_dir, "list.txt"))
    test = os.path.basename(os.path.normpath(split_dir)) == "test"
    return [read_got10k_folder(dirs[n], test=test) for n in _select(dirs, sequences, split_dir)]


def load_folder(path, target: int | None = None) -> Sequence:
    """One sequence folder; a folder under ``test/`` is NaN-padded."""
    return read_got10k_folder(path)
