"""SiamFC's AlexNet backbone (siamfc-pytorch ``AlexNetV1``) in flax.

Layout (all VALID, NHWC, output stride 8)::

    conv1 11x11/2, 96            + BN + ReLU + maxpool 3/2
    conv2  5x5,   256, groups=2  + BN + ReLU + maxpool 3/2   <- "shallow" features
    conv3  3x3,   384            + BN + ReLU
    conv4  3x3,   384, groups=2  + BN + ReLU
    conv5  3x3,   256, groups=2  (no BN, no ReLU)

Sizes: 127 exemplar → 6x6x256, 255 search → 22x22x256. Input: float RGB, 0-255, not
normalised. ``train=True`` uses batch statistics and needs ``mutable=["batch_stats"]``.
:meth:`SiamFCAlexNet.shallow` (conv1-2) and :meth:`SiamFCAlexNet.deep` (conv3-5) serve
GradNet through ``model.apply(..., method=...)``. Design notes: docs/trackers/backbones.md.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxtrack.models import take_checked

BN_EPS = 1e-6
BN_MOMENTUM = 0.95  # torch momentum 0.05

# name: (out channels, kernel, stride, groups, has BN+ReLU)
LAYERS = {
    "conv1": (96, 11, 2, 1, True),
    "conv2": (256, 5, 1, 2, True),
    "conv3": (384, 3, 1, 1, True),
    "conv4": (384, 3, 1, 2, True),
    "conv5": (256, 3, 1, 2, False),
}
IN_CHANNELS = {"conv1": 3, "conv2": 96, "conv3": 256, "conv4": 384, "conv5": 384}

# siamfc-pytorch initialises convs with kaiming_normal_(mode="fan_out", relu).
_kaiming_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class GroupedConv(nn.Module):
    """VALID conv with ``groups`` input/output channel groups, run as one conv per group.

    Parameters are exactly ``nn.Conv(..., feature_group_count=groups)``'s (``kernel``
    [k, k, I/G, O], ``bias`` [O]); XLA:CPU runs the split form faster.
    """
    features: int
    kernel_size: int
    groups: int = 2

    @nn.compact
    def __call__(self, x):
        g, k = self.groups, self.kernel_size
        cin = x.shape[-1] // g
        kernel = self.param("kernel", _kaiming_fan_out, (k, k, cin, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        cout = self.features // g
        outs = [lax.conv_general_dilated(x[..., i * cin:(i + 1) * cin],
                                         kernel[..., i * cout:(i + 1) * cout], (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
                for i in range(g)]
        return jnp.concatenate(outs, axis=-1) + bias


class SiamFCAlexNet(nn.Module):
    """SiamFC AlexNet; ``__call__(x, train=False, return_shallow=False)``."""

    def setup(self):
        for name, (cout, k, s, g, _) in LAYERS.items():
            if g == 1:
                conv = nn.Conv(cout, (k, k), strides=s, padding="VALID", kernel_init=_kaiming_fan_out)
            else:
                assert s == 1
                conv = GroupedConv(cout, k, g)
            setattr(self, name, conv)
        bn = functools.partial(nn.BatchNorm, momentum=BN_MOMENTUM, epsilon=BN_EPS)
        self.bn1, self.bn2, self.bn3, self.bn4 = bn(), bn(), bn(), bn()

    def _pool(self, x):
        return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")

    def shallow(self, x, train: bool = False):
        """conv1 and conv2 blocks, pools included: [N, H, W, 3] → [N, h, w, 256]."""
        ura = not train
        x = self._pool(nn.relu(self.bn1(self.conv1(x), use_running_average=ura)))
        return self._pool(nn.relu(self.bn2(self.conv2(x), use_running_average=ura)))

    def deep(self, h, train: bool = False):
        """conv3..conv5 on shallow features: [N, h, w, 256] → [N, h-6, w-6, 256]."""
        ura = not train
        h = nn.relu(self.bn3(self.conv3(h), use_running_average=ura))
        h = nn.relu(self.bn4(self.conv4(h), use_running_average=ura))
        return self.conv5(h)

    def __call__(self, x, train: bool = False, return_shallow: bool = False):
        shallow = self.shallow(x, train)
        out = self.deep(shallow, train)
        return (out, shallow) if return_shallow else out


def alexnet_from_siamfc_torch(state_dict: dict) -> dict:
    """Flax variables from a siamfc-pytorch state dict (``backbone.conv1.0.weight`` …).

    The ``backbone.`` prefix is optional; other keys (e.g. ``head.*``) and
    ``num_batches_tracked`` are ignored. Grouped torch kernels ``(O, I/G, kh, kw)``
    become flax ``(kh, kw, I/G, O)``: both split input and output channels into
    consecutive groups, so a transpose is all it takes. Shapes are checked.
    """
    sd = {k[len("backbone."):] if k.startswith("backbone.") else k: np.asarray(v)
          for k, v in state_dict.items()}

    def take(key, shape):
        return take_checked(sd, key, shape, "SiamFC AlexNet (with or without 'backbone.')")

    params, stats = {}, {}
    for i, (name, (cout, k, _, g, has_bn)) in enumerate(LAYERS.items(), start=1):
        w = take(f"{name}.0.weight", (cout, IN_CHANNELS[name] // g, k, k))
        params[name] = {"kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0)),
                        "bias": take(f"{name}.0.bias", (cout,))}
        if has_bn:
            params[f"bn{i}"] = {"scale": take(f"{name}.1.weight", (cout,)),
                                "bias": take(f"{name}.1.bias", (cout,))}
            stats[f"bn{i}"] = {"mean": take(f"{name}.1.running_mean", (cout,)),
                               "var": take(f"{name}.1.running_var", (cout,))}
    return {"params": params, "batch_stats": stats}


def alexnet_from_tf_tensors(tensors: dict, scope: str, where: str, tf_bn_eps: float = 1e-3,
                            bgr_input: bool = False) -> dict:
    """SiamFC AlexNet flax variables from TensorFlow tensors named ``siamese/<scope><i>/...``
    (GradNet's official layout: ``scope`` is ``"scala{}"`` or ``"scala{}_z"``). ``bgr_input``:
    the network was trained on BGR frames (``cv2.imread`` never converted), so conv1's input
    channels are reversed to take jaxtrack's RGB frames."""
    params, stats = {}, {}
    for i, (name, (cout, k, _, g, has_bn)) in enumerate(LAYERS.items(), start=1):
        pre = f"siamese/{scope.format(i)}"
        take = lambda key, shape: take_checked(tensors, f"{pre}/{key}", shape, where)  # noqa: E731
        kernel = take("conv/weights", (k, k, IN_CHANNELS[name] // g, cout))
        if i == 1 and bgr_input:
            kernel = np.ascontiguousarray(kernel[:, :, ::-1, :])
        params[name] = {"kernel": kernel, "bias": take("conv/biases", (cout,))}
        if has_bn:
            params[f"bn{i}"] = {"scale": take("bn/gamma", (cout,)), "bias": take("bn/beta", (cout,))}
            # TF adds its eps (1e-3), flax's BN here 1e-6: fold the difference into the variance
            stats[f"bn{i}"] = {"mean": take("bn/moving_mean", (cout,)),
                               "var": take("bn/moving_variance", (cout,)) + (tf_bn_eps - BN_EPS)}
    return {"params": params, "batch_stats": stats}

