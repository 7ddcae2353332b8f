"""PrRoIPool: exact against dense numerical integration, gradients, jit/vmap."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxtrack.prroi_pool import bin_weights, prroi_pool, prroi_pool_batch


def bilinear_surface(f, ys, xs):
    """The bilinear interpolant of grid values ``f [H, W, C]`` (0 outside) at points."""
    h, w = f.shape[:2]
    fp = np.zeros((h + 4, w + 4, f.shape[2]))
    fp[2:-2, 2:-2] = f
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    ty, tx = ys - y0, xs - x0
    y0c, x0c = np.clip(y0 + 2, 0, h + 2), np.clip(x0 + 2, 0, w + 2)
    out = 0
    for dy, wy in ((0, 1 - ty), (1, ty)):
        for dx, wx in ((0, 1 - tx), (1, tx)):
            vals = fp[np.clip(y0c + dy, 0, h + 3)[:, None], np.clip(x0c + dx, 0, w + 3)[None, :]]
            out = out + (wy[:, None] * wx[None, :])[..., None] * vals
    return out


def dense_prroi(f, box, out, scale, n=400):
    """Midpoint-rule integral of the bilinear surface over each bin, / bin area."""
    x1, y1, x2, y2 = np.asarray(box, np.float64) * scale
    res = np.zeros((out, out, f.shape[2]))
    for i in range(out):
        for j in range(out):
            ya, yb = y1 + (y2 - y1) * i / out, y1 + (y2 - y1) * (i + 1) / out
            xa, xb = x1 + (x2 - x1) * j / out, x1 + (x2 - x1) * (j + 1) / out
            ys = ya + (np.arange(n) + 0.5) * (yb - ya) / n
            xs = xa + (np.arange(n) + 0.5) * (xb - xa) / n
            res[i, j] = bilinear_surface(f, ys, xs).mean(axis=(0, 1))
    return res


BOXES = [
    [10.3, 7.9, 41.2, 35.6],      # interior
    [-6.0, -9.5, 17.0, 12.2],     # crosses the top-left edge
    [40.0, 30.0, 75.0, 70.0],     # crosses the bottom-right edge (map is 8x8 at 1/8 -> 64 px)
    [20.1, 22.7, 22.6, 23.9],     # sub-pixel bins (< 1 feature cell per bin)
    [-30.0, 5.0, -12.0, 20.0],    # partly outside the grid's support
]


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("out", [1, 3, 5])
def test_matches_dense_integration(box, out):
    rng = np.random.default_rng(0)
    f = rng.standard_normal((8, 8, 3))
    got = np.asarray(prroi_pool(jnp.asarray(f, jnp.float32), jnp.asarray([box]), out, 1 / 8))[0]
    want = dense_prroi(f, box, out, 1 / 8)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_constant_map_interior_and_empty_box():
    f = jnp.ones((10, 10, 2))
    out = prroi_pool(f, jnp.asarray([[16.0, 16.0, 48.0, 40.0], [20.0, 20.0, 20.0, 30.0]]), 3, 1 / 8)
    np.testing.assert_allclose(out[0], 1.0, atol=1e-6)     # interior of a constant map
    np.testing.assert_allclose(out[1], 0.0)                # zero-width box pools to 0


def test_weights_integrate_hat_functions():
    # the weights of all grid points sum to the bin length where the map is fully supported
    w = bin_weights(jnp.float32(2.3), jnp.float32(7.9), 4, 12)
    np.testing.assert_allclose(np.asarray(w.sum(1)), (7.9 - 2.3) / 4, rtol=1e-5)


def test_gradients_features_and_boxes():
    rng = np.random.default_rng(1)
    f = jnp.asarray(rng.standard_normal((6, 7, 2)), jnp.float32)
    with jax.enable_x64(True):
        f64 = jnp.asarray(f, jnp.float64)
        pool = jax.jit(lambda ff, bb: prroi_pool(ff, bb, 3, 1 / 8))
        for box in ([3.3, 4.1, 30.7, 27.2], [-5.3, -2.2, 9.6, 11.4], [40.1, 30.2, 60.3, 55.7], [20.2, 20.3, 21.1, 21.5]):
            b = jnp.asarray([box], jnp.float64)
            check_grads(pool, (f64, b), order=1,
                        modes=("fwd", "rev"), atol=1e-6, rtol=1e-6, eps=1e-5)


def test_box_gradient_is_nonzero_and_matches_finite_difference_f32():
    rng = np.random.default_rng(2)
    f = jnp.asarray(rng.standard_normal((9, 9, 4)), jnp.float32)
    b = jnp.asarray([[10.4, 12.7, 50.2, 44.9]])
    pooled_sum = jax.jit(lambda bb: prroi_pool(f, bb, 5, 1 / 8).sum())
    g = jax.jit(jax.grad(pooled_sum))(b)
    eps = 1e-2
    fd = [(pooled_sum(b.at[0, k].add(eps)) - pooled_sum(b.at[0, k].add(-eps))) / (2 * eps) for k in range(4)]
    np.testing.assert_allclose(np.asarray(g[0]), np.asarray(fd), rtol=2e-2, atol=2e-3)
    assert np.all(np.abs(np.asarray(g)) > 0)


def test_jit_vmap_batch():
    rng = np.random.default_rng(3)
    f = jnp.asarray(rng.standard_normal((2, 8, 8, 3)), jnp.float32)
    b = jnp.asarray(rng.uniform(0, 60, (2, 4, 2)).repeat(2, -1), jnp.float32)
    b = b.at[..., 2:].add(jnp.asarray(rng.uniform(4, 20, (2, 4, 2)), jnp.float32))
    got = jax.jit(lambda f, b: prroi_pool_batch(f, b, 3, 1 / 8))(f, b)
    assert got.shape == (2, 4, 3, 3, 3)
    for i in range(2):
        np.testing.assert_allclose(got[i], prroi_pool(f[i], b[i], 3, 1 / 8), atol=1e-5)


def test_inverted_boxes_pool_zero_like_the_kernel():
    """PreciseRoIPooling clamps each side at 0: a box inverted on one or both axes pools 0 and
    passes no gradient (a product of two negative lengths is not an area)."""
    f = jnp.asarray(np.random.default_rng(4).standard_normal((9, 9, 2)), jnp.float32)
    inverted = jnp.asarray([[50.2, 44.9, 10.4, 12.7], [10.4, 44.9, 50.2, 12.7], [50.2, 12.7, 10.4, 44.9]])
    assert float(jnp.max(jnp.abs(prroi_pool(f, inverted, 3, 1 / 8)))) == 0.0
    g = jax.grad(lambda bb: prroi_pool(f, bb, 3, 1 / 8).sum())(inverted)
    assert float(jnp.max(jnp.abs(g))) == 0.0
