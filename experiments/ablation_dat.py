"""DAT ablation: the reciprocative weight lambda, and attention as a regulariser vs as feature weights.

    python experiments/ablation_dat.py --root ../shared/data/otb --out RESULTS/ablation_dat \
        [--sequences Skiing Crossing] [--max-frames 60] [--configs lam0 lam5 weight] [--set KEY=VALUE ...]
    python experiments/ablation_dat.py --merge RUN_A RUN_B ... --out RESULTS/ablation_dat

Configs: ``lam{0,1,3,5,7}`` (attention="reg", lambda = the number; lam0 is MDNet without
attention) and ``weight`` (attention maps as feature weights, no regulariser).
``--max-frames N`` keeps the first N frames of each sequence (a *truncated* benchmark,
reported as such). ``--set`` overrides any other DATConfig field for every config
(e.g. ``--set n_samples=128``). Per-config per-sequence results go to
``<out>/<config>.json`` (resumable: finished sequences are skipped) and a summary table
to ``<out>/summary.md``. Evaluation only: nothing is trained offline.

Sequences take minutes to hours each on a CPU, so one may run several processes, each
with its own ``--out`` (two processes must not share one), and then ``--merge`` their
folders (searched recursively for ``<config>.json``) into ``--out``: a sequence found
twice must have the same settings and AUC, otherwise the merge stops and names it.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CONFIGS = {"lam0": {"lam": 0.0}, "lam1": {"lam": 1.0}, "lam3": {"lam": 3.0},
           "lam5": {"lam": 5.0}, "lam7": {"lam": 7.0}, "weight": {"attention": "weight", "lam": 0.0}}


def _truncate(seq, n):
    import dataclasses
    if n is None or len(seq) <= n:
        return seq
    kw = {"gt": seq.gt[:n]}
    if seq.images is not None:
        kw["images"] = seq.images[:n]
    else:
        kw["frame_paths"] = seq.frame_paths[:n]
    if seq.visible is not None:
        kw["visible"] = seq.visible[:n]
    return dataclasses.replace(seq, **kw)


def parse_sets(items):
    out = {}
    for it in items or []:
        k, _, v = it.partition("=")
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


def merge_runs(folders):
    """{config: results} from every ``<config>.json`` under ``folders`` (recursively)."""
    merged = {}
    for folder in folders:
        for dirpath, _, files in sorted(os.walk(folder)):
            for f in sorted(files):
                name = f[:-5]
                if name not in CONFIGS or not f.endswith(".json"):
                    continue
                run = json.load(open(os.path.join(dirpath, f)))
                into = merged.setdefault(name, {k: v for k, v in run.items() if k != "sequences"}
                                         | {"sequences": {}})
                for key in ("config", "overrides", "seed", "max_frames", "backbone"):
                    if run.get(key) != into.get(key):
                        raise SystemExit(f"{dirpath}/{f}: {key} {run.get(key)!r} differs from "
                                         f"{into.get(key)!r} in an earlier {name}.json")
                for seq, r in run["sequences"].items():
                    old = into["sequences"].get(seq)
                    if old is not None and abs(old["auc"] - r["auc"]) > 1e-9:
                        raise SystemExit(f"{dirpath}/{f}: {name} {seq} AUC {r['auc']} differs from "
                                         f"{old['auc']} found earlier")
                    into["sequences"].setdefault(seq, r)
    return merged


def summarize(results, names, header):
    """Markdown table: per config the mean over the sequences it finished (AUC, P@20 and
    FPS over all frames), and AUC / P@20 per sequence."""
    import numpy as np
    from jaxtrack.eval.metrics import aggregate
    lines = [header, "", "| config | sequences | mean AUC | prec@20 | fps | " + " | ".join(names) + " |",
             "|---" * (5 + len(names)) + "|"]
    for name, done in results.items():
        per = [done["sequences"][n] for n in names if n in done["sequences"]]
        if not per:
            continue
        agg = aggregate([{"success_curve": np.asarray(p["curves"]["success"]),
                          "precision_curve": np.asarray(p["curves"]["precision"]),
                          "norm_precision_curve": np.zeros(51), "ao_frames": p["frames"],
                          "ao": 0.0, "sr50": 0.0, "sr75": 0.0, "frames": p["frames"]} for p in per])
        frames = sum(p["frames"] - 1 for p in per)
        secs = sum((p["frames"] - 1) / p["fps"] for p in per)
        cells = [f"{done['sequences'][n]['auc']:.3f} / {done['sequences'][n]['prec20']:.3f}"
                 if n in done["sequences"] else "-" for n in names]
        lines.append(f"| {name} | {len(per)} | {agg['auc']:.3f} | {agg['prec20']:.3f} | "
                     f"{frames / max(secs, 1e-9):.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None)
    ap.add_argument("--merge", nargs="*", default=None,
                    help="merge the results under these folders into --out (no tracking)")
    ap.add_argument("--dataset", default="otb")
    ap.add_argument("--out", default="RESULTS/ablation_dat")
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--sequences", nargs="*", default=None)
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS))
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--set", nargs="*", default=[], help="KEY=VALUE DATConfig overrides for all configs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cache", action="store_true")
    args = ap.parse_args(argv)
    from jaxtrack.fileio import atomic_write_json, atomic_write_text
    if args.merge is not None:
        merged = merge_runs(args.merge)
        if not merged:
            raise SystemExit(f"--merge: no <config>.json under {args.merge}")
        os.makedirs(args.out, exist_ok=True)
        for name, done in merged.items():
            atomic_write_json(os.path.join(args.out, f"{name}.json"), done)
        names = sorted({s for d in merged.values() for s in d["sequences"]})
        meta = next(iter(merged.values()))
        table = summarize({c: merged[c] for c in CONFIGS if c in merged}, names,
                          f"DAT ablation ({meta.get('backbone')}, seed {meta.get('seed')}, max_frames "
                          f"{meta.get('max_frames')}), merged from {len(args.merge)} folder(s)")
        atomic_write_text(os.path.join(args.out, "summary.md"), table)
        print(table)
        return
    if args.root is None:
        raise SystemExit("--root is required (unless --merge)")
    if not args.no_cache:
        common.enable_compilation_cache(common.default_cache_dir())

    import numpy as np
    import jaxtrack
    from jaxtrack.data import load_dataset
    from jaxtrack.driver import JitTracker, run_sequence
    from jaxtrack.eval.metrics import sequence_metrics

    bad = [c for c in args.configs if c not in CONFIGS]
    if bad:
        raise SystemExit(f"unknown config(s) {bad}; known: {list(CONFIGS)}")
    sets = parse_sets(args.set)
    seqs = [_truncate(s, args.max_frames)
            for s in load_dataset(args.dataset, args.root, sequences=args.sequences)]
    os.makedirs(args.out, exist_ok=True)
    rows = {}
    for name in args.configs:
        path = os.path.join(args.out, f"{name}.json")
        done = json.load(open(path)) if os.path.exists(path) else {"sequences": {}}
        overrides = {**CONFIGS[name], **sets}
        tracker = jaxtrack.make_tracker("dat", backbone=args.backbone, seed=args.seed, **overrides)
        jt = JitTracker(tracker)
        for seq in seqs:
            if seq.name in done["sequences"]:
                continue
            t0 = time.perf_counter()
            r = run_sequence(jt, seq, seed=args.seed)
            m = sequence_metrics(r.boxes, seq.gt, seq.index_base)
            steps = r.times[1:]
            done["sequences"][seq.name] = {
                "auc": float(m["auc"]), "prec20": float(m["prec20"]), "frames": len(seq),
                "fps": float(len(steps) / max(steps.sum(), 1e-9)), "init_s": float(r.times[0]),
                "wall_s": time.perf_counter() - t0,
                "curves": {"success": np.asarray(m["success_curve"]).tolist(),
                           "precision": np.asarray(m["precision_curve"]).tolist()},
                "boxes": np.asarray(r.boxes).round(2).tolist()}
            done.update(config=repr(tracker.config), overrides=overrides, seed=args.seed,
                        max_frames=args.max_frames, backbone=args.backbone)
            atomic_write_json(path, done)
            print(f"{name} {seq.name}: AUC {m['auc']:.3f} prec {m['prec20']:.3f} "
                  f"fps {done['sequences'][seq.name]['fps']:.2f}", flush=True)
        rows[name] = done
    table = summarize(rows, [s.name for s in seqs],
                      f"DAT ablation ({args.backbone}, seed {args.seed}, max_frames {args.max_frames}, "
                      f"overrides {sets})")
    atomic_write_text(os.path.join(args.out, "summary.md"), table)
    print(table)


if __name__ == "__main__":
    main()
