"""DAT, Deep Attentive Tracking via Reciprocative Learning (Pu et al., NeurIPS 2018).

MDNet (Nam & Han, CVPR 2016) with a reciprocative regulariser on the attention maps of
the training samples (:mod:`jaxtrack.guided_backprop`) added to its online training loss.
Defaults: the official ``shipubupt/NIPS2018`` ``tracking/options.py`` (:class:`DATConfig`).
A frozen conv part (``mobilenet_v2`` to features.13, or the paper's ``vggm`` conv1-3) on
107x107 patches, then fc4-6, initialised at random and trained online from the first frame.

The attention term follows the official ``tracking/run_tracker.py`` by default: plain
gradients at the first conv's output, for all ``batch_pos + batch_neg`` samples of each
iteration (re-cropped from the stored frames), conv gradients in the clip norm, batches
walking permutations of the memories; variant ``guided8`` is jaxtrack's former term.
Sample memories are fixed-size ring buffers, so ``init`` and ``track_step`` are jittable
with fixed shapes. Boxes are jaxtrack ``xywh``. Design notes: docs/trackers/dat.md; the
comparison with the official code: docs/fidelity_dat.md.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxtrack import guided_backprop, models, online, ops
from jaxtrack.errors import ConfigError
from jaxtrack.core import Frame, TrackOutput

MNV2_LAST_BLOCK = 13
# backbone -> conv feature map of a 107 px patch: MobileNetV2 to features.13 (stride 16), VGG-M conv1-3
FEATURE_SHAPES = {"mobilenet_v2": (7, 7, 96), "vggm": (3, 3, 512)}
ATTENTIONS = ("reg", "weight")
# backbone -> (name of the first conv in the params, its output size on a 107 px patch: kernel, stride, pad)
FIRST_CONV = {"mobilenet_v2": ("features_0", 3, 2, 1), "vggm": ("conv1", 7, 2, 0)}


@dataclasses.dataclass(frozen=True)
class DATConfig:
    backbone: str = "mobilenet_v2"     # "mobilenet_v2" | "vggm"
    attention: str = "reg"             # "reg" (DAT) | "weight" (attention as feature weights)
    lam: float = 5.0                   # weight of the reciprocative regulariser (0: MDNet)
    img_size: int = 107
    padding: int = 16
    # sampling
    n_samples: int = 256
    trans_f: float = 0.6
    scale_f: float = 1.05
    trans_f_expand: float = 1.5
    top_k: int = 5
    success_thr: float = 0.0
    # bounding-box regression
    n_bbreg: int = 1000
    bbreg_alpha: float = 1000.0
    # training
    n_pos_init: int = 500
    n_neg_init: int = 5000
    maxiter_init: int = 50
    lr_init: float = 2e-4
    n_pos_update: int = 50
    n_neg_update: int = 200
    maxiter_update: int = 15
    lr_update: float = 3e-4
    n_frames_short: int = 20
    n_frames_long: int = 100
    long_interval: int = 10
    batch_pos: int = 32
    batch_neg: int = 32
    batch_neg_cand: int = 1024
    w_decay: float = 5e-4
    momentum: float = 0.9
    grad_clip: float = 10.0
    lr_mult_fc6: float = 10.0
    dropout: float = 0.5
    memory_dtype: str = "float32"      # stored sample features: "float32" (official: float tensors) or
                                       # "bfloat16" (half the memory, for many streams at once)
    # attention maps (second-order part); defaults: the official tracking/run_tracker.py
    att_layer: str = "conv1"           # "conv1": plain gradient at the first conv's output (official
                                       # guided_backprop.py hooks conv1's ReLU); "input": w.r.t. the patch
    att_guided: bool = False           # guided ReLUs in the attention backward (the official hooks never fire)
    att_source: str = "batch"          # "batch": the batch_pos + batch_neg samples of each iteration,
                                       # re-cropped from their frames (official); "memory": att_batch of each
                                       # from a patch memory
    sampling: str = "permutation"      # "permutation": batches walk permutations of the memories (official);
                                       # "replacement": drawn with replacement
    att_batch: int = 8                 # att_source="memory": positives and negatives per iteration
    att_frames: int = 20
    att_pos_per_frame: int = 4
    att_neg_per_frame: int = 8
    clip_with_conv: bool = True        # conv grads (lr x0) enter the clipping norm (official: ft_layers conv+fc)
    chunk: int = 0                     # patches per conv forward (lax.map over chunks); 0: 8 on CPU
                                       # (same values as one batch, faster), all at once else
    seed: int = 0                      # fc initialisation

    def __post_init__(self):
        models.check_backbone("dat", self.backbone, FEATURE_SHAPES)
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"dat: attention must be 'reg' or 'weight', got {self.attention!r}")
        if self.att_layer not in ("conv1", "input"):
            raise ConfigError(f"dat: att_layer must be 'conv1' or 'input', got {self.att_layer!r}")
        if self.att_source not in ("batch", "memory"):
            raise ConfigError(f"dat: att_source must be 'batch' or 'memory', got {self.att_source!r}")
        if self.sampling not in ("permutation", "replacement"):
            raise ConfigError(f"dat: sampling must be 'permutation' or 'replacement', got {self.sampling!r}")
        if self.memory_dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"dat: memory_dtype must be 'float32' or 'bfloat16', got {self.memory_dtype!r}")
        if self.n_samples < self.top_k:
            raise ConfigError(f"dat: n_samples {self.n_samples} < top_k {self.top_k}")


Config = DATConfig


class DATState(NamedTuple):
    box: Any           # (4,) target box used for sampling (xywh)
    result: Any        # (4,) last reported (regressed) box
    trans_f: Any       # ()
    fc: Any            # online-trained fc4-6
    momentum: Any      # SGD momentum buffers of fc (update optimiser)
    pos_feats: Any     # [Lp, n_pos_update, D] ring of positive features (memory_dtype)
    pos_seq: Any       # [Lp] int32 stored-frame number of each slot (-1 empty)
    neg_feats: Any     # [Ls, n_neg_update, D]
    neg_seq: Any       # [Ls]
    att_pos: Any       # [A, kp, S, S, 3] uint8 patches for the attention terms
    att_neg: Any       # [A, kn, S, S, 3]
    att_neg_feats: Any  # [A, kn, D] their features (to pick hard ones)
    att_seq: Any       # [A]
    frames: Any        # [F, Hb, Wb, 3] the stored frames (att_source="batch": F = n_frames_long, else 1)
    frame_sizes: Any   # [F, 2] their true sizes
    pos_boxes: Any     # [Lp, n_pos_update, 4] the boxes of the stored positives (xywh)
    neg_boxes: Any     # [Ls, n_neg_update, 4]
    n_stored: Any      # () int32 number of stored frames
    bbreg_w: Any       # [D, 4]
    bbreg_b: Any       # [4]
    frame_index: Any   # () int32
    key: Any


# ------------------------------------------------------------------ conv part

def conv_features(config: DATConfig, conv, patches, guided: bool = False):
    """Conv feature maps ``[B, h, w, C]`` of ``[B, S, S, 3]`` patches (0..255)."""
    if config.backbone == "mobilenet_v2":
        from jaxtrack.models.mobilenet_v2 import folded_features
        return folded_features(conv, patches, guided_backprop.relu6(guided), MNV2_LAST_BLOCK)
    from jaxtrack.models.vggm import vggm_features
    return vggm_features(conv, patches, guided_backprop.relu(guided))


def feature_shape(config: DATConfig):
    return FEATURE_SHAPES[config.backbone]


# ------------------------------------------------------------------ fc part

def init_fc(key, in_dim: int):
    """fc4/fc5/fc6 with PyTorch's ``nn.Linear`` default init (U(+-1/sqrt(fan_in)))."""
    fc = {}
    for name, (i, o) in (("fc4", (in_dim, 512)), ("fc5", (512, 512)), ("fc6", (512, 2))):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / np.sqrt(i)
        fc[name] = {"kernel": jax.random.uniform(kw, (i, o), jnp.float32, -bound, bound),
                    "bias": jax.random.uniform(kb, (o,), jnp.float32, -bound, bound)}
    return fc


def _dropout(key, x, rate):
    if key is None or rate <= 0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def fc_logits(fc, feats, guided: bool = False, key=None, rate: float = 0.5):
    """fc4-fc6 logits ``[B, 2]`` of flat features ``[B, D]``; dropout when ``key`` is given."""
    act = guided_backprop.relu(guided)
    keys = jax.random.split(key, 3) if key is not None else (None, None, None)
    x = act(_dropout(keys[0], feats, rate) @ fc["fc4"]["kernel"] + fc["fc4"]["bias"])
    x = act(_dropout(keys[1], x, rate) @ fc["fc5"]["kernel"] + fc["fc5"]["bias"])
    return _dropout(keys[2], x, rate) @ fc["fc6"]["kernel"] + fc["fc6"]["bias"]


def weight_features(config: DATConfig, fc, feats):
    """``attention="weight"``: features x their (max-normalised) positive-class attention map.

    The map is the guided gradient of the positive logit w.r.t. the conv feature map,
    squared and summed over channels; it is a fixed weight (no gradient through it).
    """
    if config.attention != "weight":
        return feats
    shape = feature_shape(config)
    g = jax.grad(lambda f: jnp.sum(fc_logits(fc, f, guided=True)[:, 1]))(feats)
    a = jnp.sum(jnp.square(g).reshape((-1,) + shape), axis=-1)
    a = a / (jnp.max(a, axis=(1, 2), keepdims=True) + 1e-12)
    f = feats.reshape((-1,) + shape) * lax.stop_gradient(a)[..., None]
    return f.reshape(feats.shape)


def scores_of(config: DATConfig, fc, feats):
    """Positive-class logits of flat features (eval mode)."""
    return fc_logits(fc, weight_features(config, fc, feats))[:, 1]


# ------------------------------------------------------------------ samples and patches

def box_iou(boxes, box):
    lt = jnp.maximum(boxes[:, :2], box[:2])
    rb = jnp.minimum(boxes[:, :2] + boxes[:, 2:], box[:2] + box[2:])
    inter = jnp.prod(jnp.maximum(rb - lt, 0.0), axis=1)
    union = jnp.prod(boxes[:, 2:], axis=1) + jnp.prod(box[2:]) - inter
    return jnp.clip(inter / jnp.maximum(union, 1e-12), 0.0, 1.0)


def gen_samples(key, kind: str, box, n: int, img_wh, trans_f, scale_f, aspect_f=None, valid=False):
    """MDNet's SampleGenerator: ``n`` boxes (xywh) around ``box``; ``kind`` gaussian | uniform | whole."""
    ka, kt, ks = jax.random.split(key, 3)
    c = box[:2] + box[2:] / 2
    wh = jnp.broadcast_to(box[2:], (n, 2))
    if aspect_f is not None:
        r = jax.random.uniform(ka, (n, 1), minval=-1.0, maxval=1.0)
        wh = wh * aspect_f ** jnp.concatenate([r, -r], axis=1)
    if kind == "gaussian":
        cxy = c + trans_f * jnp.mean(box[2:]) * jnp.clip(0.5 * jax.random.normal(kt, (n, 2)), -1, 1)
        wh = wh * scale_f ** jnp.clip(0.5 * jax.random.normal(ks, (n, 1)), -1, 1)
    elif kind == "uniform":
        cxy = c + trans_f * jnp.mean(box[2:]) * jax.random.uniform(kt, (n, 2), minval=-1.0, maxval=1.0)
        wh = wh * scale_f ** jax.random.uniform(ks, (n, 1), minval=-1.0, maxval=1.0)
    elif kind == "whole":
        cxy = box[2:] / 2 + jax.random.uniform(kt, (n, 2)) * (img_wh - box[2:] / 2 - 1)
        wh = wh * scale_f ** jax.random.uniform(ks, (n, 1), minval=-1.0, maxval=1.0)
    else:
        raise ValueError(f"unknown sample kind {kind!r}")
    wh = jnp.clip(wh, 10.0, jnp.maximum(img_wh - 10.0, 10.0))
    if valid:
        cxy = jnp.clip(cxy, wh / 2, jnp.maximum(img_wh - wh / 2 - 1, wh / 2))
    else:
        cxy = jnp.clip(cxy, 0.0, img_wh)
    return jnp.concatenate([cxy - wh / 2, wh], axis=1)


def gen_filtered(key, kind, box, n, img_wh, trans_f, scale_f, aspect_f=None,
                 iou_range=None, scale_range=None, factor: int = 8):
    """``gen_samples`` keeping boxes whose IoU / area ratio to ``box`` lie in the ranges.

    Draws ``factor * n`` and keeps the first ``n`` that pass (MDNet's rejection loop, with
    a fixed number of draws); if fewer pass, the passing ones are repeated. Returns the
    boxes and whether any passed.
    """
    k1, k2 = jax.random.split(key)
    cand = gen_samples(k1, kind, box, factor * n, img_wh, trans_f, scale_f, aspect_f)
    ok = jnp.ones(cand.shape[0], bool)
    if iou_range is not None:
        r = box_iou(cand, box)
        ok &= (r >= iou_range[0]) & (r <= iou_range[1])
    if scale_range is not None:
        s = jnp.prod(cand[:, 2:], axis=1) / jnp.prod(box[2:])
        ok &= (s >= scale_range[0]) & (s <= scale_range[1])
    order = jnp.argsort(jnp.where(ok, 0.0, 1.0) + 0.5 * jax.random.uniform(k2, ok.shape))
    count = jnp.maximum(jnp.sum(ok), 1)
    return cand[order[jnp.arange(n) % count]], jnp.any(ok)


def crop_patches(config: DATConfig, frame: Frame, boxes):
    """MDNet patches ``[N, S, S, 3]`` (float 0..255): each box grown by padding/S per side, 128 outside."""
    s = config.img_size
    grow = (s + 2.0 * config.padding) / s
    fill = jnp.full((3,), 128.0, jnp.float32)

    def one(b):
        return ops.crop_patch(frame.image, frame.size, b[:2] + b[2:] / 2, b[2:] * grow, s, fill)
    return jax.vmap(one)(boxes)


def chunk_size(config: DATConfig, n: int) -> int:
    """Boxes per chunk of :func:`extract` for ``n`` boxes: ``config.chunk``, else 8 on CPU and
    all at once elsewhere."""
    return min(config.chunk or (8 if jax.default_backend() == "cpu" else n), n)


def extract(config: DATConfig, conv, frame: Frame, boxes, with_patches: bool = False):
    """Flat conv features ``[N, D]`` of boxes, cropped and run in chunks of :func:`chunk_size`."""
    n = boxes.shape[0]
    c = chunk_size(config, n)
    m = -(-n // c)
    padded = jnp.concatenate([boxes, jnp.broadcast_to(boxes[:1], (m * c - n, 4))]) if m * c > n else boxes

    def chunk(b):
        p = crop_patches(config, frame, b)
        return conv_features(config, conv, p).reshape(c, -1)
    feats = lax.map(chunk, padded.reshape(m, c, 4)).reshape(m * c, -1)[:n]
    return feats


# ------------------------------------------------------------------ bounding-box regression

def _xywh_to_cxcy(b):
    return jnp.concatenate([b[..., :2] + b[..., 2:] / 2, b[..., 2:]], -1)


def fit_bbreg(config: DATConfig, feats, boxes, gt, mask):
    """Ridge regression (scikit-learn ``Ridge``: centred, unpenalised intercept) of MDNet's
    box targets, solved in the dual (n x n) since n = 1000 < D. ``mask`` selects samples."""
    m = mask.astype(jnp.float32)[:, None]
    cnt = jnp.maximum(jnp.sum(m), 1.0)
    b, g = _xywh_to_cxcy(boxes), _xywh_to_cxcy(gt)
    y = jnp.concatenate([(g[:2] - b[:, :2]) / b[:, 2:], jnp.log(g[2:] / b[:, 2:])], axis=1)
    x_mean = jnp.sum(feats * m, 0) / cnt
    y_mean = jnp.sum(y * m, 0) / cnt
    xc, yc = (feats - x_mean) * m, (y - y_mean) * m
    k = xc @ xc.T + config.bbreg_alpha * jnp.eye(xc.shape[0])
    w = xc.T @ jnp.linalg.solve(k, yc)
    return w, y_mean - x_mean @ w


def apply_bbreg(w, b, feats, boxes, img_wh):
    """MDNet's ``BBRegressor.predict``: regressed boxes, unchanged where implausible."""
    y = feats @ w + b
    c = _xywh_to_cxcy(boxes)
    wh = jnp.exp(y[:, 2:]) * c[:, 2:]
    cxy = y[:, :2] * c[:, 2:] + c[:, :2]
    out = jnp.concatenate([cxy - wh / 2, wh], 1)
    r = jax.vmap(lambda a, bb: box_iou(a[None], bb)[0])(boxes, out)
    s = jnp.prod(boxes[:, 2:], 1) / jnp.prod(out[:, 2:], 1)
    ok = (r >= 0.6) & (r <= 1.0) & (s >= 1.0) & (s <= 2.0)
    out = jnp.where(ok[:, None], out, boxes)
    xy = jnp.maximum(out[:, :2], 0.0)
    wh = jnp.minimum(out[:, 2:], img_wh - boxes[:, :2])
    return jnp.concatenate([xy, wh], 1)


# ------------------------------------------------------------------ online training

def _lr_tree(config: DATConfig, fc, lr):
    return {k: jax.tree_util.tree_map(lambda _: lr * (config.lr_mult_fc6 if k == "fc6" else 1.0), v)
            for k, v in fc.items()}


def needs_attention(config: DATConfig) -> bool:
    return config.attention == "reg" and config.lam != 0


def attention_maps(config: DATConfig, conv, fc, patches):
    """DAT's attention maps ``[2, B, h, w]`` (positive class, negative class) of ``[B, S, S, 3]``
    patches: ``sum_c g_c^2`` of the gradient ``g`` of ``10 x`` the class logit (eval mode).

    ``att_layer="conv1"`` (official ``tracking/guided_backprop.py``: a backward hook on the
    ReLU after conv1 keeps ``grad_in[0]``): ``g`` is taken at the first conv's output, before
    its rectifier, as the gradient in an offset added to that conv's bias at every position.
    ``"input"``: w.r.t. the patch. ``att_guided``: guided ReLUs in the backward pass.
    """
    g = config.att_guided

    def logits(cv, p):
        f = conv_features(config, cv, p, guided=g)
        return fc_logits(fc, f.reshape(f.shape[0], -1), guided=g)

    if config.att_layer == "input":
        return guided_backprop.attention_maps(lambda p: logits(conv, p), patches)
    name, k, stride, pad = FIRST_CONV[config.backbone]
    n = (patches.shape[1] + 2 * pad - k) // stride + 1
    first = conv[name]
    zero = jnp.zeros((patches.shape[0], n, n, first["bias"].shape[-1]), first["bias"].dtype)

    def at_offset(d):
        return logits({**conv, name: {**first, "bias": first["bias"] + d}}, patches)
    return guided_backprop.attention_maps(at_offset, zero)


def classifier_loss(config: DATConfig, fc, conv, pos_feats, neg_feats, att_pos, att_neg, key, lam=None):
    """MDNet's summed binary loss (dropout on) + ``lam`` x DAT's reciprocative regulariser.

    ``att_pos`` / ``att_neg``: input patches for the attention maps (:func:`attention_maps`).
    Returns ``(total, (bce, reg))``.
    """
    lam = config.lam if lam is None else lam
    kp, kn = jax.random.split(key)
    pos_s = fc_logits(fc, weight_features(config, fc, pos_feats), key=kp, rate=config.dropout)
    neg_s = fc_logits(fc, weight_features(config, fc, neg_feats), key=kn, rate=config.dropout)
    bce = -jnp.sum(jax.nn.log_softmax(pos_s)[:, 1]) - jnp.sum(jax.nn.log_softmax(neg_s)[:, 0])
    reg = jnp.zeros((), jnp.float32)
    if needs_attention(config) and att_pos is not None:
        reg = sum(guided_backprop.reciprocative_terms(attention_maps(config, conv, fc, att_pos),
                                                      attention_maps(config, conv, fc, att_neg)))
    return bce + lam * reg, (bce, reg)


def _sample_idx(key, mask, n):
    p = mask.astype(jnp.float32)
    p = jnp.where(jnp.sum(p) > 0, p, jnp.ones_like(p))
    return jax.random.choice(key, mask.shape[0], (n,), p=p / jnp.sum(p))


def permutation_round(key, mask, r):
    """Permutation ``r`` of the entries of ``mask``, valid ones first: the ``r``-th
    ``np.random.permutation`` of the official ``train`` (``argsort`` of uniforms from
    ``fold_in(key, r)``)."""
    u = jax.random.uniform(jax.random.fold_in(key, r), mask.shape)
    return jnp.argsort(jnp.where(mask, u, 2.0))


def _perm_idx(key, mask, it, n, min_count: int):
    """Batch ``it`` of ``n`` indices walking concatenated random permutations of the valid
    entries (official ``train``: ``np.random.permutation`` of the stacked memory, repeated,
    sliced ``n`` at a time). Permutation ``r`` is ``argsort`` of uniforms drawn from
    ``fold_in(key, r)``, valid entries first; ``min_count`` (a lower bound of the number of
    valid entries) bounds how many permutations one batch spans."""
    mask = jnp.where(jnp.any(mask), mask, True)
    count = jnp.sum(mask).astype(jnp.int32)
    q = it * n + jnp.arange(n)
    r0 = (it * n) // count
    rounds = -(-n // max(min_count, 1)) + 1

    perms = jax.vmap(lambda j: permutation_round(key, mask, r0 + j))(jnp.arange(rounds))
    return perms[jnp.clip(q // count - r0, 0, rounds - 1), q % count]


def train_keys(key):
    """``train``'s keys: (dropout and sampling with replacement, positive permutations,
    negative permutations)."""
    return jax.random.split(key, 3)


def train(config: DATConfig, conv, fc, mom, pos, pos_mask, neg, neg_mask, att_source, key, iters, lr,
          min_count=None):
    """``iters`` SGD steps (MDNet ``train``): 32 positives, 32 hard negatives of 1024.

    ``att_source(key, fc, pos_idx, hard_neg_idx) -> (pos_patches, neg_patches)`` gives the
    attention samples. Conv parameters are differentiated to enter the gradient-norm
    clipping (``clip_with_conv``; lr multiplier 0, as the official options). ``min_count``:
    ``(positives, negatives)`` at least valid (``sampling="permutation"``).
    """
    lrs = _lr_tree(config, fc, lr)
    need_att = needs_attention(config)
    conv_in_norm = need_att and config.clip_with_conv
    key, kpp, kpn = train_keys(key)
    mc = min_count or (pos.shape[0], neg.shape[0])

    def step(i, carry):
        fc, mom, key = carry
        key, k1, k2, k3, k4 = jax.random.split(key, 5)
        if config.sampling == "permutation":
            pos_idx = _perm_idx(kpp, pos_mask, i, config.batch_pos, mc[0])
            cand = _perm_idx(kpn, neg_mask, i, config.batch_neg_cand, mc[1])
        else:
            pos_idx = _sample_idx(k1, pos_mask, config.batch_pos)
            cand = _sample_idx(k2, neg_mask, config.batch_neg_cand)
        cand_feats = neg[cand].astype(jnp.float32)
        hard = lax.top_k(scores_of(config, fc, cand_feats), config.batch_neg)[1]
        att_pos = att_neg = None
        if need_att:
            att_pos, att_neg = att_source(k3, fc, pos_idx, cand[hard])
        pf, nf = pos[pos_idx].astype(jnp.float32), cand_feats[hard]
        if conv_in_norm:
            grads, cgrads = jax.grad(lambda f, c: classifier_loss(config, f, c, pf, nf, att_pos, att_neg, k4)[0],
                                     argnums=(0, 1))(fc, conv)
        else:
            grads = jax.grad(lambda f: classifier_loss(config, f, conv, pf, nf, att_pos, att_neg, k4)[0])(fc)
            cgrads = {}
        sq = sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves((grads, cgrads)))
        clip = jnp.minimum(1.0, config.grad_clip / (jnp.sqrt(sq) + 1e-6))
        d = jax.tree_util.tree_map(lambda g, p: g * clip + config.w_decay * p, grads, fc)
        mom = jax.tree_util.tree_map(lambda m, dd: config.momentum * m + dd, mom, d)
        fc = jax.tree_util.tree_map(lambda p, m, a: p - a * m, fc, mom, lrs)
        return fc, mom, key

    fc, mom, _ = lax.fori_loop(0, iters, step, (fc, mom, key))
    return fc, mom


def _zeros_like(tree):
    return jax.tree_util.tree_map(jnp.zeros_like, tree)


# ------------------------------------------------------------------ init / track_step

def _img_wh(frame):
    return jnp.stack([frame.size[1], frame.size[0]]).astype(jnp.float32)


def init_draws(config: DATConfig, key, box, img_wh):
    """The first frame's random boxes, in ``run_mdnet``'s order (``bbreg``; ``pos``;
    ``neg_uniform`` and ``neg_whole``, whose concatenation permuted is ``neg``), and the keys
    left: ``(boxes, train key, state key)``."""
    kb, kp, kn1, kn2, kt, kperm, key = jax.random.split(key, 7)
    # box regressor on 1000 samples (uniform 0.3, 1.5, aspect 1.1; kept: IoU >= 0.6, area x1-2)
    bbreg, _ = gen_filtered(kb, "uniform", box, config.n_bbreg, img_wh, 0.3, 1.5, 1.1,
                            iou_range=(0.6, 1.0), scale_range=(1.0, 2.0))
    pos, _ = gen_filtered(kp, "gaussian", box, config.n_pos_init, img_wh, 0.1, 1.2, iou_range=(0.7, 1.0))
    half = config.n_neg_init // 2
    neg_uniform = gen_filtered(kn1, "uniform", box, half, img_wh, 1.0, 2.0, 1.1, iou_range=(0.0, 0.5))[0]
    neg_whole = gen_filtered(kn2, "whole", box, config.n_neg_init - half, img_wh, 0.0, 1.2, 1.1,
                             iou_range=(0.0, 0.5))[0]
    neg = jax.random.permutation(kperm, jnp.concatenate([neg_uniform, neg_whole]))
    return dict(bbreg=bbreg, pos=pos, neg_uniform=neg_uniform, neg_whole=neg_whole, neg=neg), kt, key


def init(config: DATConfig, params, frame: Frame, box, key) -> DATState:
    """Fit the box regressor, draw the first-frame samples and train fc4-6 (50 iterations)."""
    box = jnp.asarray(box, jnp.float32)
    conv, fc = params["conv"], params["fc"]
    draws, kt, key = init_draws(config, key, box, _img_wh(frame))
    bb_boxes, pos_boxes, neg_boxes = draws["bbreg"], draws["pos"], draws["neg"]

    bb_feats = extract(config, conv, frame, bb_boxes)
    bbreg_w, bbreg_b = fit_bbreg(config, bb_feats, bb_boxes, box, jnp.ones(config.n_bbreg, bool))
    pos = extract(config, conv, frame, pos_boxes)
    neg = extract(config, conv, frame, neg_boxes)

    a = config.att_batch
    batch_att = config.att_source == "batch"

    def att_first_frame(k, fc_, pos_idx, neg_idx):
        del k, fc_
        if not batch_att:
            pos_idx, neg_idx = pos_idx[:a], neg_idx[:a]
        return crop_patches(config, frame, pos_boxes[pos_idx]), crop_patches(config, frame, neg_boxes[neg_idx])

    fc, _ = train(config, conv, fc, _zeros_like(fc), pos, jnp.ones(pos.shape[0], bool),
                  neg, jnp.ones(neg.shape[0], bool), att_first_frame, kt, config.maxiter_init,
                  config.lr_init)

    d = pos.shape[1]
    mdt = jnp.dtype(config.memory_dtype)
    npu, nnu = config.n_pos_update, config.n_neg_update
    pos_feats = jnp.zeros((config.n_frames_long, npu, d), mdt).at[0].set(pos[:npu].astype(mdt))
    neg_feats = jnp.zeros((config.n_frames_short, nnu, d), mdt).at[0].set(neg[:nnu].astype(mdt))
    s = config.img_size
    kp_, kn_ = config.att_pos_per_frame, config.att_neg_per_frame
    na = 1 if batch_att else config.att_frames
    att_pos = jnp.zeros((na, kp_, s, s, 3), jnp.uint8).at[0].set(
        _to_u8(crop_patches(config, frame, pos_boxes[:kp_])))
    att_neg = jnp.zeros((na, kn_, s, s, 3), jnp.uint8).at[0].set(
        _to_u8(crop_patches(config, frame, neg_boxes[:kn_])))
    att_neg_feats = jnp.zeros((na, kn_, d), mdt).at[0].set(neg[:kn_].astype(mdt))
    nf = config.n_frames_long if batch_att and needs_attention(config) else 1
    frames = jnp.zeros((nf,) + frame.image.shape, frame.image.dtype).at[0].set(frame.image)
    frame_sizes = jnp.zeros((nf, 2), jnp.int32).at[0].set(jnp.asarray(frame.size, jnp.int32))
    return DATState(
        box=box, result=box, trans_f=jnp.asarray(config.trans_f, jnp.float32), fc=fc,
        momentum=_zeros_like(fc),
        pos_feats=pos_feats, pos_seq=jnp.full((config.n_frames_long,), -1, jnp.int32).at[0].set(0),
        neg_feats=neg_feats, neg_seq=jnp.full((config.n_frames_short,), -1, jnp.int32).at[0].set(0),
        att_pos=att_pos, att_neg=att_neg, att_neg_feats=att_neg_feats,
        att_seq=jnp.full((na,), -1, jnp.int32).at[0].set(0),
        frames=frames, frame_sizes=frame_sizes,
        pos_boxes=jnp.zeros((config.n_frames_long, npu, 4), jnp.float32).at[0].set(pos_boxes[:npu]),
        neg_boxes=jnp.zeros((config.n_frames_short, nnu, 4), jnp.float32).at[0].set(neg_boxes[:nnu]),
        n_stored=jnp.ones((), jnp.int32), bbreg_w=bbreg_w, bbreg_b=bbreg_b,
        frame_index=jnp.zeros((), jnp.int32), key=key)


def crop_stored(config: DATConfig, frames, sizes, slots, boxes):
    """MDNet patches of ``boxes`` cropped from the stored frames ``frames[slots]``."""
    s = config.img_size
    grow = (s + 2.0 * config.padding) / s
    fill = jnp.full((3,), 128.0, jnp.float32)

    def one(k, b):
        return ops.crop_patch(frames[k], sizes[k], b[:2] + b[2:] / 2, b[2:] * grow, s, fill)
    return jax.vmap(one)(slots, boxes)


def _to_u8(p):
    return jnp.clip(jnp.round(p), 0, 255).astype(jnp.uint8)


def collect_boxes(config: DATConfig, key, box, img_wh):
    """The positives and negatives stored after a successful frame (``run_mdnet``'s
    ``pos_generator`` / ``neg_generator``)."""
    kp, kn = jax.random.split(key)
    pos_boxes, _ = gen_filtered(kp, "gaussian", box, config.n_pos_update, img_wh, 0.1, 1.2,
                                iou_range=(0.7, 1.0))
    neg_boxes, _ = gen_filtered(kn, "uniform", box, config.n_neg_update, img_wh, 1.5, 1.2,
                                iou_range=(0.0, 0.3))
    return pos_boxes, neg_boxes


def _collect(config: DATConfig, conv, frame, state: DATState, key):
    """Store 50 positives / 200 negatives (features) and a few patches of the new box."""
    pos_boxes, neg_boxes = collect_boxes(config, key, state.box, _img_wh(frame))
    boxes = jnp.concatenate([pos_boxes, neg_boxes])
    feats = extract(config, conv, frame, boxes)
    npos = config.n_pos_update
    mdt = state.pos_feats.dtype
    seq = state.n_stored
    kp_, kn_ = config.att_pos_per_frame, config.att_neg_per_frame
    write = lambda buf, value: online.ring_write(buf, seq, value)   # noqa: E731
    return state._replace(
        pos_feats=write(state.pos_feats, feats[:npos].astype(mdt)), pos_seq=write(state.pos_seq, seq),
        neg_feats=write(state.neg_feats, feats[npos:].astype(mdt)), neg_seq=write(state.neg_seq, seq),
        att_pos=write(state.att_pos, _to_u8(crop_patches(config, frame, pos_boxes[:kp_]))),
        att_neg=write(state.att_neg, _to_u8(crop_patches(config, frame, neg_boxes[:kn_]))),
        att_neg_feats=write(state.att_neg_feats, feats[npos:npos + kn_].astype(mdt)),
        att_seq=write(state.att_seq, seq),
        frames=write(state.frames, frame.image.astype(state.frames.dtype)),
        frame_sizes=write(state.frame_sizes, jnp.asarray(frame.size, jnp.int32)),
        pos_boxes=write(state.pos_boxes, pos_boxes), neg_boxes=write(state.neg_boxes, neg_boxes),
        n_stored=seq + 1)


def update_masks(config: DATConfig, state: DATState, short: Any):
    """The stored samples an update trains on, flat over the rings: positives of the last
    ``n_frames_short`` stored frames (``short``) or of all, and every stored negative."""
    recent = state.pos_seq >= state.n_stored - config.n_frames_short
    pos_ok = (state.pos_seq >= 0) & jnp.where(short, recent, True)
    return jnp.repeat(pos_ok, config.n_pos_update), jnp.repeat(state.neg_seq >= 0, config.n_neg_update)


def _update(config: DATConfig, conv, state: DATState, short: Any, key):
    """Short-term (positives of the last 20 stored frames) or long-term update, 15 iterations."""
    npos, nneg = config.n_pos_update, config.n_neg_update
    d = state.pos_feats.shape[-1]
    pos_mask, neg_mask = update_masks(config, state, short)
    a = config.att_batch
    att_valid = state.att_seq >= 0
    att_pos_flat = state.att_pos.reshape((-1,) + state.att_pos.shape[2:])
    att_neg_flat = state.att_neg.reshape((-1,) + state.att_neg.shape[2:])
    att_neg_feats = state.att_neg_feats.reshape(-1, d).astype(jnp.float32)
    att_pos_mask = jnp.repeat(att_valid, config.att_pos_per_frame)
    att_neg_mask = jnp.repeat(att_valid, config.att_neg_per_frame)

    def att_memory(k, fc, pos_idx, neg_idx):
        del pos_idx, neg_idx
        pi = _sample_idx(k, att_pos_mask, a)
        s = jnp.where(att_neg_mask, scores_of(config, fc, att_neg_feats), -jnp.inf)
        ni = lax.top_k(s, a)[1]
        return att_pos_flat[pi].astype(jnp.float32), att_neg_flat[ni].astype(jnp.float32)

    nf = state.frames.shape[0]

    def att_batch(k, fc, pos_idx, neg_idx):
        # positive slot j holds stored frame pos_seq[j], in frame slot pos_seq[j] % nf = j
        pslots = online.ring_slot(state.pos_seq[pos_idx // npos], nf)
        nslots = online.ring_slot(state.neg_seq[neg_idx // nneg], nf)
        return (crop_stored(config, state.frames, state.frame_sizes, pslots, state.pos_boxes.reshape(-1, 4)[pos_idx]),
                crop_stored(config, state.frames, state.frame_sizes, nslots, state.neg_boxes.reshape(-1, 4)[neg_idx]))

    fc, mom = train(config, conv, state.fc, state.momentum,
                    state.pos_feats.reshape(-1, d), pos_mask, state.neg_feats.reshape(-1, d), neg_mask,
                    att_batch if config.att_source == "batch" else att_memory, key, config.maxiter_update,
                    config.lr_update, min_count=(npos, nneg))
    return state._replace(fc=fc, momentum=mom)


def step_keys(key):
    """``track_step``'s keys: (next state key, candidates, stored samples, update)."""
    return jax.random.split(key, 4)


def candidate_boxes(config: DATConfig, key, box, trans_f, img_wh):
    """The ``n_samples`` candidates scored in a frame (``run_mdnet``'s ``sample_generator``)."""
    return gen_samples(key, "gaussian", box, config.n_samples, img_wh, trans_f, config.scale_f, valid=True)


def track_step(config: DATConfig, params, state: DATState, frame: Frame):
    conv = params["conv"]
    img_wh = _img_wh(frame)
    key, ks, kc, ku = step_keys(state.key)
    i = state.frame_index + 1

    samples = candidate_boxes(config, ks, state.box, state.trans_f, img_wh)
    feats = extract(config, conv, frame, samples)
    scores = scores_of(config, state.fc, feats)
    top, idx = lax.top_k(scores, config.top_k)
    target_score = jnp.mean(top)
    success = target_score > config.success_thr
    target = jnp.mean(samples[idx], axis=0)
    regressed = jnp.mean(apply_bbreg(state.bbreg_w, state.bbreg_b, feats[idx], samples[idx], img_wh), axis=0)
    box = jnp.where(success, target, state.box)
    result = jnp.where(success, regressed, state.result)
    trans_f = jnp.where(success, config.trans_f, config.trans_f_expand).astype(jnp.float32)
    state = state._replace(box=box, result=result, trans_f=trans_f, frame_index=i, key=key)

    state = online.when(success, lambda s: _collect(config, conv, frame, s, kc), state)
    do_update = jnp.logical_not(success) | online.every(i, config.long_interval)
    state = online.when(do_update, lambda s: _update(config, conv, s, jnp.logical_not(success), ku), state)
    return state, TrackOutput(result, target_score, jnp.logical_not(success))


# ------------------------------------------------------------------ params

def load_params(config: DATConfig, weights: str | None = None, seed: int = 0, allow_random: bool = False):
    """``{"conv": ..., "fc": ...}``: the conv part from ImageNet weights, fc4-6 random
    (seeded by ``seed``, or ``config.seed`` when ``seed`` is 0).

    mobilenet_v2: :func:`jaxtrack.models.pretrained.mobilenet_v2_variables` (``weights`` may
    name a MobileNetV2 file), BatchNorm folded. vggm: ``weights`` or ``$JAXTRACK_VGGM`` =
    ``imagenet-vgg-m.mat``; without one, ``allow_random=True`` gives a seeded random conv
    part (timing/tests only).
    """
    key_c, key_f = jax.random.split(jax.random.PRNGKey(seed or config.seed))
    if config.backbone == "mobilenet_v2":
        from jaxtrack.models.mobilenet_v2 import fold_batchnorm
        from jaxtrack.models.pretrained import mobilenet_v2_variables
        conv = fold_batchnorm(mobilenet_v2_variables(weights), MNV2_LAST_BLOCK)
    else:
        from jaxtrack.models import vggm
        path = weights or os.environ.get("JAXTRACK_VGGM")
        if path:
            if not os.path.exists(path):
                raise FileNotFoundError(f"VGG-M weights not found: {path}")
            conv = vggm.load_vggm_mat(path)
        elif allow_random:
            conv = vggm.init_vggm(key_c)
        else:
            raise FileNotFoundError("DAT vggm needs imagenet-vgg-m.mat (weights=... or $JAXTRACK_VGGM), "
                                    "or allow_random=True")
    return {"conv": conv, "fc": init_fc(key_f, int(np.prod(feature_shape(config))))}
