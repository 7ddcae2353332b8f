r"""Draw several trackers' boxes and the ground truth on the frames of one sequence.

    jaxtrack show RESULTS/siamfc_mobilenet_v2_default_72c7739e RESULTS/atom_mobilenet_v2_default_3ab4874b \
        --root ../shared/data/otb --sequence Couple --out couple.mp4

``--out FILE.mp4``: a video of the whole sequence (``--frames``: only those frames);
``--out FILE.png``: a grid of chosen frames (``--frames 0,10,20`` or ``--frames 0 10 20``,
0-based indices into the sequence; default 8 evenly spaced). Each result folder is named by
its folder name in the legend and has its own colour; the ground truth is green. Result
files are read in the dataset's convention (ours, or another toolkit's: comma, tab or space
separated, or GOT-10k's ``<seq>/<seq>_001.txt``). Frames are read one at a time.
"""
from __future__ import annotations

import contextlib
import math
import os
import warnings
from pathlib import Path

import numpy as np

SUMMARY = "draw trackers' boxes and the ground truth on a sequence (MP4 or PNG grid)"

GT_COLOUR = (0, 200, 0)                     # RGB
COLOURS = [(230, 25, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (170, 110, 40), (250, 190, 212), (128, 128, 128)]
GRID_TILE_WIDTH = 480                       # px: frames wider than this are shrunk in the grid


def add_arguments(ap) -> None:
    ap.add_argument("dirs", nargs="+", metavar="DIR", help="result folders (each named by its folder name)")
    ap.add_argument("--root", required=True, help="dataset root")
    ap.add_argument("--sequence", required=True, help="the sequence to show")
    ap.add_argument("--dataset", default="otb", help="dataset layout (default otb)")
    ap.add_argument("--split", default=None)
    ap.add_argument("--out", default=None, help="FILE.mp4 (video) or FILE.png (grid); default <sequence>.mp4")
    ap.add_argument("--frames", nargs="*", default=None, metavar="I",
                    help="0-based frame indices: '0,10,20' or '0 10 20' (PNG default: 8 evenly spaced)")
    ap.add_argument("--fps", type=float, default=25.0, help="MP4 frame rate (default 25)")
    ap.add_argument("--no-gt", action="store_true", help="do not draw the ground truth")


def parse_frames(items, n: int, name: str) -> list[int]:
    """``["0,10", "20"]`` -> ``[0, 10, 20]``, each checked against the sequence's ``n`` frames
    (a negative index counts from the end)."""
    from jaxtrack.errors import FrameError
    out = []
    for item in items:
        for part in str(item).split(","):
            if not part.strip():
                continue
            try:
                i = int(part)
            except ValueError:
                raise FrameError(f"--frames {part!r}: not a frame index") from None
            if not -n <= i < n:
                raise FrameError(f"--frames {i}: sequence {name} has frames 0..{n - 1}")
            out.append(i % n)
    return out


def evenly_spaced(n: int, k: int = 8) -> list[int]:
    return sorted(set(np.linspace(0, n - 1, min(k, n)).round().astype(int).tolist()))


def load_tracks(dirs: dict, seq) -> dict[str, np.ndarray]:
    """``{name: (M, 4) jaxtrack xywh}`` of each folder's result for ``seq``; a result of another
    length than the sequence is drawn where it has boxes (with a warning)."""
    from jaxtrack import boxes as B
    from jaxtrack.errors import ResultsError
    from jaxtrack.eval.ope import find_result, read_boxes
    tracks = {}
    for name, d in dirs.items():
        if not os.path.isdir(d):
            raise ResultsError(f"{d}: no such results folder")
        path, _ = find_result(Path(d), seq.name)
        if path is None:
            raise ResultsError(f"{d}: no result for sequence {seq.name} "
                               f"({seq.name}.txt or {seq.name}/{seq.name}_001.txt)")
        try:
            b = read_boxes(path)
        except (ValueError, OSError) as e:
            raise ResultsError(f"unreadable result file ({e})") from None
        if len(b) != len(seq):
            warnings.warn(f"{path}: {len(b)} boxes for {len(seq)} frames; drawing those there are")
        tracks[name] = B.from_dataset(b, seq.index_base)
    return tracks


# ----------------------------------------------------------------------------- drawing

def _font_scale(h: int, w: int) -> float:
    return float(np.clip(min(h, w) / 600.0, 0.35, 1.2))


def draw_boxes(img: np.ndarray, boxes: list, scale: float = 1.0) -> np.ndarray:
    """Draw ``[(xywh or None, rgb colour)]`` (jaxtrack xywh of the full-size frame) on ``img``
    (RGB, possibly ``scale``-d from the full size), at sub-pixel precision."""
    import cv2
    h, w = img.shape[:2]
    thick = max(1, int(round(min(h, w) / 240)))
    for box, colour in boxes:
        if box is None or not np.all(np.isfinite(box)):
            continue
        x, y, bw, bh = np.clip(np.asarray(box, np.float64) * scale, -1e6, 1e6)
        # continuous [x, x+w) -> pixel-centre indices x - 0.5 .. x + w - 0.5; 4 fractional bits
        p1 = (int(round((x - 0.5) * 16)), int(round((y - 0.5) * 16)))
        p2 = (int(round((x + bw - 0.5) * 16)), int(round((y + bh - 0.5) * 16)))
        cv2.rectangle(img, p1, p2, colour, thick, cv2.LINE_AA, shift=4)
    return img


def legend_rows(names: list[str], colours: list, width: int, font_scale: float) -> np.ndarray:
    """A dark band with a coloured line (none for colour None) and the name of each entry,
    wrapped to ``width``."""
    import cv2
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, 1
    line_h = int(round(26 * font_scale)) + 6
    pad, swatch = 8, int(round(24 * font_scale)) + 4
    items, x, row = [], pad, 0
    for name, colour in zip(names, colours):
        tw = cv2.getTextSize(name, font, font_scale, thick)[0][0]
        item_w = (swatch + 6 if colour is not None else 0) + tw + 16
        if x + item_w > width - pad and x > pad:
            x, row = pad, row + 1
        items.append((x, row, name, colour))
        x += item_w
    band = np.full(((row + 1) * line_h + 4, width, 3), 32, np.uint8)
    for x, row, name, colour in items:
        yc = row * line_h + line_h // 2 + 2
        if colour is not None:
            cv2.line(band, (x, yc), (x + swatch, yc), colour, max(2, int(round(3 * font_scale))), cv2.LINE_AA)
        cv2.putText(band, name, (x + (swatch + 6 if colour is not None else 0), yc + int(9 * font_scale)),
                    font, font_scale, (240, 240, 240), thick, cv2.LINE_AA)
    return band


def _label(img: np.ndarray, text: str) -> None:
    import cv2
    fs = _font_scale(*img.shape[:2])
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
    cv2.rectangle(img, (0, 0), (tw + 8, th + base + 8), (32, 32, 32), -1)
    cv2.putText(img, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, fs, (240, 240, 240), 1, cv2.LINE_AA)


def _legend(seq, tracks, colours, gt: bool):
    """Legend entries: the sequence's name, the ground truth, then each folder."""
    names = [f"{seq.name}:"] + (["ground truth"] if gt else []) + list(tracks)
    return names, [None] + ([GT_COLOUR] if gt else []) + [colours[n] for n in tracks]


def _frame_boxes(seq, tracks: dict, colours: dict, i: int, gt: bool) -> list:
    boxes = [(seq.gt[i], GT_COLOUR)] if gt else []
    boxes += [(t[i] if i < len(t) else None, colours[n]) for n, t in tracks.items()]
    return boxes


def annotated_frame(seq, tracks, colours, i: int, *, gt: bool = True, width: int | None = None) -> np.ndarray:
    """Frame ``i`` (RGB), shrunk to ``width`` if given, with the boxes and its index."""
    import cv2
    img = seq.frame(i)
    scale = 1.0
    if width is not None and img.shape[1] > width:
        scale = width / img.shape[1]
        img = cv2.resize(img, (width, int(round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    img = np.ascontiguousarray(img)
    draw_boxes(img, _frame_boxes(seq, tracks, colours, i, gt), scale)
    _label(img, f"#{i}")
    return img


def write_grid(path, seq, tracks, colours, frames, *, gt: bool = True) -> Path:
    """A PNG grid of ``frames`` (at most 4 per row) under one legend, written atomically."""
    import cv2
    from jaxtrack.fileio import atomic_write_bytes
    tiles = [annotated_frame(seq, tracks, colours, i, gt=gt, width=GRID_TILE_WIDTH) for i in frames]
    th, tw = tiles[0].shape[:2]
    tiles = [t if t.shape[:2] == (th, tw) else cv2.resize(t, (tw, th)) for t in tiles]
    cols = min(4, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    gap = 4
    grid = np.full((rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap, 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        grid[r * (th + gap):r * (th + gap) + th, c * (tw + gap):c * (tw + gap) + tw] = t
    names, cols_ = _legend(seq, tracks, colours, gt)
    band = legend_rows(names, cols_, grid.shape[1], _font_scale(th, tw))
    image = np.concatenate([band, grid], axis=0)
    ok, buf = cv2.imencode(".png", image[..., ::-1])
    if not ok:
        raise OSError(f"{path}: cannot encode the PNG")
    atomic_write_bytes(path, buf.tobytes())
    return Path(path)


def write_video(path, seq, tracks, colours, frames, *, fps: float = 25.0, gt: bool = True) -> Path:
    """An MP4 (``mp4v``) of ``frames`` with the boxes and a legend band on top; written to a
    temporary file beside ``path`` and renamed when complete."""
    import cv2
    from jaxtrack.errors import ResultsFolderError
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    h, w = seq.frame_size(frames[0])
    band = legend_rows(*_legend(seq, tracks, colours, gt), w, _font_scale(h, w))
    size = (w, h + band.shape[0])
    size = (size[0] + size[0] % 2, size[1] + size[1] % 2)       # even sizes: every codec takes them
    writer = cv2.VideoWriter(os.fspath(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
    if not writer.isOpened():
        raise ResultsFolderError(f"{path}: OpenCV cannot write an MP4 video here")
    try:
        for i in frames:
            img = annotated_frame(seq, tracks, colours, i, gt=gt)
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h))
            canvas = np.zeros((size[1], size[0], 3), np.uint8)
            canvas[:band.shape[0], :w] = band
            canvas[band.shape[0]:band.shape[0] + h, :w] = img
            writer.write(np.ascontiguousarray(canvas[..., ::-1]))
        writer.release()
        os.replace(tmp, path)
    except BaseException:
        writer.release()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def run(args):
    from jaxtrack.commands.report import folder_names
    from jaxtrack.data import load_dataset
    seqs = load_dataset(args.dataset, args.root, split=args.split, sequences=[args.sequence])
    if len(seqs) != 1:                      # an OTB two-target folder: Jogging -> Jogging.1, .2
        raise SystemExit(f"--sequence {args.sequence}: {len(seqs)} targets "
                         f"({', '.join(s.name for s in seqs)}); name one")
    seq = seqs[0]
    out = args.out or f"{seq.name}.mp4"
    kind = Path(out).suffix.lower()
    if kind not in (".mp4", ".png"):
        raise SystemExit(f"--out {out}: must end in .mp4 (video) or .png (grid of frames)")
    dirs = folder_names(args.dirs)
    tracks = load_tracks(dirs, seq)
    colours = {n: COLOURS[k % len(COLOURS)] for k, n in enumerate(tracks)}
    n = len(seq)
    if args.frames:
        frames = parse_frames(args.frames, n, seq.name)
    else:
        frames = evenly_spaced(n) if kind == ".png" else list(range(n))
    if kind == ".png":
        path = write_grid(out, seq, tracks, colours, frames, gt=not args.no_gt)
    else:
        path = write_video(out, seq, tracks, colours, frames, fps=args.fps, gt=not args.no_gt)
    print(f"{path}: {seq.name}, {len(frames)} frame(s), {', '.join(tracks)}"
          + ("" if args.no_gt else " and the ground truth"))
    return path
