"""Readers for the common tracking-benchmark folder layouts -> ``Sequence`` lists.

One module per layout (``jaxtrack.data.readers.<name>``, described in its docstring and
in docs/datasets.md), each defining ``INDEX_BASE`` (the gt files' pixel index base),
``load(root, split, sequences)`` and ``load_folder(path, target=None)``. ``LAYOUTS`` is
the one list of layout names: ``load_dataset``, ``load_sequence``, ``INDEX_BASE`` and the
TFDS configs (``jaxtrack.data.tfds_dataset``) are all built from it. Adding a layout:
one module here plus its name in ``LAYOUTS`` (and a test).

Index bases follow the got10k toolkit and pytracking: OTB, VOT, LaSOT, UAV123 files are
1-based (MATLAB heritage), GOT-10k and TrackingNet 0-based. Boxes are converted to
jaxtrack xywh with ``boxes.from_dataset``.
"""
from __future__ import annotations

import importlib
import os

from jaxtrack.data.readers.common import IMAGE_EXTS, _require_dir, list_frames, read_boxes
# the per-folder readers of the former single-module readers, still importable from here
from jaxtrack.data.readers.got10k import read_got10k_folder
from jaxtrack.data.readers.lasot import read_lasot_folder
from jaxtrack.data.readers.otb import read_otb_folder
from jaxtrack.data.readers.vot import read_vot_folder
from jaxtrack.data.sequence import Sequence
from jaxtrack.errors import DatasetError, DatasetNotFoundError

# The one list of layout names, in the order error messages list them: each is a module
# jaxtrack.data.readers.<name> (lowercase, no '-' or '_': names are matched that way).
LAYOUTS = ("otb", "vot", "got10k", "lasot", "trackingnet", "uav123")

_MODULES = {name: importlib.import_module(f"{__name__}.{name}") for name in LAYOUTS}
INDEX_BASE = {name: m.INDEX_BASE for name, m in _MODULES.items()}

__all__ = ["LAYOUTS", "INDEX_BASE", "IMAGE_EXTS", "load_dataset", "load_sequence", "list_frames",
           "read_boxes", "read_otb_folder", "read_vot_folder", "read_got10k_folder",
           "read_lasot_folder"]


def _layout(name: str):
    """The layout module for ``name`` (case, '-' and '_' ignored: "GOT-10k" is got10k), or None."""
    return _MODULES.get(name.lower().replace("-", "").replace("_", ""))


def _unknown(name: str) -> DatasetError:
    return DatasetError(f"unknown dataset layout {name!r}; choose from {', '.join(LAYOUTS)}")


def load_dataset(name: str, root, split=None, sequences=None) -> list[Sequence]:
    """Loads every sequence of a dataset folder (or only ``sequences``, by name).

    Args:
      name: layout, one of ``LAYOUTS`` (otb, vot, got10k, lasot, trackingnet, uav123).
      root: dataset root folder.
      split: got10k: train/val/test (None: the only split present, or root itself);
        trackingnet: train/test/TRAIN_k; uav123: UAV123/UAV20L; lasot: a split file of
        sequence names; ignored for otb and vot.
      sequences: optional list of sequence names to load, in that order.
    """
    module = _layout(name)
    if module is None:
        raise _unknown(name)
    found = module.load(os.fspath(root), split, sequences)
    if not found:
        raise DatasetNotFoundError(f"{os.fspath(root)}: no sequences found in the {name} layout "
                                   f"(split {split!r}; the layouts: docs/datasets.md)")
    return found


def load_sequence(path, dataset: str = "otb", target: int | None = None) -> Sequence:
    """Loads one sequence folder in the given layout.

    For an OTB folder with two targets (``groundtruth_rect.1.txt``/``.2.txt``) pass
    ``target=1`` or ``2``; ``read_otb_folder`` returns both.
    """
    module = _layout(dataset)
    path = _require_dir(path)  # a missing folder is reported before an unknown layout
    if module is None:
        raise _unknown(dataset)
    return module.load_folder(path, target=target)
