r"""Export a tracker's init and track_step (jax.export, StableHLO) to one file.

    jaxtrack export --tracker siamfc --backbone mobilenet_v2 \
        --buckets 256x384 384x512 --out siamfc_mnv2.jaxexport

Parameters travel as an argument of the exported functions and are stored beside
them in the same file (see ``jaxtrack.export``). ``--root`` exports the buckets
a dataset needs instead of ``--buckets``. Reload and run with
``experiments/run_exported.py`` (no tracker source needed).
"""
from __future__ import annotations

import argparse
import json
import os

from jaxtrack import cli

SUMMARY = "export init/track_step (jax.export) for given frame buckets"


def parse_bucket(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bucket {text!r}: expected HxW, e.g. 256x384") from None
    return h, w


def add_arguments(ap) -> None:
    cli.add_tracker_args(ap)
    ap.add_argument("--buckets", nargs="*", type=parse_bucket, default=None,
                    help="frame buckets HxW (padded shapes; see jaxtrack.frames.BUCKET_LADDER)")
    ap.add_argument("--root", default=None, help="export the buckets this dataset's sequences need")
    ap.add_argument("--dataset", default="otb")
    ap.add_argument("--split", default=None)
    ap.add_argument("--platforms", nargs="*", default=None, help="e.g. cpu cuda (default: current)")
    ap.add_argument("--out", required=True)


def run(args):
    cli.setup_runtime(args)

    from jaxtrack.frames import bucket_shape
    from jaxtrack.export import export_tracker

    buckets = list(args.buckets or [])
    if args.root:
        from jaxtrack.data import load_dataset
        for seq in load_dataset(args.dataset, args.root, split=args.split):
            buckets.append(bucket_shape(*seq.frame_size(0)))
    buckets = sorted(set(buckets)) or [(256, 384)]
    tracker = cli.make_tracker(args, seed=args.seed)
    meta = export_tracker(tracker, buckets, args.out, platforms=args.platforms)
    print(json.dumps({k: meta[k] for k in ("tracker", "buckets", "platforms", "params")}))
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB)")
    return meta
