"""One-pass evaluation (OPE) of a tracker over a dataset, resumable.

    python experiments/run_ope.py --tracker siamfc --backbone mobilenet_v2 \
        --dataset otb --root ../shared/data/otb --results RESULTS

Writes ``RESULTS/<tracker>/<sequence>.txt`` (x,y,w,h per frame, the dataset's own
convention), ``times/``, ``metrics.json``, ``metrics.md`` and success/precision plots.
A rerun skips finished sequences. ``--compare DIR ...`` adds other result folders
(other trackers or toolkits) to the plots.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sets sys.path to the repo)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(ap)
    ap.add_argument("--dataset", default="otb")
    ap.add_argument("--root", required=True)
    ap.add_argument("--split", default=None)
    ap.add_argument("--sequences", nargs="*", default=None, help="only these sequence names")
    ap.add_argument("--results", default="RESULTS")
    ap.add_argument("--name", default=None, help="result folder name (default: tracker_backbone)")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--compare", nargs="*", default=[], help="other result folders to plot alongside")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    common.select_device(args.device)
    if not args.no_cache:
        common.enable_compilation_cache(args.cache_dir)

    import jax
    import jaxtrack
    from jaxtrack.data import load_dataset
    from jaxtrack.driver import JitTracker, run_sequence
    from jaxtrack.eval.ope import run_ope

    sequences = load_dataset(args.dataset, args.root, split=args.split, sequences=args.sequences)
    tracker = jaxtrack.make_tracker(args.tracker, **common.tracker_overrides(args))
    jt = JitTracker(tracker)
    name = args.name or common.tracker_label(args)

    def track(seq):
        r = run_sequence(jt, seq, seed=args.seed)
        return r.boxes, r.times

    info = {"tracker": args.tracker, "config": repr(tracker.config), "seed": args.seed,
            "dataset": args.dataset, "weights": args.weights or "default",
            "device": str(jax.devices()[0]), "jax": jax.__version__}
    report = run_ope(name, sequences, track, args.results, overwrite=args.overwrite,
                     progress=not args.no_progress, extra_info=info)
    report["compilations"] = jt.num_compilations
    print(open(os.path.join(args.results, name, "metrics.md")).read())
    print(f"compilations this run: {jt.num_compilations} (init + track_step, over "
          f"{len(sequences)} sequences; 0 if every sequence was already done)")
    if args.compare:
        from jaxtrack.eval.plots import plot_success_precision
        named = {name: os.path.join(args.results, name)}
        named.update({os.path.basename(os.path.normpath(d)): d for d in args.compare})
        plot_success_precision(named, sequences, os.path.join(args.results, name, "compare"))
    return report


if __name__ == "__main__":
    main()
