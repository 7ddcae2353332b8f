"""VGG-M conv1-conv3 as MDNet / DAT use it, and the MatConvNet ``imagenet-vgg-m.mat`` loader.

MDNet's conv part (py-MDNet ``modules/model.py``, unchanged in DAT) on 107x107 patches::

    conv1 7x7/2, 96   -> ReLU -> LRN -> maxpool 3/2     107 -> 51 -> 25
    conv2 5x5/2, 256  -> ReLU -> LRN -> maxpool 3/2      25 -> 11 -> 5
    conv3 3x3/1, 512  -> ReLU                             5 -> 3       (3x3x512 = 4608)

No padding; MDNet's LRN; input RGB 0..255, minus 128. The forward is a pure function of
``{"conv1": {"kernel", "bias"}, ...}`` (kernels HWIO) and takes the rectifier as an
argument (DAT's guided ReLU). :func:`load_vggm_mat` reads ``imagenet-vgg-m.mat``,
:func:`save_vggm_mat` writes the same layout. :func:`conv2d` and :func:`channel_window_sum`
carry their own derivative rules, which keep DAT's second-order attention term on XLA:CPU's
fast paths (docs/speed.md). Design notes: docs/trackers/backbones.md.
"""
from __future__ import annotations

import functools

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


@jax.custom_vjp
def channel_window_sum(v):
    """``sum_{|d|<=2} v_{c+d}`` over the last axis (zero outside), as five shifted slices.

    Its gradient is the same window sum of the cotangent, taken after an optimisation barrier.
    Autodiff's own transpose (five pads) lets XLA:CPU fuse the whole LRN backward into each
    pad, so DAT's second-order attention term evaluated that producer five times per element
    (1.9 s of a 12 s training iteration on 32+32 patches, docs/speed.md).
    """
    c = v.shape[-1]
    padded = jnp.pad(v, ((0, 0),) * (v.ndim - 1) + ((2, 2),))
    return sum(padded[..., i:i + c] for i in range(5))


def _window_sum_fwd(v):
    return channel_window_sum(v), None


def _window_sum_bwd(_, g):
    return (channel_window_sum(lax.optimization_barrier(g)),)


channel_window_sum.defvjp(_window_sum_fwd, _window_sum_bwd)


def lrn(x):
    """MDNet's cross-channel LRN on NHWC: ``x / (2 + 1e-4 * sum_{|d|<=2} x_{c+d}^2)^0.75``."""
    return x / (2.0 + 1e-4 * channel_window_sum(jnp.square(x))) ** 0.75


def window_taps(x, kh: int, kw: int, stride: int, ho: int, wo: int):
    """The ``kh * kw`` strided slices ``[B, ho, wo, C]`` of a VALID window over NHWC ``x``,
    row-major: tap ``(i, j)`` holds each window's element at row ``i``, column ``j``."""
    return [x[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            for i in range(kh) for j in range(kw)]


def maxpool3s2(x):
    """3x3/2 VALID max pooling over 9 strided slices; the gradient goes to the first maximum.

    Each window's value is one of its taps, chosen (row-major, first of equal values) with
    the selection held constant, as PyTorch's ``max_pool2d`` routes gradients (and its
    double backward). Upscaled crops repeat pixels, so equal values in a window are common;
    ``jnp.maximum`` would split their gradient. ``lax.reduce_window`` would do the forward,
    but its second derivative (DAT differentiates the attention gradient) lowers to variadic
    reduce-windows that XLA:CPU compiles for minutes; selects differentiate plainly.
    """
    taps = window_taps(x, 3, 3, 2, (x.shape[1] - 3) // 2 + 1, (x.shape[2] - 3) // 2 + 1)
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


def _conv(x, w, stride):
    return lax.conv_general_dilated(x, w, (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _kernel_grad(x, g, stride: int, kernel_shape):
    """``d <g, conv(x, w)> / d w`` as one dot of the im2col patches of ``x`` with ``g``."""
    kh, kw, cin, cout = kernel_shape
    taps = window_taps(x, kh, kw, stride, g.shape[1], g.shape[2])
    cols = jnp.concatenate(taps, axis=-1).reshape(-1, kh * kw * cin)     # (i, j, c): HWIO's order
    return (cols.T @ g.reshape(-1, cout)).reshape(kernel_shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d(x, w, stride: int):
    """VALID NHWC x HWIO convolution whose derivatives stay on XLA:CPU's fast paths.

    Forward and input gradient are XLA's own. The kernel gradient is an im2col dot: XLA's
    form of it, and of the kernel gradient of the input gradient (DAT's attention term is
    second order), are convolutions with reversed, dilated windows and non-canonical
    dimensions that XLA:CPU runs in its naive loop emitter at 1.5-3 GFLOP/s (8 s of a 12 s
    training iteration on 32+32 patches, docs/speed.md).
    """
    return _conv(x, w, stride)


def _conv2d_fwd(x, w, stride):
    # conv2d, not _conv: under an outer derivative (DAT's second order) the forward must
    # keep these rules too, or the outer transpose falls back to XLA's kernel gradient
    return conv2d(x, w, stride), (x, w)


def _conv2d_bwd(stride, res, g):
    x, w = res
    return conv2d_input_grad(g, w, stride, x.shape), _kernel_grad(x, g, stride, w.shape)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d_input_grad(g, w, stride: int, input_shape):
    """``d <g, conv2d(x, w)> / d x``: XLA's transposed convolution, differentiable in ``g``
    (a forward convolution) and in ``w`` (an im2col dot)."""
    x = jax.ShapeDtypeStruct(input_shape, g.dtype)
    return jax.linear_transpose(lambda v: _conv(v, w, stride), x)(g)[0]


def _input_grad_fwd(g, w, stride, input_shape):
    return conv2d_input_grad(g, w, stride, input_shape), (g, w)


def _input_grad_bwd(stride, input_shape, res, h):
    g, w = res
    return conv2d(h, w, stride), _kernel_grad(h, g, stride, w.shape)


conv2d_input_grad.defvjp(_input_grad_fwd, _input_grad_bwd)


def conv(x, p, stride):
    return conv2d(x, p["kernel"], stride) + p["bias"]


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
