r"""Ablation tables: the rows of a tracker's table, each tracked on the same sequences.

    python experiments/ablate.py --tracker tadt --root ../shared/data/otb --out runs/ablation_tadt
    python experiments/ablate.py --tracker dat --rows lam0 lam5 --max-frames 60 --set n_samples=128 \
        --root ../shared/data/otb --sequences Skiing Crossing --out runs/ablation_dat/a
    python experiments/ablate.py --tracker dat --merge runs/ablation_dat/a runs/ablation_dat/b \
        --out runs/ablation_dat/all
    python experiments/ablate.py --tracker gradnet --root ../shared/data/otb --steps 400 \
        --siamfc-pool runs/siamfc_mnv2/pool_seed0_n8192.npz --out runs/gradnet_ablation

Rows (``--rows``, default ``DEFAULT_ROWS``) and each table's extra steps come from
``jaxtrack/configs/<tracker>.py``: GradNet's rows train their recipe first (train_gradnet.py,
with the training flags below) and their weights are probed on held-out pairs (``--heldout``);
ATOM's ``gd`` row gets the step with the lowest first-frame loss on synthetic sequences;
TADT records the channels kept. ``--set KEY=VALUE`` overrides a config field of every row.

Writes ``OUT/sweep.json`` after every sequence, ``OUT/sweep.md`` (the table) and
``OUT/boxes/<row>/`` (run_ope's result files). A rerun skips finished (row, sequence) pairs and
refuses an ``--out`` made with another seed, dataset, ``--set``, ``--max-frames``, or row
config or weights (``jaxtrack.eval.sweep``). Several processes, each with its own ``--out``,
are joined by ``--merge`` (folders searched recursively; a (row, sequence) found twice must
agree).
"""
from __future__ import annotations

import argparse
import os
import sys

from jaxtrack import cli


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracker", default=None, help="whose table (jaxtrack/configs/<tracker>.py ABLATION)")
    ap.add_argument("--rows", nargs="+", default=None, help="rows of the table (default: DEFAULT_ROWS)")
    ap.add_argument("--set", dest="sets", nargs="+", action="append", default=[], metavar="KEY=VALUE",
                    help="config overrides for every row (Python literals), e.g. --set n_samples=128")
    ap.add_argument("--root", default=None, help="benchmark folder (or --synthetic-eval)")
    ap.add_argument("--dataset", default="otb")
    ap.add_argument("--split", default=None)
    ap.add_argument("--sequences", nargs="*", default=None, help="only these sequence names")
    ap.add_argument("--synthetic-eval", type=int, default=0,
                    help="track N held-out synthetic sequences (seeds [5000, i]) instead of --root")
    ap.add_argument("--eval-frames", type=int, default=100)
    ap.add_argument("--eval-appearance", type=float, default=0.0,
                    help="appearance_change of the --synthetic-eval sequences")
    ap.add_argument("--max-frames", type=int, default=None, help="keep the first N frames of each sequence")
    ap.add_argument("--out", required=True)
    ap.add_argument("--merge", nargs="+", default=None,
                    help="merge the sweeps under these folders into --out (no tracking)")
    ap.add_argument("--allow-random", action="store_true", help="untrained weights where none exist (tests)")
    g = ap.add_argument_group("gradnet", "training of the rows with a recipe, and the held-out probe "
                              "(defaults: jaxtrack.configs.gradnet.TRAIN_OPTIONS)")
    g.add_argument("--steps", type=int, default=None)
    g.add_argument("--pool", type=int, default=None)
    g.add_argument("--pool-dir", default=None, help="where the cached pools live (default --out)")
    g.add_argument("--siamfc-pool", default=None, help="reuse train_siamfc.py's cached pool")
    g.add_argument("--siamfc-weights", default=None,
                   help="the trained SiamFC head every recipe starts from (default: committed)")
    g.add_argument("--groups", type=int, default=None)
    g.add_argument("--k", type=int, default=None)
    g.add_argument("--heldout", type=int, default=None,
                   help="pairs never trained on for the held-out probe of every row's weights (0: skip)")
    g.add_argument("--train-args", default=None,
                   help="more train_gradnet.py arguments for every recipe, e.g. "
                        "\"--images '' --synthetic 256 --appearance-change 1\"")
    g.add_argument("--export-full", default=None, help="also copy the full recipe's weights here (+ .json)")
    cli.add_runtime_args(ap)
    return ap, ap.parse_args(argv)


def main(argv=None):
    ap, args = parse(argv)
    cli.setup_runtime(args)

    from jaxtrack.configs import configs_module
    from jaxtrack.eval import sweep
    from jaxtrack.eval.ope import RunMismatchError

    if args.merge:
        tracker = args.tracker
        if tracker is None:
            found = sweep.find_records(args.merge)
            tracker = found and sweep.load_record(found[0])["settings"]["table"]
        try:
            return sweep.merge(args.merge, args.out, hooks=_hooks(configs_module(tracker) if tracker else None))
        except (RunMismatchError, FileNotFoundError) as e:
            raise SystemExit(str(e)) from None
    if not args.tracker:
        ap.error("--tracker is required (unless --merge)")
    table = configs_module(args.tracker)
    if table is None or not hasattr(table, "ABLATION"):
        ap.error(f"{args.tracker}: no ABLATION table in jaxtrack/configs/{args.tracker}.py")
    names = args.rows or list(table.DEFAULT_ROWS)
    bad = [r for r in names if r not in table.ABLATION]
    if bad:
        ap.error(f"unknown row(s) {bad}; {args.tracker}'s rows: {list(table.ABLATION)}")

    if args.synthetic_eval:
        # seeds [5000, i]: disjoint from every training seed (pair_sources uses seed + 1000)
        from jaxtrack.data import make_dataset
        seqs = make_dataset(5000, args.synthetic_eval, num_frames=args.eval_frames,
                            appearance_change=args.eval_appearance)
        dataset = (f"synthetic (seeds [5000, i], {args.eval_frames} frames, "
                   f"appearance {args.eval_appearance:g})")
    elif args.root:
        from jaxtrack.data import load_dataset
        seqs = load_dataset(args.dataset, args.root, split=args.split, sequences=args.sequences)
        dataset = args.dataset + (f"/{args.split}" if args.split else "")
    else:
        ap.error("give --root (a benchmark folder) or --synthetic-eval N")

    options = {k: getattr(args, k) for k in ("steps", "pool", "pool_dir", "siamfc_pool", "siamfc_weights",
                                             "groups", "k", "heldout", "train_args", "export_full")}
    options["train_script"] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_gradnet.py")
    info = {"root": args.root and os.path.abspath(args.root),
            "command": " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:]))}
    try:
        return sweep.sweep({r: table.ABLATION[r] for r in names}, seqs, args.out, seed=args.seed,
                           overrides=cli.parse_sets([s for group in args.sets for s in group]),
                           dataset=dataset, table=args.tracker, hooks=_hooks(table), options=options,
                           max_frames=args.max_frames, allow_random=args.allow_random, info=info,
                           log=lambda s: print(s, flush=True))
    except RunMismatchError as e:
        raise SystemExit(str(e)) from None


def _hooks(module):
    from jaxtrack.eval.sweep import Hooks
    return getattr(module, "SWEEP", None) or Hooks()


if __name__ == "__main__":
    cli.run(main)
