"""The official DAT code (shipubupt/NIPS2018) beside jaxtrack's DAT, on the CPU, on the same weights.

    python experiments/reference/nips2018_dat.py --reference /work/ref/NIPS2018 \\
        --sklearn /tmp/dat_sk --threads 1 --json dat_reference.json \\
        [--fixtures tests/fixtures/reference/dat]

``--reference`` is a checkout of https://github.com/shipubupt/NIPS2018 (tested at 7e9092a; the
folder holding ``DAT/`` or ``DAT`` itself). Its code is imported only in a child process (this
file run with ``--worker``) whose PYTHONPATH is ``DAT/modules`` and ``DAT/tracking``; nothing of
it is copied here. ``--sklearn DIR``: a folder holding scikit-learn (``pip install --target DIR
scikit-learn``), which ``tracking/bbreg.py`` imports; it is put on the child's path after the
checkout. What runs:

1. **Weights.** VGG-M conv1-3 and fc4-6 from ``dat.load_params(DATConfig(backbone="vggm"),
   seed=--seed, allow_random=True)``. conv1-3 are written as ``imagenet-vgg-m.mat`` with
   jaxtrack's ``vggm.save_vggm_mat`` and read by the official ``MDNet.load_mat_model`` and by
   jaxtrack's ``load_vggm_mat``; fc4-6 are set on the official model (see shims).
2. **Sample generators**: the official ``SampleGenerator``/``gen_samples`` and jaxtrack's
   ``gen_samples``/``gen_filtered`` draw 4000 boxes for each of the six generators ``run_mdnet``
   uses; per coordinate: means, stds and the two-sample Kolmogorov-Smirnov statistic.
3. **Components on identical inputs** (sample boxes drawn by jaxtrack from ``--box-seed``, fed to
   both): the crops (``RegionExtractor``/``crop_image`` against ``dat.crop_patches``), conv3
   features, fc6 scores, the attention maps of ``GuidedBackprop.generate_gradients`` (and what
   its hooks are), one official ``train`` iteration (hard negatives, BCE, reciprocative loss,
   the gradients of every learnable parameter, the clip norm, the SGD step) against
   ``dat.classifier_loss`` and ``dat.train(iters=1)``, and ``BBRegressor`` fit + predict
   against ``dat.fit_bbreg``/``apply_bbreg``. jaxtrack is fed the official crops and features.
4. **End to end**: the official ``run_mdnet`` and jaxtrack's jitted DAT (``backbone="vggm"``,
   ``--configs`` variants) on the first ``--frames`` frames of ``--sequence`` and on a synthetic
   sequence; boxes, agreement, frames per second. Each program draws its own random numbers
   (see docs/fidelity_dat.md for why and where the trajectories part), unless
   ``--shared-draws``: jaxtrack runs first and :class:`SharedDraws` records its sample boxes
   and batch permutations, which the official code then replays (shims R1-R4 below); both
   sides' per-frame boxes, scores, failures and seconds are reported.

Prints tables and writes ``--json``; ``--fixtures DIR`` also writes the numbers that
``tests/test_reference_dat.py`` replays: the components on a synthetic frame with smaller
batches, where the official code is given jaxtrack's crops (so that the test needs no image
code of the reference).

Run-time shims (the reference's files are not modified on disk; each is needed to run it here):

- Python 2 source, transformed at import by a finder on ``sys.meta_path`` before ``compile``:
  (T1) a ``print`` statement becomes a ``print(...)`` call of the same expression, continuation
  lines included (``run_tracker.py``, ``gen_config.py``); (T2) ``.iteritems()`` becomes ``.items()``
  (``model.py``, ``run_tracker.py``: ``Module._parameters`` and ``opts['lr_mult']`` are plain
  dicts today, so a method cannot be added to them). Nothing else is rewritten.
- CUDA: ``torch.Tensor.cuda`` and ``nn.Module.cuda`` return ``self``; ``torch.cuda.manual_seed``
  is a no-op; ``torch.set_num_threads(--threads)``.
- Second order (PyTorch 0.2/0.3 semantics): ``GuidedBackprop.generate_gradients`` calls
  ``model_output.backward(gradient=Variable(...))``. In PyTorch <= 0.3, ``backward``'s
  ``create_graph`` "defaults to False, unless grad_variables contain at least one non-volatile
  Variable" (0.3 ``torch.autograd.backward`` docstring), so the attention maps were
  differentiable and the reciprocative loss trained the network. Today the default is False:
  the maps come back without a graph and the regulariser silently gets no gradient (measured:
  ``create_graph_check`` in the JSON). The shim: ``Tensor.backward`` with a ``gradient`` and no
  ``create_graph`` passes ``create_graph=True`` (0.3's rule; ``gradient`` is never volatile).
- Gradient clipping: ``torch.nn.utils.clip_grad_norm`` is PyTorch 0.3's (per-parameter
  norms summed as Python floats, grads scaled when ``max_norm / (norm + 1e-6) < 1``) with each
  norm taken in float64, as 0.3's CPU ``THTensor_(normall)`` accumulated (``accreal``, double
  for float tensors). Today's float32 CPU norm kernel is off by 1.5e-5 on a 2.4M-entry vector
  (fc4's gradient) and gave the official clip norm 5e-5 below the float64 norm of its own
  gradients; the norm is 300-5500 against a max of 10, so every step is clipped and that
  error scaled every step (measured with ``--trace-init``; ``--torch-clip-norm`` keeps
  today's kernel).
- ``scipy.misc.imresize`` (removed from SciPy 1.3): ``PIL.Image.fromarray(uint8).resize((w, h),
  BILINEAR)``, what ``imresize`` did for uint8 RGB (``bytescale`` leaves uint8 unchanged).
- Contiguous: ``RegionExtractor`` returns ``torch.from_numpy`` of ``regions.transpose(0, 3, 1,
  2).astype('float32')`` (NumPy keeps the transposed, channels-last strides) and
  ``load_mat_model`` sets ``torch.from_numpy(np.transpose(...))``; today's ``conv2d`` keeps
  channels-last layouts, so conv3's output is not contiguous and ``model.py``'s
  ``x.view(x.size(0), -1)`` raises (PyTorch 0.3 convolutions returned contiguous outputs). The
  regions and the parameters are made ``.contiguous()`` (the same values).
- fc4-6: ``MDNet`` draws them at random (torch default init); they are set to jaxtrack's
  (``fc4`` rows permuted from jaxtrack's (h, w, c) flattening to torch's (c, h, w)).
- Random draws: for the components, ``np.random.permutation`` returns ``arange`` inside the one
  ``train`` call (the batch is the given samples in order) and dropout is off on both sides
  (``nn.Dropout.p = 0``; jaxtrack ``dropout=0``). End to end both programs keep their own draws
  (``np.random.seed(123)`` of ``run_tracker.py``; jaxtrack's key) and their dropout.
- Shared draws (``--shared-draws`` only), in ``_Replay``: (R1) ``run_tracker.gen_samples``
  returns jaxtrack's boxes for the same call (first frame: bbreg, positives, the two negative
  halves; each frame: the candidates, then the stored positives and negatives), found by the
  frame (counted by candidate calls) and the generator's kind; (R2) ``np.random.permutation``
  returns jaxtrack's: the first-frame negatives' order, and in ``train`` the permutation
  rounds of ``dat.permutation_round`` in the official call order, mapped from jaxtrack's ring
  slots to the official memory order (stored frames oldest first); (R3) dropout off on both
  sides (its masks are not shared); (R4) unless ``--own-crops``, ``RegionExtractor.
  extract_regions`` returns jaxtrack's float crops (``dat.crop_patches`` on the padded frame)
  in place of ``crop_image``'s (D9 is open; its effect is what ``--own-crops`` measures). A
  call with no jaxtrack entry (the programs took different branches) falls back to the
  official draw and is reported as a desync.
- Paths: ``run_tracker.img_list`` (a global of its ``__main__``, read by ``forwordgradients``) is
  set to the frame files; ``opts['model_path']`` to the written ``.mat``. For the fixtures,
  ``data_prov.crop_image`` returns jaxtrack's crop of the same box.
- Observation: ``sys.settrace`` copies ``train``'s locals at return (losses, maps);
  ``torch.nn.utils.clip_grad_norm`` is wrapped to record the gradients and their norm.
  ``--trace-init`` (with ``--shared-draws``): ``torch.optim.SGD.step`` and ``clip_grad_norm``
  are wrapped to record, per training iteration, fc after the step and (from ``train``'s
  frame) the losses, the clip norm and the hard-negative candidate scores; jaxtrack's side is
  :func:`trace_jaxtrack`; ``--trace-frames N`` extends both to the online updates of frames
  ``1..N-1``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time

import numpy as np

from jaxtrack_harness import agreement, compact_json, fps, rel, run, run_worker, write_report

SIZES = {"full": dict(batch_pos=32, batch_neg=32, batch_neg_cand=1024),
         "small": dict(batch_pos=8, batch_neg=8, batch_neg_cand=16)}


# ====================================================================== the child (official code)

def _transform(src: str) -> str:
    src = re.sub(r"^(\s*)print\s+(?=[^\s(=])((?:[^\n]*\\\n)*[^\n]*)$", r"\1print(\2)", src, flags=re.M)  # T1
    return src.replace(".iteritems()", ".items()")                                # T2


def _install(job):
    import importlib.abc
    import importlib.util
    import types

    class Py2Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def __init__(self, dirs):
            self.dirs = dirs

        def find_spec(self, name, path, target=None):
            for d in self.dirs:
                f = os.path.join(d, name + ".py")
                if "." not in name and os.path.exists(f):
                    return importlib.util.spec_from_file_location(name, f, loader=self)
            return None

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            with open(module.__spec__.origin) as f:
                src = _transform(f.read())
            exec(compile(src, module.__spec__.origin, "exec"), module.__dict__)

    sys.meta_path.insert(0, Py2Finder(job["dirs"]))
    import torch
    torch.set_num_threads(job["threads"])
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.cuda.manual_seed = lambda *a, **k: None
    plain_backward = torch.Tensor.backward

    def backward(self, gradient=None, retain_graph=None, create_graph=None, **kw):
        if create_graph is None:
            create_graph = gradient is not None and job.get("create_graph", True)
        return plain_backward(self, gradient, retain_graph, create_graph, **kw)
    torch.Tensor.backward = backward

    def clip_grad_norm(parameters, max_norm, norm_type=2):      # shim: PyTorch 0.3's clip_grad_norm (docstring)
        params = [q for q in parameters if q.grad is not None]
        total = sum(float(q.grad.detach().double().norm(norm_type)) ** norm_type for q in params) ** (1.0 / norm_type)
        coef = max_norm / (total + 1e-6)
        if coef < 1:
            for q in params:
                q.grad.detach().mul_(coef)
        return total
    if job.get("clip_norm_float64", True):
        torch.nn.utils.clip_grad_norm = clip_grad_norm

    from PIL import Image
    import scipy
    misc = types.ModuleType("scipy.misc")

    def imresize(arr, size):
        assert arr.dtype == np.uint8
        return np.asarray(Image.fromarray(arr).resize((size[1], size[0]), Image.BILINEAR))
    misc.imresize = imresize
    sys.modules["scipy.misc"] = misc
    scipy.misc = misc
    return torch


def _official(job):
    torch = _install(job)
    import options
    import data_prov
    import run_tracker as rt
    plain_next = data_prov.RegionExtractor.__next__

    def next_contiguous(self):              # shim: see "Contiguous" in the module docstring
        return plain_next(self).contiguous()
    data_prov.RegionExtractor.__next__ = data_prov.RegionExtractor.next = next_contiguous
    options.opts["model_path"] = job["mat"]
    options.opts["use_gpu"] = True          # .cuda() is a no-op
    return torch, rt, options.opts


def _set_fc(model, fc, torch):
    for q in model.parameters():            # shim: load_mat_model's transposed (strided) conv weights
        q.data = q.data.contiguous()
    w4 = fc["fc4_kernel"].reshape(3, 3, 512, 512).transpose(3, 2, 0, 1).reshape(512, 4608)
    layers = {"fc4": (model.layers.fc4[1], w4), "fc5": (model.layers.fc5[1], fc["fc5_kernel"].T),
              "fc6": (model.branches[0][1], fc["fc6_kernel"].T)}
    for name, (lin, w) in layers.items():
        lin.weight.data = torch.from_numpy(np.ascontiguousarray(w, np.float32))
        lin.bias.data = torch.from_numpy(np.ascontiguousarray(fc[name + "_bias"], np.float32))


def _no_dropout(model, torch):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def _fc_of(model):
    """fc4-6 of an official model in jaxtrack's layout (``{fc4_kernel: [4608 (h, w, c), 512], ...}``)."""
    lin = {"fc4": model.layers.fc4[1], "fc5": model.layers.fc5[1], "fc6": model.branches[0][1]}
    out = {}
    for name, layer in lin.items():
        w = layer.weight.detach().numpy().astype(np.float32)
        out[name + "_kernel"] = _hwc_rows(w) if name == "fc4" else w.T.copy()
        out[name + "_bias"] = layer.bias.detach().numpy().astype(np.float32).copy()
    return out


def _trace_row(fc):
    """What ``--trace-init`` keeps of fc after an iteration: fc4's first ``TRACE_COLUMNS``
    output units, fc5 and fc6 whole."""
    return {k: np.asarray(v)[:, :TRACE_COLUMNS] if k == "fc4_kernel" else np.asarray(v) for k, v in fc.items()}


TRACE_COLUMNS = 64


def _trace_official(torch, replay, models, frames: int = 1):
    """``--trace-init`` in the child: per training iteration of frames ``0..frames-1`` (the
    first-frame training, then the online updates), fc after ``optimizer.step``, and at the
    clip (``train``'s locals, read from its frame): BCE, reciprocative loss, the clip norm and
    the 33 highest hard-negative candidate scores, each row with its frame. Returns (trace,
    remove)."""
    trace = {"fc": [], "loss": [], "norm": [], "top": [], "frame": []}
    clip, step = torch.nn.utils.clip_grad_norm, torch.optim.SGD.step

    def clip_rec(params, max_norm, *a, **k):
        norm = clip(params, max_norm, *a, **k)
        if replay.frame < frames:
            loc = sys._getframe(1).f_locals
            trace["loss"].append([float(loc["loss"].detach()), float(loc["spaloss"].detach())])
            trace["norm"].append(float(norm))
            trace["top"].append(np.sort(loc["neg_cand_score"].numpy().astype(np.float64))[::-1][:33])
            trace["frame"].append(replay.frame)
        return norm

    def step_rec(self, *a, **k):
        r = step(self, *a, **k)
        if replay.frame < frames:
            trace["fc"].append(_trace_row(_fc_of(models[-1])))
        return r
    torch.nn.utils.clip_grad_norm, torch.optim.SGD.step = clip_rec, step_rec

    def remove():
        torch.nn.utils.clip_grad_norm, torch.optim.SGD.step = clip, step
    return trace, remove


def _hwc(feats):
    """torch conv3 features (c, h, w flattening) -> jaxtrack's (h, w, c)."""
    return np.asarray(feats).reshape(-1, 512, 3, 3).transpose(0, 2, 3, 1).reshape(len(feats), -1)


def worker(job_path: str) -> None:
    with open(job_path) as f:
        job = json.load(f)
    torch, rt, opts = _official(job)
    fc = dict(np.load(job["fc"]))
    out, arrays = {}, {}
    for task in job["tasks"]:
        t0 = time.perf_counter()
        globals()["task_" + task["kind"]](task, job, torch, rt, opts, fc, out, arrays)
        print(f"official {task['kind']} {task.get('prefix', task.get('name', ''))}: "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    np.savez(job["arrays_out"], **arrays)
    with open(job["json_out"], "w") as f:
        json.dump(out, f)


def task_samplers(task, job, torch, rt, opts, fc, out, arrays):
    np.random.seed(task["seed"])
    box, size, n = np.array(task["box"], np.float32), tuple(task["img_wh"]), task["n"]
    for name, (args, kw, overlap, scale) in SAMPLERS.items():
        gen = rt.SampleGenerator(args[0], size, *args[1:], **kw)
        arrays["sampler_" + name] = rt.gen_samples(gen, box, n, overlap, scale)


def task_components(task, job, torch, rt, opts, fc, out, arrays):
    import data_prov
    plain_crop, plain_opts = data_prov.crop_image, dict(opts)
    try:
        _components(task, job, torch, rt, opts, fc, out, arrays)
    finally:
        data_prov.crop_image = plain_crop
        opts.update(plain_opts)


def _components(task, job, torch, rt, opts, fc, out, arrays):
    p = task["prefix"]
    for k, v in task["opts"].items():
        opts[k] = v
    model = rt.MDNet(opts["model_path"])
    _set_fc(model, fc, torch)
    _no_dropout(model, torch)
    model.set_learnable_params(opts["ft_layers"])
    img = rt.Image.open(task["frame"]).convert("RGB")
    rt.img_list = [task["frame"]]
    boxes = {k: np.load(task["boxes"])[k] for k in ("pos", "neg", "bbreg", "gt")}
    if task.get("inject_crops"):                       # fixtures: jaxtrack's crops
        import data_prov
        z = np.load(task["crops"])
        table = {tuple(np.round(b, 4)): c for k in ("pos", "neg", "bbreg") for b, c in zip(z[k + "_boxes"], z[k])}
        data_prov.crop_image = lambda im, b, *a, **k: table[tuple(np.round(np.asarray(b, np.float32), 4))]

    # crops, features, scores (eval mode)
    for k in ("pos", "neg"):
        ext = rt.RegionExtractor(img, boxes[k], opts["img_size"], opts["padding"], len(boxes[k]))
        regions = next(iter(ext))
        arrays[p + k + "_crops"] = (regions.numpy() + 128).round().astype(np.uint8).transpose(0, 2, 3, 1)
        feats = rt.forward_samples(model, img, boxes[k])
        arrays[p + k + "_feats"] = _hwc(feats.numpy())
        model.eval()
        arrays[p + k + "_scores"] = model(feats, in_layer="fc4").detach().numpy()

    # attention maps: what the hooks are, and the maps of both classes
    gbp = rt.guided_backprop.GuidedBackprop(model, 1)
    relu_hooks = [name for name, m in model.named_modules()
                  if isinstance(m, torch.nn.ReLU) and len(m._backward_hooks)]
    conv1_out = {}
    h = model.layers.conv1[0].register_forward_hook(lambda m, i, o: conv1_out.__setitem__("z", o))
    regions = torch.from_numpy(np.ascontiguousarray(arrays[p + "pos_crops"].transpose(0, 3, 1, 2), np.float32) - 128.0)
    fired = []
    for cls, vec in (("pos", [0, 10]), ("neg", [10, 0])):
        g = gbp.generate_gradients(regions, vec)
        arrays[p + "pos_maps_" + cls] = (g.detach() ** 2).sum(1).numpy()
        # the same gradient by autograd at conv1's output (pre-ReLU)
        z = conv1_out["z"]
        sc = model(regions, out_layer="fc6")
        zz = conv1_out["z"]
        (gz,) = torch.autograd.grad(sc, zz, grad_outputs=torch.tensor([vec] * len(regions), dtype=torch.float32))
        fired.append(float((g.detach() - gz).abs().max() / gz.abs().max()))
        del z
    h.remove()
    # float32 sensitivity of the official maps: the same maps in float64
    model.double()
    conv1_64 = {}
    h = model.layers.conv1[0].register_forward_hook(lambda m, i, o: conv1_64.__setitem__("z", o))
    for cls, vec in (("pos", [0, 10]), ("neg", [10, 0])):
        sc = model(regions.double(), out_layer="fc6")
        (gz,) = torch.autograd.grad(sc, conv1_64["z"], grad_outputs=torch.tensor([vec] * len(regions),
                                                                                 dtype=torch.float64))
        m64 = (gz ** 2).sum(1).numpy()
        m32 = arrays[p + "pos_maps_" + cls]
        out.setdefault(p + "float64_check", {})["maps_" + cls + "_rel_float32_vs_float64"] = \
            float(np.abs(m32 - m64).max() / np.abs(m64).max())
    h.remove()
    model.float()
    out[p + "hooks"] = {"relus_with_backward_hooks": relu_hooks,
                        "hook_equals_grad_at_conv1_output_rel": max(fired),
                        "hooked_module": str(list(model._modules.items())[0][1][0][1]),
                        "map_shape": list(arrays[p + "pos_maps_pos"].shape)}
    # the create_graph default of today's PyTorch would drop the regulariser's gradient
    job_cg = job.get("create_graph", True)
    job["create_graph"] = False
    g0 = gbp.generate_gradients(regions, [0, 10])
    job["create_graph"] = True
    g1 = gbp.generate_gradients(regions, [0, 10])
    job["create_graph"] = job_cg
    out[p + "create_graph_check"] = {"map_requires_grad_without_shim": bool(g0.requires_grad),
                                     "map_requires_grad_with_shim": bool(g1.requires_grad)}

    # one train iteration, batches in order, dropout off
    pos_feats = rt.forward_samples(model, img, boxes["pos"])
    neg_feats = rt.forward_samples(model, img, boxes["neg"])
    rec = {}
    clip = torch.nn.utils.clip_grad_norm

    def clip_rec(params, max_norm, *a, **k):
        params = list(params)
        rec["grads"] = {n: q.grad.detach().clone().numpy() for n, q in model.params.items() if q.grad is not None}
        rec["norm"] = float(clip(params, max_norm, *a, **k))
        return rec["norm"]
    torch.nn.utils.clip_grad_norm = clip_rec
    perm = np.random.permutation
    np.random.permutation = lambda x: np.arange(x) if np.isscalar(x) else np.asarray(x)
    seen = {}

    def tracer(frame, event, arg):
        if frame.f_code is rt.train.__code__:
            def local(fr, ev, a):
                if ev == "return":
                    seen.update({k: v for k, v in fr.f_locals.items()})
                return local
            return local
        return None
    optimizer = rt.set_optimizer(model, opts["lr_init"])
    n = len(boxes["pos"])
    sys.settrace(tracer)
    try:
        rt.train(model, rt.BinaryLoss(), optimizer, pos_feats, neg_feats, 1,
                 np.zeros((n, 1), int), boxes["pos"], np.zeros((len(boxes["neg"]), 1), int), boxes["neg"],
                 rt.img_list, gbp)
    finally:
        sys.settrace(None)
        np.random.permutation = perm
        torch.nn.utils.clip_grad_norm = clip
    t = lambda v: v.detach().numpy()    # noqa: E731
    out[p + "train"] = {"bce": float(seen["loss"]), "reg": float(seen["spaloss"]),
                        "total": float(seen["finalloss"]), "clip_norm": rec["norm"]}
    arrays[p + "hard_neg_boxes"] = np.asarray(seen["batch_negsamples"])
    for k in ("posguided_grads", "posguided_grads_1", "negguided_grads", "negguided_grads_1"):
        arrays[p + "train_" + k + "_mapsum"] = t((seen[k] ** 2).sum(1))
    for name, g in rec["grads"].items():
        arrays[p + "grad_" + name] = g
    for name, q in model.params.items():
        arrays[p + "param_" + name] = t(q)

    # bounding-box regression
    bb_feats = rt.forward_samples(model, img, boxes["bbreg"])
    reg = rt.BBRegressor(img.size)
    reg.train(bb_feats, boxes["bbreg"], boxes["gt"])
    arrays[p + "bbreg_feats"] = _hwc(bb_feats.numpy())
    arrays[p + "bbreg_pred"] = reg.predict(bb_feats[:task["n_predict"]], boxes["bbreg"][:task["n_predict"]])


def task_track(task, job, torch, rt, opts, fc, out, arrays):
    for k, v in task.get("opts", {}).items():
        opts[k] = v
    base = rt.MDNet

    class SeededMDNet(base):                # shim: fc4-6 set to the shared ones
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            _set_fc(self, fc, torch)
            if task.get("no_dropout"):
                _no_dropout(self, torch)
            if task.get("float64"):
                self.double()
            models.append(self)
    models = []
    plain_dtype = torch.get_default_dtype()
    if task.get("float64"):                 # diagnostic: the official program in float64
        torch.set_default_dtype(torch.float64)
    rt.MDNet = SeededMDNet
    np.random.seed(123)                     # what run_tracker.py does at import
    torch.manual_seed(456)
    rt.img_list = task["frames"]
    replay = _Replay(task, rt, job, models) if task.get("replay") else None
    trace = None
    if task.get("trace_init"):
        trace, untrace = _trace_official(torch, replay, models, task.get("trace_frames", 1))
    import contextlib
    import io
    printed = io.StringIO()                 # its per-frame lines "Frame i/n, Score s, Time t"
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(printed):
            result, result_bb, fps_ = rt.run_mdnet(task["frames"], np.array(task["box"], np.float64))
    finally:
        rt.MDNet = base
        torch.set_default_dtype(plain_dtype)
        if replay is not None:
            replay.remove()
        if trace is not None:
            untrace()
    wall = time.perf_counter() - t0
    frame_times = [float(t) for t in re.findall(r"Time ([0-9.]+)", printed.getvalue())]
    arrays[task["name"] + "_boxes"] = result_bb
    arrays[task["name"] + "_frame_times"] = np.asarray(frame_times)
    arrays[task["name"] + "_scores"] = np.asarray([float(v) for v in re.findall(r"Score (-?[0-9.]+)", printed.getvalue())])
    out[task["name"]] = {"fps_official_reported": fps_, "wall_s": wall,
                         "init_s": wall - float(np.sum(frame_times))}
    if replay is not None:
        out[task["name"]]["replay"] = replay.report()
        for k, v in replay.fc_after_init.items():
            arrays[task["name"] + "_fc_after_init_" + k] = v
    if trace is not None and trace["fc"]:
        for k in trace["fc"][0]:
            arrays[task["name"] + "_trace_" + k] = np.stack([row[k] for row in trace["fc"]])
        for k in ("loss", "norm", "top", "frame"):
            arrays[task["name"] + "_trace_" + k] = np.asarray(trace[k])


class _Replay:
    """Shared draws in the child: ``gen_samples`` and ``np.random.permutation`` return
    jaxtrack's (``SharedDraws``); dropout is off; with ``inject_crops``,
    ``RegionExtractor.extract_regions`` returns jaxtrack's float crops (``dat.crop_patches``
    on the padded frame) instead of ``crop_image``'s rounded-window PIL crops (D9). A call
    the parent has no entry for (the programs took different branches) falls back to the
    official draw and is recorded as a desync."""

    def __init__(self, task, rt, job, models):
        import data_prov
        self.models, self.fc_after_init = models, {}
        self.z = dict(np.load(task["replay"]))
        self.rt, self.data_prov, self.frame, self.perm_k = rt, data_prov, 0, 0
        self.offsets, self.desyncs, self.crop_s, self.served = {}, [], 0.0, 0
        dtype = np.float64 if task.get("float64") else np.float32
        self.plain = (rt.gen_samples, np.random.permutation, data_prov.RegionExtractor.extract_regions)
        rt.gen_samples = self.gen_samples
        np.random.permutation = self.permutation
        if task.get("inject_crops"):
            import jax
            from jaxtrack.core import Frame
            from jaxtrack.frames import pad_frame
            from jaxtrack.trackers import dat
            cfg = dat.DATConfig(backbone="vggm")
            crop = jax.jit(lambda image, size, boxes: dat.crop_patches(cfg, Frame(image, size), boxes))
            replay = self

            def extract_regions(ext, index):
                t0 = time.perf_counter()
                f = pad_frame(ext.image)
                c = np.asarray(crop(f.image, f.size, np.asarray(ext.samples[index], np.float32)))
                replay.crop_s += time.perf_counter() - t0
                return np.ascontiguousarray(c.transpose(0, 3, 1, 2), dtype) - 128.0
            data_prov.RegionExtractor.extract_regions = extract_regions
        else:
            plain_extract = self.plain[2]

            def extract_regions(ext, index):
                t0 = time.perf_counter()
                r = plain_extract(ext, index)
                self.crop_s += time.perf_counter() - t0
                return r.astype(dtype)
            data_prov.RegionExtractor.extract_regions = extract_regions

    def remove(self):
        self.rt.gen_samples, np.random.permutation, self.data_prov.RegionExtractor.extract_regions = self.plain

    @staticmethod
    def role(gen, overlap, scale):
        if overlap is None and scale is None:
            return "cand"
        if scale is not None:
            return "bbreg"
        if gen.type == "gaussian":
            return "pos"
        if gen.type == "whole":
            return "neg_whole"
        return "neg_uniform" if overlap[1] == 0.5 else "neg"

    def gen_samples(self, generator, bbox, n, overlap_range=None, scale_range=None):
        role = self.role(generator, overlap_range, scale_range)
        if role == "cand":
            self.frame, self.perm_k = self.frame + 1, 0
            if self.frame == 1:         # fc4-6 after the first frame's training
                self.fc_after_init = _fc_of(self.models[-1])
        k = f"f{self.frame}_gen_{role}"
        if k in self.z and len(self.z[k]) == n:
            off = float(np.max(np.abs(np.asarray(bbox, np.float64) - self.z[f"f{self.frame}_box_{role}"])))
            self.offsets[self.frame] = max(self.offsets.get(self.frame, 0.0), off)
            self.served += 1
            return self.z[k].copy()
        self.desyncs.append([self.frame, k])
        return self.plain[0](generator, bbox, n, overlap_range, scale_range)

    def permutation(self, x):
        if np.ndim(x) == 0:
            k = f"f{self.frame}_perm_{self.perm_k}"
            self.perm_k += 1
            if k in self.z and len(self.z[k]) == int(x):
                self.served += 1
                return self.z[k].copy()
        else:
            k = f"f{self.frame}_negperm"
            if k in self.z and np.array_equal(np.sort(np.asarray(x), 0), np.sort(self.z[k], 0)):
                self.served += 1
                return self.z[k].copy()
        self.desyncs.append([self.frame, k])
        return self.plain[1](x)

    def report(self):
        """Per frame, how far the official box a draw was asked around lies from jaxtrack's
        (px); the calls jaxtrack had no draw for; seconds spent cropping."""
        return {"box_offset_px": {str(k): v for k, v in sorted(self.offsets.items())},
                "desyncs": self.desyncs[:20], "n_desyncs": len(self.desyncs), "served": self.served,
                "entries": len(self.z), "crop_s": self.crop_s}


# (type, trans_f, scale_f[, aspect_f]), kwargs, overlap range, scale range: run_mdnet's generators
SAMPLERS = {
    "track": (("gaussian", 0.6, 1.05), {"valid": True}, None, None),
    "pos": (("gaussian", 0.1, 1.2), {}, [0.7, 1], None),
    "neg_uniform": (("uniform", 1, 2, 1.1), {}, [0, 0.5], None),
    "neg_whole": (("whole", 0, 1.2, 1.1), {}, [0, 0.5], None),
    "neg_update": (("uniform", 1.5, 1.2), {}, [0, 0.3], None),
    "bbreg": (("uniform", 0.3, 1.5, 1.1), {}, [0.6, 1], [1, 2]),
}


# ====================================================================== the parent (jaxtrack)

def weights(seed: int):
    from jaxtrack.trackers import dat
    return dat.load_params(dat.DATConfig(backbone="vggm"), seed=seed, allow_random=True)


def write_weights(params, folder):
    from jaxtrack.models import vggm
    mat = os.path.join(folder, "imagenet-vgg-m.mat")
    vggm.save_vggm_mat(mat, params["conv"])
    fcp = os.path.join(folder, "fc.npz")
    np.savez(fcp, **_flat_fc(params["fc"]))
    return mat, fcp


def jax_samplers(box, img_wh, n, seed):
    import jax
    import jax.numpy as jnp
    from jaxtrack.trackers import dat
    b, wh = jnp.asarray(box, jnp.float32), jnp.asarray(img_wh, jnp.float32)
    out = {}
    for i, (name, (args, kw, overlap, scale)) in enumerate(SAMPLERS.items()):
        k = jax.random.fold_in(jax.random.PRNGKey(seed), i)
        aspect = args[3] if len(args) > 3 else None
        if overlap is None and scale is None:
            out[name] = dat.gen_samples(k, args[0], b, n, wh, args[1], args[2], aspect, valid=kw.get("valid", False))
        else:
            out[name] = dat.gen_filtered(k, args[0], b, n, wh, args[1], args[2], aspect,
                                         iou_range=overlap, scale_range=scale)[0]
    return {k: np.asarray(v) for k, v in out.items()}


def sampler_table(ours, ref):
    from scipy.stats import ks_2samp
    rows = {}
    for name in SAMPLERS:
        a, b = ours[name], ref["sampler_" + name]
        rows[name] = {"n_jaxtrack": len(a), "n_official": len(b),
                      "mean_jaxtrack": a.mean(0).round(3).tolist(), "mean_official": b.mean(0).round(3).tolist(),
                      "std_jaxtrack": a.std(0).round(3).tolist(), "std_official": b.std(0).round(3).tolist(),
                      "ks": [round(float(ks_2samp(a[:, j], b[:, j]).statistic), 4) for j in range(4)]}
    return rows


def component_boxes(frame_img, gt, sizes, seed):
    """Positive, negative candidate and bbreg boxes drawn by jaxtrack's generators."""
    import jax
    import jax.numpy as jnp
    from jaxtrack.trackers import dat
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    b = jnp.asarray(gt, jnp.float32)
    wh = jnp.asarray([frame_img.shape[1], frame_img.shape[0]], jnp.float32)
    pos = dat.gen_filtered(k[0], "gaussian", b, 2 * sizes["batch_pos"], wh, 0.1, 1.2, iou_range=(0.7, 1.0))[0]
    neg = dat.gen_filtered(k[1], "uniform", b, 2 * sizes["batch_neg_cand"], wh, 1.0, 2.0, 1.1,
                           iou_range=(0.0, 0.5))[0]
    bb = dat.gen_filtered(k[2], "uniform", b, sizes["n_bbreg"], wh, 0.3, 1.5, 1.1,
                          iou_range=(0.6, 1.0), scale_range=(1.0, 2.0))[0]
    # distinct boxes (the fixtures look crops up by box)
    def distinct(x, n):
        x = np.asarray(x)
        _, first = np.unique(x, axis=0, return_index=True)
        return x[np.sort(first)][:n]
    return {"pos": distinct(pos, sizes["batch_pos"]), "neg": distinct(neg, sizes["batch_neg_cand"]),
            "bbreg": distinct(bb, sizes["n_bbreg"]), "gt": np.asarray(gt, np.float32)}


def jax_components(params, frame_img, boxes, ref, p, sizes):
    """jaxtrack's side of the components, fed the official crops and features; relative
    differences per row."""
    import jax
    import jax.numpy as jnp
    from jaxtrack.core import Frame
    from jaxtrack.trackers import dat
    cfg = dat.DATConfig(backbone="vggm", dropout=0.0, **{k: sizes[k] for k in ("batch_pos", "batch_neg",
                                                                               "batch_neg_cand")})
    conv, fc = params["conv"], params["fc"]
    frame = Frame.of(frame_img)
    rows, mine = {}, {}
    for k in ("pos", "neg"):
        ours = np.asarray(dat.crop_patches(cfg, frame, jnp.asarray(boxes[k])))
        rows[f"crops {k} (jaxtrack crop_patches vs crop_image)"] = rel(ours, ref[p + k + "_crops"])
        mine[k + "_crops"] = ours
        f = dat.conv_features(cfg, conv, jnp.asarray(ref[p + k + "_crops"], jnp.float32))
        f = np.asarray(f).reshape(len(f), -1)
        rows[f"conv3 features {k}"] = rel(f, ref[p + k + "_feats"])
        s = np.asarray(dat.fc_logits(fc, jnp.asarray(ref[p + k + "_feats"])))
        rows[f"fc6 scores {k}"] = rel(s, ref[p + k + "_scores"])
    pc = jnp.asarray(ref[p + "pos_crops"], jnp.float32)
    maps = np.asarray(dat.attention_maps(cfg, conv, fc, pc))
    rows["attention maps, pos samples, pos class (conv1 output)"] = rel(maps[0], ref[p + "pos_maps_pos"])
    rows["attention maps, pos samples, neg class (conv1 output)"] = rel(maps[1], ref[p + "pos_maps_neg"])
    g8 = dat.DATConfig(backbone="vggm", att_layer="input", att_guided=True)
    gm = np.asarray(dat.attention_maps(g8, conv, fc, pc))
    rows["(former guided8 maps w.r.t. the patch: shape)"] = list(gm.shape[1:])

    # one training iteration: the batch in order, hard negatives, loss, gradients, clip, SGD step
    pos_f, neg_f = jnp.asarray(ref[p + "pos_feats"]), jnp.asarray(ref[p + "neg_feats"])
    hard = np.asarray(jax.lax.top_k(dat.scores_of(cfg, fc, neg_f), cfg.batch_neg)[1])
    ref_hard = {tuple(b) for b in np.round(ref[p + "hard_neg_boxes"], 3)}
    rows["hard negatives: same set"] = ref_hard == {tuple(b) for b in np.round(boxes["neg"][hard], 3)}
    neg_crops = jnp.asarray(ref[p + "neg_crops"], jnp.float32)
    key = jax.random.PRNGKey(0)
    (total, (bce, reg)), (gfc, gconv) = jax.value_and_grad(
        lambda f, c: dat.classifier_loss(cfg, f, c, pos_f, neg_f[hard], pc, neg_crops[hard], key), has_aux=True,
        argnums=(0, 1))(fc, conv)
    tr = ref[p + "train"]
    rows["BCE loss"] = rel(bce, tr["bce"])
    rows["reciprocative loss"] = rel(reg, tr["reg"])
    g_ref = {"fc4_kernel": _hwc_rows(ref[p + "grad_fc4_weight"]), "fc4_bias": ref[p + "grad_fc4_bias"],
             "fc5_kernel": ref[p + "grad_fc5_weight"].T, "fc5_bias": ref[p + "grad_fc5_bias"],
             "fc6_kernel": ref[p + "grad_fc6_0_weight"].T, "fc6_bias": ref[p + "grad_fc6_0_bias"]}
    for name, g in g_ref.items():
        layer, kind = name.split("_")
        rows[f"gradient {name}"] = rel(gfc[layer][kind], g)
    for layer in ("conv1", "conv2", "conv3"):
        rows[f"gradient {layer}_kernel (second order)"] = rel(
            gconv[layer]["kernel"], ref[p + f"grad_{layer}_weight"].transpose(2, 3, 1, 0))
        rows[f"gradient {layer}_bias (second order)"] = rel(gconv[layer]["bias"], ref[p + f"grad_{layer}_bias"])
    sq = sum(float(jnp.sum(jnp.square(g))) for g in jax.tree_util.tree_leaves((gfc, gconv)))
    rows["clip norm (fc + conv gradients)"] = rel(np.sqrt(sq), tr["clip_norm"])
    sq_fc = sum(float(jnp.sum(jnp.square(g))) for g in jax.tree_util.tree_leaves(gfc))
    rows["(clip norm without the conv gradients, former)"] = rel(np.sqrt(sq_fc), tr["clip_norm"])

    crops_by_idx = {"pos": pc, "neg": neg_crops}

    def att_source(k, f, pos_idx, neg_idx):
        return crops_by_idx["pos"][pos_idx], crops_by_idx["neg"][neg_idx]
    n_pos, n_neg = pos_f.shape[0], neg_f.shape[0]
    fc1, _ = dat.train(cfg, conv, fc, jax.tree_util.tree_map(jnp.zeros_like, fc), pos_f, jnp.ones(n_pos, bool),
                       neg_f, jnp.ones(n_neg, bool), att_source, key, 1, cfg.lr_init)
    p_ref = {"fc4": (_hwc_rows(ref[p + "param_fc4_weight"]), ref[p + "param_fc4_bias"]),
             "fc5": (ref[p + "param_fc5_weight"].T, ref[p + "param_fc5_bias"]),
             "fc6": (ref[p + "param_fc6_0_weight"].T, ref[p + "param_fc6_0_bias"])}
    for layer, (w, b) in p_ref.items():
        dw = np.asarray(fc1[layer]["kernel"]) - np.asarray(fc[layer]["kernel"])
        rows[f"SGD step {layer} kernel (update)"] = rel(dw, w - np.asarray(fc[layer]["kernel"]))
        rows[f"SGD step {layer} bias (update)"] = rel(np.asarray(fc1[layer]["bias"]) - np.asarray(fc[layer]["bias"]),
                                                      b - np.asarray(fc[layer]["bias"]))
        rows[f"{layer} after the step (parameters)"] = max(rel(fc1[layer]["kernel"], w), rel(fc1[layer]["bias"], b))

    # bounding-box regression on the official features
    bb, gt, feats = boxes["bbreg"], jnp.asarray(boxes["gt"]), jnp.asarray(ref[p + "bbreg_feats"])
    mask = (dat.box_iou(jnp.asarray(bb), gt) >= 0.6) & (jnp.prod(jnp.asarray(bb)[:, 2:], 1) / jnp.prod(gt[2:]) >= 1) \
        & (jnp.prod(jnp.asarray(bb)[:, 2:], 1) / jnp.prod(gt[2:]) <= 2)
    w, b = dat.fit_bbreg(cfg, feats, jnp.asarray(bb), gt, mask)
    n = len(ref[p + "bbreg_pred"])
    img_wh = jnp.asarray([frame_img.shape[1], frame_img.shape[0]], jnp.float32)
    pred = np.asarray(dat.apply_bbreg(w, b, feats[:n], jnp.asarray(bb[:n]), img_wh))
    rows["bbreg predict (boxes, px)"] = float(np.abs(pred - ref[p + "bbreg_pred"]).max())
    mine["bbreg_pred"] = pred
    return rows, mine


def _hwc_rows(w):
    """torch fc4 weight [512, 4608 (c, h, w)] -> jaxtrack kernel [4608 (h, w, c), 512]."""
    return w.reshape(512, 512, 3, 3).transpose(2, 3, 1, 0).reshape(4608, 512)


def _flat_fc(fc):
    """fc4-6 as ``{fc4_kernel, fc4_bias, ...}`` NumPy arrays (the layout the harness compares)."""
    return {f"{k}_{n}": np.asarray(v[n]) for k, v in fc.items() for n in ("kernel", "bias")}


def _jaxtrack_dat(params, overrides):
    """jaxtrack's VGG-M DAT with the shared weights and ``overrides``."""
    import dataclasses
    import jaxtrack
    return dataclasses.replace(jaxtrack.make_tracker("dat", backbone="vggm", allow_random=True, **overrides),
                               params=params)


def run_jaxtrack(params, seq, overrides, num_frames, seed: int = 0, draws=None):
    """jaxtrack's jitted DAT on the first ``num_frames`` frames: boxes [N, 4], per-frame
    seconds (frame 0: init, compilation included; frame 1: the step's compilation included)
    and per-frame ``(score, lost)``. ``draws``: a :class:`SharedDraws` told every state
    (outside the timed part)."""
    import jax
    import jax.numpy as jnp
    from jaxtrack.driver import JitTracker
    from jaxtrack.frames import pad_frame
    t = _jaxtrack_dat(params, overrides)
    jt = JitTracker(t)
    boxes, times, flags = [np.asarray(seq.gt[0], np.float64)], [], [(float("nan"), False)]
    key, box = jax.random.PRNGKey(seed), jnp.asarray(seq.gt[0], jnp.float32)
    t0 = time.perf_counter()
    state = jt.init(params, pad_frame(seq.frame(0)), box, key)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - t0)
    if draws is not None:
        draws.first_frame(t.config, key, box)
        draws.fc_after_init = _flat_fc(state.fc)
    for i in range(1, num_frames):
        frame = pad_frame(seq.frame(i))
        t0 = time.perf_counter()
        before = (np.asarray(state.key), np.asarray(state.box), np.asarray(state.trans_f))   # step donates state
        state, out = jt.step(params, state, frame)
        boxes.append(np.asarray(out.box, np.float64))
        times.append(time.perf_counter() - t0)
        flags.append((float(out.score), bool(out.lost)))
        if draws is not None:
            draws.frame(t.config, i, before, state, bool(out.lost))
    return np.stack(boxes), times, flags


def trace_jaxtrack(params, seq, overrides, frames: int = 1, seed: int = 0):
    """jaxtrack's training iteration by iteration (``--trace-init``, a diagnostic): ``init``
    and then ``track_step`` on frames ``1..frames-1``, outside jit, with the training loop's
    body jitted and run from Python (``online.when`` a Python branch); after each iteration
    fc (:func:`_trace_row`), and from inside the body the BCE and reciprocative losses and
    the 33 highest hard-negative candidate scores (``jax.debug.callback``), each row with its
    frame; per frame the (score, lost) of the step. The same key and frames as
    :func:`run_jaxtrack`, so the same draws."""
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jaxtrack import online
    from jaxtrack.frames import pad_frame
    from jaxtrack.trackers import dat
    t = _jaxtrack_dat(params, overrides)
    cfg = t.config
    trace = {"fc": [], "loss": [], "top": [], "frame": [], "flags": []}
    plain = (lax.fori_loop, lax.top_k, dat.classifier_loss, online.when)
    current = [0]

    def fori_loop(lo, hi, body, carry):
        if not (isinstance(carry, tuple) and len(carry) == 3 and isinstance(carry[0], dict) and "fc4" in carry[0]):
            return plain[0](lo, hi, body, carry)
        body = jax.jit(body)
        for i in range(lo, hi):
            carry = body(i, carry)
            jax.effects_barrier()
            trace["fc"].append(_trace_row(_flat_fc(carry[0])))
            trace["frame"].append(current[0])
        return carry

    def top_k(x, k):
        if k == cfg.batch_neg and x.shape[-1] == max(cfg.batch_neg_cand, cfg.batch_neg):   # the hard negatives
            jax.debug.callback(lambda v: trace["top"].append(np.asarray(v, np.float64)), plain[1](x, k + 1)[0])
        return plain[1](x, k)

    def classifier_loss(*a, **k):
        out = plain[2](*a, **k)
        jax.debug.callback(lambda b, r: trace["loss"].append([float(b), float(r)]), *out[1])
        return out

    def when(pred, update_fn, state):
        return update_fn(state) if bool(pred) else state
    lax.fori_loop, lax.top_k, dat.classifier_loss, online.when = fori_loop, top_k, classifier_loss, when
    try:
        state = t.init(params, pad_frame(seq.frame(0)), jnp.asarray(seq.gt[0], jnp.float32), jax.random.PRNGKey(seed))
        for i in range(1, frames):
            current[0] = i
            state, out = t.track_step(params, state, pad_frame(seq.frame(i)))
            trace["flags"].append((float(out.score), bool(out.lost)))
    finally:
        lax.fori_loop, lax.top_k, dat.classifier_loss, online.when = plain
    return trace


def trace_table(ours, arrays, name):
    """Per training iteration of each frame both programs trained in: max relative difference
    of fc4 (traced columns), fc5, fc6; both sides' losses; the largest difference of the 32
    hard-negative scores; each side's gap between the 32nd and 33rd candidate score (a near
    tie changes the hard set)."""
    rows = []
    ours_frame, ref_frame = np.asarray(ours["frame"]), np.asarray(arrays[name + "_trace_frame"])
    pairs = []
    for f in sorted(set(ours_frame.tolist()) & set(ref_frame.tolist())):
        a, b = np.flatnonzero(ours_frame == f), np.flatnonzero(ref_frame == f)
        pairs += [(f, n + 1, i, j) for n, (i, j) in enumerate(zip(a, b))]
    for f, it, i, j in pairs:
        row = {"frame": int(f), "iter": it}
        for k in ("fc4_kernel", "fc5_kernel", "fc6_kernel"):
            row[k] = rel(ours["fc"][i][k], arrays[name + "_trace_" + k][j])
        row["bce"] = [round(ours["loss"][i][0], 6), round(float(arrays[name + "_trace_loss"][j][0]), 6)]
        row["reg"] = [round(ours["loss"][i][1], 6), round(float(arrays[name + "_trace_loss"][j][1]), 6)]
        a, b = ours["top"][i], arrays[name + "_trace_top"][j]
        row["hard_scores_max_abs"] = float(np.abs(a[:32] - b[:32]).max())
        row["gap_32_33"] = [float(a[31] - a[32]), float(b[31] - b[32])]
        row["clip_norm_official"] = float(arrays[name + "_trace_norm"][j])
        rows.append(row)
    return rows


class SharedDraws:
    """jaxtrack's random boxes and batch permutations, frame by frame, named as the official
    ``run_mdnet`` asks for them, for the child to replay (``--shared-draws``).

    Entries: ``f{i}_gen_{role}`` (boxes; ``f{i}_box_{role}`` the box they were drawn around),
    ``f0_negperm`` (the permuted first-frame negatives) and ``f{i}_perm_{k}``: the ``k``-th
    ``np.random.permutation(n)`` of frame ``i``'s ``train`` call, in the official order
    (positives, negatives, then the extra rounds of each), as official memory indices (frames
    oldest first, as ``torch.stack(pos_feats_all)`` orders them).
    """

    def __init__(self, img_wh):
        self.img_wh = np.asarray(img_wh, np.float32)
        self.entries, self.fc_after_init = {}, {}

    def _gen(self, i, role, boxes, around):
        self.entries[f"f{i}_gen_{role}"] = np.asarray(boxes, np.float32)
        self.entries[f"f{i}_box_{role}"] = np.asarray(around, np.float32)

    def first_frame(self, cfg, key, box):
        import jax.numpy as jnp
        from jaxtrack.trackers import dat
        d, kt, _ = dat.init_draws(cfg, key, box, jnp.asarray(self.img_wh))
        for role in ("bbreg", "pos", "neg_uniform", "neg_whole"):
            self._gen(0, role, d[role], box)
        self.entries["f0_negperm"] = np.asarray(d["neg"], np.float32)
        self._train(cfg, 0, kt, np.ones(cfg.n_pos_init, bool), np.ones(cfg.n_neg_init, bool),
                    np.arange(cfg.n_pos_init), np.arange(cfg.n_neg_init), cfg.maxiter_init)

    def frame(self, cfg, i, before, after, lost):
        """Frame ``i``: ``before`` = (key, box, trans_f) of the state the step started from."""
        import jax.numpy as jnp
        from jaxtrack.trackers import dat
        wh = jnp.asarray(self.img_wh)
        key, box, trans_f = before
        _, ks, kc, ku = dat.step_keys(key)
        self._gen(i, "cand", dat.candidate_boxes(cfg, ks, box, trans_f, wh), box)
        if not lost:
            pos, neg = dat.collect_boxes(cfg, kc, after.box, wh)
            self._gen(i, "pos", pos, after.box)
            self._gen(i, "neg", neg, after.box)
        from jaxtrack import online
        if lost or online.every(i, cfg.long_interval):
            pos_mask, neg_mask = (np.asarray(m) for m in dat.update_masks(cfg, after, lost))
            self._train(cfg, i, ku, pos_mask, neg_mask,
                        self._official_index(after.pos_seq, pos_mask, cfg.n_pos_update),
                        self._official_index(after.neg_seq, neg_mask, cfg.n_neg_update), cfg.maxiter_update)

    @staticmethod
    def _official_index(seq, mask, per_frame):
        """Official memory index of each flat ring entry: stored frames oldest first."""
        seq = np.repeat(np.asarray(seq), per_frame)
        first = seq[mask].min()
        return (seq - first) * per_frame + np.arange(len(seq)) % per_frame

    def _train(self, cfg, i, key, pos_mask, neg_mask, pos_index, neg_index, iters):
        from jaxtrack.trackers import dat
        _, kpp, kpn = dat.train_keys(key)

        def rounds(k, mask, index, batch):
            n = int(mask.sum())
            return [index[np.asarray(dat.permutation_round(k, mask, r))[:n]] for r in range(max(1, -(-batch * iters // n)))]
        pos = rounds(kpp, pos_mask, pos_index, cfg.batch_pos)
        neg = rounds(kpn, neg_mask, neg_index, max(cfg.batch_neg_cand, cfg.batch_neg))
        for k, perm in enumerate([pos[0], neg[0]] + pos[1:] + neg[1:]):
            self.entries[f"f{i}_perm_{k}"] = perm.astype(np.int64)

    def save(self, path):
        np.savez(path, **self.entries)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--reference", help="shipubupt/NIPS2018 checkout (or its DAT folder)")
    ap.add_argument("--sklearn", help="a folder holding scikit-learn for the child (pip install --target)")
    ap.add_argument("--sequence", default="../shared/data/otb/Crossing")
    ap.add_argument("--frames", type=int, default=30, help="end to end: the first N frames (0: none)")
    ap.add_argument("--synthetic-frames", type=int, default=20)
    ap.add_argument("--synthetic-seed", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0, help="weights seed (dat.load_params)")
    ap.add_argument("--box-seed", type=int, default=1, help="component sample boxes")
    ap.add_argument("--sampler-seed", type=int, default=2)
    ap.add_argument("--sampler-n", type=int, default=4000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--configs", nargs="*", default=["default", "guided8"], help="jaxtrack DAT variants end to end")
    ap.add_argument("--json", default="dat_reference.json")
    ap.add_argument("--json-track", help="end to end: write the report here (default: --json)")
    ap.add_argument("--skip-components", action="store_true", help="end to end only")
    ap.add_argument("--fixtures")
    ap.add_argument("--workdir")
    ap.add_argument("--reuse-official", action="store_true",
                    help="reuse the official child's outputs already in --workdir when its job is the same")
    ap.add_argument("--shared-draws", action="store_true",
                    help="end to end: the official code replays jaxtrack's sample boxes and batch permutations; "
                         "dropout off on both sides; one --configs entry")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="end to end: an option set the same on both sides (an official opts key that is also a "
                         "DATConfig field, e.g. maxiter_init=2), to isolate where the programs part")
    ap.add_argument("--official-float64", action="store_true",
                    help="with --shared-draws: run the official program in float64 (diagnostic: its float32 "
                         "sensitivity)")
    ap.add_argument("--own-crops", action="store_true",
                    help="with --shared-draws: the official code keeps its own crops (default: jaxtrack's, D9)")
    ap.add_argument("--trace-init", action="store_true",
                    help="with --shared-draws: both programs' first-frame training iteration by iteration (fc, "
                         "losses, hard-negative scores)")
    ap.add_argument("--trace-frames", type=int, default=1,
                    help="with --trace-init: also trace the online updates of frames 1..N-1 (default 1: the "
                         "first frame only)")
    ap.add_argument("--torch-clip-norm", action="store_true",
                    help="the official clip norm by today's float32 torch kernel instead of shim R5")
    args = ap.parse_args(argv)
    both = {}
    for item in args.set:
        name, _, value = item.partition("=")
        from jaxtrack.trackers.dat import DATConfig
        if name not in DATConfig.__dataclass_fields__:
            ap.error(f"--set {item}: {name} is not a DATConfig field")
        both[name] = type(getattr(DATConfig(), name))(value)
    args.set = both
    if args.shared_draws and len(args.configs) != 1:
        ap.error("--shared-draws compares one jaxtrack setting: give one --configs entry")
    if args.trace_init and not args.shared_draws:
        ap.error("--trace-init compares the programs step by step: it needs --shared-draws")
    if args.trace_frames != 1 and not (args.trace_init and 1 <= args.trace_frames <= args.frames):
        ap.error(f"--trace-frames {args.trace_frames}: needs --trace-init and a value from 1 to --frames "
                 f"({args.frames})")
    if args.worker:
        return worker(args.worker)
    ref = args.reference and (args.reference if os.path.isdir(os.path.join(args.reference, "modules"))
                              else os.path.join(args.reference, "DAT"))
    if not ref or not os.path.exists(os.path.join(ref, "tracking", "guided_backprop.py")):
        ap.error("--reference must be a shipubupt/NIPS2018 checkout (holding DAT/tracking/guided_backprop.py)")
    from PIL import Image
    from jaxtrack.data import load_sequence
    from jaxtrack.data.synthetic import make_sequence
    workdir = args.workdir or tempfile.mkdtemp(prefix="dat_ref_")
    os.makedirs(workdir, exist_ok=True)
    params = weights(args.seed)
    mat, fcp = write_weights(params, workdir)
    from jaxtrack.models import vggm
    loaded = vggm.load_vggm_mat(mat)
    assert all(np.array_equal(loaded[k]["kernel"], params["conv"][k]["kernel"]) for k in loaded)

    seqs = {}
    if args.sequence:
        seqs["otb"] = load_sequence(args.sequence, "otb")
    n_syn = max(args.synthetic_frames, 1)
    seqs["synthetic"] = make_sequence(args.synthetic_seed, num_frames=n_syn)
    frame_files = {}
    for name, seq in seqs.items():
        if seq.frame_paths is not None and seq.images is None:
            frame_files[name] = [os.path.abspath(f) for f in seq.frame_paths]
        else:
            os.makedirs(os.path.join(workdir, name), exist_ok=True)
            frame_files[name] = []
            for i in range(len(seq)):
                f = os.path.join(workdir, name, f"{i:04d}.png")
                Image.fromarray(seq.frame(i)).save(f)
                frame_files[name].append(f)

    tasks, cases = [], {}
    s0 = seqs["otb"] if "otb" in seqs else seqs["synthetic"]
    tasks.append({"kind": "samplers", "seed": args.sampler_seed, "box": np.asarray(s0.gt[0]).tolist(),
                  "img_wh": [s0.frame(0).shape[1], s0.frame(0).shape[0]], "n": args.sampler_n})
    plan = [("otb" if "otb" in seqs else "synthetic", "full", False)]
    if args.fixtures:
        plan.append(("synthetic", "small", True))
    for name, size, inject in plan:
        p = f"{name}_{size}_"
        seq = seqs[name]
        img = seq.frame(0)
        sizes = dict(SIZES[size], n_bbreg=200 if size == "small" else 1000)
        boxes = component_boxes(img, np.asarray(seq.gt[0]), sizes, args.box_seed)
        bpath = os.path.join(workdir, p + "boxes.npz")
        np.savez(bpath, **boxes)
        task = {"kind": "components", "prefix": p, "frame": frame_files[name][0], "boxes": bpath,
                "opts": SIZES[size], "n_predict": 5}
        if inject:
            import jax.numpy as jnp
            from jaxtrack.core import Frame
            from jaxtrack.trackers import dat
            cfg = dat.DATConfig(backbone="vggm")
            cpath = os.path.join(workdir, p + "crops.npz")
            np.savez(cpath, **{k: np.asarray(dat._to_u8(dat.crop_patches(cfg, Frame.of(img), jnp.asarray(boxes[k]))))
                               for k in ("pos", "neg", "bbreg")},
                     **{k + "_boxes": boxes[k] for k in ("pos", "neg", "bbreg")})
            task.update(inject_crops=True, crops=cpath)
        tasks.append(task)
        cases[p] = (name, img, boxes, sizes)
    track_tasks = []
    for name in seqs:
        n = args.frames if name == "otb" else args.synthetic_frames
        if n > 0:
            track_tasks.append({"kind": "track", "name": name, "frames": frame_files[name][:n],
                                "box": np.asarray(seqs[name].gt[0]).tolist(), "opts": args.set})

    pythonpath = [os.path.join(ref, "modules"), os.path.join(ref, "tracking")] + ([args.sklearn] if args.sklearn else [])
    job = {"dirs": pythonpath[:2], "mat": mat, "fc": fcp, "threads": args.threads,
           "clip_norm_float64": not args.torch_clip_norm}

    def official(tasks, sub):
        os.makedirs(os.path.join(workdir, sub), exist_ok=True)
        done = [os.path.join(workdir, sub, f) for f in ("job.json", "ref.json", "ref_arrays.npz")]
        if args.reuse_official and all(os.path.exists(f) for f in done):
            with open(done[0]) as f:
                old = json.load(f)
            if {k: v for k, v in old.items() if k not in ("arrays_out", "json_out")} == dict(job, tasks=tasks):
                with open(done[1]) as f:
                    print(f"official child ({sub}): reused from {os.path.dirname(done[0])}", flush=True)
                    return json.load(f), dict(np.load(done[2]))
            print(f"official child ({sub}): the saved run had another job; running it again", flush=True)
        t0 = time.perf_counter()
        res = run_worker(__file__, dict(job, tasks=tasks), os.path.join(workdir, sub), pythonpath,
                         cwd=os.path.join(ref, "tracking"), CUDA_VISIBLE_DEVICES="")
        print(f"official child ({sub}): {time.perf_counter() - t0:.0f} s", flush=True)
        return res

    report = {"reference": {"repo": "shipubupt/NIPS2018", "commit": "7e9092a", "path": os.path.abspath(ref)},
              "seeds": {"weights": args.seed, "boxes": args.box_seed, "samplers": args.sampler_seed,
                        "synthetic": args.synthetic_seed},
              "threads": args.threads}
    if not args.skip_components:
        out, arrays = official(tasks, "components")
        refd = dict(arrays, **out)
        ours_s = jax_samplers(tasks[0]["box"], tasks[0]["img_wh"], args.sampler_n, args.sampler_seed)
        report["samplers"] = sampler_table(ours_s, arrays)
        for p, (name, img, boxes, sizes) in cases.items():
            rows, mine = jax_components(params, img, boxes, refd, p, sizes)
            report[p + "components"] = rows
            for k in ("hooks", "create_graph_check", "train", "float64_check"):
                report[p + k] = out[p + k]
        write_report(args.json, report)
        print(compact_json(report))
        if args.fixtures:
            write_fixtures(args.fixtures, report, refd, cases, args)
    if not track_tasks:
        return
    if args.shared_draws:
        return shared_end_to_end(args, params, seqs, track_tasks, official, report)
    out, arrays = official(track_tasks, "track")
    for name, seq in seqs.items():
        n = args.frames if name == "otb" else args.synthetic_frames
        if n <= 0:
            continue
        ref_boxes = arrays[name + "_boxes"]
        ref_times = np.concatenate([[0.0], arrays[name + "_frame_times"]])     # frames 1.. (0: init)
        for cfg_name in args.configs:
            from jaxtrack.configs import variant_overrides
            ours, times, _ = run_jaxtrack(params, seq, dict(variant_overrides("dat", cfg_name), **args.set), n)
            report[f"{name}_{cfg_name}_end_to_end"] = {
                "agreement": agreement(ours, ref_boxes[:n]),
                "fps_jaxtrack_frames_2_on": fps(times[1:]), "fps_official_frames_2_on": fps(ref_times[1:]),
                "jaxtrack_init_s": times[0], "jaxtrack_frame1_s": times[1] if len(times) > 1 else None,
                "official_init_s": out[name]["init_s"], "official_wall_s": out[name]["wall_s"],
                "jaxtrack_wall_s": float(np.sum(times)), "frames": n,
                "boxes_jaxtrack": ours.round(2).tolist(), "boxes_official": ref_boxes[:n].round(2).tolist()}
            write_report(args.json_track or args.json, report)
            print(compact_json(report[f"{name}_{cfg_name}_end_to_end"]["agreement"]), flush=True)


def shared_end_to_end(args, params, seqs, track_tasks, official, report):
    """jaxtrack first, recording its draws; then the official code replaying them (dropout
    off on both sides); per-frame boxes, scores, failures and seconds of both."""
    from jaxtrack.configs import variant_overrides
    cfg_name = args.configs[0]
    from jaxtrack import online
    from jaxtrack.trackers.dat import DATConfig
    overrides = dict(variant_overrides("dat", cfg_name), dropout=0.0, **args.set)
    cfg = DATConfig(**{"backbone": "vggm", **overrides})
    tasks, ours, fc_ours, traces = [], {}, {}, {}
    for task in track_tasks:
        name = task["name"]
        seq, n = seqs[name], len(task["frames"])
        h, w = seq.frame(0).shape[:2]
        draws = SharedDraws((w, h))
        ours[name] = run_jaxtrack(params, seq, overrides, n, draws=draws)
        if args.trace_init:
            traces[name] = trace_jaxtrack(params, seq, overrides, args.trace_frames)
        path = os.path.join(args.workdir or ".", f"{name}_replay.npz")
        draws.save(path)
        fc_ours[name] = draws.fc_after_init
        np.savez(os.path.join(args.workdir or ".", f"{name}_jaxtrack_fc_after_init.npz"), **draws.fc_after_init)
        tasks.append(dict(task, replay=path, inject_crops=not args.own_crops, no_dropout=True,
                          float64=args.official_float64, trace_init=args.trace_init,
                          trace_frames=args.trace_frames))
    sub = "track_shared" + ("_own_crops" if args.own_crops else "") + ("_float64" if args.official_float64 else "") + ("_trace" if args.trace_init else "")
    out, arrays = official(tasks, sub)
    for task in tasks:
        name = task["name"]
        boxes, times, flags = ours[name]
        n = len(boxes)
        ref_boxes = arrays[name + "_boxes"][:n]
        ref_times = np.concatenate([[out[name]["init_s"]], arrays[name + "_frame_times"]])[:n]
        ref_scores = arrays[name + "_scores"][:n - 1]
        ours_scores = np.asarray([f[0] for f in flags[1:]])
        ours_fail = [i for i, f in enumerate(flags) if f[1]]
        ref_fail = [i + 1 for i, v in enumerate(ref_scores) if v <= cfg.success_thr]
        periodic = {i for i in range(1, n) if online.every(i, cfg.long_interval)}
        ours_upd, ref_upd = periodic | set(ours_fail), periodic | set(ref_fail)
        plain = [i for i in range(2, n) if i not in ours_upd | ref_upd]
        both_upd = [i for i in range(2, n) if i in ours_upd & ref_upd]
        times, ref_times = np.asarray(times), np.asarray(ref_times)
        report[f"{name}_{cfg_name}_shared_draws"] = {
            "agreement": agreement(boxes, ref_boxes), "crops": "official" if args.own_crops else "jaxtrack's (D9 shim)",
            "dropout": "off on both sides", "frames": n, "replay": out[name]["replay"],
            "official_dtype": "float64" if args.official_float64 else "float32", "both_set": args.set,
            "fc_after_init_rel": {k: rel(v, arrays[name + "_fc_after_init_" + k]) for k, v in fc_ours[name].items()},
            "per_frame_max_px": np.max(np.abs(boxes - ref_boxes), axis=1).round(4).tolist(),
            "scores_jaxtrack": ours_scores.round(4).tolist(), "scores_official": ref_scores.round(3).tolist(),
            "failures_jaxtrack": ours_fail, "failures_official": ref_fail,
            "seconds": {"init_jaxtrack_compile_included": float(times[0]), "init_official": float(ref_times[0]),
                        "frame1_jaxtrack_compile_included": float(times[1]) if n > 1 else None,
                        "plain_frames": plain, "update_frames_both": both_upd,
                        "plain_median_jaxtrack": float(np.median(times[plain])) if plain else None,
                        "plain_median_official": float(np.median(ref_times[plain])) if plain else None,
                        "update_mean_jaxtrack": float(np.mean(times[both_upd])) if both_upd else None,
                        "update_mean_official": float(np.mean(ref_times[both_upd])) if both_upd else None,
                        "fps_frames_2_on_jaxtrack": fps(times[1:]), "fps_frames_2_on_official": fps(ref_times[1:]),
                        "official_crop_s": out[name]["replay"]["crop_s"],
                        "per_frame_jaxtrack": times.round(3).tolist(), "per_frame_official": ref_times.round(3).tolist()},
            "boxes_jaxtrack": boxes.round(2).tolist(), "boxes_official": ref_boxes.round(2).tolist()}
        if name in traces:
            rows = trace_table(traces[name], arrays, name)
            report[f"{name}_{cfg_name}_shared_draws"]["trace_init"] = rows
            report[f"{name}_{cfg_name}_shared_draws"]["trace_flags_jaxtrack_eager"] = traces[name]["flags"]
            last = traces[name]["fc"][int(np.sum(np.asarray(traces[name]["frame"]) == 0)) - 1]
            report[f"{name}_{cfg_name}_shared_draws"]["trace_vs_jitted_init"] = {
                k: rel(last[k], fc_ours[name][k]) for k in ("fc5_kernel", "fc6_kernel", "fc4_bias")}
            for r in rows:
                print(compact_json(r), flush=True)
        write_report(args.json_track or args.json, report)
        print(compact_json(report[f"{name}_{cfg_name}_shared_draws"]["agreement"]), flush=True)


SUBSAMPLE = 4096


def write_fixtures(folder, report, refd, cases, args):
    """Numbers only: the seeds and the official outputs on the synthetic case; arrays over
    ``SUBSAMPLE`` values (fc4 and conv gradients, fc4 after the step) as every k-th value of
    the torch layout, with their largest magnitude."""
    p = [k for k in cases if k.startswith("synthetic_small_")][0]
    os.makedirs(folder, exist_ok=True)
    name, img, boxes, sizes = cases[p]
    meta = {"reference": report["reference"],
            "made_by": "python experiments/reference/nips2018_dat.py --reference PATH --sklearn DIR "
                       "--fixtures tests/fixtures/reference/dat (docs/fidelity_dat.md)",
            "seeds": report["seeds"], "sizes": sizes, "train": refd[p + "train"],
            "components": report[p + "components"], "hooks": refd[p + "hooks"],
            "float64_check": refd[p + "float64_check"]}
    with open(os.path.join(folder, "dat_reference.json"), "w") as f:
        f.write(compact_json(meta) + "\n")
    keep = {k: refd[p + k] for k in ("pos_feats", "neg_feats", "pos_scores", "neg_scores", "pos_maps_pos",
                                     "pos_maps_neg", "hard_neg_boxes", "bbreg_pred")}
    keep.update({k: refd[k] for k in refd if k.startswith(p + "grad_") or k.startswith(p + "param_fc")})
    keep = {k.replace(p, ""): v for k, v in keep.items()}
    inputs = ("pos_feats", "neg_feats", "pos_maps_pos", "pos_maps_neg")
    for k in [k for k, v in keep.items() if v.size > SUBSAMPLE and k not in inputs]:   # gradients, parameters
        v = keep.pop(k)
        step = -(-v.size // SUBSAMPLE)
        keep[k + "_every"], keep[k + "_absmax"] = np.asarray(step), np.asarray(np.abs(v).max())
        keep[k + "_sub"] = v.reshape(-1)[::step]
    np.savez_compressed(os.path.join(folder, "reference.npz"), boxes_pos=boxes["pos"], boxes_neg=boxes["neg"],
                        boxes_bbreg=boxes["bbreg"], gt=boxes["gt"], **keep)
    print(f"wrote fixtures to {folder}")


if __name__ == "__main__":
    run(main)
