"""One tracking sequence: frames (on disk or in memory) plus ground truth in jaxtrack xywh.

Every reader in ``jaxtrack.data`` returns ``Sequence`` objects; trackers, metrics and
training code only ever see this type. Ground truth is already converted to the
jaxtrack convention (``boxes.py``: 0-based continuous pixel coordinates);
``index_base`` remembers the dataset's own convention so results can be written
back with ``boxes.to_dataset(box, seq.index_base)``.

Validation happens once, at construction: gt/frame counts must agree and the
first box must be a usable initialisation inside the first frame. Later frames
may hold NaN rows (target absent or unannotated, e.g. GOT-10k test, UAV123).
"""
from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np

from jaxtrack import boxes as boxes_lib
from jaxtrack import fileio
from jaxtrack.errors import DatasetError, FrameError  # FrameError: also jaxtrack.data's


def _to_rgb(img: np.ndarray) -> np.ndarray:
    """Any uint8 image (HxW, HxWx1, HxWx3, HxWx4; RGB order) -> contiguous HxWx3 RGB."""
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    elif img.shape[-1] == 4:
        img = img[..., :3]  # drop alpha: trackers see the colour channels only
    return np.ascontiguousarray(img, dtype=np.uint8)


def read_image(path: str) -> np.ndarray:
    """Reads an image file as uint8 RGB HxWx3; raises ``FrameError`` naming the file when it
    is missing, cannot be decoded, or is a truncated JPEG (which decoders fill with grey)."""
    return decode_image(fileio.read_bytes(path, "frame file", FrameError), path)


def decode_image(data: bytes, where: str = "image bytes") -> np.ndarray:
    """Decodes encoded image bytes (JPEG/PNG...) to uint8 RGB HxWx3 (EXIF orientation ignored:
    annotations refer to the stored pixel grid); ``FrameError`` naming ``where`` otherwise."""
    if not data:
        raise FrameError(f"{where}: empty image file (0 bytes)")
    if _truncated_jpeg(data):
        raise FrameError(f"{where}: truncated JPEG (no end-of-image marker; {len(data)} bytes)")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as e:
        raise FrameError(f"{where}: cannot decode the image ({str(e).strip().splitlines()[-1]})") from None
    if img is None:
        raise FrameError(f"{where}: cannot decode the image (corrupt or unsupported file)")
    return np.ascontiguousarray(img[..., ::-1])  # BGR -> RGB


def _truncated_jpeg(data: bytes) -> bool:
    """A JPEG whose data stops before its end-of-image marker. Files that do not end with the
    marker (trailing bytes after it are legal) are checked by a full decode with PIL."""
    if data[:2] != b"\xff\xd8":
        return False
    if data.rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9"):
        return False
    try:
        import io

        from PIL import Image, ImageFile
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            return not b"\xff\xd9" in data[-4096:]
        with Image.open(io.BytesIO(data)) as im:
            im.load()
        return False
    except ImportError:
        return b"\xff\xd9" not in data[-4096:]
    except (OSError, SyntaxError, ValueError):      # PIL: "image file is truncated" and kin
        return True


def image_size(path: str) -> tuple[int, int]:
    """(h, w) of an image file, from its header when PIL is available (no full decode)."""
    try:
        from PIL import Image
        with Image.open(path) as im:
            w, h = im.size
        return int(h), int(w)
    except ImportError:
        pass
    except FileNotFoundError:
        raise FrameError(f"{path}: frame file not found") from None
    except Exception:  # PIL cannot parse it: let the full decoder give the verdict
        pass
    return read_image(path).shape[:2]


@dataclasses.dataclass(frozen=True, eq=False)
class Sequence:
    """A tracking sequence.

    Attributes:
      name: sequence name (``<seq>.1``/``<seq>.2`` for OTB's two-target folders).
      gt: (N, 4) float64 jaxtrack xywh; NaN rows where the target is absent/unannotated.
      index_base: the dataset's pixel index base (1: OTB/VOT/LaSOT/UAV123, 0: GOT-10k,
        TrackingNet, synthetic) for writing results back with ``boxes.to_dataset``.
      frame_paths: one image file per frame, in order.
      images: alternatively, in-memory uint8 RGB frames [N, H, W, 3] (grey [N, H, W] and
        RGBA are accepted; ``frame`` returns RGB).
      attrs: free-form sequence attributes (e.g. OTB's "IV", "SV", ...).
      dataset: the dataset/layout name the sequence came from.
      gt_file: the ground-truth file, named in error messages ("" for in-memory data).
      visible: optional (N,) bool, False where the dataset flags the target as absent
        (GOT-10k ``absence.label``, LaSOT full occlusion / out of view) while still
        giving a box; evaluation uses ``gt`` unchanged, training samplers skip these.
    """
    name: str
    gt: np.ndarray
    index_base: int
    frame_paths: tuple[str, ...] = ()
    images: np.ndarray | None = None
    attrs: tuple[str, ...] = ()
    dataset: str = ""
    gt_file: str = ""
    visible: np.ndarray | None = None

    def __post_init__(self):
        where = self.gt_file or self.name
        gt = np.array(self.gt, dtype=np.float64)  # own copy: the sequence is immutable
        if gt.ndim != 2 or gt.shape[1] != 4:
            raise DatasetError(f"{where}: ground truth must be (N, 4) x,y,w,h, got shape {gt.shape}")
        gt.setflags(write=False)
        object.__setattr__(self, "gt", gt)
        object.__setattr__(self, "frame_paths", tuple(os.fspath(p) for p in self.frame_paths))
        object.__setattr__(self, "attrs", tuple(self.attrs))
        if self.images is not None:
            if self.frame_paths:
                raise DatasetError(f"{self.name}: give frame_paths or images, not both")
            images = np.asarray(self.images)
            channels_ok = images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (1, 3, 4))
            if images.dtype != np.uint8 or not channels_ok:
                raise DatasetError(f"{self.name}: images must be uint8 [N, H, W(, 1|3|4)], got "
                                 f"{images.dtype} {images.shape}")
            object.__setattr__(self, "images", images)
        if self.visible is not None:
            vis = np.asarray(self.visible, dtype=bool).reshape(-1)
            if len(vis) != len(gt):
                raise DatasetError(f"{where}: {len(vis)} visibility flags for {len(gt)} boxes")
            object.__setattr__(self, "visible", vis)
        n = len(self)
        if n == 0:
            raise DatasetError(f"{where}: sequence {self.name!r} has no frames")
        if len(gt) != n:
            raise DatasetError(f"{where}: {len(gt)} ground-truth boxes but {n} frames "
                             f"(sequence {self.name!r})")
        boxes_lib.validate_box(gt[0], self.frame_size(0), where=f"{where}:1")

    def __len__(self) -> int:
        return len(self.images) if self.images is not None else len(self.frame_paths)

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as contiguous uint8 RGB HxWx3."""
        if self.images is not None:
            return _to_rgb(self.images[i])
        return read_image(self.frame_paths[i])

    def frame_size(self, i: int = 0) -> tuple[int, int]:
        """(h, w) of frame ``i`` (image header only, for files)."""
        if self.images is not None:
            return tuple(int(s) for s in self.images.shape[1:3])
        return image_size(self.frame_paths[i])

    @property
    def init_box(self) -> np.ndarray:
        """The first ground-truth box (jaxtrack xywh), used to initialise trackers."""
        return self.gt[0]

    @property
    def valid(self) -> np.ndarray:
        """(N,) bool: frames with a finite, non-empty box where the target is visible."""
        g = self.gt
        ok = np.all(np.isfinite(g), axis=1) & (np.nan_to_num(g[:, 2]) > 0) & (np.nan_to_num(g[:, 3]) > 0)
        return ok if self.visible is None else ok & self.visible

    def __repr__(self) -> str:
        return f"Sequence(name={self.name!r}, dataset={self.dataset!r}, frames={len(self)})"
