"""ATOM (Danelljan et al., CVPR 2019): IoU-Net box refinement and an online Gauss-Newton classifier.

Defaults: pytracking's ``parameter/atom/default.py``. Classification: a factorised conv on
the stride-16 features, trained online (:mod:`jaxtrack.trackers.atom_optim`). Estimation:
IoU-Net (:mod:`jaxtrack.models.iounet`) refines the classifier's box by gradient ascent on
the predicted IoU. Backbones: ``resnet18`` (pytracking's ``atom_default.pth``) and the
``mobilenet_v2`` stand-in (adapters + IoU-Net trained by ``experiments/train_iounet.py``).

Coordinates: boxes are jaxtrack ``xywh``. Inside the 288 px crop, crop pixel ``u`` spans
image ``pos + (u - 144) * scale`` (``scale`` image pixels per crop pixel); score cell ``r``
of the 19x19 map sits at crop pixel ``16 r``. Design notes: docs/trackers/atom.md.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxtrack import checkpoints, models, online, ops
from jaxtrack.errors import ConfigError
from jaxtrack.core import Frame, TrackOutput
from jaxtrack.models import iounet
from jaxtrack.trackers import atom_optim as optim

# backbone -> (module options, the two tapped layers: IoU-Net's stride-8 and stride-16 inputs)
BACKBONES = {"mobilenet_v2": (dict(taps=(6, 13)), (6, 13)),
             "resnet18": (dict(taps=("layer2", "layer3")), ("layer2", "layer3"))}
OPTIMIZERS = ("gn_cg", "gd")

ROTATIONS = (5, -5, 10, -10, 20, -20, 30, -30, 45, -45, -60, 60)
BLURS = ((2, 0.2), (0.2, 2), (3, 1), (1, 3), (2, 2))
RELATIVE_SHIFTS = ((0.6, 0.6), (-0.6, 0.6), (0.6, -0.6), (-0.6, -0.6))
FLAG_NORMAL, FLAG_NOT_FOUND, FLAG_UNCERTAIN, FLAG_HARD_NEGATIVE = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class ATOMConfig:
    backbone: str = "mobilenet_v2"        # "mobilenet_v2" | "resnet18"
    sample_size: int = 288                # crop side in pixels (18 * 16)
    search_area_scale: float = 5.0
    stride: int = 16                      # classifier feature stride
    # classifier
    compressed_dim: int = 64
    kernel_size: int = 4
    filter_reg: float = 0.1
    projection_reg: float = 1e-4
    output_sigma_factor: float = 0.25
    response_mlu: float = 0.05
    learning_rate: float = 0.01
    init_samples_minimum_weight: float = 0.25
    memory_size: int = 250
    train_skipping: int = 10
    init_gn_iter: int = 6
    init_cg_iter: int = 10                # per GN step (pytracking: 60 in total / 6)
    cg_iter: int = 5
    precondition: bool = True             # pytracking's M1: divide by the regulariser weights
    optimizer: str = "gn_cg"              # "gn_cg" | "gd" (ablation, same Jacobian products)
    gd_step: float = 3e-3                 # gd: step size (plain gradient descent by default)
    gd_momentum: float = 0.0
    augment: bool = True
    random_shift_factor: float = 1 / 3
    dropout_num: int = 7
    dropout_prob: float = 0.2
    # advanced localisation
    target_not_found_threshold: float = 0.25
    distractor_threshold: float = 0.8
    hard_negative_threshold: float = 0.5
    target_neighborhood_scale: float = 2.2
    displacement_scale: float = 0.8
    hard_negative_learning_rate: float = 0.02
    hard_negative_cg_iter: int = 5
    # IoU-Net
    use_iou_net: bool = True
    num_init_random_boxes: int = 9
    box_jitter_pos: float = 0.1
    box_jitter_sz: float = 0.5
    maximal_aspect_ratio: float = 6.0
    box_refinement_iter: int = 5
    box_refinement_step_length: float = 1.0
    iounet_k: int = 3

    def __post_init__(self):
        models.check_backbone("atom", self.backbone, BACKBONES)
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"atom: optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")


Config = ATOMConfig

class ATOMState(NamedTuple):
    pos: Any              # (2,) target centre cx, cy
    target_size: Any      # (2,) w, h
    target_scale: Any     # () image pixels per crop pixel / of the base size
    base_size: Any        # (2,) target size at scale 1 (crop pixels)
    scale_range: Any      # (2,) min, max target_scale
    fill: Any             # (3,) first-frame mean colour (crop padding)
    sigma: Any            # () label sigma in score cells
    proj: Any             # [D, 64]
    filt: Any             # [k, k, 64]
    samples: Any          # [M, h, w, 64] projected training samples
    labels: Any           # [M, h+1, w+1]
    weights: Any          # [M]
    prev_ind: Any         # () int32, last replaced slot (-1: none yet)
    mod3: Any             # [256] IoU-Net modulation vectors
    mod4: Any
    frame_num: Any        # () int32, 1 at init
    key: Any
    loss: Any             # () classifier loss after the last optimisation
    flag: Any             # () int32, localisation flag of the last frame


# ------------------------------------------------------------------ augmentation

def transforms(config: ATOMConfig):
    """Static list of (relative shift or None, flip, angle, blur sigma (sy, sx) or None)."""
    t = [(None, False, 0.0, None, False)]                 # identity, no random shift
    if config.augment:
        t += [(s, False, 0.0, None, False) for s in RELATIVE_SHIFTS]
        t += [(None, True, 0.0, None, True)]
        t += [(None, False, 0.0, b, True) for b in BLURS]
        t += [(None, False, float(a), None, True) for a in ROTATIONS]
    return t


def num_init_samples(config: ATOMConfig) -> int:
    return len(transforms(config)) + (config.dropout_num if config.augment else 0)


def warp_crop(image, size, fill, center, scale, out: int, shift, angle, flip):
    """Crop ``out`` px around ``center`` at ``scale`` image px per crop px; the content is
    mirrored (``flip``), rotated by ``angle`` degrees about the target and moved by
    ``shift`` crop px, so the target lands at ``out/2 + shift``. Bilinear, ``fill`` outside."""
    g = jnp.arange(out, dtype=jnp.float32) + 0.5 - out / 2
    qx = g[None, :] - shift[0]
    qy = g[:, None] - shift[1]
    qx = jnp.where(flip, -qx, qx)
    a = jnp.deg2rad(angle)
    ix = center[0] + scale * (jnp.cos(a) * qx - jnp.sin(a) * qy)
    iy = center[1] + scale * (jnp.sin(a) * qx + jnp.cos(a) * qy)
    hb, wb = image.shape[:2]
    mask = (jnp.arange(hb)[:, None] < size[0]) & (jnp.arange(wb)[None, :] < size[1])
    img = jnp.where(mask[..., None], image.astype(jnp.float32) - fill, 0.0)
    coords = [iy - 0.5, ix - 0.5]
    chans = [jax.scipy.ndimage.map_coordinates(img[..., c], coords, order=1, mode="constant", cval=0.0)
             for c in range(3)]
    return jnp.stack(chans, -1) + fill


def gaussian_blur(img, sigma):
    """Separable Gaussian blur of ``[H, W, 3]`` with ``sigma = (sy, sx)`` (static)."""
    out = img
    for axis, s in ((0, sigma[0]), (1, sigma[1])):
        r = int(np.ceil(2 * s))
        k = np.exp(-0.5 * (np.arange(-r, r + 1) / s) ** 2)
        k = jnp.asarray(k / k.sum(), jnp.float32)
        pad = [(0, 0)] * 3
        pad[axis] = (r, r)
        p = jnp.pad(out, pad, mode="edge")
        n = out.shape[axis]
        out = sum(k[i] * lax.slice_in_dim(p, i, i + n, axis=axis) for i in range(2 * r + 1))
    return out


# ------------------------------------------------------------------ features

def backbone_module(config: ATOMConfig):
    return models.backbone(config.backbone, **BACKBONES[config.backbone][0])


def backbone_features(config: ATOMConfig, backbone_vars, crops):
    """Raw stride-8 and stride-16 features of ``[N, 288, 288, 3]`` crops (0-255)."""
    out = backbone_module(config).apply(backbone_vars, crops)
    tap8, tap16 = BACKBONES[config.backbone][1]
    return out[tap8], out[tap16]


def iounet_module():
    return iounet.AtomIoUNet()


def iou_features(params, f3, f4):
    """IoU-Net test-branch maps of raw backbone features (adapters applied first)."""
    a3, a4 = iounet.adapt(params.get("adapter"), (f3, f4))
    return iounet_module().apply(params["iounet"], a3, a4, method=iounet.AtomIoUNet.get_iou_feat)


def modulation(params, f3, f4, boxes):
    a3, a4 = iounet.adapt(params.get("adapter"), (f3, f4))
    return iounet_module().apply(params["iounet"], a3, a4, boxes, method=iounet.AtomIoUNet.get_modulation)


def predict_iou(params, mod, feats, boxes):
    return iounet_module().apply(params["iounet"], mod, feats, boxes, method=iounet.AtomIoUNet.predict_iou)


# ------------------------------------------------------------------ classifier pieces

def _score_size(config):
    return config.sample_size // config.stride + 1


def label_map(config: ATOMConfig, center_px, sigma):
    """Gaussian label on the score grid for a target at crop pixel ``center_px`` (x, y)."""
    s = _score_size(config)
    return ops.gaussian_label((s, s), sigma, (center_px[0] / config.stride, center_px[1] / config.stride))


def optimize_filter(config: ATOMConfig, state: ATOMState, num_cg: int):
    """One GN step (``num_cg`` CG iterations) on the filter over the sample memory."""
    res = lambda f: optim.filter_residuals(f, state.samples, state.labels, state.weights,  # noqa: E731
                                         config.filter_reg, config.response_mlu)
    if config.optimizer == "gd":
        filt, losses = optim.gradient_descent(res, state.filt, optim.jacobian_products_gn(1, num_cg),
                                            config.gd_step, config.gd_momentum)
    else:
        filt, losses = optim.gauss_newton_cg(res, state.filt, 1, num_cg)
    return filt, losses[-1]


def localize(config: ATOMConfig, scores, target_size, target_scale):
    """pytracking's ``localize_advanced`` on the score grid.

    Returns (displacement of the target from the crop centre in score cells (x, y),
    peak score, flag)."""
    s = scores.shape[0]
    c = (s - 1) / 2
    idx = jnp.unravel_index(jnp.argmax(scores), scores.shape)
    p1 = jnp.stack(idx).astype(jnp.float32)                                 # (row, col)
    max1 = scores[idx]

    def subpixel(i, j, axis):                          # parabola through the peak's neighbours
        lo = jnp.clip(jnp.array([i, j]) - jnp.eye(2, dtype=jnp.int32)[axis], 0, s - 1)
        hi = jnp.clip(jnp.array([i, j]) + jnp.eye(2, dtype=jnp.int32)[axis], 0, s - 1)
        l, m, r = scores[lo[0], lo[1]], scores[i, j], scores[hi[0], hi[1]]
        den = l - 2 * m + r
        return jnp.clip(jnp.where(den < 0, 0.5 * (l - r) / jnp.where(den < 0, den, -1.0), 0.0), -0.5, 0.5)

    fine = p1 + jnp.stack([subpixel(idx[0], idx[1], 0), subpixel(idx[0], idx[1], 1)])
    disp1 = (fine - c)[::-1]                                               # (x, y)

    neigh = config.target_neighborhood_scale * target_size / target_scale / config.stride  # (w, h) cells
    rows = jnp.arange(s, dtype=jnp.float32)
    near = ((jnp.abs(rows[:, None] - p1[0]) <= neigh[1] / 2 + 0.5)
            & (jnp.abs(rows[None, :] - p1[1]) <= neigh[0] / 2 + 0.5))
    masked = jnp.where(near, 0.0, scores)
    idx2 = jnp.unravel_index(jnp.argmax(masked), masked.shape)
    max2 = masked[idx2]
    disp2 = (jnp.stack(idx2).astype(jnp.float32) - c)[::-1]
    n1, n2 = jnp.linalg.norm(disp1), jnp.linalg.norm(disp2)
    th = config.displacement_scale * s / 2

    distractor = max2 > config.distractor_threshold * max1
    far2_near1 = (n2 > th) & (n1 < th)
    near2_far1 = (n2 < th) & (n1 > th)
    flag_d = jnp.where(far2_near1 | near2_far1, FLAG_HARD_NEGATIVE, FLAG_UNCERTAIN)
    disp_d = jnp.where(near2_far1, disp2, disp1)
    hard = (max2 > config.hard_negative_threshold * max1) & (max2 > config.target_not_found_threshold)
    flag = jnp.where(distractor, flag_d, jnp.where(hard, FLAG_HARD_NEGATIVE, FLAG_NORMAL))
    disp = jnp.where(distractor, disp_d, disp1)
    flag = jnp.where(max1 < config.target_not_found_threshold, FLAG_NOT_FOUND, flag)
    return disp, max1, flag.astype(jnp.int32)


# ------------------------------------------------------------------ IoU refinement

def refine_box(config: ATOMConfig, params, mod, feats, init_box, key):
    """Refine ``init_box`` (crop xywh) with IoU-Net: 1 + ``num_init_random_boxes`` starts,
    ``box_refinement_iter`` gradient-ascent steps each, top-k average.

    Returns (box, predicted IoU, ok) where ok is False when every box was rejected."""
    n = config.num_init_random_boxes
    sq = jnp.sqrt(init_box[2] * init_box[3])
    factor = sq * jnp.array([config.box_jitter_pos] * 2 + [config.box_jitter_sz] * 2)
    rand = (jax.random.uniform(key, (n, 4)) - 0.5) * factor
    size = jnp.maximum(init_box[2:] + rand[:, 2:], jnp.min(init_box[2:]) / 3)
    center = init_box[:2] + init_box[2:] / 2 + rand[:, :2]
    boxes = jnp.concatenate([init_box[None], jnp.concatenate([center - size / 2, size], 1)])

    def total_iou(b):
        iou = predict_iou(params, mod, feats, b[None])[0]
        return jnp.sum(iou), iou

    def step(b, _):
        (_, iou), g = jax.value_and_grad(total_iou, has_aux=True)(b)
        b_new = b + config.box_refinement_step_length * g * jnp.concatenate([b[:, 2:], b[:, 2:]], 1)
        return b_new, iou

    boxes, ious = lax.scan(step, boxes, None, length=config.box_refinement_iter)
    iou = ious[-1]                              # as pytracking: the IoU before the last step
    boxes = boxes.at[:, 2:].set(jnp.maximum(boxes[:, 2:], 1.0))
    aspect = boxes[:, 2] / boxes[:, 3]
    keep = (aspect < config.maximal_aspect_ratio) & (aspect > 1 / config.maximal_aspect_ratio)
    score = jnp.where(keep, iou, -jnp.inf)
    k = min(config.iounet_k, n + 1)
    top_score, top = lax.top_k(score, k)
    valid = jnp.isfinite(top_score)
    wts = valid.astype(jnp.float32) / jnp.maximum(jnp.sum(valid), 1)
    box = jnp.sum(boxes[top] * wts[:, None], 0)
    return box, jnp.sum(top_score * wts), jnp.any(keep)


# ------------------------------------------------------------------ init / track

def _init_filter_projection(config, key, dim):
    kp, kf = jax.random.split(key)
    k, c = config.kernel_size, config.compressed_dim
    proj = jax.random.normal(kp, (dim, c), jnp.float32) / np.sqrt(dim)
    filt = jax.random.normal(kf, (k, k, c), jnp.float32) / (k * k * c)
    return filt, proj


def first_frame_training_set(config: ATOMConfig, params, frame: Frame, pos, scale, fill, key):
    """Augmented first-frame samples: (classifier features [N, h, w, D], target crop
    centres [N, 2], raw stride-8/16 features of the identity crop)."""
    k_shift, k_drop = jax.random.split(key)
    ts = transforms(config)
    size = config.sample_size
    rand_shift = (jax.random.uniform(k_shift, (len(ts), 2)) - 0.5) * size * config.random_shift_factor
    crops, centres = [], []
    for i, (rel, flip, angle, blur, use_rand) in enumerate(ts):
        shift = jnp.asarray(rel, jnp.float32) * size / 2 if rel is not None else \
            (rand_shift[i] if use_rand else jnp.zeros(2, jnp.float32))
        crop = warp_crop(frame.image, frame.size, fill, pos, scale, size, shift, angle, flip)
        if blur is not None:
            crop = gaussian_blur(crop, blur)
        crops.append(crop)
        centres.append(size / 2 + shift)
    f3, f4 = backbone_features(config, params["backbone"], jnp.stack(crops))
    x = optim.normalize_features(f4)
    centres = jnp.stack(centres)
    if config.augment and config.dropout_num > 0:
        keep = jax.random.bernoulli(k_drop, 1 - config.dropout_prob, (config.dropout_num, 1, 1, x.shape[-1]))
        drop = x[:1] * keep / (1 - config.dropout_prob)        # dropout2d: whole channels
        x = jnp.concatenate([x, drop])
        centres = jnp.concatenate([centres, jnp.broadcast_to(centres[:1], (config.dropout_num, 2))])
    return x, centres, (f3[:1], f4[:1])


def init(config: ATOMConfig, params, frame: Frame, box, key) -> ATOMState:
    """Start tracking ``box`` (xywh): IoU-Net modulation, first-frame classifier training."""
    box = jnp.asarray(box, jnp.float32)
    pos = box[:2] + box[2:] / 2
    target_size = box[2:]
    size = config.sample_size
    scale = jnp.sqrt(jnp.prod(target_size * config.search_area_scale)) / size
    base = target_size / scale
    wh = jnp.stack([frame.size[1], frame.size[0]]).astype(jnp.float32)
    scale_range = jnp.stack([jnp.max(10.0 / base), jnp.min(wh / base)])
    fill = ops.valid_mean_color(frame.image, frame.size)
    k_aug, k_init, k_state = jax.random.split(key, 3)

    x, centres, (f3, f4) = first_frame_training_set(config, params, frame, pos, scale, fill, k_aug)
    n = x.shape[0]
    target_box = jnp.concatenate([size / 2 - base / 2, base])[None]
    mod3, mod4 = modulation(params, f3, f4, target_box)

    sigma = jnp.sqrt(jnp.prod(base / config.stride)) * config.output_sigma_factor
    y = jax.vmap(lambda c: label_map(config, c, sigma))(centres)
    w = jnp.full((n,), 1.0 / n, jnp.float32)
    filt, proj = _init_filter_projection(config, k_init, x.shape[-1])
    res = lambda v: optim.joint_residuals(v, x, y, w, config.filter_reg, config.projection_reg,  # noqa: E731
                                        config.response_mlu)
    if config.optimizer == "gd":
        (filt, proj), losses = optim.gradient_descent(
            res, (filt, proj), optim.jacobian_products_gn(config.init_gn_iter, config.init_cg_iter),
            config.gd_step, config.gd_momentum)
    else:
        precond = (jnp.full(filt.shape, 1 / config.filter_reg), jnp.full(proj.shape, 1 / config.projection_reg)) \
            if config.precondition else None
        (filt, proj), losses = optim.gauss_newton_cg(res, (filt, proj), config.init_gn_iter,
                                                   config.init_cg_iter, precond)

    m = config.memory_size
    s = _score_size(config)
    samples = jnp.zeros((m,) + x.shape[1:3] + (config.compressed_dim,), jnp.float32)
    samples = samples.at[:n].set(optim.project(x, proj))
    labels = jnp.zeros((m, s, s), jnp.float32).at[:n].set(y)
    weights = jnp.zeros((m,), jnp.float32).at[:n].set(w)
    return ATOMState(pos, target_size, scale, base, scale_range, fill, sigma, proj, filt,
                     samples, labels, weights, jnp.array(-1, jnp.int32), mod3[0], mod4[0],
                     jnp.array(1, jnp.int32), k_state, losses[-1], jnp.array(FLAG_NORMAL, jnp.int32))


def track_step(config: ATOMConfig, params, state: ATOMState, frame: Frame):
    size = config.sample_size
    key, k_box = jax.random.split(state.key)
    sample_pos, scale = state.pos, state.target_scale
    crop = ops.crop_patch(frame.image, frame.size, sample_pos, size * scale, size, state.fill)
    f3, f4 = backbone_features(config, params["backbone"], crop[None])
    x = optim.project(optim.normalize_features(f4), state.proj)               # [1, h, w, 64]
    scores = optim.apply_filter(x, state.filt)[0]
    disp, peak, flag = localize(config, scores, state.target_size, scale)
    found = flag != FLAG_NOT_FOUND

    wh = jnp.stack([frame.size[1], frame.size[0]]).astype(jnp.float32)
    inside = (0.2 - 0.5) * state.target_size                   # pytracking's update_state clamp
    pos_c = jnp.clip(sample_pos + disp * config.stride * scale, inside, wh - inside)
    if config.use_iou_net:
        feats = iou_features(params, f3, f4)
        mod = (state.mod3[None], state.mod4[None])
        init_box = jnp.concatenate([(pos_c - sample_pos) / scale + size / 2 - state.target_size / scale / 2,
                                    state.target_size / scale])
        box, _, ok = refine_box(config, params, mod, feats, init_box, k_box)
        new_pos = jnp.where(ok, sample_pos + (box[:2] + box[2:] / 2 - size / 2) * scale, pos_c)
        new_size = jnp.where(ok, box[2:] * scale, state.target_size)
        raw_scale = jnp.where(ok, jnp.sqrt(jnp.prod(new_size) / jnp.prod(state.base_size)), scale)
        new_scale = jnp.clip(raw_scale, state.scale_range[0], state.scale_range[1])
        # the size follows the clamped scale (pytracking's update_state: target_sz = base *
        # scale), so the box cannot keep shrinking or growing once the crop scale is pinned
        new_size = jnp.clip(new_size * new_scale / raw_scale, 1.0, wh)
    else:
        new_pos, new_size, new_scale = pos_c, state.target_size, scale
    pos = jnp.where(found, new_pos, state.pos)
    target_size = jnp.where(found, new_size, state.target_size)
    target_scale = jnp.where(found, new_scale, scale)

    # memory update (not when lost or uncertain), label centred on the new estimate
    hard = flag == FLAG_HARD_NEGATIVE
    update = (flag == FLAG_NORMAL) | hard
    lr = jnp.where(hard, config.hard_negative_learning_rate, config.learning_rate)
    y = label_map(config, (pos - sample_pos) / scale + size / 2, state.sigma)
    weights, r = optim.update_sample_weights(state.weights, state.prev_ind, num_init_samples(config), lr,
                                           config.init_samples_minimum_weight)
    state = state._replace(
        samples=state.samples.at[r].set(jnp.where(update, x[0], state.samples[r])),
        labels=state.labels.at[r].set(jnp.where(update, y, state.labels[r])),
        weights=jnp.where(update, weights, state.weights),
        prev_ind=jnp.where(update, r, state.prev_ind).astype(jnp.int32))

    frame_num = state.frame_num + 1
    train = hard | online.every(frame_num - 1, config.train_skipping)
    filt, loss = online.lazy_cond(train, lambda s: optimize_filter(config, s, config.cg_iter),
                                  lambda s: (s.filt, s.loss), state)
    state = state._replace(pos=pos, target_size=target_size, target_scale=target_scale, filt=filt,
                           loss=loss, frame_num=frame_num, key=key, flag=flag)
    out_box = jnp.concatenate([pos - target_size / 2, target_size])
    return state, TrackOutput(out_box, peak, flag == FLAG_NOT_FOUND)


# ------------------------------------------------------------------ params

def init_head(config: ATOMConfig, key):
    """Random IoU-Net (+ adapters for mobilenet_v2) variables."""
    k_a, k_i = jax.random.split(key)
    if config.backbone == "mobilenet_v2":
        adapter = iounet.init_adapters(k_a, (32, 96))
    else:
        adapter = {}
    f3 = jnp.zeros((1, 36, 36, 128))
    f4 = jnp.zeros((1, 18, 18, 256))
    b = jnp.array([[100.0, 100.0, 80.0, 80.0]])
    variables = iounet_module().init(k_i, f3, f4, b, f3, f4, b[:, None])
    return {"adapter": adapter, "iounet": jax.tree_util.tree_map(jnp.asarray, dict(variables))}


def load_params(config: ATOMConfig, weights: str | None = None, seed: int = 0, allow_random: bool = False):
    """Params ``{"backbone", "adapter", "iounet"}``.

    mobilenet_v2: ImageNet backbone (:func:`jaxtrack.models.pretrained.mobilenet_v2_variables`)
    and the trained adapters + IoU-Net from ``weights`` (default: the committed checkpoint).
    resnet18: ``weights`` is a pytracking ``atom_default.pth`` (backbone + IoU-Net), or a
    jaxtrack msgpack of the full params.
    """
    from jaxtrack.models.pretrained import mobilenet_v2_variables
    k_b, k_h = jax.random.split(jax.random.PRNGKey(seed))
    head = init_head(config, k_h)
    path = weights or checkpoints.default_checkpoint("atom", config.backbone)
    if config.backbone == "mobilenet_v2":
        head = checkpoints.load_trained_part(weights, path, head, allow_random=allow_random,
                                             what="ATOM IoU-Net", train_script="experiments/train_iounet.py")
        return {"backbone": mobilenet_v2_variables(), **head}
    have = os.path.exists(path)
    if weights and not have:
        raise FileNotFoundError(f"ATOM weights not found: {weights}")
    backbone = backbone_module(config).init(k_b, jnp.zeros((1, 64, 64, 3)))
    template = {"backbone": jax.tree_util.tree_map(jnp.asarray, dict(backbone)), **head}
    if have:
        if path.endswith((".pth", ".pt", ".tar")):
            loaded = iounet.load_pytracking_atom(path)
            return {"backbone": loaded["backbone"], "adapter": {}, "iounet": loaded["iounet"]}
        return checkpoints.load_variables(path, template)
    if not allow_random:
        raise FileNotFoundError(f"no ATOM ResNet-18 weights at {path}; pass weights=atom_default.pth "
                                "(pytracking) or allow_random=True")
    return template
