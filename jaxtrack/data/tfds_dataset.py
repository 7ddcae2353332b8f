"""Pack tracking datasets into TFDS array_record files and sample training pairs from them.

Works without TensorFlow: the features are plain numpy tensors and encoded JPEG bytes
(decoded here with OpenCV), which TFDS 4.9 serialises, writes to array_record and
reads back through ``tfds.data_source`` without importing TensorFlow.

Record design: one record per frame, in sequence order (shuffling disabled, the key
is the frame's global index in its split), holding

    image   encoded JPEG bytes (source JPEGs are copied byte for byte; others encoded)
    box     float64 (4,) jaxtrack xywh, NaN where unannotated
    valid   bool: finite non-empty box and the target is visible
    seq     int32 sequence index in the split
    frame   int32 frame index in the sequence
    height, width  int32 frame size

so any frame can be read without touching the rest of its sequence. A per-split
table (sequence names, record offsets, lengths, and a '0'/'1' validity string per
sequence) is stored in the dataset's ``metadata.json`` (``builder.info.metadata``), so
a sampler knows where every sequence is and which frames are usable without reading
any record.

Usage::

    builder = build_tfds("/data/got10k", "/data/tfds", layout="got10k")
    source = builder.as_data_source()["train"]   # or tfds.data_source("tracking_frames/got10k", ...)
    sampler = PairSampler(source, max_gap=100, seed=0)
    image_z, box_z, image_x, box_x = sampler[17]
"""
from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core.utils import py_utils

from jaxtrack.data import readers
from jaxtrack.data.sequence import FrameError, decode_image

# The readers' layouts, got10k (the default config: TFDS's first BUILDER_CONFIG) first.
LAYOUTS = ("got10k",) + tuple(name for name in readers.LAYOUTS if name != "got10k")
# reader splits packed by default, per layout: {tfds split name: reader split}
_DEFAULT_SPLITS = {"got10k": ("train", "val"), "trackingnet": ("train",)}


@dataclasses.dataclass
class TrackingFramesConfig(tfds.core.BuilderConfig):
    """``layout``: a ``readers.load_dataset`` name; ``splits``: reader splits to pack
    (empty: GOT-10k's train/val folders that exist, one ``train`` split otherwise)."""
    layout: str = "got10k"
    splits: tuple[str, ...] = ()
    jpeg_quality: int = 95


class TrackingFrames(tfds.core.GeneratorBasedBuilder):
    """Frames of a local tracking dataset (``manual_dir``), one record per frame."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "One record per frame; per-split sequence table in metadata."}
    BUILDER_CONFIGS = [TrackingFramesConfig(name=name, layout=name) for name in LAYOUTS]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Point manual_dir at a dataset folder in one of the layouts jaxtrack.data.readers "
        f"understands ({', '.join(LAYOUTS)}) and pick the matching config.")

    # TFDS locates a builder's source through `importlib_resources` for classes defined in a
    # package, which is not installed here; the plain file path is what it would find anyway.
    @py_utils.classproperty
    @classmethod
    def code_path(cls):
        return epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Tracking frames with jaxtrack xywh boxes (0-based continuous pixels).",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(), dtype=np.object_),  # JPEG bytes
                "box": tfds.features.Tensor(shape=(4,), dtype=np.float64),
                "valid": tfds.features.Tensor(shape=(), dtype=np.bool_),
                "seq": tfds.features.Tensor(shape=(), dtype=np.int32),
                "frame": tfds.features.Tensor(shape=(), dtype=np.int32),
                "height": tfds.features.Tensor(shape=(), dtype=np.int32),
                "width": tfds.features.Tensor(shape=(), dtype=np.int32),
            }),
            metadata=tfds.core.MetadataDict(),
            # Keep key order so that record index == offsets[seq] + frame.
            disable_shuffling=True,
        )

    def _reader_splits(self, manual_dir: str) -> dict[str, str | None]:
        layout = self.builder_config.layout
        wanted = self.builder_config.splits or _DEFAULT_SPLITS.get(layout, ())
        if layout == "got10k":
            present = [s for s in wanted if os.path.isdir(os.path.join(manual_dir, s))]
            if present:
                return {s: s for s in present}
            return {"train": None}  # manual_dir is itself a split folder
        if not wanted:
            return {"train": None}
        return {s.lower(): s for s in wanted}

    def _split_generators(self, dl_manager):
        manual_dir = os.fspath(dl_manager.manual_dir)
        out = {}
        for split, reader_split in self._reader_splits(manual_dir).items():
            seqs = readers.load_dataset(self.builder_config.layout, manual_dir, split=reader_split)
            lengths = [len(s) for s in seqs]
            self.info.metadata[split] = {
                "names": [s.name for s in seqs],
                "offsets": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist(),
                "lengths": lengths,
                "valid": ["".join("1" if v else "0" for v in s.valid) for s in seqs],
                "index_base": [int(s.index_base) for s in seqs],
                "dataset": self.builder_config.layout,
            }
            out[split] = self._generate_examples(seqs)
        return out

    def _generate_examples(self, seqs):
        key = 0
        for si, seq in enumerate(seqs):
            valid = seq.valid
            for fi in range(len(seq)):
                data, (h, w) = _encoded_frame(seq, fi, self.builder_config.jpeg_quality)
                yield key, {"image": data, "box": seq.gt[fi].astype(np.float64), "valid": bool(valid[fi]),
                            "seq": si, "frame": fi, "height": h, "width": w}
                key += 1


def _encoded_frame(seq, i, quality):
    """(JPEG bytes, (h, w)) of frame ``i``: a JPEG file verbatim (checked), else re-encoded."""
    if seq.images is None and seq.frame_paths[i].lower().endswith((".jpg", ".jpeg")):
        path = seq.frame_paths[i]
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise FrameError(f"{path}: cannot read frame ({e})") from None
        img = decode_image(data, where=path)  # fail at build time, not in a training step
        return data, img.shape[:2]
    img = seq.frame(i)
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise FrameError(f"{seq.name}: cannot encode frame {i}")
    return buf.tobytes(), img.shape[:2]


def build_tfds(manual_dir, data_dir, layout: str = "got10k", splits=None, jpeg_quality: int = 95):
    """Packs ``manual_dir`` (in ``layout``) into array_record files under ``data_dir``.

    Returns the prepared builder; ``builder.as_data_source()[split]`` reads it back.
    Already-built data is reused (TFDS skips preparation when it finds it).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    manual_dir = os.fspath(manual_dir)
    if not os.path.isdir(manual_dir):
        raise FileNotFoundError(f"{manual_dir}: dataset folder not found")
    if splits is None and jpeg_quality == 95:
        config = layout  # a registered config: tfds.data_source("tracking_frames/<layout>") finds it
    else:
        config = TrackingFramesConfig(name=layout, layout=layout, splits=tuple(splits or ()),
                                      jpeg_quality=jpeg_quality)
    builder = TrackingFrames(config=config, data_dir=os.fspath(data_dir), file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return builder


# ----------------------------------------------------------------------------- reading

def sequence_table(data_source) -> dict:
    """The split's sequence table (names, offsets, lengths, valid) of a TFDS data source.

    Read from the dataset metadata; if it is missing (data packed by other means),
    rebuilt by reading every record once.
    """
    info = getattr(data_source, "dataset_info", None)
    split = str(getattr(data_source, "split", ""))
    meta = getattr(info, "metadata", None) if info is not None else None
    if meta is not None and split in meta:
        return dict(meta[split])
    seqs, frames, valid = [], [], []
    for i in range(len(data_source)):
        r = data_source[i]
        seqs.append(int(r["seq"]))
        frames.append(int(r["frame"]))
        valid.append(bool(r["valid"]))
    seqs, frames = np.asarray(seqs), np.asarray(frames)
    names, offsets, lengths, vstr = [], [], [], []
    for s in np.unique(seqs):
        idx = np.flatnonzero(seqs == s)
        if not np.array_equal(frames[idx], np.arange(len(idx))) or idx[-1] - idx[0] + 1 != len(idx):
            raise ValueError(f"sequence {s}: records are not stored contiguously in frame order")
        names.append(str(s))
        offsets.append(int(idx[0]))
        lengths.append(len(idx))
        vstr.append("".join("1" if valid[j] else "0" for j in idx))
    return {"names": names, "offsets": offsets, "lengths": lengths, "valid": vstr}


def read_frame(data_source, index: int):
    """Record ``index`` decoded: (uint8 RGB image, xywh box, seq index, frame index)."""
    r = data_source[int(index)]
    return _decode(r, index) + (int(r["seq"]), int(r["frame"]))


def _decode(record, index):
    img = decode_image(record["image"], where=f"record {index}")
    return img, np.asarray(record["box"], np.float64)


class PairSampler:
    """Random-access (template, search) training pairs from a TFDS frame data source.

    ``sampler[i]`` returns ``(image_z, box_z, image_x, box_x)``: uint8 RGB frames and
    jaxtrack xywh boxes of two valid frames of the same sequence at most ``max_gap``
    frames apart (distinct frames whenever the sequence allows it). Index ``i`` picks
    sequence ``i % len(sampler)`` (so indices ``0..len-1`` visit every usable sequence
    once, as SiamFC's epochs do) and the frames with ``default_rng([seed, i])``: the
    result depends only on ``(seed, i)``, not on call order or worker.
    """

    def __init__(self, data_source, max_gap: int = 100, seed: int = 0, table: dict | None = None):
        self.source = data_source
        self.max_gap = int(max_gap)
        self.seed = int(seed)
        t = table or sequence_table(data_source)
        self.names = list(t["names"])
        self.offsets = np.asarray(t["offsets"], np.int64)
        self.valid_frames = [np.flatnonzero(np.frombuffer(v.encode(), np.uint8) == ord("1"))
                             for v in t["valid"]]
        self.usable = np.asarray([i for i, v in enumerate(self.valid_frames) if len(v)], np.int64)
        if len(self.usable) == 0:
            raise ValueError("no sequence has a frame with a valid box")

    def __len__(self) -> int:
        return len(self.usable)

    def choose(self, index: int, rng: np.random.Generator | None = None) -> tuple[int, int, int]:
        """(sequence, frame_z, frame_x) for ``index``; ``rng`` overrides the per-index one."""
        rng = rng if rng is not None else np.random.default_rng([self.seed, int(index)])
        seq = int(self.usable[int(index) % len(self.usable)])
        frames = self.valid_frames[seq]
        z = int(rng.choice(frames))
        near = frames[np.abs(frames - z) <= self.max_gap]
        others = near[near != z]
        x = int(rng.choice(others)) if len(others) else z
        return seq, z, x

    def sample(self, index: int, rng: np.random.Generator | None = None):
        seq, z, x = self.choose(index, rng)
        keys = [int(self.offsets[seq] + z), int(self.offsets[seq] + x)]
        records = self.source.__getitems__(keys) if hasattr(self.source, "__getitems__") \
            else [self.source[k] for k in keys]
        for k, r, f in zip(keys, records, (z, x)):
            if int(r["seq"]) != seq or int(r["frame"]) != f:  # the table must match the records
                raise ValueError(f"record {k} holds sequence {int(r['seq'])} frame {int(r['frame'])}, "
                                 f"expected sequence {seq} frame {f}: stale sequence table?")
        image_z, box_z = _decode(records[0], keys[0])
        image_x, box_x = _decode(records[1], keys[1])
        return image_z, box_z, image_x, box_x

    __getitem__ = sample
