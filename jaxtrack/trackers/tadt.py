"""TADT, Target-Aware Deep Tracking (Li et al., CVPR 2019).

No offline training: on the first frame, the channels of two frozen backbone taps that
matter for this target are picked by the gradients of a regression loss and a scale
ranking loss; then the target is tracked by cross-correlation of those channels against
a fixed exemplar. Defaults: the official MATLAB code (XinLi-zn/TADT) and its PyTorch port
(ZikunZhou/TADT-python); the code is written from scratch. Backbones: ``vgg16`` (relu4_1 /
relu4_3, the paper's) and ``mobilenet_v2`` (features.10 / features.13); geometry and
channel budget per backbone are in :data:`BACKBONE_DEFAULTS`.

Feature maps are ``[F, F, C]`` with ``F = config.map_size``. Selected channels are
fixed-size index arrays with 0/1 weights, so every target compiles to the same shapes.
Boxes are jaxtrack ``xywh``. Design notes: docs/trackers/tadt.md. ``geometry``,
``regression`` and ``ranking`` = ``"official"`` (the ``official`` variant) compute what
TADT-python computes (docs/fidelity_tadt.md).
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxtrack import models, online, ops, xla_options
from jaxtrack.errors import ConfigError
from jaxtrack.core import Frame, TrackOutput, replace_config

# Eigen's convolutions on XLA:CPU (jaxtrack.xla_options); the boxes were checked unchanged by it
COMPILER_OPTIONS = xla_options.EIGEN_CONVOLUTIONS
SELECTIONS = ("target_aware", "all", "random", "regression", "ranking")
# Where jaxtrack's own choice differs from the official TADT-python, the official one is
# reachable by a field; the defaults ("project") are jaxtrack's (docs/fidelity_tadt.md).
REGRESSIONS = ("project", "official")
RANKINGS = ("project", "official")
GEOMETRIES = ("project", "official")
OFFICIAL_INIT_SCALE = 1e-8             # taf_net.init_weights: randn / (sqrt(C (kh-1)/2 (kw-1)/2) 1e8)


@dataclasses.dataclass(frozen=True)
class TADTConfig:
    backbone: str = "mobilenet_v2"        # "mobilenet_v2" | "vgg16"
    selection: str = "target_aware"       # one of SELECTIONS (ablations)
    vgg_normalization: str = "torchvision"  # set from the weights file (vgg16 only)
    # geometry: target sqrt(w h) range in the rescaled image (pixels), output stride
    min_size: float = 88.0
    max_size: float = 118.0
    total_stride: int = 8
    search_factor: float = 3.0            # search window = factor x max_size (rounded)
    # channel selection
    n_deep: int = 56                      # VGG: 300 of relu4_3
    n_shallow: int = 10                   # VGG: 80 of relu4_1
    min_total: int = 39                   # VGG: 250
    balance_channels: int = 9             # VGG: 50
    label_sigma: float = 0.1              # Gaussian label sigma / exemplar size
    label_alpha: float = 0.2              # exp(-alpha d^2 / sigma^2), as the official code
    # regressor fit as the official code runs it (lr 1e-9 for 100 epochs: the regressor barely
    # moves from ~0, so its weights are the accumulated loss gradients; docs/trackers/tadt.md)
    reg_iters: int = 100                  # SGD steps (fori_loop)
    reg_momentum: float = 0.9
    reg_step: float = 1e-4                # step, in units of 1 / (the loss' curvature bound)
    reg_ridge: float = 0.0                # ridge weight relative to the curvature (official wd: ~0)
    rank_steps: int = 11                  # K: map sizes F + 2k, k = -K..K
    # the official computation (the defaults; "project": jaxtrack's own, docs/fidelity_tadt.md)
    regression: str = "official"          # taf.py's SGD (reg_lr, reg_weight_decay, classic
                                          # momentum, bias, random 1e-8 init), importance = sum of W
    reg_lr: float = 1e-9                  # regression="official": absolute SGD learning rate
    reg_weight_decay: float = 1000.0      # regression="official": SGD weight decay
    ranking: str = "official"             # taf_rank.py's LSEP on a random 1e-8 conv,
                                          # hand-written backward, keep +sum(dL/dX) > 0
    geometry: str = "official"            # the whole frame rescaled (cv2 INTER_LINEAR,
                                          # uint8), integer window, map centre srch/2 - 1, window
                                          # size rounded each frame, no clamps
    max_window: int = 6                   # geometry="official": the window stops growing at this many
                                          # search_px (the official has no limit; compiled map size)
    # matching
    scale_pad: int = 2                    # pyramid: F+2 / F / F-2 cells (45/47, 1, 45/43)
    scale_weights: tuple = (0.99, 1.0, 1.0055)
    window_weight: float = 1.0            # the official adds the unnormalised Hann window
    min_box: float = 4.0                  # box side clamp (pixels)
    # lost: the correlation peak (relative to the exemplar's own) below lost_ratio x its mean
    # over the first lost_reference_frames frames
    lost_ratio: float = 0.5
    lost_reference_frames: int = 5

    def __post_init__(self):
        models.check_backbone("tadt", self.backbone, BACKBONE_DEFAULTS)
        if self.selection not in SELECTIONS:
            raise ConfigError(f"tadt: unknown selection {self.selection!r}; choose from {SELECTIONS}")
        for field, allowed in (("regression", REGRESSIONS), ("ranking", RANKINGS),
                               ("geometry", GEOMETRIES)):
            if getattr(self, field) not in allowed:
                raise ConfigError(f"tadt: unknown {field} {getattr(self, field)!r}; choose from {allowed}")
        if self.max_window < 1:
            raise ConfigError("tadt: max_window must be at least 1 (search windows)")
        if len(self.scale_weights) != 3 or self.scale_pad % 2 or self.map_size <= self.scale_pad:
            raise ConfigError("tadt: scale_weights needs 3 entries and scale_pad an even number "
                             "smaller than the feature map")
    @property
    def search_px(self) -> int:
        """Search window input size: ``factor * max_size`` rounded up to ``s (2k + 1)``."""
        s = self.total_stride
        sz = int(np.ceil(self.search_factor * self.max_size))
        return sz + 2 * s - (sz - s) % (2 * s)

    @property
    def map_size(self) -> int:
        return self.search_px // self.total_stride


BACKBONE_DEFAULTS = {
    "mobilenet_v2": dict(min_size=88.0, max_size=118.0, total_stride=8, n_deep=56,
                         n_shallow=10, min_total=39, balance_channels=9),
    "vgg16": dict(min_size=44.0, max_size=59.0, total_stride=4, n_deep=300,
                  n_shallow=80, min_total=250, balance_channels=50),
}
MNV2_TAP_BLOCKS = (10, 13)             # (shallow, deep) features.<i>
Config = TADTConfig


class TADTState(NamedTuple):
    center: Any        # (2,) cx, cy in frame pixels
    target_size: Any   # (2,) w, h
    x_side: Any        # () search window side in frame pixels
    fill: Any          # (3,) mean colour of the first frame (crop padding)
    template: Any      # [F, F, Csel] selected exemplar features, zero outside the exemplar
    valid: Any         # [F, F] response positions where the exemplar fits
    idx_shallow: Any   # [Ns] int32 selected channels of the shallow tap
    idx_deep: Any      # [Nd] int32 selected channels of the deep tap
    w_shallow: Any     # [Ns] validity x balance weight
    w_deep: Any        # [Nd] validity (0/1)
    frame_index: Any   # () int32
    peak_sum: Any      # () sum of the relative correlation peaks of the first frames
    # geometry="official" only (otherwise the first centre and 1, unused): the window's centre,
    # which the official code floors on the first frame, and the frame's rescale factor. In that geometry
    # center, target_size and x_side are in the rescaled frame's pixels (0-based centres,
    # the official convention) and x_side is the integer window size.
    crop_center: Any   # (2,)
    rescale: Any       # ()


# ------------------------------------------------------------------- backbone

def backbone_module(config: TADTConfig):
    if config.backbone == "mobilenet_v2":
        return models.backbone("mobilenet_v2", taps=MNV2_TAP_BLOCKS, dilate_after_stride8=True)
    return models.backbone("vgg16", normalization=config.vgg_normalization)


def extract(config: TADTConfig, params, images):
    """(shallow, deep) tap features of [B, H, W, 3] crops (0-255 RGB)."""
    out = backbone_module(config).apply(params["backbone"], images)
    if config.backbone == "mobilenet_v2":
        return out[MNV2_TAP_BLOCKS[0]], out[MNV2_TAP_BLOCKS[1]]
    return out["relu4_1"], out["relu4_3"]


# ------------------------------------------------------------------- correlation

def _fft_size(f: int) -> int:
    """FFT length for "same" correlation of F-maps with kernels centred at (F-1)/2."""
    n = f + (f - 1) // 2 + 1
    return int(-(-n // 8) * 8)


def corr_same(x, w):
    """``out[p] = sum_q w[q] x[p + q - c]`` (zeros outside ``x``), ``c = (F-1)/2``.

    x: [..., F, F, C] maps; w: [F, F, C] a kernel centred at the map centre (zero where
    unused, so one shape serves every exemplar size). Returns [..., F, F]. Via FFT:
    a large kernel on a small map, and no grouped/vmapped convolutions on XLA:CPU.
    """
    return corr_same_fft(spectrum(x), w)


def spectrum(x):
    """``rfft2`` of [..., F, F, C] maps, zero-padded to P, channels first: [..., C, P, P/2+1]
    (XLA:CPU's FFT is faster over the trailing axes)."""
    p = _fft_size(x.shape[-2])
    return jnp.fft.rfft2(jnp.moveaxis(x, -1, -3), s=(p, p))


def corr_same_fft(xf, w):
    """:func:`corr_same` with the maps' :func:`spectrum` precomputed."""
    f = w.shape[0]
    c = (f - 1) // 2
    p = _fft_size(f)
    wc = jnp.roll(jnp.pad(jnp.moveaxis(w, -1, 0), ((0, 0), (0, p - f), (0, p - f))), (-c, -c), axis=(1, 2))
    wf = jnp.fft.rfft2(wc)
    out = jnp.fft.irfft2(jnp.sum(xf * jnp.conj(wf), axis=-3), s=(p, p))
    return out[..., :f, :f]


def resize_matrix(f: int, n: int) -> np.ndarray:
    """[F, F] linear map: resize an F-vector to n samples (half-pixel centres, edges
    clamped), then centre-crop (n > F) or zero-pad (n < F) back to F; n - F even.

    Resizing a map is then two small matmuls (one einsum for a whole stack of sizes),
    which compiles and runs faster than a stack of ``jax.image.resize`` calls.
    """
    src = (np.arange(n) + 0.5) * f / n - 0.5
    i0 = np.floor(src).astype(int)
    frac = src - i0
    m = np.zeros((n, f), np.float32)
    np.add.at(m, (np.arange(n), np.clip(i0, 0, f - 1)), 1 - frac)
    np.add.at(m, (np.arange(n), np.clip(i0 + 1, 0, f - 1)), frac)
    b = (n - f) // 2
    if b >= 0:
        return m[b:b + f]
    out = np.zeros((f, f), np.float32)
    out[-b:-b + n] = m
    return out


def resize_stack(x, sizes):
    """[len(sizes), F, F, C]: ``x`` [F, F, C] resized to each size, re-centred on F."""
    f = x.shape[0]
    m = jnp.asarray(np.stack([resize_matrix(f, n) for n in sizes]))
    return jnp.einsum("kai,kbj,ijc->kabc", m, m, x)


def box_mask(f: int, half_h, half_w):
    """[F, F] 1.0 where ``|i - c| <= half_h`` and ``|j - c| <= half_w`` (c the centre)."""
    d = jnp.abs(jnp.arange(f) - (f - 1) // 2)
    return ((d[:, None] <= half_h) & (d[None, :] <= half_w)).astype(jnp.float32)


def exemplar_halves(config: TADTConfig, target_size, x_side):
    """Half sizes (h, w) in cells of the odd exemplar ``2 floor(t / 2) + 1`` (gene_feat_patch.m)."""
    f = config.map_size
    cells = target_size * f / x_side                                   # (w, h) in cells
    half = jnp.clip(jnp.floor(cells / 2), 0, (f - 1) // 2).astype(jnp.int32)
    return half[1], half[0]


# ------------------------------------------------------------------- regression

def gaussian_label(config: TADTConfig, half_h, half_w):
    """``exp(-alpha (dy^2 / sy^2 + dx^2 / sx^2))``, sigma = 0.1 x exemplar size, at the centre."""
    f = config.map_size
    d = jnp.arange(f, dtype=jnp.float32) - (f - 1) // 2
    sy = config.label_sigma * (2 * half_h + 1).astype(jnp.float32)
    sx = config.label_sigma * (2 * half_w + 1).astype(jnp.float32)
    return jnp.exp(-config.label_alpha * ((d[:, None] / sy) ** 2 + (d[None, :] / sx) ** 2))


def regression_loss(w, x, label, kmask, ridge, xf=None):
    """Mean squared error of the conv regressor's "same" output plus the ridge term
    (``xf``: the spectrum of ``x``, if already computed)."""
    wm = w * kmask[..., None]
    pred = corr_same(x, wm) if xf is None else corr_same_fft(xf, wm)
    return jnp.mean((pred - label) ** 2) + ridge * jnp.sum((w * kmask[..., None]) ** 2)


def fit_regressor(config: TADTConfig, x, label, kmask):
    """Ridge regression by gradient descent with momentum (``lax.fori_loop``), from 0.

    Returns (w, ridge). The step is ``reg_step / L`` with ``L`` the curvature bound, so
    the fit does not depend on the backbone's feature scale.
    """
    f = x.shape[0]
    xf = spectrum(x)
    lip = 2.0 * jnp.max(jnp.sum(jnp.abs(xf) ** 2, axis=0)) / (f * f)
    ridge = 0.5 * config.reg_ridge * lip
    step = config.reg_step / (lip * (1.0 + config.reg_ridge))
    grad = jax.grad(regression_loss)

    def body(_, carry):
        w, v = carry
        g = grad(w + config.reg_momentum * v, x, label, kmask, ridge, xf)     # Nesterov
        v = config.reg_momentum * v - step * g
        return w + v, v

    w0 = jnp.zeros(x.shape, jnp.float32)
    w, _ = jax.lax.fori_loop(0, config.reg_iters, body, (w0, w0))
    return w, ridge


def regression_importance(config: TADTConfig, x, half_h, half_w):
    """Per-channel ``-GAP(dL/dX)`` of the regressor's loss (the paper's importance), ``[C]``.

    ``x``: one tap's search map ``[F, F, C]``; ``half_h``, ``half_w``: the exemplar's half
    sizes in cells. The regressor is fitted far from convergence, as the official code
    does (docs/trackers/tadt.md explains why that matters).
    """
    label = gaussian_label(config, half_h, half_w)
    # regressor kernel (2 ceil(h/2) + 1) = exemplar + 2 for odd exemplars (TAF_net_init.m)
    kmask = box_mask(config.map_size, half_h + 1, half_w + 1)
    w, ridge = fit_regressor(config, x, label, kmask)
    w = jax.lax.stop_gradient(w)
    gx = jax.grad(lambda x_: regression_loss(w, x_, label, kmask, ridge))(x)
    return -jnp.mean(gx, axis=(0, 1))


def official_init_weights(key, config: TADTConfig, c: int, half_h, half_w):
    """[F, F, C] the official conv's random start, ``randn / (sqrt(C (kh-1)/2 (kw-1)/2) 1e8)``
    over the (kh, kw) = (2 ceil(h/2) + 1, ...) kernel centred on the map, zero elsewhere
    (taf_net.init_weights; the draw is JAX's, from ``key``)."""
    f = config.map_size
    kmask = box_mask(f, half_h + 1, half_w + 1)
    scale = OFFICIAL_INIT_SCALE / jnp.sqrt(c * (half_h + 1.0) * (half_w + 1.0))
    return jax.random.normal(key, (f, f, c), jnp.float32) * scale * kmask[..., None]


def official_keys(key):
    """The keys of the official random draws: the rank net, the shallow and the deep
    regressor's start (``jax.random.fold_in`` of the ``init`` key)."""
    return {"rank": jax.random.fold_in(key, 1), "reg_shallow": jax.random.fold_in(key, 2),
            "reg_deep": jax.random.fold_in(key, 3)}


def official_regression_importance(config: TADTConfig, x, half_h, half_w, key):
    """``regression="official"``: taf.py's regressor and importance, ``[C]``.

    A conv (with bias) of the (2 ceil(h/2) + 1)-cell kernel, "same" output, started from
    :func:`official_init_weights`, trained ``reg_iters`` steps by PyTorch's SGD (absolute
    ``reg_lr``, classic momentum ``reg_momentum``, ``reg_weight_decay``) on the mean squared
    error to the Gaussian label; the importance of channel c is the sum of its trained
    weights (``torch.sum(reg_weights, dim=(0, 2, 3))``).
    """
    f, c = config.map_size, x.shape[-1]
    label = gaussian_label(config, half_h, half_w)
    kmask = box_mask(f, half_h + 1, half_w + 1)[..., None]
    xf = spectrum(x)

    def loss(wb):
        w, b = wb
        return jnp.mean((corr_same_fft(xf, w * kmask) + b - label) ** 2)

    grad = jax.grad(loss)
    lr, m, wd = config.reg_lr, config.reg_momentum, config.reg_weight_decay

    def body(_, carry):
        wb, buf = carry
        g = jax.tree_util.tree_map(lambda gi, p: gi + wd * p, grad(wb), wb)     # d_p = grad + wd p
        buf = jax.tree_util.tree_map(lambda bi, gi: m * bi + gi, buf, g)        # buf = m buf + d_p
        wb = jax.tree_util.tree_map(lambda p, bi: p - lr * bi, wb, buf)         # p -= lr buf
        return wb, buf

    w0 = official_init_weights(key, config, c, half_h, half_w)
    wb0 = (w0, jnp.zeros((), jnp.float32))
    zeros = jax.tree_util.tree_map(jnp.zeros_like, wb0)
    (w, _), _ = jax.lax.fori_loop(0, config.reg_iters, body, (wb0, zeros))
    return jnp.sum(w * kmask, axis=(0, 1))


# ------------------------------------------------------------------- ranking

def scale_samples(config: TADTConfig, x):
    """The map resized to ``F + 2k`` cells, re-centred on an F grid: [2K+1, F, F, C], and
    each sample's scale ratio ``(F + 2k) / F``."""
    f = config.map_size
    kmax = min(config.rank_steps, (f - 1) // 2)
    sizes = [f + 2 * k for k in range(-kmax, kmax + 1)]
    return resize_stack(x, sizes), np.asarray(sizes, np.float32) / f


def rank_pairs(ratios: np.ndarray) -> np.ndarray:
    """(hi, lo) index pairs: each sample against its outer neighbour (generate_pair_label.m).

    Samples are ordered by scale; overlap with the target, ``min(r, 1/r)^2``, falls away
    from ``r = 1`` on both sides, so neighbours chained outwards are correctly ranked pairs.
    """
    iou = np.minimum(ratios, 1 / ratios) ** 2
    mid = int(np.argmax(iou))
    pairs = [(i, i + 1) for i in range(mid, len(ratios) - 1)] + [(i, i - 1) for i in range(mid, 0, -1)]
    pairs = np.asarray(pairs, np.int32)
    assert np.all(iou[pairs[:, 0]] > iou[pairs[:, 1]])
    return pairs


def ranking_loss(config: TADTConfig, x, pmask):
    """Smooth pairwise ranking loss of the exemplar's correlation with its rescaled copies."""
    samples, ratios = scale_samples(config, x)
    pairs = rank_pairs(ratios)
    template = x * pmask[..., None]
    scores = jnp.einsum("khwc,hwc->k", samples * pmask[..., None], template)
    scores = scores / jax.lax.stop_gradient(jnp.sum(template ** 2) + 1e-12)
    hi, lo = scores[pairs[:, 0]], scores[pairs[:, 1]]
    return jnp.mean(jax.nn.softplus(lo - hi))


def ranking_importance(config: TADTConfig, x, half_h, half_w):
    """Per-channel ``-sum_xy X dL/dX`` of the ranking loss (``jax.grad`` w.r.t. the features)."""
    pmask = box_mask(config.map_size, half_h, half_w)
    gx = jax.grad(lambda x_: ranking_loss(config, x_, pmask))(x)
    return -jnp.sum(x * gx, axis=(0, 1))


def _official_rank_matrices(f: int):
    """[2K+1, F, F] taf_rank.generate_ranked_samples' sampling, K = (F-1)/2 - 1: the map
    resized to ``s = F + 2k`` cells (bilinear, ``align_corners=True``), read on an F grid
    centred on the resized map's centre (rows beyond the resized map are zero)."""
    c = (f - 1) // 2
    kmax = c - 1
    out = []
    for k in range(-kmax, kmax + 1):
        s = f + 2 * k
        scale = np.float32((f - 1) / (s - 1))               # torch: (in - 1) / (out - 1), float
        m = np.zeros((f, f), np.float32)
        for y in range(f):
            j = y - c + (s - 1) // 2                          # index in the resized map
            if 0 <= j < s:
                src = np.float32(scale * np.float32(j))
                i0 = int(src)
                i1 = i0 + (1 if i0 < f - 1 else 0)
                l1 = np.float32(src - np.float32(i0))
                m[y, i0] += np.float32(1) - l1
                m[y, i1] += l1
        out.append(m)
    return np.stack(out), np.arange(-kmax, kmax + 1)


def official_ranking_importance(config: TADTConfig, x, half_h, half_w, key):
    """``ranking="official"``: taf_rank.py's scale-ranking importance, ``[C]`` (and a dict of
    the intermediate values).

    - Samples: the map resized to ``F + 2k`` cells, ``|k| <= (F-1)/2 - max(b)`` with ``b``
      the half kernel (``generate_ranked_samples``), centre-cropped to the kernel.
    - Predictions ``f_k``: a random conv (:func:`official_init_weights`, the kernel size)
      over each sample (``Rank_Net``, never trained; bias 0).
    - Loss: LSEP, ``log(1 + sum_pairs exp(f_lo - f_hi))`` over every pair of samples at
      distance 1 .. K-1 on one side of the centre (``generate_pair_label``).
    - Gradient: RankLoss.backward, the official hand-written one: its loop runs over the
      first N-1 pairs only (the neighbours), ``dL/df_k = -(1/L) sum [k = hi] exp(-f_k) -
      [k = lo] exp(f_k)``.
    - Importance: ``sum_xy dL/dX_c``. Bilinear weights sum to one, so every sample position
      spreads a total weight of 1 over X and this is exactly ``G sum_xy W_c`` with
      ``G = sum_k dL/df_k``: the sign of the random weights' sum, flipped by the sign of
      ``G`` (which the ~1e-7-sized predictions set). It is computed so, free of the float32
      cancellation of the official backward (a ~3 % noise there; docs/fidelity_tadt.md).
    """
    f, c = config.map_size, x.shape[-1]
    mats, offs = _official_rank_matrices(f)
    w = official_init_weights(key, config, c, half_h, half_w)
    pad = (f - 1) // 2 - (jnp.maximum(half_h, half_w) + 1)       # the samples kept each side
    valid = jnp.abs(jnp.asarray(offs)) <= pad
    pred = jax.lax.map(lambda m: jnp.sum(jnp.einsum("yi,xj,ijc->yxc", m, m, x) * w),
                       jnp.asarray(mats))
    o = jnp.asarray(offs)
    # LSEP over the pairs (hi, lo): same side, |lo| = |hi| + d, 1 <= d <= pad - 1
    hi_o, lo_o = o[:, None], o[None, :]
    same_side = (hi_o == 0) | (jnp.sign(hi_o) == jnp.sign(lo_o))
    dist = jnp.abs(lo_o) - jnp.abs(hi_o)
    pairs = valid[:, None] & valid[None, :] & same_side & (dist >= 1) & (dist <= pad - 1)
    diff = pred[None, :] - pred[:, None]                           # f_lo - f_hi
    loss = jnp.log(1.0 + jnp.sum(jnp.where(pairs, jnp.exp(diff), 0.0)))
    # hand-written backward over the neighbour pairs: hi twice at the centre, once inside;
    # lo once for every sample but the centre
    n_hi = jnp.where(o == 0, 2.0, jnp.where(jnp.abs(o) <= pad - 1, 1.0, 0.0)) * valid
    n_lo = jnp.where(o == 0, 0.0, 1.0) * valid
    tmp = n_hi * jnp.exp(-pred) - n_lo * jnp.exp(pred)
    dpred = (-1.0 / loss) * tmp
    g = jnp.sum(dpred)
    importance = g * jnp.sum(w, axis=(0, 1))
    return importance, {"pred": pred, "valid": valid, "loss": loss, "dpred": dpred, "G": g,
                        "w": w}


# ------------------------------------------------------------------- selection

def _ordered(importance, eligible):
    """Channel indices by decreasing importance (ineligible ones last) and the count of
    eligible channels with positive importance."""
    key = jnp.where(eligible, importance, -jnp.inf)
    order = jnp.argsort(-key)
    return order.astype(jnp.int32), jnp.sum(eligible & (importance > 0))


def balance_weight(config: TADTConfig, xs, xd, order_s, order_d):
    """``max_xy sum_{top B} X_deep / max_xy sum_{top B} X_shallow`` (TAF_model.m)."""
    b = config.balance_channels
    top_s = jnp.max(jnp.sum(jnp.take(xs, order_s[:b], axis=-1), -1))
    top_d = jnp.max(jnp.sum(jnp.take(xd, order_d[:b], axis=-1), -1))
    return jnp.where(top_s > 1e-6, top_d / jnp.maximum(top_s, 1e-6), 1.0)


def select_channels(config: TADTConfig, xs, xd, half_h, half_w, key):
    """Indices and weights ``(idx_s, w_s, idx_d, w_d)`` of the selected channels, plus the
    importances (a dict) for inspection."""
    cs, cd = xs.shape[-1], xd.shape[-1]
    keys = official_keys(key) if "official" in (config.regression, config.ranking) else None
    if config.regression == "official":
        reg_s = official_regression_importance(config, xs, half_h, half_w, keys["reg_shallow"])
        reg_d = official_regression_importance(config, xd, half_h, half_w, keys["reg_deep"])
    else:
        reg_s = regression_importance(config, xs, half_h, half_w)
        reg_d = regression_importance(config, xd, half_h, half_w)

    def rank(x):
        if config.ranking == "official":
            return official_ranking_importance(config, x, half_h, half_w, keys["rank"])[0]
        return ranking_importance(config, x, half_h, half_w)

    rank_s = rank(xs)
    info = {"reg_shallow": reg_s, "reg_deep": reg_d, "rank_shallow": rank_s}
    n_s = min(config.n_shallow, cs)
    n_d_alloc = min(cd, max(config.n_deep, config.min_total))

    order_rd, pos_rd = _ordered(reg_d, jnp.ones(cd, bool))
    order_rs, _ = _ordered(reg_s, jnp.ones(cs, bool))
    order_d = order_rd
    # target-aware (taf.py): the shallow tap's top n_shallow channels by regression, kept
    # where both the regression and the ranking importance are positive
    order_s, keep_s = order_rs, (reg_s > 0) & (rank_s > 0)
    if config.selection == "regression":
        keep_s = reg_s > 0
    elif config.selection == "ranking":
        rank_d = rank(xd)
        info["rank_deep"] = rank_d
        order_s, keep_s = _ordered(rank_s, jnp.ones(cs, bool))[0], rank_s > 0
        order_d, pos_rd = _ordered(rank_d, jnp.ones(cd, bool))
    keep_s = jnp.take(keep_s, order_s[:n_s])
    count_s = jnp.sum(keep_s)
    # deep: the top n_deep positive ones, topped up to min_total in importance order
    count_d = jnp.minimum(jnp.maximum(jnp.minimum(pos_rd, config.n_deep),
                                      config.min_total - count_s), n_d_alloc)
    balance = balance_weight(config, xs, xd, order_rs, order_rd)

    if config.selection == "all":
        idx_s, idx_d = jnp.arange(cs, dtype=jnp.int32), jnp.arange(cd, dtype=jnp.int32)
        w_s, w_d = jnp.full((cs,), balance), jnp.ones((cd,))
        return idx_s, w_s, idx_d, w_d, info
    if config.selection == "random":      # same counts as target_aware, random channels
        ks, kd = jax.random.split(key)
        order_s = jax.random.permutation(ks, cs).astype(jnp.int32)
        order_d = jax.random.permutation(kd, cd).astype(jnp.int32)
    idx_s, idx_d = order_s[:n_s], order_d[:n_d_alloc]
    # random: as many shallow channels as target-aware keeps, the first ones of the permutation
    kept_s = (jnp.arange(n_s) < count_s) if config.selection == "random" else keep_s
    w_s = kept_s.astype(jnp.float32) * balance
    w_d = (jnp.arange(n_d_alloc) < count_d).astype(jnp.float32)
    return idx_s, w_s, idx_d, w_d, info


def selected_features(xs, xd, idx_s, w_s, idx_d, w_d):
    """[..., F, F, Ns + Nd] the selected, weighted channels of both taps."""
    return jnp.concatenate([jnp.take(xs, idx_s, axis=-1) * w_s,
                            jnp.take(xd, idx_d, axis=-1) * w_d], axis=-1)


# ------------------------------------------------------------------- official geometry

def round_half_up(v):
    """TADT-python's ``round_python2`` for non-negative values: halves round up."""
    return jnp.floor(v + 0.5)


def official_crop(config: TADTConfig, frame: Frame, rescale, crop_center, side):
    """``[S, S, 3]`` the official search window: the frame resized by ``rescale`` to
    ``ceil(size * rescale)`` (cv2 INTER_LINEAR, uint8), the ``side x side`` pixels at
    ``floor(c) + 1 - ceil(side/2) + j`` (indices clamped: edges repeated), resized to
    S = ``search_px`` (cv2 INTER_LINEAR, uint8); get_subwindow in feature_utils_v2.py.

    Both resizes are OpenCV's fixed-point arithmetic, bit for bit (11-bit weights, the
    vector vertical pass), so the window is the official uint8 one.
    """
    out = config.search_px
    h, w = frame.size[0], frame.size[1]
    rh = jnp.ceil(h.astype(jnp.float32) * rescale).astype(jnp.int32)
    rw = jnp.ceil(w.astype(jnp.float32) * rescale).astype(jnp.int32)
    side_i = side.astype(jnp.int32)
    u = jnp.arange(out)
    image = frame.image.astype(jnp.int32)

    def axis(n_res, pos, clamp_frac):
        # output -> window pixels (second resize), window -> rescaled frame (clamped)
        q0, q1, b0, b1 = ops.cv2_linear_taps(side_i, out, u, clamp_frac)
        first = jnp.floor(pos).astype(jnp.int32) + 1 - (side_i + 1) // 2
        r = jnp.clip(first + jnp.stack([q0, q1], -1), 0, n_res - 1)      # [S, 2]
        return (b0, b1), r

    (bx0, bx1), rx = axis(rw, crop_center[0], True)
    (by0, by1), ry = axis(rh, crop_center[1], False)
    ix0, ix1, ax0, ax1 = ops.cv2_linear_taps(w, rw, rx, clamp_weights=True)       # [S, 2] each
    iy0, iy1, ay0, ay1 = ops.cv2_linear_taps(h, rh, ry, clamp_weights=False)
    # first resize, at the [S, 2] x [S, 2] rescaled pixels the second one reads
    rows = jnp.stack([jnp.take(image, iy0, axis=0), jnp.take(image, iy1, axis=0)])  # [2, S, 2, Wb, 3]
    hx = (jnp.take(rows, ix0, axis=3) * ax0[..., None] +
          jnp.take(rows, ix1, axis=3) * ax1[..., None])                   # [2, S, 2, S, 2, 3]
    v1 = ops.cv2_vertical(hx[0], hx[1], ay0[:, :, None, None, None], ay1[:, :, None, None, None])
    # second resize: [S, 2, S, 2, 3] -> [S, S, 3]
    h2 = v1[:, :, :, 0] * bx0[None, None, :, None] + v1[:, :, :, 1] * bx1[None, None, :, None]
    crop = ops.cv2_vertical(h2[:, 0], h2[:, 1], by0[:, None, None], by1[:, None, None])
    return crop.astype(jnp.float32)


def _cubic_weights(t, a: float = -0.75):
    """PyTorch's ``get_cubic_upsample_coefficients``: the four taps at offsets -1, 0, 1, 2."""
    def near(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return jnp.stack([far(t + 1), near(t), near(1 - t), far(2 - t)])


def window_cap(config: TADTConfig) -> int:
    """The largest window side the official geometry compiles for: ``max_window search_px``."""
    return config.max_window * config.search_px


def official_upsample(config: TADTConfig, maps, size, cap: int | None = None):
    """``[3, U, U]`` the maps resized to ``size x size`` (``F.interpolate(bicubic,
    align_corners=True)``, float32 positions as PyTorch's kernel), U = ``cap`` (default
    :func:`window_cap`); rows and columns at or beyond ``size`` are zero (``inside`` says
    which). Entries below ``size`` are the same for any ``cap >= size`` up to float rounding
    (XLA's dot may sum in another order at another size: 1e-7 relative)."""
    f = maps.shape[-1]
    cap = cap or window_cap(config)
    n = jnp.minimum(size, window_cap(config)).astype(jnp.int32)
    i = jnp.arange(cap)
    scale = jnp.float32(f - 1) / jnp.maximum(n - 1, 1).astype(jnp.float32)
    src = scale * i.astype(jnp.float32)
    i0 = jnp.floor(src)
    wts = _cubic_weights(src - i0)                                       # [4, U]
    idx = jnp.clip(i0.astype(jnp.int32)[None, :] + jnp.arange(-1, 3)[:, None], 0, f - 1)
    m = jnp.zeros((cap, f), jnp.float32).at[i[None, :], idx].add(wts)   # [U, F]
    inside = i < n
    m = m * inside[:, None]
    up = jnp.einsum("ai,kij,bj->kab", m, maps, m)
    return up, inside[:, None] & inside[None, :]


def official_hann(config: TADTConfig, size, cap: int | None = None):
    """[U, U] ``outer(hann(size), hann(size))`` (scipy, ``sym=True``), zero beyond ``size``;
    U = ``cap`` (default :func:`window_cap`)."""
    cap = cap or window_cap(config)
    n = jnp.minimum(size, window_cap(config)).astype(jnp.float32)
    i = jnp.arange(cap, dtype=jnp.float32)
    h = jnp.where(i < n, 0.5 - 0.5 * jnp.cos(2 * jnp.pi * i / jnp.maximum(n - 1, 1.0)), 0.0)
    return h[:, None] * h[None, :]


def _official_init_geometry(config: TADTConfig, frame: Frame, box):
    """Rescale, the rescaled box (rounded, 0-based), the window size and its (floored) centre:
    Tadt_Tracker.initialize_tadt and cal_srch_window_location."""
    s0 = jnp.sqrt(box[2] * box[3])
    rescale = jnp.where(s0 > config.max_size, config.max_size / s0,
                        jnp.where(s0 < config.min_size, config.min_size / s0, 1.0))
    # the official takes OTB's 1-based box: round(box1 * rescale) - [1, 1, 0, 0]
    box1 = box + jnp.asarray([1.0, 1.0, 0.0, 0.0])
    loc = round_half_up(box1 * rescale) - jnp.asarray([1.0, 1.0, 0.0, 0.0])
    target_size = loc[2:]
    center = loc[:2] + target_size / 2
    side = jnp.float32(config.search_px)
    crop_center = jnp.floor(center - side / 2) + side / 2
    return rescale, center, target_size, side, crop_center


def _official_box(state: TADTState):
    """The official result: ``(target_location + [1, 1, 0, 0]) / rescale - [1, 1, 0, 0]``."""
    tl = state.center - state.target_size / 2
    return jnp.concatenate([(tl + 1.0) / state.rescale - 1.0, state.target_size / state.rescale])


# ------------------------------------------------------------------- tracking

def _initial_side(config: TADTConfig, target_size):
    """Search window side in frame pixels: search_px / rescale (tadt_tracking.m)."""
    s0 = jnp.sqrt(jnp.prod(target_size))
    rescale = jnp.where(s0 > config.max_size, config.max_size / s0,
                        jnp.where(s0 < config.min_size, config.min_size / s0, 1.0))
    return config.search_px / rescale


def _search_features(config: TADTConfig, params, frame: Frame, center, x_side, fill):
    crop = ops.crop_patch(frame.image, frame.size, center, x_side, config.search_px, fill)
    xs, xd = extract(config, params, crop[None])
    return xs[0], xd[0]


def init(config: TADTConfig, params, frame: Frame, box, key=None) -> TADTState:
    """Select the target-aware channels on the first frame and store the exemplar."""
    if key is None:
        key = jax.random.PRNGKey(0)
    box = jnp.asarray(box, jnp.float32)
    fill = ops.valid_mean_color(frame.image, frame.size)
    if config.geometry == "official":
        rescale, center, target_size, x_side, crop_center = _official_init_geometry(config, frame, box)
        crop = official_crop(config, frame, rescale, crop_center, x_side)
        xs, xd = (t[0] for t in extract(config, params, crop[None]))
    else:
        center = box[:2] + box[2:] / 2
        target_size = box[2:]
        x_side = _initial_side(config, target_size)
        crop_center, rescale = center, jnp.ones((), jnp.float32)
        xs, xd = _search_features(config, params, frame, center, x_side, fill)
    half_h, half_w = exemplar_halves(config, target_size, x_side)
    idx_s, w_s, idx_d, w_d, _ = select_channels(config, xs, xd, half_h, half_w, key)
    f = config.map_size
    pmask = box_mask(f, half_h, half_w)
    template = selected_features(xs, xd, idx_s, w_s, idx_d, w_d) * pmask[..., None]
    valid = box_mask(f, (f - 1) // 2 - half_h, (f - 1) // 2 - half_w)
    return TADTState(center, target_size, x_side, fill, template, valid, idx_s, idx_d,
                     w_s, w_d, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32),
                     crop_center, rescale)


def scale_pyramid(config: TADTConfig, feats):
    """[S, F, F, C]: the map resized to F+pad (centre crop), F, F-pad (zero pad)."""
    f, p = config.map_size, config.scale_pad
    return resize_stack(feats, [f + p, f, f - p])


def scales(config: TADTConfig) -> np.ndarray:
    f, p = config.map_size, config.scale_pad
    return np.asarray([f / (f + p), 1.0, f / (f - p)], np.float32)


def response_maps(config: TADTConfig, state: TADTState, feats):
    """[3, F, F] correlation responses of the scale pyramid, normalised by their maximum, and
    that maximum relative to the exemplar's correlation with itself."""
    r = corr_same(scale_pyramid(config, feats), state.template) * state.valid
    peak = jnp.max(r)
    return r / (peak + 1e-12), peak / (jnp.sum(state.template ** 2) + 1e-12)


def track_step(config: TADTConfig, params, state: TADTState, frame: Frame):
    if config.geometry == "official":
        return _official_track_step(config, params, state, frame)
    xs, xd = _search_features(config, params, frame, state.center, state.x_side, state.fill)
    feats = selected_features(xs, xd, state.idx_shallow, state.w_shallow, state.idx_deep,
                              state.w_deep)
    resp, relative_peak = response_maps(config, state, feats)
    up = config.search_px
    resp = ops.resize_bicubic(resp, (up, up), align_corners=True)     # the official F.interpolate
    resp = resp + config.window_weight * jnp.asarray(ops.hann_window(up, normalize=False))
    sc = jnp.asarray(scales(config))
    best = jnp.argmax(jnp.max(resp, axis=(1, 2)) * jnp.asarray(config.scale_weights, jnp.float32))
    loc = jnp.unravel_index(jnp.argmax(resp[best]), (up, up))              # (row, col)
    disp = jnp.stack([loc[1], loc[0]]).astype(jnp.float32) - (up - 1) / 2
    disp = disp * state.x_side / up * sc[best]

    height, width = frame.size[0].astype(jnp.float32), frame.size[1].astype(jnp.float32)
    center = jnp.clip(state.center + disp, 0.0, jnp.stack([width, height]))
    target_size = jnp.clip(state.target_size * sc[best], config.min_box, jnp.stack([width, height]))
    actual = jnp.sqrt(jnp.prod(target_size) / jnp.prod(state.target_size))
    peak = jnp.max(resp[best])
    lost, peak_sum = online.low_peak(state.frame_index + 1, relative_peak, state.peak_sum,
                                     config.lost_reference_frames, config.lost_ratio)
    state = state._replace(center=center, target_size=target_size, x_side=state.x_side * actual,
                           frame_index=state.frame_index + 1, peak_sum=peak_sum)
    box = jnp.concatenate([center - target_size / 2, target_size])
    return state, TrackOutput(box, peak, lost)


SMALL_WINDOW = 1.5     # in search_px: the smaller compiled map size of the official geometry


def official_peak(config: TADTConfig, resp, x_side, cap: int | None = None):
    """The official choice from ``[3, F, F]`` responses: upsampled to the window, plus the
    weighted Hann window, the best scale by the weighted maxima and the (row, col) of its
    peak; computed on ``cap x cap`` maps (``cap >= x_side``)."""
    up, inside = official_upsample(config, resp, x_side, cap)
    up = up + config.window_weight * official_hann(config, x_side, cap)
    up = jnp.where(inside, up, -jnp.inf)
    best = jnp.argmax(jnp.max(up, axis=(1, 2)) * jnp.asarray(config.scale_weights, jnp.float32))
    n = up.shape[-1]
    row, col = jnp.unravel_index(jnp.argmax(up[best]), (n, n))
    return best, row, col, jnp.max(up[best])


def _official_track_step(config: TADTConfig, params, state: TADTState, frame: Frame):
    """``geometry="official"``: Tadt_Tracker.tracking. The window (``x_side`` rescaled
    pixels, an integer) is cut from the rescaled frame and resized to ``search_px``; the
    responses are upsampled to the window's size, the displacement is measured from
    ``side/2 - 1``, the window size is rounded after each scale change; no clamps."""
    crop = official_crop(config, frame, state.rescale, state.crop_center, state.x_side)
    xs, xd = (t[0] for t in extract(config, params, crop[None]))
    feats = selected_features(xs, xd, state.idx_shallow, state.w_shallow, state.idx_deep,
                              state.w_deep)
    resp, relative_peak = response_maps(config, state, feats)
    # the windowed maps at the smallest compiled size that holds the window: the same cells
    # (those beyond the window are -inf at any size; values to float rounding), a fraction of
    # the work while the window stays under SMALL_WINDOW search_px (under vmap both branches run)
    small = int(np.ceil(SMALL_WINDOW * config.search_px))
    if small < window_cap(config):
        best, row, col, peak = jax.lax.cond(state.x_side <= small,
                                        partial(official_peak, config, cap=small),
                                        partial(official_peak, config, cap=window_cap(config)),
                                        resp, state.x_side)
    else:
        best, row, col, peak = official_peak(config, resp, state.x_side)
    sc = jnp.asarray(scales(config))
    disp = (jnp.stack([col, row]).astype(jnp.float32) - (state.x_side / 2 - 1)) * sc[best]
    center = state.center + disp
    target_size = state.target_size * sc[best]
    x_side = jnp.minimum(round_half_up(state.x_side * sc[best]), window_cap(config))
    lost, peak_sum = online.low_peak(state.frame_index + 1, relative_peak, state.peak_sum,
                                     config.lost_reference_frames, config.lost_ratio)
    state = state._replace(center=center, target_size=target_size, x_side=x_side,
                           crop_center=center, frame_index=state.frame_index + 1,
                           peak_sum=peak_sum)
    return state, TrackOutput(_official_box(state), peak, lost)


# ------------------------------------------------------------------- params / config

def load_params(config: TADTConfig, weights: str | None = None, seed: int = 0,
                allow_random: bool = False):
    """Backbone variables (no trained part: TADT learns nothing offline).

    mobilenet_v2: the ImageNet weights (:func:`jaxtrack.models.pretrained.mobilenet_v2_variables`,
    or ``weights`` = a MobileNetV2 ``.pt``/``.msgpack``). vgg16: ``weights`` = a torchvision
    VGG-16 ``.pth`` or MatConvNet ``imagenet-vgg-verydeep-16.mat``; random only with
    ``allow_random``.
    """
    import os
    if weights and not os.path.exists(weights):
        raise FileNotFoundError(f"TADT {config.backbone} weights not found: {weights}")
    if config.backbone == "mobilenet_v2":
        from jaxtrack.models.pretrained import mobilenet_v2_variables
        return {"backbone": mobilenet_v2_variables(weights)}
    from jaxtrack.models.vgg16 import load_vgg16_variables
    if weights:
        return {"backbone": load_vgg16_variables(weights)[0]}
    if not allow_random:
        raise FileNotFoundError("TADT vgg16 needs weights=... (a torchvision vgg16 .pth or "
                                "imagenet-vgg-verydeep-16.mat) or allow_random=True")
    variables = backbone_module(config).init(jax.random.PRNGKey(seed), jnp.zeros((1, 32, 32, 3), jnp.float32))
    return {"backbone": variables}


def config_for_weights(config: TADTConfig, weights: str | None) -> TADTConfig:
    """The VGG input normalisation follows the weights file (MatConvNet or torchvision)."""
    if config.backbone != "vgg16" or not weights:
        return config
    from jaxtrack.models.vgg16 import normalization_for
    return dataclasses.replace(config, vgg_normalization=normalization_for(weights))


def make_config(**overrides) -> TADTConfig:
    """The backbone's defaults (geometry, channel budget), then ``overrides``."""
    backbone = overrides.get("backbone", TADTConfig.backbone)
    models.check_backbone("tadt", backbone, BACKBONE_DEFAULTS)
    return replace_config(TADTConfig(backbone=backbone, **BACKBONE_DEFAULTS[backbone]), overrides, "tadt")
