"""TADT-python beside jaxtrack's TADT: the same VGG-16 weights, the same frames, compared
component by component, box by box, and for speed.

    git clone https://github.com/ZikunZhou/TADT-python /work/ref/TADT-python   # tested at b0b35c1
    python experiments/reference/tadt_python.py --reference /work/ref/TADT-python \\
        --sequence ../shared/data/otb/Crossing --frames 40 --synthetic-frames 20 --threads 2 \\
        --workdir /tmp/tadtref/full --json tadt_reference.json [--fixtures tests/fixtures/reference/tadt]
    # the same tables again from the reference's saved outputs: add --reuse
    # timing only (the reference untraced, then jaxtrack): --speed-only

``--reference`` is a checkout of https://github.com/ZikunZhou/TADT-python (tested at b0b35c1).
Its code is imported only in a child process (this file run with ``--worker``) whose
PYTHONPATH is a folder of stubs followed by that checkout; nothing of it is copied here.

1. **Weights.** VGG-16 conv1_1 ... conv4_3 in torchvision's layout are drawn with numpy from
   ``--seed`` (``jaxtrack.models.seeded.vgg16_weights``). The reference reads them through its
   only loader, ``backbone_v2.load_params_from_mat``, from a MatConvNet ``.mat`` written here
   (``seeded.vgg16_matconvnet``); jaxtrack reads the torchvision ``.pth`` (written by the child
   with ``torch.save``) through ``models.vgg16.load_vgg16_variables``, and is given the input
   the reference feeds its network (``vgg_normalization="matconvnet"``, ``x - 128``). The
   harness checks that jaxtrack's ``.pth`` and ``.mat`` loaders give the drawn arrays.
2. **Components.** On the first ``--component-frames`` frames of the sequence the reference's
   intermediates are recorded (wrappers that return what they wrap): the search window, the
   conv4_1 / conv4_3 features, the regressors' trained weights, the ranking
   gradient, the selected channels and balance weights, the 3x45x45 responses, the upsampled
   maps, and its state before each update. jaxtrack computes the same quantities three ways:
   its project options (:data:`PROJECT`), its official options (:data:`OFFICIAL`, the default), and fed the reference's features and
   selection (so each stage is compared on equal inputs).
3. **End to end.** Both track the real sequence and a synthetic one
   (``jaxtrack.data.synthetic.make_sequence``, written as PNG for the reference) from the same
   first box (the reference takes OTB's 1-based box and returns 0-based boxes after frame 0).
4. **Speed.** Both on the same frames, weights and CPU (``--speed-only``: one after the
   other, nothing recorded): frames per second of the update,
   decoding excluded (jaxtrack: ``driver.run_sequence`` after a compiling warm-up; the
   reference: its own ``toc``, which also excludes its whole-frame resize, and the wall time of
   ``tracking()``).

Prints the tables and writes ``--json``; ``--fixtures DIR`` also writes the numbers
``tests/test_reference_tadt.py`` replays (no reference code).

Run-time shims in the child (listed in the JSON, ``shims``; the reference's files are not
modified): see :data:`SHIMS`.
"""
from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np

from jaxtrack_harness import (agreement, check_reference, compact_json, first_frames, fps, median_fps, rel,
                              run, run_worker, tracking_parser, write_report)

REFERENCE_COMMIT = "b0b35c1"
REPOSITORY = "https://github.com/ZikunZhou/TADT-python"

SHIMS = [
    "torchvision: a stub package on PYTHONPATH. backbone_v2.py, siamese.py and feature_utils_v2.py "
    "import torchvision.models / transforms and never use them; torchvision is not installed here",
    "yacs: a stub yacs.config.CfgNode (a dict with attribute access) for defaults.py; yacs is not "
    "installed; the values are defaults.py's own",
    "cfg.BACKBONE.VGG16.PRETRAIN_MAT = the harness's .mat (the seeded weights; its only loader "
    "reads MatConvNet files)",
    "Tadt_Tracker(display=False, device='cpu') as its OTB script on a machine without CUDA; "
    "torch.set_num_threads(--threads)",
    "shared random draws: the regressors' start (taf_net.Regress_Net) and the rank net's conv "
    "(taf_net.Rank_Net), randn / (sqrt(C (kh-1)/2 (kw-1)/2) 1e8) from torch's global stream, are "
    "overwritten after construction by jaxtrack's draws of the same distribution "
    "(tadt.official_init_weights, keys tadt.official_keys(driver's sequence key)); torch's stream "
    "cannot be reproduced in JAX",
    "observation only (wrappers that record and return what they wrap): "
    "feature_utils_v2.get_subwindow, tadt_tracker.get_subwindow_feature, taf.train_reg, "
    "taf_rank.rank_selection, rank_loss.RankLoss.backward, siamese.SiameseNet.forward, "
    "tadt_tracker.resize_tensor",
]

# jaxtrack's official options (the "official" variant of jaxtrack/configs/tadt.py, on VGG-16)
OFFICIAL = {"geometry": "official", "regression": "official", "ranking": "official",
            "balance_channels": 49}
# jaxtrack's own computation (--variant project, the default before the official one)
PROJECT = {"geometry": "project", "regression": "project", "ranking": "project"}
CONFIGS = {   # jaxtrack settings compared end to end (all: backbone vgg16, x - 128 input)
    "project": PROJECT,
    "balance_channels=49": dict(PROJECT, balance_channels=49),
    "+ geometry=official": dict(PROJECT, geometry="official", balance_channels=49),
    "+ regression=official": dict(PROJECT, geometry="official", regression="official", balance_channels=49),
    "official (+ ranking=official)": OFFICIAL,
}


# --------------------------------------------------------------------------- the child

_CFGNODE = '''
class CfgNode(dict):
    """Stub of yacs.config.CfgNode: a dict with attribute access."""
    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k)

    def __setattr__(self, k, v):
        self[k] = v
'''


def write_stubs(folder: str) -> None:
    """The torchvision and yacs stubs (see :data:`SHIMS`)."""
    os.makedirs(os.path.join(folder, "torchvision"), exist_ok=True)
    os.makedirs(os.path.join(folder, "yacs"), exist_ok=True)
    with open(os.path.join(folder, "torchvision", "__init__.py"), "w") as f:
        f.write("models = None\ntransforms = None\n")
    with open(os.path.join(folder, "yacs", "__init__.py"), "w") as f:
        f.write("")
    with open(os.path.join(folder, "yacs", "config.py"), "w") as f:
        f.write(_CFGNODE)


def worker(job_path: str) -> None:
    """Runs under PYTHONPATH=<stubs>:<reference>: the reference's side of every comparison."""
    with open(job_path) as f:
        job = json.load(f)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import cv2
    import torch
    torch.set_num_threads(int(job["threads"]))
    arrays = np.load(job["weights_npz"])
    torch.save({k: torch.from_numpy(arrays[k]) for k in arrays.files}, job["pth"])

    import defaults
    import feature_utils_v2
    import rank_loss
    import siamese
    import taf
    import taf_rank
    import tadt_tracker
    from backbone_v2 import build_vgg16

    cfg = defaults._C
    cfg.BACKBONE.VGG16.PRETRAIN_MAT = job["mat"]                 # shim: the seeded weights
    cap, flags, draws, reg_count = {}, {"record": False}, {}, [0]

    def rec(name, value):
        if flags["record"]:
            cap[name] = value.detach().cpu().numpy().copy() if torch.is_tensor(value) else np.array(value)

    o_get_subwindow = feature_utils_v2.get_subwindow

    def get_subwindow(location, image, input_sz, visualize=True):
        out = o_get_subwindow(location, image, input_sz, visualize)
        rec("crop", out + 128)                                   # [3, S, S] the resized window
        return out
    feature_utils_v2.get_subwindow = get_subwindow

    o_gsf = tadt_tracker.get_subwindow_feature

    def get_subwindow_feature(model, image, location, input_sz, layer_name=None, visualize=True):
        out = o_gsf(model, image, location, input_sz, layer_name, visualize)
        rec("feat_shallow", out[0][0])
        rec("feat_deep", out[1][0])
        return out
    tadt_tracker.get_subwindow_feature = get_subwindow_feature

    o_train_reg = taf.train_reg

    def train_reg(model, optim, input, objective, gauss_label, device, epochs=100):
        i = reg_count[0]
        reg_count[0] += 1
        if f"reg_w0_{i}" in draws:                               # shim: shared draws
            model.conv.weight.data.copy_(torch.from_numpy(draws[f"reg_w0_{i}"]))
        o_train_reg(model, optim, input, objective, gauss_label, device, epochs)
        rec(f"reg_w_{i}", model.conv.weight.data)
        rec(f"reg_b_{i}", model.conv.bias.data)
    taf.train_reg = train_reg

    o_rank_selection = taf_rank.rank_selection

    def rank_selection(feature, filter_size, model, loss, device):
        if "rank_w" in draws:                                    # shim: shared draws
            model.conv.weight.data.copy_(torch.from_numpy(draws["rank_w"]))
        out = o_rank_selection(feature, filter_size, model, loss, device)
        rec("rank_grad_sum", feature.grad.sum(dim=(0, 2, 3)))
        rec("rank_mask", out)
        return out
    taf_rank.rank_selection = rank_selection

    o_backward = rank_loss.RankLoss.backward

    def backward(self, grad_output):
        out = o_backward(self, grad_output)
        rec("rank_pred", self.input)
        rec("rank_dpred", out)
        return out
    rank_loss.RankLoss.backward = backward

    o_forward = siamese.SiameseNet.forward

    def forward(self, srch_window, exemplar):
        out = o_forward(self, srch_window, exemplar)
        rec("resp", out[:, 0])
        return out
    siamese.SiameseNet.forward = forward

    o_resize = tadt_tracker.resize_tensor

    def resize_tensor(input_tensor, size, mode="bilinear", align_corners=False):
        out = o_resize(input_tensor, size, mode=mode, align_corners=align_corners)
        if mode == "bicubic":
            rec("resp_up", out[:, 0])
        return out
    tadt_tracker.resize_tensor = resize_tensor

    model = build_vgg16(cfg)
    result = {"torch": torch.__version__, "sequences": {}}
    out_arrays = {"conv1_1": model.features[0].weight.detach().numpy().copy()}
    for name, seq in job["sequences"].items():
        draws.clear()
        draws.update({k: np.asarray(v, np.float32) for k, v in np.load(seq["draws"]).items()})
        reg_count[0] = 0
        tracker = tadt_tracker.Tadt_Tracker(cfg, model=model, device="cpu", display=False)
        record = set(seq.get("record", []))
        times, states = [], []
        for i, path in enumerate(seq["img_files"]):
            cap.clear()
            flags["record"] = i in record
            if i:
                states.append({"target_location": np.asarray(tracker.target_location, np.float64).tolist(),
                               "window": np.asarray(tracker.srch_window_location, np.float64).tolist()})
            t0 = time.perf_counter()
            if i == 0:
                tracker.initialize_tadt(path, np.asarray(seq["box"], np.float64))
                cap.update(feature_weights=np.stack([w.numpy() for w in tracker.feature_weights]),
                           balance_weights=tracker.balance_weights.cpu().numpy(),
                           filter_sizes=np.stack(tracker.filter_sizes))
            else:
                tracker.tracking(path, i)
            times.append(time.perf_counter() - t0)
            if i in record:
                out_arrays.update({f"{name}/f{i}/{k}": np.asarray(v) for k, v in cap.items()})
        result["sequences"][name] = {
            "boxes": [np.asarray(b, np.float64).tolist() for b in tracker.results],
            "times": times, "toc_s": tracker.toc / cv2.getTickFrequency(), "states": states,
            "rescale": float(tracker.rescale)}
    np.savez(job["arrays_out"], **out_arrays)
    with open(job["json_out"], "w") as f:
        json.dump(result, f)


def run_reference(reference: str, job: dict, workdir: str) -> tuple[dict, dict]:
    """Run :func:`worker` in a child whose PYTHONPATH is the stubs, then the reference."""
    stubs = os.path.join(workdir, "stubs")
    write_stubs(stubs)
    return run_worker(__file__, job, workdir, [stubs, reference], cwd=workdir, MPLBACKEND="Agg")


# --------------------------------------------------------------------------- jaxtrack's side

def make(params, **options):
    """jaxtrack's TADT on VGG-16 with the reference's input (``x - 128``) and ``options``."""
    import jaxtrack
    return jaxtrack.make_tracker("tadt", backbone="vgg16", params=params, vgg_normalization="matconvnet",
                                 **options)


def official_draws(config, frame, box, name: str) -> dict:
    """The reference's random starts as jaxtrack draws them for ``name`` (torch layout
    [1, C, kh, kw]): the shallow and deep regressors' (``reg_w0_0``, ``reg_w0_1``) and the
    rank net's (``rank_w``), from ``tadt.official_keys(driver.sequence_key(0, name))``."""
    import jax.numpy as jnp

    from jaxtrack.frames import sequence_key
    from jaxtrack.trackers import tadt
    _, _, target_size, x_side, _ = tadt._official_init_geometry(config, frame, jnp.asarray(box, jnp.float32))
    hh, hw = (int(v) for v in tadt.exemplar_halves(config, target_size, x_side))
    keys = tadt.official_keys(sequence_key(0, name))
    c = (config.map_size - 1) // 2
    out = {}
    for label, key in (("reg_w0_0", "reg_shallow"), ("reg_w0_1", "reg_deep"), ("rank_w", "rank")):
        w = np.asarray(tadt.official_init_weights(keys[key], config, 512, hh, hw))
        out[label] = np.ascontiguousarray(w[c - hh - 1:c + hh + 2, c - hw - 1:c + hw + 2].transpose(2, 0, 1)[None])
    return out


def init_parts(tracker, frame, box, key, feats=None) -> dict:
    """jaxtrack's init, step by step (the calls ``tadt.init`` makes): the crop, the features,
    the importances and the selection; ``feats``: (shallow, deep) [F, F, C] to use instead."""
    import jax.numpy as jnp

    from jaxtrack import ops
    from jaxtrack.trackers import tadt
    cfg, params = tracker.config, tracker.params
    box = jnp.asarray(box, jnp.float32)
    if cfg.geometry == "official":
        rescale, center, target_size, x_side, crop_center = tadt._official_init_geometry(cfg, frame, box)
        crop = tadt.official_crop(cfg, frame, rescale, crop_center, x_side)
    else:
        center, target_size = box[:2] + box[2:] / 2, box[2:]
        x_side = tadt._initial_side(cfg, target_size)
        crop = ops.crop_patch(frame.image, frame.size, center, x_side, cfg.search_px,
                              ops.valid_mean_color(frame.image, frame.size))
    if feats is None:
        xs, xd = (t[0] for t in tadt.extract(cfg, params, crop[None]))
    else:
        xs, xd = (jnp.asarray(f) for f in feats)
    hh, hw = tadt.exemplar_halves(cfg, target_size, x_side)
    idx_s, w_s, idx_d, w_d, info = tadt.select_channels(cfg, xs, xd, hh, hw, key)
    sel = np.zeros((2, 512), np.float32)
    sel[0, np.asarray(idx_s)[np.asarray(w_s) > 0]] = 1
    sel[1, np.asarray(idx_d)[np.asarray(w_d) > 0]] = 1
    return {"crop": np.asarray(crop), "xs": np.asarray(xs), "xd": np.asarray(xd), "half": (int(hh), int(hw)),
            "reg_s": np.asarray(info["reg_shallow"]), "reg_d": np.asarray(info["reg_deep"]),
            "rank_s": np.asarray(info["rank_shallow"]), "selected": sel,
            "balance": float(np.max(np.asarray(w_s)))}


def state_from_reference(config, feats0, ref_sel, ref_balance, half, ref_state=None, rescale=1.0):
    """A jaxtrack TADT state holding the reference's selection and exemplar (its frame-0
    features ``feats0``), and, with ``ref_state``, its target and window before an update."""
    import jax.numpy as jnp

    from jaxtrack.trackers import tadt
    f = config.map_size
    xs, xd = (jnp.asarray(x) for x in feats0)
    n_d = min(512, max(config.n_deep, config.min_total))

    def padded(mask, n):
        idx = np.nonzero(mask > 0)[0]
        assert len(idx) <= n, (len(idx), n)
        return (jnp.asarray(np.pad(idx, (0, n - len(idx))), jnp.int32),
                jnp.asarray(np.arange(n) < len(idx), jnp.float32))

    idx_s, w_s = padded(ref_sel[0], config.n_shallow)
    idx_d, w_d = padded(ref_sel[1], n_d)
    w_s = w_s * ref_balance
    hh, hw = half
    template = tadt.selected_features(xs, xd, idx_s, w_s, idx_d, w_d) * tadt.box_mask(f, hh, hw)[..., None]
    valid = tadt.box_mask(f, (f - 1) // 2 - hh, (f - 1) // 2 - hw)
    center = target_size = crop_center = jnp.zeros(2, jnp.float32)
    x_side = jnp.float32(config.search_px)
    if ref_state is not None:
        tl = np.asarray(ref_state["target_location"], np.float64)
        win = np.asarray(ref_state["window"], np.float64)
        center = jnp.asarray(tl[:2] + tl[2:] / 2, jnp.float32)
        target_size = jnp.asarray(tl[2:], jnp.float32)
        x_side = jnp.float32(win[2])
        crop_center = jnp.asarray(win[:2] + win[2:] / 2, jnp.float32)
    return tadt.TADTState(center, target_size, x_side, jnp.zeros(3, jnp.float32), template, valid, idx_s, idx_d,
                          w_s, w_d, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32), crop_center,
                          jnp.float32(rescale))


def step_parts(config, params, state, frame, feats=None) -> dict:
    """jaxtrack's official-geometry update, step by step (``tadt._official_track_step``'s
    calls): the crop, the features, the responses, the upsampled maps, the scale and peak."""
    import jax.numpy as jnp

    from jaxtrack.trackers import tadt
    crop = tadt.official_crop(config, frame, state.rescale, state.crop_center, state.x_side)
    if feats is None:
        xs, xd = (t[0] for t in tadt.extract(config, params, crop[None]))
    else:
        xs, xd = (jnp.asarray(f) for f in feats)
    sel = tadt.selected_features(xs, xd, state.idx_shallow, state.w_shallow, state.idx_deep, state.w_deep)
    resp, _ = tadt.response_maps(config, state, sel)
    up, inside = tadt.official_upsample(config, resp, state.x_side)
    n = int(state.x_side)
    total = up + config.window_weight * tadt.official_hann(config, state.x_side)
    total = jnp.where(inside, total, -jnp.inf)
    best = int(jnp.argmax(jnp.max(total, axis=(1, 2)) * jnp.asarray(config.scale_weights, jnp.float32)))
    loc = np.unravel_index(int(jnp.argmax(total[best])), total.shape[1:])
    return {"crop": np.asarray(crop), "xs": np.asarray(xs), "xd": np.asarray(xd), "resp": np.asarray(resp),
            "resp_up": np.asarray(up[:, :n, :n]), "scale": best, "loc": np.asarray(loc)}


def hwc(x):
    """[C, H, W] -> [H, W, C]."""
    return np.moveaxis(np.asarray(x), 0, -1)


def compare_components(params, seq, ref: dict, arrays: dict, key, n_frames: int) -> dict:
    """Rows: component -> {mode: value}; modes "project", "official options" and "reference
    inputs" (jaxtrack's official computation on the reference's features and selection)."""
    import jax.numpy as jnp

    from jaxtrack.frames import pad_frame
    name = seq.name
    r0 = lambda k: arrays[f"{name}/f0/{k}"]            # noqa: E731
    frame0 = pad_frame(seq.frame(0))
    box0 = seq.gt[0]
    ref_feats0 = (hwc(r0("feat_shallow")), hwc(r0("feat_deep")))
    ref_sel, ref_bal = r0("feature_weights"), r0("balance_weights")
    rows: dict = {}

    def put(row, mode, value, how=max):
        rows.setdefault(row, {})
        rows[row][mode] = value if mode not in rows[row] else how(rows[row][mode], value)

    def agree(a, b):
        return float(np.mean(np.sign(a) == np.sign(b)))

    def sel_diff(a, b):
        return int(np.sum((a > 0) != (b > 0)))

    parts = {"project": init_parts(make(params, **PROJECT), frame0, box0, key),
             "official options": init_parts(make(params, **OFFICIAL), frame0, box0, key),
             "reference inputs": init_parts(make(params, **OFFICIAL), frame0, box0, key, feats=ref_feats0)}
    for mode, p in parts.items():
        if mode != "reference inputs":
            put("search window 180x180x3, frame 0 (grey levels)", mode,
                float(np.max(np.abs(p["crop"] - hwc(r0("crop"))))))
            put("conv4_1 features 45x45x512, frame 0", mode, rel(p["xs"], ref_feats0[0]))
            put("conv4_3 features 45x45x512, frame 0", mode, rel(p["xd"], ref_feats0[1]))
        put("exemplar half sizes (h, w) in cells", mode, f"{p['half']} / ({(r0('filter_sizes')[0][2] - 1) // 2}, "
                                                          f"{(r0('filter_sizes')[0][3] - 1) // 2})")
        for tap, i in (("conv4_1", 0), ("conv4_3", 1)):
            ref_imp = r0(f"reg_w_{i}").sum(axis=(0, 2, 3))
            ours = p["reg_s" if i == 0 else "reg_d"]
            if mode != "project":
                put(f"regression importance {tap} (rel.)", mode, rel(ours, ref_imp))
            put(f"regression importance {tap}: same sign (share)", mode, agree(ours, ref_imp))
        ref_rank = r0("rank_grad_sum")
        if mode != "project":
            put("ranking importance conv4_1 (rel.)", mode, rel(p["rank_s"], ref_rank))
        put("ranking importance conv4_1: same sign (share)", mode, agree(p["rank_s"], ref_rank))
        put("selected conv4_1 channels (ours / reference)", mode,
            f"{int(p['selected'][0].sum())} / {int(ref_sel[0].sum())}")
        put("selected conv4_3 channels (ours / reference)", mode,
            f"{int(p['selected'][1].sum())} / {int(ref_sel[1].sum())}")
        put("channels selected by one side only", mode,
            sel_diff(p["selected"][0], ref_sel[0]) + sel_diff(p["selected"][1], ref_sel[1]))
        put("balance weight (rel.)", mode, abs(p["balance"] - float(ref_bal[0])) / abs(float(ref_bal[0])))

    # updates: the reference's state before each; its selection (so the maps compare)
    off = make(params, **OFFICIAL)
    cfg = off.config
    states = ref["sequences"][name]["states"]
    rescale = ref["sequences"][name]["rescale"]
    half = ((r0("filter_sizes")[0][2] - 1) // 2, (r0("filter_sizes")[0][3] - 1) // 2)
    same = {"official options": [0, 0], "reference inputs": [0, 0]}
    for k in range(1, n_frames):
        rk = lambda n: arrays[f"{name}/f{k}/{n}"]      # noqa: E731
        frame = pad_frame(seq.frame(k))
        for mode in same:
            st = state_from_reference(cfg, ref_feats0, ref_sel, float(ref_bal[0]), half, states[k - 1], rescale)
            feats = (hwc(rk("feat_shallow")), hwc(rk("feat_deep"))) if mode == "reference inputs" else None
            p = step_parts(cfg, off.params, st, frame, feats)
            if mode == "official options":
                put("search window, updates (grey levels)", mode, float(np.max(np.abs(p["crop"] - hwc(rk("crop"))))))
                put("conv4_1 features, updates", mode, rel(p["xs"], hwc(rk("feat_shallow"))))
                put("conv4_3 features, updates", mode, rel(p["xd"], hwc(rk("feat_deep"))))
            put("responses 3x45x45 (reference's selection)", mode, rel(p["resp"], rk("resp")))
            put("upsampled to the window (bicubic, align_corners)", mode, rel(p["resp_up"], rk("resp_up")))
            ref_total = rk("resp_up") + _hann(rk("resp_up").shape[-1])
            ref_scale = int(np.argmax(ref_total.reshape(3, -1).max(1) * np.asarray(cfg.scale_weights)))
            ref_loc = np.unravel_index(int(np.argmax(ref_total[ref_scale])), ref_total.shape[1:])
            same[mode][0] += int(p["scale"] == ref_scale)
            same[mode][1] += int(p["scale"] == ref_scale and tuple(p["loc"]) == tuple(ref_loc))
    for mode, (s, l) in same.items():
        put("same scale chosen (frames)", mode, f"{s}/{n_frames - 1}")
        put("same peak (frames)", mode, f"{l}/{n_frames - 1}")
    del jnp
    return rows


def track_reference_channels(params, seq, arrays) -> np.ndarray:
    """jaxtrack's boxes with the official options, its init state given the reference's
    selected channels and balance weight (its template from the reference's frame-0 features)."""
    import jax
    import jax.numpy as jnp

    from jaxtrack.frames import pad_frame, sequence_key
    t = make(params, **OFFICIAL)
    r0 = lambda k: arrays[f"{seq.name}/f0/{k}"]       # noqa: E731
    init, step = jax.jit(t.init), jax.jit(t.track_step)
    state = init(t.params, pad_frame(seq.frame(0)), jnp.asarray(seq.gt[0], jnp.float32), sequence_key(0, seq.name))
    fs = r0("filter_sizes")[0]
    st = state_from_reference(t.config, (hwc(r0("feat_shallow")), hwc(r0("feat_deep"))), r0("feature_weights"),
                              float(r0("balance_weights")[0]), ((fs[2] - 1) // 2, (fs[3] - 1) // 2))
    state = state._replace(template=st.template, valid=st.valid, idx_shallow=st.idx_shallow,
                           idx_deep=st.idx_deep, w_shallow=st.w_shallow, w_deep=st.w_deep)
    boxes = [np.asarray(seq.gt[0], np.float64)]
    for i in range(1, len(seq)):
        state, out = step(t.params, state, pad_frame(seq.frame(i)))
        boxes.append(np.asarray(out.box, np.float64))
    return np.stack(boxes)


def peak_gap(params, seq, ref, arrays, k) -> dict:
    """At update ``k``, from the reference's state and with its channels: jaxtrack's peak, the
    reference's (read back from its next state) and how far below jaxtrack's maximum jaxtrack's
    map is there (relative): a float32 tie when about 1e-7."""
    from jaxtrack.frames import pad_frame
    from jaxtrack.trackers import tadt
    t = make(params, **OFFICIAL)
    r0 = lambda key: arrays[f"{seq.name}/f0/{key}"]   # noqa: E731
    fs = r0("filter_sizes")[0]
    states, r = ref["sequences"][seq.name]["states"], ref["sequences"][seq.name]["rescale"]
    st = state_from_reference(t.config, (hwc(r0("feat_shallow")), hwc(r0("feat_deep"))), r0("feature_weights"),
                              float(r0("balance_weights")[0]), ((fs[2] - 1) // 2, (fs[3] - 1) // 2), states[k - 1], r)
    p = step_parts(t.config, t.params, st, pad_frame(seq.frame(k)))
    total = p["resp_up"][p["scale"]] + _hann(p["resp_up"].shape[-1])
    before, after = np.asarray(states[k - 1]["target_location"]), np.asarray(states[k]["target_location"])
    scale = np.asarray(tadt.scales(t.config), np.float64)
    sid = int(np.argmin(np.abs(scale - after[2] / before[2])))
    xy = (after[:2] + after[2:] / 2 - before[:2] - before[2:] / 2) / scale[sid] + (total.shape[-1] / 2 - 1)
    col, row = (int(round(v)) for v in xy)
    return {"frame": k, "window": int(total.shape[-1]), "ours_row_col": [int(v) for v in p["loc"]],
            "reference_row_col": [row, col], "same_scale": sid == p["scale"],
            "ours_below_max_at_reference_peak": float((total.max() - total[row, col]) / total.max())}


def _hann(n):
    h = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / (n - 1))
    return np.float32(h[:, None] * h[None, :])


def reference_boxes(boxes) -> np.ndarray:
    """The reference's results in jaxtrack's 0-based convention: frame 0 is the 1-based box
    it was given, later frames are 0-based (``tracking_bbox: 0-index``)."""
    out = np.asarray(boxes, np.float64).copy()
    out[0, :2] -= 1
    return out


# --------------------------------------------------------------------------- main

def main(argv=None):
    ap = tracking_parser(__doc__, reference_help="TADT-python checkout (tested at b0b35c1)",
                         json_default="tadt_reference.json", seed=20241, configs=CONFIGS, frames=40,
                         synthetic_frames=20, component_frames=4, fixture_frames=8,
                         workdir_help="keep the weights and frames here (default: a temp dir)")
    ap.add_argument("--speed-only", action="store_true",
                    help="only time both on the real sequence (no recording, no synthetic sequence)")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the reference's outputs of an earlier run with the same --workdir and arguments")
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    check_reference(ap, args.reference, "tadt_tracker.py", "TADT-python")

    import cv2
    import scipy.io

    from jaxtrack import boxes as bx
    from jaxtrack.data import load_sequence
    from jaxtrack.data.synthetic import make_sequence
    from jaxtrack.driver import JitTracker, run_sequence
    from jaxtrack.frames import pad_frame, sequence_key
    from jaxtrack.models import seeded
    from jaxtrack.models.vgg16 import load_vgg16_variables
    from jaxtrack.trackers import tadt

    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="tadt_ref_"))
    os.makedirs(workdir, exist_ok=True)
    spec = seeded.vgg16_spec(args.seed)
    weights = seeded.vgg16_weights(spec)
    np.savez(os.path.join(workdir, "weights.npz"), **weights)
    mat = os.path.join(workdir, f"vgg16_seed{args.seed}.mat")
    scipy.io.savemat(mat, seeded.vgg16_matconvnet(weights, spec))
    pth = os.path.join(workdir, f"vgg16_seed{args.seed}.pth")

    seq = first_frames(load_sequence(args.sequence, "otb"), args.frames)
    if args.fixtures and args.fixture_frames > args.synthetic_frames:
        ap.error("--fixture-frames: at most --synthetic-frames (the fixtures are the first frames of that run)")
    syn = make_sequence(args.synthetic_seed, num_frames=args.synthetic_frames)
    syn_dir = os.path.join(workdir, syn.name)
    os.makedirs(syn_dir, exist_ok=True)
    syn_files = []
    for i in range(len(syn)):
        path = os.path.join(syn_dir, f"{i + 1:04d}.png")
        cv2.imwrite(path, np.ascontiguousarray(syn.frame(i)[..., ::-1]))       # lossless, RGB -> BGR
        syn_files.append(path)
    off_cfg = tadt.make_config(backbone="vgg16", vgg_normalization="matconvnet", **OFFICIAL)
    sequences, draws_meta = {}, {}
    for s, files in ((seq, [os.path.abspath(p) for p in seq.frame_paths]), (syn, syn_files)):
        d = official_draws(off_cfg, pad_frame(s.frame(0)), s.gt[0], s.name)
        np.savez(os.path.join(workdir, f"draws_{s.name}.npz"), **d)
        draws_meta[s.name] = {k: list(v.shape) for k, v in d.items()}
        sequences[s.name] = {"img_files": files, "box": bx.to_dataset(np.asarray(s.gt[0]), 1).tolist(),
                             "draws": os.path.join(workdir, f"draws_{s.name}.npz"),
                             "record": list(range(args.component_frames)) if s is seq else [0, 1, 2]}
    job = {"weights_npz": os.path.join(workdir, "weights.npz"), "mat": mat, "pth": pth, "threads": args.threads,
           "sequences": sequences}
    if args.speed_only:
        return speed_only(args, job, sequences[seq.name], seq, pth, workdir)
    t0 = time.time()
    if args.reuse:
        with open(os.path.join(workdir, "ref.json")) as f:
            ref = json.load(f)
        arrays = dict(np.load(os.path.join(workdir, "ref_arrays.npz")))
        print(f"reference outputs reused from {workdir}")
    else:
        ref, arrays = run_reference(args.reference, job, workdir)
        print(f"reference ran in {time.time() - t0:.1f} s (torch {ref['torch']})")

    # both loaders: jaxtrack's variables (.pth and .mat) equal the drawn arrays; so does the reference's
    params = {"backbone": load_vgg16_variables(pth)[0]}
    via_mat = load_vgg16_variables(mat)[0]
    for name, _, _, idx in seeded.VGG16_TADT_LAYERS:
        w = weights[f"features.{idx}.weight"].transpose(2, 3, 1, 0)
        assert np.array_equal(np.asarray(params["backbone"]["params"][name]["kernel"]), w), name
        assert np.array_equal(np.asarray(via_mat["params"][name]["kernel"]), w), name
        assert np.array_equal(np.asarray(params["backbone"]["params"][name]["bias"]), weights[f"features.{idx}.bias"])
    assert np.array_equal(arrays["conv1_1"], weights["features.0.weight"])

    report = {"reference": {"repository": REPOSITORY, "commit": REFERENCE_COMMIT, "torch": ref["torch"]},
              "weights": dict(spec, sha256=seeded.digest(weights)), "shims": SHIMS,
              "sequence": seq.name, "synthetic": syn.name, "synthetic_seed": args.synthetic_seed,
              "frames": len(seq), "synthetic_frames": len(syn),
              "keys": {n: "tadt.official_keys(driver.sequence_key(0, %r))" % n for n in sequences},
              "draw_shapes": draws_meta, "official_options": OFFICIAL}
    report["components"] = compare_components(params, seq, ref, arrays, sequence_key(0, seq.name),
                                              args.component_frames)

    e2e, speed, init_s = {}, {}, {}
    for label in args.configs:
        jt = JitTracker(make(params, **CONFIGS[label]))
        e2e[label] = {}
        for s in (seq, syn):
            if s is seq:
                run_sequence(jt, first_frames(seq, 3))                 # compiles init and track_step
            res = run_sequence(jt, s)
            e2e[label][s.name] = agreement(res.boxes, reference_boxes(ref["sequences"][s.name]["boxes"]))
            init_s.setdefault(s.name, {})[label] = float(res.times[0])
            if s is seq:
                speed[label] = fps(res.times)
    # the official options holding the reference's own selected channels (its conv4_1 ranking
    # signs are float32 noise in part; docs/fidelity_tadt.md)
    label = "official, the reference's selected channels"
    e2e[label] = {}
    for s in (seq, syn):
        ref_boxes = reference_boxes(ref["sequences"][s.name]["boxes"])
        e2e[label][s.name] = agreement(track_reference_channels(params, s, arrays), ref_boxes)
        first = e2e[label][s.name]["first_frame_over_0.5px"]
        if first is not None:
            e2e[label][s.name]["peak_there"] = peak_gap(params, s, ref, arrays, first)
    rs = ref["sequences"][seq.name]
    speed["TADT-python (toc: crop, network, matching)"] = (len(seq) - 1) / rs["toc_s"]
    speed["TADT-python (tracking(): + decode, frame resize)"] = fps(rs["times"])
    report["end_to_end"] = e2e
    report["speed_fps"] = speed
    for name in init_s:
        init_s[name]["TADT-python"] = ref["sequences"][name]["times"][0]
    report["init_seconds"] = init_s

    print_report(report)
    write_report(args.json, report)
    if args.fixtures:
        write_fixtures(args.fixtures, spec, weights, syn, seq, ref, arrays, args)
    return report


def speed_only(args, job, real: dict, seq, pth: str, workdir: str) -> dict:
    """Update frames per second and first-frame seconds of the reference (untraced) and of
    jaxtrack's project and official options on the real sequence, one after the other."""
    from jaxtrack.driver import JitTracker, run_sequence
    from jaxtrack.models.vgg16 import load_vgg16_variables
    ref, _ = run_reference(args.reference, dict(job, sequences={seq.name: dict(real, record=[])}), workdir)
    rs = ref["sequences"][seq.name]
    # median: the steady state (torch's first updates are slower: one-time kernel set-up)
    out = {"TADT-python": {"update_fps": (len(seq) - 1) / rs["toc_s"], "first_frame_s": rs["times"][0],
                           "median_update_fps": median_fps(rs["times"])}}
    params = {"backbone": load_vgg16_variables(pth)[0]}
    for label in ("project", "official (+ ranking=official)"):
        jt = JitTracker(make(params, **CONFIGS[label]))
        run_sequence(jt, first_frames(seq, 3))                          # compiles init and track_step
        res = run_sequence(jt, seq)
        out[f"jaxtrack {label}"] = {"update_fps": fps(res.times), "first_frame_s": float(res.times[0]),
                                    "median_update_fps": median_fps(res.times)}
    print(f"\nSpeed on {seq.name}, {len(seq)} frames, {args.threads} threads:")
    for label, v in out.items():
        print(f"  {label}: {v['update_fps']:.2f} FPS (median frame {v['median_update_fps']:.2f} FPS), "
              f"first frame {v['first_frame_s']:.1f} s")
    with open(args.json, "w") as f:
        json.dump({"speed": out, "frames": len(seq), "threads": args.threads}, f, indent=1)
    return out


def print_report(report):
    modes = ("project", "official options", "reference inputs")
    print(f"\nComponents ({report['sequence']}): max |jaxtrack - reference| / max |reference| unless named")
    print("| component | `--variant project` | official options (default) | fed the reference's inputs |")
    print("|---|---:|---:|---:|")
    for row, vals in report["components"].items():
        cells = [vals.get(m, "") for m in modes]
        print(f"| {row} | " + " | ".join(c if isinstance(c, str) else (f"{c}" if isinstance(c, int) else f"{c:.3g}")
                                         for c in cells) + " |")
    print("\nEnd to end: per-frame box agreement with TADT-python")
    print("| jaxtrack setting | sequence | frames | max px | mean px | frames > 1 px | first > 1 px | mean IoU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, per in report["end_to_end"].items():
        for name, a in per.items():
            first = a["first_frame_over_1px"] if a["first_frame_over_1px"] is not None else "-"
            print(f"| {label} | {name} | {a['frames']} | {a['max_px']:.3g} | {a['mean_px']:.3g} | "
                  f"{a['frames_over_1px']} | {first} | {a['mean_iou']:.4f} |")
            if "peak_there" in a:
                print(f"|  | ({name}: at the first frame over 0.5 px, {a['peak_there']}) | | | | | | |")
    print(f"\nSpeed on {report['sequence']} (CPU, frames per second of the update):")
    for label, v in report["speed_fps"].items():
        print(f"  {label}: {v:.2f} FPS")
    print("\nFirst frame (channel selection), seconds:")
    for name, per in report["init_seconds"].items():
        print(f"  {name}: " + ", ".join(f"{label} {v:.1f}" for label, v in per.items()))


def write_fixtures(folder, spec, weights, syn, seq, ref, arrays, args):
    """The test's fixtures, numbers only: the weights' spec and digest; the reference's boxes on
    the first ``--fixture-frames`` synthetic frames and on the real sequence, its selected
    channels and balance weight on both, and its responses (3x45x45) of the first two
    synthetic updates."""
    from jaxtrack.models import seeded
    os.makedirs(folder, exist_ok=True)
    name, n = syn.name, args.fixture_frames        # the tracker is causal: the run's first n frames
    r = ref["sequences"][name]

    def selection(seq_name):
        sel = arrays[f"{seq_name}/f0/feature_weights"]
        return {"selected_conv4_1": np.nonzero(sel[0])[0].tolist(), "selected_conv4_3": np.nonzero(sel[1])[0].tolist(),
                "balance_weight": float(arrays[f"{seq_name}/f0/balance_weights"][0])}

    meta = {"reference": {"repository": REPOSITORY, "commit": REFERENCE_COMMIT, "torch": ref["torch"]},
            "made_by": "python experiments/reference/tadt_python.py --reference PATH --fixtures "
                       "tests/fixtures/reference/tadt (docs/fidelity_tadt.md)",
            "jaxtrack_options": dict(OFFICIAL, backbone="vgg16", vgg_normalization="matconvnet"),
            "weights": dict(spec, sha256=seeded.digest(weights)),
            "synthetic": {"make_sequence_seed": args.synthetic_seed, "make_sequence_num_frames": len(syn),
                          "sequence_key_name": syn.name, "frames": args.fixture_frames,
                          "boxes_0based": reference_boxes(r["boxes"])[:n].tolist(), **selection(name)},
            "real": {"otb_sequence": seq.name, "frames": len(seq),
                     "boxes_0based": reference_boxes(ref["sequences"][seq.name]["boxes"]).tolist(),
                     **selection(seq.name)}}
    with open(os.path.join(folder, "tadt_reference.json"), "w") as f:
        f.write(compact_json(meta) + "\n")
    np.savez_compressed(os.path.join(folder, "responses.npz"),
                        **{f"frame{k}": arrays[f"{name}/f{k}/resp"].astype(np.float32) for k in (1, 2)})
    print(f"wrote fixtures to {folder}")


if __name__ == "__main__":
    run(main)
