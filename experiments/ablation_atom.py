"""ATOM ablations: IoU refinement, and GN-CG against gradient descent.

Variants (all with the same weights and seed):

* ``full``: the tracker as configured (IoU-Net refinement, GN-CG classifier);
* ``no_iou``: no IoU-Net; the classifier peak moves the box, the size stays at the
  previous scale;
* ``gd``: plain gradient descent (no momentum) in place of Gauss-Newton/CG, spending the same
  number of Jacobian products (first frame: 6 x (1 + 2 x 10) = 126 gradient steps;
  updates: 11). Its step size is the best of ``--gd-steps`` by first-frame loss on
  *synthetic* sequences (never tuned on the evaluation data).

Reports, per variant: the classifier loss after the first-frame optimisation (per sequence
and mean), tracking AUC / precision@20 / FPS per sequence and overall (FPS as run_ope:
frames 1..N-1 over their time), and writes the boxes to ``<out>_boxes/<variant>/``.

    python experiments/ablation_atom.py --root ../shared/data/otb --out runs/ablation_atom.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def first_frame_losses(tracker, sequences, seed):
    import jax
    import jax.numpy as jnp
    from jaxtrack.frames import pad_frame, sequence_key
    init = jax.jit(tracker.init)
    out = []
    for seq in sequences:
        st = init(tracker.params, pad_frame(seq.frame(0)), jnp.asarray(seq.gt[0], jnp.float32),
                  sequence_key(seed, seq.name))
        out.append(float(st.loss))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--dataset", default="otb")
    ap.add_argument("--root", required=True)
    ap.add_argument("--sequences", nargs="*", default=None)
    ap.add_argument("--variants", nargs="*", default=["full", "no_iou", "gd"])
    ap.add_argument("--gd-steps", nargs="*", type=float, default=[1e-3, 3e-3, 1e-2])
    ap.add_argument("--tune-sequences", type=int, default=3, help="synthetic sequences for the GD step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--cache-dir", default=common.default_cache_dir())
    args = ap.parse_args(argv)
    common.enable_compilation_cache(args.cache_dir)

    import numpy as np
    import jaxtrack
    from jaxtrack.data import load_dataset
    from jaxtrack.data.synthetic import make_sequence
    from jaxtrack.driver import JitTracker, run_sequence
    from jaxtrack.eval.metrics import aggregate, sequence_metrics

    kw = {"backbone": args.backbone}
    if args.weights:
        kw["weights"] = args.weights
    base = jaxtrack.make_tracker("atom", **kw)
    params = base.params
    report = {"seed": args.seed, "backbone": args.backbone, "weights": args.weights or "default",
              "dataset": args.dataset, "variants": {}}

    tune = [make_sequence(args.seed + 500 + i, num_frames=2, size=(240, 320)) for i in range(args.tune_sequences)]
    gd_choice = {}
    if "gd" in args.variants:
        for s in args.gd_steps:
            t = jaxtrack.make_tracker("atom", params=params, backbone=args.backbone, optimizer="gd", gd_step=s)
            losses = first_frame_losses(t, tune, args.seed)
            gd_choice[s] = float(np.nanmean(losses)) if np.all(np.isfinite(losses)) else float("inf")
            print(f"gd step {s}: synthetic first-frame loss {gd_choice[s]:.4f}", flush=True)
        report["gd_step_sweep_synthetic"] = gd_choice
    gn_tune = first_frame_losses(jaxtrack.make_tracker("atom", params=params, backbone=args.backbone), tune, args.seed)
    report["gn_cg_synthetic_first_frame_loss"] = float(np.mean(gn_tune))
    print(f"gn_cg: synthetic first-frame loss {np.mean(gn_tune):.4f}", flush=True)

    variants = {"full": {}, "no_iou": {"use_iou_net": False},
                "gd": {"optimizer": "gd", "gd_step": min(gd_choice, key=gd_choice.get) if gd_choice else 1e-2}}
    sequences = load_dataset(args.dataset, args.root, sequences=args.sequences)
    for name in args.variants:
        t = jaxtrack.make_tracker("atom", params=params, backbone=args.backbone, **variants[name])
        jt = JitTracker(t)
        per_seq, fps, t0 = {}, {}, time.time()
        tot_frames, tot_time = 0, 0.0
        for seq in sequences:
            r = run_sequence(jt, seq, seed=args.seed)
            per_seq[seq.name] = sequence_metrics(r.boxes, seq.gt, seq.index_base)
            # as run_ope: frames 1..N-1 (frame 0 is the initialisation, and compiles)
            fps[seq.name] = (len(seq) - 1) / float(np.sum(r.times[1:])) if len(seq) > 1 else None
            tot_frames, tot_time = tot_frames + len(seq) - 1, tot_time + float(np.sum(r.times[1:]))
            if args.out:
                box_dir = os.path.join(os.path.splitext(args.out)[0] + "_boxes", name)
                os.makedirs(box_dir, exist_ok=True)
                from jaxtrack.fileio import atomic_write_text
                atomic_write_text(os.path.join(box_dir, seq.name + ".txt"),
                                  "".join(",".join(f"{v:.3f}" for v in b) + "\n" for b in r.boxes))
        agg = aggregate(per_seq)
        losses = first_frame_losses(t, sequences, args.seed)
        report["variants"][name] = {
            "overrides": variants[name], "auc": agg["auc"], "prec20": agg["prec20"],
            "fps": tot_frames / tot_time if tot_time > 0 else None,
            "first_frame_classifier_loss_mean": float(np.mean(losses)),
            "first_frame_classifier_loss": {s.name: l for s, l in zip(sequences, losses)},
            "per_sequence_auc": {k: v["auc"] for k, v in per_seq.items()},
            "per_sequence_prec20": {k: v["prec20"] for k, v in per_seq.items()},
            "per_sequence_fps": fps,
            "seconds": round(time.time() - t0, 1)}
        print(json.dumps({name: {k: v for k, v in report["variants"][name].items()}}), flush=True)
        if args.out:                                   # after every variant: a cut-off run keeps what it did
            from jaxtrack.fileio import atomic_write_json
            atomic_write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()
