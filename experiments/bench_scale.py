"""Aggregate tracking throughput against batch size, per tracker (jaxtrack.batch).

For each tracker and each batch size B (default 1, 8, 32, 128; larger ones are skipped
once one runs out of memory), on all local devices (B a multiple of their number):

* compile time of the batched ``track_step`` (and of the batched ``init``) for one bucket;
* steady time of one batched step (median of ``--steps``) and the aggregate FPS, B / step;
* the cost of a frame-shape bucket miss: the first step on frames of a new bucket
  (compilation included) against a steady step;
* at B = 1, the plain jitted ``track_step`` timed step for step beside the batched one
  (what vmap, masking and sharding cost; periodic updates are under ``online.lazy_cond``,
  so they run only on the steps that need them in both).

Writes ``--out`` (JSON, after every measurement; a rerun with the same ``--out`` skips
the (tracker, B) rows already there) and a PNG plot beside it (``.png``), and prints a
table. ``--budget-s`` bounds each tracker's time: a batch size whose estimated cost
(compile + steps, extrapolated linearly in B from the last one measured) exceeds what is
left is recorded as skipped, with the estimate, instead of run.

    python experiments/bench_scale.py --trackers siamfc:mobilenet_v2 --out bench_scale.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from jaxtrack import cli  # noqa: E402


_build = cli.build_for_timing


def _batch_inputs(B, bucket, seed=0, size=(240, 320)):
    import numpy as np
    from jaxtrack.data.synthetic import make_sequence
    from jaxtrack.frames import sequence_key
    seq = make_sequence(seed, num_frames=2, size=size)
    hb, wb = bucket
    h, w = size
    images = np.zeros((2, B, hb, wb, 3), np.uint8)
    images[:, :, :h, :w] = np.stack([seq.frame(0), seq.frame(1)])[:, None]
    sizes = np.tile(np.array([h, w], np.int32), (B, 1))
    boxes = np.tile(seq.gt[0].astype(np.float32), (B, 1))
    keys = np.stack([np.asarray(sequence_key(seed, f"slot{i}")) for i in range(B)]).astype(np.uint32)
    return images, sizes, boxes, keys


def measure(spec, B, bucket, miss_bucket, steps) -> dict:
    import jax
    import numpy as np
    from jaxtrack.batch import BatchTracker
    tracker, random_weights = _build(spec)
    ndev = len(jax.local_devices())
    bt = BatchTracker(tracker, B, devices=None if B % ndev == 0 else jax.local_devices()[:1])
    images, sizes, boxes, keys = _batch_inputs(B, bucket)
    active = np.ones(B, bool)
    bt.compiled("init_batch", bucket)
    bt.compiled("step", bucket)
    t = time.perf_counter()
    states = bt.init_batch(bt.blank_states(bucket), images[0], sizes, boxes, keys, active)
    jax.block_until_ready(states)
    init_s = time.perf_counter() - t
    states, out = bt.step(states, images[1], sizes, active)          # warm-up
    jax.block_until_ready(out)
    plain_times = []
    if B == 1:
        # the plain jitted track_step on the same frames, timed step for step beside the
        # batched one (same load): what vmap + masking + sharding cost at B = 1
        from jaxtrack import xla_options
        from jaxtrack.core import Frame
        opts = tracker.compiler_options
        plain_step, plain_frame = xla_options.jit(tracker.track_step, opts), Frame(images[1, 0], sizes[0])
        plain_state = xla_options.jit(tracker.init, opts)(tracker.params, Frame(images[0, 0], sizes[0]), boxes[0], keys[0])
        plain_state, out = plain_step(tracker.params, plain_state, plain_frame)
        jax.block_until_ready(out)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        states, out = bt.step(states, images[1], sizes, active)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t)
        if B == 1:
            t = time.perf_counter()
            plain_state, out = plain_step(tracker.params, plain_state, plain_frame)
            jax.block_until_ready(out)
            plain_times.append(time.perf_counter() - t)
    step_s = float(np.median(times))
    extra = {}
    if plain_times:
        p = float(np.median(plain_times))
        extra = {"plain_step_s": p, "batched_over_plain": step_s / p, "step_mean_s": float(np.mean(times)),
                 "plain_step_mean_s": float(np.mean(plain_times))}
    # a bucket miss: frames of a shape not compiled yet (the state does not depend on it)
    mi, ms, _, _ = _batch_inputs(B, miss_bucket)
    t = time.perf_counter()
    miss_states, out = bt.step(bt.blank_states(miss_bucket), mi[1], ms, active)
    jax.block_until_ready(out)
    miss_s = time.perf_counter() - t
    return {"tracker": spec, "B": B, "devices": bt.num_devices, "device": str(jax.local_devices()[0]),
            "random_weights": random_weights, "bucket": list(bucket), "miss_bucket": list(miss_bucket),
            "compile_step_s": bt.compile_seconds[("step", tuple(bucket))],
            "compile_init_s": bt.compile_seconds[("init_batch", tuple(bucket))],
            "init_s": init_s, "step_s": step_s, "fps": B / step_s, "steps_timed": steps,
            "miss_first_step_s": miss_s, "miss_over_step": miss_s / step_s, **extra}


def _estimate_s(last: dict, B: int, steps: int) -> float:
    """Seconds to measure batch ``B``, extrapolated from the row of a smaller batch: the
    compiles as they were, init and every step (warm-up, timed, bucket miss) linear in B."""
    grow = B / last["B"]
    return (last["compile_step_s"] + last["compile_init_s"] + last["miss_first_step_s"]
            + last.get("init_s", 0.0) * grow + (steps + 2) * last["step_s"] * grow)


def table(rows) -> str:
    out = ["| tracker | B | devices | compile step (s) | compile init (s) | step (ms) | aggregate FPS | bucket miss (s) "
           "| miss / step | plain track_step (ms) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r or "skipped" in r:
            why = r.get("error") or r["skipped"]
            out.append(f"| {r['tracker']} | {r['B']} | - | - | - | - | {why} | - | - | - |")
            continue
        out.append(f"| {r['tracker']} | {r['B']} | {r['devices']} | {r['compile_step_s']:.1f} | "
                   f"{r['compile_init_s']:.1f} | {1e3 * r['step_s']:.0f} | {r['fps']:.1f} | "
                   f"{r['miss_first_step_s']:.1f} | {r['miss_over_step']:.0f}x | "
                   + (f"{1e3 * r['plain_step_s']:.0f} |" if "plain_step_s" in r else "- |"))
    return "\n".join(out)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for spec in dict.fromkeys(r["tracker"] for r in rows):
        rs = [r for r in rows if r["tracker"] == spec and "fps" in r]
        if not rs:
            continue
        a.plot([r["B"] for r in rs], [r["fps"] for r in rs], "o-", label=spec)
        b.plot([r["B"] for r in rs], [r["compile_step_s"] for r in rs], "o-", label=spec)
    for ax, yl in ((a, "aggregate FPS"), (b, "compile time of batched track_step (s)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size B")
        ax.set_ylabel(yl)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"jaxtrack.batch on {rows[0].get('device', '?')}" if rows else "")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trackers", nargs="+", default=None,
                    help="NAME[:BACKBONE] ... (default: every registered tracker, siamfc with mobilenet_v2)")
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 32, 128])
    ap.add_argument("--bucket", default="256x384", help="frame bucket (240x320 frames inside)")
    ap.add_argument("--miss-bucket", default="384x512", help="the new bucket for the miss cost")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default=None, choices=["cpu", "gpu"])
    ap.add_argument("--cache-dir", default=None,
                    help="persistent XLA compilation cache (off by default: compile times are measured)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="per-tracker time budget (s); larger B skipped when they would exceed it")
    ap.add_argument("--out", default="bench_scale.json")
    args = ap.parse_args(argv)
    cli.select_device(args.device)
    # compile times are part of what is measured: the persistent cache stays off unless asked
    cli.enable_compilation_cache(args.cache_dir)
    import jaxtrack
    from jaxtrack.fileio import atomic_write_json
    specs = args.trackers or [("siamfc:mobilenet_v2" if n == "siamfc" else n)
                              for n in jaxtrack.available_trackers()]
    bucket = tuple(int(v) for v in args.bucket.split("x"))
    miss = tuple(int(v) for v in args.miss_bucket.split("x"))
    done = {}
    if os.path.exists(args.out):             # resume: keep rows measured by an earlier run
        with open(args.out) as f:
            done = {(r["tracker"], r["B"]): r for r in json.load(f).get("rows", []) if "fps" in r}
    rows = []
    for spec in specs:
        spent, last = 0.0, None
        for B in sorted(args.batch_sizes):
            t0 = time.perf_counter()
            if (spec, B) in done:
                rec = done[(spec, B)]
            elif args.budget_s is not None and last is not None and (
                    estimate := _estimate_s(last, B, args.steps)) > args.budget_s - spent:
                rec = {"tracker": spec, "B": B,
                       "skipped": f"time budget (est. {estimate:.0f} s > {args.budget_s - spent:.0f} s left)"}
            else:
                try:
                    rec = measure(spec, B, bucket, miss, args.steps)
                except Exception as e:          # out of memory, or a tracker that cannot batch
                    rec = {"tracker": spec, "B": B, "error": f"{type(e).__name__}: {str(e)[:200]}"}
            spent += time.perf_counter() - t0
            rows.append(rec)
            print(json.dumps(rec), flush=True)
            atomic_write_json(args.out, {"rows": rows, "argv": sys.argv[1:]})
            if "fps" not in rec:
                break                        # larger batches would fail (or cost) more
            last = rec
    print(table(rows))
    atomic_write_json(args.out, {"rows": rows, "argv": sys.argv[1:]})
    png = os.path.splitext(args.out)[0] + ".png"
    plot(rows, png)
    print(f"wrote {args.out} and {png}")
    return rows


if __name__ == "__main__":
    cli.run(main)
