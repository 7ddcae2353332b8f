"""One-pass evaluation (OPE): run a tracker over sequences, record results, score them.

Result layout (that of got10k's OTB/LaSOT experiments and of pytracking)::

    <results_root>/<tracker_name>/<seq.name>.txt              one "x,y,w,h" line per frame
    <results_root>/<tracker_name>/times/<seq.name>_time.txt   one seconds-per-frame line per frame
    <results_root>/<tracker_name>/metrics.json, metrics.md, success.png, precision.png

Boxes are written in the *dataset's* convention (``boxes.to_dataset`` with
``seq.index_base``: 1-based for OTB/LaSOT, 0-based for GOT-10k), so the files can be
scored by got10k, pytracking or any other toolkit unchanged.

Runs are resumable: every file is written atomically (``jaxtrack.fileio``), and a
sequence whose result and times files are both complete is skipped. A partial or
unparsable file (from another tool, or edited by hand) is detected and redone.

Speed: ``fps`` counts frames ``1..N-1`` only: frame 0's time is the initialisation
(and, in JAX, mostly compilation), which would otherwise dominate short sequences.
The mean fps is the total of those frames over the total of their times.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
from tqdm import tqdm

from jaxtrack import boxes as B
from jaxtrack.eval import metrics as M
from jaxtrack.eval.plots import plot_success_precision
from jaxtrack.eval.report import sequence_table
from jaxtrack.errors import ResultsFolderError, RunMismatchError  # noqa: F401  (RunMismatchError: re-exported)
from jaxtrack.fileio import atomic_write_json, atomic_write_text, create_exclusive

FPS_NOTE = "fps excludes frame 0 (initialisation): (frames - 1) / sum(times[1:])"
_SEP = re.compile(r"[,\t; ]+")


# ----------------------------------------------------------------------------- files

def result_paths(tracker_dir, seq_name: str) -> tuple[Path, Path]:
    """``(<dir>/<seq>.txt, <dir>/times/<seq>_time.txt)``, got10k's layout."""
    d = Path(tracker_dir)
    return d / f"{seq_name}.txt", d / "times" / f"{seq_name}_time.txt"


def format_rows(values: np.ndarray, fmt: str) -> str:
    """One comma-separated line per row (NaN written as ``nan``, which every reader parses)."""
    values = np.asarray(values, np.float64)
    if values.ndim == 1:
        values = values[:, None]
    return "".join(",".join(fmt % v for v in row) + "\n" for row in values)


def read_table(path, ncols: int | None) -> np.ndarray:
    """Read a numeric text file with ``ncols`` values per line, separated by commas,
    tabs, semicolons or spaces (got10k, pytracking and the MATLAB toolkits differ).

    Blank lines are skipped. Raises ``ValueError`` on any line that is not exactly
    ``ncols`` numbers (``None``: as many as the first line), so a truncated or garbled
    file is never silently accepted.
    """
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = _SEP.split(line)
            ncols = ncols or len(parts)
            if len(parts) != ncols:
                raise ValueError(f"{path}:{lineno}: expected {ncols} values, got {len(parts)}")
            try:
                rows.append([float(p) for p in parts])
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: {e}") from None
    return np.asarray(rows, np.float64).reshape(-1, ncols or 1)


def read_boxes(path) -> np.ndarray:
    """(N, 4) boxes of a result file, as written (dataset convention)."""
    return read_table(path, 4)


def read_times(path, strict: bool = False) -> np.ndarray:
    """(N,) seconds per frame of a times file.

    got10k's GOT-10k experiment writes one column per repetition; the first is used
    unless ``strict`` (one column required, as ``run_ope`` writes).
    """
    return read_table(path, 1 if strict else None)[:, 0]


def check_complete(box_path: Path, time_path: Path, n: int) -> str | None:
    """``None`` if both files exist, parse and have ``n`` lines; otherwise why not."""
    if not box_path.exists():
        return "missing"
    try:
        nb = len(read_boxes(box_path))
    except (ValueError, OSError) as e:
        return f"unreadable result file ({e})"
    if nb != n:
        return f"result file has {nb} lines for {n} frames"
    if not time_path.exists():
        return "times file missing"
    try:
        nt = len(read_times(time_path, strict=True))
    except (ValueError, OSError) as e:
        return f"unreadable times file ({e})"
    if nt != n:
        return f"times file has {nt} lines for {n} frames"
    return None


def find_result(results_dir: Path, name: str) -> tuple[Path | None, Path | None]:
    """Result and times file of a sequence in a foreign folder: got10k/pytracking flat
    layout first, then GOT-10k's ``<seq>/<seq>_001.txt``."""
    box, t = result_paths(results_dir, name)
    if not box.exists():
        alt = results_dir / name / f"{name}_001.txt"
        if not alt.exists():
            return None, None
        box, t = alt, results_dir / name / f"{name}_time.txt"
    if not t.exists():
        t = results_dir / f"{name}_time.txt"  # pytracking writes times beside the boxes
    return box, (t if t.exists() else None)


# ----------------------------------------------------------------------------- speed

def _tracking_time(times) -> tuple[int, float]:
    """(frames, seconds) that count for speed: frames 1..N-1 with a finite time."""
    t = np.asarray(times, np.float64)[1:]
    t = t[np.isfinite(t)]
    return len(t), float(t.sum())


def _fps(frames: int, seconds: float) -> float | None:
    return frames / seconds if frames > 0 and seconds > 0 else None


# ----------------------------------------------------------------------------- scoring

def _clean(x):
    """JSON-safe copy: numpy to Python, NaN/inf to ``None``."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        x = x.tolist()
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


_SCALARS = ("auc", "prec20", "norm_prec", "norm_prec20", "ao", "sr50", "sr75")


def gt_notes(seq) -> list[str]:
    """What is odd in a sequence's ground truth without stopping a run: boxes of a visible
    target with zero or negative size (they score as failures), named by file and line."""
    gt = np.asarray(seq.gt, np.float64)
    odd = np.all(np.isfinite(gt), axis=1) & np.any(gt[:, 2:] <= 0, axis=1)
    visible = getattr(seq, "visible", None)
    if visible is not None:                   # an absent target may carry an empty box
        odd &= np.asarray(visible, bool)[:len(odd)]
    bad = np.flatnonzero(odd)
    if not len(bad):
        return []
    where = getattr(seq, "gt_file", None) or seq.name
    lines = ", ".join(str(i + 1) for i in bad[:5]) + (" ..." if len(bad) > 5 else "")
    return [f"{where}: {len(bad)} ground-truth box(es) of zero or negative size (line {lines}); "
            "those frames are scored as failures"]


def evaluate_results(results_dir, sequences: Iterable, *, extra_info=None) -> dict:
    """Score a folder of result files (ours, got10k's, pytracking's, ...) on ``sequences``.

    Files are ``<results_dir>/<seq.name>.txt`` (comma, tab or space separated, in the
    dataset's convention), or GOT-10k's ``<seq>/<seq>_001.txt``; times, when present,
    come from ``times/<seq>_time.txt`` or ``<seq>_time.txt``. A result with a different
    number of lines than the sequence is cut to the shorter length with a warning, as
    got10k does. Sequences without a result file are listed under ``"missing"``
    and left out of the mean (with a warning), as are unreadable ones (``"unreadable"``).
    A sequence may carry ``visible`` (N,) and ``image_wh`` attributes; when present they
    are used for GOT-10k's AO/SR as got10k uses ``cover > 0`` and the image resolution.

    Returns ``{"per_sequence": {name: {auc, prec20, norm_prec, norm_prec20, ao, sr50,
    sr75, fps, frames}}, "mean": {same keys, sequences, success_curve, precision_curve,
    norm_precision_curve}, "missing": [...], "unreadable": {name: why}, "info": extra_info,
    "fps_note": ...}``.
    """
    results_dir = Path(results_dir)
    per_seq, full, missing, unreadable, notes = {}, {}, [], {}, []
    tot_frames, tot_time = 0, 0.0
    for seq in sequences:
        box_path, time_path = find_result(results_dir, seq.name)
        if box_path is None:
            missing.append(seq.name)
            continue
        try:
            pred = read_boxes(box_path)
            if len(pred) == 0:
                raise ValueError(f"{box_path} is empty")
        except (ValueError, OSError) as e:
            warnings.warn(f"{seq.name}: unreadable result file, left out: {e}")
            unreadable[seq.name] = str(e)
            continue
        gt = B.to_dataset(seq.gt, seq.index_base)
        visible = getattr(seq, "visible", None)
        if len(pred) != len(gt):
            warnings.warn(f"{seq.name}: {len(pred)} result lines for {len(gt)} frames; "
                          "scoring the common prefix")
            n = min(len(pred), len(gt))
            pred, gt = pred[:n], gt[:n]
            visible = None if visible is None else np.asarray(visible)[:n]
        m = M.dataset_sequence_metrics(pred, gt, visible=visible,
                                       image_wh=getattr(seq, "image_wh", None))
        full[seq.name] = m

        fps = None
        if time_path is not None:
            try:
                nf, secs = _tracking_time(read_times(time_path))
            except (ValueError, OSError) as e:
                warnings.warn(f"{seq.name}: unreadable times file, no fps: {e}")
                nf, secs = 0, 0.0
            fps = _fps(nf, secs)
            tot_frames, tot_time = tot_frames + nf, tot_time + secs
        per_seq[seq.name] = {**{k: m[k] for k in _SCALARS}, "fps": fps, "frames": m["frames"]}
        notes += gt_notes(seq)
        health = health_path(results_dir, seq.name)
        if health.is_file():
            h = json.loads(health.read_text())
            per_seq[seq.name].update(lost_frames=h["lost"].count("1"), nonfinite_frame=h["nonfinite_frame"])
            notes += h["notes"]

    if missing:
        warnings.warn(f"{results_dir}: no results for {len(missing)} sequence(s): "
                      + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    mean = {}
    if full:
        agg = M.aggregate(full)
        mean = {**{k: agg[k] for k in _SCALARS}, "fps": _fps(tot_frames, tot_time),
                "frames": agg["frames"], "sequences": agg["sequences"],
                "success_curve": agg["success_curve"], "precision_curve": agg["precision_curve"],
                "norm_precision_curve": agg["norm_precision_curve"]}
    for note in notes:
        warnings.warn(note)
    return _clean({"per_sequence": per_seq, "mean": mean, "missing": missing, "warnings": notes,
                   "unreadable": unreadable, "info": extra_info, "fps_note": FPS_NOTE})


def write_report(tracker_dir, tracker_name: str, report: dict) -> None:
    """Write ``metrics.json``, ``metrics.md``, ``success.png`` and ``precision.png``."""
    d = Path(tracker_dir)
    atomic_write_json(d / "metrics.json", report)
    atomic_write_text(d / "metrics.md", f"# {tracker_name}\n\n{FPS_NOTE}\n\n" + sequence_table(report))
    if report["mean"]:
        plot_success_precision({tracker_name: report}, d)


# ----------------------------------------------------------------------------- reading several

def load_results(named: Mapping, sequences=None) -> dict:
    """``{name: report}`` from reports, ``metrics.json`` paths or result folders (ours or
    another toolkit's, scored on ``sequences``; without them a folder's ``metrics.json``)."""
    out = {}
    for name, entry in named.items():
        if isinstance(entry, (str, os.PathLike)):
            p = Path(entry)
            if p.is_file():
                entry = json.loads(p.read_text())
            elif sequences is None:
                if not (p / "metrics.json").is_file():
                    raise ValueError(f"{p}: pass sequences to score a folder without metrics.json")
                entry = json.loads((p / "metrics.json").read_text())
            else:
                entry = evaluate_results(p, sequences)
        out[name] = entry
    return out


# ----------------------------------------------------------------------------- which run a folder holds

RUN_FILE = "run.json"


def run_identity(tracker, *, variant: str = "default", seed: int = 0, **extra) -> dict:
    """What determines a tracker's boxes: its name, variant, full config, the fingerprint of
    its params and the seed (plus ``extra``, e.g. the dataset)."""
    import dataclasses

    from jaxtrack.checkpoints import fingerprint
    config = json.loads(json.dumps(dataclasses.asdict(tracker.config), default=repr))
    return {"tracker": tracker.name, "variant": variant, "config": config,
            "params_sha256": fingerprint(tracker.params), "seed": seed, **extra}


def run_name(identity: dict) -> str:
    """``<tracker>_<backbone>_<variant>_<hash>``: the results folder of a run, the hash (8 hex
    digits) over the whole identity, so another config, weights or seed gets another folder."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    backbone = identity["config"].get("backbone")
    return "_".join([identity["tracker"]] + ([backbone] if backbone else []) + [identity["variant"], digest])


def claim_folder(tracker_dir, identity: dict, *, overwrite: bool = False) -> None:
    """Record ``identity`` in ``<tracker_dir>/run.json``, or check it against the one there:
    results made by another config, other weights or another seed are never mixed with
    these. A folder with result files but no ``run.json`` is refused too (unless
    ``overwrite``, which starts it afresh)."""
    d = Path(tracker_dir)
    path = d / RUN_FILE
    check_writable(d)
    text = json.dumps(identity, indent=2, sort_keys=True) + "\n"
    if overwrite:
        _write(atomic_write_text, path, text)
        return
    if not path.is_file() and any(d.glob("*.txt")):
        raise RunMismatchError(f"{d}: has result files but no {RUN_FILE}, so what made them is unknown; "
                               "use another --results / --name, or --overwrite to replace them")
    if _write(create_exclusive, path, text):     # two processes: one creates it, the other compares
        return
    old, new = _flat(json.loads(path.read_text())), _flat(identity)
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        shown = "; ".join(f"{k}: recorded {old.get(k)!r}, now {new.get(k)!r}" for k in diff[:4])
        raise RunMismatchError(f"{d}: holds results of another run ({shown}); use another "
                               "--results / --name, or --overwrite to replace them")


def check_writable(folder) -> None:
    """Fail now, naming the folder, if results cannot be written there (read-only, full disk),
    rather than after the first sequence has been tracked."""
    d = Path(folder)
    probe = d / f".write-test-{os.getpid()}"
    try:
        d.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise ResultsFolderError(f"{d}: cannot write results here ({e.strerror or e})") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _write(writer, path, data):
    try:
        return writer(path, data)
    except OSError as e:
        raise ResultsFolderError(f"{path}: cannot write ({e.strerror or e})") from None


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out




# ----------------------------------------------------------------------------- running

def pending(tracker_dir, sequences, *, overwrite: bool = False, label: str = "") -> list:
    """The sequences whose result and times files are not both complete (all if
    ``overwrite``); a partial or corrupt pair is redone with a warning."""
    out = []
    for seq in sequences:
        why = "overwrite" if overwrite else check_complete(*result_paths(tracker_dir, seq.name), len(seq))
        if why is None:
            continue
        if why not in ("missing", "overwrite"):
            warnings.warn(f"{label or tracker_dir}/{seq.name}: {why}; running it again")
        out.append(seq)
    return out


def health_path(tracker_dir, seq_name: str) -> Path:
    """``<dir>/health/<seq>.json``: the per-frame health flags of a sequence's run."""
    return Path(tracker_dir) / "health" / f"{seq_name}.json"


def write_sequence_result(tracker_dir, seq, boxes, times, health=None) -> None:
    """A sequence's times, health flags (``health``: a :class:`jaxtrack.driver.SequenceResult`
    or None) then boxes (dataset convention), each atomically: the boxes file, written last,
    is what marks the sequence as done."""
    n = len(seq)
    boxes = np.asarray(boxes, np.float64)
    times = np.asarray(times, np.float64).reshape(-1)
    if boxes.shape != (n, 4) or times.shape != (n,):
        raise ValueError(f"{seq.name}: the tracker returned boxes {boxes.shape} and times {times.shape} "
                         f"for {n} frames (want ({n}, 4) and ({n},))")
    box_path, time_path = result_paths(tracker_dir, seq.name)
    atomic_write_text(time_path, format_rows(times, "%.8f"))
    if health is not None:
        atomic_write_json(health_path(tracker_dir, seq.name), {
            "lost": "".join("1" if v else "0" for v in health.lost),
            "finite": "".join("1" if v else "0" for v in health.finite),
            "nonfinite_frame": health.nonfinite_frame, "notes": list(health.notes)})
    atomic_write_text(box_path, format_rows(B.to_dataset(boxes, seq.index_base), "%.4f"))


def run_ope(tracker_name: str, sequences, track_fn: Callable, results_root, *,
            overwrite: bool = False, progress: bool = True, extra_info=None,
            identity: dict | None = None) -> dict:
    """Run ``track_fn`` on every sequence not done yet, then score all of them.

    ``track_fn(seq) -> (boxes, times)``: ``boxes`` (N, 4) in jaxtrack's convention,
    ``times`` (N,) seconds per frame; or a :class:`jaxtrack.driver.SequenceResult`, whose
    health flags are recorded too (``health/<seq>.json``, summed in ``metrics.json``). Results go to ``<results_root>/<tracker_name>/``
    (see the module docstring). A sequence with complete result and times files is
    skipped unless ``overwrite``; a partial or corrupt one is redone with a warning.
    ``identity`` (:func:`run_identity`) is recorded in the folder and checked on a rerun
    (:func:`claim_folder`). An exception from ``track_fn`` propagates; the sequences
    finished before it keep their (complete) files, so calling ``run_ope`` again resumes.

    Returns the report also written to ``metrics.json`` (see ``evaluate_results``).
    """
    sequences = list(sequences)
    names = [s.name for s in sequences]
    if len(set(names)) != len(names):
        raise ValueError("sequence names must be unique (they name the result files)")
    tracker_dir = Path(results_root) / tracker_name
    if identity is not None:
        claim_folder(tracker_dir, identity, overwrite=overwrite)
    todo = pending(tracker_dir, sequences, overwrite=overwrite, label=tracker_name)
    bar = tqdm(todo, desc=tracker_name, unit="seq", file=sys.stderr, disable=not progress)
    for seq in bar:
        bar.set_postfix_str(seq.name)
        result = track_fn(seq)
        if hasattr(result, "finite"):
            write_sequence_result(tracker_dir, seq, result.boxes, result.times, result)
        else:
            write_sequence_result(tracker_dir, seq, *result)
    bar.close()
    return finish_ope(tracker_name, tracker_dir, sequences, extra_info)


def finish_ope(tracker_name: str, tracker_dir, sequences, extra_info=None) -> dict:
    """Score the folder on ``sequences`` and write ``metrics.json`` / ``.md`` and the plots."""
    report = evaluate_results(tracker_dir, sequences, extra_info=extra_info)
    write_report(tracker_dir, tracker_name, report)
    return report


def run_ope_batched(bt, tracker_name: str, sequences, results_root, *, seed: int = 0,
                    overwrite: bool = False, bucket_policy: str = "group", process_index: int = 0,
                    process_count: int = 1, wait_timeout: float = 3600.0, extra_info=None,
                    progress: bool = True, identity: dict | None = None) -> dict:
    """:func:`run_ope` with a :class:`jaxtrack.batch.BatchTracker`: same files, same resume rule.

    This process tracks its share of the sequences (:func:`jaxtrack.batch.host_subset`)
    that are not complete yet, writing each sequence's files the moment it finishes.
    Process 0 then waits (up to ``wait_timeout`` s; the results folder must be shared) for
    every other share and writes the report; other processes return the report of their
    own share without writing one.
    """
    from jaxtrack.batch import host_subset, track_batched
    sequences = list(sequences)
    tracker_dir = Path(results_root) / tracker_name
    if identity is not None and process_index == 0:
        claim_folder(tracker_dir, identity, overwrite=overwrite)
    mine = host_subset(sequences, process_index, process_count)
    todo = pending(tracker_dir, mine, overwrite=overwrite, label=tracker_name)
    done = [0]

    def write(seq, res):
        write_sequence_result(tracker_dir, seq, res.boxes, res.times, res)
        done[0] += 1
        if progress:
            print(f"[{tracker_name} p{process_index}] {done[0]}/{len(todo)} {seq.name}", flush=True)

    if todo:
        track_batched(bt, todo, seed, bucket_policy=bucket_policy, on_done=write)
    if process_index != 0:
        return evaluate_results(tracker_dir, mine, extra_info=extra_info)
    others = [s for s in sequences if s not in mine]
    deadline = time.monotonic() + wait_timeout
    while others and pending(tracker_dir, others) and time.monotonic() < deadline:
        time.sleep(1.0)
    late = pending(tracker_dir, sequences)
    if late:
        raise RuntimeError(f"{late[0].name}: no complete result from process "
                           f"{sequences.index(late[0]) % process_count} within {wait_timeout} s")
    return finish_ope(tracker_name, tracker_dir, sequences, extra_info)
