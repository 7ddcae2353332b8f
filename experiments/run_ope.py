"""One-pass evaluation (OPE) of a tracker over a dataset, resumable.

    python experiments/run_ope.py --tracker siamfc --backbone mobilenet_v2 \
        --dataset otb --root ../shared/data/otb --results RESULTS

Writes ``RESULTS/<tracker>/<sequence>.txt`` (x,y,w,h per frame, the dataset's own
convention), ``times/``, ``metrics.json``, ``metrics.md`` and success/precision plots.
A rerun skips finished sequences. ``--compare DIR ...`` adds other result folders
(other trackers or toolkits) to the plots.

``--parallel B`` tracks B sequences at once (``jaxtrack.batch``: vmapped ``track_step``,
the batch sharded over all local devices), with the same files and resume rule.
Several hosts: start one process per host with ``--coordinator HOST:PORT
--num-processes N --process-id I`` (or the JAX_* environment variables); sequence i
is tracked by process i % N, and process 0 writes the report once all are done
(the results folder must be shared).
"""
from __future__ import annotations

import argparse
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
    ap.add_argument("--parallel", type=int, default=0, metavar="B",
                    help="track B sequences at once, sharded over the local devices")
    ap.add_argument("--bucket-policy", default="group", choices=["group", "max"],
                    help="--parallel: batch sequences of one frame bucket together, or pad all to the largest")
    ap.add_argument("--wait-timeout", type=float, default=3600.0,
                    help="--parallel, several processes: how long process 0 waits for the others")
    common.add_distributed_args(ap)
    args = ap.parse_args(argv)
    common.select_device(args.device)
    common.setup_cache(args)
    if args.parallel:
        from jaxtrack.batch import initialize_distributed
        process_index, process_count = initialize_distributed(
            args.coordinator, args.num_processes, args.process_id)

    import jax
    import jaxtrack
    from jaxtrack.data import load_dataset
    from jaxtrack.driver import JitTracker, run_sequence
    from jaxtrack.eval.ope import run_ope

    sequences = load_dataset(args.dataset, args.root, split=args.split, sequences=args.sequences)
    tracker = jaxtrack.make_tracker(args.tracker, **common.tracker_overrides(args))
    name = args.name or common.tracker_label(args)
    if args.parallel:
        return _run_parallel(args, tracker, name, sequences, process_index, process_count)
    jt = JitTracker(tracker)

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


def _run_parallel(args, tracker, name, sequences, process_index, process_count):
    import jax
    from jaxtrack.batch import BatchTracker, run_ope_batched
    bt = BatchTracker(tracker, args.parallel)
    info = {"tracker": args.tracker, "config": repr(tracker.config), "seed": args.seed,
            "dataset": args.dataset, "weights": args.weights or "default",
            "device": str(jax.local_devices()[0]), "jax": jax.__version__,
            "parallel": args.parallel, "local_devices": bt.num_devices,
            "processes": process_count, "bucket_policy": args.bucket_policy}
    report = run_ope_batched(bt, name, sequences, args.results, seed=args.seed,
                             overwrite=args.overwrite, bucket_policy=args.bucket_policy,
                             process_index=process_index, process_count=process_count,
                             wait_timeout=args.wait_timeout, extra_info=info,
                             progress=not args.no_progress)
    report["compilations"] = bt.num_compilations
    if process_index == 0:
        print(open(os.path.join(args.results, name, "metrics.md")).read())
    print(f"process {process_index}/{process_count}: compilations {bt.num_compilations} "
          f"(batched step/init per bucket; 0 if every sequence was already done), "
          f"{bt.num_devices} local device(s), batch {args.parallel}")
    return report


if __name__ == "__main__":
    main()
