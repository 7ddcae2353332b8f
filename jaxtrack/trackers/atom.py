"""ATOM (Danelljan et al., CVPR 2019): IoU-Net box refinement and an online Gauss-Newton classifier.

Defaults: pytracking's ``parameter/atom/default.py``. Classification: a factorised conv on
the stride-16 features, trained online (:mod:`jaxtrack.trackers.atom_optim`). Estimation:
IoU-Net (:mod:`jaxtrack.models.iounet`) refines the classifier's box by gradient ascent on
the predicted IoU. Backbones: ``resnet18`` (pytracking's ``atom_default.pth``) and the
``mobilenet_v2`` stand-in (adapters + IoU-Net trained by ``experiments/train_iounet.py``).

Geometry (``ATOMConfig.geometry``): ``"pytracking"`` (default) is pytracking's computation
(crops cut at ``trunc(pos)`` by ``sample_patch``, an 18x18 score map Fourier-interpolated to
288x288, ``localize_advanced`` in crop pixels, no scale clamp, the 2x augmentation crop), in
its pixel-index coordinates inside; ``"grid19"`` (variant ``grid19``) is jaxtrack's former
one: continuous crops where crop pixel ``u`` spans image ``pos + (u - 144) * scale``, and a
19x19 map whose cell ``r`` sits at crop pixel ``16 r``. Boxes are jaxtrack ``xywh`` on both.
Design notes: docs/trackers/atom.md; comparison: docs/fidelity_atom.md.
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
GEOMETRIES = ("pytracking", "grid19")

ROTATIONS = (5, -5, 10, -10, 20, -20, 30, -30, 45, -45, -60, 60)
BLURS = ((2, 0.2), (0.2, 2), (3, 1), (1, 3), (2, 2))
RELATIVE_SHIFTS = ((0.6, 0.6), (-0.6, 0.6), (0.6, -0.6), (-0.6, -0.6))
FLAG_NORMAL, FLAG_NOT_FOUND, FLAG_UNCERTAIN, FLAG_HARD_NEGATIVE = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class ATOMConfig:
    backbone: str = "mobilenet_v2"        # "mobilenet_v2" | "resnet18"
    # "pytracking": pytracking's crops (sample_patch at trunc(pos)), 18x18 score map
    # Fourier-interpolated to 288x288, its localisation, state updates and 2x augmentation
    # crop; "grid19": jaxtrack's former geometry (continuous crops, 19x19 map with a parabolic
    # peak, scale clamp, augmentation on the 288 crop). docs/fidelity_atom.md.
    geometry: str = "pytracking"
    augmentation_expansion_factor: int = 2     # pytracking: transforms on a 2x crop
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
        if self.geometry not in GEOMETRIES:
            raise ConfigError(f"atom: geometry must be one of {GEOMETRIES}, got {self.geometry!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"atom: optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")


Config = ATOMConfig

class ATOMState(NamedTuple):
    pos: Any              # (2,) target centre cx, cy (continuous; pytracking's index pos + 0.5)
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
    pos_iounet: Any       # (2,) last IoU-Net position (pytracking's pos_iounet; grid19: = pos)


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
    same = config.geometry == "pytracking"
    res = lambda f: optim.filter_residuals(f, state.samples, state.labels, state.weights,  # noqa: E731
                                         config.filter_reg, config.response_mlu, same)
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

    disp, flag = peak_decision(config, max1, max2, disp1, disp2, n1, n2, th)
    return disp, max1, flag


def peak_decision(config: ATOMConfig, max1, max2, d1, d2, n1, n2, th):
    """pytracking's ``localize_advanced`` decision from the highest peak (``max1`` at
    displacement ``d1``, distance ``n1``) and the highest outside its neighbourhood (``max2``,
    ``d2``, ``n2``), ``th`` the distance threshold: (displacement, flag) with the flags
    normal / uncertain / hard negative / not found."""
    distractor = max2 > config.distractor_threshold * max1
    far2_near1 = (n2 > th) & (n1 < th)
    near2_far1 = (n2 < th) & (n1 > th)
    flag_d = jnp.where(far2_near1 | near2_far1, FLAG_HARD_NEGATIVE, FLAG_UNCERTAIN)
    disp_d = jnp.where(near2_far1, d2, d1)
    hard = (max2 > config.hard_negative_threshold * max1) & (max2 > config.target_not_found_threshold)
    flag = jnp.where(distractor, flag_d, jnp.where(hard, FLAG_HARD_NEGATIVE, FLAG_NORMAL))
    disp = jnp.where(distractor, disp_d, d1)
    flag = jnp.where(max1 < config.target_not_found_threshold, FLAG_NOT_FOUND, flag)
    return disp, flag.astype(jnp.int32)


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
    if config.geometry == "pytracking":
        return init_pytracking(config, params, frame, box, key)
    return init_grid19(config, params, frame, box, key)


def track_step(config: ATOMConfig, params, state: ATOMState, frame: Frame):
    if config.geometry == "pytracking":
        return track_step_pytracking(config, params, state, frame)
    return track_step_grid19(config, params, state, frame)


def first_frame_optimization(config: ATOMConfig, res, filt, proj):
    """The joint filter + projection fit of the first frame on the residuals ``res``:
    ``init_gn_iter`` Gauss-Newton steps of ``init_cg_iter`` CG (preconditioned by the inverse
    regularisers, as pytracking's ``GaussNewtonCG``), or gradient descent with the same number
    of Jacobian products (``optimizer="gd"``). Returns ((filter, projection), losses)."""
    if config.optimizer == "gd":
        return optim.gradient_descent(
            res, (filt, proj), optim.jacobian_products_gn(config.init_gn_iter, config.init_cg_iter),
            config.gd_step, config.gd_momentum)
    precond = (jnp.full(filt.shape, 1 / config.filter_reg), jnp.full(proj.shape, 1 / config.projection_reg)) \
        if config.precondition else None
    return optim.gauss_newton_cg(res, (filt, proj), config.init_gn_iter, config.init_cg_iter, precond)


def init_grid19(config: ATOMConfig, params, frame: Frame, box, key) -> ATOMState:
    """``geometry="grid19"``: jaxtrack's former first frame (19x19 map, warp on the 288 crop)."""
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
    (filt, proj), losses = first_frame_optimization(config, res, filt, proj)

    m = config.memory_size
    s = _score_size(config)
    samples = jnp.zeros((m,) + x.shape[1:3] + (config.compressed_dim,), jnp.float32)
    samples = samples.at[:n].set(optim.project(x, proj))
    labels = jnp.zeros((m, s, s), jnp.float32).at[:n].set(y)
    weights = jnp.zeros((m,), jnp.float32).at[:n].set(w)
    return ATOMState(pos, target_size, scale, base, scale_range, fill, sigma, proj, filt,
                     samples, labels, weights, jnp.array(-1, jnp.int32), mod3[0], mod4[0],
                     jnp.array(1, jnp.int32), k_state, losses[-1], jnp.array(FLAG_NORMAL, jnp.int32), pos)


def track_step_grid19(config: ATOMConfig, params, state: ATOMState, frame: Frame):
    """``geometry="grid19"``: jaxtrack's former frame step."""
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
    y = label_map(config, (pos - sample_pos) / scale + size / 2, state.sigma)
    state = remember_and_train(config, state, x[0], y, flag, pos=pos, target_size=target_size,
                               target_scale=target_scale, key=key, pos_iounet=pos)
    out_box = jnp.concatenate([pos - target_size / 2, target_size])
    return state, TrackOutput(out_box, peak, flag == FLAG_NOT_FOUND)


def remember_and_train(config: ATOMConfig, state: ATOMState, sample, label, flag, **new) -> ATOMState:
    """Both geometries' end of a step: ``sample`` and ``label`` replace a memory slot unless the
    target is lost or uncertain (pytracking's ``update_memory``, hard negatives at their own
    rate), the filter trains every ``train_skipping`` frames or at once on a hard negative,
    and the state takes the ``new`` fields."""
    hard = flag == FLAG_HARD_NEGATIVE
    update = (flag == FLAG_NORMAL) | hard
    lr = jnp.where(hard, config.hard_negative_learning_rate, config.learning_rate)
    weights, r = optim.update_sample_weights(state.weights, state.prev_ind, num_init_samples(config), lr,
                                           config.init_samples_minimum_weight)
    state = state._replace(
        samples=state.samples.at[r].set(jnp.where(update, sample, state.samples[r])),
        labels=state.labels.at[r].set(jnp.where(update, label, state.labels[r])),
        weights=jnp.where(update, weights, state.weights),
        prev_ind=jnp.where(update, r, state.prev_ind).astype(jnp.int32))
    frame_num = state.frame_num + 1
    train = hard | online.every(frame_num - 1, config.train_skipping)
    filt, loss = online.lazy_cond(train, lambda s: optimize_filter(config, s, config.cg_iter),
                                  lambda s: (s.filt, s.loss), state)
    return state._replace(filt=filt, loss=loss, frame_num=frame_num, flag=flag, **new)


# ------------------------------------------------------------------ geometry="pytracking"
# pytracking's ATOM (pytracking/tracker/atom/atom.py at 7eb9e74, parameter/atom/default.py).
# Inside: pytracking's pixel-index coordinates, (x, y) order: index = continuous - 0.5.

def sample_patch(image, size, pos, sample_sz, out: int):
    """pytracking's ``features/preprocessing.sample_patch`` (square, ``mode='replicate'``).

    ``pos`` (x, y) in pixel-index coordinates, ``sample_sz`` the crop side in image pixels.
    The window is cut at ``trunc(pos)``: after a pre-downsampling by ``df = max(int(r - 0.1), 1)``
    (``r = sample_sz / out``, every ``df``-th pixel from ``pos % df``), the window is
    ``[int(tl), int(br))`` with ``tl = p - (s - 1) / 2``, ``br = p + s / 2 + 1``, ``s =
    max(round(sample_sz / df), 2)`` and ``int`` truncating toward 0 (so ``s`` or ``s + 1``
    pixels), replicate padding, then ``F.interpolate(bilinear, align_corners=False)`` to
    ``out`` (lines 55-148). image [H, W, C] (may be padded), size (h, w). Returns float32
    [out, out, C].
    """
    pos = jnp.asarray(pos, jnp.float32)
    wh = jnp.stack([size[1], size[0]]).astype(jnp.int32)
    posl = jnp.trunc(pos).astype(jnp.int32)
    df = jnp.maximum(jnp.trunc(sample_sz / out - 0.1), 1.0).astype(jnp.int32)
    szl = jnp.maximum(jnp.round(sample_sz / df.astype(jnp.float32)), 2.0)
    off = jnp.remainder(posl, df)
    p = ((posl - off) // df).astype(jnp.float32)
    start = jnp.trunc(p - (szl - 1) / 2).astype(jnp.int32)
    end = jnp.trunc(p + szl / 2 + 1).astype(jnp.int32)
    length = end - start
    n2 = (wh - off + df - 1) // df                         # size of the downsampled image
    d = jnp.arange(out, dtype=jnp.float32)

    def taps(axis):
        src = jnp.maximum((d + 0.5) * (length[axis].astype(jnp.float32) / out) - 0.5, 0.0)
        i0 = jnp.minimum(jnp.floor(src).astype(jnp.int32), length[axis] - 1)
        lam = jnp.clip(src - i0, 0.0, 1.0)
        i1 = jnp.minimum(i0 + 1, length[axis] - 1)
        to_image = lambda i: off[axis] + df * jnp.clip(start[axis] + i, 0, n2[axis] - 1)   # noqa: E731
        return to_image(i0), to_image(i1), 1.0 - lam, lam

    x0, x1, wx0, wx1 = taps(0)
    y0, y1, wy0, wy1 = taps(1)
    img = image.astype(jnp.float32)

    def row(yi):
        r = jnp.take(img, yi, axis=0)
        return wx0[None, :, None] * jnp.take(r, x0, axis=1) + wx1[None, :, None] * jnp.take(r, x1, axis=1)

    return wy0[:, None, None] * row(y0) + wy1[:, None, None] * row(y1)


def _bilinear_replicate(img, ys, xs):
    """Bilinear samples of ``img [H, W, C]`` at float ``ys, xs`` (same shape), each tap clamped
    to the image (OpenCV's ``BORDER_REPLICATE``)."""
    h, w = img.shape[:2]
    y0, x0 = jnp.floor(ys), jnp.floor(xs)
    fy, fx = (ys - y0)[..., None], (xs - x0)[..., None]
    y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
    g = lambda yy, xx: img[jnp.clip(yy, 0, h - 1), jnp.clip(xx, 0, w - 1)]   # noqa: E731
    return ((1 - fy) * ((1 - fx) * g(y0, x0) + fx * g(y0, x0 + 1))
            + fy * ((1 - fx) * g(y0 + 1, x0) + fx * g(y0 + 1, x0 + 1)))


def _blur_zero_padded(img, sigma):
    """pytracking's ``augmentation.Blur``: separable Gaussian (radius ``ceil(2 sigma)``,
    normalised), rows then columns, zero padding (``F.conv2d(padding=...)``)."""
    out = img
    for axis, s in ((0, sigma[0]), (1, sigma[1])):
        r = int(np.ceil(2 * s))
        k = np.exp(-(np.arange(-r, r + 1, dtype=np.float32) ** 2) / (2 * s ** 2)).astype(np.float32)
        k = jnp.asarray(k / k.sum(), jnp.float32)
        pad = [(0, 0)] * 3
        pad[axis] = (r, r)
        p = jnp.pad(out, pad)
        n = out.shape[axis]
        out = sum(k[i] * lax.slice_in_dim(p, i, i + n, axis=axis) for i in range(2 * r + 1))
    return out


def transform_sample(patch, kind, arg, shift, out: int):
    """One of pytracking's ``augmentation`` transforms of the expanded ``patch [E, E, C]``,
    then ``crop_to_output``: the centre ``out x out`` window moved by ``shift`` (dy, dx) px
    (replicate padding). ``kind``: "identity" | "flip" | "blur" (arg: sigma (sy, sx)) |
    "rotate" (arg: degrees; ``cv2.warpAffine`` about ``(E - 1) / 2``, bilinear, replicate)."""
    e = patch.shape[0]
    base = (e - out) // 2                                  # floor(pad) of crop_to_output, negated
    r = jnp.arange(out) + base - shift[0]
    c = jnp.arange(out) + base - shift[1]
    if kind == "rotate":
        a = np.pi * arg / 180
        cen = (e - 1) / 2
        # dst = R src + (I - R) cen with R = [[cos, sin], [-sin, cos]] (x, y): src = R^T (dst - cen) + cen
        inside = lambda v: jnp.clip(v, 0, e - 1).astype(jnp.float32)   # noqa: E731
        # crop_to_output's replicate padding clamps the window first, then the warp is sampled
        xs = np.cos(a) * (inside(c)[None, :] - cen) - np.sin(a) * (inside(r)[:, None] - cen) + cen
        ys = np.sin(a) * (inside(c)[None, :] - cen) + np.cos(a) * (inside(r)[:, None] - cen) + cen
        return _bilinear_replicate(patch, ys, xs)
    if kind == "blur":
        patch = _blur_zero_padded(patch, arg)
    r, c = jnp.clip(r, 0, e - 1), jnp.clip(c, 0, e - 1)
    if kind == "flip":
        c = e - 1 - c
    return jnp.take(jnp.take(patch, r, axis=0), c, axis=1)


def pytracking_transforms(config: ATOMConfig):
    """pytracking's ``generate_init_samples`` list (order of ``parameter/atom/default.py``):
    (kind, arg, fixed shift (dy, dx) or None, index of its random-shift draw or None)."""
    t = [("identity", None, (0, 0), None)]
    if config.augment:
        half = config.sample_size / 2
        t += [("identity", None, tuple(int(np.float32(v) * np.float32(half)) for v in s), None)
              for s in RELATIVE_SHIFTS]          # (torch.Tensor(shift) * sz / 2).long()
        t += [("flip", None, None, 0)]
        t += [("blur", b, None, 1 + i) for i, b in enumerate(BLURS)]
        t += [("rotate", float(a), None, 1 + len(BLURS) + i) for i, a in enumerate(ROTATIONS)]
    return t


def num_random_shifts(config: ATOMConfig) -> int:
    return sum(d is not None for *_, d in pytracking_transforms(config))


def init_draws(config: ATOMConfig, key, dim: int) -> dict:
    """Every random draw of the first frame, from ``key`` (``init``'s ``k_aug`` / ``k_init``
    split): the uniforms of pytracking's ``torch.rand(2)`` random shifts (one row per
    shifted transform, in its order), the dropout2d keep mask ``[dropout_num, dim]``, and
    the initial filter and projection (pytracking's ``randn`` inits)."""
    k_aug, k_init, _ = jax.random.split(key, 3)
    k_shift, k_drop = jax.random.split(k_aug)
    filt, proj = _init_filter_projection(config, k_init, dim)
    return {"shift_uniform": jax.random.uniform(k_shift, (max(num_random_shifts(config), 1), 2)),
            "dropout_keep": jax.random.bernoulli(k_drop, 1 - config.dropout_prob,
                                                 (max(config.dropout_num, 1), dim)),
            "filter": filt, "proj": proj}


def random_shifts(config: ATOMConfig, uniform):
    """pytracking's ``((torch.rand(2) - 0.5) * img_sample_sz * random_shift_factor).long()``
    of ``uniform [n, 2]`` ((dy, dx) rows): truncated toward 0, int32."""
    v = (uniform - 0.5) * jnp.float32(config.sample_size) * jnp.float32(config.random_shift_factor)
    return jnp.trunc(v).astype(jnp.int32)


def pytracking_init_crops(config: ATOMConfig, frame: Frame, pos_idx, scale, draws):
    """The augmented first-frame crops ``[N, out, out, 3]`` and their shifts ``[N, 2]`` (dy, dx):
    one ``sample_patch`` of ``expansion x out`` px at ``pos`` (``generate_init_samples``,
    atom.py:473-525), each transform applied to it and cut to ``out``."""
    out = config.sample_size
    e = out * config.augmentation_expansion_factor
    e += (e - out) % 2
    patch = sample_patch(frame.image, frame.size, pos_idx, scale * e, e)
    rs = random_shifts(config, draws["shift_uniform"])
    crops, shifts = [], []
    for kind, arg, fixed, draw in pytracking_transforms(config):
        shift = jnp.asarray(fixed, jnp.int32) if draw is None else rs[draw]
        crops.append(transform_sample(patch, kind, arg, shift, out))
        shifts.append(shift)
    return jnp.stack(crops), jnp.stack(shifts)


def pytracking_label(config: ATOMConfig, center, sigma):
    """``dcf.label_function_spatial`` on the ``sample_size / stride`` grid: a Gaussian at
    ``center`` (y, x) cells from the grid's middle, ``k = arange(-(sz-1)/2, (sz+1)/2)``."""
    s = config.sample_size // config.stride
    k = jnp.arange(s, dtype=jnp.float32) - (s - 1) / 2
    gy = jnp.exp(-1.0 / (2 * sigma ** 2) * (k - center[0]) ** 2)
    gx = jnp.exp(-1.0 / (2 * sigma ** 2) * (k - center[1]) ** 2)
    return gy[:, None] * gx[None, :]


def _label_center(config, offset_xy, scale):
    """pytracking's label centre (y, x) for a target ``offset_xy`` image px from the sample
    position: ``sz * offset / (scale * img_support_sz) + 0.5 * ((ksz + 1) % 2)``."""
    s = config.sample_size // config.stride
    c = s * offset_xy / (scale * config.sample_size) + 0.5 * ((config.kernel_size + 1) % 2)
    return c[::-1]


def iounet_box(config: ATOMConfig, pos_idx, target_size, sample_pos, scale):
    """pytracking's ``get_iounet_box`` (atom.py:661-666, index coordinates), as (x, y, w, h) in
    crop pixels."""
    sz = target_size / scale
    center = (pos_idx - sample_pos) / scale + (config.sample_size - 1) / 2
    return jnp.concatenate([center - (sz - 1) / 2, sz])


def fourier_matrix(n: int, out: int) -> np.ndarray:
    """``[out, n]``: pytracking's score interpolation along one axis (``localize_target``:
    ``cfft2``, ``shift_fs`` by pi for an even kernel, ``sample_fs`` to ``out``; then
    ``localize_advanced``'s shift by ``(out + 1) // 2``). ``cfft2`` keeps the Nyquist term
    on both sides (frequencies ``-n/2 .. n/2``), so row ``j`` is ``(1/n) sum_k exp(i k phi)``
    with ``phi = 2 pi (j / out - m / n)``: output ``j = m out / n`` sits on score cell ``m``
    (not equal to it: the doubled Nyquist terms), and ``j - out // 2`` is the displacement in
    output pixels. Odd kernels shift by
    ``pi (1 - 1/n)`` instead; only even ``n`` and kernels are handled here."""
    j = np.arange(out, dtype=np.float64)[:, None]
    m = np.arange(n, dtype=np.float64)[None, :]
    phi = 2 * np.pi * (j / out - m / n)
    k = np.arange(-(n // 2), n // 2 + 1, dtype=np.float64)
    return (np.cos(k[:, None, None] * phi[None]).sum(0) / n).astype(np.float32)


def interpolate_scores(config: ATOMConfig, scores):
    """The ``[s, s]`` score map Fourier-interpolated to ``[out, out]`` as pytracking's
    ``localize_target`` + the shift back in ``localize_advanced`` (atom.py:304-359)."""
    a = jnp.asarray(fourier_matrix(scores.shape[0], config.sample_size))
    return a @ scores @ a.T


def localize_advanced(config: ATOMConfig, scores, target_size, target_scale):
    """pytracking's ``localize_advanced`` (atom.py:341-407) on the interpolated map
    ``[out, out]`` (displacement ``index - out // 2`` crop px). Returns (displacement (x, y)
    in crop pixels, peak score, flag)."""
    sz = scores.shape[0]
    half = sz // 2
    i1 = jnp.unravel_index(jnp.argmax(scores), scores.shape)
    max1 = scores[i1]
    p1 = jnp.stack(i1).astype(jnp.float32)                 # (row, col)
    d1 = (p1 - half)[::-1]
    neigh = config.target_neighborhood_scale * target_size / target_scale      # (w, h)
    top = jnp.maximum(jnp.round(p1[0] - neigh[1] / 2), 0)
    bottom = jnp.minimum(jnp.round(p1[0] + neigh[1] / 2 + 1), sz)
    left = jnp.maximum(jnp.round(p1[1] - neigh[0] / 2), 0)
    right = jnp.minimum(jnp.round(p1[1] + neigh[0] / 2 + 1), sz)
    g = jnp.arange(sz, dtype=jnp.float32)
    near = ((g[:, None] >= top) & (g[:, None] < bottom)) & ((g[None, :] >= left) & (g[None, :] < right))
    masked = jnp.where(near, 0.0, scores)
    i2 = jnp.unravel_index(jnp.argmax(masked), masked.shape)
    max2 = masked[i2]
    d2 = (jnp.stack(i2).astype(jnp.float32) - half)[::-1]
    n1, n2 = jnp.sqrt(jnp.sum(d1 ** 2)), jnp.sqrt(jnp.sum(d2 ** 2))
    th = config.displacement_scale * np.sqrt(sz * sz) / 2

    disp, flag = peak_decision(config, max1, max2, d1, d2, n1, n2, th)
    disp = jnp.where(flag == FLAG_NOT_FOUND, d1, disp)
    return disp, max1, flag


def pytracking_training_set(config: ATOMConfig, params, frame: Frame, pos_idx, scale, draws):
    """First-frame classifier samples ``[N, h, w, D]`` (normalised layer, dropout2d copies of
    the first appended), their shifts (dy, dx), and the raw features of the identity crop."""
    crops, shifts = pytracking_init_crops(config, frame, pos_idx, scale, draws)
    f3, f4 = backbone_features(config, params["backbone"], crops)
    x = optim.normalize_features(f4)
    if config.augment and config.dropout_num > 0:
        keep = draws["dropout_keep"][:, None, None, :].astype(jnp.float32)
        drop = x[:1] * (keep / (1 - config.dropout_prob))       # F.dropout2d: whole channels
        x = jnp.concatenate([x, drop])
        shifts = jnp.concatenate([shifts, jnp.zeros((config.dropout_num, 2), jnp.int32)])
    return x, shifts, (f3[:1], f4[:1])


def init_pytracking(config: ATOMConfig, params, frame: Frame, box, key) -> ATOMState:
    """pytracking's ``ATOM.initialize`` (atom.py:26-136), ``generate_init_samples`` (473-525),
    ``init_label_function`` (550-570) and ``init_iou_net`` (668-699)."""
    box = jnp.asarray(box, jnp.float32)
    target_size = box[2:]
    pos_idx = box[:2] + (target_size - 1) / 2
    size = config.sample_size
    area = jnp.prod(target_size * config.search_area_scale)
    scale = jnp.sqrt(area / (size * size))              # min = max_image_sample_size = 288^2
    base = target_size / scale
    wh = jnp.stack([frame.size[1], frame.size[0]]).astype(jnp.float32)
    scale_range = jnp.stack([jnp.max(10.0 / base), jnp.min(wh / base)])
    fill = ops.valid_mean_color(frame.image, frame.size)
    k_state = jax.random.split(key, 3)[2]
    dim = _classifier_dim(config, params)
    draws = init_draws(config, key, dim)

    x, shifts, (f3, f4) = pytracking_training_set(config, params, frame, pos_idx, scale, draws)
    n = x.shape[0]
    sample_pos = jnp.round(pos_idx)
    mod3, mod4 = modulation(params, f3, f4, iounet_box(config, pos_idx, target_size, sample_pos, scale)[None])

    s = size // config.stride
    sigma = jnp.sqrt(jnp.prod(s / size * base)) * config.output_sigma_factor
    center = _label_center(config, pos_idx - sample_pos, scale)
    y = jax.vmap(lambda sh: pytracking_label(config, center + sh.astype(jnp.float32) / size * s, sigma))(shifts)
    w = jnp.full((n,), 1.0 / n, jnp.float32)
    filt, proj = draws["filter"], draws["proj"]
    res = lambda v: optim.joint_residuals(v, x, y, w, config.filter_reg, config.projection_reg,  # noqa: E731
                                        config.response_mlu, True)
    (filt, proj), losses = first_frame_optimization(config, res, filt, proj)

    m = config.memory_size
    samples = jnp.zeros((m,) + x.shape[1:3] + (config.compressed_dim,), jnp.float32)
    samples = samples.at[:n].set(optim.project(x, proj))
    labels = jnp.zeros((m, s, s), jnp.float32).at[:n].set(y)
    weights = jnp.zeros((m,), jnp.float32).at[:n].set(w)
    pos = pos_idx + 0.5
    return ATOMState(pos, target_size, scale, base, scale_range, fill, sigma, proj, filt,
                     samples, labels, weights, jnp.array(-1, jnp.int32), mod3[0], mod4[0],
                     jnp.array(1, jnp.int32), k_state, losses[-1], jnp.array(FLAG_NORMAL, jnp.int32), pos)


def _classifier_dim(config, params):
    """Channels of the classifier's input (the stride-16 tap) for this backbone."""
    f = jax.eval_shape(lambda v: backbone_features(config, v, jnp.zeros((1, 64, 64, 3), jnp.float32))[1],
                       params["backbone"])
    return f.shape[-1]


def classifier_scores(config: ATOMConfig, params, state: ATOMState, frame: Frame):
    """The test crop, its raw features, projected samples and the 18x18 score map at
    ``state`` (pytracking's ``extract_processed_sample`` + ``apply_filter``)."""
    size = config.sample_size
    pos_idx = state.pos - 0.5
    crop = sample_patch(frame.image, frame.size, pos_idx, state.target_scale * size, size)
    f3, f4 = backbone_features(config, params["backbone"], crop[None])
    x = optim.project(optim.normalize_features(f4), state.proj)
    return crop, (f3, f4), x, optim.apply_filter(x, state.filt, same=True)[0]


def track_step_pytracking(config: ATOMConfig, params, state: ATOMState, frame: Frame):
    """pytracking's ``ATOM.track`` (atom.py:225-298), ``refine_target_box`` (701-756; no scale
    clamp, and nothing moves when every box fails the aspect test, 732-733), ``update_state``
    (650-659) and ``get_label_function`` (641-648). The position kept is ``pos_iounet``
    (292), the last refined one."""
    size = config.sample_size
    key, k_box = jax.random.split(state.key)
    pos_idx = state.pos - 0.5
    sample_pos = jnp.round(pos_idx)
    scale = state.target_scale
    _, (f3, f4), x, raw = classifier_scores(config, params, state, frame)
    scores = interpolate_scores(config, raw)
    disp, peak, flag = localize_advanced(config, scores, state.target_size, scale)
    found = flag != FLAG_NOT_FOUND
    wh = jnp.stack([frame.size[1], frame.size[0]]).astype(jnp.float32)

    def update_state(new_pos, target_size):
        inside = (0.2 - 0.5) * target_size
        return jnp.maximum(jnp.minimum(new_pos, wh - inside), inside)

    if config.use_iou_net:
        pos_cls = update_state(sample_pos + disp * scale, state.target_size)
        feats = iou_features(params, f3, f4)
        mod = (state.mod3[None], state.mod4[None])
        init_box = iounet_box(config, pos_cls, state.target_size, sample_pos, scale)
        box, _, ok = refine_box(config, params, mod, feats, init_box, k_box)
        new_pos = sample_pos + (box[:2] + box[2:] / 2 - (size - 1) / 2) * scale
        new_size = box[2:] * scale
        pos_learn = jnp.where(ok, new_pos, pos_cls)                  # self.pos when learning
        pos_iounet = jnp.where(found & ok, new_pos + 0.5, state.pos_iounet)
        pos = jnp.where(found, pos_iounet, state.pos)
        target_size = jnp.where(found & ok, new_size, state.target_size)
        target_scale = jnp.where(found & ok, jnp.sqrt(jnp.prod(new_size) / jnp.prod(state.base_size)), scale)
    else:
        new_scale = jnp.clip(scale, state.scale_range[0], state.scale_range[1])
        new_size = state.base_size * new_scale
        pos_learn = update_state(sample_pos + disp * scale, new_size)
        pos = jnp.where(found, pos_learn + 0.5, state.pos)
        target_size = jnp.where(found, new_size, state.target_size)
        target_scale = jnp.where(found, new_scale, scale)
        pos_iounet = state.pos_iounet

    y = pytracking_label(config, _label_center(config, pos_learn - sample_pos, scale), state.sigma)
    state = remember_and_train(config, state, x[0], y, flag, pos=pos, target_size=target_size,
                               target_scale=target_scale, key=key, pos_iounet=pos_iounet)
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
