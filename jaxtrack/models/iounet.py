"""ATOM's IoU-Net (pytracking ``AtomIoUNet``), NHWC, with PrRoIPool in closed form.

:meth:`AtomIoUNet.get_modulation` turns the first frame's features and target box into
two modulation vectors; :meth:`AtomIoUNet.get_iou_feat` computes the test-branch maps;
:meth:`AtomIoUNet.predict_iou` gives the IoU of proposals. Boxes are ``xywh`` in the
coordinates of the image crop the features come from. ``input_dim`` is ``(128, 256)`` for
ResNet-18 layer2/layer3; for the MobileNetV2 stand-in, :func:`adapt` maps features.6
(32 ch) / features.13 (96 ch) to those widths with trained 1x1 convs.
:func:`iounet_from_pytracking` converts the ``bb_regressor.*`` entries of a pytracking
``atom_default.pth`` ``net`` state dict. Design notes: docs/trackers/atom.md.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxtrack.models import take_checked
from jaxtrack.prroi_pool import prroi_pool_batch

_kaiming = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def _bn(train: bool, name: str = "bn"):
    # pytracking (torch<=1.1 behaviour) draws BN weights from U(0, 1)
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        scale_init=nn.initializers.uniform(1.0), name=name)


class ConvBNReLU(nn.Module):
    features: int
    kernel: int = 3
    padding: int = 1

    @nn.compact
    def __call__(self, x, train: bool = False):
        p = self.padding
        x = nn.Conv(self.features, (self.kernel, self.kernel), padding=((p, p), (p, p)),
                    kernel_init=_kaiming, name="conv")(x)
        return nn.relu(_bn(train)(x))


class LinearBlock(nn.Module):
    """Linear over a flattened ``[N, h, w, C]`` block (torch's C, H, W order) + BN + ReLU."""
    features: int

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
        x = nn.Dense(self.features, kernel_init=_kaiming, name="linear")(x)
        return nn.relu(_bn(train)(x))


def _xyxy(b):
    return jnp.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


class AtomIoUNet(nn.Module):
    input_dim: Sequence[int] = (128, 256)
    pred_input_dim: Sequence[int] = (256, 256)
    pred_inter_dim: Sequence[int] = (256, 256)

    def setup(self):
        pi, pm = self.pred_input_dim, self.pred_inter_dim
        self.conv3_1r = ConvBNReLU(128)
        self.conv3_1t = ConvBNReLU(256)
        self.conv3_2t = ConvBNReLU(pi[0])
        self.fc3_1r = ConvBNReLU(256, 3, 0)
        self.conv4_1r = ConvBNReLU(256)
        self.conv4_1t = ConvBNReLU(256)
        self.conv4_2t = ConvBNReLU(pi[1])
        self.fc34_3r = ConvBNReLU(pi[0], 1, 0)
        self.fc34_4r = ConvBNReLU(pi[1], 1, 0)
        self.fc3_rt = LinearBlock(pm[0])
        self.fc4_rt = LinearBlock(pm[1])
        self.iou_predictor = nn.Dense(1, kernel_init=_kaiming)

    def __call__(self, feat3_r, feat4_r, box_r, feat3_t, feat4_t, proposals, train: bool = False):
        """Training forward: reference features/boxes ``[B, ...]``, ``[B, 4]``; test
        features ``[B, ...]`` and proposals ``[B, N, 4]`` → predicted IoU ``[B, N]``."""
        mod = self.get_modulation(feat3_r, feat4_r, box_r, train)
        feats = self.get_iou_feat(feat3_t, feat4_t, train)
        return self.predict_iou(mod, feats, proposals, train)

    def get_modulation(self, feat3, feat4, boxes, train: bool = False):
        """Modulation vectors ``([B, 256], [B, 256])`` of target ``boxes [B, 4]`` (xywh)."""
        rois = _xyxy(boxes)[:, None]                                    # [B, 1, 4]
        c3 = self.conv3_1r(feat3, train)
        r3 = prroi_pool_batch(c3, rois, 3, 1 / 8)[:, 0]                 # [B, 3, 3, 128]
        c4 = self.conv4_1r(feat4, train)
        r4 = prroi_pool_batch(c4, rois, 1, 1 / 16)[:, 0]                # [B, 1, 1, 256]
        f3 = self.fc3_1r(r3, train)                                     # [B, 1, 1, 256]
        f34 = jnp.concatenate([f3, r4], axis=-1)
        return (self.fc34_3r(f34, train).reshape(f34.shape[0], -1),
                self.fc34_4r(f34, train).reshape(f34.shape[0], -1))

    def get_iou_feat(self, feat3, feat4, train: bool = False):
        return (self.conv3_2t(self.conv3_1t(feat3, train), train),
                self.conv4_2t(self.conv4_1t(feat4, train), train))

    def predict_iou(self, modulation, feats, proposals, train: bool = False):
        """IoU ``[B, N]`` of ``proposals [B, N, 4]`` (xywh) given modulation and test feats."""
        m3, m4 = modulation
        c3, c4 = feats
        c3 = c3 * m3[:, None, None, :]
        c4 = c4 * m4[:, None, None, :]
        b, n = proposals.shape[:2]
        rois = _xyxy(proposals)
        r3 = prroi_pool_batch(c3, rois, 5, 1 / 8).reshape((b * n, 5, 5, -1))
        r4 = prroi_pool_batch(c4, rois, 3, 1 / 16).reshape((b * n, 3, 3, -1))
        f = jnp.concatenate([self.fc3_rt(r3, train), self.fc4_rt(r4, train)], axis=-1)
        return self.iou_predictor(f).reshape(b, n)


# ----------------------------------------------------------------- adapters (MobileNetV2)

def init_adapters(key, in_dims=(32, 96), out_dims=(128, 256)):
    """1x1 conv adapters (kernel [Cin, Cout], bias) for backbones whose widths differ."""
    ks = jax.random.split(key, len(in_dims))
    return {f"a{i}": {"kernel": jax.random.normal(k, (ci, co), jnp.float32) * np.sqrt(2.0 / ci),
                      "bias": jnp.zeros((co,), jnp.float32)}
            for i, (k, ci, co) in enumerate(zip(ks, in_dims, out_dims))}


def adapt(adapters, feats):
    """Apply the adapters to ``(feat3, feat4)``; ``adapters=None`` passes them through."""
    if not adapters:
        return tuple(feats)
    return tuple(jnp.einsum("bhwc,cd->bhwd", f, adapters[f"a{i}"]["kernel"]) + adapters[f"a{i}"]["bias"]
                 for i, f in enumerate(feats))


# ----------------------------------------------------------------- pytracking conversion

_CONVS = {"conv3_1r": (3, None, 128), "conv3_1t": (3, None, 256), "conv3_2t": (3, 256, 256),
          "fc3_1r": (3, 128, 256), "conv4_1r": (3, None, 256), "conv4_1t": (3, None, 256),
          "conv4_2t": (3, 256, 256), "fc34_3r": (1, 512, 256), "fc34_4r": (1, 512, 256)}


def iounet_from_pytracking(state_dict: dict, prefix: str = "bb_regressor.",
                           input_dim=(128, 256)) -> dict:
    """Flax variables of :class:`AtomIoUNet` from pytracking's ``bb_regressor.*`` tensors.

    Conv kernels OIHW → HWIO; linear weights ``[out, in]`` → ``[in, out]`` (the flatten
    order already matches); BN weight/bias/running stats → scale/bias/mean/var. Every
    key and shape is checked (errors name the key and both shapes).
    """
    sd = {k: np.asarray(v) for k, v in state_dict.items()}

    def take(key, shape):
        return take_checked(sd, prefix + key, shape, "AtomIoUNet")

    params, stats = {}, {}

    def bn(key, c):
        return ({"scale": take(f"{key}.weight", (c,)), "bias": take(f"{key}.bias", (c,))},
                {"mean": take(f"{key}.running_mean", (c,)), "var": take(f"{key}.running_var", (c,))})

    for name, (k, cin, cout) in _CONVS.items():
        if cin is None:
            cin = input_dim[0] if name.startswith("conv3") else input_dim[1]
        w = take(f"{name}.0.weight", (cout, cin, k, k))
        p_bn, s_bn = bn(f"{name}.1", cout)
        params[name] = {"conv": {"kernel": np.transpose(w, (2, 3, 1, 0)), "bias": take(f"{name}.0.bias", (cout,))},
                        "bn": p_bn}
        stats[name] = {"bn": s_bn}
    for name, size in (("fc3_rt", 5), ("fc4_rt", 3)):
        w = take(f"{name}.linear.weight", (256, 256 * size * size))
        p_bn, s_bn = bn(f"{name}.bn", 256)
        params[name] = {"linear": {"kernel": w.T.copy(), "bias": take(f"{name}.linear.bias", (256,))}, "bn": p_bn}
        stats[name] = {"bn": s_bn}
    params["iou_predictor"] = {"kernel": take("iou_predictor.weight", (1, 512)).T.copy(),
                               "bias": take("iou_predictor.bias", (1,))}
    return {"params": params, "batch_stats": stats}


def load_pytracking_atom(path) -> dict:
    """``{"backbone": ResNet-18 variables, "iounet": AtomIoUNet variables}`` from a pytracking
    ATOM checkpoint (``atom_default.pth``). Read safely: the pickled ``constructor`` entry
    becomes an inert placeholder and nothing it names is imported or run."""
    from jaxtrack.models.resnet18 import resnet18_from_torch
    from jaxtrack.formats.torch_pickle import load_state_dict
    sd = load_state_dict(path, allow_unknown_objects="skip")
    if not any(k.startswith("bb_regressor.") for k in sd):
        raise KeyError(f"{path}: no 'bb_regressor.*' tensors: not a pytracking ATOM checkpoint")
    return {"backbone": resnet18_from_torch(sd, prefix="feature_extractor.", layers=("layer1", "layer2", "layer3")),
            "iounet": iounet_from_pytracking(sd)}
