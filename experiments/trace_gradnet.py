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
import json

from jaxtrack import cli


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--dataset", default="otb")
    ap.add_argument("--sequence", required=True)
    ap.add_argument("--weights", default=None, help="GradNet weights (default: the committed checkpoint)")
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides, key=value")
    ap.add_argument("--out", required=True, help="JSON lines file")
    cli.add_runtime_args(ap)
    args = ap.parse_args(argv)
    cli.setup_runtime(args)

    import numpy as np
    import jaxtrack
    from jaxtrack.data import load_dataset
    from jaxtrack.eval.trace import gradnet_trace
    from jaxtrack.fileio import atomic_write_text

    seq = load_dataset(args.dataset, args.root, sequences=[args.sequence])[0]
    tracker = jaxtrack.make_tracker("gradnet", backbone=args.backbone, weights=args.weights,
                                    **cli.parse_sets(args.set))
    records = gradnet_trace(tracker, seq, args.seed)
    atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in records))
    iou = np.array([r["iou"] for r in records])
    lost = np.flatnonzero(iou < 0.1)
    last_stored = max([r["frame"] for r in records if r["stored"]], default=0)
    print(f"{seq.name}: mean IoU {np.nanmean(iou):.3f}, first frame with IoU < 0.1: "
          f"{int(records[lost[0]]['frame']) if len(lost) else '-'}, last stored sample: frame {last_stored}, "
          f"memory drift at the end {records[-1]['memory_drift']:.2f}")
    return records


if __name__ == "__main__":
    cli.run(main)
