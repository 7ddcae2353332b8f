"""Run an exported tracker (experiments/export_tracker.py) on sequences: no tracker source.

    python experiments/run_exported.py --export siamfc_mnv2.jaxexport \
        --dataset otb --root ../shared/data/otb --sequences David --out boxes.json

Needs only jax, numpy and the data reader (cv2): the exported StableHLO is
deserialised and compiled here (the persistent compilation cache is on unless
``--no-cache``, so a second cold start skips compilation). Writes, per sequence, the
boxes (jaxtrack xywh, row 0 the init box) and scores, plus the list of tracker/model
modules this process imported (always empty: the check that no tracker code ran).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

T0 = time.perf_counter()
from jaxtrack import cli  # noqa: E402  (argparse helpers only: no tracker code)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", required=True, help="file written by export_tracker.py")
    ap.add_argument("--dataset", default="otb")
    ap.add_argument("--root", required=True)
    ap.add_argument("--split", default=None)
    ap.add_argument("--sequences", nargs="*", default=None)
    cli.add_runtime_args(ap)
    ap.add_argument("--out", default=None, help="JSON of boxes/scores per sequence")
    args = ap.parse_args(argv)
    cli.setup_runtime(args)

    from jaxtrack.data import load_dataset
    from jaxtrack.export import load_exported
    from jaxtrack.frames import sequence_key

    et = load_exported(args.export)
    t_loaded = time.perf_counter()
    out = {"meta": {k: et.meta[k] for k in ("tracker", "config", "buckets", "params", "platforms")},
           "sequences": {}}
    first_box_s = None
    for seq in load_dataset(args.dataset, args.root, split=args.split, sequences=args.sequences):
        t = time.perf_counter()
        boxes, scores = et.track((seq.frame(i) for i in range(len(seq))), seq.gt[0],
                                 sequence_key(args.seed, seq.name))
        if first_box_s is None:
            first_box_s = time.perf_counter() - T0
        out["sequences"][seq.name] = {"boxes": boxes.tolist(), "scores": scores.tolist(),
                                      "seconds": time.perf_counter() - t}
        print(f"{seq.name}: {len(seq)} frames in {time.perf_counter() - t:.2f}s", flush=True)
    out["load_s"] = t_loaded - T0
    out["process_start_to_sequence_done_s"] = first_box_s
    out["tracker_modules_imported"] = sorted(
        m for m in sys.modules if m.startswith(("jaxtrack.trackers.", "jaxtrack.models", "flax")))
    if args.out:
        from jaxtrack.fileio import atomic_write_json
        atomic_write_json(args.out, out)
    print(json.dumps({"tracker_modules_imported": out["tracker_modules_imported"],
                      "load_s": round(out["load_s"], 2)}))
    return out


if __name__ == "__main__":
    cli.run(main)
