"""Shared operations: patch sampling, pyramids, correlation, windows, labels, losses."""
import platform

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtrack import boxes as bx
from jaxtrack import online, ops


def _image(h=40, w=50, seed=0):
    return np.random.RandomState(seed).randint(0, 255, (h, w, 3)).astype(np.float32)


def test_crop_inside_equals_array_slice_and_cv2_resize():
    img = _image()
    size = jnp.array([40, 50])
    fill = jnp.asarray(img.mean((0, 1)))
    p = ops.crop_patch(jnp.asarray(img), size, jnp.array([25.0, 20.0]), 10.0, 10, fill)
    np.testing.assert_allclose(np.asarray(p), img[15:25, 20:30], atol=1e-4)
    # 2x downscale of a crop inside the image: cv2.INTER_LINEAR's pixel-centre mapping
    p = ops.crop_patch(jnp.asarray(img), size, jnp.array([25.0, 20.0]), 20.0, 10, fill)
    ref = cv2.resize(img[10:30, 15:35], (10, 10), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(np.asarray(p), ref, atol=1e-3)


def test_crop_pads_with_fill_colour_outside_true_size():
    img = _image()
    fill = jnp.array([1.0, 2.0, 3.0])
    # centre at the top-left corner: the top-left quarter of the patch is outside
    p = np.asarray(ops.crop_patch(jnp.asarray(img), jnp.array([40, 50]), jnp.array([0.0, 0.0]), 10.0, 10, fill))
    np.testing.assert_allclose(p[:4, :4], np.broadcast_to([1.0, 2.0, 3.0], (4, 4, 3)), atol=1e-5)
    np.testing.assert_allclose(p[6:, 6:], img[1:5, 1:5], atol=1e-4)


def test_padded_frame_gives_the_same_patch_as_the_unpadded_one():
    img = _image(37, 45)
    padded = np.zeros((64, 64, 3), np.float32)
    padded[:37, :45] = img
    fill = jnp.asarray(img.mean((0, 1)))
    size = jnp.array([37, 45])
    for c, s in [((40.0, 30.0), 30.0), ((2.0, 35.0), 17.3), ((44.5, 36.5), 60.0)]:
        a = ops.crop_patch(jnp.asarray(img), size, jnp.array(c), s, 16, fill)
        b = ops.crop_patch(jnp.asarray(padded), size, jnp.array(c), s, 16, fill)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)
    np.testing.assert_allclose(ops.valid_mean_color(jnp.asarray(padded), size), img.mean((0, 1)), rtol=1e-5)


def test_supersampling_antialiases_a_checkerboard():
    board = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.float32)[..., None].repeat(3, -1)
    size, fill = jnp.array([64, 64]), jnp.full((3,), 127.5)
    plain = ops.crop_patch(jnp.asarray(board), size, jnp.array([32.0, 32.0]), 64.0, 16, fill)
    smooth = ops.crop_patch(jnp.asarray(board), size, jnp.array([32.0, 32.0]), 64.0, 16, fill, supersample=4)
    assert float(jnp.std(smooth)) < 0.25 * float(jnp.std(plain)) + 1.0


def test_pyramid_matches_individual_crops_and_is_jittable():
    img = jnp.asarray(_image())
    size, fill = jnp.array([40, 50]), jnp.zeros(3)
    scales = ops.scale_factors(3, 1.0375)
    np.testing.assert_allclose(scales, [1 / 1.0375, 1.0, 1.0375], rtol=1e-12)
    pyr = jax.jit(lambda c: ops.crop_pyramid(img, size, c, 20.0, scales, 12, fill))(jnp.array([20.0, 18.0]))
    for i, s in enumerate(scales):
        np.testing.assert_allclose(pyr[i], ops.crop_patch(img, size, jnp.array([20.0, 18.0]), 20.0 * s, 12, fill),
                                   atol=1e-4)


def test_xcorr_matches_direct_sum_and_broadcasts():
    rng = np.random.RandomState(1)
    z = rng.randn(1, 3, 4, 5).astype(np.float32)
    x = rng.randn(2, 7, 9, 5).astype(np.float32)
    out = np.asarray(ops.xcorr(jnp.asarray(z), jnp.asarray(x)))
    assert out.shape == (2, 5, 6)
    ref = np.array([[[np.sum(z[0] * x[b, i:i + 3, j:j + 4]) for j in range(6)] for i in range(5)] for b in range(2)])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_windows_and_labels():
    w = ops.hann_window(17)
    assert w.shape == (17, 17) and abs(w.sum() - 1) < 1e-6 and w[8, 8] == w.max() and w[0, 0] == 0
    g = np.asarray(ops.gaussian_label((9, 11), 2.0))
    assert g[4, 5] == pytest.approx(1.0) and g[4, 7] == pytest.approx(np.exp(-0.5))
    g2 = np.asarray(ops.gaussian_label((9, 11), (1.0, 3.0), center=(2.0, 3.0)))
    assert np.unravel_index(g2.argmax(), g2.shape) == (3, 2)
    lab = ops.logistic_label((17, 17), 2)
    assert lab.sum() == 13 and lab[8, 8] == 1 and lab[8, 11] == 0
    assert set(np.unique(ops.logistic_label((15, 15), 1, 3))) == {0.0, 0.5, 1.0}


def test_balanced_loss_weights_classes_equally():
    labels = jnp.asarray(ops.logistic_label((15, 15), 2))[None]
    perfect = jnp.where(labels == 1, 20.0, -20.0)
    assert float(ops.balanced_logistic_loss(perfect, labels)) < 1e-6
    # a constant logit costs log(2) whatever the class balance
    assert float(ops.balanced_logistic_loss(jnp.zeros_like(labels), labels)) == pytest.approx(np.log(2), rel=1e-5)


def test_box_conversions_round_trip_and_dataset_shift():
    b = np.array([[10.0, 20.0, 30.0, 40.0]])
    np.testing.assert_allclose(bx.cxcywh_to_xywh(bx.xywh_to_cxcywh(b)), b)
    np.testing.assert_allclose(bx.xyxy_to_xywh(bx.xywh_to_xyxy(b)), b)
    np.testing.assert_allclose(bx.to_dataset(bx.from_dataset(b, 1), 1), b)
    np.testing.assert_allclose(bx.from_dataset(b, 1)[0, :2], [9.0, 19.0])
    assert bx.iou(b, b)[0] == pytest.approx(1.0)
    assert bx.iou(b, b + [100, 0, 0, 0])[0] == 0.0
    np.testing.assert_allclose(np.asarray(bx.iou(jnp.asarray(b), jnp.asarray(b))), [1.0], rtol=1e-6)
    with pytest.raises(ValueError, match="zero or negative size"):
        bx.validate_box([1, 2, 0, 5], where="gt.txt:1")
    with pytest.raises(ValueError, match="outside the 50x40 image"):
        bx.validate_box([60, 2, 5, 5], (40, 50), where="gt.txt:1")
    with pytest.raises(ValueError, match="non-finite"):
        bx.validate_box([np.nan, 2, 5, 5])


def test_polygon_to_box_keeps_centre_and_area():
    poly = np.array([10, 10, 30, 10, 30, 20, 10, 20], float)      # an axis-aligned rectangle
    b = bx.polygon_to_xywh(poly)
    np.testing.assert_allclose(b[:2] + b[2:] / 2, [20, 15])
    np.testing.assert_allclose(b[2:], [21, 11])                    # VOT / got10k's +1 convention


def test_lazy_cond_matches_cond_and_skips_the_branch_under_vmap():
    """Unbatched it is lax.cond; vmapped it keeps each slot's branch result, and a batch whose
    predicates are all False never runs the true branch (lax.cond would run it as a select)."""
    calls = []

    def expensive(x, scale):
        jax.debug.callback(lambda: calls.append(1))
        return x * scale + 1.0

    def step(pred, x, scale, cond):
        return cond(pred, lambda v: expensive(v, scale), lambda v: v, x)

    x = jnp.arange(6.0).reshape(2, 3)
    scale = jnp.array([2.0, 3.0])
    for pred in (True, False):
        np.testing.assert_array_equal(jax.jit(step, static_argnums=3)(pred, x[0], scale[0], online.lazy_cond),
                                      jax.jit(step, static_argnums=3)(pred, x[0], scale[0], jax.lax.cond))
    batched = jax.jit(jax.vmap(step, in_axes=(0, 0, 0, None)), static_argnums=3)
    mixed = jnp.array([True, False])
    np.testing.assert_array_equal(batched(mixed, x, scale, online.lazy_cond), batched(mixed, x, scale, jax.lax.cond))
    np.testing.assert_array_equal(batched(mixed, x, scale, online.lazy_cond)[1], x[1])
    jax.effects_barrier()
    calls.clear()
    none = jnp.array([False, False])
    np.testing.assert_array_equal(batched(none, x, scale, online.lazy_cond), x)
    jax.effects_barrier()
    assert not calls, "the true branch ran although no slot asked for it"
    batched(none, x, scale, jax.lax.cond)
    jax.effects_barrier()
    assert calls, "lax.cond under vmap no longer runs both branches: this test checks nothing"


def test_xcorr_formulations_agree():
    """ops.xcorr (GEMM + shifted diagonal sums) equals the per-cell einsum, the row scan and
    the grouped convolution that experiments/bench_xcorr.py times it against, with broadcasting on
    either side, and its gradients equal theirs."""
    import jax
    from jaxtrack import ops_reference
    rng = np.random.default_rng(0)
    for zb, xb in ((1, 3), (2, 2), (3, 1)):
        z = jnp.asarray(rng.normal(size=(zb, 3, 4, 5)), jnp.float32)
        x = jnp.asarray(rng.normal(size=(xb, 9, 8, 5)), jnp.float32)
        ref = ops.xcorr(z, x)
        assert ref.shape == (max(zb, xb), 7, 5)
        for f in (ops_reference.xcorr_cells, ops_reference.xcorr_rows, ops_reference.xcorr_grouped_conv):
            np.testing.assert_allclose(np.asarray(f(z, x)), np.asarray(ref), rtol=1e-5, atol=1e-5)
        loss = lambda f: lambda z, x: jnp.sum(jnp.sin(f(z, x)))   # noqa: E731
        g_ref = jax.jit(jax.grad(loss(ops.xcorr), argnums=(0, 1)))(z, x)
        g_cells = jax.jit(jax.grad(loss(ops_reference.xcorr_cells), argnums=(0, 1)))(z, x)
        for a, b in zip(g_ref, g_cells):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_resize_bicubic_is_cv2_inter_cubic():
    """The official trackers upsample responses with cv2.INTER_CUBIC (a = -0.75, edges
    repeated): equal to cv2 to float32 rounding, for up- and downsampling."""
    rng = np.random.default_rng(0)
    for (h, w), (oh, ow) in (((17, 17), (272, 272)), ((25, 19), (400, 304)), ((9, 12), (5, 7))):
        x = rng.normal(size=(2, h, w)).astype(np.float32)
        got = np.asarray(ops.resize_bicubic(jnp.asarray(x), (oh, ow)))
        for i in range(2):
            ref = cv2.resize(x[i], (ow, oh), interpolation=cv2.INTER_CUBIC)
            np.testing.assert_allclose(got[i], ref, atol=2e-6 * np.abs(ref).max())
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(3, 45, 45)).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x)[None], size=(360, 360), mode="bicubic",
                                          align_corners=True)[0].numpy()
    got = np.asarray(ops.resize_bicubic(jnp.asarray(x), (360, 360), align_corners=True))
    np.testing.assert_allclose(got, ref, atol=1e-5 * np.abs(ref).max())    # torch weights in float32


def test_cv2_resize_window_is_opencvs():
    """``ops.cv2_resize_window`` (sizes traced; GradNet's official pyramid) against ``cv2.resize``
    (INTER_LINEAR, uint8): bit-exact on x86's SIMD path, within 1 grey level elsewhere."""
    exact = platform.machine().lower() in ("x86_64", "amd64")
    rng = np.random.default_rng(0)
    resize = jax.jit(ops.cv2_resize_window, static_argnums=5)
    count = 320
    for trial in range(12):
        h, w = rng.integers(60, 300, 2)
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        n_src, n_dst = int(rng.integers(40, 400)), int(rng.integers(240, count + 1))
        x0, y0 = int(rng.integers(-30, w - 10)), int(rng.integers(-30, h - 10))
        fill = rng.integers(0, 256, 3)
        pad = n_src + 40
        padded = np.empty((h + 2 * pad, w + 2 * pad, 3), np.uint8)
        padded[:] = fill.astype(np.uint8)
        padded[pad:pad + h, pad:pad + w] = image
        window = padded[pad + y0:pad + y0 + n_src, pad + x0:pad + x0 + n_src]
        expected = cv2.resize(window, (n_dst, n_dst), interpolation=cv2.INTER_LINEAR)
        got = resize(jnp.asarray(image, jnp.int32), jnp.asarray([h, w]), jnp.asarray([x0, y0]),
                     jnp.int32(n_src), jnp.int32(n_dst), count, jnp.asarray(fill, jnp.int32))
        diff = np.abs(np.asarray(got)[:n_dst, :n_dst] - expected.astype(np.int32))
        assert diff.max() <= (0 if exact else 1), f"trial {trial}: {diff.max()} grey levels apart"
