"""ResNet-18 in torchvision's layout (``conv1, bn1, layer1..layer4``), as ATOM's backbone.

Output strides: layer1 → 4 (64 ch), layer2 → 8 (128 ch), layer3 → 16 (256 ch),
layer4 → 32 (512 ch). ``__call__`` returns ``{name: features}`` for ``taps`` (default
``("layer2", "layer3")``, ATOM's IoU-Net inputs; the classifier uses layer3) and stops
after the deepest tap. Input: NHWC RGB 0-255, ImageNet-normalised inside. Padding is
torch's symmetric ``k // 2``. BatchNorm uses running statistics (frozen backbone).

:func:`resnet18_from_torch` converts a torchvision state dict (optionally prefixed,
e.g. pytracking's ``feature_extractor.``), checking every shape.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxtrack.models import take_checked
from jaxtrack.models.mobilenet_v2 import normalize

LAYERS = ("layer1", "layer2", "layer3", "layer4")
CHANNELS = {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}
BN_EPS = 1e-5


def _bn(name):
    return nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name=name)


def _conv(features, k, stride, name):
    p = k // 2
    return nn.Conv(features, (k, k), strides=stride, padding=((p, p), (p, p)), use_bias=False, name=name)


class BasicBlock(nn.Module):
    features: int
    stride: int = 1
    downsample: bool = False

    @nn.compact
    def __call__(self, x):
        h = nn.relu(_bn("bn1")(_conv(self.features, 3, self.stride, "conv1")(x)))
        h = _bn("bn2")(_conv(self.features, 3, 1, "conv2")(h))
        if self.downsample:
            x = _bn("downsample_1")(_conv(self.features, 1, self.stride, "downsample_0")(x))
        return nn.relu(h + x)


class ResNet18(nn.Module):
    taps: tuple[str, ...] = ("layer2", "layer3")
    normalize_input: bool = True

    @nn.compact
    def __call__(self, x):
        bad = [t for t in self.taps if t not in LAYERS]
        if bad or not self.taps:
            raise ValueError(f"ResNet18 taps must be among {LAYERS}, got {self.taps}")
        x = normalize(x) if self.normalize_input else jnp.asarray(x, jnp.float32)
        x = nn.relu(_bn("bn1")(_conv(64, 7, 2, "conv1")(x)))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        last = max(LAYERS.index(t) for t in self.taps)
        out, cin = {}, 64
        for li, name in enumerate(LAYERS[:last + 1]):
            c = CHANNELS[name]
            stride = 1 if li == 0 else 2
            x = BasicBlock(c, stride, stride != 1 or cin != c, name=f"{name}_0")(x)
            x = BasicBlock(c, 1, False, name=f"{name}_1")(x)
            cin = c
            out[name] = x
        return {t: out[t] for t in self.taps}


def _kernel(w):
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))   # OIHW -> HWIO


def resnet18_from_torch(state_dict: dict, prefix: str = "", layers=LAYERS) -> dict:
    """Flax variables ``{"params", "batch_stats"}`` from a torchvision ResNet-18 state dict.

    ``prefix`` is stripped from keys (``"feature_extractor."`` for pytracking files);
    ``fc.*`` and layers beyond ``layers`` are ignored. Missing keys or wrong shapes raise
    naming the key and both shapes.
    """
    sd = {k[len(prefix):]: np.asarray(v) for k, v in state_dict.items() if k.startswith(prefix)}
    params, stats = {}, {}

    def conv(key, cout, cin, k):
        return {"kernel": _kernel(take_checked(sd, f"{key}.weight", (cout, cin, k, k), "ResNet18",
                                               prefix + f"{key}.weight"))}

    def bn(key, c):
        t = lambda n: take_checked(sd, f"{key}.{n}", (c,), "ResNet18", prefix + f"{key}.{n}")  # noqa: E731
        return {"scale": t("weight"), "bias": t("bias")}, {"mean": t("running_mean"), "var": t("running_var")}

    params["conv1"] = conv("conv1", 64, 3, 7)
    params["bn1"], stats["bn1"] = bn("bn1", 64)
    cin = 64
    for li, name in enumerate(LAYERS):
        if name not in layers:
            break
        c = CHANNELS[name]
        for b in range(2):
            key = f"{name}.{b}"
            bp, bs = {}, {}
            bin_ = cin if b == 0 else c
            bp["conv1"] = conv(f"{key}.conv1", c, bin_, 3)
            bp["bn1"], bs["bn1"] = bn(f"{key}.bn1", c)
            bp["conv2"] = conv(f"{key}.conv2", c, c, 3)
            bp["bn2"], bs["bn2"] = bn(f"{key}.bn2", c)
            if b == 0 and (li > 0 or cin != c):
                bp["downsample_0"] = conv(f"{key}.downsample.0", c, cin, 1)
                bp["downsample_1"], bs["downsample_1"] = bn(f"{key}.downsample.1", c)
            params[f"{name}_{b}"], stats[f"{name}_{b}"] = bp, bs
        cin = c
    return {"params": params, "batch_stats": stats}
