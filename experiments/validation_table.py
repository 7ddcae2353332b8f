"""Does the validation set rank trackers as real video does? One row per tracker or head: the
mean AUC on each part of the validation set (synthetic, composed, real video;
``jaxtrack.train.selection.part_of``) and on the reported sequences, then the Spearman rank
correlation of each part with the reported mean, across the rows (docs/generalization.md).

Each row is a name and the results that make it: ``jaxtrack eval`` result folders (their
``metrics.json``) or a training export's provenance ``.json`` (its ``val_per_sequence``).
Sequences named ``val_*`` are validation sequences; every other is a reported one.

    python experiments/validation_table.py \\
        --row identity R/validation/siamfc_identity R/otb/siamfc_identity R/otb_extra/siamfc_identity \\
        --row trained R/validation/siamfc_trained R/otb/siamfc_trained R/otb_extra/siamfc_trained
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from jaxtrack import cli
from jaxtrack.train.selection import part_of

PARTS = ("synthetic", "composed", "real")


def per_sequence(path: str) -> dict:
    """{sequence: AUC} of a result folder (metrics.json) or of a provenance .json."""
    file = os.path.join(path, "metrics.json") if os.path.isdir(path) else path
    try:
        with open(file) as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: no results to read ({e})")
    if "val_per_sequence" in record:
        return dict(record["val_per_sequence"])
    if "per_sequence" not in record:
        raise SystemExit(f"{file}: neither per_sequence (jaxtrack eval) nor val_per_sequence (a provenance)")
    return {name: m["auc"] for name, m in record["per_sequence"].items()}


def row_means(paths) -> dict:
    """{part: mean AUC} of the validation parts present, plus "all" (every validation
    sequence) and "reported" (the other sequences)."""
    per = {}
    for p in paths:
        per.update(per_sequence(p))
    val = {k: v for k, v in per.items() if k.startswith("val_")}
    out = {part: float(np.mean([v for k, v in val.items() if part_of(k) == part]))
           for part in PARTS if any(part_of(k) == part for k in val)}
    if val:
        out["all"] = float(np.mean(list(val.values())))
    reported = [v for k, v in per.items() if not k.startswith("val_")]
    if reported:
        out["reported"] = float(np.mean(reported))
    return out


def spearman(x, y) -> float:
    """Spearman's rank correlation (ties by order of appearance)."""
    rank = lambda v: np.argsort(np.argsort(np.asarray(v)))
    return float(np.corrcoef(rank(x), rank(y))[0, 1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--row", nargs="+", action="append", required=True, metavar=("NAME", "RESULTS"),
                    help="a row's name, then its result folders / provenance files")
    args = ap.parse_args(argv)
    rows = {}
    for name, *paths in args.row:
        if not paths:
            raise SystemExit(f"--row {name}: give at least one result folder or provenance file")
        rows[name] = row_means(paths)
    cols = [c for c in PARTS + ("all", "reported") if any(c in r for r in rows.values())]
    print("| row | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r[c]:.3f}" if c in r else "-" for c in cols) + " |")
    full = [n for n, r in rows.items() if "reported" in r]
    if len(full) >= 3:
        print(f"\nSpearman rank correlation with the reported mean, over {len(full)} rows:")
        for c in cols[:-1]:
            have = [n for n in full if c in rows[n]]
            if len(have) >= 3:
                print(f"  {c}: {spearman([rows[n][c] for n in have], [rows[n]['reported'] for n in have]):+.2f}"
                      + ("" if len(have) == len(full) else f" ({len(have)} rows)"))


if __name__ == "__main__":
    cli.run(main)
