"""TADT channel-selection ablation: target-aware vs all / random / regression-only / ranking-only.

    python experiments/ablation_tadt.py --root ../shared/data/otb --out RESULTS/ablation_tadt

For each ``selection`` (see :mod:`jaxtrack.trackers.tadt`) the tracker runs one-pass over
every sequence from the first ground-truth box; per-sequence and mean AUC (success
area), precision at 20 px and tracking FPS (frames 2..N, init excluded, as run_ope.py)
go to ``OUT/ablation_tadt.json`` and ``OUT/ablation_tadt.md``. The JSON is rewritten
after every sequence and a rerun skips finished (selection, sequence) pairs, so an
interrupted run resumes. ``random`` draws its channels with the per-sequence key of
``--seed`` (recorded).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SELECTIONS = ("target_aware", "all", "random", "regression", "ranking")


def markdown(record: dict) -> str:
    sels = [s for s in record["selections"] if s in record["results"]]
    seqs = record["sequences"]
    lines = [f"TADT channel-selection ablation, backbone {record['backbone']}, dataset "
             f"{record['dataset']} ({len(seqs)} sequences), seed {record['seed']}, device "
             f"{record['device']}. AUC / prec@20px / FPS (tracking frames, init excluded).", ""]
    lines.append("| sequence | " + " | ".join(sels) + " |")
    lines.append("|---|" + "---|" * len(sels))
    for name in seqs + ["mean"]:
        cells = []
        for s in sels:
            r = record["results"][s].get(name) if name != "mean" else record["means"].get(s)
            cells.append("-" if r is None else
                         f"{r['auc']:.3f} / {r['prec20']:.3f} / {r['fps']:.1f}")
        lines.append(f"| {'**mean**' if name == 'mean' else name} | " + " | ".join(cells) + " |")
    lines += ["", "Channels kept (shallow + deep taps, mean over sequences): " +
              ", ".join(f"{s}: {record['means'][s]['channels']:.1f}" for s in sels
                        if s in record["means"])]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--dataset", default="otb")
    ap.add_argument("--sequences", nargs="*", default=None)
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--selections", nargs="+", default=list(SELECTIONS), choices=SELECTIONS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="RESULTS/ablation_tadt")
    ap.add_argument("--device", default=None, choices=["cpu", "gpu"])
    ap.add_argument("--cache-dir", default=common.default_cache_dir())
    ap.add_argument("--no-cache", action="store_true")
    args = ap.parse_args(argv)
    common.select_device(args.device)
    if not args.no_cache:
        common.enable_compilation_cache(args.cache_dir)

    import json
    import jax
    import numpy as np
    import jaxtrack
    from jaxtrack.data import load_dataset
    import jax.numpy as jnp
    from jaxtrack.driver import JitTracker, run_sequence
    from jaxtrack.frames import pad_frame, sequence_key
    from jaxtrack.fileio import atomic_write_json

    seqs = load_dataset(args.dataset, args.root, sequences=args.sequences)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "ablation_tadt.json")
    record = {"backbone": args.backbone, "dataset": args.dataset, "root": os.path.abspath(args.root),
              "seed": args.seed, "device": str(jax.devices()[0]), "jax": jax.__version__,
              "selections": list(args.selections), "sequences": [s.name for s in seqs],
              "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
              "results": {}, "means": {}}
    if os.path.exists(path):
        old = json.load(open(path))
        if old.get("backbone") == args.backbone and old.get("seed") == args.seed:
            record["results"] = old.get("results", {})

    for sel in args.selections:
        kw = {"backbone": args.backbone, "selection": sel}
        if args.weights:
            kw["weights"] = args.weights
        tracker = jaxtrack.make_tracker("tadt", **kw)
        jt = JitTracker(tracker)
        res = record["results"].setdefault(sel, {})
        for seq in seqs:
            if seq.name in res:
                continue
            t0 = time.perf_counter()
            r = run_sequence(jt, seq, seed=args.seed)
            # channels kept: re-run init once (cheap, compiled) to read the selection
            st = jt.init(jt.params, pad_frame(seq.frame(0)), jnp.asarray(r.boxes[0], jnp.float32),
                         sequence_key(args.seed, seq.name))
            channels = int(np.sum(np.asarray(st.w_shallow) > 0) + np.sum(np.asarray(st.w_deep) > 0))
            m = res[seq.name] = {**common.sequence_result(r, seq), "init_s": float(r.times[0]),
                                 "channels": channels}
            print(f"{sel:13s} {seq.name:10s} AUC {m['auc']:.3f} prec {m['prec20']:.3f} "
                  f"fps {m['fps']:.1f} channels {channels} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            atomic_write_json(path, record)
    return common.finish_ablation(record, seqs, ("auc", "prec20", "fps", "channels"), path,
                                  os.path.join(args.out, "ablation_tadt.md"), markdown)


if __name__ == "__main__":
    main()
