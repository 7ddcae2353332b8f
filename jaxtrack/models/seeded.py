"""Weights in an official code's own layout, drawn from a recorded seed.

Running official code beside jaxtrack needs the same weights on both sides, read by each
side through its own loader; where no trained checkpoint is at hand, these are drawn here
(numpy ``default_rng``), described by a JSON-able spec and pinned by :func:`digest`. Used by
``experiments/reference/`` and the tests that replay its fixtures.
"""
from __future__ import annotations

import hashlib

import numpy as np

# siamfc-pytorch AlexNetV1 (siamfc/backbones.py) under its Net's ``backbone.`` names: name,
# out, in, kernel, groups, BN; then the conv-bias range and the scale of the BN running mean
# and standard deviation (the size of that layer's pre-BN activations on a 0-255 input with
# these xavier weights, so that BN is not the identity).
SIAMFC_ALEXNET_LAYERS = (
    # name,  out, in, k, groups, bn,  bias, mean, std
    ("conv1", 96, 3, 11, 1, True, 1.0, 20.0, 10.0),
    ("conv2", 256, 96, 5, 2, True, 0.05, 0.3, 0.4),
    ("conv3", 384, 256, 3, 1, True, 0.05, 0.5, 0.7),
    ("conv4", 384, 384, 3, 2, True, 0.05, 0.3, 0.5),
    ("conv5", 256, 384, 3, 2, False, 0.05, 0.0, 0.0),
)


def siamfc_alexnet_spec(seed: int) -> dict:
    """Everything that fixes the SiamFC AlexNet weights: the seed and the layer table."""
    return {"generator": "siamfc_alexnet_v1 numpy default_rng", "seed": int(seed),
            "layers": [list(layer) for layer in SIAMFC_ALEXNET_LAYERS]}


def siamfc_alexnet_weights(spec: dict) -> dict:
    """siamfc-pytorch state-dict arrays (torch layouts, float32) from ``spec``.

    Per layer in order: the conv weight ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out))
    (``nn.init.xavier_uniform_`` with torch's fans of a grouped conv, as the reference's
    ``ops.init_weights``), the conv bias ~ U(-bias, bias); with BN: weight ~ U(0.5, 1.5),
    bias ~ U(-0.5, 0.5), running_mean ~ mean N(0, 1), running_var = (std U(0.5, 1.5))^2.
    """
    rng = np.random.default_rng(spec["seed"])
    out = {}
    for name, cout, cin, k, groups, bn, bias, mean, std in spec["layers"]:
        a = np.sqrt(6.0 / ((cin // groups) * k * k + cout * k * k))
        p = f"backbone.{name}"
        out[f"{p}.0.weight"] = rng.uniform(-a, a, (cout, cin // groups, k, k)).astype(np.float32)
        out[f"{p}.0.bias"] = rng.uniform(-bias, bias, cout).astype(np.float32)
        if bn:
            out[f"{p}.1.weight"] = rng.uniform(0.5, 1.5, cout).astype(np.float32)
            out[f"{p}.1.bias"] = rng.uniform(-0.5, 0.5, cout).astype(np.float32)
            out[f"{p}.1.running_mean"] = (mean * rng.standard_normal(cout)).astype(np.float32)
            out[f"{p}.1.running_var"] = ((std * rng.uniform(0.5, 1.5, cout)) ** 2).astype(np.float32)
    return out


def digest(weights: dict) -> str:
    """sha256 over the sorted names and float32 bytes of a name -> array mapping."""
    h = hashlib.sha256()
    for key in sorted(weights):
        h.update(key.encode())
        h.update(np.ascontiguousarray(weights[key], np.float32).tobytes())
    return h.hexdigest()


# torchvision VGG-16 conv1_1 ... conv4_3 (the layers TADT runs) under ``features.N`` names:
# name, in, out, features index.
VGG16_TADT_LAYERS = (
    ("conv1_1", 3, 64, 0), ("conv1_2", 64, 64, 2), ("conv2_1", 64, 128, 5),
    ("conv2_2", 128, 128, 7), ("conv3_1", 128, 256, 10), ("conv3_2", 256, 256, 12),
    ("conv3_3", 256, 256, 14), ("conv4_1", 256, 512, 17), ("conv4_2", 512, 512, 19),
    ("conv4_3", 512, 512, 21),
)


def vgg16_spec(seed: int, bias: float = 1.0) -> dict:
    """Everything that fixes the VGG-16 weights: the seed, the bias range, the layer table."""
    return {"generator": "vgg16_conv4 numpy default_rng", "seed": int(seed), "bias": float(bias),
            "layers": [list(layer) for layer in VGG16_TADT_LAYERS]}


def vgg16_weights(spec: dict) -> dict:
    """torchvision VGG-16 state-dict arrays (``features.N.weight/bias``, OIHW, float32) of
    conv1_1 ... conv4_3 from ``spec``: per layer in order, the weight ~ N(0, 2 / (out 9))
    (torchvision's ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``), the bias
    ~ U(-bias, bias) (torchvision's is 0; random here so that the loaders' biases are checked).
    """
    rng = np.random.default_rng(spec["seed"])
    out = {}
    for _, cin, cout, idx in spec["layers"]:
        std = np.sqrt(2.0 / (cout * 9))
        out[f"features.{idx}.weight"] = (std * rng.standard_normal((cout, cin, 3, 3))).astype(np.float32)
        out[f"features.{idx}.bias"] = rng.uniform(-spec["bias"], spec["bias"], cout).astype(np.float32)
    return out


def vgg16_matconvnet(weights: dict, spec: dict) -> dict:
    """The same tensors as a MatConvNet SimpleNN ``layers`` cell array for ``scipy.io.savemat``
    (filters ``[H, W, in, out]``, biases ``[out, 1]``; conv layers only, in order)."""
    dt = [("name", object), ("type", object), ("weights", object)]
    layers = np.empty((1, len(spec["layers"])), dtype=object)
    for i, (name, _, _, idx) in enumerate(spec["layers"]):
        rec = np.empty((1, 1), dtype=dt)
        pair = np.empty((1, 2), dtype=object)
        pair[0, 0] = np.ascontiguousarray(weights[f"features.{idx}.weight"].transpose(2, 3, 1, 0))
        pair[0, 1] = weights[f"features.{idx}.bias"].reshape(-1, 1)
        rec[0, 0] = (name, "conv", pair)
        layers[0, i] = rec
    return {"layers": layers}


# GradNet-Tensorflow (siamese.py) under its checkpoint names ``siamese/<scope>/...``: the
# search branch ``scala1-5``, the template branch ``scala1_z-5_z`` (both drawn as
# SIAMFC_ALEXNET_LAYERS, one after the other) and the update subnet ``t_scala5_zz`` (conv 3x3
# 256 -> 256 on the gradient times 1e4, BN): its bias range and BN statistics in the last row.
GRADNET_UPDATE_LAYER = ("t_scala5_zz", 256, 256, 3, 1, True, 0.05, 1.0, 60.0)


def gradnet_tf_spec(seed: int) -> dict:
    """Everything that fixes the GradNet weights: the seed and the layer tables."""
    return {"generator": "gradnet_tf numpy default_rng", "seed": int(seed),
            "layers": [list(layer) for layer in SIAMFC_ALEXNET_LAYERS],
            "update": list(GRADNET_UPDATE_LAYER)}


def gradnet_tf_weights(spec: dict) -> dict:
    """GradNet-Tensorflow checkpoint tensors (TF layouts: kernels ``[k, k, in/groups, out]``,
    float32) from ``spec``: per scope (``scala{i}``, ``scala{i}_z``, then ``t_scala5_zz``) and
    layer, drawn as :func:`siamfc_alexnet_weights` draws them (``conv/weights``,
    ``conv/biases``, ``bn/gamma``, ``bn/beta``, ``bn/moving_mean``, ``bn/moving_variance``)."""
    rng = np.random.default_rng(spec["seed"])
    out = {}
    rows = ([(f"scala{i + 1}", *row[1:]) for i, row in enumerate(spec["layers"])]
            + [(f"scala{i + 1}_z", *row[1:]) for i, row in enumerate(spec["layers"])] + [spec["update"]])
    for name, cout, cin, k, groups, bn, bias, mean, std in rows:
        a = np.sqrt(6.0 / ((cin // groups) * k * k + cout * k * k))
        p = f"siamese/{name}"
        w = rng.uniform(-a, a, (cout, cin // groups, k, k)).astype(np.float32)
        out[f"{p}/conv/weights"] = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
        out[f"{p}/conv/biases"] = rng.uniform(-bias, bias, cout).astype(np.float32)
        if bn:
            out[f"{p}/bn/gamma"] = rng.uniform(0.5, 1.5, cout).astype(np.float32)
            out[f"{p}/bn/beta"] = rng.uniform(-0.5, 0.5, cout).astype(np.float32)
            out[f"{p}/bn/moving_mean"] = (mean * rng.standard_normal(cout)).astype(np.float32)
            out[f"{p}/bn/moving_variance"] = ((std * rng.uniform(0.5, 1.5, cout)) ** 2).astype(np.float32)
    return out


# pytracking ATOM (ltr/models/bbreg/atom.py ``atom_resnet18``): the ``net`` state dict of
# ``ATOMnet``: ``feature_extractor.*`` (ltr's ResNet-18 with layer4 and fc) and
# ``bb_regressor.*`` (``AtomIoUNet``, ltr/models/bbreg/atom_iou_net.py). IoU-Net blocks:
# name, in, out, kernel (0: LinearBlock over a k x k x in input, "pred": the final Linear).
ATOM_IOUNET_LAYERS = (
    ("conv3_1r", 128, 128, 3), ("conv3_1t", 128, 256, 3), ("conv3_2t", 256, 256, 3),
    ("fc3_1r", 128, 256, 3), ("conv4_1r", 256, 256, 3), ("conv4_1t", 256, 256, 3),
    ("conv4_2t", 256, 256, 3), ("fc34_3r", 512, 256, 1), ("fc34_4r", 512, 256, 1),
    ("fc3_rt", 256 * 25, 256, 0), ("fc4_rt", 256 * 9, 256, 0), ("iou_predictor", 512, 1, "pred"),
)


def _resnet18_convs():
    """(name, out, in, k, bn name) of ltr's ResNet-18 in state-dict order, fc last."""
    rows = [("conv1", 64, 3, 7, "bn1")]
    cin = 64
    for li, c in enumerate((64, 128, 256, 512)):
        for b in range(2):
            p = f"layer{li + 1}.{b}"
            bin_ = cin if b == 0 else c
            rows += [(f"{p}.conv1", c, bin_, 3, f"{p}.bn1"), (f"{p}.conv2", c, c, 3, f"{p}.bn2")]
            if b == 0 and li > 0:
                rows.append((f"{p}.downsample.0", c, cin, 1, f"{p}.downsample.1"))
        cin = c
    return rows


def atom_resnet18_spec(seed: int, bn_mean: float = 0.5, bn_std: float = 1.0, iou_bias: float = 0.1,
                       pred_gain: float = 0.05) -> dict:
    """Everything that fixes the ATOM ResNet-18 + IoU-Net weights."""
    return {"generator": "atom_resnet18 numpy default_rng", "seed": int(seed), "bn_mean": float(bn_mean),
            "bn_std": float(bn_std), "iou_bias": float(iou_bias), "pred_gain": float(pred_gain),
            "iounet_layers": [list(layer) for layer in ATOM_IOUNET_LAYERS]}


def atom_resnet18_weights(spec: dict) -> dict:
    """pytracking ``atom_resnet18`` ``net`` state-dict arrays (torch layouts, float32).

    Backbone, in state-dict order: conv weights ~ N(0, 2 / (k k out)) (ltr's ResNet init);
    every BN: weight ~ U(0.5, 1.5), bias ~ U(-0.5, 0.5), running_mean ~ bn_mean N(0, 1),
    running_var = (bn_std U(0.5, 1.5))^2; then fc (1000 x 512, unused by ATOM) ~ N(0, 0.01).
    IoU-Net, in ``ATOM_IOUNET_LAYERS`` order: conv/linear weights ~ N(0, 2 / fan_in)
    (pytracking's ``kaiming_normal_(mode="fan_in")``; the last Linear times ``pred_gain``),
    biases ~ U(-iou_bias, iou_bias) (pytracking's are 0; random so the loaders' biases are
    checked), BN as the backbone's. ``num_batches_tracked`` is left out.
    """
    rng = np.random.default_rng(spec["seed"])
    out = {}

    def bn(p, c):
        out[f"{p}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        out[f"{p}.bias"] = rng.uniform(-0.5, 0.5, c).astype(np.float32)
        out[f"{p}.running_mean"] = (spec["bn_mean"] * rng.standard_normal(c)).astype(np.float32)
        out[f"{p}.running_var"] = ((spec["bn_std"] * rng.uniform(0.5, 1.5, c)) ** 2).astype(np.float32)

    fe = "feature_extractor."
    for name, cout, cin, k, bn_name in _resnet18_convs():
        std = np.sqrt(2.0 / (k * k * cout))
        out[f"{fe}{name}.weight"] = (std * rng.standard_normal((cout, cin, k, k))).astype(np.float32)
        bn(fe + bn_name, cout)
    out[f"{fe}fc.weight"] = (0.01 * rng.standard_normal((1000, 512))).astype(np.float32)
    out[f"{fe}fc.bias"] = np.zeros(1000, np.float32)
    b = spec["iou_bias"]
    for name, cin, cout, k in spec["iounet_layers"]:
        p = f"bb_regressor.{name}"
        if k == "pred":
            w = spec["pred_gain"] * np.sqrt(2.0 / cin) * rng.standard_normal((cout, cin))
            out[f"{p}.weight"] = w.astype(np.float32)
            out[f"{p}.bias"] = rng.uniform(-b, b, cout).astype(np.float32)
        elif k == 0:
            out[f"{p}.linear.weight"] = (np.sqrt(2.0 / cin) * rng.standard_normal((cout, cin))).astype(np.float32)
            out[f"{p}.linear.bias"] = rng.uniform(-b, b, cout).astype(np.float32)
            bn(f"{p}.bn", cout)
        else:
            std = np.sqrt(2.0 / (cin * k * k))
            out[f"{p}.0.weight"] = (std * rng.standard_normal((cout, cin, k, k))).astype(np.float32)
            out[f"{p}.0.bias"] = rng.uniform(-b, b, cout).astype(np.float32)
            bn(f"{p}.1", cout)
    return out
