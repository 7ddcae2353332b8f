r"""Track targets in your own video, frame folder or camera, from boxes on the first frame.

    jaxtrack track walk.mp4 --tracker siamfc --backbone mobilenet_v2 \
        --box 129,131,31,115 [--box 300,90,25,70 ...] [--out track_out/walk]

INPUT is a video file (anything OpenCV decodes: mp4, avi, mkv...), a folder of frames
(.jpg/.png/.bmp, sorted by frame number) or a camera index (0). Frames are streamed, one
at a time: memory does not grow with the length of the video.

--box x,y,w,h gives a target on the first frame (the frame --start-frame names) in
jaxtrack's convention: 0-based pixels, (x, y) the top-left corner, (w, h) the size, so
the image spans [0, W) x [0, H); a box from a 1-based (OTB-style) file needs 1 taken off
x and y. Repeat --box for more targets: all are tracked at once, one batched, compiled
step per frame (jaxtrack.batch), each with its own PRNG key (seed, "target<k>"), so a
target's boxes are those it gets when tracked alone. Negative x: --box=-5,10,40,40.
Without --box, the first frame opens in a window (where a display exists): drag a box,
press "a" to add it and draw the next, "d" to drop the last, Enter (or close the
window) to start tracking.

Writes into --out (default track_out/<input name>):

  boxes_<k>.txt   target k's box on every frame: one "x,y,w,h" line per frame, no
                  header, same convention as --box; line 1 is the start frame (the
                  given box), line j is frame start + j - 1
  scores_<k>.txt  one "score,lost,finite" line per frame: the tracker's confidence,
                  1 where it judged the target lost, 0 where its state stopped being
                  finite (the boxes then repeat the last finite one)
  annotated.mp4   the frames with every target's box, each in its own colour and
                  tagged with k; dashed where judged lost, grey where it failed
  track.json      input, tracker, variant, full config, weights fingerprint, seed,
                  frames, FPS, peak memory, and whether the run finished

The .txt and .mp4 files grow under .partial names while the video streams and get their
names when the run ends, also when it stops early (Ctrl-C, exit 130; a frame that cannot be
decoded): track.json then says where and why ("complete": false). A missing input, a
video OpenCV cannot decode, a camera that is not there, a box outside the first frame
or a frame whose size differs from the first are errors naming the input (exit 2).
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import os
import re
import sys
import time
import warnings

import numpy as np

from jaxtrack import cli
from jaxtrack.errors import BoxError, JaxtrackError, ResultsFolderError

SUMMARY = "track targets in your own video, frame folder or camera"


def add_arguments(ap) -> None:
    ap.add_argument("input", help="a video file, a folder of frames, or a camera index (0)")
    ap.add_argument("--box", action="append", default=[], metavar="X,Y,W,H",
                    help="a target's box on the first frame, 0-based pixels (x, y = top-left); "
                         "repeat for more targets; omit to draw boxes in a window")
    ap.add_argument("--out", default=None, help="output folder (default: track_out/<input name>)")
    ap.add_argument("--start-frame", type=_count(0), default=0, metavar="I",
                    help="begin at frame I (0-based) of the input; the boxes are on that frame")
    ap.add_argument("--max-frames", type=_count(1), default=None, metavar="N",
                    help="stop after N frames (the start frame included)")
    ap.add_argument("--no-video", action="store_true", help="do not write annotated.mp4")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    cli.add_tracker_args(ap)


def _count(least: int):
    """An argparse type: an integer >= ``least`` (else a usage error, exit 2)."""
    import argparse

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is less than {least}")
        return value
    return parse


# ----------------------------------------------------------------------------- boxes

def parse_box(text: str, k: int) -> np.ndarray:
    """``"x,y,w,h"`` (commas and/or spaces) -> float64 [4]; a named BoxError otherwise."""
    parts = [p for p in re.split(r"[,\s]+", str(text).strip()) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise BoxError(f"--box {text!r} (target {k}): expected x,y,w,h, four numbers in 0-based "
                       "pixels of the first frame, e.g. --box 120,80,40,60")
    return np.asarray(values, np.float64)


def _interactive_backend() -> str | None:
    """An interactive matplotlib backend that opens a window here, or None: on Linux and the
    BSDs only with ``DISPLAY`` (or ``WAYLAND_DISPLAY``) set, and only if the backend imports."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return None
    try:
        import matplotlib
    except ImportError:
        return None
    candidates = ["MacOSX", "TkAgg", "QtAgg"] if sys.platform == "darwin" else ["TkAgg", "QtAgg", "GTK3Agg"]
    for backend in candidates:
        try:
            matplotlib.use(backend, force=True)
            import matplotlib.pyplot as plt
            plt.figure().clear()          # fails here when the backend cannot open a window
            plt.close("all")
            return backend
        except Exception:                 # ImportError, TclError (no display), ...
            continue
    return None


class BoxPicker:
    """The logic of the first-box window: ``on_select`` (from a RectangleSelector) sets the
    current rectangle; key "a" adds it as a target and starts the next, "d" drops the last
    target, Enter finishes (closing the window does too). ``boxes()`` returns the targets
    (the current rectangle included if it was not added), jaxtrack xywh: the image is shown
    with extent (0, W, H, 0), so data coordinates are jaxtrack's continuous pixels."""

    def __init__(self, ax=None):
        self.ax = ax
        self.current = None
        self.added: list[np.ndarray] = []
        self._patches: list = []

    def on_select(self, eclick, erelease) -> None:
        x0, x1 = sorted([eclick.xdata, erelease.xdata])
        y0, y1 = sorted([eclick.ydata, erelease.ydata])
        if None in (x0, x1, y0, y1) or x1 - x0 <= 0 or y1 - y0 <= 0:
            return
        self.current = np.array([x0, y0, x1 - x0, y1 - y0], np.float64)

    def on_key(self, event) -> None:
        if event.key == "a" and self.current is not None:
            self.added.append(self.current)
            self.current = None
            self._draw_added()
        elif event.key == "d" and self.added:
            self.added.pop()
            self._draw_added()
        elif event.key == "enter" and self.ax is not None:
            import matplotlib.pyplot as plt
            plt.close(self.ax.figure)

    def _draw_added(self) -> None:
        if self.ax is None:
            return
        from matplotlib.patches import Rectangle

        from jaxtrack.data.video import target_color
        for p in self._patches:
            p.remove()
        self._patches = []
        for k, (x, y, w, h) in enumerate(self.added):
            color = np.asarray(target_color(k)) / 255
            self._patches.append(self.ax.add_patch(Rectangle((x, y), w, h, fill=False, lw=2, ec=color)))
            self._patches.append(self.ax.text(x, y, str(k), color="white", va="bottom",
                                              bbox=dict(fc=color, ec="none", pad=1)))
        self.ax.set_title(self._title())
        self.ax.figure.canvas.draw_idle()

    def _title(self) -> str:
        return (f"{len(self.added)} target(s). Drag a box; 'a' adds it, 'd' drops the last, "
                "Enter (or close) starts tracking")

    def boxes(self) -> list[np.ndarray]:
        return self.added + ([self.current] if self.current is not None else [])


def select_boxes(image, where: str) -> list[np.ndarray]:
    """Boxes drawn by the user on ``image`` in a matplotlib window; a BoxError telling them to
    pass ``--box`` where no window can be opened, or when no box was drawn."""
    backend = _interactive_backend()
    if backend is None:
        raise BoxError(f"{where}: no --box given and no display to draw one on (DISPLAY is not "
                       "set, or no interactive matplotlib backend loads); pass the target's box on "
                       "the first frame as --box x,y,w,h (0-based pixels; repeat for more targets)")
    import matplotlib.pyplot as plt
    from matplotlib.widgets import RectangleSelector
    h, w = image.shape[:2]
    fig, ax = plt.subplots(figsize=(min(12, max(4, w / 80)), min(9, max(3, h / 80))))
    fig.canvas.manager.set_window_title(f"jaxtrack track: {where}")
    ax.imshow(image, extent=(0, w, h, 0), interpolation="nearest")
    ax.set_axis_off()
    picker = BoxPicker(ax)
    ax.set_title(picker._title())
    selector = RectangleSelector(ax, picker.on_select, useblit=True, button=[1], minspanx=2,
                                 minspany=2, spancoords="data", interactive=True)
    fig.canvas.mpl_connect("key_press_event", picker.on_key)
    plt.show()
    del selector
    boxes = picker.boxes()
    if not boxes:
        raise BoxError(f"{where}: no box was drawn; drag a box around the target (or pass --box x,y,w,h)")
    print("boxes: " + " ".join(f"--box {','.join(f'{v:.1f}' for v in b)}" for b in boxes), file=sys.stderr)
    return boxes


# ----------------------------------------------------------------------------- outputs

class _Outputs:
    """Per-target box and score files appended as frames arrive (as ``*.partial``), the
    annotated video drawn and encoded in a background thread; ``finish`` gives them their names."""

    def __init__(self, out_dir: str, num_targets: int, fps: float, video: bool):
        from jaxtrack.data.video import Mp4Writer
        self.dir = out_dir
        self.n = num_targets
        self.names = [f"boxes_{k}.txt" for k in range(num_targets)] + \
                     [f"scores_{k}.txt" for k in range(num_targets)]
        self.files = []
        try:
            for name in self.names:
                self.files.append(open(self._partial(name), "w", encoding="utf-8", buffering=1))
        except OSError as e:
            self.close_files()
            raise ResultsFolderError(f"{out_dir}: cannot write the outputs here "
                                     f"({e.strerror or e})") from None
        self.video = Mp4Writer(os.path.join(out_dir, "annotated.mp4"), fps) if video else None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="annotate") \
            if video else None
        self._pending: collections.deque = collections.deque()

    def _partial(self, name: str) -> str:
        return os.path.join(self.dir, name + ".partial")

    def add(self, image, boxes, scores, lost, finite) -> None:
        """One frame: ``boxes`` [B, 4], ``scores``/``lost``/``finite`` [B]."""
        try:
            for k in range(self.n):
                b = boxes[k]
                self.files[k].write(f"{b[0]:.4f},{b[1]:.4f},{b[2]:.4f},{b[3]:.4f}\n")
                self.files[self.n + k].write(f"{scores[k]:.6g},{int(lost[k])},{int(finite[k])}\n")
        except OSError as e:
            raise ResultsFolderError(f"{self.dir}: cannot write the outputs ({e.strerror or e})") from None
        if self.video is not None:
            while len(self._pending) >= 2:              # at most two frames waiting: bounded memory
                self._pending.popleft().result()
            job = self._pool.submit(self._annotate, image, np.array(boxes), np.array(lost),
                                    np.array(finite))
            self._pending.append(job)

    def _annotate(self, image, boxes, lost, finite) -> None:
        from jaxtrack.data.video import GREY, draw_boxes, target_color
        colors = [target_color(k) if finite[k] else GREY for k in range(self.n)]
        labels = [str(k) if finite[k] and not lost[k] else f"{k} lost" if finite[k] else f"{k} failed"
                  for k in range(self.n)]
        self.video.write(draw_boxes(image, boxes, colors=colors, labels=labels,
                                    dashed=[bool(lost[k]) or not finite[k] for k in range(self.n)]))

    def close_files(self) -> None:
        for f in self.files:
            with contextlib.suppress(OSError):
                f.close()

    def finish(self) -> dict:
        """Flush everything and move each ``*.partial`` to its name; remove the box and score
        files of targets beyond this run's (an earlier run's in the same folder). Returns
        ``{"annotated": path or None, "annotated_frames": n}``."""
        err = None
        try:
            while self._pending:
                self._pending.popleft().result()
        except BaseException as e:                  # still finish the text files
            err = e
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for f in self.files:
            f.flush()
            os.fsync(f.fileno())
        self.close_files()
        for name in self.names:
            os.replace(self._partial(name), os.path.join(self.dir, name))
        for name in os.listdir(self.dir):
            m = re.fullmatch(r"(boxes|scores)_(\d+)\.txt", name)
            if m and int(m.group(2)) >= self.n:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.dir, name))
        video, frames = None, 0
        if self.video is not None:
            frames = self.video.frames
            video = self.video.close()
            if video is None and not self.video.ok:
                warnings.warn(f"{self.dir}: OpenCV could not open an mp4v encoder; annotated.mp4 "
                              "was not written")
        if video is None:                           # not an earlier run's video beside these boxes
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.dir, "annotated.mp4"))
        if err is not None:
            raise err
        return {"annotated": os.path.basename(video) if video else None, "annotated_frames": frames}


# ----------------------------------------------------------------------------- run

def _peak_memory() -> dict:
    import resource

    import jax
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_bytes = rss if sys.platform == "darwin" else rss * 1024
    out = {"peak_rss_mib": round(rss_bytes / 2**20, 1)}
    with contextlib.suppress(Exception):
        stats = jax.local_devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            out["peak_device_mib"] = round(stats["peak_bytes_in_use"] / 2**20, 1)
    return out


def run(args):
    cli.setup_runtime(args)
    boxes = [parse_box(text, k) for k, text in enumerate(args.box)]

    from jaxtrack.data.video import DEFAULT_FPS, open_source, prefetched
    source = open_source(args.input)
    out_dir = args.out or os.path.join("track_out", source.stem)
    tracker = cli.make_tracker(args)

    stream = prefetched(source.frames(args.start_frame, args.max_frames))
    try:
        start, first = next(stream)
        where = f"{args.input} frame {start}"
        if not boxes:
            boxes = select_boxes(first, where)
        from jaxtrack.frames import check_box
        checked = []
        for k, box in enumerate(boxes):
            try:
                checked.append(check_box(box, first))
            except BoxError as e:
                text = args.box[k] if k < len(args.box) else ",".join(f"{v:g}" for v in box)
                raise BoxError(f"{where}: --box {text} (target {k}): {e}") from None
        from jaxtrack.eval.ope import check_writable
        check_writable(out_dir)
        return _track(args, tracker, source, stream, start, first, checked, out_dir,
                      fps=source.fps or DEFAULT_FPS)
    finally:
        stream.close()


def _track(args, tracker, source, stream, start, first, boxes, out_dir, fps):
    import jax
    from tqdm import tqdm

    from jaxtrack.batch import BatchTracker, pad_into
    from jaxtrack.eval.ope import run_identity
    from jaxtrack.fileio import atomic_write_json
    from jaxtrack.frames import bucket_shape, sequence_key

    t_start = time.perf_counter()
    B = len(boxes)
    bt = BatchTracker(tracker, B, devices=jax.local_devices()[:1])
    h, w = first.shape[:2]
    bucket = bucket_shape(h, w, where=f"{args.input} frame {start}")
    images = np.zeros((B,) + bucket + (3,), np.uint8)
    sizes = np.zeros((B, 2), np.int32)
    active = np.ones(B, bool)
    outputs = _Outputs(out_dir, B, fps, video=not args.no_video)

    total = None
    if source.frame_count is not None:
        total = max(0, source.frame_count - start)
        if args.max_frames is not None:
            total = min(total, args.max_frames)
    bar = tqdm(total=total, unit="frame", desc=source.stem, file=sys.stderr,
               disable=args.no_progress, dynamic_ncols=True)
    recent = collections.deque(maxlen=30)           # completion times, for the running FPS
    last_good = np.array(boxes, np.float64)
    failed_at = [None] * B                          # first frame a target's state was not finite
    lost_frames = np.zeros(B, np.int64)
    n = 0
    t_first_step_done = None
    step_time = 0.0
    stopped = None
    notes = []
    try:
        # ---- frame `start`: every target's own unbatched init, written into its slot
        pad_into(first, bucket, images[0], sizes[0], f"{args.input} frame {start}")
        images[1:], sizes[1:] = images[0], sizes[0]
        states = bt.blank_states(bucket)
        for k, box in enumerate(boxes):
            key = np.asarray(sequence_key(args.seed, f"target{k}"))
            states = bt.init_slot(states, images[0], sizes[0], box, key, k)
        jax.block_until_ready(states)
        outputs.add(first, last_good, np.ones(B), np.zeros(B, bool), np.ones(B, bool))
        n = 1
        bar.update(1)
        recent.append(time.perf_counter())
        del first
        # ---- the rest: one batched step per frame, every slot fed the same frame
        for i, image in stream:
            t0 = time.perf_counter()
            pad_into(image, bucket, images[0], sizes[0], f"{args.input} frame {i}")
            if B > 1:
                images[1:], sizes[1:] = images[0], sizes[0]
            states, out = bt.step(states, images, sizes, active)
            out_box, score, lost, finite = jax.device_get((out.box, out.score, out.lost, out.finite))
            t1 = time.perf_counter()
            if t_first_step_done is None:
                t_first_step_done = t1              # the first step compiled: not in the FPS
                recent.clear()
            else:
                step_time += t1 - t0
            out_box = np.asarray(out_box, np.float64)
            finite = np.asarray(finite, bool).copy()
            for k in range(B):
                if failed_at[k] is None and not finite[k]:
                    failed_at[k] = i
                    note = (f"{args.input}: target {k}'s tracker state became non-finite at frame "
                            f"{i}; its boxes from there repeat frame {i - 1}'s")
                    notes.append(note)
                    warnings.warn(note)
                if failed_at[k] is not None:
                    out_box[k], finite[k] = last_good[k], False
                else:
                    last_good[k] = out_box[k]
            lost_frames += np.asarray(lost, bool)
            outputs.add(image, out_box, np.asarray(score), np.asarray(lost, bool), finite)
            n += 1
            recent.append(time.perf_counter())
            if len(recent) > 1 and n % 5 == 0:
                bar.set_postfix_str(f"{(len(recent) - 1) / (recent[-1] - recent[0]):.1f} FPS", refresh=False)
            bar.update(1)
    except KeyboardInterrupt:
        stopped = f"interrupted after {n} frame(s)"
        raise
    except JaxtrackError as e:
        stopped = str(e)
        raise
    except BaseException as e:
        stopped = f"{type(e).__name__}: {e}"
        raise
    finally:
        t_end = time.perf_counter()
        bar.close()
        try:
            written = outputs.finish()
        except BaseException:
            if stopped is None:
                raise
            written = {"annotated": None, "annotated_frames": 0}
        identity = run_identity(tracker, variant=args.variant, seed=args.seed)
        steady = n - 2                                  # frames after the compiling init and first step
        info = {
            **identity,
            "input": args.input, "input_kind": source.kind, "out": out_dir,
            "weights": args.weights or "default",
            "start_frame": start, "frames": n, "frame_size": [h, w], "video_fps": round(fps, 3),
            "complete": stopped is None, "stopped": stopped,
            "targets": [{"index": k, "first_box": [round(float(v), 4) for v in boxes[k]],
                         "boxes": f"boxes_{k}.txt", "scores": f"scores_{k}.txt",
                         "lost_frames": int(lost_frames[k]), "nonfinite_from_frame": failed_at[k]}
                        for k in range(B)],
            "box_convention": "x,y,w,h per line, 0-based continuous pixels (jaxtrack.boxes); "
                              "line j (from 1) is frame start_frame + j - 1",
            "fps": round(steady / (t_end - t_first_step_done), 2) if steady > 0 else None,
            "tracker_fps": round(steady / step_time, 2) if steady > 0 and step_time > 0 else None,
            "wall_s": round(t_end - t_start, 3),
            "compile_s": round(sum(bt.compile_seconds.values()), 3),
            "compilations": bt.num_compilations,
            **_peak_memory(),
            **written,
            "device": str(jax.local_devices()[0]), "jax": jax.__version__,
            "notes": notes + list(source.notes),
        }
        try:
            atomic_write_json(os.path.join(out_dir, "track.json"), info)
        except OSError as e:
            if stopped is None:
                raise ResultsFolderError(f"{out_dir}: cannot write track.json ({e.strerror or e})") from None
    fps_text = f"{info['fps']:.1f} FPS" if info["fps"] else "n/a FPS"
    print(f"tracked {B} target(s) over {n} frames of {args.input}: {fps_text} "
          f"(compile {info['compile_s']:.1f} s, peak RSS {info['peak_rss_mib']:.0f} MiB)")
    print(f"results: {out_dir}")
    return info
