"""Cross-correlation formulations side by side, in one process (ratios, not absolute times).

``jaxtrack.ops.xcorr`` (one GEMM over channels, then a scan of shifted diagonal sums)
against two other ways to write SiamFC's head:

* ``cells``: one einsum per template cell over the shifted search window (jaxtrack's
  previous ``ops.xcorr``, SiamFC's head);
* ``rows``: a scan over template rows, one einsum over stacked column shifts each
  (GradNet's previous correlation, chosen for its grad-of-grad compile time);
* ``grouped_conv``: the per-sample convolution as one grouped convolution.

Shapes: SiamFC/GradNet tracking on the MobileNetV2 stand-in (3 scales, 32x32x128 search
maps, 8x8 template), the AlexNet one (22x22x256, 6x6), and GradNet's offline training
(16 search regions, grad of grad through the correlation; grouped_conv only with
``--all``: on a 2-core CPU it compiled in 116 s and ran 109 s per call, 1,138x ops.xcorr).
Every formulation is checked against ``ops.xcorr`` before it is timed.

    python experiments/bench_xcorr.py --out runs/bench_xcorr.json
"""
from __future__ import annotations

import argparse
import sys
import time

from jaxtrack import cli


def timed(fn, *args, repeats: int):
    import jax
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return compile_s, sorted(times)[len(times) // 2]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0, help="draws the random inputs")
    ap.add_argument("--all", action="store_true",
                    help="also time grouped_conv under grad of grad (minutes per call on a CPU)")
    ap.add_argument("--device", default=None, choices=["cpu", "gpu"])
    ap.add_argument("--out", default="bench_xcorr.json")
    args = ap.parse_args(argv)
    from jaxtrack import cli
    cli.select_device(args.device)
    import jax
    import jax.numpy as jnp
    from jaxtrack import ops
    from jaxtrack.ops_reference import xcorr_cells, xcorr_grouped_conv, xcorr_rows
    from jaxtrack.fileio import atomic_write_json

    def second_order(f, x):
        # GradNet's shape of computation: an inner gradient w.r.t. the template, an outer
        # loss of the updated template, differentiated again
        def inner(z):
            return jnp.sum(jax.nn.softplus(f(z, x)))

        def outer(z):
            return jnp.sum(f(z - jax.grad(inner)(z), x) ** 2)
        return jax.grad(outer)

    key = jax.random.PRNGKey(args.seed)
    cases = {   # name: (z shape, x shape, second order)
        "track mobilenet_v2 (1 x 3 scales)": ((1, 8, 8, 128), (3, 32, 32, 128), False),
        "track alexnet (1 x 3 scales)": ((1, 6, 6, 256), (3, 22, 22, 256), False),
        "gradnet training, grad of grad (16)": ((16, 8, 8, 128), (16, 32, 32, 128), True),
    }
    forms = {"ops.xcorr (gemm)": ops.xcorr, "cells": xcorr_cells, "rows": xcorr_rows,
             "grouped_conv": xcorr_grouped_conv}
    rows = []
    for case, (zs, xs, second) in cases.items():
        kz, kx = jax.random.split(jax.random.fold_in(key, len(rows)))
        z, x = jax.random.normal(kz, zs), jax.random.normal(kx, xs)
        ref = ops.xcorr(z, x)
        base = None
        for name, f in forms.items():
            if second and name == "grouped_conv" and not args.all:
                continue
            err = float(jnp.max(jnp.abs(f(z, x) - ref)) / jnp.max(jnp.abs(ref)))
            if err > 1e-5:
                raise AssertionError(f"{name} disagrees with ops.xcorr on {case}: {err:.2e}")
            fn = jax.jit(second_order(f, x)) if second else jax.jit(f)
            compile_s, run_s = timed(fn, z, *(() if second else (x,)), repeats=args.repeats)
            base = base or run_s
            rows.append({"case": case, "form": name, "compile_s": compile_s, "run_ms": run_s * 1e3,
                         "vs_ops": run_s / base, "max_rel_err": err})
            print(f"{case:38s} {name:18s} compile {compile_s:6.2f} s  run {run_s * 1e3:8.2f} ms  "
                  f"x{run_s / base:5.1f}", flush=True)
    atomic_write_json(args.out, {"device": str(jax.devices()[0]), "jax": jax.__version__,
                                 "repeats": args.repeats, "seed": args.seed, "rows": rows,
                                 "command": " ".join(["bench_xcorr.py"] + (argv or sys.argv[1:]))})
    return rows


if __name__ == "__main__":
    cli.run(main)
