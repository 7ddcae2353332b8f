"""DAT's two costly parts, each compiled alone: FLOPs as run, time and rate (issue 22).

* ``candidates``: the 256 candidate boxes of a frame cropped to 107 px and run through the conv
  part (``dat.extract``, in chunks);
* ``update``: one online update (``dat._update``: ``maxiter_update`` iterations of the
  attention term on re-cropped samples, second order).

XLA's cost analysis counts a loop body once, so each part's FLOPs are its cost analysis with
the loop counted out: ``candidates`` times its number of chunks, ``update`` times its
iterations (the parts hold no other loop). Times are medians of ``--reps`` calls after one
warm-up. The state is DAT's ``init`` on a synthetic 320x240 frame (``--seed``, default 0).

    python experiments/bench_dat.py --out runs/bench_dat.json
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from jaxtrack import cli
from jaxtrack.commands import roofline
from jaxtrack.data.synthetic import make_sequence
from jaxtrack.fileio import atomic_write_json
from jaxtrack.frames import pad_frame
from jaxtrack.trackers import dat


def timed(fn, args, reps: int, loop_count: int) -> dict:
    """Compile ``fn`` alone; its FLOPs (cost analysis x ``loop_count``), median ms, GFLOP/s."""
    compiled = jax.jit(fn).lower(*args).compile()
    gflop = roofline.cost(compiled)["flops"] * loop_count / 1e9
    ms = 1e3 * roofline.median_time(compiled, args, reps)
    return {"gflop": gflop, "ms": ms, "gflops_per_s": gflop / ms * 1e3, "loop_count": loop_count, "reps": reps}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_tracker_args(ap, default="dat")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="bench_dat.json")
    args = ap.parse_args()
    if args.tracker != "dat":
        raise SystemExit(f"--tracker {args.tracker!r}: this benchmark times DAT's parts only")
    cli.setup_runtime(args)
    tracker = cli.make_tracker(args)
    cfg, params = tracker.config, tracker.params
    seq = make_sequence(args.seed, num_frames=2, size=(240, 320))
    f0, f1 = pad_frame(seq.frame(0)), pad_frame(seq.frame(1))
    state = jax.jit(tracker.init)(params, f0, jnp.asarray(seq.gt[0], jnp.float32), jax.random.PRNGKey(args.seed))
    boxes = dat.gen_samples(jax.random.PRNGKey(args.seed + 1), "gaussian", state.box, cfg.n_samples,
                            dat._img_wh(f1), cfg.trans_f, cfg.scale_f, valid=True)
    chunk = dat.chunk_size(cfg, cfg.n_samples)
    rows = {
        "candidates": timed(lambda c, fr, b: dat.extract(cfg, c, fr, b), (params["conv"], f1, boxes),
                            args.reps, -(-cfg.n_samples // chunk)),
        "update": timed(lambda c, s: dat._update(cfg, c, s, jnp.array(False), jax.random.PRNGKey(args.seed + 2)),
                        (params["conv"], state), max(1, args.reps - 1), cfg.maxiter_update),
    }
    for name, r in rows.items():
        print(f"{name}: {r['gflop']:.1f} GFLOP, {r['ms']:.0f} ms, {r['gflops_per_s']:.1f} GFLOP/s", flush=True)
    atomic_write_json(args.out, {"rows": rows, "config": repr(cfg), "device": str(jax.devices()[0]),
                                 "jax": jax.__version__, "seed": args.seed})


if __name__ == "__main__":
    main()
