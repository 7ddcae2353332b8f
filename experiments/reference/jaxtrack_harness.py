"""What every reference harness here shares: relative differences, box agreement between two
trajectories, frames per second, the first frames of a sequence, and compact JSON fixtures.

Imported by the harnesses beside it (their folder is on ``sys.path`` when they run); it
imports nothing of any reference.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys

import numpy as np


def rel(a, b) -> float:
    """Largest absolute difference over the largest absolute reference value ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def first_frames(seq, n: int):
    """The first ``n`` frames of a sequence (on disk or in memory); all of it for ``n <= 0``."""
    if n <= 0 or n >= len(seq):
        return seq
    if seq.images is not None:
        return dataclasses.replace(seq, gt=seq.gt[:n], images=seq.images[:n])
    return dataclasses.replace(seq, gt=seq.gt[:n], frame_paths=seq.frame_paths[:n])


def agreement(ours, ref0) -> dict:
    """Per-frame agreement of two [N, 4] xywh trajectories (0-based): the largest coordinate
    difference per frame, the first frames over 1 and 0.5 px, the mean IoU."""
    from jaxtrack import boxes as bx
    diff = np.max(np.abs(ours - ref0), axis=1)
    over = np.nonzero(diff > 1.0)[0]
    half = np.nonzero(diff > 0.5)[0]
    return {"frames": int(len(diff)), "max_px": float(diff.max()), "mean_px": float(diff.mean()),
            "first_frame_over_1px": int(over[0]) if len(over) else None,
            "frames_over_1px": int(len(over)), "frames_over_0.5px": int(len(half)),
            "first_frame_over_0.5px": int(half[0]) if len(half) else None,
            "mean_iou": float(np.mean(bx.iou(ours, ref0))),
            "max_center_px": float(np.max(bx.center_error(ours, ref0)))}


def fps(times) -> float:
    """Frames per second of the updates (``times[1:]``; frame 0 is initialisation)."""
    t = np.asarray(times, np.float64)[1:]
    return float(len(t) / t.sum())


def median_fps(times) -> float:
    """Frames per second of the median update (``times[1:]``): the steady state."""
    return float(1.0 / np.median(np.asarray(times, np.float64)[1:]))


def compact_json(obj) -> str:
    """JSON with one line per list of numbers (boxes, layer rows)."""
    text = json.dumps(obj, indent=1)
    return re.sub(r"\[[^\[\]{}]*\]", lambda m: re.sub(r"\s+", " ", m.group(0)).replace("[ ", "[").replace(" ]", "]"),
                  text)


def tracking_parser(doc: str, *, reference_help: str, json_default: str, seed: int, configs,
                    frames: int, synthetic_frames: int, component_frames: int, fixture_frames: int,
                    workdir_help: str, threads: bool = True) -> argparse.ArgumentParser:
    """The options every tracking harness takes (the reference, the sequences, the seeds, the
    jaxtrack settings compared end to end, where results and fixtures go); a harness adds
    its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--reference", help=reference_help)
    ap.add_argument("--sequence", default="../shared/data/otb/Crossing", help="an OTB sequence folder")
    ap.add_argument("--frames", type=int, default=frames, help="only the first N frames (0: all)")
    ap.add_argument("--synthetic-frames", type=int, default=synthetic_frames)
    ap.add_argument("--synthetic-seed", type=int, default=0, help="jaxtrack.data.synthetic.make_sequence seed")
    ap.add_argument("--component-frames", type=int, default=component_frames,
                    help="frames recorded for the components")
    ap.add_argument("--seed", type=int, default=seed, help="weights seed")
    if threads:
        ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    ap.add_argument("--configs", nargs="*", default=list(configs), help="jaxtrack settings end to end")
    ap.add_argument("--json", default=json_default)
    ap.add_argument("--fixtures", help="also write the test fixtures to this folder")
    ap.add_argument("--fixture-frames", type=int, default=fixture_frames, help="synthetic frames in the fixtures")
    ap.add_argument("--workdir", help=workdir_help)
    return ap


def check_reference(ap: argparse.ArgumentParser, reference, marker: str, what: str) -> None:
    """Stop with a usage error unless ``reference`` is a checkout holding ``marker``."""
    if not reference or not os.path.exists(os.path.join(reference, marker)):
        ap.error(f"--reference must be a {what} checkout (holding {marker})")


def write_report(path: str, report: dict) -> None:
    """The harness's JSON report, written atomically."""
    from jaxtrack import fileio
    fileio.atomic_write_text(path, json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")


def run(main) -> None:
    """A harness's entry point: the reference's child (``--worker``) runs ``main`` plainly, the
    parent through ``jaxtrack.cli.run`` (named errors, exit codes)."""
    if "--worker" in sys.argv:
        main()
    else:
        from jaxtrack import cli
        cli.run(main)


def run_worker(script: str, job: dict, workdir: str, pythonpath, python: str = sys.executable,
               cwd=None, **env) -> tuple[dict, dict]:
    """Run ``script --worker JOB`` in a child whose PYTHONPATH is ``pythonpath`` (a list: the
    reference checkout, shims before it) with ``env`` added, in ``cwd``; the child writes
    ``job["json_out"]`` and ``job["arrays_out"]``, returned as (dict, name -> array)."""
    import subprocess
    job = dict(job, arrays_out=os.path.join(workdir, "ref_arrays.npz"), json_out=os.path.join(workdir, "ref.json"))
    path = os.path.join(workdir, "job.json")
    with open(path, "w") as f:
        json.dump(job, f)
    child_env = dict(os.environ, PYTHONPATH=os.pathsep.join(os.path.abspath(p) for p in pythonpath), **env)
    subprocess.run([python, os.path.abspath(script), "--worker", path], env=child_env, check=True, cwd=cwd)
    with open(job["json_out"]) as f:
        out = json.load(f)
    return out, dict(np.load(job["arrays_out"]))
