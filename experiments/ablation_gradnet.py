"""GradNet ablation: every variant trained on the same pairs with the same budget, then
tracked on the same sequences. One table: per sequence and mean AUC, precision, FPS.

Rows (paper Table 3 names):

* ``GradNet``: the full model (gradient update + template generalization M);
* ``w/o M``: trained without template generalization (each template sees its own
  search region only; the same number of search regions per step);
* ``w/o MG``: without M and without the gradient (the update subnet sees the shallow
  features);
* ``w/o U``: the full model's weights, no template update while tracking (only the
  first-frame update);
* ``w 2U``: unshared deep layers for the initial template (trained with M);
* ``SiamFC +budget``: the SiamFC head fine-tuned on the same pairs for the same steps,
  tracked by the ``siamfc`` tracker (the baseline with the same data and budget);
* ``SiamFC start``: the SiamFC head every variant starts from (``siamfc`` tracker);
* ``SiamFC, GradNet tracking``: that same SiamFC (GradNet's frozen search branch) tracked
  with GradNet's tracking values and no gradient template (fusion weight 0): isolates
  what the gradient template adds from the tracking hyper-parameters;
* ``GradNet, SiamFC tracking`` and ``w/o U, SiamFC tracking`` (only when asked for): the
  full model's weights tracked with the ``siamfc`` tracker's values (scale step and
  penalty, window 0.176, no once-off window switch-off, no refind), so that against
  ``SiamFC +budget`` only the template differs;
* ``GradNet, updated map only`` and ``w/o U, updated map only`` (only when asked for): the
  fusion weight of the gradient-updated template's map set to 1, so the frozen SiamFC map
  (the start head's, 0.85 officially) drops out and the learned template tracks alone;
* ``GradNet, next-view loss`` and ``SiamFC +budget, triplets`` (an extension, not in the
  paper): trained on a triplet pool (an exemplar and two views/frames of its target);
  GradNet's update takes its gradient on the first view and its loss on the second,
  which asks the update for what tracking uses it for (helping on later frames); the
  SiamFC head is trained on the same triplets' second views.
* ``GradNet, joint features`` (an extension; also with the ``siamfc`` tracker's values,
  ``w/o U, joint features`` without the online update, and
  ``joint features, SiamFC map only`` with the gradient template's map weighted 0 and no
  update): GradNet trained with its search branch and bias too, from the baseline's SiamFC
  loss on the same pairs (``train_gradnet --train-search``). The official recipe trains
  only the template branch while ``SiamFC +budget`` trains the features both of its maps
  use; here both train them alike, so GradNet's template is the difference.

With ``--heldout N`` every trained row is also probed on N held-out triplets
(``train_gradnet.heldout_metrics``): how well the SiamFC, initial and updated templates
find the target on the region the gradient came from and on a second view.

Training data: the package photographs + synthetic sequences (experiments/train_gradnet.py),
never the evaluation sequences. Training runs and results resume after an interruption.

    python experiments/ablation_gradnet.py --root ../shared/data/otb --steps 400 \
        --siamfc-pool runs/siamfc_mnv2/pool_seed0_n8192.npz --out runs/gradnet_ablation
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

# the siamfc tracker's values (siamfc-pytorch) as GradNet config overrides
SIAMFC_TRACKING = {"scale_step": 1.0375, "scale_penalty": 0.9745, "window_influence": 0.176,
                   "no_window_after": -1, "refind": False}
# row -> (trained variant file, tracker, config overrides)
ROWS = {                                   # in the order they run
    "GradNet": ("full", "gradnet", {}),
    "SiamFC +budget": ("siamfc", "siamfc", {}),
    "w/o U": ("full", "gradnet", {"online_update": False}),
    "w/o M": ("no_m", "gradnet", {}),
    "w/o MG": ("no_mg", "gradnet", {"use_gradient": False}),
    "w 2U": ("two_u", "gradnet", {"unshared_deep": True}),
    "SiamFC start": (None, "siamfc", {}),
    # the full model's tracker with the gradient template's map weighted 0 and no update:
    # the frozen SiamFC search branch (= "SiamFC start") under GradNet's tracking values
    "SiamFC, GradNet tracking": ("full", "gradnet", {"grad_influence": 0.0, "online_update": False}),
    # the full model's weights tracked with the SiamFC baseline's tracking values (scale
    # step/penalty, window 0.176, no once-off window switch, no refind): the comparison
    # with "SiamFC +budget" then differs in the template only
    "GradNet, SiamFC tracking": ("full", "gradnet", SIAMFC_TRACKING),
    "w/o U, SiamFC tracking": ("full", "gradnet", {**SIAMFC_TRACKING, "online_update": False}),
    # the gradient-updated template's map alone (fusion weight 1): no frozen SiamFC map
    "GradNet, updated map only": ("full", "gradnet", {"grad_influence": 1.0}),
    "w/o U, updated map only": ("full", "gradnet", {"grad_influence": 1.0, "online_update": False}),
    "GradNet, next-view loss": ("next", "gradnet", {}),
    # search branch trained too, with the baseline's loss added (train_gradnet --train-search)
    "GradNet, joint features": ("joint", "gradnet", {}),
    "GradNet, joint features, SiamFC tracking": ("joint", "gradnet", SIAMFC_TRACKING),
    "w/o U, joint features": ("joint", "gradnet", {"online_update": False}),
    # the same weights' SiamFC map alone (fusion weight 0, no update): what the update adds
    "joint features, SiamFC map only": ("joint", "gradnet", {**SIAMFC_TRACKING, "grad_influence": 0.0,
                                                             "online_update": False}),
    "SiamFC +budget, triplets": ("siamfc_next", "siamfc", {}),
}
EXTENSION_ROWS = ("GradNet, SiamFC tracking", "w/o U, SiamFC tracking",      # only when asked for
                  "GradNet, updated map only", "w/o U, updated map only",
                  "GradNet, next-view loss", "SiamFC +budget, triplets", "GradNet, joint features",
                  "GradNet, joint features, SiamFC tracking", "w/o U, joint features",
                  "joint features, SiamFC map only")
# trained variant -> train_gradnet.py arguments
TRAIN = {
    "full": ["--variant", "full"],
    "no_m": ["--variant", "full", "--no-generalization"],
    "no_mg": ["--variant", "no_mg", "--no-generalization"],
    "two_u": ["--variant", "two_u"],
    "siamfc": ["--variant", "siamfc"],
    "next": ["--variant", "full", "--target-view", "next"],
    "siamfc_next": ["--variant", "siamfc", "--target-view", "next"],
    "joint": ["--variant", "full", "--train-search"],
}


def train(args, v):
    """Train variant ``v`` (once; a rerun resumes or reuses it); returns its weights file."""
    import train_gradnet
    path = os.path.join(args.out, f"{v}.msgpack")
    if os.path.exists(path):
        return path
    t0 = time.time()
    argv = TRAIN[v] + ["--out", os.path.join(args.out, "train_" + v), "--steps", str(args.steps),
                       "--pool", str(args.pool), "--pool-dir", args.pool_dir or args.out,
                       "--groups", str(args.groups), "--k", str(args.k),
                       "--seed", str(args.seed), "--export", path]
    if args.siamfc_pool and "next" not in v:       # triplet pools are drawn, not reused
        argv += ["--siamfc-pool", args.siamfc_pool]
    if args.siamfc_weights:
        argv += ["--siamfc-weights", args.siamfc_weights]
    argv += shlex.split(args.train_args)
    print(f"== train {v}: {' '.join(argv)}", flush=True)
    train_gradnet.main(argv)
    print(f"== trained {v} in {time.time() - t0:.0f} s", flush=True)
    return path


def heldout(args, done: dict) -> dict:
    """train_gradnet.heldout_metrics for the weights behind each row (once per weights)."""
    import jax
    import train_gradnet
    from jaxtrack.trackers import gradnet
    targs = train_gradnet.parse(["--out", args.out, "--pool-dir", args.pool_dir or args.out]
                                + (["--siamfc-weights", args.siamfc_weights] if args.siamfc_weights else []))
    for row in args.rows:
        variant = ROWS[row][0] or "start"
        if variant in done:
            continue
        kind = "siamfc" if variant == "start" else TRAIN[variant][1]      # --variant value
        config = train_gradnet.variant_config("mobilenet_v2", kind)
        if kind != "siamfc":
            params = gradnet.load_params(config, os.path.join(args.out, f"{variant}.msgpack"))
        else:
            params = train_gradnet.start_params(targs, config)
            if variant != "start":           # a trained SiamFC head (the siamfc tracker's file)
                from jaxtrack import checkpoints
                head = checkpoints.load_variables(os.path.join(args.out, f"{variant}.msgpack"),
                                        {"adjust": params["search"]["adjust"], "bias": params["bias"]})
                params = {**params, "search": {"adjust": head["adjust"]}, "bias": head["bias"]}
        pool = train_gradnet.heldout_pool(targs, config, params, args.heldout)
        t0 = time.time()
        done[variant] = jax.tree_util.tree_map(float, train_gradnet.heldout_metrics(
            config, params, pool, k=args.k, seed=args.seed))
        print(f"held-out probe {variant} ({time.time() - t0:.0f} s)", flush=True)
    return done


def heldout_markdown(record: dict) -> str:
    """Held-out probe table: per trained weights and template, loss / hit rate per regime."""
    probe = record.get("heldout") or {}
    if not probe:
        return ""
    regimes = ("own", "generalization", "next")
    lines = ["| weights | template | " + " | ".join(f"{r}: loss / err px / hit" for r in regimes) + " |",
             "|---" * (len(regimes) + 2) + "|"]
    for variant, res in probe.items():
        names = ["siamfc"] if variant.startswith("siamfc") or variant == "start" else \
            ["siamfc", "initial", "updated"]
        for name in names:
            cells = [f"{res[r][name]['loss']:.3f} / {res[r][name]['err_px']:.1f} / {res[r][name]['hit']:.3f}"
                     for r in regimes]
            lines.append(f"| {variant} | {name} | " + " | ".join(cells) + " |")
    n = int(next(iter(probe.values()))["own"]["siamfc"]["maps"])
    return (f"\nHeld-out probe ({n} pairs never trained on; regimes: train_gradnet.heldout_metrics; "
            "err: peak error in search-crop pixels; hit: peak within r_pos):\n\n" + "\n".join(lines) + "\n")


def markdown(record: dict) -> str:
    seqs = record["sequences"]
    lines = ["| tracker | " + " | ".join(seqs) + " | mean AUC | mean prec@20 | FPS |",
             "|---" * (len(seqs) + 4) + "|"]
    for row, res in record["results"].items():
        if row not in record["means"]:
            continue
        cells = [f"{res[s]['auc']:.3f} / {res[s]['prec20']:.3f}" for s in seqs]
        m = record["means"][row]
        lines.append(f"| {row} | " + " | ".join(cells) + f" | **{m['auc']:.3f}** | {m['prec20']:.3f} | {m['fps']:.1f} |")
    return ("Per sequence: AUC / precision@20px. FPS: frames after the first over their "
            "summed times (CPU).\n\n" + "\n".join(lines) + "\n" + heldout_markdown(record))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="benchmark folder (or --synthetic-eval)")
    ap.add_argument("--dataset", default="otb")
    ap.add_argument("--sequences", nargs="*", default=None)
    ap.add_argument("--rows", nargs="+", default=[r for r in ROWS if r not in EXTENSION_ROWS],
                    choices=list(ROWS))
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--pool", type=int, default=4096)
    ap.add_argument("--pool-dir", default=None)
    ap.add_argument("--siamfc-pool", default=None, help="reuse train_siamfc.py's cached pool")
    ap.add_argument("--siamfc-weights", default=None,
                    help="the trained SiamFC head every variant starts from (default: committed)")
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/gradnet_ablation")
    ap.add_argument("--export-full", default=None, help="also copy the full model here (+ .json)")
    ap.add_argument("--heldout", type=int, default=512,
                    help="pairs never trained on for the held-out probe of every trained row (0: skip)")
    ap.add_argument("--train-args", default="",
                    help="more train_gradnet.py arguments for every trained row, e.g. "
                         "\"--images '' --synthetic 256 --appearance-change 1\"")
    ap.add_argument("--synthetic-eval", type=int, default=0,
                    help="track N held-out synthetic sequences (seeds [5000, i]) instead of --root")
    ap.add_argument("--eval-frames", type=int, default=100)
    ap.add_argument("--eval-appearance", type=float, default=0.0,
                    help="appearance_change of the --synthetic-eval sequences")
    ap.add_argument("--device", default=None, choices=["cpu", "gpu"])
    ap.add_argument("--cache-dir", default=common.default_cache_dir())
    args = ap.parse_args(argv)
    common.select_device(args.device)
    common.enable_compilation_cache(args.cache_dir)

    import json
    import shutil
    import jax
    import jaxtrack
    from jaxtrack.data import load_dataset
    from jaxtrack.driver import JitTracker, run_sequence
    from jaxtrack.fileio import atomic_write_json

    os.makedirs(args.out, exist_ok=True)
    if args.synthetic_eval:
        # seeds [5000, i]: disjoint from every training seed (pair_sources uses seed + 1000)
        from jaxtrack.data import make_dataset
        seqs = make_dataset(5000, args.synthetic_eval, num_frames=args.eval_frames,
                            appearance_change=args.eval_appearance)
        args.dataset = f"synthetic (seeds [5000, i], {args.eval_frames} frames, appearance {args.eval_appearance:g})"
    elif args.root:
        seqs = load_dataset(args.dataset, args.root, sequences=args.sequences)
    else:
        ap.error("give --root (a benchmark folder) or --synthetic-eval N")
    path = os.path.join(args.out, "ablation_gradnet.json")
    record = {"dataset": args.dataset, "root": args.root and os.path.abspath(args.root), "seed": args.seed,
              "steps": args.steps, "pool": args.pool, "siamfc_pool": args.siamfc_pool,
              "groups": args.groups, "k": args.k, "siamfc_weights": args.siamfc_weights,
              "train_args": args.train_args,
              "device": str(jax.devices()[0]), "jax": jax.__version__,
              "sequences": [s.name for s in seqs], "rows": list(args.rows),
              "command": " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
              "note": "timings taken on a shared 2-core CPU with other jobs running",
              "results": {}, "means": {}}
    if os.path.exists(path):
        old = json.load(open(path))
        if (old.get("steps"), old.get("seed"), old.get("train_args", "")) == (args.steps, args.seed, args.train_args):
            record["results"] = old.get("results", {})
            record["heldout"] = old.get("heldout", {})

    for row in args.rows:
        variant, name, overrides = ROWS[row]
        kw = {"backbone": "mobilenet_v2", **overrides}
        if variant:
            kw["weights"] = train(args, variant)
            if variant == "full" and args.export_full:
                shutil.copyfile(kw["weights"], args.export_full)
                shutil.copyfile(kw["weights"] + ".json", args.export_full + ".json")
        elif args.siamfc_weights:
            kw["weights"] = args.siamfc_weights
        tracker = jaxtrack.make_tracker(name, **kw)
        jt = JitTracker(tracker)
        res = record["results"].setdefault(row, {})
        for seq in seqs:
            if seq.name in res:
                continue
            t0 = time.perf_counter()
            m = res[seq.name] = common.sequence_result(run_sequence(jt, seq, seed=args.seed), seq)
            print(f"{row:15s} {seq.name:10s} AUC {m['auc']:.3f} prec {m['prec20']:.3f} "
                  f"fps {m['fps']:.1f} ({time.perf_counter() - t0:.0f} s)", flush=True)
            atomic_write_json(path, record)
    if args.heldout:
        record["heldout"] = heldout(args, record.get("heldout", {}))
        atomic_write_json(path, record)
    return common.finish_ablation(record, seqs, ("auc", "prec20", "fps"), path,
                                  os.path.join(args.out, "ablation_gradnet.md"), markdown)


if __name__ == "__main__":
    main()
