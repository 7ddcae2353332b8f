"""pytracking's ATOM pieces beside jaxtrack's, on the CPU, on the same weights and inputs.

    git --git-dir=/work/.mirror/visionml+pytracking/repo archive 7eb9e74 \\
        | (mkdir -p /work/ref/pytracking && tar -x -C /work/ref/pytracking)
    python experiments/reference/pytracking_atom.py --reference /work/ref/pytracking \\
        --sequence ../shared/data/otb/Crossing --json atom_reference.json \\
        [--fixtures tests/fixtures/reference/atom]

``--reference`` is a checkout of https://github.com/visionml/pytracking (tested at 7eb9e74).
Its code is imported only in a child process (this file run with ``--worker``) whose
PYTHONPATH is that checkout; nothing of it is copied here. What runs:

1. **PrRoIPool.** pytracking's ``PrRoIPool2D`` is a CUDA extension (its PreciseRoIPooling
   submodule is not even in a ``git archive``). ``prroi_pool_torch.py`` here is a CPU
   transcription of its kernels; its :func:`selftest` checks it against the exact integral and
   finite differences, and jaxtrack's ``prroi_pool`` (forward, gradient in the box, gradient in
   the features) is compared with it on random maps and boxes.
2. **Weights.** ResNet-18 + IoU-Net in pytracking's ``atom_resnet18`` layout are drawn from
   ``--seed`` (``jaxtrack.models.seeded.atom_resnet18_weights``). The child loads them into the
   reference's own ``atom_resnet18(backbone_pretrained=False)`` (strict ``load_state_dict``)
   and saves the checkpoint as pytracking does (``{"net", "constructor"}``); pytracking reads it
   with its own ``load_network`` (through ``parameter/atom/default.py``'s ``ATOMResNet18``),
   jaxtrack with its own (``atom.load_params(..., weights=PTH)``, i.e.
   ``models.iounet.load_pytracking_atom``).
3. **IoU-Net components**, on two 288x288 crops (first frame and frame ``--test-frame`` of the
   sequence, around the first box, from ``ops.crop_patch``, rounded to uint8) fed to both:
   backbone layer2 and layer3, the IoU-Net test features, the modulation vectors of the
   first-frame box, the IoU of ``--proposals`` jittered boxes and its gradient in the boxes,
   and the box refinement (pytracking's ``ATOM.refine_target_box`` with
   ``parameter/atom/default.py``; jaxtrack's ``atom.refine_box`` with ``ATOMConfig``'s same
   values) from the same start box and the same 9 random draws. Columns: jaxtrack on its own
   chain, and jaxtrack's stage fed the reference's inputs to that stage.
4. **Classifier**: pytracking's first-frame ``GaussNewtonCG(FactorizedConvProblem)`` (6 x 10
   CG) and a later ``ConjugateGradient(ConvProblem)`` step (5 CG) beside ``atom_optim``'s, on
   the reference's normalised layer3 features of the two crops (float16 values), the same
   labels, weights and initial filter/projection, in float32 and float64; jaxtrack both with
   its data term cut to pytracking's 18x18 score map (what ATOM's default ``geometry="pytracking"``
   runs, ``apply_filter(same=True)``) and on the 19x19 map of the ``grid19`` variant.
   End-to-end tracking, crops, augmentation and localisation: ``pytracking_atom_track.py``.

Prints tables and writes ``--json``; ``--fixtures DIR`` also writes the numbers that
``tests/test_reference_atom.py`` replays (on a synthetic frame; no reference code).

Run-time shims (the reference's files are not modified; none changes a value it computes):

- CPU: ``CUDA_VISIBLE_DEVICES=""`` before torch is imported; ``params.use_gpu = False``,
  ``params.device = "cpu"`` and the ``ATOMResNet18`` feature's ``use_gpu = False`` (its default
  ``True`` calls ``.cuda()``); ``torch.set_num_threads(--threads)``.
- PrRoIPool: ``ltr.external.PreciseRoIPooling.pytorch.prroi_pool`` is provided in
  ``sys.modules`` by ``prroi_pool_torch.py`` (the CUDA extension has no CPU path).
- Missing packages: ``torchvision`` (``ltr.models.backbone`` imports ``model_urls``, used only
  with ``pretrained=True``, and ``BasicBlock``, used by the VGG-M ResNet variant;
  ``pytracking.features.deep`` builds a ``Normalize`` at import, used by other features) and
  ``timm`` (the Swin backbone) are stubs whose members raise if ever called; ``jpeg4py`` (an
  image reader of the datasets) and ``visdom`` (the debug display), imported by
  ``pytracking/__init__.py``'s evaluation modules and never called here, are empty modules.
- ``torch.autograd.grad``: pytracking's ``TensorList.__getattr__`` forwards every ``torch.Tensor``
  attribute, ``__torch_function__`` included, so torch >= 1.7 dispatches
  ``autograd.grad(TensorList, ...)`` to it and raises; the child wraps ``torch.autograd.grad``
  to pass TensorLists as plain lists (the same tensors, the same call).
- ``ltr.admin.local`` (a per-user settings file, absent from the repository, imported by
  ``torch_load_legacy``) is an empty module.
- ``torch.load``: torch >= 2.6 loads with ``weights_only=True``, which refuses the pickled
  ``NetConstructor`` of pytracking's checkpoint format; the child registers
  ``ltr.admin.model_constructor.NetConstructor`` with ``torch.serialization.add_safe_globals``.
- Random draws: during ``refine_target_box``, ``torch.rand(9, 4)`` returns the uniforms jaxtrack
  draws from ``--refine-seed`` (``jax.random.uniform``), so that both start from the same boxes.
- Observation: ``sys.settrace`` on ``refine_target_box`` copies its locals (start boxes,
  refined boxes, IoUs, the top-k box) at return.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import types

import numpy as np

from jaxtrack_harness import rel, run, run_worker, write_report

REFERENCE_COMMIT = "7eb9e74bd3d40e29dbcec444902237da13de247b"
PRROI_COMMIT = "f75570ae05aea68a2ebc100f60a54194b0a9d15c"

# --------------------------------------------------------------------------- the child


def install_shims():
    """The run-time shims listed in the module docstring (imports only)."""
    import torch.nn as nn

    class Unavailable:
        def __init__(self, *a, **k):
            pass

        def __call__(self, *a, **k):
            raise RuntimeError("stubbed by the harness: not available in this run")

    def stub(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        parent, _, child = name.rpartition(".")
        if parent and parent in sys.modules:
            setattr(sys.modules[parent], child, m)
        return m

    for name in ("torchvision", "torchvision.models"):
        stub(name)
    stub("torchvision.models.resnet", model_urls={}, BasicBlock=type("BasicBlock", (nn.Module,), {}))
    stub("torchvision.transforms", Normalize=Unavailable)
    for name in ("timm", "timm.models"):
        stub(name)
    stub("timm.models.layers", DropPath=Unavailable, to_2tuple=Unavailable, trunc_normal_=Unavailable)
    for name in ("jpeg4py", "visdom", "visdom.server"):
        stub(name)
    import prroi_pool_torch
    import importlib
    importlib.import_module("ltr.external.PreciseRoIPooling")    # the (empty) submodule folder
    stub("ltr.external.PreciseRoIPooling.pytorch")
    stub("ltr.external.PreciseRoIPooling.pytorch.prroi_pool", PrRoIPool2D=prroi_pool_torch.PrRoIPool2D,
         prroi_pool2d=prroi_pool_torch.prroi_pool2d)
    importlib.import_module("ltr.admin")
    stub("ltr.admin.local")
    # TensorList.__getattr__ forwards any torch.Tensor attribute, __torch_function__ included,
    # so torch >= 1.7 dispatches autograd.grad(TensorList, ...) to it and fails: pass plain lists
    import torch
    from pytracking.libs.tensorlist import TensorList
    grad = torch.autograd.grad

    def plain_grad(outputs, inputs, grad_outputs=None, **kw):
        unwrap = lambda v: list(v) if isinstance(v, TensorList) else v    # noqa: E731
        return grad(unwrap(outputs), unwrap(inputs), unwrap(grad_outputs), **kw)
    torch.autograd.grad = plain_grad



def reference_parameters(torch, job: dict):
    """In the child: the seeded arrays (``job["weights_npz"]``) loaded strictly into
    pytracking's ``atom_resnet18``, saved as its checkpoint (``job["pth"]``) and read back
    through pytracking's own path (``parameter/atom/default.py`` -> ``ATOMResNet18`` ->
    ``load_network``) on the CPU. Returns (params, the ResNet-18 feature)."""
    from ltr.admin.model_constructor import NetConstructor
    from ltr.models.bbreg.atom import atom_resnet18
    torch.serialization.add_safe_globals([NetConstructor])
    net = atom_resnet18(backbone_pretrained=False)
    own = net.state_dict()
    arrays = np.load(job["weights_npz"])
    extra = set(arrays.files) - set(own)
    missing = {k for k in set(own) - set(arrays.files) if not k.endswith("num_batches_tracked")}
    if extra or missing:
        raise SystemExit(f"weights do not fit atom_resnet18: extra {sorted(extra)[:5]}, missing {sorted(missing)[:5]}")
    net.load_state_dict({k: torch.from_numpy(arrays[k]) if k in arrays.files else v for k, v in own.items()},
                        strict=True)
    torch.save({"net": net.state_dict(), "constructor": net.constructor, "net_info": None}, job["pth"])
    from pytracking.parameter.atom.default import parameters
    params = parameters()
    params.use_gpu = False                                  # shim: CPU
    params.device = "cpu"
    feat = params.features.features[0]
    feat.net_path = job["pth"]
    feat.use_gpu = False                                    # shim: its default True calls .cuda()
    params.features.initialize()
    return params, feat


def worker(job_path: str) -> None:
    """Runs under PYTHONPATH=<reference checkout>: the reference's side of every comparison."""
    with open(job_path) as f:
        job = json.load(f)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""                   # shim: CPU
    import torch
    torch.set_num_threads(int(job["threads"]))
    install_shims()
    params, feat = reference_parameters(torch, job)
    from pytracking.tracker.atom.atom import ATOM
    params.features.set_is_color(True)
    iounet = feat.iou_predictor

    out, result = {}, {"torch": torch.__version__, "cases": {}}
    for name, case in job["cases"].items():
        crops = np.load(case["crops_npy"]).astype(np.float32)            # [2, 288, 288, 3]
        im = torch.from_numpy(crops.transpose(0, 3, 1, 2).copy())
        feat.extract(im[:1].clone())
        bb0 = [f.clone() for f in feat.iounet_backbone_features]
        feat.extract(im[1:].clone())
        bb1 = [f.clone() for f in feat.iounet_backbone_features]
        iou_feat = [f.clone() for f in feat.iounet_features]
        with torch.no_grad():
            mod = iounet.get_modulation(bb0, torch.tensor([case["target_box"]], dtype=torch.float32))
        target_feat = [m.detach().mean(0) for m in mod]
        props = torch.tensor([case["proposals"]], dtype=torch.float32, requires_grad=True)
        iou = iounet.predict_iou([m.reshape(1, -1) for m in target_feat], iou_feat, props)
        iou.backward(torch.ones_like(iou))
        p = f"{name}_"
        out.update({p + "layer2_0": bb0[0], p + "layer3_0": bb0[1], p + "layer2_1": bb1[0],
                    p + "layer3_1": bb1[1], p + "c3_t": iou_feat[0], p + "c4_t": iou_feat[1],
                    p + "mod3": target_feat[0], p + "mod4": target_feat[1], p + "iou": iou.detach(),
                    p + "iou_grad": props.grad})
        out[p + "pooled3"] = feat_pool(iounet, target_feat, iou_feat, props.detach())
        result["cases"][name] = refine(ATOM, params, iounet, target_feat, case, torch, out, p)
        if "classifier" in case:
            classifier(feat, im, case["classifier"], torch, out, p)
    np.savez(job["arrays_out"], **{k: np.asarray(v.detach().numpy() if hasattr(v, "detach") else v)
                                   for k, v in out.items()})
    with open(job["json_out"], "w") as f:
        json.dump(result, f)


def feat_pool(iounet, target_feat, iou_feat, props):
    """The reference's PrRoIPool of the modulated stride-8 map at the proposals ([N, 256, 5, 5])."""
    import torch
    c3 = iou_feat[0] * target_feat[0].reshape(1, -1, 1, 1)
    boxes = torch.cat([props[0, :, :2], props[0, :, :2] + props[0, :, 2:]], 1)
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], 1)
    return iounet.prroi_pool3t(c3, rois).detach()


def refine(ATOM, params, iounet, target_feat, case, torch, out, p):
    """``ATOM.refine_target_box`` at crop scale 1 with ``sample_pos = 0``, so that its start box
    ``get_iounet_box(pos, target_sz, 0, 1)`` is ``case["refine_box"]`` (crop xywh)."""
    trk = ATOM(params)
    trk.iou_predictor = iounet
    trk.target_feat = target_feat
    trk.iou_img_sample_sz = torch.tensor([288.0, 288.0])
    x, y, w, h = case["refine_box"]
    trk.pos = torch.tensor([y + (h - 1) / 2 - 143.5, x + (w - 1) / 2 - 143.5])
    trk.target_sz = torch.tensor([h, w], dtype=torch.float32)
    trk.base_target_sz = trk.target_sz.clone()
    uniforms = torch.tensor(case["uniforms"], dtype=torch.float32)
    real_rand = torch.rand

    def rand(*shape, **kw):                                          # shim: the same draws
        if tuple(shape) == tuple(uniforms.shape):
            return uniforms.clone()
        return real_rand(*shape, **kw)

    rec = {}
    code = ATOM.refine_target_box.__code__

    def local(frame, event, arg):
        if event == "return":
            loc = frame.f_locals
            for k in ("init_boxes", "output_boxes", "output_iou", "predicted_box", "predicted_iou", "keep_ind"):
                if k in loc:
                    rec[k] = loc[k].detach().clone()
        return local

    def tracer(frame, event, arg):
        return local if event == "call" and frame.f_code is code else None

    boxes_seen = {}
    orig_opt = trk.optimize_boxes

    def optimize_boxes(iou_features, init_boxes):                    # observation only
        b, o = orig_opt(iou_features, init_boxes)
        boxes_seen["all_boxes"], boxes_seen["all_iou"] = b.clone(), o.clone()
        return b, o
    trk.optimize_boxes = optimize_boxes
    torch.rand = rand
    sys.settrace(tracer)
    try:
        trk.refine_target_box(torch.zeros(2), torch.tensor(1.0), 0, True)
    finally:
        sys.settrace(None)
        torch.rand = real_rand
    for k, v in {**rec, **boxes_seen}.items():
        out[p + "refine_" + k] = v
    return {"refine_outputs": sorted(list(rec) + list(boxes_seen))}


def classifier(feat, im, job, torch, out, p):
    """ATOM's first-frame joint Gauss-Newton (``GaussNewtonCG(FactorizedConvProblem)``, run as
    ``ATOM.init_optimization`` runs it: 6 x 10 CG, Fletcher-Reeves) and one later filter step
    (``ConjugateGradient(ConvProblem)``, 5 CG, Polak-Ribiere), on the two crops' features
    (``feat.get_feature``: layer3 with ``normalize_power=2``) rounded to float16 values (so that
    the fixture can hold them exactly), the given labels, weights and initial filter and
    projection; in float32 and in float64."""
    import torch.nn.functional as F
    from pytracking import TensorList
    from pytracking.libs import operation
    from pytracking.libs.optimization import ConjugateGradient, GaussNewtonCG
    from pytracking.tracker.atom.optim import ConvProblem, FactorizedConvProblem
    arr = np.load(job["npz"])
    x = feat.get_feature(im.clone())[0]                                  # [2, 256, 18, 18]
    mlu = lambda t: F.elu(F.leaky_relu(t, 1 / 0.05), 0.05)              # noqa: E731  (ATOM's 'mlu', 0.05)
    filter_reg, proj_reg = TensorList([job["filter_reg"]]), TensorList([job["projection_reg"]])
    out[p + "cls_x"] = x.detach()
    xq = x.detach().half()
    out[p + "cls_xq"] = xq
    for dtype, suffix in ((torch.float32, ""), (torch.float64, "64")):   # float64: the same code, rounding aside
        t = lambda a: torch.from_numpy(np.asarray(a)).to(dtype)           # noqa: E731
        xs = xq.to(dtype)
        y, w = TensorList([t(arr["y18"][:, None])]), TensorList([t(arr["w"])])
        problem = FactorizedConvProblem(TensorList([xs]), y, filter_reg, proj_reg, None, w, lambda v: v, mlu)
        var = TensorList([t(arr["filter0"])]).concat(TensorList([t(arr["proj0"])]))
        opt = GaussNewtonCG(problem, var, debug=False, plotting=False, analyze=False, visdom=None)
        opt.run(job["init_cg_iter"] // job["init_gn_iter"], job["init_gn_iter"])
        filt1, proj1 = opt.x[0].detach().clone(), opt.x[1].detach().clone()
        xp = operation.conv1x1(xs, proj1)
        cg = ConjugateGradient(ConvProblem(TensorList([xp]), y, filter_reg, w, mlu), TensorList([filt1.clone()]),
                               fletcher_reeves=False, direction_forget_factor=0, debug=False, plotting=False,
                               visdom=None)
        cg.run(job["cg_iter"])
        filt2 = cg.x[0].detach().clone()
        out.update({p + "cls_filter1" + suffix: filt1, p + "cls_proj1" + suffix: proj1,
                    p + "cls_filter2" + suffix: filt2,
                    p + "cls_scores1" + suffix: operation.conv2d(xp, filt1, mode="same").detach(),
                    p + "cls_scores2" + suffix: operation.conv2d(xp, filt2, mode="same").detach()})


def run_reference(reference: str, job: dict, workdir: str, python: str = sys.executable):
    """Run :func:`worker` in a child whose PYTHONPATH is the reference checkout."""
    return run_worker(__file__, job, workdir, [reference], python)


# --------------------------------------------------------------------------- inputs

def make_case(seq, test_frame: int, rng, num_proposals: int, refine_key: int):
    """Two uint8-valued 288 crops (frame 0 and ``test_frame``, both around the first box at
    the first frame's scale), the first-frame target box, proposals around the test frame's
    ground truth and a start box for the refinement, all in crop xywh."""
    import jax
    import jax.numpy as jnp

    from jaxtrack import ops
    from jaxtrack.frames import pad_frame
    from jaxtrack.trackers.atom import ATOMConfig
    cfg = ATOMConfig(backbone="resnet18")
    box0 = np.asarray(seq.gt[0], np.float64)
    pos = box0[:2] + box0[2:] / 2
    scale = float(np.sqrt(np.prod(box0[2:] * cfg.search_area_scale)) / cfg.sample_size)
    crops = []
    for k in (0, test_frame):
        fr = pad_frame(seq.frame(k))
        fill = ops.valid_mean_color(fr.image, fr.size)
        c = ops.crop_patch(fr.image, fr.size, jnp.asarray(pos, jnp.float32), jnp.float32(cfg.sample_size * scale),
                           cfg.sample_size, fill)
        crops.append(np.clip(np.round(np.asarray(c)), 0, 255).astype(np.uint8))
    to_crop = lambda b: np.concatenate([(b[:2] - pos) / scale + cfg.sample_size / 2, b[2:] / scale])  # noqa: E731
    target = to_crop(box0)
    gt = to_crop(np.asarray(seq.gt[test_frame], np.float64))
    sq = np.sqrt(np.prod(gt[2:]))
    props = [gt]
    for _ in range(num_proposals - 1):
        j = rng.uniform(-0.5, 0.5, 4) * sq * np.array([0.3, 0.3, 0.5, 0.5])
        c = gt[:2] + gt[2:] / 2 + j[:2]
        s = np.maximum(gt[2:] + j[2:], 4.0)
        props.append(np.concatenate([c - s / 2, s]))
    j = rng.uniform(-0.5, 0.5, 4) * sq * np.array([0.2, 0.2, 0.2, 0.2])
    start = np.concatenate([gt[:2] + gt[2:] / 2 + j[:2] - (gt[2:] + j[2:]) / 2, gt[2:] + j[2:]])
    uniforms = np.asarray(jax.random.uniform(jax.random.PRNGKey(refine_key), (cfg.num_init_random_boxes, 4)))
    return {"crops": np.stack(crops), "target_box": target.tolist(), "base": (box0[2:] / scale).tolist(), "proposals": np.asarray(props).tolist(),
            "refine_box": start.tolist(), "uniforms": uniforms.tolist(), "refine_key": int(refine_key),
            "scale": scale, "test_frame": int(test_frame)}


def classifier_job(rng, cfg, base, workdir: str, name: str) -> dict:
    """Labels, weights and initial filter/projection of the classifier comparison (2 samples:
    the two crops): Gaussian labels (ATOM's sigma for the first
    frame's base size) centred near the crop centre on a 19x19 grid (jaxtrack's) whose first
    18 rows and columns are pytracking's 18x18; the inits drawn as ATOM's ``randn`` methods."""
    n, s = 2, cfg.sample_size // cfg.stride + 1
    sigma = float(np.sqrt(np.prod(np.asarray(base) / cfg.stride)) * cfg.output_sigma_factor)
    centres = (cfg.sample_size / 2 / cfg.stride) + rng.uniform(-1, 1, (n, 2))
    g = np.arange(s)
    y19 = np.exp(-0.5 * ((g[None, :, None] - centres[:, 0, None, None]) ** 2
                         + (g[None, None, :] - centres[:, 1, None, None]) ** 2) / sigma ** 2).astype(np.float32)
    k, c = cfg.kernel_size, cfg.compressed_dim
    arrays = {"y19": y19, "y18": np.ascontiguousarray(y19[:, :-1, :-1]), "w": np.full(n, 1 / n, np.float32),
              "filter0": rng.normal(0, 1 / (k * k * c), (1, c, k, k)).astype(np.float32),
              "proj0": rng.normal(0, 1 / np.sqrt(256), (c, 256, 1, 1)).astype(np.float32)}
    path = os.path.join(workdir, f"classifier_{name}.npz")
    np.savez(path, **arrays)
    return {"npz": path, "sigma": sigma, "filter_reg": cfg.filter_reg, "projection_reg": cfg.projection_reg,
            "init_gn_iter": cfg.init_gn_iter, "init_cg_iter": cfg.init_gn_iter * cfg.init_cg_iter,
            "cg_iter": cfg.cg_iter}


# --------------------------------------------------------------------------- jaxtrack's side

def nchw(x):
    return np.asarray(x).transpose(0, 2, 3, 1)


def jax_iounet(params, crops, case, ref=None, p=""):
    """jaxtrack's IoU-Net intermediates from the crops; with ``ref`` (the reference's arrays),
    each stage is fed the reference's inputs to that stage instead of jaxtrack's own."""
    import jax
    import jax.numpy as jnp

    from jaxtrack.trackers import atom
    cfg = atom.ATOMConfig(backbone="resnet18")
    if ref is None:
        f3, f4 = atom.backbone_features(cfg, params["backbone"], jnp.asarray(crops, jnp.float32))
        f3_0, f4_0, f3_1, f4_1 = f3[:1], f4[:1], f3[1:], f4[1:]
    else:
        f3_0, f4_0, f3_1, f4_1 = (jnp.asarray(nchw(ref[p + k])) for k in ("layer2_0", "layer3_0", "layer2_1", "layer3_1"))
    box = jnp.asarray([case["target_box"]], jnp.float32)
    m3, m4 = atom.modulation(params, f3_0, f4_0, box)
    c3, c4 = atom.iou_features(params, f3_1, f4_1)
    stage = {"mod3": m3[0], "mod4": m4[0], "c3_t": c3, "c4_t": c4}
    if ref is not None:     # the IoU and the refinement from the reference's modulation and maps
        m3, m4 = jnp.asarray(ref[p + "mod3"]).reshape(1, -1), jnp.asarray(ref[p + "mod4"]).reshape(1, -1)
        c3, c4 = jnp.asarray(nchw(ref[p + "c3_t"])), jnp.asarray(nchw(ref[p + "c4_t"]))
    props = jnp.asarray([case["proposals"]], jnp.float32)

    def total(b):
        iou = atom.predict_iou(params, (m3, m4), (c3, c4), b)
        return jnp.sum(iou), iou
    (_, iou), grad = jax.value_and_grad(total, has_aux=True)(props)
    out = {"layer2_0": f3_0, "layer3_0": f4_0, "layer2_1": f3_1, "layer3_1": f4_1, "iou": iou, "iou_grad": grad,
           **stage}
    # refinement: the full refine_box (10 starts, top-3), and each start alone (n = 0)
    start = jnp.asarray(case["refine_box"], jnp.float32)
    key = jax.random.PRNGKey(case["refine_key"])
    box, piou, ok = atom.refine_box(cfg, params, (m3, m4), (c3, c4), start, key)
    out.update(refine_predicted_box=box, refine_predicted_iou=piou, refine_ok=ok)
    return {k: np.asarray(v) for k, v in out.items()}


def jax_refine_each(params, starts, mods, feats):
    """jaxtrack's ``refine_box`` from each start alone (``num_init_random_boxes=0``):
    the refined box and its last IoU, per start."""
    import jax
    import jax.numpy as jnp

    from jaxtrack.trackers import atom
    cfg = atom.ATOMConfig(backbone="resnet18", num_init_random_boxes=0)
    f = jax.jit(lambda b: atom.refine_box(cfg, params, mods, feats, b, jax.random.PRNGKey(0))[:2])
    res = [f(jnp.asarray(b, jnp.float32)) for b in starts]
    return np.stack([np.asarray(r[0]) for r in res]), np.stack([np.asarray(r[1]) for r in res])


COMPONENTS = (   # (row, key, reference layout)
    ("backbone layer2, first frame [128, 36, 36]", "layer2_0", "nchw"),
    ("backbone layer3, first frame [256, 18, 18]", "layer3_0", "nchw"),
    ("backbone layer2, test frame", "layer2_1", "nchw"),
    ("backbone layer3, test frame", "layer3_1", "nchw"),
    ("modulation vector (layer2 branch) [256]", "mod3", None),
    ("modulation vector (layer3 branch) [256]", "mod4", None),
    ("IoU features c3_t [256, 36, 36]", "c3_t", "nchw"),
    ("IoU features c4_t [256, 18, 18]", "c4_t", "nchw"),
    ("predicted IoU of the proposals", "iou", None),
    ("d IoU / d proposal (box gradient)", "iou_grad", None),
)


def compare_case(params, case, ref, p):
    """Rows {component: {"chained": x, "reference inputs": y}} for one case."""
    own = jax_iounet(params, case["crops"], case)
    fed = jax_iounet(params, case["crops"], case, ref, p)
    rows = {}
    for row, key, layout in COMPONENTS:
        r = ref[p + key]
        r = nchw(r) if layout == "nchw" else r
        r = r.reshape(own[key].shape)
        rows[row] = {"chained": rel(own[key], r)}
        if key not in ("layer2_0", "layer3_0", "layer2_1", "layer3_1"):
            rows[row]["reference inputs"] = rel(fed[key], r)
    # the refinement
    ref_box = ref[p + "refine_predicted_box"]
    for label, res in (("chained", own), ("reference inputs", fed)):
        rows.setdefault("refined box (top-3 mean), crop px", {})[label] = float(np.abs(res["refine_predicted_box"] - ref_box).max())
        rows.setdefault("refined box's IoU (top-3 mean)", {})[label] = rel(res["refine_predicted_iou"], ref[p + "refine_predicted_iou"])
    # per start: the reference's 10 start boxes, each refined alone by jaxtrack (fed the reference's inputs)
    import jax.numpy as jnp
    mods = (jnp.asarray(ref[p + "mod3"]).reshape(1, -1), jnp.asarray(ref[p + "mod4"]).reshape(1, -1))
    feats = (jnp.asarray(nchw(ref[p + "c3_t"])), jnp.asarray(nchw(ref[p + "c4_t"])))
    starts = ref[p + "refine_init_boxes"]
    boxes, ious = jax_refine_each(params, starts, mods, feats)
    rb = ref[p + "refine_all_boxes"].copy()
    rb[:, 2:] = np.maximum(rb[:, 2:], 1)
    rows["start boxes from the same draws, crop px"] = {"chained": float(np.abs(start_boxes(case) - starts).max())}
    rows["each start refined (5 steps), crop px"] = {"reference inputs": float(np.abs(boxes - rb).max())}
    rows["each start's last IoU"] = {"reference inputs": rel(ious, ref[p + "refine_all_iou"])}
    rows.update(compare_classifier(params, case, ref, p))
    return rows, own


def compare_classifier(params, case, ref, p):
    """jaxtrack's classifier pieces against the reference's, on the reference's normalised
    features (rounded to float16 values) and the same labels, weights and inits. Columns: "18x18 problem" runs
    ``atom_optim``'s residuals with the data term cut to pytracking's 18x18 score map (the
    only change, made here; ATOM's default does the same); "jaxtrack 19x19" runs them as the
    ``grid19`` variant does (19x19 scores and labels)."""
    import jax.numpy as jnp

    from jaxtrack.trackers import atom
    from jaxtrack.trackers import atom_optim as optim
    cfg = atom.ATOMConfig(backbone="resnet18")
    job = case["classifier"]
    arr = np.load(job["npz"])
    crops = jnp.asarray(case["crops"], jnp.float32)
    _, f4 = atom.backbone_features(cfg, params["backbone"], crops)
    rows = {"classifier input: normalised layer3 of the 2 crops": {"chained": rel(optim.normalize_features(f4),
                                                                             nchw(ref[p + "cls_x"]))}}
    for suffix, dtype in (("", np.float32), ("64", np.float64)):
        with x64(dtype == np.float64):
            classifier_rows(rows, cfg, arr, ref, p, suffix, dtype)
    # the scores themselves, same variables: jaxtrack's 19x19 map cut to 18x18 is pytracking's
    x = jnp.asarray(nchw(ref[p + "cls_xq"]), jnp.float32)
    ref_f1 = ref[p + "cls_filter1"][0].transpose(1, 2, 0)
    ref_p1 = ref[p + "cls_proj1"][:, :, 0, 0].T
    s_ref_vars = optim.apply_filter(optim.project(x, jnp.asarray(ref_p1)), jnp.asarray(ref_f1))
    rows["score map of the reference's filter, cut to 18x18"] = {"reference inputs": rel(s_ref_vars[:, :-1, :-1],
                                                                                       ref[p + "cls_scores1"][:, 0])}
    return rows


class x64:
    """Enable jax's float64 inside the block (when ``on``)."""

    def __init__(self, on: bool):
        self.on = on

    def __enter__(self):
        import jax
        self.was = jax.config.jax_enable_x64
        jax.config.update("jax_enable_x64", self.on or self.was)

    def __exit__(self, *exc):
        import jax
        jax.config.update("jax_enable_x64", self.was)


def classifier_rows(rows, cfg, arr, ref, p, suffix, dtype):
    """The joint GN and the filter CG step, jaxtrack (``atom_optim``) against pytracking, in
    ``dtype`` (both sides)."""
    import jax.numpy as jnp

    from jaxtrack.trackers import atom_optim as optim
    a = lambda v: jnp.asarray(np.asarray(v, dtype))     # noqa: E731
    x = a(nchw(ref[p + "cls_xq"]))
    y19, w = a(arr["y19"]), a(arr["w"])
    f0, p0 = a(arr["filter0"][0].transpose(1, 2, 0)), a(arr["proj0"][:, :, 0, 0].T)
    fr, pr = cfg.filter_reg, cfg.projection_reg
    precond = (jnp.full(f0.shape, 1 / fr, dtype), jnp.full(p0.shape, 1 / pr, dtype))
    ref_f1 = ref[p + "cls_filter1" + suffix][0].transpose(1, 2, 0)
    ref_p1 = ref[p + "cls_proj1" + suffix][:, :, 0, 0].T
    ref_f2 = ref[p + "cls_filter2" + suffix][0].transpose(1, 2, 0)
    bits = "float64" if suffix else "float32"
    for label, cut in ((f"18x18 problem, {bits}", True), (f"jaxtrack 19x19, {bits}", False)):
        crop = (lambda r: (r[0][:, :-1, :-1],) + tuple(r[1:])) if cut else (lambda r: r)   # noqa: E731
        joint = lambda v: crop(optim.joint_residuals(v, x, y19, w, fr, pr, cfg.response_mlu))  # noqa: E731
        (f1, p1), _ = optim.gauss_newton_cg(joint, (f0, p0), cfg.init_gn_iter, cfg.init_cg_iter, precond)
        xp = optim.project(x, p1)
        one = lambda f: crop(optim.filter_residuals(f, xp, y19, w, fr, cfg.response_mlu))      # noqa: E731
        f2, _ = optim.gauss_newton_cg(one, f1, 1, cfg.cg_iter)
        s1 = optim.apply_filter(xp, f1)[:, :-1, :-1]
        s2 = optim.apply_filter(xp, f2)[:, :-1, :-1]
        rows.setdefault("joint GN (6 x 10 CG): filter [4, 4, 64]", {})[label] = rel(f1, ref_f1)
        rows.setdefault("joint GN: projection [256, 64]", {})[label] = rel(p1, ref_p1)
        rows.setdefault("joint GN: scores on the 18x18 grid", {})[label] = rel(s1, ref[p + "cls_scores1" + suffix][:, 0])
        rows.setdefault("then filter CG (5 iter): filter", {})[label] = rel(f2, ref_f2)
        rows.setdefault("then filter CG: scores on the 18x18 grid", {})[label] = rel(s2, ref[p + "cls_scores2" + suffix][:, 0])


def start_boxes(case):
    """jaxtrack's ``refine_box`` start boxes from the case's uniforms (the lines of refine_box)."""
    b = np.asarray(case["refine_box"], np.float32)
    u = np.asarray(case["uniforms"], np.float32)
    sq = np.sqrt(b[2] * b[3])
    rand = (u - 0.5) * sq * np.array([0.1, 0.1, 0.5, 0.5], np.float32)
    size = np.maximum(b[2:] + rand[:, 2:], b[2:].min() / 3)
    c = b[:2] + b[2:] / 2 + rand[:, :2]
    return np.concatenate([b[None], np.concatenate([c - size / 2, size], 1)])


# --------------------------------------------------------------------------- PrRoIPool

def compare_prroi(seed: int, ref=None, p="", case=None) -> dict:
    """jaxtrack's ``prroi_pool`` against the CPU transcription of the CUDA kernel: random maps
    and boxes (float32), and the reference's modulated c3_t at the proposals."""
    import jax
    import jax.numpy as jnp
    import torch

    import prroi_pool_torch as pt

    from jaxtrack.prroi_pool import prroi_pool
    out = {"selftest (float64)": pt.selftest(seed)}
    rng = np.random.default_rng(seed + 1)
    rows = {}

    def put(row, v):
        rows[row] = max(rows.get(row, 0.0), v)

    for trial in range(4):
        data, rois = pt.random_case(rng, c=8, h=18 + trial, w=20, n=16)
        data = data.astype(np.float32)
        for ph in (1, 3, 5):
            ft = torch.tensor(data, requires_grad=True)
            rt = torch.tensor(rois, dtype=torch.float32, requires_grad=True)
            o = pt.prroi_pool2d(ft, rt, ph, ph, 1 / 8)
            w = torch.tensor(rng.standard_normal(o.shape), dtype=torch.float32)
            gf, gr = torch.autograd.grad((o * w).sum(), (ft, rt))
            feats = jnp.asarray(data[0].transpose(1, 2, 0))
            boxes = jnp.asarray(rois[:, 1:], jnp.float32)
            wj = jnp.asarray(w.numpy().transpose(0, 2, 3, 1))

            def loss(f, b):
                return jnp.sum(prroi_pool(f, b, ph, 1 / 8) * wj)
            oj = np.asarray(prroi_pool(feats, boxes, ph, 1 / 8)).transpose(0, 3, 1, 2)
            gfj, gbj = jax.grad(loss, argnums=(0, 1))(feats, boxes)
            put("forward", rel(oj, o.detach().numpy()))
            put("d / d box (x1, y1, x2, y2)", rel(gbj, gr.numpy()[:, 1:]))
            put("d / d features", rel(np.asarray(gfj).transpose(2, 0, 1)[None], gf.numpy()))
    # an inverted box (x2 < x1 and y2 < y1): the kernel clamps the sides to 0 and pools 0
    data = rng.standard_normal((1, 4, 10, 10)).astype(np.float32)
    roi = np.array([[0, 50.0, 50.0, 30.0, 20.0]])
    o = pt.prroi_pool2d(torch.tensor(data), torch.tensor(roi, dtype=torch.float32), 3, 3, 1 / 8).numpy()
    oj = np.asarray(prroi_pool(jnp.asarray(data[0].transpose(1, 2, 0)), jnp.asarray(roi[:, 1:], jnp.float32), 3, 1 / 8))
    rows["inverted box: max |output| (reference 0)"] = float(np.abs(oj).max())
    out["reference zero for the inverted box"] = float(np.abs(o).max())
    if ref is not None:        # the real map and boxes of the IoU prediction (256 channels)
        c3 = nchw(ref[p + "c3_t"])[0] * ref[p + "mod3"].reshape(-1)
        props = np.asarray(case["proposals"], np.float32)
        oj = np.asarray(prroi_pool(jnp.asarray(c3), jnp.asarray(np.concatenate([props[:, :2], props[:, :2] + props[:, 2:]], 1)),
                                   5, 1 / 8)).transpose(0, 3, 1, 2)
        rows["reference's pool of modulated c3_t at the proposals [N, 256, 5, 5]"] = rel(oj, ref[p + "pooled3"])
    out["rows"] = rows
    return out


def prroi_fixture(seed: int) -> dict:
    """A PrRoIPool case for the test: features [1, 8, 18, 20], 16 rois, 5x5 bins at 1/8, the
    CPU transcription's output and its gradients in the features and rois for a weight map."""
    import torch
    import prroi_pool_torch as pt
    rng = np.random.default_rng(seed)
    data, rois = pt.random_case(rng, c=8, h=18, w=20, n=16)
    data, rois = data.astype(np.float32), rois.astype(np.float32)
    ft, rt = torch.tensor(data, requires_grad=True), torch.tensor(rois, requires_grad=True)
    o = pt.prroi_pool2d(ft, rt, 5, 5, 1 / 8)
    w = rng.standard_normal(o.shape).astype(np.float32)
    gf, gr = torch.autograd.grad((o * torch.tensor(w)).sum(), (ft, rt))
    return {"prroi_features": data, "prroi_rois": rois, "prroi_weights": w, "prroi_out": o.detach().numpy(),
            "prroi_grad_features": gf.numpy(), "prroi_grad_rois": gr.numpy()}


# --------------------------------------------------------------------------- main


def check_reference(ap, path) -> None:
    """``ap.error`` unless ``path`` is a pytracking checkout."""
    if not path or not os.path.isdir(os.path.join(path, "ltr", "models", "bbreg")):
        ap.error("--reference must be a pytracking checkout (holding ltr/ and pytracking/)")


def seeded_weights(seed: int, workdir, prefix: str):
    """(workdir, spec, arrays, checkpoint path): ResNet-18 + IoU-Net drawn from ``seed``
    (``seeded.atom_resnet18_weights``), saved as ``weights.npz`` in ``workdir`` (a new temp
    folder when None); the child writes pytracking's checkpoint at the returned path."""
    from jaxtrack.models import seeded
    workdir = workdir or tempfile.mkdtemp(prefix=prefix)
    os.makedirs(workdir, exist_ok=True)
    spec = seeded.atom_resnet18_spec(seed)
    weights = seeded.atom_resnet18_weights(spec)
    np.savez(os.path.join(workdir, "weights.npz"), **weights)
    return workdir, spec, weights, os.path.join(workdir, "atom_resnet18_seed%d.pth" % seed)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--reference", help="pytracking checkout (e.g. git archive 7eb9e74)")
    ap.add_argument("--sequence", default="../shared/data/otb/Crossing", help="an OTB sequence folder ('' : none)")
    ap.add_argument("--test-frame", type=int, default=5, help="the frame whose crop gives the test features")
    ap.add_argument("--proposals", type=int, default=16)
    ap.add_argument("--seed", type=int, default=20241, help="weights seed")
    ap.add_argument("--box-seed", type=int, default=7, help="proposals and start box (numpy default_rng)")
    ap.add_argument("--refine-seed", type=int, default=3, help="jax.random key of the refinement draws")
    ap.add_argument("--synthetic-seed", type=int, default=0, help="jaxtrack.data.synthetic.make_sequence seed")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads")
    ap.add_argument("--json", default="atom_reference.json")
    ap.add_argument("--fixtures", help="also write the test fixtures to this folder")
    ap.add_argument("--workdir", help="keep the weights, checkpoint and arrays here (default: a temp dir)")
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    check_reference(ap, args.reference)

    from jaxtrack.data import load_sequence
    from jaxtrack.data.synthetic import make_sequence
    from jaxtrack.models import seeded
    from jaxtrack.trackers import atom

    workdir, spec, weights, pth = seeded_weights(args.seed, args.workdir, "atom_ref_")

    rng = np.random.default_rng(args.box_seed)
    seqs = {}
    if args.sequence:
        seqs["otb"] = load_sequence(args.sequence, "otb")
    seqs["synthetic"] = make_sequence(args.synthetic_seed, num_frames=args.test_frame + 1)
    cases, job_cases = {}, {}
    for name, seq in seqs.items():
        cases[name] = make_case(seq, args.test_frame, rng, args.proposals, args.refine_seed)
        npy = os.path.join(workdir, f"crops_{name}.npy")
        np.save(npy, cases[name]["crops"])
        cases[name]["classifier"] = classifier_job(rng, atom.ATOMConfig(backbone="resnet18"), cases[name]["base"],
                                                   workdir, name)
        job_cases[name] = {k: v for k, v in cases[name].items() if k != "crops"} | {"crops_npy": npy}
    job = {"weights_npz": os.path.join(workdir, "weights.npz"), "pth": pth, "threads": args.threads,
           "cases": job_cases}
    t0 = time.time()
    ref, arrays = run_reference(args.reference, job, workdir)
    print(f"reference ran in {time.time() - t0:.1f} s (torch {ref['torch']}, CPU)")

    params = atom.load_params(atom.ATOMConfig(backbone="resnet18"), weights=pth)     # jaxtrack's own loader
    conv1 = np.asarray(params["backbone"]["params"]["conv1"]["kernel"])
    assert np.array_equal(conv1, weights["feature_extractor.conv1.weight"].transpose(2, 3, 1, 0))
    pred = np.asarray(params["iounet"]["params"]["iou_predictor"]["kernel"])
    assert np.array_equal(pred, weights["bb_regressor.iou_predictor.weight"].T)

    report = {"reference": {"repository": "https://github.com/visionml/pytracking", "commit": REFERENCE_COMMIT,
                            "prroi_pool": f"CPU transcription of vacancy/PreciseRoIPooling {PRROI_COMMIT[:7]} "
                                          "(experiments/reference/prroi_pool_torch.py)",
                            "torch": ref["torch"], "device": "cpu"},
              "weights": dict(spec, sha256=seeded.digest(weights)),
              "seeds": {"weights": args.seed, "boxes (numpy default_rng)": args.box_seed,
                        "refinement (jax.random.PRNGKey)": args.refine_seed, "synthetic": args.synthetic_seed},
              "cases": {name: {"sequence": seqs[name].name, "test_frame": args.test_frame,
                               "scale": cases[name]["scale"], "target_box": cases[name]["target_box"],
                               "refine_box": cases[name]["refine_box"]} for name in cases}}
    first = next(iter(cases))
    report["prroi_pool"] = compare_prroi(0, arrays, first + "_", cases[first])
    report["components"] = {}
    for name in cases:
        rows, own = compare_case(params, cases[name], arrays, name + "_")
        report["components"][name] = rows
        report["cases"][name]["reference_refined_box"] = arrays[name + "_refine_predicted_box"].tolist()
        report["cases"][name]["jaxtrack_refined_box"] = own["refine_predicted_box"].tolist()
    print_report(report)
    write_report(args.json, report)
    if args.fixtures:
        write_fixtures(args.fixtures, spec, weights, cases["synthetic"], arrays, report, args)
    return report


def print_report(report):
    pp = report["prroi_pool"]
    print("\nPrRoIPool: the CPU transcription against exact integration (float64):")
    for k, v in pp["selftest (float64)"].items():
        if "vs" in k or "zero" in k:
            print(f"  {k}: {v}")
    print("\nPrRoIPool: jaxtrack against the transcription (float32), max |diff| / max |reference|")
    print("| quantity | value |\n|---|---:|")
    for k, v in pp["rows"].items():
        print(f"| {k} | {v:.2e} |")
    for name, rows in report["components"].items():
        print(f"\nIoU-Net components ({report['cases'][name]['sequence']}): max |jaxtrack - reference| / max |reference|"
              " (boxes in crop px)")
        print("| component | jaxtrack chained | fed the reference's inputs |\n|---|---:|---:|")
        cls = {}
        for row, vals in rows.items():
            if not ({"chained", "reference inputs"} & set(vals)):
                cls[row] = vals
                continue
            cells = [vals.get(m) for m in ("chained", "reference inputs")]
            print(f"| {row} | " + " | ".join("" if c is None else f"{c:.2e}" for c in cells) + " |")
        modes = [m for m in next(iter(cls.values()))] if cls else []
        print(f"\nClassifier ({report['cases'][name]['sequence']}), on the reference's normalised features (float16 values): "
              "max |jaxtrack - reference| / max |reference|")
        print("| quantity | " + " | ".join(modes) + " |\n|---|" + "---:|" * len(modes))
        for row, vals in cls.items():
            print(f"| {row} | " + " | ".join(f"{vals[m]:.2e}" for m in modes) + " |")


def write_fixtures(folder, spec, weights, case, arrays, report, args):
    """Numbers only: the weights' spec and digest, the synthetic crops (uint8), boxes, and the
    reference's outputs on them (modulation, IoUs and their box gradients, refinement, a
    channel subsample of the features)."""
    from jaxtrack.models import seeded
    os.makedirs(folder, exist_ok=True)
    p = "synthetic_"
    meta = {"reference": report["reference"],
            "made_by": "python experiments/reference/pytracking_atom.py --reference PATH --fixtures "
                       "tests/fixtures/reference/atom (docs/fidelity_atom.md)",
            "weights": dict(spec, sha256=seeded.digest(weights)),
            "synthetic": {"make_sequence_seed": args.synthetic_seed, "test_frame": args.test_frame},
            "case": {k: v for k, v in case.items() if k not in ("crops", "classifier")},
            "classifier": {k: v for k, v in case["classifier"].items() if k != "npz"}}
    with open(os.path.join(folder, "atom_reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
    keep = {k: arrays[p + k] for k in ("mod3", "mod4", "iou", "iou_grad", "refine_init_boxes", "refine_all_boxes",
                                       "refine_all_iou", "refine_predicted_box", "refine_predicted_iou")}
    keep["layer3_1_ch0to255by16"] = arrays[p + "layer3_1"][:, ::16]
    keep["c4_t_ch0to255by16"] = arrays[p + "c4_t"][:, ::16]
    keep.update(prroi_fixture(args.box_seed))
    with np.load(case["classifier"]["npz"]) as z:
        keep.update({"cls_" + k: z[k] for k in ("y19", "w", "filter0", "proj0")})
    keep.update({k + s: arrays[p + k + s] for k in ("cls_filter1", "cls_proj1", "cls_filter2", "cls_scores1",
                                                    "cls_scores2") for s in ("", "64")})
    keep["cls_xq"] = arrays[p + "cls_xq"]
    np.savez_compressed(os.path.join(folder, "reference.npz"), crops=case["crops"], **keep)
    print(f"wrote fixtures to {folder}")


if __name__ == "__main__":
    run(main)
