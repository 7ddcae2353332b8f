r"""Compile time against run time, per tracker.

For each tracker/backbone it measures, on one device:

* cold compile of ``init`` and ``track_step`` (``jit(...).lower(...).compile()``, no cache);
* warm start: a fresh process whose persistent compilation cache was filled by an earlier
  process, timed from process start to the first ``track_step`` result; and the same from an
  export (``jaxtrack export``'s file, so the process traces no tracker code: the start a
  researcher gets when re-running an unchanged tracker);
* steady per-frame time of the jitted ``track_step`` (median and p90) and frames per second;
* the number of compilations over a whole dataset (``--root``: the shape buckets in use);
* with ``--torch`` (CPU only), the same SiamFC AlexNet per-frame work in PyTorch eager
  (3-scale 255 crops, AlexNet, cross-correlation, 16x bicubic upsampling), side by side.

    jaxtrack bench --trackers siamfc:alexnet siamfc:mobilenet_v2 \
        --root ../shared/data/otb --torch --out bench_compile.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, NamedTuple

T_START = time.perf_counter()

from jaxtrack import cli  # noqa: E402

SUMMARY = "compile time against run time per tracker (and PyTorch eager SiamFC)"


def _frame(h=240, w=320, seed=0):
    from jaxtrack.data.synthetic import make_sequence
    seq = make_sequence(seed, num_frames=2, size=(h, w))
    return seq.frame(0), seq.frame(1), seq.gt[0]


_build = cli.build_for_timing


def child_first_step(spec: str) -> dict:
    """Run in a fresh process: time from start to the first track_step result."""
    import jax
    import jax.numpy as jnp
    from jaxtrack.driver import JitTracker
    from jaxtrack.frames import pad_frame
    tracker, _ = _build(spec)
    jt = JitTracker(tracker)
    f0, f1, box = _frame()
    t_ready = time.perf_counter()
    state = jt.init(jt.params, pad_frame(f0), jnp.asarray(box, jnp.float32), jax.random.PRNGKey(0))
    state, out = jt.step(jt.params, state, pad_frame(f1))
    jax.block_until_ready(out)
    t = time.perf_counter()
    return {"start_to_first_step_s": t - T_START, "first_init_and_step_s": t - t_ready}


class Compiled(NamedTuple):
    """A tracker's ``init`` and ``track_step`` compiled ahead of time on two synthetic frames."""
    tracker: Any
    random_weights: bool
    init: Any                # jax.stages.Compiled
    step: Any
    init_args: tuple         # (params, frame0, box, key)
    state: Any               # after init and three warm-up steps
    frame: Any               # the frame every timed step sees
    compile_init_s: float
    compile_step_s: float
    init_run_s: float


def compile_tracker(spec: str) -> Compiled:
    """Build ``NAME[:BACKBONE]``, compile ``init`` and ``track_step`` (no cache), run init and
    three warm-up steps."""
    import jax
    import jax.numpy as jnp
    from jaxtrack import xla_options
    from jaxtrack.frames import pad_frame
    tracker, random_weights = _build(spec)
    f0, f1, box = _frame()
    fr0, fr1 = pad_frame(f0), pad_frame(f1)
    args = (tracker.params, fr0, jnp.asarray(box, jnp.float32), jax.random.PRNGKey(0))
    t = time.perf_counter()
    init_c = xla_options.jit(tracker.init, tracker.compiler_options).lower(*args).compile()
    t_init = time.perf_counter() - t
    t = time.perf_counter()
    state = init_c(*args)
    jax.block_until_ready(state)
    t_init_run = time.perf_counter() - t
    t = time.perf_counter()
    step_c = xla_options.jit(tracker.track_step, tracker.compiler_options).lower(tracker.params, state, fr1).compile()
    t_step = time.perf_counter() - t
    for _ in range(3):
        state, out = step_c(tracker.params, state, fr1)
    jax.block_until_ready(out)
    return Compiled(tracker, random_weights, init_c, step_c, args, state, fr1, t_init, t_step, t_init_run)


def time_steps(c: Compiled, frames: int):
    """Seconds per ``track_step`` over ``frames`` steps (the periodic online updates included)."""
    import jax
    import numpy as np
    state, times = c.state, []
    for _ in range(frames):
        t = time.perf_counter()
        state, out = c.step(c.tracker.params, state, c.frame)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t)
    return np.asarray(times)


def measure(spec: str, frames: int, root: str | None) -> tuple[dict, Any]:
    """The record of one tracker (compile, frame times, compilations over ``root``) and the
    tracker it built."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jaxtrack.driver import JitTracker
    from jaxtrack.frames import pad_frame
    c = compile_tracker(spec)
    tracker, key = c.tracker, c.init_args[3]
    times = time_steps(c, frames)
    rec = {"tracker": spec, "device": str(jax.devices()[0]), "random_weights": c.random_weights,
           "compile_init_s": c.compile_init_s, "compile_track_step_s": c.compile_step_s,
           "init_run_ms": 1e3 * c.init_run_s,
           "frame_median_ms": 1e3 * float(np.median(times)), "frame_p90_ms": 1e3 * float(np.percentile(times, 90)),
           # the mean includes the periodic online updates (ATOM, DAT, GradNet) the median hides
           "frame_mean_ms": 1e3 * float(np.mean(times)),
           "fps": float(1.0 / np.median(times)), "fps_mean": float(1.0 / np.mean(times)),
           "frames_timed": frames}
    if root:
        from jaxtrack.data import load_dataset
        jt = JitTracker(tracker)
        seqs = load_dataset("otb", root)
        shapes = set()
        for seq in seqs:           # init + one step per sequence is enough to hit every bucket
            a, b = pad_frame(seq.frame(0)), pad_frame(seq.frame(1))
            s = jt.init(jt.params, a, jnp.asarray(seq.gt[0], jnp.float32), key)
            s, o = jt.step(jt.params, s, b)
            jax.block_until_ready(o)
            shapes.add(a.image.shape[:2])
        rec["dataset_sequences"] = len(seqs)
        rec["dataset_compilations"] = jt.num_compilations
        rec["dataset_buckets"] = sorted(shapes)
    return rec, tracker


def child_exported_first_step(path: str) -> dict:
    """Run in a fresh process: load an export and time from start to the first step's result
    (no tracker source is traced: the jitted functions are the exported StableHLO)."""
    import jax
    from jaxtrack.export import load_exported
    exported = load_exported(path)
    f0, f1, box = _frame()
    t_ready = time.perf_counter()
    bucket = exported.bucket_for(*f0.shape[:2])
    state = exported.init(bucket, f0, box, jax.random.PRNGKey(0))
    state, out_box, *_ = exported.step(bucket, state, f1)
    jax.block_until_ready(out_box)
    t = time.perf_counter()
    return {"start_to_first_step_s": t - T_START, "first_init_and_step_s": t - t_ready}


def _two_children(args: list, device: str | None, cache: str) -> list:
    """The JSON records of two fresh ``bench`` processes run one after the other on ``cache``,
    each with ``process_wall_s``: its whole life, interpreter start and imports included."""
    cmd = [sys.executable, "-m", "jaxtrack.commands.bench", *args, "--cache-dir", cache]
    if device:
        cmd += ["--device", device]
    out = []
    for _ in range(2):
        t = time.perf_counter()
        proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
        out.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "process_wall_s": time.perf_counter() - t})
    return out


def warm_start(spec: str, device: str | None, tracker=None) -> dict:
    """Two fresh processes sharing a new cache folder: the second one starts warm. Given the
    built ``tracker``, the same for two processes that load an export of it (the export's own
    time, tracing and lowering both functions once, is ``export_s``)."""
    with tempfile.TemporaryDirectory() as tmp:
        res = _two_children(["--child", spec], device, os.path.join(tmp, "cache"))
        rec = {"cold_process_start_to_first_step_s": res[0]["start_to_first_step_s"],
               "warm_process_start_to_first_step_s": res[1]["start_to_first_step_s"],
               "warm_first_init_and_step_s": res[1]["first_init_and_step_s"],
               "warm_process_wall_s": res[1]["process_wall_s"]}
        if tracker is not None:
            from jaxtrack.export import export_tracker
            from jaxtrack.frames import pad_frame
            path = os.path.join(tmp, "tracker.npz")
            t = time.perf_counter()
            export_tracker(tracker, [pad_frame(_frame()[0]).image.shape[:2]], path)
            rec["export_s"] = time.perf_counter() - t
            res = _two_children(["--child-exported", path], device, os.path.join(tmp, "cache_exported"))
            rec.update({"exported_warm_process_start_to_first_step_s": res[1]["start_to_first_step_s"],
                        "exported_warm_first_init_and_step_s": res[1]["first_init_and_step_s"],
                        "exported_warm_process_wall_s": res[1]["process_wall_s"]})
    return rec


# ------------------------------------------------------------------ PyTorch eager reference

def torch_siamfc_alexnet(frames: int) -> dict:
    """The same per-frame work as jaxtrack's SiamFC AlexNet ``track_step``, in PyTorch eager."""
    import cv2
    import numpy as np
    import torch
    from torch import nn
    torch.manual_seed(0)

    def block(cin, cout, k, s=1, groups=1, bn=True, relu=True, pool=False):
        layers = [nn.Conv2d(cin, cout, k, s, groups=groups)]
        if bn:
            layers.append(nn.BatchNorm2d(cout, eps=1e-6))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        if pool:
            layers.append(nn.MaxPool2d(3, 2))
        return nn.Sequential(*layers)

    net = nn.Sequential(block(3, 96, 11, 2, pool=True), block(96, 256, 5, groups=2, pool=True),
                        block(256, 384, 3), block(384, 384, 3, groups=2),
                        block(384, 256, 3, groups=2, bn=False, relu=False)).eval()
    f0, f1, box = _frame()
    center = box[:2] + box[2:] / 2
    side = 2.0 * np.sqrt(np.prod(box[2:] + 0.5 * box[2:].sum()))
    fill = f1.reshape(-1, 3).mean(0)

    def crop(img, c, s, out):
        m = np.array([[out / s, 0, out / 2 - c[0] * out / s], [0, out / s, out / 2 - c[1] * out / s]])
        return cv2.warpAffine(img, m, (out, out), borderValue=tuple(fill.tolist()))

    with torch.no_grad():
        z = torch.from_numpy(crop(f0, center, side * 127 / 255, 127)).permute(2, 0, 1)[None].float()
        kernel = net(z)
        hann = np.outer(np.hanning(272), np.hanning(272))
        times = []
        for i in range(frames + 3):
            t = time.perf_counter()
            x = np.stack([crop(f1, center, side * s, 255) for s in (1 / 1.0375, 1.0, 1.0375)])
            x = torch.from_numpy(x).permute(0, 3, 1, 2).float()
            feats = net(x)
            resp = torch.nn.functional.conv2d(feats.reshape(1, -1, 22, 22), kernel.repeat(3, 1, 1, 1),
                                              groups=3)[0].numpy() * 1e-3
            up = np.stack([cv2.resize(r, (272, 272), interpolation=cv2.INTER_CUBIC) for r in resp])
            best = up.max((1, 2)).argmax()
            r = up[best] - up[best].min()
            r = 0.824 * r / (r.sum() + 1e-16) + 0.176 * hann / hann.sum()
            np.unravel_index(r.argmax(), r.shape)
            if i >= 3:
                times.append(time.perf_counter() - t)
    times = np.asarray(times)
    return {"tracker": "siamfc:alexnet (PyTorch eager)", "device": "cpu", "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "frame_median_ms": 1e3 * float(np.median(times)), "frame_p90_ms": 1e3 * float(np.percentile(times, 90)),
            "fps": float(1.0 / np.median(times)), "frames_timed": frames}


def table(rows) -> str:
    head = ("| tracker | device | compile init (s) | compile step (s) | init run (ms) | warm start (s) | "
            "warm start, exported (s) | cold start (s) | frame median (ms) | p90 (ms) | mean (ms) | "
            "FPS (median) | FPS (mean) | compilations / seqs |")
    out = [head, "|" + "---|" * 14]
    for r in rows:
        f = lambda k, fmt="%.2f": (fmt % r[k]) if k in r else "-"
        comp = f"{r['dataset_compilations']} / {r['dataset_sequences']}" if "dataset_compilations" in r else "-"
        out.append(f"| {r['tracker']} | {r['device']} | {f('compile_init_s')} | {f('compile_track_step_s')} | "
                   f"{f('init_run_ms', '%.0f')} | "
                   f"{f('warm_process_start_to_first_step_s')} | "
                   f"{f('exported_warm_process_start_to_first_step_s')} | {f('cold_process_start_to_first_step_s')} | "
                   f"{f('frame_median_ms', '%.1f')} | {f('frame_p90_ms', '%.1f')} | {f('frame_mean_ms', '%.1f')} | "
                   f"{f('fps', '%.1f')} | {f('fps_mean', '%.1f')} | {comp} |")
    return "\n".join(out)


def add_arguments(ap) -> None:
    ap.add_argument("--trackers", nargs="+", default=["siamfc:alexnet", "siamfc:mobilenet_v2"])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--root", default=None, help="an OTB-layout folder: count compilations over it")
    ap.add_argument("--torch", action="store_true", help="also time PyTorch eager SiamFC AlexNet (CPU)")
    ap.add_argument("--device", default=None, choices=["cpu", "gpu"])
    ap.add_argument("--no-warm", action="store_true", help="skip the two-process warm-start tests")
    ap.add_argument("--no-exported", action="store_true", help="skip the warm start from an export")
    ap.add_argument("--out", default="bench_compile.json")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-exported", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)


def run(args):
    cli.select_device(args.device)
    if args.child or args.child_exported:
        cli.enable_compilation_cache(args.cache_dir)
        print(json.dumps(child_first_step(args.child) if args.child else child_exported_first_step(args.child_exported)))
        return
    rows = []
    for spec in args.trackers:
        rec, tracker = measure(spec, args.frames, args.root)
        if not args.no_warm:
            rec.update(warm_start(spec, args.device, None if args.no_exported else tracker))
        rows.append(rec)
        print(json.dumps(rec), flush=True)
    if args.torch:
        rec = torch_siamfc_alexnet(args.frames)
        rows.append(rec)
        print(json.dumps(rec), flush=True)
    print(table(rows))
    from jaxtrack.fileio import atomic_write_json
    atomic_write_json(args.out, {"rows": rows, "argv": sys.argv[1:], "xla_flags": os.environ.get("XLA_FLAGS", "")})
    return rows


if __name__ == "__main__":
    cli.run_command(sys.modules[__name__])
