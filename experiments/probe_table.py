"""Success AUC of trackers on the probe set (``docs/validation.md``) as a target-size by
speed grid, one per results folder, plus a one-row summary per tracker (issue 23, part 4:
which sizes and speeds are lost).

Reads ``metrics.json`` of ``jaxtrack eval`` runs on the probe root (sequences named
``probe_s<size>_v<speed>``) and prints markdown; ``--out FILE`` also writes it. Usage::

    jaxtrack eval --tracker siamfc --backbone mobilenet_v2 --dataset otb \\
        --root ~/.cache/jaxtrack/probe --results R --name siamfc
    python experiments/probe_table.py R/siamfc R/tadt [--out docs/...md]
"""
from __future__ import annotations

import argparse
import json
import os
import re

from jaxtrack import cli, fileio

PROBE_NAME = re.compile(r"probe_s(\d+)_v(\d+)$")


def probe_grid(metrics_path: str) -> dict[tuple[int, int], float]:
    """{(size px, speed px/frame): AUC} from one run's ``metrics.json``."""
    try:
        with open(metrics_path) as f:
            per_sequence = json.load(f)["per_sequence"]
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"{metrics_path}: not a jaxtrack eval metrics.json ({e})")
    grid = {}
    for name, m in per_sequence.items():
        match = PROBE_NAME.match(name)
        if match:
            grid[int(match[1]), int(match[2])] = float(m["auc"])
    if not grid:
        raise SystemExit(f"{metrics_path}: no probe_s<size>_v<speed> sequences in it")
    return grid


def grid_markdown(title: str, grid: dict) -> str:
    """A size (rows) by speed (columns) table with row and column means."""
    sizes = sorted({s for s, _ in grid})
    speeds = sorted({v for _, v in grid})
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    lines = [f"**{title}**", "", "| size \\ speed (px/frame) | " + " | ".join(map(str, speeds)) + " | mean |",
             "|---|" + "---:|" * (len(speeds) + 1)]
    for s in sizes:
        row = [grid.get((s, v)) for v in speeds]
        cells = ["" if a is None else f"{a:.2f}" for a in row]
        lines.append(f"| {s} px | " + " | ".join(cells) + f" | {mean([a for a in row if a is not None]):.2f} |")
    cols = [mean([grid[s, v] for s in sizes if (s, v) in grid]) for v in speeds]
    lines.append("| mean | " + " | ".join(f"{c:.2f}" for c in cols) + f" | {mean(list(grid.values())):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="result folders of jaxtrack eval on the probe root")
    ap.add_argument("--out", help="also write the markdown here")
    args = ap.parse_args(argv)
    text = ""
    for run in args.runs:
        text += grid_markdown(os.path.basename(os.path.normpath(run)),
                              probe_grid(os.path.join(run, "metrics.json"))) + "\n"
    print(text, end="")
    if args.out:
        fileio.atomic_write_text(args.out, text)


if __name__ == "__main__":
    cli.run(main)
