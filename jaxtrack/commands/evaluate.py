r"""One-pass evaluation (OPE) of a tracker over a dataset, resumable.

    jaxtrack eval --tracker atom --dataset otb --root ../shared/data/otb \
        --results RESULTS [--variant no_iou] [--set learning_rate=0.02]

Writes ``RESULTS/<tracker>_<backbone>_<variant>_<hash>/<sequence>.txt`` (x,y,w,h per frame,
the dataset's own convention), ``times/``, ``run.json`` (what made the results: config,
weights fingerprint, seed), ``metrics.json``, ``metrics.md`` and success/precision plots.
The hash covers the whole config, the weights and the seed, so another setting gets
another folder; a rerun skips finished sequences, and refuses a folder (``--name``) that
holds another run's results. ``--compare DIR ...`` adds other result folders (other
trackers or toolkits) to the plots.

``--parallel B`` tracks B sequences at once (``jaxtrack.batch``: vmapped ``track_step``,
the batch sharded over all local devices), with the same files and resume rule.
Several hosts: start one process per host with ``--coordinator HOST:PORT
--num-processes N --process-id I`` (or the JAX_* environment variables); sequence i
is tracked by process i % N, and process 0 writes the report once all are done
(the results folder must be shared).
"""
from __future__ import annotations

import os

from jaxtrack import cli

SUMMARY = "one-pass evaluation of a tracker over a dataset (resumable)"


def add_arguments(ap) -> None:
    cli.add_tracker_args(ap)
    ap.add_argument("--dataset", default="otb")
    ap.add_argument("--root", required=True)
    ap.add_argument("--split", default=None)
    ap.add_argument("--sequences", nargs="*", default=None, help="only these sequence names")
    ap.add_argument("--results", default="RESULTS")
    ap.add_argument("--name", default=None, help="result folder name (default: tracker_backbone_variant_hash)")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--compare", nargs="*", default=[], help="other result folders to plot alongside")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--debug-nans", action="store_true",
                    help="run under jax.experimental.checkify: stop at the first operation that makes "
                         "a NaN (or divides by zero) and name it (slower; not with --parallel)")
    ap.add_argument("--parallel", type=int, default=0, metavar="B",
                    help="track B sequences at once, sharded over the local devices")
    ap.add_argument("--bucket-policy", default="group", choices=["group", "max"],
                    help="--parallel: batch sequences of one frame bucket together, or pad all to the largest")
    ap.add_argument("--wait-timeout", type=float, default=3600.0,
                    help="--parallel, several processes: how long process 0 waits for the others")
    cli.add_distributed_args(ap)


def run(args):
    cli.setup_runtime(args)
    process_index, process_count = 0, 1
    if args.parallel:
        from jaxtrack.batch import initialize_distributed
        process_index, process_count = initialize_distributed(
            args.coordinator, args.num_processes, args.process_id)

    import jax
    from jaxtrack.data import load_dataset
    from jaxtrack.eval import ope

    sequences = load_dataset(args.dataset, args.root, split=args.split, sequences=args.sequences)
    tracker = cli.make_tracker(args)
    identity = ope.run_identity(tracker, variant=args.variant, seed=args.seed)
    name = args.name or ope.run_name(identity)
    info = {**identity, "dataset": args.dataset, "weights": args.weights or "default",
            "device": str(jax.local_devices()[0]), "jax": jax.__version__}
    if args.parallel:
        from jaxtrack.batch import BatchTracker
        runner = BatchTracker(tracker, args.parallel)
        info.update(parallel=args.parallel, local_devices=runner.num_devices, processes=process_count,
                    bucket_policy=args.bucket_policy)
        report = ope.run_ope_batched(
            runner, name, sequences, args.results, seed=args.seed, overwrite=args.overwrite,
            bucket_policy=args.bucket_policy, process_index=process_index, process_count=process_count,
            wait_timeout=args.wait_timeout, extra_info=info, progress=not args.no_progress,
            identity=identity)
        how = f"batched step/init per bucket, {runner.num_devices} local device(s), batch {args.parallel}"
    else:
        from jaxtrack.driver import JitTracker, run_sequence
        runner = JitTracker(tracker, checked=args.debug_nans)

        def track(seq):
            return run_sequence(runner, seq, seed=args.seed)

        report = ope.run_ope(name, sequences, track, args.results, overwrite=args.overwrite,
                             progress=not args.no_progress, extra_info=info, identity=identity)
        how = "init + track_step"
    report["compilations"] = runner.num_compilations
    if process_index == 0:
        print(open(os.path.join(args.results, name, "metrics.md")).read())
        print(f"results: {os.path.join(args.results, name)}")
    print(f"process {process_index}/{process_count}: compilations this run {runner.num_compilations} "
          f"({how}, over {len(sequences)} sequences; 0 if every sequence was already done)")
    if args.compare and process_index == 0:
        from jaxtrack.eval.plots import plot_success_precision
        named = {name: os.path.join(args.results, name)}
        named.update({os.path.basename(os.path.normpath(d)): d for d in args.compare})
        plot_success_precision(ope.load_results(named, sequences), os.path.join(args.results, name, "compare"))
    return report
