"""Precise RoI Pooling on the CPU in PyTorch, for the ATOM reference harness.

pytracking's ``PrRoIPool2D`` (vacancy/PreciseRoIPooling, a git submodule of pytracking) is a
CUDA extension with no CPU path. This is a CPU stand-in with its interface
(``PrRoIPool2D(pooled_height, pooled_width, spatial_scale)(features [B, C, H, W], rois [N, 5])``,
rois ``(batch_index, x1, y1, x2, y2)``) that transcribes the CUDA kernels
(``src/prroi_pooling_gpu_impl.cu`` at f75570a): the forward's loop over the unit cells a bin
touches with the per-cell closed-form integral of the bilinear interpolant
(``PrRoIPoolingMatCalculation``; the map is 0 outside its grid), the division by the bin area
(an empty bin pools to 0), the feature backward (``PrRoIPoolingBackward``) and the coordinate
backward (``PrRoIPoolingCoorBackward``: line integrals along the bin edges, chained to the roi
corners, times ``spatial_scale``). It is written from the kernel, not from jaxtrack's
``prroi_pool``: the per-roi cell weights are built in float64 with numpy and contracted with the
features in their dtype. :func:`selftest` checks it against exact integration (the closed-form
separable integral and a dense midpoint rule) and its gradients against finite differences.

    python experiments/reference/prroi_pool_torch.py            # selftest, prints JSON
"""
from __future__ import annotations

import json
import math

import numpy as np
import torch

__all__ = ["PrRoIPool2D", "prroi_pool2d", "selftest"]


def _axis_coeff(lo: float, hi: float, cell: int):
    """The kernel's per-cell 1-D factors on [lo, hi] within [cell, cell+1]: the integral of
    the left grid point's hat (1 - (t - cell)) and of the right one's (1 - (cell+1 - t))."""
    a, la = lo - cell, hi - cell
    left = la - 0.5 * la * la - a + 0.5 * a * a
    a, la = cell + 1 - hi, cell + 1 - lo
    right = la - 0.5 * la * la - a + 0.5 * a * a
    return left, right


def _interp_weights(h: float, w: float, height: int, width: int, out: np.ndarray, scale: float):
    """Add ``scale`` x the weights of ``PrRoIPoolingInterpolation(data, h, w)`` to ``out``."""
    h1, w1 = math.floor(h), math.floor(w)
    for hh in (h1, h1 + 1):
        for ww in (w1, w1 + 1):
            if 0 <= hh < height and 0 <= ww < width:
                out[hh, ww] += scale * (1 - abs(h - hh)) * (1 - abs(w - ww))


def _roi_weights(roi, ph: int, pw: int, spatial_scale: float, height: int, width: int):
    """Per bin k = (i, j): the forward integral weights ``W [K, H, W]``, the four edge
    line-integral weights of the coordinate backward ``G [4, K, H, W]`` (x1, x2, y1, y2 edges),
    the bin areas and sides ``[K]``."""
    x1, y1, x2, y2 = (float(v) * spatial_scale for v in roi[1:5])
    bh = max(y2 - y1, 0.0) / ph
    bw = max(x2 - x1, 0.0) / pw
    k = ph * pw
    W = np.zeros((k, height, width))
    G = np.zeros((4, k, height, width))
    for i in range(ph):
        for j in range(pw):
            n = i * pw + j
            ws_w, ws_h = x1 + bw * j, y1 + bh * i
            we_w, we_h = ws_w + bw, ws_h + bh
            if max(0.0, bw * bh) == 0:
                continue
            s_w, e_w, s_h, e_h = math.floor(ws_w), math.ceil(we_w), math.floor(ws_h), math.ceil(we_h)
            for w_it in range(s_w, e_w):            # PrRoIPoolingMatCalculation per unit cell
                cx0, cx1 = _axis_coeff(max(ws_w, w_it), min(we_w, w_it + 1.0), w_it)
                for h_it in range(s_h, e_h):
                    cy0, cy1 = _axis_coeff(max(ws_h, h_it), min(we_h, h_it + 1.0), h_it)
                    for hh, cy in ((h_it, cy0), (h_it + 1, cy1)):
                        for ww, cx in ((w_it, cx0), (w_it + 1, cx1)):
                            if 0 <= hh < height and 0 <= ww < width:
                                W[n, hh, ww] += cy * cx
            for h_it in range(s_h, e_h):            # g_x1_y, g_x2_y: along the x edges
                s, t = max(ws_h, h_it) - h_it, min(we_h, h_it + 1.0) - h_it
                c2, c1 = 0.5 * (t * t - s * s), t - 0.5 * t * t - s + 0.5 * s * s
                for e, xw in ((0, ws_w), (1, we_w)):
                    _interp_weights(h_it, xw, height, width, G[e, n], c1)
                    _interp_weights(h_it + 1, xw, height, width, G[e, n], c2)
            for w_it in range(s_w, e_w):            # g_x_y1, g_x_y2: along the y edges
                s, t = max(ws_w, w_it) - w_it, min(we_w, w_it + 1.0) - w_it
                c2, c1 = 0.5 * (t * t - s * s), t - 0.5 * t * t - s + 0.5 * s * s
                for e, yh in ((2, ws_h), (3, we_h)):
                    _interp_weights(yh, w_it, height, width, G[e, n], c1)
                    _interp_weights(yh, w_it + 1, height, width, G[e, n], c2)
    return W, G, np.full(k, max(0.0, bw * bh)), bh, bw


class PrRoIPool2DFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, rois, pooled_height, pooled_width, spatial_scale):
        ph, pw, scale = int(pooled_height), int(pooled_width), float(spatial_scale)
        b, c, h, w = features.shape
        rois_np = rois.detach().cpu().double().numpy()
        out = features.new_zeros((rois.shape[0], c, ph, pw))
        saved = []
        for r, roi in enumerate(rois_np):
            W, G, area, bh, bw = _roi_weights(roi, ph, pw, scale, h, w)
            inv = np.where(area > 0, 1.0 / np.where(area > 0, area, 1.0), 0.0)
            Wn = torch.as_tensor(W * inv[:, None, None], dtype=features.dtype)
            data = features[int(roi[0])]
            out[r] = torch.einsum("khw,chw->ck", Wn, data).reshape(c, ph, pw)
            saved.append((int(roi[0]), Wn, G, inv, bh, bw))
        ctx.saved = saved
        ctx.params = (ph, pw, scale)
        ctx.save_for_backward(features, out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        features, out = ctx.saved_tensors
        ph, pw, scale = ctx.params
        grad_f = torch.zeros_like(features) if ctx.needs_input_grad[0] else None
        grad_r = None
        if ctx.needs_input_grad[1]:
            grad_r = torch.zeros((len(ctx.saved), 5), dtype=features.dtype)
        jj = np.tile(np.arange(pw), ph)
        ii = np.repeat(np.arange(ph), pw)
        for r, (bi, Wn, G, inv, bh, bw) in enumerate(ctx.saved):
            go = grad_output[r].reshape(grad_output.shape[1], -1)            # [C, K]
            if grad_f is not None:
                grad_f[bi] += torch.einsum("khw,ck->chw", Wn, go)
            if grad_r is not None:
                data = features[bi]
                g = torch.einsum("ekhw,chw->eck", torch.as_tensor(G, dtype=features.dtype), data)
                top = out[r].reshape(out.shape[1], -1)
                s = torch.as_tensor(inv * scale, dtype=features.dtype)
                px1 = (-g[0] + bh * top) * s
                px2 = (g[1] - bh * top) * s
                py1 = (-g[2] + bw * top) * s
                py2 = (g[3] - bw * top) * s
                fj, fj1 = torch.as_tensor(jj / pw), torch.as_tensor((jj + 1) / pw)
                fi, fi1 = torch.as_tensor(ii / ph), torch.as_tensor((ii + 1) / ph)
                grad_r[r, 1] = torch.sum((px1 * (1 - fj) + px2 * (1 - fj1)) * go)
                grad_r[r, 2] = torch.sum((py1 * (1 - fi) + py2 * (1 - fi1)) * go)
                grad_r[r, 3] = torch.sum((px2 * fj1 + px1 * fj) * go)
                grad_r[r, 4] = torch.sum((py2 * fi1 + py1 * fi) * go)
        return grad_f, grad_r, None, None, None


def prroi_pool2d(features, rois, pooled_height, pooled_width, spatial_scale):
    return PrRoIPool2DFunction.apply(features, rois, pooled_height, pooled_width, spatial_scale)


class PrRoIPool2D(torch.nn.Module):
    """Drop-in for ``ltr.external.PreciseRoIPooling.pytorch.prroi_pool.PrRoIPool2D`` (CPU)."""

    def __init__(self, pooled_height, pooled_width, spatial_scale):
        super().__init__()
        self.pooled_height = int(pooled_height)
        self.pooled_width = int(pooled_width)
        self.spatial_scale = float(spatial_scale)

    def forward(self, features, rois):
        return prroi_pool2d(features, rois, self.pooled_height, self.pooled_width, self.spatial_scale)


# --------------------------------------------------------------------------- checks

def _hat_antiderivative(t):
    t = np.clip(t, -1.0, 1.0)
    return np.where(t <= 0, 0.5 * (t + 1) ** 2, 1 - 0.5 * (1 - t) ** 2)


def exact_pool(data, roi, ph, pw, scale):
    """Closed form in float64: the interpolant is sum_hw d[h,w] hat(y-h) hat(x-w), so a bin's
    integral is sum_hw d[h,w] (int hat(y-h) dy)(int hat(x-w) dx), divided by the bin area."""
    c, h, w = data.shape
    x1, y1, x2, y2 = (v * scale for v in roi[1:5])
    ey = y1 + (y2 - y1) * np.arange(ph + 1) / ph
    ex = x1 + (x2 - x1) * np.arange(pw + 1) / pw
    iy = np.diff(_hat_antiderivative(ey[:, None] - np.arange(h)[None]), axis=0)     # [ph, H]
    ix = np.diff(_hat_antiderivative(ex[:, None] - np.arange(w)[None]), axis=0)     # [pw, W]
    area = max(y2 - y1, 0) / ph * max(x2 - x1, 0) / pw
    return np.einsum("ph,chw,qw->cpq", iy, data, ix) / area if area > 0 else np.zeros((c, ph, pw))


def dense_pool(data, roi, ph, pw, scale, n: int):
    """Midpoint rule with n x n samples per bin of the bilinear interpolant (float64)."""
    c, h, w = data.shape
    x1, y1, x2, y2 = (v * scale for v in roi[1:5])
    hat = lambda t: np.maximum(0.0, 1.0 - np.abs(t))    # noqa: E731
    out = np.zeros((c, ph, pw))
    if not (x2 > x1 and y2 > y1):
        return out                                       # an empty bin pools to 0 (the kernel's rule)
    for i in range(ph):
        ys = y1 + (y2 - y1) * (i + (np.arange(n) + 0.5) / n) / ph
        hy = hat(ys[:, None] - np.arange(h)[None])                 # [n, H]
        for j in range(pw):
            xs = x1 + (x2 - x1) * (j + (np.arange(n) + 0.5) / n) / pw
            hx = hat(xs[:, None] - np.arange(w)[None])
            out[:, i, j] = np.einsum("ah,chw->caw", hy, data).sum(1) @ hx.sum(0) / (n * n)
    return out


def random_case(rng, c=3, h=9, w=11, n=12):
    """Features [1, C, H, W] and rois [N, 5] (image coordinates, spatial_scale 1/8): boxes
    inside, across the border, wholly outside, degenerate (zero width) and sub-cell."""
    data = rng.standard_normal((1, c, h, w))
    rois = []
    for k in range(n):
        x1, y1 = rng.uniform(-3, w + 1) * 8, rng.uniform(-3, h + 1) * 8
        bw, bh = rng.uniform(0.2, 8) * 8, rng.uniform(0.2, 8) * 8
        if k == n - 2:
            bw = 0.0
        if k == n - 1:
            x1, y1, bw, bh = (w + 2) * 8.0, (h + 2) * 8.0, 16.0, 16.0
        rois.append([0.0, x1, y1, x1 + bw, y1 + bh])
    return data, np.asarray(rois)


def selftest(seed: int = 0) -> dict:
    """Forward against the exact integral and the midpoint rule; both gradients against
    central finite differences (float64). Returns the largest errors."""
    rng = np.random.default_rng(seed)
    data, rois = random_case(rng)
    scale, ph, pw = 1 / 8, 3, 5
    f = torch.tensor(data, requires_grad=True)
    r = torch.tensor(rois, requires_grad=True)
    out = prroi_pool2d(f, r, ph, pw, scale).detach().numpy()
    exact = np.stack([exact_pool(data[0], roi, ph, pw, scale) for roi in rois])
    dense = {n: np.stack([dense_pool(data[0], roi, ph, pw, scale, n) for roi in rois]) for n in (64, 1024)}
    peak = np.abs(exact).max()
    res = {"seed": seed, "features": list(data.shape), "rois": len(rois), "pooled": [ph, pw], "spatial_scale": scale,
           "forward_vs_exact": float(np.abs(out - exact).max() / peak),
           "midpoint_n64_vs_exact": float(np.abs(dense[64] - exact).max() / peak),
           "midpoint_n1024_vs_exact": float(np.abs(dense[1024] - exact).max() / peak),
           "forward_vs_midpoint_n1024": float(np.abs(out - dense[1024]).max() / peak)}
    # gradients: analytic (the transcribed CUDA backward) against central differences
    weights = torch.tensor(rng.standard_normal(out.shape))
    loss = (prroi_pool2d(f, r, ph, pw, scale) * weights).sum()
    gf, gr = torch.autograd.grad(loss, (f, r))

    def value(fv, rv):
        return float((prroi_pool2d(torch.tensor(fv), torch.tensor(rv), ph, pw, scale) * weights).sum())
    eps = 1e-5
    num_r = np.zeros_like(rois)
    for idx in np.ndindex(rois.shape):
        if idx[1] == 0 or rois[idx[0], 3] == rois[idx[0], 1]:
            continue                 # the batch index; the zero-width roi (a kink: 0 one side)
        a, b = rois.copy(), rois.copy()
        a[idx] += eps
        b[idx] -= eps
        num_r[idx] = (value(data, a) - value(data, b)) / (2 * eps)
    num_f = np.zeros_like(data)
    for idx in list(np.ndindex(data.shape))[::7]:
        a, b = data.copy(), data.copy()
        a[idx] += eps
        b[idx] -= eps
        num_f[idx] = (value(a, rois) - value(b, rois)) / (2 * eps)
    sel = np.zeros(data.shape, bool)
    sel.reshape(-1)[::7] = True
    res["zero_width_roi_output_and_grad"] = [float(np.abs(out[-2]).max()), float(gr[-2].abs().max())]
    res["roi_grad_vs_finite_diff"] = float(np.abs(gr.numpy() - num_r).max() / np.abs(num_r).max())
    res["feature_grad_vs_finite_diff"] = float(np.abs(gf.numpy()[sel] - num_f[sel]).max() / np.abs(num_f[sel]).max())
    return res


if __name__ == "__main__":
    print(json.dumps(selftest(), indent=1))
