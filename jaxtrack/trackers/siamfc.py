"""SiamFC (Bertinetto et al., ECCVW 2016): a template correlated over a 3-scale search pyramid.

Defaults: siamfc-pytorch's tracking hyper-parameters. Backbones: ``alexnet`` (the SiamFC
AlexNet, trained end to end) and ``mobilenet_v2`` (the frozen ImageNet MobileNetV2 to
features.13 at output stride 8, then a trained 1x1 ``adjust`` layer and score bias).

``init`` crops and embeds the exemplar; ``track_step`` is the whole per-frame work in one
jittable function. Boxes are jaxtrack ``xywh``; the state's ``center`` is ``(cx, cy)`` in
continuous pixel coordinates. Design notes: docs/trackers/siamfc.md.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxtrack import checkpoints, models, online, ops, xla_options
from jaxtrack.core import Frame, TrackOutput

# Eigen's convolutions on XLA:CPU (jaxtrack.xla_options); the boxes were checked unchanged by it
COMPILER_OPTIONS = xla_options.EIGEN_CONVOLUTIONS

# backbone -> its module options: the frozen ImageNet MobileNetV2 to features.13 at stride 8
BACKBONES = {"alexnet": {}, "mobilenet_v2": dict(last_block=13, dilate_after_stride8=True)}
# crop: "continuous" (ops.crop_patch: bilinear at the exact position, float) or "rounded"
# (ops.crop_patch_rounded: siamfc-pytorch's crop_and_resize, a whole-pixel window resized
# as OpenCV resizes uint8 images)
CROPS = ("continuous", "rounded")


@dataclasses.dataclass(frozen=True)
class SiamFCConfig:
    backbone: str = "alexnet"          # "alexnet" | "mobilenet_v2"
    exemplar_size: int = 127
    instance_size: int = 255
    context: float = 0.5
    num_scales: int = 3
    scale_step: float = 1.0375
    scale_penalty: float = 0.9745
    scale_lr: float = 0.59
    window_influence: float = 0.176
    response_up: int = 16
    total_stride: int = 8
    out_scale: float = 0.001           # alexnet: siamfc-pytorch's fixed response scale
    adjust_channels: int = 128         # mobilenet_v2: width of the trained adjust layer
    template_crop: int = 8             # mobilenet_v2: centre crop of the 16x16 template map
    min_size: float = 4.0              # box size clamp (pixels), pysot-style robustness
    supersample: int = 1               # anti-aliasing taps per output pixel when cropping
    crop: str = "rounded"              # "rounded" (siamfc-pytorch's crops) | "continuous", CROPS
    # False: siamfc-pytorch (no clamp; the crop sides follow the scale step exactly);
    # True: size >= min_size and centre inside the image (pysot-style robustness)
    clamp_box: bool = False
    # lost: the peak's probability (sigmoid) below lost_ratio x its mean over the first frames
    lost_ratio: float = 0.5
    lost_reference_frames: int = 5
    # jaxtrack's small-target variant (0: siamfc-pytorch): the exemplar crop side never falls
    # below this many image pixels, so a target of a few tens of pixels is not blown up 4x into
    # the exemplar and the search region (instance/exemplar times that side) keeps up with motion
    min_exemplar_side: float = 0.0

    def __post_init__(self):
        models.check_backbone("siamfc", self.backbone, BACKBONES)
        if self.crop not in CROPS:
            raise ValueError(f"SiamFC crop must be one of {CROPS}, got {self.crop!r}")
        if self.crop == "rounded" and self.supersample != 1:
            raise ValueError("SiamFC crop='rounded' (siamfc-pytorch's crops) takes no supersample; "
                             f"got supersample={self.supersample}")


Config = SiamFCConfig

class SiamFCState(NamedTuple):
    center: Any        # (2,) cx, cy (continuous pixel coordinates)
    target_size: Any   # (2,) w, h
    z_side: Any        # () exemplar crop side in image pixels
    x_side: Any        # () search crop side in image pixels
    fill: Any          # (3,) mean colour of the first frame, the crop padding
    kernel: Any        # [1, hz, wz, C] template features
    frame_index: Any   # () int32
    peak_sum: Any      # () sum of the peak probabilities of frames 1..lost_reference_frames


# ------------------------------------------------------------------- network

def backbone_module(config: SiamFCConfig):
    return models.backbone(config.backbone, **BACKBONES[config.backbone])


def embed(config: SiamFCConfig, params, images, train: bool = False):
    """Features of [B, H, W, 3] RGB crops (pixel values 0-255)."""
    module = backbone_module(config)
    if config.backbone == "alexnet":
        if train:
            feats, updates = module.apply(params["backbone"], images, train=True, mutable=["batch_stats"])
            return feats, updates
        return module.apply(params["backbone"], images, train=False), None
    # frozen ImageNet features, then the trained 1x1 adjust layer
    feats = jax.lax.stop_gradient(module.apply(params["backbone"], images))
    return adjust(params["head"]["adjust"], feats), None


def adjust(adj, feats):
    """A 1x1 ``adjust`` layer (``{"kernel": [C, D], "bias": [D]}``) on ``[..., h, w, C]`` features."""
    return jnp.einsum("...hwc,cd->...hwd", feats, adj["kernel"]) + adj["bias"]


def template_features(config: SiamFCConfig, feats):
    """Centre-crop the template map (mobilenet_v2: padded convs leave a border)."""
    if config.backbone != "mobilenet_v2" or config.template_crop <= 0:
        return feats
    h, w = feats.shape[1:3]
    c = config.template_crop
    top, left = (h - c) // 2, (w - c) // 2
    return feats[:, top:top + c, left:left + c]


def score(config: SiamFCConfig, params, z_feat, x_feat):
    """Response map logits [B, R, R] of templates against search features."""
    r = ops.xcorr(z_feat, x_feat)
    if config.backbone == "alexnet":
        return r * config.out_scale + params["head"]["bias"]
    return r + params["head"]["bias"]


def init_head(config: SiamFCConfig, key, in_channels: int = 96):
    if config.backbone == "alexnet":
        return {"bias": jnp.zeros((), jnp.float32)}
    std = 1.0 / np.sqrt(in_channels * config.adjust_channels)
    kernel = std * jax.random.normal(key, (in_channels, config.adjust_channels), jnp.float32)
    return {"adjust": {"kernel": kernel, "bias": jnp.zeros((config.adjust_channels,), jnp.float32)},
            "bias": jnp.zeros((), jnp.float32)}


def init_backbone(config: SiamFCConfig, key):
    module = backbone_module(config)
    size = config.exemplar_size
    return module.init(key, jnp.zeros((1, size, size, 3), jnp.float32))


# ------------------------------------------------------------------- tracking

def exemplar_side(config, target_size):
    """SiamFC's exemplar crop side: sqrt((w + p)(h + p)), p = context * (w + h); at least
    ``config.min_exemplar_side`` (0 in siamfc-pytorch)."""
    context = config.context * jnp.sum(target_size)
    side = jnp.sqrt(jnp.prod(target_size + context))
    floor = getattr(config, "min_exemplar_side", 0.0)       # GradNet's config shares this geometry
    return jnp.maximum(side, floor) if floor > 0 else side


def crop_rounded(config: SiamFCConfig, frame: Frame, center, sides, out_size: int, fill):
    """``config.crop == "rounded"``: siamfc-pytorch's crops at each of ``sides`` ([S] or a
    scalar), [S, out, out, 3] (or [out, out, 3])."""
    one = lambda side: ops.crop_patch_rounded(frame.image, frame.size, center, side, out_size, fill)  # noqa: E731
    sides = jnp.asarray(sides, jnp.float32)
    return one(sides) if sides.ndim == 0 else jax.vmap(one)(sides)


def init(config: SiamFCConfig, params, frame: Frame, box, key=None) -> SiamFCState:
    """Start tracking ``box`` (xywh) in ``frame``; ``key`` is unused (SiamFC is deterministic)."""
    del key
    box = jnp.asarray(box, jnp.float32)
    center = box[:2] + box[2:] / 2
    target_size = box[2:]
    z_side = exemplar_side(config, target_size)
    x_side = z_side * config.instance_size / config.exemplar_size
    fill = ops.valid_mean_color(frame.image, frame.size)
    if config.crop == "rounded":
        z = crop_rounded(config, frame, center, z_side, config.exemplar_size, fill)
    else:
        z = ops.crop_patch(frame.image, frame.size, center, z_side, config.exemplar_size, fill,
                           config.supersample)
    feats, _ = embed(config, params, z[None])
    return SiamFCState(center, target_size, z_side, x_side, fill,
                       template_features(config, feats), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32))


def track_step(config: SiamFCConfig, params, state: SiamFCState, frame: Frame):
    scales = jnp.asarray(ops.scale_factors(config.num_scales, config.scale_step), jnp.float32)
    if config.crop == "rounded":
        x = crop_rounded(config, frame, state.center, state.x_side * scales, config.instance_size,
                         state.fill)
    else:
        x = ops.crop_pyramid(frame.image, frame.size, state.center, state.x_side, scales,
                             config.instance_size, state.fill, config.supersample)
    feats, _ = embed(config, params, x)
    responses = score(config, params, state.kernel, feats)                 # [S, R, R]
    r = responses.shape[-1]
    up = config.response_up * r
    responses = ops.resize_bicubic(responses, (up, up))
    penalty = jnp.where(jnp.arange(config.num_scales) == config.num_scales // 2,
                        1.0, config.scale_penalty)
    responses = responses * penalty[:, None, None]
    best = jnp.argmax(jnp.max(responses, axis=(1, 2)))
    response = responses[best]
    peak = jnp.max(response)
    response = response - jnp.min(response)
    response = response / (jnp.sum(response) + 1e-16)
    response = ((1 - config.window_influence) * response
                + config.window_influence * jnp.asarray(ops.hann_window(up)))
    loc = jnp.unravel_index(jnp.argmax(response), response.shape)          # (row, col)
    disp = (jnp.stack([loc[1], loc[0]]).astype(jnp.float32) - (up - 1) / 2)
    disp = disp * config.total_stride / config.response_up                 # in instance pixels
    disp = disp * state.x_side * scales[best] / config.instance_size       # in image pixels

    height, width = frame.size[0].astype(jnp.float32), frame.size[1].astype(jnp.float32)
    scale = (1 - config.scale_lr) + config.scale_lr * scales[best]
    if config.clamp_box:
        center = jnp.clip(state.center + disp, 0.0, jnp.stack([width, height]))
        target_size = jnp.clip(state.target_size * scale, config.min_size, jnp.stack([width, height]))
        # the crop sides follow the box, as siamfc-pytorch scales z_sz and x_sz with it
        actual = jnp.sqrt(jnp.prod(target_size) / jnp.prod(state.target_size))
    else:                                   # siamfc-pytorch: no clamp
        center = state.center + disp
        target_size = state.target_size * scale
        actual = scale
    lost, peak_sum = online.low_peak(state.frame_index + 1, jax.nn.sigmoid(peak), state.peak_sum,
                                     config.lost_reference_frames, config.lost_ratio)
    z_side, x_side = state.z_side * actual, state.x_side * actual
    if config.min_exemplar_side > 0:        # the sides follow the box down to the floor only
        z_side = exemplar_side(config, target_size)
        x_side = z_side * config.instance_size / config.exemplar_size
    state = state._replace(center=center, target_size=target_size, z_side=z_side, x_side=x_side,
                           frame_index=state.frame_index + 1, peak_sum=peak_sum)
    box = jnp.concatenate([center - target_size / 2, target_size])
    return state, TrackOutput(box, peak, lost)


# ------------------------------------------------------------------- params

def load_params(config: SiamFCConfig, weights: str | None = None, seed: int = 0,
                allow_random: bool = False):
    """Params for ``config``: backbone weights plus the trained head.

    mobilenet_v2: ImageNet features (:func:`jaxtrack.models.pretrained.mobilenet_v2_variables`)
    and the head from ``weights`` (default: the committed checkpoint). alexnet: the whole
    network from ``weights`` (a flax checkpoint, or a siamfc-pytorch ``.pth`` state dict).
    """
    from jaxtrack.models.pretrained import mobilenet_v2_variables
    key_b, key_h = jax.random.split(jax.random.PRNGKey(seed))
    head = init_head(config, key_h)
    path = weights or checkpoints.default_checkpoint("siamfc", config.backbone)
    if config.backbone == "mobilenet_v2":
        head = checkpoints.load_trained_part(weights, path, head, allow_random=allow_random,
                                             what="SiamFC head", train_script="experiments/train_siamfc.py")
        return {"backbone": mobilenet_v2_variables(), "head": head}
    have = os.path.exists(path)
    if weights and not have:
        raise FileNotFoundError(f"SiamFC weights not found: {weights}")
    template = {"backbone": init_backbone(config, key_b), "head": head}
    if have:
        if path.endswith((".pth", ".pt")):
            from jaxtrack.formats.torch_pickle import load_state_dict
            from jaxtrack.models.alexnet import alexnet_from_siamfc_torch
            return {"backbone": alexnet_from_siamfc_torch(load_state_dict(path)), "head": head}
        return checkpoints.load_variables(path, template)
    if not allow_random:
        raise FileNotFoundError(f"no trained SiamFC AlexNet at {path}; pass weights=... "
                                "(a siamfc-pytorch .pth or a jaxtrack checkpoint) or allow_random=True")
    return template
