"""Recompute a results folder's OTB metrics with the got10k toolkit and compare to jaxtrack's.

    python experiments/check_got10k.py --results RESULTS/siamfc_mobilenet_v2 --root ../shared/data/otb

For every sequence it reads the result file and the dataset's ground truth (both in the
dataset's own convention), sets the first box to the ground truth as got10k's OTB
experiment does, and computes the success and precision curves with got10k's own
``rect_iou``, ``center_error`` and ``ExperimentOTB._calc_curves``; then it compares
AUC and precision@20 per sequence and for the mean with ``metrics.json`` (tolerance 1e-9).
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from jaxtrack import cli


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="RESULTS/<tracker> folder with metrics.json")
    ap.add_argument("--root", required=True)
    ap.add_argument("--dataset", default="otb")
    ap.add_argument("--tol", type=float, default=1e-9)
    args = ap.parse_args(argv)
    from got10k.experiments.otb import ExperimentOTB
    from got10k.utils.metrics import center_error, rect_iou

    from jaxtrack import boxes as bx
    from jaxtrack.data import load_dataset
    from jaxtrack.eval.ope import read_boxes

    exp = ExperimentOTB.__new__(ExperimentOTB)          # only its curve code is used
    exp.nbins_iou, exp.nbins_ce = 21, 51
    ours = json.load(open(os.path.join(args.results, "metrics.json")))
    succ, prec, worst = [], [], 0.0
    print("| sequence | AUC got10k | AUC jaxtrack | Prec@20 got10k | Prec@20 jaxtrack |")
    print("|---|---:|---:|---:|---:|")
    for seq in load_dataset(args.dataset, args.root):
        boxes = read_boxes(os.path.join(args.results, f"{seq.name}.txt"))
        anno = bx.to_dataset(seq.gt, seq.index_base)
        boxes[0] = anno[0]
        s, p = exp._calc_curves(rect_iou(boxes, anno), center_error(boxes, anno))
        succ.append(s)
        prec.append(p)
        mine = ours["per_sequence"][seq.name]
        worst = max(worst, abs(np.mean(s) - mine["auc"]), abs(p[20] - mine["prec20"]))
        print(f"| {seq.name} | {np.mean(s):.12f} | {mine['auc']:.12f} | {p[20]:.12f} | {mine['prec20']:.12f} |")
    auc, p20 = np.mean(np.mean(succ, 0)), np.mean(prec, 0)[20]
    worst = max(worst, abs(auc - ours["mean"]["auc"]), abs(p20 - ours["mean"]["prec20"]))
    print(f"| **mean** | {auc:.12f} | {ours['mean']['auc']:.12f} | {p20:.12f} | {ours['mean']['prec20']:.12f} |")
    print(f"largest difference: {worst:.3g} (tolerance {args.tol:g})")
    if worst > args.tol:
        raise SystemExit("metrics differ from the got10k toolkit's")
    return worst


if __name__ == "__main__":
    cli.run(main)
