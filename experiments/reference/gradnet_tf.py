"""GradNet-Tensorflow beside jaxtrack's GradNet (AlexNet): the same weights, the same frames,
compared component by component, frame by frame, and for speed.

    python experiments/reference/gradnet_tf.py --reference /work/ref/GradNet-Tensorflow \\
        --tf-python /work/ref/tfvenv/bin/python --sequence ../shared/data/otb/Crossing \\
        --json gradnet_reference.json [--fixtures tests/fixtures/reference/gradnet]

``--reference`` is a checkout of https://github.com/LPXTT/GradNet-Tensorflow; ``--tf-python``
a Python with PyPI's ``tensorflow`` (2.x; the TF1 code runs under ``tf.compat.v1``), numpy,
scipy, matplotlib and opencv-python. The reference runs only in a child process (this file
run with ``--worker`` by that Python, PYTHONPATH the checkout): its own ``track.py`` is
executed as ``__main__`` (``runpy``), unmodified, in a working folder laid out as it expects
(``./dataset/<sequence>/img``, ``./ckpt/base_l5_1t_49/model_epoch49.ckpt``). Nothing of it is
copied here. What runs:

1. **Weights.** The checkout's ``ckpt/`` holds ``.index``/``.meta`` files without the
   ``.data`` shard (no weights), so the weights are drawn from ``--seed``
   (``jaxtrack.models.seeded.gradnet_tf_*``, every tensor of ``scala1-5``, ``scala1_z-5_z``
   and ``t_scala5_zz``, BN statistics random). The child builds the reference's own graph
   (``track.py``'s main up to ``saver.restore``), assigns the arrays to its variables by name
   (all must match; the zero-debias slots of its moving averages are set to 0) and writes the
   checkpoint with ``tf.train.Saver.save``; the reference then restores it with its own
   ``saver.restore``, jaxtrack with its own reader (``make_tracker("gradnet",
   backbone="alexnet", weights=PREFIX)``: ``jaxtrack.formats.tf_checkpoint``,
   ``alexnet_from_tf_tensors(bgr_input=True)``).
2. **Components.** On the first ``--component-frames`` frames the reference's locals are
   recorded (``sys.settrace``): the exemplar crop, the fill, the templates, the shallow memory,
   each frame's state before the search (position, ``sx``, size, templates, stored samples),
   the search crops, both raw maps, the upsampled maps, each step of the fused map, the chosen
   scale and peak cell. jaxtrack computes the same from the same state (:func:`jax_components`)
   with its default crops, with ``crop="official"``, and fed the reference's crops. Each row:
   max |difference| / max |reference| (crops in grey levels).
3. **End to end.** Both track the real sequence and a synthetic one
   (``jaxtrack.data.synthetic.make_sequence``, written as PNG, ground truth 1-based as OTB's).
   The reference writes whole-pixel boxes (``Position_now``); its unrounded position and size
   are recorded per frame too. Per jaxtrack configuration: the largest coordinate difference
   against the unrounded boxes, frames over 1 px, mean IoU.
4. **Speed.** Untraced, on the real sequence: the reference's own ``Speed`` print (frames
   after the first-frame set-up, decoding excluded: ``track.py`` loads all frames first);
   jaxtrack's ``driver.run_sequence`` after a compiling warm-up.

Run-time shims in the child (the reference's files are not modified; none changes a value it
computes):

- ``sys.modules["tensorflow"]`` is ``tf.compat.v1`` with ``disable_v2_behavior()``: the code
  is TF1 (``tf.placeholder``, ``tf.Session``, ``tf.variable_scope``).
- ``tf.contrib.layers.l2_regularizer`` (gone from TF 2): ``scale * tf.nn.l2_loss(w)``, TF1's
  definition. It only adds weight-decay terms to the loss, whose gradient with respect to the
  template features (all the tracker takes) is zero.
- ``tf.get_variable`` shapes with a float channel count (``channels / groups`` is 48.0 under
  Python 3; TF 2's shapes reject floats): whole floats become ints.
- ``tensorflow.python.ops.control_flow_ops.cond`` (moved in TF 2.x): ``tf.compat.v1.cond``,
  the same op (``batchNorm``'s choice between batch and moving statistics).
- ``np.float`` (removed in numpy 1.24; ``_compile_results``) is ``float``; ``np.savetxt`` to
  the hard-coded ``/mnt/lustre/...`` results folder writes to ``./results`` instead.
- ``MPLBACKEND=Agg`` (no display), ``CUDA_VISIBLE_DEVICES=""`` (CPU, as jaxtrack here).
- Checkpoint writing (once, before tracking): ``tf.train.Saver.restore`` is replaced for one
  run of ``track.py`` by "assign the drawn arrays, save, stop"; the tracking runs use the
  original ``restore``.
- Observation: ``sys.settrace`` on ``run_siamesefc`` and ``trackerEval`` copies their locals
  (traced run only; the speed run is not traced); stdout is captured for the speed line.
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

REFERENCE = "https://github.com/LPXTT/GradNet-Tensorflow"
MODEL_PATH = "ckpt/base_l5_1t_49/model_epoch49.ckpt"     # parameters.py's model_path


# --------------------------------------------------------------------------- the child

class _Written(Exception):
    pass


def _shims(np_mod):
    """Install the run-time shims (see the module docstring); returns tf.compat.v1."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import types

    import tensorflow as tf2
    tf = tf2.compat.v1
    tf.disable_v2_behavior()
    tf.logging.set_verbosity(tf.logging.ERROR)
    contrib = types.SimpleNamespace(layers=types.SimpleNamespace(
        l2_regularizer=lambda scale: (lambda w: scale * tf.nn.l2_loss(w))))
    tf.contrib = contrib
    get_variable = tf.get_variable

    def get_variable_int_shape(name, shape=None, *args, **kwargs):
        if shape is not None:
            shape = [int(s) if isinstance(s, float) and s == int(s) else s for s in shape]
        return get_variable(name, shape, *args, **kwargs)
    tf.get_variable = get_variable_int_shape
    from tensorflow.python.ops import control_flow_ops
    if not hasattr(control_flow_ops, "cond"):
        control_flow_ops.cond = tf.cond
    sys.modules["tensorflow"] = tf
    if not hasattr(np_mod, "float"):
        np_mod.float = float
    savetxt = np_mod.savetxt

    def savetxt_here(fname, *args, **kwargs):
        if str(fname).startswith("/mnt/lustre/"):
            os.makedirs("results", exist_ok=True)
            fname = os.path.join("results", os.path.basename(str(fname)))
        return savetxt(fname, *args, **kwargs)
    np_mod.savetxt = savetxt_here
    return tf, tf2


def worker(job_path: str) -> None:
    """Runs under PYTHONPATH=<reference checkout>, in the job's working folder."""
    import contextlib
    import io
    import runpy
    with open(job_path) as f:
        job = json.load(f)
    tf, tf2 = _shims(np)
    os.chdir(job["cwd"])
    track_py = os.path.join(job["reference"], "track.py")
    arrays = dict(np.load(job["weights_npz"]))
    Saver = tf.train.Saver
    restore = Saver.restore
    written = {}

    def assign_and_save(self, sess, save_path):
        names = {v.op.name: v for v in tf.global_variables()}
        extra = sorted(set(arrays) - set(names))
        zero = sorted(n for n in names if n not in arrays and n.rsplit("/", 1)[-1] in ("biased", "local_step"))
        missing = sorted(set(names) - set(arrays) - set(zero))
        if extra or missing:
            raise SystemExit(f"weights do not fit the reference graph: extra {extra}, missing {missing}")
        for n, v in names.items():
            v.load(arrays[n] if n in arrays else np.zeros(v.shape, v.dtype.as_numpy_dtype), sess)
        self.save(sess, save_path, write_meta_graph=False)
        written.update(variables=len(names), zero_debias=len(zero))
        raise _Written

    def run_main(dataset: str):
        tf.reset_default_graph()
        if os.path.islink("dataset"):
            os.unlink("dataset")
        os.symlink(dataset, "dataset")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                runpy.run_path(track_py, run_name="__main__")
            except _Written:
                pass
        return out.getvalue()

    Saver.restore = assign_and_save
    try:
        run_main(job["datasets"]["speed"])
    finally:
        Saver.restore = restore
    result = {"tensorflow": tf2.__version__, "numpy": np.__version__, "checkpoint": written}
    import cv2
    result["opencv"] = cv2.__version__

    arrays_out = {}
    records = Tracer(track_py, job["component_frames"])
    sys.settrace(records.tracer)
    try:
        log = run_main(job["datasets"]["traced"])
    finally:
        sys.settrace(None)
    result["traced_log"] = log
    result["sequences"] = records.finish(arrays_out)
    log = run_main(job["datasets"]["speed"])
    result["speed_log"] = log
    speeds = [float(line.rsplit("Speed:", 1)[1].split()[0]) for line in log.splitlines()
              if "Speed:" in line and " -- " in line and not line.startswith(" --")]
    result["speed_fps"] = speeds[0] if speeds else None
    np.savez(job["arrays_out"], **arrays_out)
    with open(job["json_out"], "w") as f:
        json.dump(result, f)


class Tracer:
    """``sys.settrace`` observer of ``run_siamesefc`` / ``trackerEval`` (copies only)."""

    def __init__(self, track_py: str, component_frames: int):
        self.file = os.path.realpath(track_py)
        self.k = component_frames
        self.seqs = []

    def tracer(self, frame, event, arg):
        if event != "call" or os.path.realpath(frame.f_code.co_filename) != self.file:
            return None
        name = frame.f_code.co_name
        if name == "run_siamesefc":
            self.seqs.append({"name": frame.f_locals["seq"], "boxes": [], "frames": {}, "init": None,
                              "last": None})
            return self.seq_line
        if name == "trackerEval":
            return self.eval_call(frame)
        return None

    def seq_line(self, frame, event, arg):
        s = self.seqs[-1]
        loc = frame.f_locals
        if s["init"] is None and "hid_gra" in loc:
            s["init"] = {k: np.array(loc[k]) for k in ("zCrop0", "xCrops0", "template_gra", "template_sia",
                                                        "hid_gra", "avgChans", "targetPosition", "targetSize")}
            s["init"]["sx"] = float(loc["sx"])
        pn = loc.get("Position_now")
        if pn is not None and pn is not s["last"]:
            s["last"] = pn
            s["boxes"].append({"i": int(loc["i"]), "position": np.asarray(loc["targetPosition"], float).tolist(),
                               "size": np.asarray(loc["targetSize"], float).tolist(),
                               "rounded": np.asarray(pn).tolist()})
        if event == "return":
            s["fps_traced"] = float(arg[2])
        return self.seq_line

    def eval_call(self, frame):
        s = self.seqs[-1]
        caller = frame.f_back.f_locals
        i = int(caller["i"])
        if caller["refind"]:
            s.setdefault("refind_frames", []).append(i)
        if i > self.k:
            return None
        rec = s["frames"].setdefault(i, [])
        call = {"state": {"position": np.asarray(caller["targetPosition"], float).tolist(),
                          "sx": float(caller["sx"]), "size": np.asarray(caller["targetSize"], float).tolist(),
                          "F_max_thred": float(caller["F_max_thred"]), "refind": int(caller["refind"]),
                          "no_cos": int(caller["no_cos"]), "wInfluence": float(caller["opts"]["wInfluence"]),
                          "scores": [float(v) for v in caller["updata_features_score"]],
                          "sample_frames": [int(v) for v in caller["updata_features_frame"]]},
                "arrays": {"x_crops": np.array(caller["xCrops"]), "score_sia": np.array(caller["score_sia"]),
                           "score_gra": np.array(caller["score_gra"]),
                           "template_gra": np.array(caller["template_gra"]),
                           "template_sia": np.array(caller["template_sia"]),
                           "hid_gra": np.array(caller["hid_gra"]),
                           "samples": np.stack([p[1] for p in caller["updata_features"]])},
                "maps": []}
        call["eval_sx"] = float(frame.f_locals["sx"])
        call["eval_position"] = np.asarray(frame.f_locals["targetPosition"], float).tolist()
        rec.append(call)

        seen = []

        def local(fr, ev, a):
            m = fr.f_locals.get("responseMap")
            if isinstance(m, np.ndarray) and m.ndim == 2 and (not seen or m is not seen[-1]):
                seen.append(m)
                call["maps"].append(m.copy())
            if ev == "return":
                lo = fr.f_locals
                call["arrays"]["upsampled"] = np.stack(lo["responseMapsUP"])
                call["arrays"]["gra_normalised"] = np.array(lo["responseMaps_nosia"])
                call["best"] = int(lo["bestScale"])
                call["loc"] = [int(v) for v in lo["pCorr"]]
                call["new_position"] = np.asarray(a[0], float).tolist()
            return local
        return local

    def finish(self, arrays_out: dict) -> dict:
        out = {}
        for s in self.seqs:
            name = s["name"]
            for k, v in s["init"].items():
                if isinstance(v, np.ndarray):
                    arrays_out[f"{name}/init/{k}"] = v
            frames = {}
            for i, calls in s["frames"].items():
                frames[i] = []
                for j, call in enumerate(calls):
                    # the map after each step: chosen, - min, / sum, fused, windowed
                    for n, m in zip(("chosen", "shifted", "normalised", "fused", "windowed"), call.pop("maps")):
                        call["arrays"][n] = m
                    for k, v in call.pop("arrays").items():
                        arrays_out[f"{name}/{i}/{j}/{k}"] = v
                    frames[i].append(call)
            out[name] = {"boxes": s["boxes"], "refind_frames": s.get("refind_frames", []), "frames": frames,
                         "fps_traced": s.get("fps_traced"), "init": {"sx": s["init"]["sx"]}}
        return out


def run_reference(args, job: dict, workdir: str) -> tuple[dict, dict]:
    """Run :func:`worker` under ``--tf-python`` in a child whose PYTHONPATH is the reference."""
    return run_worker(__file__, job, workdir, [args.reference], args.tf_python)


# --------------------------------------------------------------------------- jaxtrack's side

def official_center(position):
    """The reference's (row, col) position -> jaxtrack (cx, cy): it reads OTB's 1-based boxes
    as they are (``cx = x + w / 2``), jaxtrack subtracts 1."""
    return np.asarray([position[1] - 1.0, position[0] - 1.0], np.float32)


def jaxtrack_state(tr, state0, frame, st, arr, i):
    """A jaxtrack GradNet state equal to the reference's before the search of frame ``i``."""
    import jax.numpy as jnp
    cfg = tr.config
    m = cfg.num_samples
    samples = np.zeros((m,) + arr["samples"].shape[1:], np.float32)
    scores = np.full((m,), -np.inf, np.float32)
    n = len(st["scores"])
    samples[:n] = arr["samples"]
    scores[:n] = st["scores"]
    return state0._replace(
        center=jnp.asarray(official_center(st["position"])),
        target_size=jnp.asarray([st["size"][1], st["size"][0]], jnp.float32),
        x_side=jnp.float32(st["sx"]), kernel_gra=jnp.asarray(arr["template_gra"]),
        kernel_sia=jnp.asarray(arr["template_sia"]), memory=jnp.asarray(arr["hid_gra"]),
        samples=jnp.asarray(samples), sample_scores=jnp.asarray(scores), num_stored=jnp.int32(n),
        last_sample=jnp.int32(st["sample_frames"][-1]), threshold=jnp.float32(st["F_max_thred"]),
        window_on=jnp.asarray(bool(st["no_cos"])), refind=jnp.asarray(bool(st["refind"])),
        frame_index=jnp.int32(i - 1))


def compare_components(trackers: dict, seq, name: str, ref: dict, arrays: dict) -> dict:
    """Per component and mode: the largest relative difference over the component frames."""
    import jax.numpy as jnp

    from jaxtrack.frames import pad_frame
    from jaxtrack.trackers import gradnet, siamfc
    rows: dict = {}

    def put(row, mode, value, how=max):
        rows.setdefault(row, {})
        rows[row][mode] = value if mode not in rows[row] else how(rows[row][mode], value)

    seqref = ref["sequences"][name]
    pre = f"{name}/init/"
    frame0 = pad_frame(seq.frame(0))
    box0 = jnp.asarray(seq.gt[0], jnp.float32)
    for mode, tr in trackers.items():
        cfg, params = tr.config, tr.params
        own = mode != "reference crops"
        state0 = tr.init(params, frame0, box0)
        ref_fill = np.trunc(arrays[pre + "avgChans"][::-1])            # BGR -> RGB, as np.pad casts it
        put("padding colour (grey levels)", mode, float(np.max(np.abs(np.asarray(state0.fill) - ref_fill))))
        z_ref = arrays[pre + "zCrop0"][0][..., ::-1].astype(np.float32)
        x0_ref = arrays[pre + "xCrops0"][0][..., ::-1].astype(np.float32)
        if own:
            z = gradnet.exemplar_crop(cfg, frame0, state0.center, siamfc.exemplar_side(cfg, state0.target_size),
                                      state0.fill)
            put("exemplar crop 127x127x3 (grey levels)", mode, float(np.max(np.abs(np.asarray(z) - z_ref))))
            put("first search crop 255x255x3 (grey levels)", mode,
                float(np.max(np.abs(np.asarray(state0.samples[0]) - x0_ref))))
        else:
            z = jnp.asarray(z_ref)
        kernel_sia = gradnet.siamfc_template(cfg, params, gradnet.backbone_features(cfg, params, z[None]))
        put("SiamFC template 6x6x256", mode, rel(kernel_sia, arrays[pre + "template_sia"]))
        h0 = gradnet.shallow(cfg, params, gradnet.backbone_features(cfg, params, z[None]))
        x0 = jnp.asarray(x0_ref) if not own else state0.samples[0]
        kg, mem = gradnet._update_from_crop(cfg, params, h0, x0)
        put("first update: template 6x6x256", mode, rel(kg, arrays[pre + "template_gra"]))
        put("first update: shallow memory 12x12x256", mode, rel(mem, arrays[pre + "hid_gra"]))
        kg, h_up = gradnet._update_from_crop(cfg, params, mem, x0)    # frame 0's periodic update
        mem = cfg.memory_keep * mem + (1 - cfg.memory_keep) * h_up
        if own:
            assert np.allclose(kg, state0.kernel_gra, atol=1e-5 * float(np.abs(kg).max()))
        put("frame-0 update: template 6x6x256", mode, rel(kg, arrays[f"{name}/1/0/template_gra"]))
        put("frame-0 update: shallow memory 12x12x256", mode, rel(mem, arrays[f"{name}/1/0/hid_gra"]))
        same_scale = same_loc = n = 0
        for i_str, calls in seqref["frames"].items():
            i = int(i_str)
            if i == 0:
                continue
            frame = pad_frame(seq.frame(i))
            for j, call in enumerate(calls[:1]):
                a = {k[len(f"{name}/{i}/{j}/"):]: v for k, v in arrays.items() if k.startswith(f"{name}/{i}/{j}/")}
                st = jaxtrack_state(tr, state0, frame, call["state"], a, i)
                crops = None if own else jnp.asarray(a["x_crops"][..., ::-1].astype(np.float32))
                w = call["state"]["wInfluence"]
                m = gradnet.search_maps(cfg, params, st, frame, st.center, w, crops=crops)
                n += 1
                if own:
                    put("search crops 3x255x255x3 (grey levels)", mode,
                        float(np.max(np.abs(np.asarray(m["crops"]) - a["x_crops"][..., ::-1]))))
                    put("search crops: share of values that differ", mode,
                        float(np.mean(np.asarray(m["crops"]) != a["x_crops"][..., ::-1])))
                put("SiamFC maps 3x17x17", mode, rel(m["sia"], a["score_sia"][..., 0]))
                put("updated-template map 17x17", mode, rel(m["gra"], a["score_gra"][0, ..., 0]))
                put("upsampled 3x272x272 (bicubic)", mode, rel(m["sia_up"], a["upsampled"]))
                put("updated map, normalised", mode, rel(gradnet._normalise(m["gra_up"]), a["gra_normalised"]))
                if int(m["best"]) == call["best"]:
                    same_scale += 1
                    put("fused (chosen scale)", mode, rel(m["fused"], a["fused"]))
                    put("after the window", mode, rel(m["response"], a["windowed"]))
                    same_loc += int(np.array_equal(np.asarray(m["loc"]), call["loc"]))
                put("new position (px)", mode, float(np.max(np.abs(np.asarray(m["center"])
                                                                    - official_center(call["new_position"])))))
        put("same scale chosen (frames)", mode, f"{same_scale}/{n}")
        put("same peak cell (frames)", mode, f"{same_loc}/{n}")
    return rows


def ref_boxes(seqref) -> np.ndarray:
    """The reference's unrounded boxes as jaxtrack xywh (0-based)."""
    out = []
    for b in seqref["boxes"]:
        (py, px), (h, w) = b["position"], b["size"]
        out.append([px - 1.0 - w / 2, py - 1.0 - h / 2, w, h])
    return np.asarray(out, np.float64)


def written_differ(ours, seqref) -> int:
    """Frames whose box as track.py writes it (whole pixels, 1-based) differs from the reference's."""
    ours = np.asarray(ours, np.float64)
    mine = np.concatenate([np.round(ours[:, :2] + 1), np.round(ours[:, 2:])], 1)
    return int(np.sum(np.any(mine != np.asarray([b["rounded"] for b in seqref["boxes"]]), 1)))


OFFICIAL = {"crop": "official", "centre_cell": "floor", "round_side": True, "official_refind": True,
            "clamp_box": False}
# the project's continuous geometry (--variant continuous, the default before the official one)
CONTINUOUS = {"crop": "continuous", "centre_cell": "exact", "round_side": False, "official_refind": False,
              "clamp_box": True}
CONFIGS = {   # jaxtrack GradNet (alexnet) settings compared end to end
    "continuous": CONTINUOUS,
    "official crops only": dict(CONTINUOUS, crop="official"),
    "official options (default)": OFFICIAL,
    "official options but continuous crops": {k: v for k, v in OFFICIAL.items() if k != "crop"},
    "official options but centre (up-1)/2": dict(OFFICIAL, centre_cell="exact"),
    "official options but exact sx": dict(OFFICIAL, round_side=False),
    "official options but jaxtrack refind": dict(OFFICIAL, official_refind=False),
    "official options but box clamp": dict(OFFICIAL, clamp_box=True),
}


def write_dataset(folder, name, img_files, gt_1based):
    """``folder/name/{img/, groundtruth_rect.txt}`` as track.py's loadVideoInfo reads it."""
    d = os.path.join(folder, name, "img")
    os.makedirs(d, exist_ok=True)
    for k, path in enumerate(img_files):
        dst = os.path.join(d, "%04d%s" % (k + 1, os.path.splitext(path)[1]))
        if not os.path.exists(dst):
            os.symlink(os.path.abspath(path), dst)
    np.savetxt(os.path.join(folder, name, "groundtruth_rect.txt"), np.asarray(gt_1based), fmt="%.10g",
               delimiter=",")


def main(argv=None):
    ap = tracking_parser(__doc__, reference_help="GradNet-Tensorflow checkout (holding track.py, siamese.py)",
                         json_default="gradnet_reference.json", seed=20240, configs=CONFIGS, frames=0,
                         synthetic_frames=60, component_frames=6, fixture_frames=24, threads=False,
                         workdir_help="keep the weights, checkpoint and frames here (default: a temp dir)")
    ap.add_argument("--tf-python", help="a Python with tensorflow (e.g. a venv with tensorflow from PyPI)")
    ap.add_argument("--reuse-reference", action="store_true",
                    help="reuse the reference's records in --workdir from an earlier run with the same arguments")
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    check_reference(ap, args.reference, "track.py", "GradNet-Tensorflow")
    if not args.tf_python:
        ap.error("--tf-python: give a Python that has tensorflow (the reference is TF1 code)")

    import cv2

    import jaxtrack
    from jaxtrack import boxes as bx
    from jaxtrack.data import load_sequence
    from jaxtrack.data.synthetic import make_sequence
    from jaxtrack.models import seeded

    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="gradnet_ref_"))
    os.makedirs(os.path.join(workdir, os.path.dirname(MODEL_PATH)), exist_ok=True)
    spec = seeded.gradnet_tf_spec(args.seed)
    weights = seeded.gradnet_tf_weights(spec)
    np.savez(os.path.join(workdir, "weights.npz"), **weights)

    seq = load_sequence(args.sequence, "otb")
    if args.frames:
        seq = first_frames(seq, args.frames)
    syn = make_sequence(args.synthetic_seed, num_frames=args.synthetic_frames)
    syn_dir = os.path.join(workdir, "frames", syn.name)
    os.makedirs(syn_dir, exist_ok=True)
    syn_files = []
    for i in range(len(syn)):
        path = os.path.join(syn_dir, f"{i + 1:04d}.png")
        cv2.imwrite(path, np.ascontiguousarray(syn.frame(i)[..., ::-1]))      # lossless, RGB -> BGR
        syn_files.append(path)
    one_based = lambda b: bx.to_dataset(np.asarray(b), 1)   # noqa: E731
    traced, speed = os.path.join(workdir, "dataset_traced"), os.path.join(workdir, "dataset_speed")
    for folder in (traced, speed):
        write_dataset(folder, seq.name, seq.frame_paths, one_based(seq.gt))
    write_dataset(traced, syn.name, syn_files, one_based(syn.gt))
    job = {"reference": os.path.abspath(args.reference), "cwd": workdir,
           "weights_npz": os.path.join(workdir, "weights.npz"), "component_frames": args.component_frames,
           "datasets": {"traced": traced, "speed": speed}}
    t0 = time.time()
    if args.reuse_reference and os.path.exists(os.path.join(workdir, "ref.json")):
        with open(os.path.join(workdir, "ref.json")) as f:
            ref = json.load(f)
        arrays = dict(np.load(os.path.join(workdir, "ref_arrays.npz")))
    else:
        ref, arrays = run_reference(args, job, workdir)
    print(f"reference ran in {time.time() - t0:.1f} s (tensorflow {ref['tensorflow']}, "
          f"opencv {ref['opencv']}, {ref['checkpoint']})")
    prefix = os.path.join(workdir, MODEL_PATH)

    def make(**cfg):
        return jaxtrack.make_tracker("gradnet", backbone="alexnet", weights=prefix, **cfg)

    from jaxtrack.configs import variants
    official = gradnet.GradNetConfig(**variants("gradnet")["official"])
    assert all(getattr(official, k) == v for k, v in OFFICIAL.items()), "OFFICIAL != --variant official"
    assert variants("gradnet")["continuous"] == CONTINUOUS, "CONTINUOUS != --variant continuous"
    trackers = {"continuous crops": make(**CONTINUOUS), "official crops": make(**OFFICIAL)}
    trackers["reference crops"] = trackers["official crops"]
    conv1 = np.asarray(trackers["continuous crops"].params["search"]["params"]["conv1"]["kernel"])
    assert np.array_equal(conv1, weights["siamese/scala1/conv/weights"][:, :, ::-1]), "loader mismatch"

    report = {"reference": {"repository": REFERENCE, "tensorflow": ref["tensorflow"], "opencv": ref["opencv"],
                            "numpy": ref["numpy"]},
              "weights": dict(spec, sha256=seeded.digest(weights)),
              "sequence": seq.name, "synthetic": syn.name,
              "command": "python experiments/reference/gradnet_tf.py " + " ".join(sys.argv[1:])}
    report["reference_refind_frames"] = {n: ref["sequences"][n]["refind_frames"] for n in (seq.name, syn.name)}
    report["components"] = {s.name: compare_components(trackers, s, s.name, ref, arrays) for s in (seq, syn)}

    from jaxtrack.driver import JitTracker, run_sequence
    e2e, fps_ = {}, {}
    for label in args.configs:
        jt = JitTracker(make(**CONFIGS[label]))
        e2e[label] = {}
        for s in (seq, syn):
            if s is seq and label in ("continuous", "official options (default)"):
                run_sequence(jt, first_frames(s, 3))                          # compile
                res = run_sequence(jt, s)
                fps_[label] = fps(res.times)
            else:
                res = run_sequence(jt, s)
            e2e[label][s.name] = agreement(res.boxes, ref_boxes(ref["sequences"][s.name]))
            e2e[label][s.name]["written_boxes_differ"] = written_differ(res.boxes, ref["sequences"][s.name])
            if label == "official options (default)":
                e2e[label][s.name]["boxes"] = np.asarray(res.boxes).tolist()
    fps_["GradNet-Tensorflow"] = ref["speed_fps"]
    report["end_to_end"] = e2e
    report["speed_fps"] = fps_
    print_report(report)
    write_report(args.json, report)
    if args.fixtures:
        write_fixtures(args.fixtures, spec, weights, syn, seq, ref, arrays, args)
    return report


def print_report(report):
    modes = ("continuous crops", "official crops", "reference crops")
    for name, comp in report["components"].items():
        print(f"\nComponents ({name}, first frames): max |jaxtrack - reference| / max |reference|")
        print("| component | `--variant continuous` | default (official) | the reference's crops |")
        print("|---|---:|---:|---:|")
        for row, vals in comp.items():
            cells = [vals.get(m, "") for m in modes]
            print(f"| {row} | " + " | ".join(c if isinstance(c, str) else f"{c:.2e}" for c in cells) + " |")
    print("\nEnd to end: per-frame box agreement with GradNet-Tensorflow (its unrounded boxes)")
    print("| jaxtrack setting | sequence | frames | max px | frames > 1 px | first > 1 px | mean IoU "
          "| written boxes that differ |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, per in report["end_to_end"].items():
        for name, a in per.items():
            print(f"| {label} | {name} | {a['frames']} | {a['max_px']:.3g} | {a['frames_over_1px']} | "
                  f"{a['first_frame_over_1px'] if a['first_frame_over_1px'] is not None else '-'} | "
                  f"{a['mean_iou']:.4f} | {a['written_boxes_differ']} |")
    print(f"\nreference's re-search (refind) frames: {report['reference_refind_frames']}")
    print(f"\nSpeed on {report['sequence']} (CPU, frames per second):")
    ref_fps = report["speed_fps"]["GradNet-Tensorflow"]
    for label, v in report["speed_fps"].items():
        print(f"  {label}: {v:.2f} FPS ({v / ref_fps:.2f}x GradNet-Tensorflow)")


def write_fixtures(folder, spec, weights, syn, seq, ref, arrays, args):
    """The test's fixtures, numbers only: the weights' spec and digest, the reference's
    unrounded boxes on the first ``--fixture-frames`` synthetic frames and Crossing's first 40,
    and its raw maps of the first two synthetic searches."""
    from jaxtrack.models import seeded
    os.makedirs(folder, exist_ok=True)
    meta = {"reference": {"repository": REFERENCE, "tensorflow": ref["tensorflow"], "opencv": ref["opencv"]},
            "made_by": "python experiments/reference/gradnet_tf.py --reference PATH --fixtures "
                       "tests/fixtures/reference/gradnet (docs/fidelity_gradnet.md)",
            "jaxtrack_options": OFFICIAL,
            "weights": dict(spec, sha256=seeded.digest(weights)),
            "synthetic": {"make_sequence_seed": args.synthetic_seed, "make_sequence_num_frames": len(syn),
                          "frames": args.fixture_frames,
                          "boxes": np.round(ref_boxes(ref["sequences"][syn.name])[:args.fixture_frames], 5).tolist()},
            "real": {"otb_sequence": seq.name, "frames": 40,
                     "boxes": np.round(ref_boxes(ref["sequences"][seq.name])[:40], 5).tolist()}}
    with open(os.path.join(folder, "gradnet_reference.json"), "w") as f:
        f.write(compact_json(meta) + "\n")
    np.savez_compressed(os.path.join(folder, "maps.npz"),
                        **{f"frame{k}_{m}": arrays[f"{syn.name}/{k}/0/{key}"][..., 0].astype(np.float32)
                           for k in (1, 2) for m, key in (("sia", "score_sia"), ("gra", "score_gra"))})
    print(f"wrote fixtures to {folder}")


if __name__ == "__main__":
    run(main)
