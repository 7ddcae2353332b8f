r"""How far each tracker runs from what this machine can do: FLOPs against measured rates.

For each tracker (``NAME[:BACKBONE]``), in one process:

* FLOPs and bytes of the compiled ``init`` and ``track_step`` (XLA's cost analysis of the
  compiled executable: a loop body counts once, every branch in full), the FLOPs the profiled
  steps ran in convolutions and dots (each loop iteration counted, only the branches taken),
  and ``track_step``'s time per frame (median, and the mean, which holds the periodic online
  updates);
* the machine's sustained rate for the operations the trackers are made of, measured in the
  same run: a dense matmul, a 3x3 convolution, a 1x1 (pointwise) convolution and a 3x3
  depthwise convolution at the trackers' shapes (:data:`KERNELS`), each jitted;
* achieved GFLOP/s of a step and its fraction of the measured rate of the step's dominant
  operation (the class of operation that takes the most of the profiled time);
* the top operations of ``track_step`` by time from ``jax.profiler``: the compiled HLO
  instruction, its class, its share of the step, and the source line it comes from.

With ``--root`` it also tracks every sequence of that OTB-layout folder with each tracker and
with the OpenCV peers the installed OpenCV provides (NanoTrack v2 from ``--nanotrack``, MIL;
CSRT and KCF when contrib is present), and draws success AUC against FPS (``--plot``).
Results go to ``--results`` (resumable, as ``jaxtrack eval``).

    jaxtrack roofline --trackers siamfc:mobilenet_v2 tadt:mobilenet_v2 \
        --root ../shared/data/otb --nanotrack ../shared/peers/nanotrack_v2 \
        --results roofline_runs --out roofline.json --plot roofline.png
"""
from __future__ import annotations

import collections
import glob
import os
import re
import sys
import tempfile
import time

import numpy as np

from jaxtrack import cli
from jaxtrack.commands import bench

SUMMARY = "FLOPs, measured machine rates and a profile per tracker; AUC against FPS with OpenCV peers"

# name -> (kind, input shape NHWC or (M, K), kernel shape HWIO or (K, N), feature groups)
KERNELS = {
    "matmul 1024^3": ("dot", (1024, 1024), (1024, 1024), 1),
    "conv3x3 3x24x24x384->384 (AlexNet conv4, 3 scales)": ("conv", (3, 24, 24, 384), (3, 3, 384, 384), 1),
    "conv1x1 3x32x32x384->96 (MobileNetV2 features.11 project)": ("conv", (3, 32, 32, 384), (1, 1, 384, 96), 1),
    "depthwise3x3 3x32x32x192, lax grouped conv": ("conv", (3, 32, 32, 192), (3, 3, 1, 192), 192),
    "depthwise3x3 3x32x32x192, 9 shifted multiply-adds": ("shifted", (3, 32, 32, 192), (3, 3, 1, 192), 192),
}
STREAM = "stream 2x+1, 64 MiB"
EIGEN_SUFFIX = " [Eigen]"      # the same kernel compiled with xla_options.EIGEN_CONVOLUTIONS
KERNEL_OF_CLASS = {"dot": "matmul 1024^3", "conv": "conv3x3 3x24x24x384->384 (AlexNet conv4, 3 scales)",
                   "conv1x1": "conv1x1 3x32x32x384->96 (MobileNetV2 features.11 project)",
                   "depthwise": "depthwise3x3 3x32x32x192, 9 shifted multiply-adds"}


def cost(compiled) -> dict:
    """FLOPs and bytes accessed of a compiled executable (XLA's cost analysis)."""
    ca = compiled.cost_analysis()
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else {}
    return {"flops": float(ca.get("flops", 0.0)), "bytes": float(ca.get("bytes accessed", 0.0)),
            "transcendentals": float(ca.get("transcendentals", 0.0))}


def median_time(fn, args, reps: int) -> float:
    """Median seconds of ``reps`` calls of ``fn(*args)`` after one warm-up call."""
    import jax
    import numpy as np
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def machine_rates(reps: int = 20) -> dict:
    """GFLOP/s sustained by each of :data:`KERNELS`, jitted, FLOPs from cost analysis; and
    the memory bandwidth of an elementwise pass (:data:`STREAM`, GB/s)."""
    import jax
    import jax.numpy as jnp

    from jaxtrack import xla_options
    eigen = xla_options.for_this_backend(xla_options.EIGEN_CONVOLUTIONS)
    out = {}
    for name, (kind, xs, ws, groups) in KERNELS.items():
        kx, kw = jax.random.split(jax.random.PRNGKey(0))
        x, w = jax.random.normal(kx, xs, jnp.float32), jax.random.normal(kw, ws, jnp.float32)
        paths = [(name, None)]
        if kind == "dot":
            fn = jnp.dot
        elif kind == "shifted":           # how jaxtrack's MobileNetV2 computes its depthwise convs
            from jaxtrack.models.mobilenet_v2 import _depthwise3x3
            fn = lambda a, b: _depthwise3x3(a, b, 1)  # noqa: E731
        else:
            fn = lambda a, b, g=groups: jax.lax.conv_general_dilated(  # noqa: E731
                a, b, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=g)
            if eigen and groups == 1 and ws[0] > 1:      # the path of trackers with EIGEN_CONVOLUTIONS
                paths.append((name + EIGEN_SUFFIX, eigen))
        for label, opts in paths:
            compiled = xla_options.jit(fn, opts).lower(x, w).compile()
            flops = cost(compiled)["flops"]
            sec = median_time(compiled, (x, w), reps)
            out[label] = {"flops": flops, "seconds": sec, "gflops_per_s": flops / sec / 1e9}
    # memory: y = 2x + 1 over 64 MiB in, 64 MiB out (the bound of elementwise fusions)
    x = jax.random.normal(jax.random.PRNGKey(1), (16 * 1024 * 1024,), jnp.float32)
    fn = jax.jit(lambda a: 2.0 * a + 1.0)
    moved = cost(fn.lower(x).compile())["bytes"]
    sec = median_time(fn, (x,), reps)
    out[STREAM] = {"flops": 0.0, "bytes": moved, "seconds": sec, "gb_per_s": moved / sec / 1e9}
    return out


# ----------------------------------------------------------------------------- the profile

_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*\S+(?:\{[^}]*\})?\s+([\w\-]+)\(")


def hlo_index(hlo_text: str) -> dict:
    """Instruction name -> {opcode, class, source} from a compiled module's text (source: the
    innermost line outside installed packages, else the flax module path of the op). The class
    is the heaviest operation the instruction (or the computation it calls) contains:
    depthwise / conv1x1 / conv / dot / other."""
    files = dict(re.findall(r"^(\d+) \"(.*)\"$", hlo_text.split("FunctionNames")[0], re.M)) \
        if "FileNames" in hlo_text else {}
    locs = {m[0]: (m[1], m[2]) for m in re.findall(
        r"^(\d+) \{file_name_id=(\d+) function_name_id=\d+ line=(\d+)", hlo_text, re.M)}
    frames = {m[0]: (m[1], m[2]) for m in re.findall(
        r"^(\d+) \{file_location_id=(\d+) parent_frame_id=(\d+)", hlo_text, re.M)}

    def source(frame_id):
        """The innermost line outside installed packages (flax's and jax's frames skipped)."""
        seen = set()
        while frame_id in frames and frame_id not in seen:
            seen.add(frame_id)
            loc, parent = frames[frame_id]
            fid, ln = locs.get(loc, (None, None))
            path = files.get(fid, "")
            if path and "-packages" + os.sep not in path:
                cut = path.rfind("jaxtrack" + os.sep)
                return f"{path[cut:] if cut >= 0 else os.path.basename(path)}:{ln}"
            frame_id = parent
        return None

    comps, shapes, current, instrs = collections.defaultdict(list), collections.defaultdict(dict), None, {}
    for line in hlo_text.splitlines():
        head = re.match(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s*\(.*\{\s*$", line)
        if head:
            current = head.group(1)
            continue
        m = _INSTR.match(line)
        if not m:
            continue
        name, opcode = m.groups()
        comps[current].append(line)
        shape = _SHAPE.match(line)
        if shape:
            shapes[current][name] = _dims(shape.group(1))
        called = re.search(r"calls=%?([\w.\-]+)", line)
        frame = re.search(r"stack_frame_id=(\d+)", line)
        src = source(frame.group(1)) if frame else None
        op = re.search(r'op_name="([^"]*)"', line)
        if op and not src:
            src = re.sub(r"^jit\([^)]*\)/", "", op.group(1))     # the flax module path, when no jaxtrack line
        instrs[name] = {"opcode": opcode, "calls": called.group(1) if called else None, "source": src,
                        "op_name": op.group(1) if op else None, "computation": current, "line": line}

    for name, rec in instrs.items():
        comp = rec["calls"] if rec["calls"] in comps else rec["computation"]
        lines = comps[comp] if rec["calls"] in comps else [rec["line"]]
        found = [_op_flops(ln, shapes[comp]) for ln in lines]
        found = [f for f in found if f]
        rec["flops"] = float(sum(f for _, f in found))
        classes = {c for c, _ in found}
        rec["class"] = next((c for c in ("conv", "depthwise", "conv1x1", "dot") if c in classes), "other")
        if rec["class"] == "other" and "depthwise" in (rec["op_name"] or ""):
            rec["class"] = "depthwise"          # 9 shifted multiply-adds (mobilenet_v2); FLOPs not counted
        del rec["line"], rec["computation"]
    return instrs


_SHAPE = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*\w+\[([\d,]*)\]")


def _dims(text: str) -> list:
    return [int(d) for d in text.split(",") if d]


def _op_flops(line: str, shapes: dict):
    """(class, FLOPs) of one HLO convolution or dot line (2 per multiply-add), else None."""
    out = _SHAPE.match(line)
    if not out:
        return None
    n_out = float(np.prod(_dims(out.group(1)))) if out.group(1) else 1.0
    if " convolution(" in line:
        operands = re.search(r"convolution\(%?([\w.\-]+), %?([\w.\-]+)\)", line)
        kernel = shapes.get(operands.group(2)) if operands else None
        labels = re.search(r"dim_labels=\w+_(\w+)->", line)
        size = re.search(r"window=\{size=([\dx]+)", line)
        window = float(np.prod([int(v) for v in size.group(1).split("x")])) if size else 1.0
        cin = kernel[labels.group(1).index("i")] if kernel and labels else 0
        groups = re.search(r"feature_group_count=(\d+)", line)
        cls = ("depthwise" if groups and int(groups.group(1)) > 1 else
               "conv1x1" if window == 1.0 else "conv")
        return cls, 2.0 * n_out * window * cin
    if " dot(" in line:
        operands = re.search(r"dot\(%?([\w.\-]+), ", line)
        lhs = shapes.get(operands.group(1)) if operands else None
        contract = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", line)
        k = float(np.prod([lhs[int(d)] for d in _dims(contract.group(1))])) if lhs and contract else 0.0
        return "dot", 2.0 * n_out * k
    return None


def profile_ops(compiled, args, steps: int = 5, top: int = 10) -> dict:
    """Time per HLO instruction of ``compiled`` over ``steps`` calls, from ``jax.profiler``:
    the ``top`` instructions by time, and the time per operation class."""
    import jax
    index = hlo_index(compiled.as_text())
    jax.block_until_ready(compiled(*args))
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            for _ in range(steps):
                jax.block_until_ready(compiled(*args))
        paths = glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True)
        data = jax.profiler.ProfileData.from_file(paths[0])
        per_op, calls = collections.Counter(), collections.Counter()
        for plane in data.planes:
            for line in plane.lines:
                for ev in line.events:
                    if ev.name in index and "hlo_op" in dict(ev.stats):
                        per_op[ev.name] += ev.duration_ns
                        calls[ev.name] += 1
    total = sum(per_op.values()) or 1.0
    ns_class, flops_class = collections.Counter(), collections.Counter()
    for name, ns in per_op.items():
        ns_class[index[name]["class"]] += ns
        flops_class[index[name]["class"]] += index[name]["flops"] * calls[name]
    rows = [{"op": name, "ms_per_step": ns / steps / 1e6, "share": ns / total,
             "gflops_per_s": index[name]["flops"] * calls[name] / ns if index[name]["flops"] else None,
             "class": index[name]["class"], "opcode": index[name]["opcode"],
             "source": index[name]["source"], "op_name": index[name]["op_name"]}
            for name, ns in per_op.most_common(top)]
    classes = {c: {"share": ns / total, "ms_per_step": ns / steps / 1e6,
                   "gflop_per_step": flops_class[c] / steps / 1e9,
                   "gflops_per_s": flops_class[c] / ns if flops_class[c] else None}
               for c, ns in ns_class.most_common()}
    # FLOPs as run: each convolution and dot once per call (a loop body once per iteration, only
    # the branches taken); XLA's cost analysis instead counts a loop body once and every branch
    return {"profiled_ms_per_step": total / steps / 1e6, "top_ops": rows, "classes": classes,
            "run_gflop_per_step": sum(flops_class.values()) / steps / 1e9}


def tracker_roofline(spec: str, frames: int, rates: dict) -> dict:
    """Cost, time, achieved rate and profile of one tracker's compiled functions."""
    import jax
    import numpy as np
    c = bench.compile_tracker(spec)
    times = bench.time_steps(c, frames)
    step_cost, init_cost = cost(c.step), cost(c.init)
    med, mean = float(np.median(times)), float(np.mean(times))
    prof = profile_ops(c.step, (c.tracker.params, c.state, c.frame))
    # the dominant operation: the class with FLOPs counted that takes the most profiled time;
    # its achieved rate (its FLOPs over its time) against the machine's rate for that class
    counted = [k for k, v in prof["classes"].items() if v["gflops_per_s"] and k in KERNEL_OF_CLASS]
    dominant = counted[0] if counted else None
    opts = c.tracker.compiler_options
    kernel = KERNEL_OF_CLASS.get(dominant)
    if kernel and opts and kernel + EIGEN_SUFFIX in rates:      # the path its convolutions take
        kernel += EIGEN_SUFFIX
    rate = rates[kernel]["gflops_per_s"] if dominant else None
    dom_rate = prof["classes"][dominant]["gflops_per_s"] if dominant else None
    achieved = step_cost["flops"] / med / 1e9
    return {"tracker": spec, "device": str(jax.devices()[0]), "random_weights": c.random_weights,
            "compiler_options": opts, "dominant_machine_kernel": kernel,
            "init": {**init_cost, "run_s": c.init_run_s, "compile_s": c.compile_init_s},
            "track_step": {**step_cost, "compile_s": c.compile_step_s},
            "gflop_per_frame": step_cost["flops"] / 1e9,
            "frame_median_ms": 1e3 * med, "frame_mean_ms": 1e3 * mean,
            "fps": 1.0 / med, "fps_mean": 1.0 / mean, "frames_timed": frames,
            "achieved_gflops_per_s": achieved, "arithmetic_intensity": step_cost["flops"] / max(step_cost["bytes"], 1.0),
            "dominant_class": dominant, "dominant_share": prof["classes"][dominant]["share"] if dominant else None,
            "dominant_achieved_gflops_per_s": dom_rate, "dominant_machine_gflops_per_s": rate,
            "fraction_of_rate": dom_rate / rate if dominant else None,
            # XLA's bytes accessed count every operand read, cache hits included: above the DRAM
            # stream rate means reuse in cache, not a measuring error
            "achieved_gb_per_s": step_cost["bytes"] / med / 1e9,
            "profile": prof}


# ----------------------------------------------------------------------------- accuracy beside speed

def opencv_peers(nanotrack_dir: str | None) -> dict:
    """name -> factory for the OpenCV trackers this OpenCV provides (``{}`` entries it lacks)."""
    import cv2
    peers = {}
    if nanotrack_dir and hasattr(cv2, "TrackerNano_create"):
        def nano():
            p = cv2.TrackerNano_Params()
            p.backbone = os.path.join(nanotrack_dir, "nanotrack_backbone_sim.onnx")
            p.neckhead = os.path.join(nanotrack_dir, "nanotrack_head_sim.onnx")
            return cv2.TrackerNano_create(p)
        peers["opencv:nanotrack_v2"] = nano
    for name, attr in (("mil", "TrackerMIL_create"), ("csrt", "TrackerCSRT_create"), ("kcf", "TrackerKCF_create")):
        if hasattr(cv2, attr):
            peers[f"opencv:{name}"] = getattr(cv2, attr)
    return peers


def track_opencv(factory, seq):
    """Track ``seq`` with an OpenCV tracker (BGR frames, integer boxes, as OpenCV takes them);
    a frame it reports as lost keeps the previous box. Times exclude decoding."""
    import cv2
    import numpy as np
    n = len(seq)
    out, times = np.zeros((n, 4)), np.zeros(n)
    tracker = factory()
    for i in range(n):
        image = cv2.cvtColor(np.ascontiguousarray(seq.frame(i)), cv2.COLOR_RGB2BGR)
        t = time.perf_counter()
        if i == 0:
            out[0] = seq.gt[0]
            tracker.init(image, tuple(int(round(v)) for v in seq.gt[0]))
        else:
            ok, box = tracker.update(image)
            out[i] = box if ok else out[i - 1]
        times[i] = time.perf_counter() - t
    return out, times


def accuracy_runs(specs, peers: dict, root: str, results: str, seed: int = 0, dataset: str = "otb",
                  split: str | None = None) -> dict:
    """Success AUC and FPS over ``root`` for each jaxtrack tracker and OpenCV peer, run (or
    resumed) into ``results/<name>``."""
    from jaxtrack.data import load_dataset
    from jaxtrack.driver import JitTracker, run_sequence
    from jaxtrack.eval import ope
    sequences = load_dataset(dataset, root, split=split)
    out = {}
    for spec in specs:
        jt = JitTracker(cli.build_for_timing(spec)[0])
        rep = ope.run_ope(spec.replace(":", "_"), sequences, lambda s: run_sequence(jt, s, seed=seed),
                          results, progress=False, extra_info={"tracker": spec, "seed": seed})
        out[spec] = {"auc": rep["mean"]["auc"], "fps": rep["mean"]["fps"], "kind": "jaxtrack"}
    for name, factory in peers.items():
        rep = ope.run_ope(name.replace(":", "_"), sequences, lambda s, f=factory: track_opencv(f, s),
                          results, progress=False, extra_info={"tracker": name})
        out[name] = {"auc": rep["mean"]["auc"], "fps": rep["mean"]["fps"], "kind": "opencv"}
    return out


def plot_speed_accuracy(points: dict, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, p in points.items():
        if p.get("fps") is None:
            continue
        ax.scatter(p["fps"], p["auc"], marker="o" if p["kind"] == "jaxtrack" else "s",
                   color="C0" if p["kind"] == "jaxtrack" else "C1")
        ax.annotate(name, (p["fps"], p["auc"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("frames per second (log)")
    ax.set_ylabel("success AUC")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- command

def _num(v, fmt="%.1f") -> str:
    return "-" if v is None else fmt % v


def table(rows, rates) -> str:
    out = ["| kernel | GFLOP | ms | GFLOP/s | GB/s |", "|---|---:|---:|---:|---:|"]
    out += [f"| {k} | {v['flops'] / 1e9:.3f} | {1e3 * v['seconds']:.2f} | {_num(v.get('gflops_per_s'))} | "
            f"{_num(v.get('gb_per_s'))} |" for k, v in rates.items()]
    out += ["", "| tracker | GFLOP/frame | GFLOP run/frame | init GFLOP | median ms | FPS (median) | FPS (mean) | "
            "GFLOP/s | dominant op (time share) | its GFLOP/s | machine's | fraction |",
            "|---|" + "---:|" * 7 + "---|---:|---:|---:|"]
    for r in rows:
        frac = None if r["fraction_of_rate"] is None else 100 * r["fraction_of_rate"]
        dom = f"{r['dominant_class']} ({100 * r['dominant_share']:.0f} %)" if r["dominant_class"] else "-"
        out.append(f"| {r['tracker']} | {r['gflop_per_frame']:.2f} | {r['profile']['run_gflop_per_step']:.2f} | "
                   f"{r['init']['flops'] / 1e9:.2f} | "
                   f"{r['frame_median_ms']:.1f} | {r['fps']:.1f} | {r['fps_mean']:.1f} | "
                   f"{r['achieved_gflops_per_s']:.1f} | {dom} | {_num(r['dominant_achieved_gflops_per_s'])} | "
                   f"{_num(r['dominant_machine_gflops_per_s'])} | {_num(frac, '%.0f %%')} |")
    for r in rows:
        cls = r["profile"]["classes"]
        out += ["", f"**{r['tracker']}**: profiled {r['profile']['profiled_ms_per_step']:.1f} of "
                f"{r['frame_median_ms']:.1f} ms/step (the rest: work the profiler does not see as an HLO "
                "op, e.g. Eigen convolutions on their own threads); by class "
                + ", ".join(f"{k} {100 * v['share']:.0f} % ({_num(v['gflops_per_s'])} GFLOP/s)" for k, v in cls.items()),
                "", "| op | class | ms/step | share | GFLOP/s | source |", "|---|---|---:|---:|---:|---|"]
        out += [f"| {o['op']} | {o['class']} | {o['ms_per_step']:.2f} | {100 * o['share']:.0f} % | "
                f"{_num(o['gflops_per_s'])} | {o['source']} |" for o in r["profile"]["top_ops"]]
    return "\n".join(out)


def add_arguments(ap) -> None:
    ap.add_argument("--trackers", nargs="+", default=["siamfc:mobilenet_v2", "siamfc:alexnet", "gradnet:mobilenet_v2",
                                                      "tadt:mobilenet_v2", "atom:mobilenet_v2", "dat:mobilenet_v2"])
    ap.add_argument("--frames", type=int, default=30, help="timed track_step calls per tracker")
    ap.add_argument("--reps", type=int, default=20, help="timed calls per machine-rate kernel")
    ap.add_argument("--root", default=None, help="a dataset folder: also track it for AUC against FPS")
    ap.add_argument("--dataset", default="otb", help="the layout of --root (as jaxtrack eval --dataset)")
    ap.add_argument("--split", default=None)
    ap.add_argument("--nanotrack", default=None, help="folder of NanoTrack v2's two ONNX files (a peer)")
    ap.add_argument("--no-peers", action="store_true", help="leave the OpenCV peers out of --root runs")
    ap.add_argument("--results", default="roofline_runs", help="result folders of the --root runs (resumable)")
    ap.add_argument("--plot", default="roofline.png", help="the speed-accuracy plot (with --root)")
    ap.add_argument("--device", default=None, choices=["cpu", "gpu"])
    ap.add_argument("--out", default="roofline.json")


def run(args):
    cli.select_device(args.device)
    import jax
    rates = machine_rates(args.reps)
    for k, v in rates.items():
        print(f"{k}: " + (f"{v['gb_per_s']:.1f} GB/s" if k == STREAM else f"{v['gflops_per_s']:.1f} GFLOP/s"),
              flush=True)
    rows = []
    for spec in args.trackers:
        rows.append(tracker_roofline(spec, args.frames, rates))
        r = rows[-1]
        print(f"{spec}: {r['gflop_per_frame']:.2f} GFLOP/frame, {r['fps']:.1f} FPS, dominant "
              f"{r['dominant_class']} at {_num(r['dominant_achieved_gflops_per_s'])} GFLOP/s", flush=True)
    print(table(rows, rates))
    record = {"rates": rates, "rows": rows, "argv": sys.argv[1:], "jax": jax.__version__,
              "device": str(jax.devices()[0]), "cpu_count": os.cpu_count(),
              "xla_flags": os.environ.get("XLA_FLAGS", "")}
    if args.root:
        peers = {} if args.no_peers else opencv_peers(args.nanotrack)
        import cv2
        record["opencv"] = cv2.__version__
        record["peers_missing"] = [p for p in ("opencv:csrt", "opencv:kcf", "opencv:mil") if p not in peers]
        record["accuracy"] = accuracy_runs(args.trackers, peers, args.root, args.results,
                                           dataset=args.dataset, split=args.split)
        print("\n| tracker | AUC | FPS |\n|---|---:|---:|")
        for name, p in record["accuracy"].items():
            print(f"| {name} | {p['auc']:.3f} | {p['fps']:.1f} |")
        plot_speed_accuracy(record["accuracy"], args.plot,
                            f"{os.path.basename(os.path.normpath(args.root))}: AUC against FPS "
                            f"({record['device']}, {os.cpu_count()} CPUs)")
    from jaxtrack.fileio import atomic_write_json
    atomic_write_json(args.out, record)
    return record


if __name__ == "__main__":
    cli.run_command(sys.modules[__name__])
