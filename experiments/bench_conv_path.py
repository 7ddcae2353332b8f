"""XLA's default compile options against each tracker's own (``Tracker.compiler_options``,
``jaxtrack.xla_options``), side by side in one process: ratios, not absolute times.

Per tracker, ``init`` and ``track_step`` are compiled twice (XLA's defaults: YNNPACK
convolutions on this jaxlib's CPU; the tracker's options: Eigen's) on ``jaxtrack bench``'s
240x320 frame, then the two steps are timed in alternating blocks of ``--block`` frames so
that a change of machine load falls on both. ``--torch`` adds PyTorch eager doing SiamFC
AlexNet's per-frame work (``jaxtrack bench --torch``) in the same alternation. Each variant's
first box is printed so a reader sees that both compute the same frame.

    python experiments/bench_conv_path.py --trackers siamfc:alexnet siamfc:mobilenet_v2 \\
        gradnet:mobilenet_v2 tadt:mobilenet_v2 --torch --out conv_path.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from jaxtrack import cli


def compiled_step(tracker, options):
    """(step, state, frame) of ``tracker`` compiled with ``options``, after init and 3 steps."""
    import jax
    import jax.numpy as jnp

    from jaxtrack import xla_options
    from jaxtrack.commands.bench import _frame
    from jaxtrack.frames import pad_frame
    f0, f1, box = _frame()
    fr0, fr1 = pad_frame(f0), pad_frame(f1)
    init = xla_options.jit(tracker.init, options)
    step = xla_options.jit(tracker.track_step, options)
    state = init(tracker.params, fr0, jnp.asarray(box, jnp.float32), jax.random.PRNGKey(0))
    for _ in range(3):
        state, out = step(tracker.params, state, fr1)
    jax.block_until_ready(out)
    return step, state, fr1, [round(float(v), 4) for v in out.box]


def run(args) -> dict:
    import jax
    import numpy as np

    from jaxtrack.commands.bench import torch_siamfc_alexnet
    rows = []
    for spec in args.trackers:
        tracker, random_weights = cli.build_for_timing(spec)
        variants = {"xla defaults": None, "tracker's options": tracker.compiler_options}
        compiled = {k: compiled_step(tracker, o) for k, o in variants.items()}
        times = {k: [] for k in variants}
        torch_ms = []
        for _ in range(args.blocks):
            for k, (step, state, frame, _) in compiled.items():
                for _ in range(args.block):
                    t = time.perf_counter()
                    state, out = step(tracker.params, state, frame)
                    jax.block_until_ready(out)
                    times[k].append(time.perf_counter() - t)
                compiled[k] = (step, state, frame, compiled[k][3])
            if args.torch and spec == "siamfc:alexnet":
                torch_ms.append(torch_siamfc_alexnet(args.block)["frame_median_ms"])
        row = {"tracker": spec, "random_weights": random_weights, "compiler_options": tracker.compiler_options,
               "first_box": {k: c[3] for k, c in compiled.items()},
               "median_ms": {k: 1e3 * float(np.median(v)) for k, v in times.items()}}
        row["speedup"] = row["median_ms"]["xla defaults"] / row["median_ms"]["tracker's options"]
        if torch_ms:
            row["torch_eager_median_ms"] = float(np.median(torch_ms))
            row["jaxtrack_over_torch_speed"] = row["torch_eager_median_ms"] / row["median_ms"]["tracker's options"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| tracker | ms, XLA defaults | ms, tracker's options | speed-up | PyTorch eager ms | "
          "jaxtrack speed / PyTorch's |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        default_ms, own_ms = r["median_ms"]["xla defaults"], r["median_ms"]["tracker's options"]
        tm = r.get("torch_eager_median_ms")
        torch_cols = "- | -" if tm is None else f"{tm:.1f} | {r['jaxtrack_over_torch_speed']:.2f}"
        print(f"| {r['tracker']} | {default_ms:.1f} | {own_ms:.1f} | {r['speedup']:.2f}x | {torch_cols} |")
    return {"rows": rows, "argv": sys.argv[1:], "jax": jax.__version__, "cpu_count": os.cpu_count(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "block": args.block, "blocks": args.blocks}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trackers", nargs="+", default=["siamfc:alexnet", "siamfc:mobilenet_v2",
                                                      "gradnet:mobilenet_v2", "tadt:mobilenet_v2"])
    ap.add_argument("--block", type=int, default=5, help="frames per block")
    ap.add_argument("--blocks", type=int, default=4, help="blocks per variant, alternated")
    ap.add_argument("--torch", action="store_true", help="PyTorch eager SiamFC AlexNet in the alternation")
    ap.add_argument("--out", help="write the JSON here")
    args = ap.parse_args(argv)
    record = run(args)
    if args.out:
        from jaxtrack.fileio import atomic_write_text
        atomic_write_text(args.out, json.dumps(record, indent=1))


if __name__ == "__main__":
    cli.run(main)
