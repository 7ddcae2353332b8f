"""Per-frame trace of GradNet's online update on one sequence: what the tracker's state does.

For every frame: IoU with the ground truth, the SiamFC peak score and the reliability
threshold, whether the frame was stored as a reliable sample, whether it is a periodic
(every ``update_interval`` frames) template update (the early rescue updates are not
flagged), and how far the shallow-feature memory has moved from where it started
(``|m - m0| / |m0|``; the official schedule adds 0.6 x the update subnet's output at each
update, so the memory accumulates). Writes a JSON lines file and prints a summary::

    python experiments/trace_gradnet.py --root ../shared/data/otb --sequence Walking2 \
        --weights runs/gradnet_4k_s2/full.msgpack --out runs/trace_walking2_s2.jsonl \
        [--set memory_keep=1.0 rescue_keep=1.0]
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_overrides(items):
    """``key=value`` pairs (Python literals) as GradNetConfig overrides."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        out[key] = ast.literal_eval(value)
    return out


def trace(tracker, seq, seed: int = 0):
    """One record per frame after the first (see the module docstring)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jaxtrack import boxes as bx
    from jaxtrack.driver import JitTracker
    from jaxtrack.frames import pad_frame, sequence_key

    jt = JitTracker(tracker)
    first = pad_frame(seq.frame(0), where=f"{seq.name} frame 0")
    box = bx.validate_box(seq.gt[0], seq.frame(0).shape[:2], where=f"{seq.name}: first box")
    state = jt.init(jt.params, first, jnp.asarray(box, jnp.float32), sequence_key(seed, seq.name))
    m0 = np.asarray(state.memory)
    records = []
    for i in range(1, len(seq)):
        stored_before = int(state.num_stored)
        state, out = jt.step(jt.params, state, pad_frame(seq.frame(i), where=f"{seq.name} frame {i}"))
        b = np.asarray(out.box, np.float64)
        iou = float(bx.iou(b[None], np.asarray(seq.gt[i:i + 1], np.float64))[0]) \
            if np.all(np.isfinite(seq.gt[i])) else float("nan")
        records.append({
            "frame": i, "iou": iou, "peak": float(out.score), "threshold": float(state.threshold),
            "stored": int(state.num_stored) - stored_before,
            "updated": int(tracker.config.online_update and i % tracker.config.update_interval == 0),
            "memory_drift": float(np.linalg.norm(np.asarray(state.memory) - m0) / np.linalg.norm(m0)),
            "box": [round(float(v), 1) for v in b]})
    jax.block_until_ready(state)
    return records


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--dataset", default="otb")
    ap.add_argument("--sequence", required=True)
    ap.add_argument("--weights", default=None, help="GradNet weights (default: the committed checkpoint)")
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides, key=value")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="JSON lines file")
    args = ap.parse_args(argv)

    import numpy as np
    import jaxtrack
    from jaxtrack.data import load_dataset
    from jaxtrack.fileio import atomic_write_text

    seq = load_dataset(args.dataset, args.root, sequences=[args.sequence])[0]
    tracker = jaxtrack.make_tracker("gradnet", backbone=args.backbone, weights=args.weights,
                                    **parse_overrides(args.set))
    records = trace(tracker, seq, args.seed)
    atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in records))
    iou = np.array([r["iou"] for r in records])
    lost = np.flatnonzero(iou < 0.1)
    last_stored = max([r["frame"] for r in records if r["stored"]], default=0)
    print(f"{seq.name}: mean IoU {np.nanmean(iou):.3f}, first frame with IoU < 0.1: "
          f"{int(records[lost[0]]['frame']) if len(lost) else '-'}, last stored sample: frame {last_stored}, "
          f"memory drift at the end {records[-1]['memory_drift']:.2f}")
    return records


if __name__ == "__main__":
    main()
