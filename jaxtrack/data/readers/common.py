"""File helpers shared by the layout readers: frame listing, ground-truth parsing, Sequence making.

Nothing here knows a layout; each ``jaxtrack.data.readers.<layout>`` module passes its
name and ``INDEX_BASE`` to ``_make``.
"""
from __future__ import annotations

import os
import re

import numpy as np

from jaxtrack import boxes as boxes_lib
from jaxtrack import fileio
from jaxtrack.data.sequence import Sequence
from jaxtrack.errors import DatasetError, DatasetNotFoundError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def _require_dir(path) -> str:
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise DatasetNotFoundError(f"{path}: folder not found")
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
        raise DatasetNotFoundError(f"{folder}: no frames found (looked for {', '.join(IMAGE_EXTS)})")
    return [os.path.join(folder, n) for n in sorted(names, key=_frame_number)]


def read_text(path: str, what: str = "file") -> str:
    """A dataset text file as str (UTF-8, a BOM allowed, any line ends), or a named error."""
    data = fileio.read_bytes(path, what, DatasetError, DatasetNotFoundError)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: the {what} is not text (byte {e.start} is not UTF-8)") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_boxes(path: str) -> np.ndarray:
    """Reads a ground-truth file -> (N, 4) boxes in the file's own convention.

    Fields may be separated by commas, tabs or spaces (mixed is fine); CRLF line ends
    and blank lines are tolerated. Each line holds 4 values (x,y,w,h) or 8 (a polygon,
    converted with ``boxes.polygon_to_xywh``); NaN is accepted.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetNotFoundError(f"{path}: ground-truth file not found")
    rows = []
    for lineno, line in enumerate(read_text(path, "ground-truth file").split("\n"), start=1):
        fields = [s for s in re.split(r"[,\s]+", line.strip()) if s]
        if not fields:
            continue
        if len(fields) not in (4, 8):
            raise DatasetError(f"{path}:{lineno}: expected 4 values x,y,w,h (or 8 for a polygon), "
                               f"got {len(fields)}")
        try:
            values = [float(s) for s in fields]
        except ValueError:
            bad = next(s for s in fields if not _is_float(s))
            raise DatasetError(f"{path}:{lineno}: non-numeric value {bad!r}") from None
        if any(np.isinf(values)):
            raise DatasetError(f"{path}:{lineno}: infinite value in {fields} (NaN marks a missing box)")
        rows.append(boxes_lib.polygon_to_xywh(values) if len(values) == 8 else values)
    if not rows:
        raise DatasetError(f"{path}: no boxes in the ground-truth file")
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
    values = [s for s in re.split(r"[,\s]+", read_text(path, "flag file").strip()) if s]
    try:
        flags = np.asarray([float(v) for v in values])
    except ValueError:
        bad = next(v for v in values if not _is_float(v))
        raise DatasetError(f"{path}: non-numeric flag {bad!r}") from None
    return flags > 0


def _read_list(path: str) -> list[str] | None:
    if not os.path.isfile(path):
        return None
    return [s.strip() for s in read_text(path, "list file").split("\n") if s.strip()]


def _make(name, gt_file, boxes, frames, dataset, base, *, pad=False, visible=None, attrs=()):
    """Dataset boxes (``base``-indexed) -> Sequence (jaxtrack xywh), NaN-padding when only
    the first box is given."""
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
        raise DatasetNotFoundError(f"{what}: sequence(s) not found: {', '.join(missing)}")
    return list(sequences)


def _seq_dirs(root: str, list_file: str, gt_name: str = "groundtruth.txt") -> dict[str, str]:
    """Sequence folders of ``root``: from ``list_file`` if present, else every subfolder with gt."""
    names = _read_list(list_file)
    if names is None:
        names = [d for d in sorted(os.listdir(root))
                 if os.path.isfile(os.path.join(root, d, gt_name))]
    return {n: os.path.join(root, n) for n in names}
