r"""Pack a result folder for an evaluation server: GOT-10k or TrackingNet.

    jaxtrack pack got10k RESULTS/siamfc_mobilenet_v2_default_72c7739e \
        --root data/GOT-10k --split test --out siamfc_got10k_test.zip

GOT-10k (http://got-10k.aitestunion.com), as the got10k toolkit's ``ExperimentGOT10k``
records and zips its results: ``<seq>/<seq>_001.txt`` (boxes ``x,y,w,h``, 0-based as
GOT-10k's ground truth, ``%.3f``, comma-separated) and ``<seq>/<seq>_time.txt`` (seconds
per frame, ``%.8f``, one column per repetition). A folder in GOT-10k's own layout with
several repetitions (``_001``, ``_002``, ...) keeps them all.

TrackingNet (its evaluation server), as pytracking's ``pack_trackingnet_results``
writes it: ``<seq>.txt`` per sequence at the top of the zip, ``x,y,w,h`` 0-based, ``%.2f``,
comma-separated.

Every sequence of the split must have a complete result (and, for GOT-10k, its times): a
result file per sequence with one line per frame of finite numbers. Otherwise nothing is
written and the error names each sequence and what is wrong. Result files may be ours
(``<seq>.txt``, ``times/<seq>_time.txt``) or another toolkit's (comma, tab or space
separated; GOT-10k's ``<seq>/<seq>_001.txt``).
"""
from __future__ import annotations

import glob
import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from jaxtrack.errors import ResultsError

SUMMARY = "zip a result folder in the GOT-10k or TrackingNet server's submission layout"

FORMATS = {"got10k": "test", "trackingnet": "test"}      # format -> default split
BOX_FMT = {"got10k": "%.3f", "trackingnet": "%.2f"}       # ExperimentGOT10k._record / pytracking
TIME_FMT = "%.8f"                                         # ExperimentGOT10k._record


def add_arguments(ap) -> None:
    ap.add_argument("format", choices=sorted(FORMATS), help="the server: got10k or trackingnet")
    ap.add_argument("dir", metavar="DIR", help="result folder (ours or another toolkit's)")
    ap.add_argument("--root", required=True, help="dataset root (GOT-10k: with train/val/test; "
                                                  "TrackingNet: with TEST/)")
    ap.add_argument("--split", default=None, help="default: test")
    ap.add_argument("--out", required=True, help="the zip file to write")


# ----------------------------------------------------------------------------- reading a folder

def _savetxt(values, fmt: str) -> bytes:
    """``numpy.savetxt(..., fmt=fmt, delimiter=',')`` bytes: exactly what got10k and pytracking
    write."""
    buf = io.BytesIO()
    np.savetxt(buf, np.asarray(values, np.float64), fmt=fmt, delimiter=",")
    return buf.getvalue()


def _read(path: Path, ncols, n: int, what: str) -> np.ndarray:
    """A table of finite numbers with ``n`` lines (``ncols`` values each; None: as the first
    line), or ``ResultsError`` naming the file and the problem."""
    from jaxtrack.eval.ope import read_table
    try:
        t = read_table(path, ncols)
    except (ValueError, OSError) as e:
        raise ResultsError(f"unreadable {what} ({e})") from None
    if len(t) != n:
        raise ResultsError(f"{path}: {what} has {len(t)} lines for {n} frames")
    bad = np.flatnonzero(~np.all(np.isfinite(t), axis=1))
    if len(bad):
        raise ResultsError(f"{path}:{bad[0] + 1}: {what} holds a value that is not a finite number "
                           f"({len(bad)} such line(s))")
    return t


def sequence_result(folder, seq, *, need_times: bool) -> tuple[list[np.ndarray], np.ndarray | None]:
    """A sequence's repetitions of boxes (dataset convention, as written) and its times
    ``(N, repetitions)``, from our layout or GOT-10k's; ``ResultsError`` if incomplete."""
    from jaxtrack.eval.ope import find_result
    folder, n = Path(folder), len(seq)
    reps = sorted(p for p in (folder / seq.name).glob(f"{glob.escape(seq.name)}_[0-9][0-9][0-9].txt")
                  if re.fullmatch(re.escape(seq.name) + r"_\d{3}\.txt", p.name))
    box_path, time_path = find_result(folder, seq.name)
    if box_path is not None and box_path.parent == folder:
        reps = [box_path]                  # our layout (or pytracking's) wins over a stray subfolder
    if not reps:
        raise ResultsError("no result file")
    boxes = [_read(p, 4, n, "result file") for p in reps]
    times = None
    if need_times:
        if time_path is None:
            raise ResultsError(f"no times file (times/{seq.name}_time.txt or {seq.name}/{seq.name}_time.txt)")
        times = _read(time_path, None, n, "times file")
        if times.shape[1] != len(boxes) and times.shape[1] != 1:
            raise ResultsError(f"{time_path}: {times.shape[1]} time columns for {len(boxes)} repetitions")
    return boxes, times


def pack_entries(fmt: str, folder, sequences) -> list[tuple[str, bytes | None]]:
    """``[(zip entry name, bytes or None for a folder entry)]`` of a submission, in the
    dataset's order; ``ResultsError`` naming every sequence whose result is incomplete."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: choose from {', '.join(sorted(FORMATS))}")
    entries, problems = [], []
    for seq in sequences:
        try:
            boxes, times = sequence_result(folder, seq, need_times=(fmt == "got10k"))
        except ResultsError as e:
            problems.append(f"{seq.name} ({e})")
            continue
        if fmt == "got10k":
            entries.append((f"{seq.name}/", None))
            for r, b in enumerate(boxes, 1):
                entries.append((f"{seq.name}/{seq.name}_{r:03d}.txt", _savetxt(b, BOX_FMT[fmt])))
            entries.append((f"{seq.name}/{seq.name}_time.txt", _savetxt(times, TIME_FMT)))
        else:
            entries.append((f"{seq.name}.txt", _savetxt(boxes[0], BOX_FMT[fmt])))
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... ({len(problems) - 8} more)" if len(problems) > 8 else "")
        raise ResultsError(f"{folder}: {len(problems)} of {len(sequences)} sequences have no complete "
                           f"result, nothing written: {shown}")
    return entries


def write_zip(path, entries) -> None:
    """The entries as a zip (deflated), written atomically."""
    from jaxtrack.fileio import atomic_open
    with atomic_open(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            if data is None:
                z.writestr(zipfile.ZipInfo(name), b"")
            else:
                z.writestr(name, data)


def run(args):
    from jaxtrack.data import load_dataset
    folder = Path(args.dir)
    if not folder.is_dir():
        raise ResultsError(f"{folder}: no such results folder")
    split = args.split or FORMATS[args.format]
    sequences = load_dataset(args.format, args.root, split=split)
    entries = pack_entries(args.format, folder, sequences)
    write_zip(args.out, entries)
    files = sum(data is not None for _, data in entries)
    print(f"{args.out}: {len(sequences)} sequences of {args.format} {split}, {files} files "
          f"(the {'GOT-10k' if args.format == 'got10k' else 'TrackingNet'} server's layout)")
    return {"path": os.fspath(args.out), "entries": [n for n, _ in entries]}
