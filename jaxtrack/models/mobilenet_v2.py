"""MobileNetV2 feature extractor in torchvision's ``features.0 … features.18`` layout.

Input: NHWC float RGB with pixel values in **0-255**; ``__call__`` applies the ImageNet
normalisation (:func:`normalize`) itself unless ``normalize_input=False``. Output strides:
features.1 → 2, features.3 → 4, features.6 → 8 (32 ch), features.13 → 16 (96 ch),
features.17 → 32 (320 ch), features.18 → 32 (1280 ch). ``dilate_after_stride8=True`` keeps
the output stride at 8 as SiamRPN++ (pysot's ``mobile_v2.py``) does: features.7 and
features.14 get stride 1 and the later depthwise convolutions are dilated. Padding is
torch's symmetric ``k // 2``; BatchNorm is frozen by default.

Weights: :func:`mobilenet_v2_from_torch` converts a torchvision state dict;
:func:`jaxtrack.models.pretrained.mobilenet_v2_variables` finds the ImageNet weights.
:func:`fold_batchnorm` and :func:`folded_features` give a pure-function forward (DAT).
Design notes: docs/trackers/backbones.md.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from jaxtrack.models import take_checked

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's table: expansion t, channels c, repeats n, stride s (features.1..17).
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
NUM_BLOCKS = 19  # features.0 .. features.18
BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # torch momentum 0.1


def normalize(x, scale: float = 255.0):
    """ImageNet normalisation of NHWC RGB: ``(x / scale - mean) / std``.

    ``scale=255`` for 0-255 pixels (what ``MobileNetV2Features`` expects), ``1`` for [0, 1].
    """
    x = jnp.asarray(x, jnp.float32)
    mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
    std = jnp.asarray(IMAGENET_STD, jnp.float32)
    return (x / scale - mean) / std


class BlockSpec(NamedTuple):
    """One inverted residual block ``features.<index>``."""
    index: int
    in_ch: int
    out_ch: int
    expand: int
    stride: int
    dilation: int


def block_specs(dilate_after_stride8: bool = False) -> tuple[BlockSpec, ...]:
    """Specs of features.1..17; with dilation, strides after stride 8 become dilations (pysot)."""
    specs, in_ch, index = [], STEM_CHANNELS, 1
    current_stride, dilation = 2, 1
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        first_dilation = dilation
        if dilate_after_stride8 and s > 1 and current_stride >= 8:
            dilation *= s  # this stage's stride becomes dilation of its later blocks
            s = 1
        current_stride *= s
        for i in range(n):
            specs.append(BlockSpec(index, in_ch, c, t, s if i == 0 else 1,
                                   first_dilation if i == 0 else dilation))
            in_ch, index = c, index + 1
    return tuple(specs)


class DepthwiseConv3x3(nn.Module):
    """3x3 depthwise conv (no bias, padding = dilation) as 9 shifted multiply-adds.

    Same parameter as ``nn.Conv(C, (3, 3), feature_group_count=C)`` (``kernel``
    [3, 3, 1, C]) and the same result, but much faster on XLA:CPU, whose grouped
    convolution is slow; trackers run this per frame on small CPUs.
    """
    stride: int = 1
    dilation: int = 1

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, 1, c), jnp.float32)
        s, d = self.stride, self.dilation
        xp = jnp.pad(x, ((0, 0), (d, d), (d, d), (0, 0)))
        h, w = (x.shape[1] - 1) // s + 1, (x.shape[2] - 1) // s + 1
        out = 0.0
        for i in range(3):  # 9 taps, not pixels: each term is one strided slice
            for j in range(3):
                tap = xp[:, i * d: i * d + (h - 1) * s + 1: s, j * d: j * d + (w - 1) * s + 1: s, :]
                out = out + tap * kernel[i, j, 0]
        return out


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (+ ReLU6), torch-symmetric padding."""
    features: int
    kernel: int = 3
    stride: int = 1
    dilation: int = 1
    groups: int = 1
    relu6: bool = True

    @nn.compact
    def __call__(self, x, train: bool = False):
        pad = self.dilation * (self.kernel // 2)
        if self.kernel == 3 and self.groups == self.features == x.shape[-1]:
            x = DepthwiseConv3x3(self.stride, self.dilation, name="conv")(x)
        else:
            x = nn.Conv(self.features, (self.kernel, self.kernel), strides=self.stride,
                        padding=((pad, pad), (pad, pad)), kernel_dilation=self.dilation,
                        feature_group_count=self.groups, use_bias=False, name="conv")(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                         epsilon=BN_EPS, name="bn")(x)
        return nn.relu6(x) if self.relu6 else x


class InvertedResidual(nn.Module):
    """1x1 expand (if t > 1) → 3x3 depthwise → 1x1 linear project, + skip when shapes match."""
    in_ch: int
    out_ch: int
    expand: int
    stride: int = 1
    dilation: int = 1

    @nn.compact
    def __call__(self, x, train: bool = False):
        hidden = self.in_ch * self.expand
        h = x
        if self.expand != 1:
            h = ConvBN(hidden, 1, name="expand")(h, train)
        h = ConvBN(hidden, 3, self.stride, self.dilation, groups=hidden, name="depthwise")(h, train)
        h = ConvBN(self.out_ch, 1, relu6=False, name="project")(h, train)
        if self.stride == 1 and self.in_ch == self.out_ch:
            h = h + x
        return h


class MobileNetV2Features(nn.Module):
    """torchvision ``mobilenet_v2().features`` in flax (NHWC, 0-255 RGB input).

    Attributes:
      last_block: run features.0..last_block only (e.g. 13: stride 16, 96 ch). Default:
        ``max(taps)`` if taps are given, else 18.
      taps: if non-empty, ``__call__`` returns ``{block_index: features}`` for these blocks.
      dilate_after_stride8: output stride 8 with dilated later blocks
        (docs/trackers/backbones.md).
      normalize_input: apply :func:`normalize` (0-255 → ImageNet-normalised) first.

    Submodules are named ``features_<i>``, so one set of variables (all 19 blocks) serves
    every ``last_block``/``taps``/dilation choice (unused parameters are ignored).
    """
    last_block: Optional[int] = None
    taps: tuple[int, ...] = ()
    dilate_after_stride8: bool = False
    normalize_input: bool = True

    @nn.compact
    def __call__(self, x, train: bool = False):
        taps = tuple(self.taps)
        last = self.last_block if self.last_block is not None else (max(taps) if taps else NUM_BLOCKS - 1)
        if not 0 <= last < NUM_BLOCKS or any(not 0 <= t <= last for t in taps):
            raise ValueError(f"taps {taps} / last_block {last} outside features.0..{last}")
        x = normalize(x) if self.normalize_input else jnp.asarray(x, jnp.float32)
        out = {}
        x = ConvBN(STEM_CHANNELS, 3, 2, name="features_0")(x, train)
        out[0] = x
        for spec in block_specs(self.dilate_after_stride8):
            if spec.index > last:
                break
            x = InvertedResidual(spec.in_ch, spec.out_ch, spec.expand, spec.stride,
                                 spec.dilation, name=f"features_{spec.index}")(x, train)
            out[spec.index] = x
        if last == NUM_BLOCKS - 1:
            x = ConvBN(LAST_CHANNELS, 1, name=f"features_{NUM_BLOCKS - 1}")(x, train)
            out[NUM_BLOCKS - 1] = x
        return {t: out[t] for t in taps} if taps else x


# --------------------------------------------------------------------------------------
# BatchNorm folded into the convolutions: a pure function of the weights.

def fold_batchnorm(variables, last_block: int):
    """Fold frozen BatchNorm into conv kernels/biases of MobileNetV2 features.0..last_block."""
    p, s = variables["params"], variables["batch_stats"]

    def fold(pp, ss):
        scale = pp["bn"]["scale"] / jnp.sqrt(ss["bn"]["var"] + BN_EPS)
        return {"kernel": pp["conv"]["kernel"] * scale,
                "bias": pp["bn"]["bias"] - ss["bn"]["mean"] * scale}

    out = {"features_0": fold(p["features_0"], s["features_0"])}
    for i in range(1, last_block + 1):
        name = f"features_{i}"
        out[name] = {k: fold(p[name][k], s[name][k]) for k in p[name]}
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), out)


def _depthwise3x3(x, kernel, stride):
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = (x.shape[1] - 1) // stride + 1, (x.shape[2] - 1) // stride + 1
    out = 0.0
    for i in range(3):
        for j in range(3):
            out = out + xp[:, i:i + (h - 1) * stride + 1:stride, j:j + (w - 1) * stride + 1:stride] * kernel[i, j, 0]
    return out


def folded_features(p, images, act6=jax.nn.relu6, last_block: int = 13):
    """MobileNetV2 features.0..last_block with folded BN, as a pure function of ``p``.

    Same result as :class:`MobileNetV2Features` (0-255 input, ``p`` from
    :func:`fold_batchnorm`), but the ReLU6 is an argument (guided backprop needs its own).
    """
    x = normalize(images)
    stem = p["features_0"]
    x = lax.conv_general_dilated(x, stem["kernel"], (2, 2), ((1, 1), (1, 1)),
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    x = act6(x + stem["bias"])
    for spec in block_specs():
        if spec.index > last_block:
            break
        bp = p[f"features_{spec.index}"]
        h = x
        if "expand" in bp:
            h = act6(jnp.einsum("bhwc,cd->bhwd", h, bp["expand"]["kernel"][0, 0]) + bp["expand"]["bias"])
        h = act6(_depthwise3x3(h, bp["depthwise"]["kernel"], spec.stride) + bp["depthwise"]["bias"])
        h = jnp.einsum("bhwc,cd->bhwd", h, bp["project"]["kernel"][0, 0]) + bp["project"]["bias"]
        x = h + x if (spec.stride == 1 and spec.in_ch == spec.out_ch) else h
    return x


# --------------------------------------------------------------------------------------
# torch → flax conversion.

def _conv_kernel(w: np.ndarray) -> np.ndarray:
    """torch OIHW (grouped: O, I/G, H, W) → flax HWIO (H, W, I/G, O)."""
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def _torch_module_names(spec_index: int, expand: int, new_layout: bool):
    """torch module prefixes (conv, bn) of each flax ConvBN in one block."""
    p = f"features.{spec_index}.conv"
    if new_layout:  # torchvision >= 0.4: nested Conv2dNormActivation
        parts = [(f"{p}.0.0", f"{p}.0.1"), (f"{p}.1.0", f"{p}.1.1"), (f"{p}.2", f"{p}.3")] \
            if expand != 1 else [(f"{p}.0.0", f"{p}.0.1"), (f"{p}.1", f"{p}.2")]
    else:  # the original flat Sequential (as in the shared ImageNet file)
        parts = [(f"{p}.0", f"{p}.1"), (f"{p}.3", f"{p}.4"), (f"{p}.6", f"{p}.7")] \
            if expand != 1 else [(f"{p}.0", f"{p}.1"), (f"{p}.3", f"{p}.4")]
    names = ["expand", "depthwise", "project"] if expand != 1 else ["depthwise", "project"]
    return dict(zip(names, parts))


def mobilenet_v2_from_torch(state_dict: dict) -> dict:
    """Flax variables ``{"params", "batch_stats"}`` from a torchvision MobileNetV2 state dict.

    Accepts ``features.*`` keys of either torchvision layout (nested ``conv.0.0`` or the
    original flat ``conv.0 … conv.7``), optionally under a prefix (``module.``,
    ``backbone.``); ``classifier.*`` and ``num_batches_tracked`` are ignored. Every
    tensor's shape is checked; a missing key or wrong shape raises naming the key.
    """
    sd = {k: np.asarray(v) for k, v in state_dict.items()}
    stems = [k[: -len("features.0.0.weight")] for k in sd if k.endswith("features.0.0.weight")]
    if len(stems) != 1:
        raise KeyError("state dict has no (or several) 'features.0.0.weight' keys: not a "
                       "torchvision MobileNetV2")
    prefix = stems[0]
    sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix + "features.")}
    new_layout = "features.1.conv.0.0.weight" in sd
    used = set()

    def take(key, shape):
        v = take_checked(sd, key, shape, "MobileNetV2", shown_key=prefix + key)
        used.add(key)
        return v

    params, stats = {}, {}

    def convbn(conv, bn, cin, cout, k, groups=1):
        p = {"conv": {"kernel": _conv_kernel(take(f"{conv}.weight", (cout, cin // groups, k, k)))},
             "bn": {"scale": take(f"{bn}.weight", (cout,)), "bias": take(f"{bn}.bias", (cout,))}}
        s = {"bn": {"mean": take(f"{bn}.running_mean", (cout,)),
                    "var": take(f"{bn}.running_var", (cout,))}}
        return p, s

    params["features_0"], stats["features_0"] = convbn("features.0.0", "features.0.1", 3, STEM_CHANNELS, 3)
    for spec in block_specs():
        hidden = spec.in_ch * spec.expand
        names = _torch_module_names(spec.index, spec.expand, new_layout)
        bp, bs = {}, {}
        if "expand" in names:
            bp["expand"], bs["expand"] = convbn(*names["expand"], spec.in_ch, hidden, 1)
        bp["depthwise"], bs["depthwise"] = convbn(*names["depthwise"], hidden, hidden, 3, groups=hidden)
        bp["project"], bs["project"] = convbn(*names["project"], hidden, spec.out_ch, 1)
        params[f"features_{spec.index}"], stats[f"features_{spec.index}"] = bp, bs
    last = NUM_BLOCKS - 1
    params[f"features_{last}"], stats[f"features_{last}"] = convbn(
        f"features.{last}.0", f"features.{last}.1", INVERTED_RESIDUAL_SETTING[-1][1], LAST_CHANNELS, 1)
    unused = sorted(k for k in set(sd) - used if not k.endswith("num_batches_tracked"))
    if unused:
        raise ValueError(f"unexpected MobileNetV2 keys (wrong layout?): {unused[:5]}")
    return {"params": params, "batch_stats": stats}
