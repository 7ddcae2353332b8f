"""DAT's two costly parts, each compiled alone: FLOPs as run, time and rate (issue 22).

* ``candidates``: the 256 candidate boxes of a frame cropped to 107 px and run through the conv
  part (``dat.extract``, in chunks);
* ``update``: one online update (``dat._update``: ``maxiter_update`` iterations of the
  attention term on re-cropped samples, second order).

XLA's cost analysis counts a loop body once, so each part's FLOPs are its cost analysis with
the loop counted out: ``candidates`` times its number of chunks, ``update`` times its
iterations (the parts hold no other loop). Times are medians of ``--reps`` calls after one
warm-up. The state is DAT's ``init`` on a synthetic 320x240 frame (seed 0).

    python experiments/bench_dat.py --out runs/bench_dat.json
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

import jaxtrack
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
    ap.add_argument("--variant", default="default", help="a named variant of jaxtrack/configs/dat.py")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config fields (Python literals)")
    ap.add_argument("--backbone", default=None, help="shorthand for --set backbone=NAME")
    ap.add_argument("--allow-random", action="store_true", help="random conv weights (timing only)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="bench_dat.json")
    args = ap.parse_args()
    overrides = cli.parse_sets(args.set) | ({"backbone": args.backbone} if args.backbone else {})
    tracker = jaxtrack.make_tracker("dat", variant=args.variant, allow_random=args.allow_random, **overrides)
    cfg, params = tracker.config, tracker.params
    seq = make_sequence(0, num_frames=2, size=(240, 320))
    f0, f1 = pad_frame(seq.frame(0)), pad_frame(seq.frame(1))
    state = jax.jit(tracker.init)(params, f0, jnp.asarray(seq.gt[0], jnp.float32), jax.random.PRNGKey(0))
    img_wh = jnp.array([320.0, 240.0])
    boxes = dat.gen_samples(jax.random.PRNGKey(1), "gaussian", state.box, cfg.n_samples, img_wh,
                            cfg.trans_f, cfg.scale_f, valid=True)
    chunk = dat.chunk_size(cfg, cfg.n_samples)
    rows = {
        "candidates": timed(lambda c, fr, b: dat.extract(cfg, c, fr, b), (params["conv"], f1, boxes),
                            args.reps, -(-cfg.n_samples // chunk)),
        "update": timed(lambda c, s: dat._update(cfg, c, s, jnp.array(False), jax.random.PRNGKey(2)),
                        (params["conv"], state), max(1, args.reps - 1), cfg.maxiter_update),
    }
    for name, r in rows.items():
        print(f"{name}: {r['gflop']:.1f} GFLOP, {r['ms']:.0f} ms, {r['gflops_per_s']:.1f} GFLOP/s", flush=True)
    atomic_write_json(args.out, {"rows": rows, "config": repr(cfg), "device": str(jax.devices()[0]),
                                 "jax": jax.__version__, "seed": 0})


if __name__ == "__main__":
    main()
