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
