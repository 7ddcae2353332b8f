"""VGG-16 as TADT (Li et al., CVPR 2019) uses it: conv1_1 … conv4_3, pool1 and pool2 only.

``relu4_1`` and ``relu4_3`` (512 channels each) both have output stride 4 (pool3 is
skipped): a 180x180 search window gives 45x45 maps. Pooling is MatConvNet's (2x2/2,
bottom/right padding). Input: NHWC RGB, pixel values 0-255. ``normalization``:
``"torchvision"`` (ImageNet mean/std, for the torchvision ``vgg16`` state dict) or
``"matconvnet"`` (``x - 128``, what the official TADT code feeds
``imagenet-vgg-verydeep-16.mat``). Converters: :func:`vgg16_from_torch`,
:func:`vgg16_from_matconvnet`; :func:`load_vgg16_variables` picks by file extension.
Design notes: docs/trackers/backbones.md.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxtrack.models import take_checked

# (name, in, out, torchvision features index) of the 10 convolutions TADT runs.
CONV_LAYERS = (
    ("conv1_1", 3, 64, 0), ("conv1_2", 64, 64, 2),
    ("conv2_1", 64, 128, 5), ("conv2_2", 128, 128, 7),
    ("conv3_1", 128, 256, 10), ("conv3_2", 256, 256, 12), ("conv3_3", 256, 256, 14),
    ("conv4_1", 256, 512, 17), ("conv4_2", 512, 512, 19), ("conv4_3", 512, 512, 21),
)
POOL_AFTER = ("conv1_2", "conv2_2")     # pool3 is dropped: output stride 4
TAPS = ("relu4_1", "relu4_3")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _max_pool_ceil(x):
    """2x2/2 max pooling with bottom/right padding (MatConvNet ``pad [0 1 0 1]``)."""
    h, w = x.shape[1:3]
    pad = ((0, 0), (0, h % 2), (0, w % 2), (0, 0))
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), pad)


class VGG16Features(nn.Module):
    """conv1_1 … relu4_3 of VGG-16 (stride 4); returns ``{"relu4_1": …, "relu4_3": …}``."""
    normalization: str = "torchvision"     # "torchvision" | "matconvnet" | "none"

    @nn.compact
    def __call__(self, x):
        x = jnp.asarray(x, jnp.float32)
        if self.normalization == "torchvision":
            x = (x / 255.0 - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
        elif self.normalization == "matconvnet":
            x = x - 128.0
        elif self.normalization != "none":
            raise ValueError(f"unknown VGG16 normalization {self.normalization!r}")
        out = {}
        for name, _, cout, _ in CONV_LAYERS:
            x = nn.relu(nn.Conv(cout, (3, 3), padding=((1, 1), (1, 1)), name=name)(x))
            relu = "relu" + name[4:]
            if relu in TAPS:
                out[relu] = x
            if name in POOL_AFTER:
                x = _max_pool_ceil(x)
        return out


# --------------------------------------------------------------------------- converters

def vgg16_from_torch(state_dict: dict) -> dict:
    """Flax variables from a torchvision VGG-16 state dict (``features.N.weight/bias``).

    An optional prefix (``module.``, ``backbone.``) is accepted; the classifier and the
    layers after conv4_3 are ignored. A missing key or a wrong shape raises naming it.
    """
    sd = {k: np.asarray(v) for k, v in state_dict.items()}
    stems = [k[: -len("features.0.weight")] for k in sd if k.endswith("features.0.weight")]
    if len(stems) != 1:
        raise KeyError("state dict has no (or several) 'features.0.weight' keys: not a "
                       "torchvision VGG-16")
    prefix = stems[0]
    params = {}
    for name, cin, cout, idx in CONV_LAYERS:
        key = f"{prefix}features.{idx}"
        w = take_checked(sd, f"{key}.weight", (cout, cin, 3, 3), "VGG16")
        b = take_checked(sd, f"{key}.bias", (cout,), "VGG16")
        params[name] = {"kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0)), "bias": b}
    return {"params": params}


def _mat_field(record, *names):
    """The first of ``names`` present in a loadmat struct record (or None)."""
    fields = record.dtype.names or ()
    for n in names:
        if n in fields:
            return record[n]
    return None


def _mat_str(value) -> str:
    return str(np.asarray(value).reshape(-1)[0]) if np.asarray(value).size else ""


def matconvnet_layers(mat: dict) -> dict:
    """``{layer name: (filters [H, W, in, out], biases [out])}`` of the conv layers of a
    MatConvNet SimpleNN ``.mat`` (as ``scipy.io.loadmat`` returns it)."""
    if "layers" not in mat:
        raise KeyError("MatConvNet file has no 'layers' variable (not a SimpleNN network)")
    layers = np.asarray(mat["layers"]).reshape(-1)
    out = {}
    for i, cell in enumerate(layers):
        rec = np.asarray(cell).reshape(-1)[0]
        name = _mat_str(_mat_field(rec, "name"))
        if _mat_str(_mat_field(rec, "type")) != "conv":
            continue
        weights = _mat_field(rec, "weights")
        if weights is not None:
            pair = np.asarray(weights).reshape(-1)
            if pair.size != 2:
                raise ValueError(f"MatConvNet layer {name or i}: 'weights' has {pair.size} "
                                 "entries, expected 2 (filters, biases)")
            f, b = pair[0], pair[1]
        else:
            f, b = _mat_field(rec, "filters"), _mat_field(rec, "biases")
            if f is None or b is None:
                raise KeyError(f"MatConvNet layer {name or i} has neither 'weights' nor "
                               "'filters'/'biases'")
        out[name] = (np.asarray(f, np.float32), np.asarray(b, np.float32).reshape(-1))
    return out


def vgg16_from_matconvnet(path_or_mat) -> dict:
    """Flax variables from ``imagenet-vgg-verydeep-16.mat`` (a path or a loadmat dict).

    MatConvNet filters are ``[H, W, in, out]`` correlation kernels, flax's HWIO layout
    already (TADT-python's converter transposes them to torch's OIHW).
    """
    if isinstance(path_or_mat, dict):
        mat = path_or_mat
    else:
        import scipy.io
        mat = scipy.io.loadmat(str(path_or_mat))
    layers = matconvnet_layers(mat)
    params = {}
    for name, cin, cout, _ in CONV_LAYERS:
        if name not in layers:
            raise KeyError(f"MatConvNet VGG-16 lacks conv layer {name!r} (has {sorted(layers)[:6]}…)")
        f, b = layers[name]
        f = take_checked({"f": f}, "f", (3, 3, cin, cout), "MatConvNet VGG16", shown_key=f"{name} filters")
        b = take_checked({"b": b}, "b", (cout,), "MatConvNet VGG16", shown_key=f"{name} biases")
        params[name] = {"kernel": np.ascontiguousarray(f), "bias": b}
    return {"params": params}


def normalization_for(path: str) -> str:
    """The input normalisation a weights file was trained with: ``.mat`` files are
    MatConvNet's, anything else torchvision's."""
    return "matconvnet" if str(path).endswith(".mat") else "torchvision"


def load_vgg16_variables(path: str) -> tuple[dict, str]:
    """Variables and the matching ``normalization`` from a ``.mat`` or a torch ``.pth``."""
    if normalization_for(path) == "matconvnet":
        return vgg16_from_matconvnet(path), "matconvnet"
    from jaxtrack.formats.torch_pickle import load_state_dict
    return vgg16_from_torch(load_state_dict(path)), "torchvision"
