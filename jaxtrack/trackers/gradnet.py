"""GradNet (Li et al., ICCV 2019): a Siamese tracker whose template is updated by a
learned subnet that reads the gradient of the tracking loss.

Defaults: the official TensorFlow release (LPXTT/GradNet-Tensorflow, ``track.py``,
``siamese.py``, ``train.py``); the code is written from scratch. :func:`gradient_update`::

    h = shallow(z);  z0 = deep(h);  g = dL0/dh,  L0 = loss of xcorr(z0, x)
    z' = deep(h + tanh(BN(conv3x3(g * grad_scale))))

Backbones: ``alexnet`` (the paper's network; :func:`params_from_tf_checkpoint` reads the
official checkpoint) and ``mobilenet_v2`` (the stand-in, built on SiamFC's trained head).
``--variant official`` (alexnet, the official crops and arithmetic) computes what the official
``track.py`` computes (docs/fidelity_gradnet.md).
Boxes are jaxtrack ``xywh``. Design notes: docs/trackers/gradnet.md.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxtrack import checkpoints, models, online, ops, xla_options
from jaxtrack.core import Frame, TrackOutput
from jaxtrack.trackers import siamfc

# Eigen's convolutions on XLA:CPU (jaxtrack.xla_options); the boxes were checked unchanged by it
COMPILER_OPTIONS = xla_options.EIGEN_CONVOLUTIONS
BN_EPS = 1e-3            # the official batchNorm's variance_epsilon
BACKBONES = siamfc.BACKBONES        # the same two networks as SiamFC's


@dataclasses.dataclass(frozen=True)
class GradNetConfig:
    backbone: str = "mobilenet_v2"     # "mobilenet_v2" (stand-in) | "alexnet" (paper)
    exemplar_size: int = 127
    instance_size: int = 255
    context: float = 0.5
    num_scales: int = 3
    scale_step: float = 1.04
    scale_penalty: float = 0.97
    scale_lr: float = 0.59
    window_influence: float = 0.25
    grad_influence: float = 0.15       # official wInfluence_nosia: weight of the updated-template map
    response_up: int = 16
    total_stride: int = 8
    r_pos: float = 16.0                # label radius (search-crop pixels), Euclidean as official
    grad_scale: float = 1e4            # the gradient is multiplied by this before the update conv
    out_scale: float = 1.0             # alexnet: response scale (official: raw xcorr)
    adjust_channels: int = 128         # mobilenet_v2: channels of the adjust layer
    shallow_crop: int = 12             # mobilenet_v2: shallow template map (centre crop)
    template_crop: int = 8             # mobilenet_v2: template map after deep (as SiamFC)
    # variants (ablation)
    use_gradient: bool = True          # False: "w/o MG", the update subnet sees h, not dL/dh
    unshared_deep: bool = False        # True: "w 2U", the initial template has its own deep layers
    online_update: bool = True         # False: "w/o U", only the update at the first frame
    # tracking schedule (official values)
    update_interval: int = 5
    num_samples: int = 5
    memory_keep: float = 0.4           # memory <- keep * memory + (1 - keep) * updated shallow
    rescue_keep: float = 0.3           # the early unreliable-frame update
    threshold_frames: int = 5
    reliable_ratio: float = 0.5
    rescue_ratio: float = 0.4
    rescue_before: int = 10
    no_window_after: int = 9           # -1: never switch the window off
    refind: bool = True
    min_size: float = 4.0              # box size clamp (pixels)
    min_side_ratio: float = 0.2        # official minSx / maxSx
    max_side_ratio: float = 5.0
    # the official track.py's arithmetic (the defaults, docs/fidelity_gradnet.md); the
    # "continuous" variant keeps jaxtrack's continuous geometry
    crop: str = "official"             # its whole-pixel cv2 crops and two-stage pyramid (G16), or "continuous"
    centre_cell: str = "floor"         # G14: displacement from map cell up // 2, official int(up/2); or "exact"
    round_side: bool = True            # G15: displacement with round(sx), official trackerEval(round(sx))
    official_refind: bool = True       # G17: the re-search compounds on the first search's update,
                                       # around the official image centre, triggered on the rounded box
    clamp_box: bool = False            # G18: centre and size unclamped (official); True clamps them

    def __post_init__(self):
        models.check_backbone("gradnet", self.backbone, BACKBONES)
        if self.crop not in ("continuous", "official"):
            raise ValueError(f"crop must be 'continuous' or 'official', not {self.crop!r}")
        if self.centre_cell not in ("exact", "floor"):
            raise ValueError(f"centre_cell must be 'exact' or 'floor', not {self.centre_cell!r}")


Config = GradNetConfig

class GradNetState(NamedTuple):
    center: Any          # (2,) cx, cy
    target_size: Any     # (2,) w, h
    x_side: Any          # () search crop side (image pixels), official sx
    x_side0: Any         # () the first frame's sx (clamps)
    fill: Any            # (3,) mean colour of the first frame
    kernel_sia: Any      # [1, hz, wz, C] the fixed SiamFC template (search branch)
    kernel_gra: Any      # [1, hz, wz, C] the gradient-updated template
    memory: Any          # [1, hs, ws, C] shallow-feature memory (official hid_gra)
    samples: Any         # [M, S, S, 3] centre-scale search crops of reliable frames
    sample_scores: Any   # (M,) their peak scores (-inf: empty slot)
    num_stored: Any      # () int32 samples stored so far (ring position)
    last_sample: Any     # () int32 frame index of the newest stored sample
    peak_sum: Any        # () sum of peaks of frames 1..threshold_frames
    threshold: Any       # () mean of those peaks (0 before)
    window_on: Any       # () bool: the once-only window switch-off not used yet
    refind: Any          # () bool: search at the image centre this frame
    frame_index: Any     # () int32, 0 at init


# ------------------------------------------------------------------- layers

def _conv(x, p, padding="VALID"):
    y = lax.conv_general_dilated(x, p["kernel"], (1, 1), padding,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + p["bias"]


def _centre(x, size: int):
    top = (x.shape[1] - size) // 2
    left = (x.shape[2] - size) // 2
    return x[:, top:top + size, left:left + size]


def _alexnet():
    return models.backbone("alexnet", **BACKBONES["alexnet"])


def _mobilenet():
    return models.backbone("mobilenet_v2", **BACKBONES["mobilenet_v2"])


# ------------------------------------------------------------------- network

def backbone_features(config: GradNetConfig, params, images):
    """The frozen, shared part of both branches: MobileNetV2 features (mobilenet_v2), or
    the images themselves (alexnet: nothing is shared). Training caches these."""
    if config.backbone == "mobilenet_v2":
        return lax.stop_gradient(_mobilenet().apply(params["backbone"], images))
    return images


def search_branch(config: GradNetConfig, params, feats):
    """Search features (official scala1-5) from :func:`backbone_features` output."""
    if config.backbone == "alexnet":
        return _alexnet().apply(params["search"], feats)
    return siamfc.adjust(params["search"]["adjust"], feats)


def siamfc_template(config: GradNetConfig, params, feats):
    """The fixed SiamFC template: the search branch on the exemplar (official
    ``extract_sia_fea_template``)."""
    out = search_branch(config, params, feats)
    return out if config.backbone == "alexnet" else _centre(out, config.template_crop)


def shallow(config: GradNetConfig, params, feats):
    """Template shallow features h (official conv2/pool2 output of ``scala2_z``)."""
    if config.backbone == "alexnet":
        return _alexnet().apply(params["template"], feats, method="shallow")
    return _centre(siamfc.adjust(params["template"]["adjust"], feats), config.shallow_crop)


def deep(config: GradNetConfig, params, h, initial: bool = False):
    """Template deep layers (official scala3_z-5_z). ``initial`` with ``unshared_deep``
    uses the separate layers of the initial template ("w 2U")."""
    key = "template0" if (initial and config.unshared_deep) else "template"
    if config.backbone == "alexnet":
        return _alexnet().apply(params[key], h, method="deep")
    p = params[key]
    y = _conv(jax.nn.relu(_conv(h, p["deep1"])), p["deep2"])
    return _centre(h, y.shape[1]) + y


def score(config: GradNetConfig, params, z, x):
    """Response logits: z [B, hz, wz, C] against x [B, hx, wx, C] (B may broadcast)."""
    r = ops.xcorr(z, x)
    if config.backbone == "alexnet":
        return r * config.out_scale
    return r + params["bias"]


def score_groups(config: GradNetConfig, params, z, x):
    """z [G, hz, wz, C] against x [G, K, hx, wx, C]: [G, K, R, R]."""
    g, k = x.shape[:2]
    s = score(config, params, jnp.repeat(z, k, axis=0), x.reshape((g * k,) + x.shape[2:]))
    return s.reshape((g, k) + s.shape[1:])


def weighted_logistic_loss(logits, labels, weights):
    """The official loss: mean over cells of ``w * log(1 + exp(-y s))``, labels y in {-1, 1},
    weights 0.5/#pos and 0.5/#neg per map (so the mean is over maps x cells)."""
    return jnp.mean(weights * jax.nn.softplus(-labels * logits))


def make_labels(offsets, response: int, stride: int, r_pos: float):
    """Labels (+1 within Euclidean ``r_pos/stride`` cells of the target, else -1) and the
    official balanced weights, for targets at ``offsets`` (crop pixels from the centre,
    (dx, dy), [..., 2]). Returns two float32 arrays [..., R, R]."""
    offsets = np.asarray(offsets, np.float32)
    grid = np.arange(response, dtype=np.float32) - (response - 1) / 2
    dx = grid[None, :] - offsets[..., 0, None, None] / stride
    dy = grid[:, None] - offsets[..., 1, None, None] / stride
    pos = np.sqrt(dx ** 2 + dy ** 2) <= r_pos / stride
    npos = np.maximum(pos.sum((-2, -1), keepdims=True), 1)
    nneg = np.maximum((~pos).sum((-2, -1), keepdims=True), 1)
    labels = np.where(pos, 1.0, -1.0).astype(np.float32)
    weights = np.where(pos, 0.5 / npos, 0.5 / nneg).astype(np.float32)
    return labels, weights


def update_subnet(config: GradNetConfig, params, u, train: bool = False, zero_templates: int = 0):
    """tanh(BN(conv3x3(u))); BN uses batch statistics when ``train`` (returned) and the
    running ones otherwise. ``zero_templates``: that many more templates with a zero input
    in the batch statistics (the official training's templates 1-7, whose inner gradient
    is zero: siamese.py:86, 185)."""
    p = params["update"]
    y = _conv(u, p["conv"], padding="SAME")
    if train:
        # conv3x3(0) is the conv bias at every cell
        batch = jnp.concatenate([y, jnp.broadcast_to(p["conv"]["bias"], (zero_templates,) + y.shape[1:])])
        mean = jnp.mean(batch, axis=(0, 1, 2))
        var = jnp.var(batch, axis=(0, 1, 2))
    else:
        mean, var = params["update_stats"]["mean"], params["update_stats"]["var"]
    y = (y - mean) * lax.rsqrt(var + BN_EPS) * p["bn"]["scale"] + p["bn"]["bias"]
    return jnp.tanh(y), {"mean": mean, "var": var}


def inner_gradient(config: GradNetConfig, params, h, x, labels, weights):
    """dL0/dh: the gradient of each template's inner loss (the mean over its K maps of
    :func:`weighted_logistic_loss` of ``xcorr(deep(h), x)``) w.r.t. its shallow features."""
    def inner(hh):
        z0 = deep(config, params, hh, initial=True)
        s = score_groups(config, params, z0, x)
        return weighted_logistic_loss(s, labels, weights) * hh.shape[0]
    return jax.grad(inner)(h)


def gradient_update(config: GradNetConfig, params, h, x, labels, weights, *,
                    train: bool = False, first_order: bool = False, zero_templates: int = 0):
    """The GradNet template update: two forward passes and one backward pass.

    h: shallow template features [G, hs, ws, C]; x: search features [G, K, hx, wx, C];
    labels / weights: [G, K, R, R]. Each template's inner loss is the mean over its K
    maps (its gradient does not depend on G). ``first_order`` stops the gradient of the
    inner gradient (the first-order approximation, for tests and comparison);
    ``zero_templates``: :func:`update_subnet`'s.
    Returns (updated template z' [G, hz, wz, C], updated shallow h', BN batch stats).
    """
    if config.use_gradient:
        g = inner_gradient(config, params, h, x, labels, weights)
        if first_order:
            g = lax.stop_gradient(g)
        u = g * config.grad_scale
    else:                                  # "w/o MG": the subnet sees the features
        u = h
    delta, stats = update_subnet(config, params, u, train, zero_templates)
    h_new = h + delta
    return deep(config, params, h_new), h_new, stats


# ------------------------------------------------------------------- the official crops (G16)
#
# track.py crops whole-pixel windows out of the uint8 BGR frame, padded with the first
# frame's mean colour truncated to uint8 (np.pad), and resizes them with cv2.resize
# (INTER_LINEAR): ops.crop_patch_rounded, centred half a pixel right of and below jaxtrack's
# centre (track.py reads OTB's 1-based boxes as they are, and its window round(pos - (sz+1)/2)
# is centred on pos - 1 in 0-based pixel indices). Its search pyramid has two stages
# (makeScalePyramid): the largest window resized to search = round(255 / min_side * max_side)
# (ops.cv2_resize_window, a traced output size), then each scale's window cropped out of that
# and resized to 255.

def _round_ratio(num, den):
    """round(num / den), half to even, for positive int32 ``num``, ``den``."""
    q = num // den
    r = num - q * den
    return q + ((2 * r > den) | ((2 * r == den) & (q % 2 == 1))).astype(jnp.int32)


def _frame_pixels(frame: Frame):
    img = frame.image
    if jnp.issubdtype(img.dtype, jnp.integer):
        return img.astype(jnp.int32)
    return jnp.clip(jnp.round(img), 0, 255).astype(jnp.int32)


def official_fill(frame: Frame):
    """The official padding colour: the mean of the frame's pixels per channel, truncated
    to an integer (``np.pad`` of a uint8 image with ``np.mean``). Exact below 8.4
    megapixels (the int32 sum), float beyond. float32 (3,)."""
    img = _frame_pixels(frame)
    h, w = img.shape[:2]
    mask = (jnp.arange(h)[:, None] < frame.size[0]) & (jnp.arange(w)[None, :] < frame.size[1])
    rows = jnp.sum(jnp.where(mask[..., None], img, 0), axis=1)       # int32, exact per row
    count = jnp.maximum(frame.size[0] * frame.size[1], 1)
    exact = jnp.floor_divide(jnp.sum(rows, axis=0), count)
    approx = jnp.floor(ops.valid_mean_color(frame.image, frame.size))
    small = frame.size[0] * frame.size[1] < (2 ** 31 - 1) // 255
    return jnp.where(small, exact.astype(jnp.float32), approx)


def exemplar_crop(config: GradNetConfig, frame: Frame, center, side, fill):
    """The exemplar crop (``crop="official"``: track.py's ``getSubWinTracking``)."""
    if config.crop == "official":
        return ops.crop_patch_rounded(frame.image, frame.size, center + 0.5, side, config.exemplar_size, fill)
    return ops.crop_patch(frame.image, frame.size, center, side, config.exemplar_size, fill)


def official_pyramid(config: GradNetConfig, frame: Frame, center, x_side, fill, which=None):
    """track.py's ``makeScalePyramid`` at ``x_side * scales``: the largest window resized to
    ``search = round(255 / min_side * max_side)`` (kept in a 2 x 255 buffer: exact while
    ``search <= 510``), then each scale's window, centred in that, resized to
    ``instance_size``. ``which``: the scale indices (default all). float32 [n, S, S, 3]."""
    out = config.instance_size
    scales = jnp.asarray(ops.scale_factors(config.num_scales, config.scale_step), jnp.float32)
    sides = jnp.maximum(jnp.round(x_side * scales), 1.0).astype(jnp.int32)    # np.round(sx * scales)
    lo, hi = sides[0], sides[-1]
    search = _round_ratio(out * hi, lo)                       # round(beta * max_side), beta = 255 / min
    corner = jnp.round(jnp.asarray(center, jnp.float32) - (hi - 1).astype(jnp.float32) / 2).astype(jnp.int32)
    buf = ops.cv2_resize_window(_frame_pixels(frame), frame.size, corner, hi, search, 2 * out,
                             jnp.clip(fill, 0, 255).astype(jnp.int32))
    size = jnp.stack([search, search])
    mid = search.astype(jnp.float32) / 2 - 1.0                # round((search-1)/2 - (t+1)/2) as a corner
    picked = sides if which is None else sides[jnp.asarray(which)]
    # one crop graph mapped over the scales (integer arithmetic: the same pixels as a loop)
    return jax.vmap(lambda side: ops.crop_patch_rounded(buf, size, jnp.stack([mid, mid]),
                                                        _round_ratio(out * side, lo), out, fill))(picked)


# ------------------------------------------------------------------- tracking

def _centre_labels(config: GradNetConfig, response: int):
    lab, w = make_labels(np.zeros((2,), np.float32), response, config.total_stride, config.r_pos)
    return jnp.asarray(lab)[None, None], jnp.asarray(w)[None, None]


def _update_from_crop(config: GradNetConfig, params, memory, crop):
    """Gradient update of ``memory`` on one centre-scale search crop [S, S, 3]."""
    return _update_from_features(config, params, memory, _crop_features(config, params, crop))


def _crop_features(config: GradNetConfig, params, crop):
    """Search features [1, h, w, C] of one search crop [S, S, 3]."""
    return search_branch(config, params, backbone_features(config, params, crop[None]))


def _update_from_features(config: GradNetConfig, params, memory, xf):
    """Gradient update of ``memory`` on one crop's search features ``xf`` [1, h, w, C]."""
    zf_shape = deep(config, params, memory).shape
    labels, weights = _centre_labels(config, xf.shape[1] - zf_shape[1] + 1)
    z, h_new, _ = gradient_update(config, params, memory, xf[:, None], labels, weights)
    return z, h_new


def _normalise(m):
    m = m - jnp.min(m)
    return m / (jnp.sum(m) + 1e-16)


def _sample_crop(config: GradNetConfig, frame: Frame, center, x_side, fill):
    """The centre-scale search crop stored as a sample (and used by updates)."""
    if config.crop == "official":
        return official_pyramid(config, frame, center, x_side, fill, (config.num_scales // 2,))[0]
    return ops.crop_patch(frame.image, frame.size, center, x_side, config.instance_size, fill)


def search_maps(config: GradNetConfig, params, state: GradNetState, frame: Frame, center, window_w,
                crop_side=None, disp_side=None, crops=None):
    """One 3-scale search around ``center`` with every intermediate (a dict): ``crops``,
    ``sia`` / ``gra`` (raw maps), ``sia_up`` (upsampled, all scales), ``best``, ``gra_up``
    (upsampled), ``fused``, ``response`` (windowed), ``loc`` (row, col), ``center`` (new),
    ``peak`` / ``gra_peak`` (official F_max, F_max3). ``crop_side`` (default ``state.x_side``)
    sizes the crops, ``disp_side`` (default the same) converts the displacement; ``crops``
    [S, S, S, 3] replaces the crops (comparisons)."""
    crop_side = state.x_side if crop_side is None else crop_side
    disp_side = crop_side if disp_side is None else disp_side
    scales = jnp.asarray(ops.scale_factors(config.num_scales, config.scale_step), jnp.float32)
    if crops is not None:
        x = crops
    elif config.crop == "official":
        x = official_pyramid(config, frame, center, crop_side, state.fill)
    else:
        x = ops.crop_pyramid(frame.image, frame.size, center, crop_side, scales,
                             config.instance_size, state.fill)
    xf = search_branch(config, params, backbone_features(config, params, x))
    sia = score(config, params, state.kernel_sia, xf)                        # [S, R, R]
    mid = config.num_scales // 2
    gra = score(config, params, state.kernel_gra, xf[mid:mid + 1])[0]        # [R, R]
    peak, gra_peak = jnp.max(sia), jnp.max(gra)                              # official F_max, F_max3
    r = sia.shape[-1]
    up = config.response_up * r
    sia_up = ops.resize_bicubic(sia, (up, up))
    penalty = jnp.where(jnp.arange(config.num_scales) == mid, 1.0, config.scale_penalty)
    best = jnp.argmax(jnp.max(sia_up * penalty[:, None, None], axis=(1, 2)))
    gra_up = ops.resize_bicubic(gra, (up, up))
    fused = ((1 - config.grad_influence) * _normalise(sia_up[best])
             + config.grad_influence * _normalise(gra_up))
    response = (1 - window_w) * fused + window_w * jnp.asarray(ops.hann_window(up))
    loc = jnp.unravel_index(jnp.argmax(response), response.shape)
    centre_cell = (up // 2) if config.centre_cell == "floor" else (up - 1) / 2
    disp = jnp.stack([loc[1], loc[0]]).astype(jnp.float32) - centre_cell
    side = jnp.round(disp_side) if config.round_side else disp_side
    disp = disp * config.total_stride / config.response_up * side / config.instance_size
    return dict(crops=x, sia=sia, gra=gra, sia_up=sia_up, best=best, gra_up=gra_up, fused=fused,
                response=response, loc=jnp.stack(loc), center=center + disp, peak=peak,
                gra_peak=gra_peak)


def _search(config: GradNetConfig, params, state: GradNetState, frame: Frame, center, window_w,
            crop_side=None, disp_side=None):
    """One 3-scale search around ``center``: (new centre, best scale, SiamFC peak, gradient
    template peak)."""
    m = search_maps(config, params, state, frame, center, window_w, crop_side, disp_side)
    return m["center"], m["best"], m["peak"], m["gra_peak"]


def init(config: GradNetConfig, params, frame: Frame, box, key=None) -> GradNetState:
    """Start tracking ``box`` (xywh): SiamFC template, shallow memory and the gradient
    update on the first frame's centre search crop (done twice, as the official tracker
    runs its every-5-frames update at frame 0 too). ``key`` is unused."""
    del key
    box = jnp.asarray(box, jnp.float32)
    center = box[:2] + box[2:] / 2
    target_size = box[2:]
    z_side = siamfc.exemplar_side(config, target_size)
    x_side = z_side * config.instance_size / config.exemplar_size
    if config.crop == "official":
        fill = official_fill(frame)
    else:
        fill = ops.valid_mean_color(frame.image, frame.size)
    z = exemplar_crop(config, frame, center, z_side, fill)
    x0 = _sample_crop(config, frame, center, x_side, fill)
    fz = backbone_features(config, params, z[None])
    kernel_sia = siamfc_template(config, params, fz)
    h0 = shallow(config, params, fz)
    xf0 = _crop_features(config, params, x0)                        # once, for both updates
    _, memory = _update_from_features(config, params, h0, xf0)         # official hid_gra at init
    kernel_gra, h_up = _update_from_features(config, params, memory, xf0)  # frame-0 periodic update
    memory = config.memory_keep * memory + (1 - config.memory_keep) * h_up
    m = config.num_samples
    samples = jnp.zeros((m,) + x0.shape, jnp.float32).at[0].set(x0)
    scores = jnp.full((m,), -jnp.inf, jnp.float32).at[0].set(0.0)   # frame 0 stored, peak 0
    zero = jnp.zeros((), jnp.int32)
    return GradNetState(center, target_size, x_side, x_side, fill, kernel_sia, kernel_gra,
                        memory, samples, scores, jnp.ones((), jnp.int32), zero,
                        jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32),
                        jnp.ones((), bool), jnp.zeros((), bool), zero)


def track_step(config: GradNetConfig, params, state: GradNetState, frame: Frame):
    i = state.frame_index + 1
    scales = jnp.asarray(ops.scale_factors(config.num_scales, config.scale_step), jnp.float32)
    height, width = frame.size[0].astype(jnp.float32), frame.size[1].astype(jnp.float32)
    no_window = (i - state.last_sample == config.no_window_after) & state.window_on
    window_w = jnp.where(no_window, 0.0, config.window_influence)
    window_on = state.window_on & ~no_window

    def apply(center, best):
        sx = jnp.clip(state.x_side * ((1 - config.scale_lr) + config.scale_lr * scales[best]),
                      config.min_side_ratio * state.x_side0, config.max_side_ratio * state.x_side0)
        size = state.target_size * ((1 - config.scale_lr) + config.scale_lr * scales[best])
        return center, sx, size

    if not config.refind:
        new_c, best, peak, _ = _search(config, params, state, frame, state.center, window_w)
        center, x_side, target_size = apply(new_c, best)
    else:
        # official: search again around the image centre; keep it if both maps peak higher.
        # official_refind (track.py): crops at the old sides around its (H/2, W/2) (jaxtrack's
        # minus 1), the displacement with the updated sx, the scale update compounded on the
        # first. Both searches run one compiled search: a 2-step scan whose second step runs
        # only when a refind is due.
        mid_c = jnp.stack([width, height]) / 2 - (1.0 if config.official_refind else 0.0)

        def one_search(prev, k):
            _, first_side, _ = apply(prev[0], prev[1])
            c = jnp.where(k == 0, state.center, mid_c)
            disp_side = jnp.where((k == 1) & config.official_refind, first_side, state.x_side)
            out = online.when((k == 0) | state.refind,
                              lambda _: _search(config, params, state, frame, c, window_w, disp_side=disp_side),
                              prev)
            return out, out
        start = (state.center, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
        _, (cs, bs, ps, gs) = jax.lax.scan(one_search, start, jnp.arange(2))
        new_c, best, peak = cs[0], bs[0], ps[0]
        center, x_side, target_size = apply(new_c, best)
        c2, b2, p2, p3 = cs[1], bs[1], ps[1], gs[1]
        if config.official_refind:
            lr = config.scale_lr
            sx2 = jnp.clip((1 - lr) * x_side + lr * state.x_side * scales[b2],
                           config.min_side_ratio * state.x_side0, config.max_side_ratio * state.x_side0)
            ts2 = (1 - lr) * target_size + lr * state.target_size * scales[b2]
        else:
            c2, sx2, ts2 = apply(c2, b2)
        better = state.refind & (p2 > peak) & (p3 > peak)   # official: F_max2 > F_max and F_max3 > F_max
        pick = lambda a, b: jnp.where(better, a, b)          # noqa: E731
        center, x_side = pick(c2, center), pick(sx2, x_side)
        target_size, peak = pick(ts2, target_size), pick(p2, peak)

    if config.clamp_box:
        center = jnp.clip(center, 0.0, jnp.stack([width, height]))
        target_size = jnp.clip(target_size, config.min_size, jnp.stack([width, height]))

    # reliability threshold: mean peak of frames 1..threshold_frames
    peak_sum = state.peak_sum + jnp.where(i <= config.threshold_frames, peak, 0.0)
    threshold = jnp.where(i == config.threshold_frames, peak_sum / config.threshold_frames,
                          state.threshold)
    box = jnp.concatenate([center - target_size / 2, target_size])
    if config.official_refind:       # official: on Position_now, the box rounded in its 1-based coordinates
        right = jnp.round(box[0] + 1) + jnp.round(box[2])
    else:
        right = box[0] + box[2]
    refind = (right > width) & (peak < threshold * config.reliable_ratio)

    crop = _sample_crop(config, frame, center, x_side, state.fill)
    stored = jnp.isfinite(state.sample_scores)
    mean_score = jnp.sum(jnp.where(stored, state.sample_scores, 0.0)) / jnp.maximum(stored.sum(), 1)
    reliable = peak >= jnp.minimum(threshold * config.reliable_ratio, mean_score)
    samples = online.ring_write(state.samples, state.num_stored, crop, keep=reliable)
    scores = online.ring_write(state.sample_scores, state.num_stored, peak, keep=reliable)
    num_stored = state.num_stored + reliable.astype(jnp.int32)
    last_sample = jnp.where(reliable, i, state.last_sample)
    kernel_gra, memory = state.kernel_gra, state.memory

    if config.online_update:
        rescue = (~reliable) & (i < config.rescue_before) & (peak < threshold * config.rescue_ratio)
        # the oldest of the best stored samples, in FIFO order as the official list
        order = (jnp.arange(config.num_samples) - num_stored) % config.num_samples
        key = jnp.where(jnp.isfinite(scores), scores, -jnp.inf)
        pick = jnp.argmin(jnp.where(key == jnp.max(key), order, config.num_samples + 1))
        # a rescue on this frame's crop, then the periodic update on the best stored sample,
        # each only when due: one update subnet in the compiled step, run by a 2-step scan
        due = jnp.stack([rescue, online.every(i, config.update_interval)])
        sources = jnp.stack([crop, samples[pick]])
        keeps = jnp.asarray([[config.rescue_keep, 1 - config.rescue_keep],
                             [config.memory_keep, 1 - config.memory_keep]], jnp.float32)

        def one_update(carry, x):
            flag, sample, keep = x

            def run(args):
                kg, mem = args
                z, h_up = _update_from_crop(config, params, mem, sample)
                return z, keep[0] * mem + keep[1] * h_up
            return online.when(flag, run, carry), None
        (kernel_gra, memory), _ = jax.lax.scan(one_update, (kernel_gra, memory), (due, sources, keeps))

    state = GradNetState(center, target_size, x_side, state.x_side0, state.fill, state.kernel_sia,
                         kernel_gra, memory, samples, scores, num_stored, last_sample, peak_sum,
                         threshold, window_on, refind, i)
    # lost: GradNet's own test, the frame is not reliable enough to be stored as a sample
    return state, TrackOutput(box, peak, jnp.logical_not(reliable))


# ------------------------------------------------------------------- params

def _he(key, shape, gain=1.0):
    fan_in = int(np.prod(shape[:-1]))
    return gain * np.sqrt(2.0 / fan_in) * jax.random.normal(key, shape, jnp.float32)


def init_update(config: GradNetConfig, key, channels: int, gamma: float = 1.0):
    """The update subnet; ``gamma`` (BN scale) < 1 starts it near the identity."""
    return ({"conv": {"kernel": _he(key, (3, 3, channels, channels), np.sqrt(0.5)),
                      "bias": jnp.zeros((channels,), jnp.float32)},
             "bn": {"scale": jnp.full((channels,), gamma, jnp.float32),
                    "bias": jnp.zeros((channels,), jnp.float32)}},
            {"mean": jnp.zeros((channels,), jnp.float32), "var": jnp.ones((channels,), jnp.float32)})


def init_deep_mnv2(config: GradNetConfig, key, residual_gain: float = 0.1):
    c = config.adjust_channels
    k1, k2 = jax.random.split(key)
    return {"deep1": {"kernel": _he(k1, (3, 3, c, c)), "bias": jnp.zeros((c,), jnp.float32)},
            "deep2": {"kernel": _he(k2, (3, 3, c, c), residual_gain), "bias": jnp.zeros((c,), jnp.float32)}}


def params_from_siamfc(config: GradNetConfig, siamfc_params, key, update_gamma: float = 1.0):
    """GradNet params that start from a trained SiamFC (both branches copy it)."""
    k1, k2, k3 = jax.random.split(key, 3)
    if config.backbone == "mobilenet_v2":
        head = siamfc_params["head"]
        update, stats = init_update(config, k2, config.adjust_channels, update_gamma)
        params = {"backbone": siamfc_params["backbone"], "search": {"adjust": head["adjust"]},
                  "template": {"adjust": head["adjust"], **init_deep_mnv2(config, k1)},
                  "bias": head["bias"], "update": update, "update_stats": stats}
        if config.unshared_deep:
            params["template0"] = {"adjust": head["adjust"], **init_deep_mnv2(config, k3)}
        return params
    net = siamfc_params["backbone"]
    update, stats = init_update(config, k2, 256, update_gamma)
    params = {"search": net, "template": net, "update": update, "update_stats": stats}
    if config.unshared_deep:
        params["template0"] = net
    return params


def trained_part(config: GradNetConfig, params):
    """What a GradNet checkpoint stores: everything but the frozen ImageNet backbone."""
    return {k: v for k, v in params.items() if k != "backbone"}


def load_params(config: GradNetConfig, weights: str | None = None, seed: int = 0,
                allow_random: bool = False):
    """Params for ``config``.

    mobilenet_v2: the ImageNet backbone plus the trained rest from ``weights`` (default
    ``gradnet_mobilenet_v2.msgpack``). alexnet: a jaxtrack checkpoint, or the official
    TensorFlow checkpoint (``weights`` = its prefix ``…/model_epoch49.ckpt`` or ``.index``).
    ``allow_random`` builds untrained params (SiamFC head if there is one, else random).
    """
    key = jax.random.PRNGKey(seed)
    path = weights or checkpoints.default_checkpoint("gradnet", config.backbone)
    if weights and (weights.endswith(".index") or os.path.exists(weights + ".index")):
        if config.backbone != "alexnet":
            raise ValueError("a TensorFlow GradNet checkpoint holds the AlexNet network: use backbone='alexnet'")
        return params_from_tf_checkpoint(config, weights)
    have = os.path.exists(path)
    if weights and not have:
        raise FileNotFoundError(f"GradNet weights not found: {weights}")
    if not have and not allow_random:
        raise FileNotFoundError(f"no trained GradNet at {path}; train one with "
                                "experiments/train_gradnet.py, pass weights=... or allow_random=True")
    sf_config = siamfc.SiamFCConfig(backbone=config.backbone)
    sf = siamfc.load_params(sf_config, seed=seed, allow_random=True)
    params = params_from_siamfc(config, sf, key)
    if have:
        rest = checkpoints.load_variables(path, trained_part(config, params))
        params = {**params, **rest}
    return params


# ------------------------------------------------------------------- official TF checkpoint

def params_from_tf_tensors(config: GradNetConfig, tensors: dict):
    """GradNet (alexnet) params from a name → array dict in the official TF layout."""
    from jaxtrack.models.alexnet import alexnet_from_tf_tensors
    if config.backbone != "alexnet":
        raise ValueError("the official TF GradNet checkpoint is the AlexNet network")
    where = "GradNet TF checkpoint"
    pre = "siamese/t_scala5_zz"
    take = lambda key, shape: models.take_checked(tensors, f"{pre}/{key}", shape, where)  # noqa: E731
    update = {"conv": {"kernel": take("conv/weights", (3, 3, 256, 256)), "bias": take("conv/biases", (256,))},
              "bn": {"scale": take("bn/gamma", (256,)), "bias": take("bn/beta", (256,))}}
    stats = {"mean": take("bn/moving_mean", (256,)), "var": take("bn/moving_variance", (256,))}
    # the official tracker and training read frames with cv2.imread and never convert them
    params = {"search": alexnet_from_tf_tensors(tensors, "scala{}", where, BN_EPS, bgr_input=True),
              "template": alexnet_from_tf_tensors(tensors, "scala{}_z", where, BN_EPS, bgr_input=True),
              "update": update, "update_stats": stats}
    if config.unshared_deep:
        params["template0"] = params["template"]
    return jax.tree_util.tree_map(jnp.asarray, params)


def params_from_tf_checkpoint(config: GradNetConfig, prefix: str):
    from jaxtrack.formats import tf_checkpoint
    return params_from_tf_tensors(config, tf_checkpoint.read_checkpoint(prefix))

