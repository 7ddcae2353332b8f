"""siamfc-pytorch beside jaxtrack's SiamFC: the same weights, the same frames, compared
component by component, frame by frame, and for speed.

    git --git-dir=/work/.mirror/huanglianghua+siamfc-pytorch/repo/.git archive 3957205 \\
        | (mkdir -p /work/ref/siamfc-pytorch && tar -x -C /work/ref/siamfc-pytorch)
    python experiments/reference/siamfc_pytorch.py --reference /work/ref/siamfc-pytorch \\
        --sequence ../shared/data/otb/Crossing --json siamfc_reference.json

``--reference`` is a checkout of https://github.com/huanglianghua/siamfc-pytorch (tested at
3957205). Its code is imported only in a child process (this file run with ``--worker``) whose
PYTHONPATH is that checkout; nothing of it is copied here. What runs:

1. **Weights.** SiamFC AlexNet weights are drawn with numpy from ``--seed``
   (``jaxtrack.models.seeded``: the conv weights xavier-uniform, as the reference's
   ``ops.init_weights``; the conv biases, BatchNorm affine and running statistics random too,
   so that BN is not the identity). The child loads them into the reference's own
   ``Net(AlexNetV1(), SiamFC(0.001))`` (``load_state_dict(strict=True)``: names and shapes
   checked) and saves that state dict as the official ``.pth``; the reference tracker loads the
   ``.pth`` with its own loader (``TrackerSiamFC(net_path=...)``), jaxtrack with its own
   (``make_tracker("siamfc", backbone="alexnet", weights=...)``, i.e.
   ``models.alexnet.alexnet_from_siamfc_torch``).
2. **Components.** On the first ``--component-frames`` frames of the sequence, every
   intermediate of the reference's ``init``/``update`` (crops, features, response maps, the
   16x upsampled maps, after the scale penalty, normalised, after the window, the chosen
   scale and peak) is recorded, together with the reference's state before each update.
   jaxtrack computes the same intermediates from the same state (:func:`jax_components`, the
   calls ``siamfc.track_step`` makes, checked against ``track_step`` itself) three ways: with
   its continuous crops, with ``crop="rounded"``, and fed the reference's own crops (so the
   network, head, upsampling and window are compared on equal inputs). Each row is the
   largest absolute difference over the largest absolute reference value.
3. **End to end.** Both programs track the real sequence and a synthetic one
   (``jaxtrack.data.synthetic.make_sequence``, written as PNG for the reference) from the
   same first box: got10k's ``Tracker.track`` takes and returns 1-based boxes,
   jaxtrack 0-based (``jaxtrack.boxes.from_dataset``). Per jaxtrack configuration: the
   largest per-frame coordinate difference, the first frame over 1 px, the mean IoU of the
   two trajectories.
4. **Speed.** Both on the same frames, weights and CPU: frames per second of the update
   (got10k's per-frame times; jaxtrack's ``driver.run_sequence`` times after a warm-up run
   that compiles), both excluding frame decoding and the first frame.

Prints a table and writes ``--json``. ``--fixtures DIR`` also writes the numbers the test
``tests/test_reference_siamfc.py`` checks (no reference code: the weights' spec and seed,
the reference's boxes and two response maps).

Run-time shims (the reference's files are not modified; none changes a value it computes):

- CPU: the child sets ``CUDA_VISIBLE_DEVICES=""`` before importing torch, so that
  ``TrackerSiamFC`` (which takes ``cuda:0`` when available) runs on the CPU like jaxtrack
  here, and ``torch.set_num_threads(--threads)``.
- Observation: ``sys.settrace`` on ``TrackerSiamFC.init`` and ``.update`` copies their
  local variables as they run (the crops, features and maps, recognised by type and shape)
  during the component run only; the end-to-end and speed runs are not traced.
- ``torch.load``: torch >= 2.6 loads with ``weights_only=True``; the ``.pth`` written here
  holds tensors only, so the reference's own ``torch.load`` call works unchanged (no shim).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import numpy as np

from jaxtrack_harness import (agreement, check_reference, compact_json, first_frames, fps, rel, run,
                              run_worker, tracking_parser, write_report)

REFERENCE_COMMIT = "3957205"

# --------------------------------------------------------------------------- the child

def worker(job_path: str) -> None:
    """Runs under PYTHONPATH=<reference checkout>: the reference's side of every comparison."""
    with open(job_path) as f:
        job = json.load(f)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""                   # shim: CPU, as jaxtrack here
    import torch
    torch.set_num_threads(int(job["threads"]))
    from siamfc import siamfc as ref
    from siamfc.backbones import AlexNetV1
    from siamfc.heads import SiamFC
    from siamfc.ops import read_image

    # the official .pth, through the reference's own Net and strict load_state_dict
    net = ref.Net(backbone=AlexNetV1(), head=SiamFC(0.001))
    own = net.state_dict()
    arrays = np.load(job["weights_npz"])
    extra = set(arrays.files) - set(own)
    missing = {k for k in set(own) - set(arrays.files) if not k.endswith("num_batches_tracked")}
    if extra or missing:
        raise SystemExit(f"weights do not fit the reference Net: extra {sorted(extra)}, missing {sorted(missing)}")
    net.load_state_dict({k: torch.from_numpy(arrays[k]) if k in arrays.files else v
                         for k, v in own.items()}, strict=True)
    torch.save(net.state_dict(), job["pth"])

    def make():
        return ref.TrackerSiamFC(net_path=job["pth"])

    result = {"device": str(make().device), "torch": torch.__version__, "sequences": {}}
    arrays_out = {}

    result["components"] = trace(ref, torch, make, read_image, job["components"], "c", arrays_out)
    if "fixture_components" in job:
        result["fixture_components"] = trace(ref, torch, make, read_image, job["fixture_components"], "f",
                                             arrays_out)

    # end to end (untraced), the reference's own track(): 1-based boxes in and out
    for name, seq in job["sequences"].items():
        boxes, times = make().track(seq["img_files"], np.asarray(seq["box"], np.float64))
        result["sequences"][name] = {"boxes": np.asarray(boxes).tolist(), "times": np.asarray(times).tolist()}
    np.savez(job["arrays_out"], **arrays_out)
    with open(job["json_out"], "w") as f:
        json.dump(result, f)


def trace(ref, torch, make, read_image, comp: dict, prefix: str, arrays_out: dict) -> list:
    """Run the reference's init/update on ``comp["img_files"]`` under ``sys.settrace`` and copy
    their locals (observation only): arrays go to ``arrays_out[f"{prefix}{i}_{name}"]``, the
    rest (state before the update, chosen scale, box) is returned per call."""
    import inspect
    tracker = make()
    records = []
    codes = {inspect.unwrap(ref.TrackerSiamFC.init).__code__: "init",
             inspect.unwrap(ref.TrackerSiamFC.update).__code__: "update"}

    def local(frame, event, arg):
        rec = records[-1]
        loc = frame.f_locals
        z, x, r = loc.get("z"), loc.get("x"), loc.get("responses")
        if isinstance(z, np.ndarray) and z.ndim == 3:
            rec["z_crop"] = z.copy()
        if isinstance(x, np.ndarray) and x.ndim == 4:
            rec["x_crops"] = x.copy()
        if isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[1] != 3:
            rec["x_feat"] = x.permute(0, 2, 3, 1).numpy().copy()
        if isinstance(r, np.ndarray) and r.ndim == 3 and "scale_id" not in loc:
            if r.shape[-1] == tracker.cfg.response_sz:
                rec["responses"] = r.copy()
            elif "upsampled" not in rec:
                rec["upsampled"] = r.copy()                   # before the penalty lines run
            else:
                rec["penalised"] = r.copy()                   # the last copy before scale_id
        if event == "return":
            me = loc["self"]
            if rec["kind"] == "init":
                rec["z_feat"] = me.kernel.permute(0, 2, 3, 1).numpy().copy()
                rec["avg_color"] = np.asarray(me.avg_color, np.float64)
            else:
                rec["normalised"] = loc["responses"][loc["scale_id"]].copy()
                rec["windowed"] = np.asarray(loc["response"]).copy()
                rec["scale_id"] = int(loc["scale_id"])
                rec["loc"] = np.asarray(loc["loc"])
                rec["box"] = np.asarray(arg, np.float64).tolist()
        return local

    def tracer(frame, event, arg):
        kind = codes.get(frame.f_code)
        if event == "call" and kind:
            me = frame.f_locals["self"]
            rec = {"kind": kind}
            if kind == "update":
                rec["state"] = {"center": np.asarray(me.center, np.float64).tolist(),
                                "target_sz": np.asarray(me.target_sz, np.float64).tolist(),
                                "x_sz": float(me.x_sz), "z_sz": float(me.z_sz)}
            records.append(rec)
            return local
        return None

    files = comp["img_files"]
    sys.settrace(tracer)
    try:
        tracker.init(read_image(files[0]), np.asarray(comp["box"], np.float64))
        for path in files[1:]:
            tracker.update(read_image(path))
    finally:
        sys.settrace(None)
    out = []
    for i, rec in enumerate(records):
        for key, value in rec.items():
            if isinstance(value, np.ndarray):
                arrays_out[f"{prefix}{i}_{key}"] = value
        out.append({k: v for k, v in rec.items() if not isinstance(v, np.ndarray)})
    return out


def run_reference(reference: str, job: dict, workdir: str, python: str = sys.executable) -> tuple[dict, dict]:
    """Run :func:`worker` in a child whose PYTHONPATH is the reference checkout."""
    return run_worker(__file__, job, workdir, [reference], python)


# --------------------------------------------------------------------------- jaxtrack's side

def jaxtrack_state(config, params, frame, ref_state, template_state):
    """A jaxtrack SiamFC state equal to the reference's before an update (its centre, size,
    crop sides), with jaxtrack's own template and fill from ``template_state``."""
    import jax.numpy as jnp
    c, t = ref_state["center"], ref_state["target_sz"]                  # (y, x) pixel indices
    return template_state._replace(
        center=jnp.asarray([c[1] + 0.5, c[0] + 0.5], jnp.float32),
        target_size=jnp.asarray([t[1], t[0]], jnp.float32),
        z_side=jnp.float32(ref_state["z_sz"]), x_side=jnp.float32(ref_state["x_sz"]))


def jax_components(config, params, state, frame, crops=None) -> dict:
    """jaxtrack's SiamFC intermediates of one ``track_step`` (the same calls, in order);
    ``crops``: search crops [S, 255, 255, 3] to use instead of jaxtrack's own."""
    import jax.numpy as jnp

    from jaxtrack import ops
    from jaxtrack.trackers import siamfc
    scales = jnp.asarray(ops.scale_factors(config.num_scales, config.scale_step), jnp.float32)
    if crops is None:
        if config.crop == "rounded":
            crops = siamfc.crop_rounded(config, frame, state.center, state.x_side * scales,
                                        config.instance_size, state.fill)
        else:
            crops = ops.crop_pyramid(frame.image, frame.size, state.center, state.x_side, scales,
                                     config.instance_size, state.fill, config.supersample)
    crops = jnp.asarray(crops, jnp.float32)
    feats, _ = siamfc.embed(config, params, crops)
    responses = siamfc.score(config, params, state.kernel, feats)
    up = config.response_up * responses.shape[-1]
    upsampled = ops.resize_bicubic(responses, (up, up))
    penalty = jnp.where(jnp.arange(config.num_scales) == config.num_scales // 2, 1.0, config.scale_penalty)
    penalised = upsampled * penalty[:, None, None]
    best = int(jnp.argmax(jnp.max(penalised, axis=(1, 2))))
    response = penalised[best]
    response = response - jnp.min(response)
    normalised = response / (jnp.sum(response) + 1e-16)
    windowed = ((1 - config.window_influence) * normalised
                + config.window_influence * jnp.asarray(ops.hann_window(up)))
    loc = np.unravel_index(int(jnp.argmax(windowed)), windowed.shape)
    return {"x_crops": np.asarray(crops), "x_feat": np.asarray(feats), "responses": np.asarray(responses),
            "upsampled": np.asarray(upsampled), "penalised": np.asarray(penalised),
            "normalised": np.asarray(normalised), "windowed": np.asarray(windowed),
            "scale_id": best, "loc": np.asarray(loc)}


def compare_components(tracker_by_mode: dict, seq, ref: dict, arrays: dict) -> dict:
    """Per component and crop mode ("continuous", "rounded", "reference crops"): the largest
    relative difference over the component frames; crops also in grey levels."""
    import jax.numpy as jnp

    from jaxtrack import ops
    from jaxtrack.frames import pad_frame
    from jaxtrack.trackers import siamfc
    states = ref["components"]
    n_up = len(states) - 1
    rows: dict = {}

    def put(row, mode, value, how=max):
        rows.setdefault(row, {})
        rows[row][mode] = value if mode not in rows[row] else how(rows[row][mode], value)

    frame0 = pad_frame(seq.frame(0))
    box0 = jnp.asarray(seq.gt[0], jnp.float32)
    for mode in ("continuous", "rounded", "reference crops"):
        tr = tracker_by_mode["rounded" if mode == "reference crops" else mode]
        cfg, params = tr.config, tr.params
        state0 = tr.init(params, frame0, box0)
        z_ref = arrays["c0_z_crop"].astype(np.float32)
        if mode == "reference crops":
            feats, _ = siamfc.embed(cfg, params, jnp.asarray(z_ref)[None])
            state0 = state0._replace(kernel=siamfc.template_features(cfg, feats))
        else:
            if cfg.crop == "rounded":
                z = siamfc.crop_rounded(cfg, frame0, state0.center, state0.z_side, cfg.exemplar_size, state0.fill)
            else:
                z = ops.crop_patch(frame0.image, frame0.size, state0.center, state0.z_side, cfg.exemplar_size,
                                   state0.fill)
            put("exemplar crop 127x127x3 (grey levels)", mode, float(np.max(np.abs(np.asarray(z) - z_ref))))
        put("exemplar features 6x6x256", mode, rel(state0.kernel, arrays["c0_z_feat"]))
        put("fill colour (grey levels)", mode, float(np.max(np.abs(np.asarray(state0.fill) - arrays["c0_avg_color"]))))
        same_scale = same_loc = 0
        for k in range(1, n_up + 1):
            frame = pad_frame(seq.frame(k))
            st = jaxtrack_state(cfg, params, frame, states[k]["state"], state0)
            crops = arrays[f"c{k}_x_crops"].astype(np.float32) if mode == "reference crops" else None
            out = jax_components(cfg, params, st, frame, crops)
            # the recomposition is track_step's: same box from the same state
            if crops is None:
                _, o = tr.track_step(params, st, frame)
                scales = ops.scale_factors(cfg.num_scales, cfg.scale_step)
                disp = (out["loc"][::-1] - (out["windowed"].shape[0] - 1) / 2) * cfg.total_stride / cfg.response_up
                disp = disp * float(st.x_side) * scales[out["scale_id"]] / cfg.instance_size
                centre = np.asarray(st.center) + disp
                assert np.allclose(np.asarray(o.box[:2] + o.box[2:] / 2), centre, atol=1e-3), (o.box, centre)
            if mode != "reference crops":
                put("search crops 3x255x255x3 (grey levels)", mode,
                    float(np.max(np.abs(out["x_crops"] - arrays[f"c{k}_x_crops"]))))
                put("search crops: share of values that differ", mode,
                    float(np.mean(out["x_crops"] != arrays[f"c{k}_x_crops"])))
            put("search features 3x22x22x256", mode, rel(out["x_feat"], arrays[f"c{k}_x_feat"]))
            put("responses 3x17x17", mode, rel(out["responses"], arrays[f"c{k}_responses"]))
            put("upsampled 3x272x272 (bicubic)", mode, rel(out["upsampled"], arrays[f"c{k}_upsampled"]))
            put("after the scale penalty", mode, rel(out["penalised"], arrays[f"c{k}_penalised"]))
            sid = states[k]["scale_id"]
            if out["scale_id"] == sid:
                same_scale += 1
                put("normalised (chosen scale)", mode, rel(out["normalised"], arrays[f"c{k}_normalised"]))
                put("after the window", mode, rel(out["windowed"], arrays[f"c{k}_windowed"]))
            same_loc += int(out["scale_id"] == sid and np.array_equal(out["loc"], arrays[f"c{k}_loc"]))
        put("same scale chosen (frames)", mode, f"{same_scale}/{n_up}")
        put("same peak cell (frames)", mode, f"{same_loc}/{n_up}")
    return rows


def track_both(tracker, seq, ref_boxes_1based, warmup: bool = False):
    """jaxtrack's boxes (0-based) and times on ``seq``; with the agreement with the reference."""
    from jaxtrack import boxes as bx
    from jaxtrack.driver import JitTracker, run_sequence
    jt = JitTracker(tracker)
    if warmup:                                      # compiles init and track_step
        run_sequence(jt, first_frames(seq, 3))
    res = run_sequence(jt, seq)
    ref0 = bx.from_dataset(np.asarray(ref_boxes_1based), 1)
    return res, agreement(res.boxes, ref0)


# --------------------------------------------------------------------------- main

CONFIGS = {   # jaxtrack SiamFC settings compared end to end
    "continuous crops, box clamp (--variant continuous)": {"crop": "continuous", "clamp_box": True},
    "rounded crops, box clamp": {"crop": "rounded", "clamp_box": True},
    "continuous crops, no clamp": {"crop": "continuous", "clamp_box": False},
    "official options (rounded crops, no clamp; the default)": {"crop": "rounded", "clamp_box": False},
}
OFFICIAL = {"crop": "rounded", "clamp_box": False}


def main(argv=None):
    ap = tracking_parser(__doc__, reference_help="siamfc-pytorch checkout (e.g. git archive 3957205)",
                         json_default="siamfc_reference.json", seed=20240, configs=CONFIGS, frames=0,
                         synthetic_frames=100, component_frames=6, fixture_frames=24,
                         workdir_help="keep the weights, .pth and frames here (default: a temp dir)")
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    check_reference(ap, args.reference, "siamfc", "siamfc-pytorch")

    import cv2

    import jaxtrack
    from jaxtrack import boxes as bx
    from jaxtrack.data import load_sequence
    from jaxtrack.data.synthetic import make_sequence
    from jaxtrack.models import seeded

    workdir = args.workdir or tempfile.mkdtemp(prefix="siamfc_ref_")
    os.makedirs(workdir, exist_ok=True)
    spec = seeded.siamfc_alexnet_spec(args.seed)
    weights = seeded.siamfc_alexnet_weights(spec)
    np.savez(os.path.join(workdir, "weights.npz"), **weights)
    pth = os.path.join(workdir, "siamfc_alexnet_seed%d.pth" % args.seed)

    seq = load_sequence(args.sequence, "otb")
    if args.frames:
        seq = first_frames(seq, args.frames)
    n_syn = max(args.synthetic_frames, args.fixture_frames if args.fixtures else 0)
    syn = make_sequence(args.synthetic_seed, num_frames=n_syn)
    syn_dir = os.path.join(workdir, syn.name)
    os.makedirs(syn_dir, exist_ok=True)
    syn_files = []
    for i in range(len(syn)):
        path = os.path.join(syn_dir, f"{i + 1:04d}.png")
        cv2.imwrite(path, np.ascontiguousarray(syn.frame(i)[..., ::-1]))   # lossless, RGB -> BGR
        syn_files.append(path)
    one_based = lambda b: bx.to_dataset(np.asarray(b), 1).tolist()   # noqa: E731
    sequences = {seq.name: {"img_files": list(seq.frame_paths), "box": one_based(seq.gt[0])},
                 syn.name: {"img_files": syn_files[:args.synthetic_frames], "box": one_based(syn.gt[0])}}
    if args.fixtures and args.fixture_frames != args.synthetic_frames:
        sequences[syn.name + "-fixture"] = {"img_files": syn_files[:args.fixture_frames], "box": one_based(syn.gt[0])}
    job = {"weights_npz": os.path.join(workdir, "weights.npz"), "pth": pth, "threads": args.threads,
           "components": {"img_files": list(seq.frame_paths[:args.component_frames]),
                          "box": one_based(seq.gt[0])},
           "sequences": sequences}
    if args.fixtures:   # the maps of the fixture: the synthetic sequence's first updates
        job["fixture_components"] = {"img_files": syn_files[:3], "box": one_based(syn.gt[0])}
    t0 = time.time()
    ref, arrays = run_reference(args.reference, job, workdir)
    print(f"reference ran in {time.time() - t0:.1f} s on {ref['device']} (torch {ref['torch']})")

    trackers = {mode: jaxtrack.make_tracker("siamfc", backbone="alexnet", weights=pth, **cfg)
                for mode, cfg in (("continuous", {"crop": "continuous", "clamp_box": False}), ("rounded", OFFICIAL))}
    # both loaders: jaxtrack's variables equal the generated arrays
    conv1 = np.asarray(trackers["rounded"].params["backbone"]["params"]["conv1"]["kernel"])
    assert np.array_equal(conv1, weights["backbone.conv1.0.weight"].transpose(2, 3, 1, 0))
    assert float(trackers["rounded"].params["head"]["bias"]) == 0.0

    report = {"reference": {"repository": "https://github.com/huanglianghua/siamfc-pytorch",
                            "commit": REFERENCE_COMMIT, "device": ref["device"], "torch": ref["torch"]},
              "weights": dict(spec, sha256=seeded.digest(weights)),
              "sequence": seq.name, "synthetic": syn.name}
    report["components"] = compare_components(trackers, seq, ref, arrays)

    e2e, speed = {}, {}
    for label in args.configs:
        tr = jaxtrack.make_tracker("siamfc", backbone="alexnet", weights=pth, **CONFIGS[label])
        e2e[label] = {}
        for s in (seq, first_frames(syn, args.synthetic_frames)):
            res, agree = track_both(tr, s, ref["sequences"][s.name]["boxes"], warmup=(s is seq))
            e2e[label][s.name] = agree
            if s is seq:
                speed[label] = fps(res.times)
    speed["siamfc-pytorch"] = fps(ref["sequences"][seq.name]["times"])
    report["end_to_end"] = e2e
    report["speed_fps"] = speed

    print_report(report)
    write_report(args.json, report)
    if args.fixtures:
        write_fixtures(args.fixtures, spec, weights, syn, seq, ref, arrays, args)
    return report


def print_report(report):
    comp = report["components"]
    modes = ("continuous", "rounded", "reference crops")
    print(f"\nComponents ({report['sequence']}, first frames): max |jaxtrack - reference| / max |reference|")
    print("| component | continuous crops | rounded crops | reference's crops |")
    print("|---|---:|---:|---:|")
    for row, vals in comp.items():
        cells = [vals.get(m, "") for m in modes]
        print(f"| {row} | " + " | ".join(c if isinstance(c, str) else f"{c:.2e}" for c in cells) + " |")
    print("\nEnd to end: per-frame box agreement with siamfc-pytorch")
    print("| jaxtrack setting | sequence | frames | max px | frames > 1 px | first > 1 px | mean IoU |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, per in report["end_to_end"].items():
        for name, a in per.items():
            print(f"| {label} | {name} | {a['frames']} | {a['max_px']:.3g} | {a['frames_over_1px']} | "
                  f"{a['first_frame_over_1px'] if a['first_frame_over_1px'] is not None else '-'} | {a['mean_iou']:.4f} |")
    print(f"\nSpeed on {report['sequence']} (CPU, frames per second of the update):")
    ref_fps = report["speed_fps"]["siamfc-pytorch"]
    for label, v in report["speed_fps"].items():
        print(f"  {label}: {v:.2f} FPS ({v / ref_fps:.2f}x siamfc-pytorch)")


def write_fixtures(folder, spec, weights, syn, seq, ref, arrays, args):
    """The test's fixtures, numbers only: the weights' spec and digest, the reference's boxes
    on the first ``--fixture-frames`` synthetic frames and the first 40 of the real sequence,
    and its response maps (3x17x17, before upsampling) of the first two synthetic updates."""
    from jaxtrack.models import seeded
    os.makedirs(folder, exist_ok=True)
    name = syn.name + ("-fixture" if args.fixture_frames != args.synthetic_frames else "")
    fx = ref["fixture_components"]
    meta = {"reference": {"repository": "https://github.com/huanglianghua/siamfc-pytorch",
                          "commit": REFERENCE_COMMIT, "torch": ref["torch"]},
            "made_by": "python experiments/reference/siamfc_pytorch.py --reference PATH --fixtures "
                       "tests/fixtures/reference/siamfc (docs/fidelity_siamfc.md)",
            "jaxtrack_options": OFFICIAL,
            "weights": dict(spec, sha256=seeded.digest(weights)),
            "synthetic": {"make_sequence_seed": args.synthetic_seed, "make_sequence_num_frames": len(syn),
                          "frames": args.fixture_frames,
                          "boxes_1based": ref["sequences"][name]["boxes"]},
            "real": {"otb_sequence": seq.name, "frames": 40,
                     "boxes_1based": ref["sequences"][seq.name]["boxes"][:40]},
            "maps": {f"frame{k}": {"state_before": fx[k]["state"], "scale_id": fx[k]["scale_id"],
                                   "peak_cell": arrays[f"f{k}_loc"].tolist()} for k in (1, 2)}}
    with open(os.path.join(folder, "siamfc_reference.json"), "w") as f:
        f.write(compact_json(meta) + "\n")
    np.savez_compressed(os.path.join(folder, "responses.npz"),
                        **{f"frame{k}": arrays[f"f{k}_responses"] for k in (1, 2)})
    print(f"wrote fixtures to {folder}")


if __name__ == "__main__":
    run(main)
