"""Where training pairs come from: photographs shipped in PyPI/Debian packages (and RGBA
object cut-outs), synthetic sequences, frames packed with the TFDS builder; never a
benchmark sequence. The default folders are where ``experiments/fetch_training_images.py``
writes.
"""
from __future__ import annotations

import glob
import os
from typing import NamedTuple

import numpy as np

DEFAULT_IMAGES = os.path.expanduser("~/.cache/jaxtrack/train_images")
DEFAULT_OBJECTS = os.path.expanduser("~/.cache/jaxtrack/train_objects")
DEFAULT_VIDEOS = os.path.expanduser("~/.cache/jaxtrack/train_videos")


def _split_files(files: list[str], split: str | None) -> list[str]:
    """``files`` in ``split`` (None: all; "train"/"validation": by content, see
    :func:`jaxtrack.data.validation.is_validation`)."""
    if split is None:
        return files
    from jaxtrack.data.validation import in_split
    out = []
    for f in files:
        with open(f, "rb") as fh:
            if in_split(fh.read(), split):
                out.append(f)
    return out


def image_files(folder: str | None, split: str | None = None) -> list[str]:
    """The photographs (``*.jpg``, ``*.png``) of ``folder`` in ``split``, sorted by name."""
    if not folder:
        return []
    files = sorted(glob.glob(os.path.join(folder, "*.jpg")) + glob.glob(os.path.join(folder, "*.png")))
    return _split_files(files, split)


def object_files(folder: str | None, split: str | None = None) -> list[str]:
    """The cut-out files (``*.png``) of ``folder`` in ``split``, sorted by name."""
    return _split_files(sorted(glob.glob(os.path.join(folder, "*.png"))) if folder else [], split)


def read_photo(path: str) -> np.ndarray | None:
    """One photograph as uint8 RGB, or None if it cannot be decoded."""
    import cv2
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_cutout(path: str) -> np.ndarray | None:
    """One cut-out as uint8 RGBA ``[h, w, 4]``, or None if it cannot be decoded or has no alpha."""
    import cv2
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 4:
        return None
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)


def load_images(folder: str | None, max_images: int | None = None, split: str | None = None) -> list[np.ndarray]:
    """The training photographs in ``folder`` (``*.jpg``, ``*.png``) as uint8 RGB arrays.

    ``split``: None, all files; "train", the files not held out for validation;
    "validation", only the held-out ones (about 1 in 5, chosen by file content)."""
    images = [read_photo(f) for f in image_files(folder, split)[:max_images]]
    return [img for img in images if img is not None]


def load_objects(folder: str | None, split: str | None = None) -> list[np.ndarray]:
    """RGBA object cut-outs (``*.png`` with alpha, see ``fetch_training_images.py
    --objects-out``) as uint8 ``[h, w, 4]`` arrays; files without alpha are skipped.
    ``split`` as in :func:`load_images`."""
    objects = [read_cutout(f) for f in object_files(folder, split)]
    return [obj for obj in objects if obj is not None]


def video_files(folder: str | None) -> list[str]:
    """The videos (``*.avi``, ``*.mp4``) of ``folder``, sorted by name."""
    if not folder:
        return []
    return sorted(glob.glob(os.path.join(folder, "*.avi")) + glob.glob(os.path.join(folder, "*.mp4")))


def load_video_tracks(folder: str | None, split: str = "train") -> list:
    """The pseudo-labelled tracks (:mod:`jaxtrack.data.motion_tracks`) of every video in
    ``folder`` that fall in ``split`` of its time split, as in-memory sequences."""
    from jaxtrack.data.motion_tracks import video_tracks
    return [seq for path in video_files(folder) for seq in video_tracks(path, split)]


def pair_sources(images_dir: str | None, synthetic: int, seed: int, tfds_dir: str | None = None,
                 max_gap: int = 50, num_frames: int = 60, appearance_change: float = 0.0,
                 split: str | None = "train"):
    """(photographs, synthetic sequences, TFDS pair sampler or None).

    Photographs come from ``split`` of ``images_dir``: "train" by default, so the files held
    out for the validation set (docs/validation.md) are never trained on.

    Synthetic sequences use seeds ``[seed + 1000, i]``, disjoint from the seeds tests and
    the demo track; ``appearance_change`` is :func:`synthetic.make_sequence`'s. Exits with a
    clear message when no source is given.
    """
    images = load_images(images_dir, split=split)
    sequences = []
    if synthetic > 0:
        from jaxtrack.data.synthetic import make_dataset
        sequences = make_dataset(seed + 1000, synthetic, num_frames=num_frames,
                                 appearance_change=appearance_change)
    sampler = None
    if tfds_dir:
        from jaxtrack.data.tfds_dataset import PairSampler, load_data_source
        sampler = PairSampler(load_data_source(tfds_dir), max_gap=max_gap, seed=seed)
    if not images and not sequences and sampler is None:
        raise SystemExit("no training data: pass --images DIR and/or --synthetic N and/or --tfds-dir")
    return images, sequences, sampler


PAIR_KINDS = ("image", "sequence", "tfds", "paste", "object", "video")


class PairMix(NamedTuple):
    """Where training pairs come from: the three sources of :func:`pair_sources`, plus
    copy-paste pairs (``paste``; with RGBA ``objects``), pseudo-labelled tracks of real video
    (``videos``, :func:`load_video_tracks`) and ``kinds``, the subset of :data:`PAIR_KINDS`
    drawn (None: every kind present), to train on one source alone."""
    images: list
    sequences: list
    sampler: object = None
    objects: tuple = ()
    paste: bool = False
    kinds: tuple | None = None
    videos: tuple = ()


def raw_pair(rng: np.random.Generator, images, sequences, sampler, index: int, paste: bool = False,
             objects=(), kinds=None, videos=()):
    """(image_z, box_z, image_x, box_x) from a source chosen at random among those present.

    ``paste`` adds copy-paste pairs (:func:`pairs.paste_pair`) as further sources: shapes cut
    from the photographs and, when ``objects`` (RGBA cut-outs) are given, those objects, both
    pasted on the photographs. Off by default, so the pair streams without it stay the same.
    ``videos``: pseudo-labelled tracks of real video, two frames of one track.
    ``kinds`` keeps only those of :data:`PAIR_KINDS` (None: all present)."""
    from jaxtrack.data import pairs
    kinds = [k for k, have in (("image", images), ("sequence", sequences), ("tfds", sampler),
                               ("paste", paste and images), ("object", paste and images and len(objects)),
                               ("video", len(videos)))
             if have and (kinds is None or k in kinds)]
    if not kinds:
        raise ValueError("no training pair source left: the pair kinds asked for have no data")
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "image":
        return pairs.image_pair(rng, images[int(rng.integers(len(images)))])
    if kind in ("paste", "object"):
        pool = objects if kind == "object" else images
        return pairs.paste_pair(rng, images[int(rng.integers(len(images)))],
                                pool[int(rng.integers(len(pool)))])
    if kind in ("sequence", "video"):
        pool = videos if kind == "video" else sequences
        return pairs.sequence_pair(rng, pool[int(rng.integers(len(pool)))])
    return sampler[index]
