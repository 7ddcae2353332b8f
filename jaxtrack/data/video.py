"""Frames streamed from a video file, a folder of frames or a camera; boxes drawn on frames;
annotated MP4s written.

:func:`open_source` names the input once (``FrameSource``) and fails at once, naming it,
when it is not there or cannot be opened; :meth:`FrameSource.frames` then yields
``(index, RGB uint8 [H, W, 3])`` one frame at a time, so memory does not grow with the
length of the video:

* a video file: anything OpenCV's FFmpeg backend decodes (mp4, avi, mkv...);
* a folder of frames: ``.jpg/.jpeg/.png/.bmp`` files sorted by frame number
  (:func:`jaxtrack.data.readers.common.list_frames`);
* a camera: an integer index (``"0"``); the stream is endless.

Every frame must have the size of the first one (a :class:`~jaxtrack.errors.FrameError`
names the first that does not). :func:`draw_boxes` draws targets (each its own colour,
dashed where the tracker judged it lost); :class:`Mp4Writer` writes an MP4 (``mp4v``) that
appears under its name only when closed.
"""
from __future__ import annotations

import concurrent.futures
import os
import warnings
from typing import Iterator

import cv2
import numpy as np

from jaxtrack.data.sequence import read_image
from jaxtrack.errors import DatasetNotFoundError, FrameError

DEFAULT_FPS = 25.0      # for frame folders, and videos or cameras that do not say


class FrameSource:
    """An opened input: ``kind`` is ``"video"``, ``"folder"`` or ``"camera"``; ``fps`` the
    frame rate the input states (``None`` when it states none); ``frame_count`` the number of
    frames it says it has (``None`` for a camera; for a video, its header's count)."""

    def __init__(self, spec: str, kind: str, *, fps: float | None = None,
                 frame_count: int | None = None, paths: list[str] | None = None,
                 camera: int | None = None):
        self.spec, self.kind, self.fps, self.frame_count = spec, kind, fps, frame_count
        self._paths, self._camera = paths, camera
        self.notes: list[str] = []          # what went wrong without stopping the stream

    @property
    def stem(self) -> str:
        """A short name for output folders: the file's stem, the folder's name, ``camera<i>``."""
        if self.kind == "camera":
            return f"camera{self._camera}"
        base = os.path.basename(os.path.normpath(self.spec))
        return os.path.splitext(base)[0] if self.kind == "video" else base

    def __repr__(self) -> str:
        return f"FrameSource({self.spec!r}, kind={self.kind!r}, frames={self.frame_count})"

    def frames(self, start: int = 0, max_frames: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, RGB uint8 frame)`` from frame ``start`` on, at most ``max_frames``
        of them; ``FrameError`` naming the input (and the frame) when frame ``start`` does not
        exist, a frame cannot be decoded, or a frame's size differs from the first's."""
        if start < 0:
            raise FrameError(f"{self.spec}: start frame {start} is negative")
        if max_frames is not None and max_frames < 1:
            raise FrameError(f"{self.spec}: max_frames must be at least 1, got {max_frames}")
        stop = None if max_frames is None else start + max_frames
        if self.kind == "folder":
            raw = self._folder_frames(start, stop)
        else:
            raw = self._capture_frames(start, stop)
        return self._same_size(raw)

    # -- the three kinds

    def _folder_frames(self, start, stop):
        paths = self._paths
        if start >= len(paths):
            raise FrameError(f"{self.spec}: start frame {start}, but the folder holds "
                             f"{len(paths)} frame(s)")
        for i in range(start, len(paths) if stop is None else min(stop, len(paths))):
            try:
                image = read_image(paths[i])
            except FrameError as e:
                raise FrameError(f"{self.spec} frame {i}: {e}") from None
            yield i, image

    def _capture_frames(self, start, stop):
        cap = _open_capture(self.spec, self._camera)
        what = f"camera {self._camera}" if self.kind == "camera" else self.spec
        try:
            for i in range(start):                          # skip without converting
                if not cap.grab():
                    raise FrameError(f"{what}: start frame {start}, but the "
                                     f"{'stream' if self.kind == 'camera' else 'video'} ends "
                                     f"after {i} frame(s)")
            i = start
            while stop is None or i < stop:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    if i == start:
                        raise FrameError(f"{what}: no frame could be decoded"
                                         + (f" at frame {start}" if start else "")
                                         + (" (the camera gives no image)" if self.kind == "camera"
                                            else " (an empty or corrupt video)"))
                    self._check_end(i)
                    return
                yield i, _bgr_to_rgb(bgr, f"{what} frame {i}")
                i += 1
        finally:
            cap.release()

    def _check_end(self, n: int) -> None:
        """A video that ends well before its header's frame count probably holds frames that
        could not be decoded: say so (a warning, recorded in ``notes``)."""
        if self.kind != "video" or not self.frame_count:
            return
        if n < self.frame_count - max(2, self.frame_count // 100):
            note = (f"{self.spec}: the video ended after {n} frame(s) but its header says "
                    f"{self.frame_count}; the rest could not be decoded")
            self.notes.append(note)
            warnings.warn(note)

    def _same_size(self, frames):
        first = None
        for i, image in frames:
            if first is None:
                first = (i, image.shape[:2])
            elif image.shape[:2] != first[1]:
                (j, (h0, w0)), (h, w) = first, image.shape[:2]
                raise FrameError(f"{self.spec} frame {i}: the frame size changes from {w0}x{h0} "
                                 f"(frame {j}) to {w}x{h}; every frame must have one size")
            yield i, image


def open_source(spec) -> FrameSource:
    """The input ``spec`` names: an existing folder (of frames), an existing file (a video),
    or else an integer (a camera index). Fails now, naming ``spec``:
    :class:`~jaxtrack.errors.DatasetNotFoundError` for a path that does not exist, a folder
    without frames or a camera that is not there, :class:`~jaxtrack.errors.FrameError` for a
    file OpenCV cannot open as a video."""
    spec = os.fspath(spec)
    if os.path.isdir(spec):
        from jaxtrack.data.readers.common import list_frames
        paths = list_frames(spec)
        return FrameSource(spec, "folder", frame_count=len(paths), paths=paths)
    if os.path.isfile(spec):
        return _open_video(spec)
    if spec.strip().isdigit():
        index = int(spec)
        cap = _open_capture(spec, index)
        fps = _stated_fps(cap)
        cap.release()
        return FrameSource(spec, "camera", fps=fps, camera=index)
    raise DatasetNotFoundError(f"{spec}: no such video file or frame folder (a camera is given "
                               "by its index, e.g. 0)")


def _open_video(path: str) -> FrameSource:
    try:
        size = os.path.getsize(path)
        with open(path, "rb"):
            pass
    except OSError as e:
        raise FrameError(f"{path}: cannot read the video ({e.strerror or e})") from None
    if size == 0:
        raise FrameError(f"{path}: empty video file (0 bytes)")
    cap = _open_capture(path, None)
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        return FrameSource(path, "video", fps=_stated_fps(cap), frame_count=count if count > 0 else None)
    finally:
        cap.release()


def _open_capture(spec: str, camera: int | None):
    if camera is not None:
        cap = cv2.VideoCapture(camera)
        if not cap.isOpened():
            cap.release()
            raise DatasetNotFoundError(f"camera {camera} (input {spec!r}): no such camera, or it "
                                       "cannot be opened")
        return cap
    cap = cv2.VideoCapture(spec, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        cap = cv2.VideoCapture(spec)                   # any other backend OpenCV has
    if not cap.isOpened():
        cap.release()
        raise FrameError(f"{spec}: cannot open the video (not a format OpenCV can decode, or a "
                         "corrupt file)")
    return cap


def _stated_fps(cap) -> float | None:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if np.isfinite(fps) and 0 < fps < 1000 else None


def _bgr_to_rgb(bgr: np.ndarray, where: str) -> np.ndarray:
    if bgr.dtype != np.uint8:
        raise FrameError(f"{where}: decoded to {bgr.dtype} pixels; expected 8-bit video")
    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.shape[-1] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def prefetched(frames: Iterator, depth: int = 1) -> Iterator:
    """``frames`` decoded ``depth`` items ahead in one background thread (so decoding overlaps
    tracking; at most ``depth + 1`` frames are held). Exceptions surface where the item would
    have been; closing the returned generator stops the thread and closes ``frames``."""
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="frames")
    end = object()
    pending = []
    try:
        it = iter(frames)
        for _ in range(max(1, depth)):
            pending.append(pool.submit(next, it, end))
        while pending:
            item = pending.pop(0).result()
            if item is end:
                return
            pending.append(pool.submit(next, it, end))
            yield item
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True)
        close = getattr(frames, "close", None)
        if close is not None:
            close()


# ----------------------------------------------------------------------------- drawing

# distinct RGB colours, one per target (tab10 without its grey)
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207))
GREY = (150, 150, 150)


def target_color(k: int) -> tuple[int, int, int]:
    """The RGB colour of target ``k`` (the palette repeats after nine targets)."""
    return PALETTE[k % len(PALETTE)]


def _dashed_rect(img, p0, p1, color, thickness, dash=7):
    (x0, y0), (x1, y1) = p0, p1
    for a, b in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for s in range(0, max(length, 1), 2 * dash):
            t0, t1 = s / max(length, 1), min(s + dash, length) / max(length, 1)
            q0 = (int(round(a[0] + (b[0] - a[0]) * t0)), int(round(a[1] + (b[1] - a[1]) * t0)))
            q1 = (int(round(a[0] + (b[0] - a[0]) * t1)), int(round(a[1] + (b[1] - a[1]) * t1)))
            cv2.line(img, q0, q1, color, thickness, cv2.LINE_AA)


def draw_boxes(image, boxes, *, colors=None, labels=None, dashed=None, thickness: int = 2) -> np.ndarray:
    """A copy of the RGB ``image`` with ``boxes`` (jaxtrack xywh) drawn: box ``k`` in
    ``colors[k]`` (RGB; default :func:`target_color`), solid, or dashed where ``dashed[k]``,
    with ``labels[k]`` (if given) on a tag at its top-left corner. Non-finite boxes are skipped."""
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    for k, box in enumerate(boxes):
        box = np.asarray(box, np.float64)
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            continue
        color = tuple(int(c) for c in (colors[k] if colors is not None else target_color(k)))
        x, y, w, h = np.round(box).astype(int)
        p0, p1 = (int(x), int(y)), (int(x + w), int(y + h))
        if dashed is not None and dashed[k]:
            _dashed_rect(out, p0, p1, color, thickness)
        else:
            cv2.rectangle(out, p0, p1, color, thickness)
        if labels is not None and labels[k]:
            text = str(labels[k])
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
            tx = min(max(p0[0], 0), max(out.shape[1] - tw - 4, 0))
            ty = p0[1] - 3 if p0[1] - th - base - 3 >= 0 else min(max(p0[1], 0) + th + 4, out.shape[0] - 2)
            cv2.rectangle(out, (tx, ty - th - 3), (tx + tw + 4, ty + base - 1), color, -1)
            ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
            cv2.putText(out, text, (tx + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, 0.45, ink, 1, cv2.LINE_AA)
    return out


# ----------------------------------------------------------------------------- writing

class Mp4Writer:
    """Writes RGB frames to an MP4 (OpenCV, ``mp4v``). Frames go to ``<stem>.partial.mp4``
    beside ``path`` (OpenCV picks the container by the extension), which :meth:`close` renames
    to ``path``: a reader never sees a half-written video under its name. The size is set by
    the first frame; ``ok`` is False when OpenCV could not open an encoder (nothing is written)."""

    def __init__(self, path, fps: float = DEFAULT_FPS):
        self.path = os.fspath(path)
        folder, name = os.path.split(os.path.abspath(self.path))
        stem, _ = os.path.splitext(name)
        self.tmp = os.path.join(folder, f"{stem}.partial.mp4")
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else DEFAULT_FPS
        self.frames = 0
        self.ok = True
        self._writer = None
        self._size = None
        self._closed = None

    def write(self, rgb) -> bool:
        if not self.ok:
            return False
        h, w = rgb.shape[:2]
        if self._writer is None:
            os.makedirs(os.path.dirname(self.tmp), exist_ok=True)
            self._writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            self._size = (h, w)
            if not self._writer.isOpened():
                self.ok = False
                self._writer = None
                return False
        if (h, w) != self._size:
            raise FrameError(f"{self.path}: frame {self.frames} is {w}x{h}, the video "
                             f"{self._size[1]}x{self._size[0]}")
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8), cv2.COLOR_RGB2BGR))
        self.frames += 1
        return True

    def close(self) -> str | None:
        """Finish the file and move it to ``path``; returns ``path``, or None if nothing was
        written (closing again returns the same)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if self.frames:
                os.replace(self.tmp, self.path)
                self._closed = self.path
            else:
                os.unlink(self.tmp)
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
