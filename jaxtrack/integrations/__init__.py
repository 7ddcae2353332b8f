"""Adapters that run any jaxtrack tracker inside another project's evaluation toolkit.

* :mod:`jaxtrack.integrations.got10k`: ``Got10kTracker``, a ``got10k.trackers.Tracker``
  (the got10k toolkit's OTB / GOT-10k / LaSOT / VOT experiments), and ``experiment_otb``
  (got10k's ``ExperimentOTB`` on any sequences jaxtrack reads). Needs ``got10k``.
  Guide: docs/got10k.md.
* :mod:`jaxtrack.integrations.vot`: a TraX server (``python -m jaxtrack.integrations.vot
  --tracker NAME ...``) for the VOT toolkit, and ``vot_trackers.ini``, its ``trackers.ini``
  template. Needs ``vot-trax`` (the toolkit itself: ``vot-toolkit``). Guide: docs/vot.md.

The submodules import their toolkit at import time, so this package imports neither; the
helpers here are shared by both and need nothing beyond jaxtrack.
"""
from __future__ import annotations

import os

FRAME_FOLDERS = ("img", "color")   # OTB/LaSOT/UAV123 keep frames in img/, VOT 2020+ in color/


def sequence_name_from_path(path) -> str:
    """The sequence a frame file belongs to, from its path: the folder holding the frame, or
    the one above it when that folder is ``img`` (OTB, LaSOT) or ``color`` (VOT 2020+).

    ``.../Basketball/img/0001.jpg`` -> ``Basketball``; ``.../bag/00000001.jpg`` -> ``bag``;
    ``.../GOT-10k_Val_000001/00000001.jpg`` -> ``GOT-10k_Val_000001``. That is the name
    jaxtrack's readers give the sequence, except for OTB's two-target folders (``Jogging``
    for both ``Jogging.1`` and ``Jogging.2``). Symbolic links are not followed: a frame
    linked into a VOT workspace belongs to the workspace's sequence.
    """
    parent = os.path.dirname(os.path.abspath(os.fspath(path)))
    if os.path.basename(parent) in FRAME_FOLDERS:
        parent = os.path.dirname(parent)
    return os.path.basename(parent)
