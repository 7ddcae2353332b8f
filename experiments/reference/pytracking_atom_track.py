"""pytracking's full ATOM tracker beside jaxtrack's, end to end, on the CPU, same weights and draws.

    python experiments/reference/pytracking_atom_track.py --reference /work/ref/pytracking \\
        --sequence ../shared/data/otb/Crossing --json atom_track_reference.json \\
        [--fixtures tests/fixtures/reference/atom]

``--reference`` is a checkout of https://github.com/visionml/pytracking (tested at 7eb9e74),
imported only in a child process (this file run with ``--worker``) whose PYTHONPATH is that
checkout. The sibling ``pytracking_atom.py`` compares the components (PrRoIPool, IoU-Net,
refinement, Gauss-Newton/CG); this one runs ``ATOM.initialize`` + ``ATOM.track`` with
``parameter/atom/default.py`` and jaxtrack's ``atom`` tracker (``ATOMConfig(backbone="resnet18")``,
the default ``geometry="pytracking"``) on the same frames, with the seeded ResNet-18 + IoU-Net
(``jaxtrack.models.seeded``, ``--seed``), each side reading it with its own loader.

Compared, per sequence (``--sequence``, and ``make_sequence(--synthetic-seed)``):

- the first-frame augmented crops (pytracking's 2x ``sample_patch`` + transforms, the input
  of ``get_feature``) and their labels (``init_label_function``) against jaxtrack's
  (``atom.pytracking_init_crops``, ``pytracking_label``) from the same draws;
- on the first ``--component-frames`` frames: the test crop (``sample_patch`` at the tracker's
  position) against ``atom.sample_patch`` at the same position ("fed"), and the score maps;
- on every frame, "fed": jaxtrack's ``interpolate_scores`` + ``localize_advanced`` on the
  reference's 18x18 ``apply_filter`` map and its target size / scale against the reference's
  interpolated map, flag and translation; "chained": jaxtrack's own flags and scores;
- the trajectories (``jaxtrack_harness.agreement``), and jaxtrack's boxes when its position,
  size and scale are reset to the reference's before every frame ("re-synchronised": each
  step alone, its own classifier and memory), and the frame rates of both (``fps``).

Random draws are shared: jaxtrack draws them from ``--key`` (``atom.init_draws`` and the
per-frame refinement keys of ``track_step``), and the child returns them from pytracking's
calls (shims below). ``--draw-samples`` checks separately that the draws have pytracking's
distributions (two-sample Kolmogorov-Smirnov on each).

Run-time shims: all of ``pytracking_atom.py``'s (CPU, PrRoIPool transcription, stubbed
packages, ``ltr.admin.local``, ``torch.load`` safe globals, ``autograd.grad`` on TensorLists),
and:

- ``torch.rfft`` / ``torch.irfft`` (removed in torch 1.8; ``libs/fourier.py`` calls them):
  ``torch.view_as_real(torch.fft.rfftn(a, dim=last n))`` and
  ``torch.fft.irfftn(torch.view_as_complex(a), s=signal_sizes, dim=last n)``, the same
  transforms (unnormalised forward, 1/N inverse, one-sided).
- Random draws: during ``initialize``, ``torch.rand(2)`` (the random shifts) returns
  jaxtrack's uniforms in order, ``F.dropout2d`` multiplies by jaxtrack's keep mask / (1 - p)
  (what dropout2d computes with its own Bernoulli draw), and ``Tensor.normal_`` on the
  ``[64, 256, 1, 1]`` projection and ``[1, 64, 4, 4]`` filter copies jaxtrack's initial
  values; during ``track``, ``torch.rand(9, 4)`` returns that frame's refinement uniforms.
- Observation only: ``get_feature``, ``apply_filter``, ``localize_target`` and
  ``init_label_function`` are wrapped to copy their inputs / outputs.
- The tracker object is told its features are initialised (``features_initialized``),
  so that ``initialize`` does not reload the network for the second sequence.

``--float64`` runs both trackers in float64, to tell float32 rounding from a difference of
computation (``docs/fidelity_atom.md``, section 5). Shims, this run only: pytracking,
``torch.set_default_dtype(torch.float64)`` (its ``torch.Tensor([...])`` constants and
``zeros``), ``Tensor.float`` returning ``.double()`` (``numpy_to_torch``, ``sample_patch`` and
the masks call ``.float()``), and ``dtype=torch.float32`` arguments of the tensor factories
mapped to float64 (the blur kernel in ``augmentation.py``), and ``cv.warpAffine`` in
``augmentation.py`` given its image as float32 and its result cast back (OpenCV's float64
path interpolates exactly, its float32 path on 1/32-pixel tables, which is what pytracking
runs and jaxtrack reproduces: on float64 input the rotated crops differ by 6e-3); jaxtrack,
``jax_enable_x64``, ``jnp.float32`` aliased to float64 in this process and ``np.float32`` in ``atom`` and ``ops``
(the tracker names float32 for its constants and casts), and the loaded weights cast to
float64 (the seeded values are float32, so both sides hold the same numbers). The random
draws are then float64 on both sides (jaxtrack's, passed to the child as before).
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from jaxtrack_harness import agreement, fps, rel, run, run_worker, tracking_parser, write_report

REFERENCE_COMMIT = "7eb9e74bd3d40e29dbcec444902237da13de247b"
FLAGS = {None: 0, "not_found": 1, "uncertain": 2, "hard_negative": 3}


# --------------------------------------------------------------------------- the child

def fft_shim(torch):
    def rfft(a, signal_ndim, normalized=False, onesided=True):
        assert not normalized and onesided
        return torch.view_as_real(torch.fft.rfftn(a, dim=tuple(range(-signal_ndim, 0))))

    def irfft(a, signal_ndim, normalized=False, onesided=True, signal_sizes=None):
        assert not normalized and onesided
        return torch.fft.irfftn(torch.view_as_complex(a.contiguous()), s=signal_sizes,
                                dim=tuple(range(-signal_ndim, 0)))
    torch.rfft, torch.irfft = rfft, irfft


def float64_child(torch):
    """``--float64``, the child: pytracking in float64 (shims in the module docstring)."""
    torch.set_default_dtype(torch.float64)
    torch.Tensor.float = lambda self, *a, **k: self.double()
    for name in ("arange", "zeros", "ones", "empty", "full", "tensor", "linspace"):
        def factory(*a, _f=getattr(torch, name), **k):
            if k.get("dtype") is torch.float32:
                k["dtype"] = torch.float64
            return _f(*a, **k)
        setattr(torch, name, factory)
    import cv2
    from pytracking.features import augmentation

    class Float32Warp:                      # OpenCV's float32 warpAffine, as pytracking runs it
        def __getattr__(self, name):
            return getattr(cv2, name)

        def warpAffine(self, image, *a, **k):  # noqa: N802
            return cv2.warpAffine(np.asarray(image, np.float32), *a, **k).astype(np.float64)
    augmentation.cv = Float32Warp()


def float64_jaxtrack():
    """``--float64``, this process: jaxtrack's ATOM in float64 (shims in the module docstring).
    Call before any array is made."""
    import types

    import jax
    import jax.numpy as jnp

    from jaxtrack import ops
    from jaxtrack.trackers import atom
    jax.config.update("jax_enable_x64", True)
    jnp.float32 = jnp.float64
    np64 = types.ModuleType("numpy_float64")
    np64.__dict__.update(np.__dict__)
    np64.float32 = np.float64
    atom.np = ops.np = np64


def worker(job_path: str) -> None:
    with open(job_path) as f:
        job = json.load(f)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(int(job["threads"]))
    from pytracking_atom import install_shims, reference_parameters
    install_shims()
    fft_shim(torch)
    if job.get("float64"):
        float64_child(torch)
    params, feat = reference_parameters(torch, job)
    from pytracking.tracker.atom.atom import ATOM

    out, result = {}, {"torch": torch.__version__, "cases": {}}
    for name, case in job["cases"].items():
        frames = np.load(case["frames_npy"], mmap_mode="r")
        draws = np.load(case["draws_npz"])
        trk = ATOM(params)
        trk.features_initialized = True
        rec = {"crops": [], "raw": [], "loc": [], "feat": []}
        get_feature, apply_filter, localize = feat.get_feature, trk.apply_filter, trk.localize_target
        init_label = trk.init_label_function

        def wrapped_get_feature(im):
            rec["crops"].append(im.detach().clone())
            y = get_feature(im)
            rec["feat"].append([t.detach().clone() for t in y])
            return y

        def wrapped_apply_filter(x):
            s = apply_filter(x)
            rec["raw"].append(s[0].detach().clone())
            return s

        def wrapped_localize(scores_raw):
            r = localize(scores_raw)
            rec["loc"].append((r[0].clone(), r[2].detach().clone(), r[3]))
            return r

        opt_boxes = trk.optimize_boxes
        rec["refine"] = {}

        def wrapped_optimize(iou_features, init_boxes):
            b, o = opt_boxes(iou_features, init_boxes)
            rec["refine"][frame["k"]] = (init_boxes.detach().clone().reshape(-1, 4), b.detach().clone().reshape(-1, 4),
                                         o.detach().clone().reshape(-1))
            return b, o
        trk.optimize_boxes = wrapped_optimize
        gen = trk.generate_init_samples

        def wrapped_generate(im):
            x = gen(im)
            rec["init_x"] = x[0].detach().clone()
            return x
        trk.generate_init_samples = wrapped_generate

        def wrapped_label(train_x):
            y = init_label(train_x)
            rec["init_y"] = y[0].detach().clone()
            return y
        feat.get_feature = wrapped_get_feature
        trk.apply_filter, trk.localize_target, trk.init_label_function = wrapped_apply_filter, wrapped_localize, wrapped_label

        real_rand, real_dropout, real_normal = torch.rand, F.dropout2d, torch.Tensor.normal_
        shifts = iter(torch.from_numpy(draws["shift_uniform"]))
        keep = torch.from_numpy(draws["dropout_keep"].astype(np.float32))
        proj = torch.from_numpy(np.ascontiguousarray(draws["proj"].T[:, :, None, None]))
        filt = torch.from_numpy(np.ascontiguousarray(draws["filter"].transpose(2, 0, 1)[None]))
        uniforms = torch.from_numpy(draws["refine_uniform"])
        frame = {"k": 0}

        def rand(*shape, **kw):
            if tuple(shape) == (2,):
                return next(shifts).clone()
            if tuple(shape) == tuple(uniforms.shape[1:]):
                return uniforms[frame["k"]].clone()
            return real_rand(*shape, **kw)

        def dropout2d(x, p=0.5, training=True, inplace=False):
            return x * (keep[:, :, None, None] / (1 - p))

        def normal_(self, mean=0, std=1, *, generator=None):
            for v in (proj, filt):
                if tuple(self.shape) == tuple(v.shape):
                    return self.copy_(v)
            return real_normal(self, mean, std, generator=generator)

        box0 = [float(v) for v in case["box0"]]
        boxes, times, flags, states = [box0], [], [0], []
        torch.rand, F.dropout2d, torch.Tensor.normal_ = rand, dropout2d, normal_
        try:
            t0 = time.perf_counter()
            trk.initialize(np.ascontiguousarray(frames[0]), {"init_bbox": box0})
            times.append(time.perf_counter() - t0)
            init_crops = rec["crops"][0]
            rec["crops"].clear()
            rec["feat"].clear()
            states.append([*trk.pos.tolist(), *trk.target_sz.tolist(), float(trk.target_scale),
                           *trk.pos_iounet.tolist()])
            for k in range(1, len(frames)):
                frame["k"] = k
                img = np.ascontiguousarray(frames[k])
                t0 = time.perf_counter()
                o = trk.track(img)
                times.append(time.perf_counter() - t0)
                boxes.append(o["target_bbox"])
                flags.append(FLAGS[trk.debug_info["flag"]])
                states.append([*trk.pos.tolist(), *trk.target_sz.tolist(), float(trk.target_scale),
                               *trk.pos_iounet.tolist()])
                if k > case["component_frames"]:
                    rec["crops"].pop()
                    rec["loc"][-1] = rec["loc"][-1][:1] + (None,) + rec["loc"][-1][2:]
                rec["feat"].clear()
        finally:
            torch.rand, F.dropout2d, torch.Tensor.normal_ = real_rand, real_dropout, real_normal
            feat.get_feature = get_feature
        p = f"{name}_"
        out[p + "boxes"] = np.asarray(boxes, np.float64)
        out[p + "states"] = np.asarray(states, np.float64)       # pos (y, x), sz (h, w), scale, pos_iounet (y, x)
        out[p + "flags"] = np.asarray(flags, np.int32)
        out[p + "times"] = np.asarray(times)
        out[p + "init_crops"] = init_crops.numpy()
        out[p + "init_feat"] = rec["init_x"].numpy()
        ks = sorted(rec["refine"])
        out[p + "refine_frames"] = np.asarray(ks, np.int32)
        for j, nm in enumerate(("refine_init", "refine_out", "refine_iou")):
            out[p + nm] = np.stack([rec["refine"][k][j].numpy() for k in ks]) if ks else np.zeros((0,))
        out[p + "init_y"] = rec["init_y"][:, 0].numpy()
        out[p + "raw"] = torch.stack(rec["raw"]).numpy().reshape(len(rec["raw"]), *rec["raw"][0].shape[-2:])
        out[p + "translation"] = np.stack([r[0].numpy().reshape(2) for r in rec["loc"]])
        n = case["component_frames"]
        out[p + "crops"] = torch.cat(rec["crops"][:n]).numpy()
        out[p + "scores"] = torch.stack([r[1].reshape(r[1].shape[-2:]) for r in rec["loc"][:n]]).numpy()
        result["cases"][name] = {"frames": len(frames)}
    np.savez(job["arrays_out"], **out)
    with open(job["json_out"], "w") as f:
        json.dump(result, f)


# --------------------------------------------------------------------------- jaxtrack's side

def jax_track(cfg, params, frames_np, box0, key, component_frames):
    """jaxtrack's tracker on the frames: boxes, per-frame times (compiled beforehand), flags,
    the states, its own crops / raw and interpolated score maps on the first frames, and
    every random draw (``init_draws``, and the refinement uniforms of each frame)."""
    import jax
    import jax.numpy as jnp

    from jaxtrack.frames import pad_frame
    from jaxtrack.trackers import atom
    init = jax.jit(lambda p, f, b, k: atom.init(cfg, p, f, b, k))
    step = jax.jit(lambda p, s, f: atom.track_step(cfg, p, s, f))
    probe = jax.jit(lambda p, s, f: atom.classifier_scores(cfg, p, s, f))
    frames = [pad_frame(f) for f in frames_np]
    box0 = jnp.asarray(box0, jnp.float32)
    state0 = init(params, frames[0], box0, key)
    jax.block_until_ready(state0)
    jax.block_until_ready(step(params, state0, frames[1]))          # compile outside the timing
    # timed run
    t0 = time.perf_counter()
    state = jax.block_until_ready(init(params, frames[0], box0, key))
    times = [time.perf_counter() - t0]
    boxes, flags, states, crops, raws, keys = [np.asarray(box0, np.float64)], [0], [], [], [], []
    # pytracking's order: pos (y, x) in index coordinates, size (h, w), scale, pos_iounet (y, x)
    pos_state = lambda s: np.r_[(np.asarray(s.pos) - 0.5)[::-1], np.asarray(s.target_size)[::-1],  # noqa: E731
                                float(s.target_scale), (np.asarray(s.pos_iounet) - 0.5)[::-1]]
    states.append(pos_state(state))
    for k in range(1, len(frames)):
        keys.append(np.asarray(jax.random.split(state.key)[1]))
        if k <= component_frames:
            c, _, _, raw = probe(params, state, frames[k])
            crops.append(np.asarray(c))
            raws.append(np.asarray(raw))
        t0 = time.perf_counter()
        state, o = step(params, state, frames[k])
        jax.block_until_ready(o.box)
        times.append(time.perf_counter() - t0)
        boxes.append(np.asarray(o.box, np.float64))
        flags.append(int(state.flag))
        states.append(pos_state(state))
    uniforms = [np.zeros((cfg.num_init_random_boxes, 4), np.float32)] + \
        [np.asarray(jax.random.uniform(jnp.asarray(k), (cfg.num_init_random_boxes, 4))) for k in keys]
    return {"mod": (state0.mod3, state0.mod4), "boxes": np.stack(boxes), "times": np.asarray(times), "flags": np.asarray(flags), "states": np.stack(states),
            "crops": np.stack(crops) if crops else None, "raw": np.stack(raws) if raws else None,
            "refine_uniform": np.stack(uniforms)}


def jax_resync(cfg, params, frames_np, box0, key, ref_states):
    """jaxtrack's tracker re-synchronised on every frame: before frame ``k`` its position, size,
    scale and ``pos_iounet`` are set to the reference's after frame ``k - 1`` (its classifier,
    memory and draws stay its own). Returns the boxes [N, 4]: each frame's step alone."""
    import jax
    import jax.numpy as jnp

    from jaxtrack.frames import pad_frame
    from jaxtrack.trackers import atom
    init = jax.jit(lambda p, f, b, k: atom.init(cfg, p, f, b, k))
    step = jax.jit(lambda p, s, f: atom.track_step(cfg, p, s, f))
    state = init(params, pad_frame(frames_np[0]), jnp.asarray(box0, jnp.float32), key)
    boxes = [np.asarray(box0, np.float64)]
    for k in range(1, len(frames_np)):
        st = ref_states[k - 1]
        state = state._replace(pos=jnp.asarray(st[[1, 0]] + 0.5, jnp.float32),
                               target_size=jnp.asarray(st[[3, 2]], jnp.float32),
                               target_scale=jnp.asarray(st[4], jnp.float32),
                               pos_iounet=jnp.asarray(st[[6, 5]] + 0.5, jnp.float32))
        state, o = step(params, state, pad_frame(frames_np[k]))
        boxes.append(np.asarray(o.box, np.float64))
    return np.stack(boxes)


def refine_fed(cfg, params, frames, ref, p, mod, k):
    """Frame ``k``'s refinement fed the reference's state and start boxes: jaxtrack's IoU-Net
    features of the crop at the reference's position, each of the 10 starts refined alone
    (``box_refinement_iter`` steps); max |diff| per start against the reference's boxes (px)."""
    import jax
    import jax.numpy as jnp

    from jaxtrack.frames import pad_frame
    from jaxtrack.trackers import atom
    j = int(np.nonzero(ref[p + "refine_frames"] == k)[0][0])
    st = ref[p + "states"][k - 1]
    fr = pad_frame(frames[k])
    crop = atom.sample_patch(fr.image, fr.size, jnp.asarray(st[[1, 0]], jnp.float32), jnp.float32(st[4] * 288), 288)
    f3, f4 = atom.backbone_features(cfg, params["backbone"], crop[None])
    feats = atom.iou_features(params, f3, f4)
    m = (mod[0][None], mod[1][None])
    b = jnp.asarray(ref[p + "refine_init"][j], jnp.float32)
    for _ in range(cfg.box_refinement_iter):
        g = jax.grad(lambda bb: jnp.sum(atom.predict_iou(params, m, feats, bb[None])))(b)
        b = b + cfg.box_refinement_step_length * g * jnp.concatenate([b[:, 2:], b[:, 2:]], 1)
    return np.max(np.abs(np.asarray(b) - ref[p + "refine_out"][j]), axis=1)


def draws_of(cfg, params, key):
    from jaxtrack.trackers import atom
    d = atom.init_draws(cfg, key, atom._classifier_dim(cfg, params))
    return {k: np.asarray(v) for k, v in d.items()}


def compare_sequence(cfg, params, frames, box0, jx, ref, p, draws, n_comp):
    """The rows of one sequence (see the module docstring)."""
    import jax.numpy as jnp

    from jaxtrack.frames import pad_frame
    from jaxtrack.trackers import atom
    rows = {}
    # first-frame augmentation, from the same draws, at the reference's first position
    fr0 = pad_frame(frames[0])
    st = ref[p + "states"]
    pos0 = jnp.asarray(st[0, [1, 0]], jnp.float32)
    scale0 = jnp.float32(st[0, 4])
    jd = {k: jnp.asarray(v) for k, v in draws.items()}
    crops, _ = atom.pytracking_init_crops(cfg, fr0, pos0, scale0, jd)
    rc = ref[p + "init_crops"].transpose(0, 2, 3, 1)
    rows["first-frame augmented crops [23, 288, 288, 3]"] = rel(crops, rc)
    rows["  of which identity, shifts, flip, blur [11]"] = rel(crops[:11], rc[:11])
    rows["  of which rotations [12] (cv2.warpAffine)"] = rel(crops[11:], rc[11:])
    x, sh, _ = atom.pytracking_training_set(cfg, params, fr0, pos0, scale0, jd)
    rows["first-frame classifier samples, dropout included [30, 256, 18, 18]"] = rel(
        np.asarray(x), ref[p + "init_feat"].transpose(0, 2, 3, 1))
    base = jnp.asarray(st[0, [3, 2]], jnp.float32) / scale0
    sigma = jnp.sqrt(jnp.prod(18 / 288 * base)) * cfg.output_sigma_factor
    center = atom._label_center(cfg, pos0 - jnp.round(pos0), scale0)
    ys = np.stack([np.asarray(atom.pytracking_label(cfg, center + jnp.asarray(s, jnp.float32) / 288 * 18, sigma))
                   for s in np.asarray(sh)])
    rows["first-frame labels [30, 18, 18]"] = rel(ys, ref[p + "init_y"])
    # crops and scores on the first frames (fed: at the reference's position and scale)
    rcrops = ref[p + "crops"].transpose(0, 2, 3, 1)
    fed = [np.asarray(atom.sample_patch(pad_frame(frames[k]).image, pad_frame(frames[k]).size,
                                        jnp.asarray(st[k - 1, [1, 0]], jnp.float32), jnp.float32(st[k - 1, 4] * 288), 288))
           for k in range(1, n_comp + 1)]
    rows[f"test crop, frames 1-{n_comp}, fed the reference's position"] = rel(np.stack(fed), rcrops)
    rows[f"test crop, frames 1-{n_comp}, chained"] = rel(jx["crops"], rcrops)
    rows[f"18x18 score map, frames 1-{n_comp}, chained"] = rel(jx["raw"], ref[p + "raw"][:n_comp])
    interp = np.stack([np.asarray(atom.interpolate_scores(cfg, jnp.asarray(r))) for r in ref[p + "raw"][:n_comp]])
    rows[f"288x288 interpolated map, frames 1-{n_comp}, fed"] = rel(interp, ref[p + "scores"])
    # localisation fed the reference's raw maps and state, every frame
    flags, trans = [], []
    for k in range(1, len(frames)):
        r = jnp.asarray(ref[p + "raw"][k - 1])
        sz = jnp.asarray(st[k - 1, [3, 2]], jnp.float32)
        d, _, f = atom.localize_advanced(cfg, atom.interpolate_scores(cfg, r), sz, jnp.float32(st[k - 1, 4]))
        flags.append(int(f))
        trans.append(np.asarray(d)[::-1] * st[k - 1, 4])
    flags, trans = np.asarray(flags), np.asarray(trans)
    rows["localisation flags, fed (frames equal / all)"] = f"{int(np.sum(flags == ref[p + 'flags'][1:]))}/{len(flags)}"
    rows["translation (image px), fed: max |diff|"] = float(np.max(np.abs(trans - ref[p + "translation"])))
    rows["localisation flags, chained (frames equal / all)"] = \
        f"{int(np.sum(jx['flags'] == ref[p + 'flags']))}/{len(flags) + 1}"
    counts = lambda f: {n: int(np.sum(f[1:] == v)) for n, v in  # noqa: E731
                        (("normal", 0), ("not_found", 1), ("uncertain", 2), ("hard_negative", 3))}
    return rows, {"reference": counts(ref[p + "flags"]), "jaxtrack": counts(jx["flags"])}


def draw_distributions(cfg, n: int, seed: int) -> dict:
    """The draws' distributions: jaxtrack's (``n`` keys) against torch's own (``n`` runs of the
    calls pytracking makes), two-sample Kolmogorov-Smirnov p-values."""
    import jax
    import torch
    from scipy.stats import ks_2samp

    from jaxtrack.trackers import atom
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    jd = jax.vmap(lambda k: atom.init_draws(cfg, k, 256))(keys)
    shifts = np.asarray(atom.random_shifts(cfg, jd["shift_uniform"])).reshape(-1)
    torch.manual_seed(seed)
    tshift = (((torch.rand(n * 18, 2) - 0.5) * torch.tensor([288.0, 288.0]) * (1 / 3)).long()).numpy().reshape(-1)
    tkeep = (torch.nn.functional.dropout2d(torch.ones(n * 7, 256, 1, 1), p=0.2, training=True) > 0).numpy().mean()
    tproj = torch.zeros(n, 64, 256, 1, 1).normal_(0, 1 / np.sqrt(256)).numpy().reshape(-1)[:200000]
    tfilt = torch.zeros(n, 1, 64, 4, 4).normal_(0, 1 / 1024).numpy().reshape(-1)[:200000]
    uj = np.asarray(jax.random.uniform(keys[0], (n, 9, 4))).reshape(-1)
    return {"draws": n, "seed": seed,
            "random shift (px) KS p": float(ks_2samp(shifts, tshift).pvalue),
            "random shift mean |px| jaxtrack / torch": [float(np.abs(shifts).mean()), float(np.abs(tshift).mean())],
            "dropout keep rate jaxtrack / torch": [float(np.asarray(jd["dropout_keep"]).mean()), float(tkeep)],
            "projection init KS p": float(ks_2samp(np.asarray(jd["proj"]).reshape(-1)[:200000], tproj).pvalue),
            "filter init KS p": float(ks_2samp(np.asarray(jd["filter"]).reshape(-1)[:200000], tfilt).pvalue),
            "refinement uniforms vs torch.rand KS p": float(ks_2samp(uj, torch.rand(uj.size).numpy()).pvalue)}


# --------------------------------------------------------------------------- main

def main(argv=None):
    ap = tracking_parser(__doc__, reference_help="pytracking checkout (e.g. git archive 7eb9e74)",
                         json_default="atom_track_reference.json", seed=20241, configs=(), frames=0,
                         synthetic_frames=40, component_frames=3, fixture_frames=12,
                         workdir_help="keep the weights, checkpoint and arrays here (default: a temp dir)",
                         threads=False)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (jaxtrack: XLA's default)")
    ap.add_argument("--key", type=int, default=0, help="jax.random.PRNGKey of the tracker (all draws)")
    ap.add_argument("--fixture-seed", type=int, default=1,
                    help="make_sequence seed of the fixtures' sequence (--fixture-frames frames)")
    ap.add_argument("--draw-samples", type=int, default=100, help="draws per side for the distribution check")
    ap.add_argument("--float64", action="store_true",
                    help="both trackers in float64 (run-time shims, module docstring); no fixtures")
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    if args.float64 and args.fixtures:
        ap.error("--float64 records no fixtures (the tests replay the float32 run)")
    if args.float64:
        float64_jaxtrack()
    from pytracking_atom import check_reference, seeded_weights
    check_reference(ap, args.reference)
    import jax

    from jaxtrack.data import load_sequence
    from jaxtrack.data.synthetic import make_sequence
    from jaxtrack.frames import check_image
    from jaxtrack.models import seeded
    from jaxtrack.trackers import atom

    workdir, spec, weights, pth = seeded_weights(args.seed, args.workdir, "atom_track_")
    seqs = {}
    if args.sequence:
        seq = load_sequence(args.sequence, "otb")
        n = len(seq) if args.frames <= 0 else min(args.frames, len(seq))
        seqs["otb"] = (seq.name, [check_image(seq.frame(k)) for k in range(n)], np.asarray(seq.gt[0], np.float64))
    syn = make_sequence(args.synthetic_seed, num_frames=args.synthetic_frames)
    seqs["synthetic"] = (f"synthetic-{args.synthetic_seed}", [check_image(syn.frame(k)) for k in range(len(syn))],
                         np.asarray(syn.gt[0], np.float64))
    if args.fixtures:
        fx = make_sequence(args.fixture_seed, num_frames=args.fixture_frames)
        seqs["fixture"] = (f"synthetic-{args.fixture_seed}", [check_image(fx.frame(k)) for k in range(len(fx))],
                           np.asarray(fx.gt[0], np.float64))

    cfg = atom.ATOMConfig(backbone="resnet18")
    key = jax.random.PRNGKey(args.key)
    # jaxtrack first (its draws go to the reference); the checkpoint is written by the child,
    # so jaxtrack reads the weights from the same arrays through the same file afterwards
    job_cases, jx = {}, {}
    for name, (_, frames, box0) in seqs.items():
        np.save(os.path.join(workdir, f"frames_{name}.npy"), np.stack(frames))
        job_cases[name] = {"frames_npy": os.path.join(workdir, f"frames_{name}.npy"), "box0": box0.tolist(),
                           "draws_npz": os.path.join(workdir, f"draws_{name}.npz"),
                           "component_frames": args.component_frames}
    # the child writes the checkpoint first, then tracks; jaxtrack's draws do not depend on
    # the weights (only on the key and the feature depth), so they are made before
    dim = 256
    d = {k: np.asarray(v) for k, v in atom.init_draws(cfg, key, dim).items()}
    refine_keys = jax.random.split(key, 3)[2]
    uniforms = [np.zeros((cfg.num_init_random_boxes, 4), np.float32)]
    kk = refine_keys
    for _ in range(max(len(f) for _, f, _ in seqs.values())):
        kk, kb = jax.random.split(kk)
        uniforms.append(np.asarray(jax.random.uniform(kb, (cfg.num_init_random_boxes, 4))))
    d["refine_uniform"] = np.stack(uniforms)
    for name in seqs:
        np.savez(job_cases[name]["draws_npz"], **{k: v[:len(seqs[name][1])] if k == "refine_uniform" else v
                                                  for k, v in d.items()})
    job = {"weights_npz": os.path.join(workdir, "weights.npz"), "pth": pth, "threads": args.threads,
           "cases": job_cases, "float64": args.float64}
    t0 = time.time()
    ref, arrays = run_worker(__file__, job, workdir, [args.reference])
    print(f"reference ran in {time.time() - t0:.1f} s (torch {ref['torch']}, CPU, {args.threads} thread(s))")
    params = atom.load_params(cfg, weights=pth)
    if args.float64:
        params = jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64) if np.issubdtype(np.asarray(v).dtype, np.floating)
                                        else v, params)
    assert atom._classifier_dim(cfg, params) == dim

    report = {"reference": {"repository": "https://github.com/visionml/pytracking", "commit": REFERENCE_COMMIT,
                            "torch": ref["torch"], "device": "cpu", "threads": args.threads},
              "weights": dict(spec, sha256=seeded.digest(weights)),
              "seeds": {"weights": args.seed, "tracker key (jax.random.PRNGKey)": args.key,
                        "synthetic sequence": args.synthetic_seed,
                        "fixture sequence": args.fixture_seed if args.fixtures else None,
                        "draw distributions (key)": args.key + 1},
              "config": "ATOMConfig(backbone='resnet18') (geometry='pytracking')",
              "dtype": "float64" if args.float64 else "float32", "sequences": {}}
    for name, (label, frames, box0) in seqs.items():
        p = f"{name}_"
        t0 = time.time()
        jx[name] = jax_track(cfg, params, frames, box0, key, args.component_frames)
        print(f"jaxtrack {label}: {time.time() - t0:.1f} s")
        assert np.array_equal(jx[name]["refine_uniform"], d["refine_uniform"][:len(frames)])
        rows, flag_counts = compare_sequence(cfg, params, frames, box0, jx[name], arrays, p, d,
                                             args.component_frames)
        agree = agreement(jx[name]["boxes"], arrays[p + "boxes"])
        k1 = agree["first_frame_over_0.5px"] or 1
        if k1 in set(arrays[p + "refine_frames"].tolist()):
            d_each = refine_fed(cfg, params, frames, arrays, p, jx[name]["mod"], k1)
            rows[f"refinement fed the reference's start boxes at frame {k1}: max |diff| per start (px)"] = \
                " ".join(f"{v:.2g}" for v in d_each)
        rs = agreement(jax_resync(cfg, params, frames, box0, key, arrays[p + "states"]), arrays[p + "boxes"])
        report["sequences"][name] = {
            "agreement_resynchronised": rs,
            "name": label, "frames": len(frames), "components": rows, "flags": flag_counts,
            "agreement": agree,
            "frames_within_1px": int(len(frames) - agree["frames_over_1px"]),
            "fps": {"jaxtrack": fps(jx[name]["times"]), "pytracking": fps(arrays[p + "times"])},
            "max_state_diff_px": float(np.max(np.abs(jx[name]["states"][:, :4] - arrays[p + "states"][:, :4]))),
        }
    report["draw_distributions"] = draw_distributions(cfg, args.draw_samples, args.key + 1)
    print_report(report)
    write_report(args.json, report)
    if args.fixtures:
        write_fixtures(args.fixtures, spec, weights, seqs["fixture"], arrays, jx["fixture"], report, args)


def print_report(report):
    for name, r in report["sequences"].items():
        print(f"\n== {r['name']} ({r['frames']} frames)")
        for k, v in r["components"].items():
            print(f"  {k:70s} {v if isinstance(v, str) else f'{v:.2e}'}")
        print(f"  flags: {r['flags']}")
        a = r["agreement"]
        print(f"  boxes: max {a['max_px']:.3f} px, mean {a['mean_px']:.3f} px, first frame over 1 px "
              f"{a['first_frame_over_1px']}, within 1 px {r['frames_within_1px']}/{r['frames']}, "
              f"over 0.5 px {a['frames_over_0.5px']}, mean IoU {a['mean_iou']:.4f}")
        b = r["agreement_resynchronised"]
        print(f"  re-synchronised every frame: over 0.5 px {b['frames_over_0.5px']}, over 1 px "
              f"{b['frames_over_1px']}, max {b['max_px']:.3f} px, mean IoU {b['mean_iou']:.4f}")
        print(f"  fps: jaxtrack {r['fps']['jaxtrack']:.2f}, pytracking {r['fps']['pytracking']:.2f}")
    print("\ndraws:", json.dumps(report["draw_distributions"]))


def write_fixtures(folder, spec, weights, seq, arrays, jx, report, args):
    """Numbers only (``track_*`` in ``reference_track.npz`` + ``atom_track_reference.json``):
    the reference's boxes, flags, states, 18x18 maps, interpolated maps of the first frames
    (every 4th row and column), first-frame labels, and every 16th row/column of its
    augmented crops and test crops; the frames are ``make_sequence`` 's, regenerated by the
    test. ``checked_frames``: the leading frames whose boxes agreed within 0.5 px when
    recorded (the test holds jaxtrack to them)."""
    from jaxtrack.models import seeded
    os.makedirs(folder, exist_ok=True)
    p = "fixture_"
    n, m = args.component_frames, args.fixture_frames
    keep = {"boxes": arrays[p + "boxes"][:m], "flags": arrays[p + "flags"][:m], "states": arrays[p + "states"][:m],
            "raw": arrays[p + "raw"][:m - 1].astype(np.float32),
            "translation": arrays[p + "translation"][:m - 1].astype(np.float32),
            "scores_sub": arrays[p + "scores"][:n, ::4, ::4].astype(np.float32),
            "scores_max": arrays[p + "scores"][:n].reshape(n, -1).max(1),
            "scores_argmax": arrays[p + "scores"][:n].reshape(n, -1).argmax(1),
            "init_y": arrays[p + "init_y"].astype(np.float32),
            "init_crops_sub": arrays[p + "init_crops"][:, :, ::16, ::16].astype(np.float32),
            "crops_sub": arrays[p + "crops"][:, :, ::16, ::16].astype(np.float32)}
    np.savez_compressed(os.path.join(folder, "reference_track.npz"), **{"track_" + k: v for k, v in keep.items()})
    meta = {"reference_commit": REFERENCE_COMMIT, "weights": dict(spec, sha256=seeded.digest(weights)),
            "synthetic_seed": args.fixture_seed, "frames": m, "key": args.key,
            "component_frames": n, "box0": seq[2].tolist(),
            "jaxtrack_boxes_when_recorded": jx["boxes"][:m].tolist(),
            "checked_frames": int(m if agreement(jx["boxes"][:m], arrays[p + "boxes"][:m])["first_frame_over_0.5px"]
                                  is None else agreement(jx["boxes"][:m], arrays[p + "boxes"][:m])["first_frame_over_0.5px"]),
            "agreement_when_recorded": agreement(jx["boxes"][:m], arrays[p + "boxes"][:m])}
    with open(os.path.join(folder, "atom_track_reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"wrote fixtures to {folder}")


if __name__ == "__main__":
    run(main)
