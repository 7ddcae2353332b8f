"""VGG-M conv1-conv3 as MDNet / DAT use it, and the MatConvNet ``imagenet-vgg-m.mat`` loader.

MDNet's conv part (py-MDNet ``modules/model.py``, unchanged in DAT) on 107x107 patches::

    conv1 7x7/2, 96   -> ReLU -> LRN -> maxpool 3/2     107 -> 51 -> 25
    conv2 5x5/2, 256  -> ReLU -> LRN -> maxpool 3/2      25 -> 11 -> 5
    conv3 3x3/1, 512  -> ReLU                             5 -> 3       (3x3x512 = 4608)

No padding; MDNet's LRN; input RGB 0..255, minus 128. The forward is a pure function of
``{"conv1": {"kernel", "bias"}, ...}`` (kernels HWIO) and takes the rectifier as an
argument (DAT's guided ReLU). :func:`load_vggm_mat` reads ``imagenet-vgg-m.mat``,
:func:`save_vggm_mat` writes the same layout. Design notes: docs/trackers/backbones.md.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# name -> (kernel HWIO shape, stride)
VGGM_LAYERS = {
    "conv1": ((7, 7, 3, 96), 2),
    "conv2": ((5, 5, 96, 256), 2),
    "conv3": ((3, 3, 256, 512), 1),
}
INPUT_MEAN = 128.0


def lrn(x):
    """MDNet's cross-channel LRN on NHWC: ``x / (2 + 1e-4 * sum_{|d|<=2} x_{c+d}^2)^0.75``."""
    sq = jnp.pad(jnp.square(x), ((0, 0), (0, 0), (0, 0), (2, 2)))
    c = x.shape[-1]
    s = sum(sq[..., i:i + c] for i in range(5))
    return x / (2.0 + 1e-4 * s) ** 0.75


def maxpool3s2(x):
    """3x3/2 VALID max pooling over 9 strided slices; the gradient goes to the first maximum.

    Each window's value is one of its taps, chosen (row-major, first of equal values) with
    the selection held constant, as PyTorch's ``max_pool2d`` routes gradients (and its
    double backward). Upscaled crops repeat pixels, so equal values in a window are common;
    ``jnp.maximum`` would split their gradient. ``lax.reduce_window`` would do the forward,
    but its second derivative (DAT differentiates the attention gradient) lowers to variadic
    reduce-windows that XLA:CPU compiles for minutes; selects differentiate plainly.
    """
    h, w = (x.shape[1] - 3) // 2 + 1, (x.shape[2] - 3) // 2 + 1
    taps = [x[:, i:i + 2 * (h - 1) + 1:2, j:j + 2 * (w - 1) + 1:2] for i in range(3) for j in range(3)]
    best, idx = taps[0], jnp.zeros(taps[0].shape, jnp.int32)
    for k, tap in enumerate(taps[1:], 1):
        better = tap > best
        best = jnp.where(better, tap, best)
        idx = jnp.where(better, k, idx)
    idx = lax.stop_gradient(idx)
    out = jnp.where(idx == 0, taps[0], 0.0)
    for k, tap in enumerate(taps[1:], 1):
        out = jnp.where(idx == k, tap, out)
    return out


def conv(x, p, stride):
    y = lax.conv_general_dilated(x, p["kernel"], (stride, stride), "VALID",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + p["bias"]


def vggm_features(params, patches, act=jax.nn.relu):
    """conv3 features ``[B, 3, 3, 512]`` of ``[B, 107, 107, 3]`` patches (0..255)."""
    x = jnp.asarray(patches, jnp.float32) - INPUT_MEAN
    x = maxpool3s2(lrn(act(conv(x, params["conv1"], 2))))
    x = maxpool3s2(lrn(act(conv(x, params["conv2"], 2))))
    return act(conv(x, params["conv3"], 1))


def init_vggm(key):
    """Random (seeded) conv1-3, He-normal; for tests and ``allow_random``."""
    params = {}
    for name, (shape, _) in VGGM_LAYERS.items():
        key, sub = jax.random.split(key)
        fan_in = shape[0] * shape[1] * shape[2]
        params[name] = {"kernel": jax.random.normal(sub, shape, jnp.float32) * np.sqrt(2.0 / fan_in),
                        "bias": jnp.zeros((shape[3],), jnp.float32)}
    return params


def _field(struct, name):
    """A field of a loadmat struct element (record array of shape (1, 1) or ())."""
    if struct.dtype.names is None or name not in struct.dtype.names:
        raise KeyError(f"VGG-M .mat layer has no field {name!r} (fields: {struct.dtype.names})")
    v = struct[name]
    while isinstance(v, np.ndarray) and v.dtype == object and v.size == 1:
        v = v.reshape(-1)[0]
    return v


def _as_str(v) -> str:
    v = np.asarray(v)
    return str(v.reshape(-1)[0]) if v.size else ""


def load_vggm_mat(path) -> dict:
    """conv1-conv3 of a MatConvNet ``imagenet-vgg-m.mat`` as ``{name: {"kernel", "bias"}}``.

    Layers are found by name (``conv1``..``conv3``) where the file names them, else as
    py-MDNet does, at cells 0, 4, 8. Shapes are checked; errors name the layer.
    """
    import scipy.io
    mat = scipy.io.loadmat(str(path))
    if "layers" not in mat:
        raise KeyError(f"{path}: no 'layers' cell array (keys: {sorted(k for k in mat if not k.startswith('__'))})")
    cells = [np.asarray(c) for c in np.asarray(mat["layers"]).reshape(-1)]
    by_name = {}
    for i, c in enumerate(cells):
        try:
            by_name[_as_str(_field(c, "name"))] = c
        except KeyError:
            pass
    params = {}
    for k, (name, (shape, _)) in enumerate(VGGM_LAYERS.items()):
        cell = by_name.get(name)
        if cell is None:
            if 4 * k >= len(cells):
                raise KeyError(f"{path}: layer {name} missing ({len(cells)} layers)")
            cell = cells[4 * k]
        w = _field(cell, "weights")
        w = [np.asarray(a) for a in np.asarray(w, dtype=object).reshape(-1)]
        if len(w) != 2:
            raise ValueError(f"{path}: {name}.weights should hold (filters, biases), got {len(w)} arrays")
        kernel, bias = w[0].astype(np.float32), w[1].astype(np.float32).reshape(-1)
        if kernel.shape != shape:
            raise ValueError(f"{path}: {name} filters: expected shape {shape}, got {kernel.shape}")
        if bias.shape != (shape[3],):
            raise ValueError(f"{path}: {name} biases: expected {shape[3]} values, got shape {w[1].shape}")
        # MatConvNet filters are [h, w, in, out] with h = rows: already flax HWIO
        params[name] = {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)}
    return params


def save_vggm_mat(path, params) -> None:
    """Write conv1-3 in MatConvNet's ``layers`` layout (relu/norm/pool cells between)."""
    import scipy.io
    kinds = []
    for i, name in enumerate(VGGM_LAYERS):
        kinds += [(name, "conv")]
        kinds += [(f"relu{i + 1}", "relu")]
        if i < 2:
            kinds += [(f"norm{i + 1}", "lrn"), (f"pool{i + 1}", "pool")]
    cells = np.empty((1, len(kinds)), dtype=object)
    for j, (name, kind) in enumerate(kinds):
        weights = np.empty((1, 0), dtype=object)
        if kind == "conv":
            weights = np.empty((1, 2), dtype=object)
            weights[0, 0] = np.asarray(params[name]["kernel"], np.float32)
            weights[0, 1] = np.asarray(params[name]["bias"], np.float32).reshape(-1, 1)
        cells[0, j] = {"name": name, "type": kind, "weights": weights}
    scipy.io.savemat(str(path), {"layers": cells})
