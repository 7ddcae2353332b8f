"""TADT: VGG-16 loaders, FFT correlation, gradient-based channel selection, the tracker."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxtrack
from jaxtrack.models import vgg16 as V
from jaxtrack.trackers import tadt as T

# A small geometry: search window 88 px at stride 8 -> 11x11 maps (fast tests).
SMALL = dict(min_size=16.0, max_size=24.0, rank_steps=3, reg_iters=30)


def small_config(**kw):
    return T.make_config(**{**SMALL, **kw})


_select = jax.jit(T.select_channels, static_argnums=0)


# --------------------------------------------------------------------------- VGG-16

def _fake_vgg_state(seed=0):
    rng = np.random.default_rng(seed)
    sd = {}
    for name, cin, cout, idx in V.CONV_LAYERS:
        sd[f"features.{idx}.weight"] = (rng.standard_normal((cout, cin, 3, 3)) *
                                        np.sqrt(2.0 / (9 * cin))).astype(np.float32)
        sd[f"features.{idx}.bias"] = (0.01 * rng.standard_normal(cout)).astype(np.float32)
    return sd


def _torch_vgg_taps(sd, image):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(image.transpose(0, 3, 1, 2).copy())
    x = (x / 255.0 - torch.tensor(V.IMAGENET_MEAN)[:, None, None]) / torch.tensor(V.IMAGENET_STD)[:, None, None]
    out = {}
    with torch.no_grad():
        for name, _, _, idx in V.CONV_LAYERS:
            x = torch.relu(torch.nn.functional.conv2d(
                x, torch.from_numpy(sd[f"features.{idx}.weight"]),
                torch.from_numpy(sd[f"features.{idx}.bias"]), padding=1))
            if name in ("conv4_1", "conv4_3"):
                out["relu" + name[4:]] = x.numpy().transpose(0, 2, 3, 1)
            if name in V.POOL_AFTER:
                x = torch.nn.functional.max_pool2d(x, 2, 2)
    return out


@pytest.fixture(scope="module")
def vgg_state():
    return _fake_vgg_state()


def test_vgg16_torch_state_dict_matches_torch(vgg_state, tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "vgg16.pth"
    torch.save({"module." + k: torch.from_numpy(v) for k, v in vgg_state.items()}, path)
    variables, norm = V.load_vgg16_variables(str(path))      # the safe reader, a prefix
    assert norm == "torchvision"
    image = np.random.default_rng(1).uniform(0, 255, (1, 24, 32, 3)).astype(np.float32)
    ours = V.VGG16Features("torchvision").apply(variables, jnp.asarray(image))
    ref = _torch_vgg_taps(vgg_state, image)
    for tap in V.TAPS:
        assert ours[tap].shape == (1, 6, 8, 512)                # stride 4: pool1, pool2 only
        np.testing.assert_allclose(np.asarray(ours[tap]), ref[tap], rtol=1e-3, atol=1e-3)


def test_vgg16_torch_wrong_shape_names_key(vgg_state):
    bad = dict(vgg_state)
    bad["features.19.weight"] = bad["features.19.weight"][:, :256]
    with pytest.raises(ValueError, match=r"features\.19\.weight.*\(512, 512, 3, 3\).*\(512, 256, 3, 3\)"):
        V.vgg16_from_torch(bad)
    with pytest.raises(KeyError, match="features.0.weight"):
        V.vgg16_from_torch({"classifier.0.weight": np.zeros((2, 2))})


def _matconvnet_mat(vgg_state, path, old_fields=False, break_layer=None):
    """A SimpleNN ``layers`` cell array as imagenet-vgg-verydeep-16.mat stores it."""
    import scipy.io
    layers = []
    for name, cin, cout, idx in V.CONV_LAYERS:
        f = vgg_state[f"features.{idx}.weight"].transpose(2, 3, 1, 0)       # [H, W, in, out]
        b = vgg_state[f"features.{idx}.bias"][None]                          # [1, out]
        if name == break_layer:
            f = f[:, :, :, :-1]
        layer = {"name": name, "type": "conv", "stride": np.array([[1, 1]]), "pad": np.array([[1, 1, 1, 1]])}
        if old_fields:
            layer.update(filters=f, biases=b)
        else:
            w = np.empty((1, 2), dtype=object)
            w[0, 0], w[0, 1] = f, b
            layer["weights"] = w
        layers.append(layer)
        layers.append({"name": "relu" + name[4:], "type": "relu"})
        if name in ("conv1_2", "conv2_2", "conv3_3"):
            layers.append({"name": "pool" + name[4], "type": "pool", "pool": np.array([[2, 2]])})
    cells = np.empty((1, len(layers)), dtype=object)
    for i, layer in enumerate(layers):
        cells[0, i] = layer
    scipy.io.savemat(str(path), {"layers": cells, "meta": {"inputs": "x"}})
    return path


@pytest.mark.parametrize("old_fields", [False, True])
def test_vgg16_matconvnet_layout(vgg_state, tmp_path, old_fields):
    path = _matconvnet_mat(vgg_state, tmp_path / "vgg.mat", old_fields)
    variables, norm = V.load_vgg16_variables(str(path))
    assert norm == "matconvnet"
    ref = V.vgg16_from_torch(vgg_state)["params"]
    for name, *_ in V.CONV_LAYERS:
        np.testing.assert_array_equal(variables["params"][name]["kernel"], ref[name]["kernel"])
        np.testing.assert_array_equal(variables["params"][name]["bias"], ref[name]["bias"])


def test_vgg16_matconvnet_bad_shape_names_layer(vgg_state, tmp_path):
    path = _matconvnet_mat(vgg_state, tmp_path / "bad.mat", break_layer="conv3_2")
    with pytest.raises(ValueError, match="conv3_2 filters"):
        V.load_vgg16_variables(str(path))


def test_vgg16_needs_weights_unless_random():
    with pytest.raises(FileNotFoundError, match="vgg16"):
        jaxtrack.make_tracker("tadt", backbone="vgg16")
    with pytest.raises(FileNotFoundError):
        jaxtrack.make_tracker("tadt", backbone="vgg16", weights="/nonexistent/vgg16.pth")


# --------------------------------------------------------------------------- building blocks

def test_config_geometry():
    vgg = T.make_config(backbone="vgg16")
    assert (vgg.search_px, vgg.map_size, vgg.n_deep, vgg.n_shallow) == (180, 45, 300, 80)
    mob = T.make_config()
    assert (mob.search_px, mob.map_size) == (360, 45)
    np.testing.assert_allclose(T.scales(vgg), [45 / 47, 1, 45 / 43], rtol=1e-6)
    with pytest.raises(ValueError, match="selection"):
        T.make_config(selection="best")
    with pytest.raises(TypeError, match="unknown config field"):
        T.make_config(window=1)


def test_corr_same_matches_direct_loop():
    rng = np.random.default_rng(0)
    f, c = 9, 3
    x = rng.standard_normal((2, f, f, c)).astype(np.float32)
    w = rng.standard_normal((f, f, c)).astype(np.float32)
    got = np.asarray(T.corr_same(jnp.asarray(x), jnp.asarray(w)))
    ctr = (f - 1) // 2
    ref = np.zeros((2, f, f))
    for pi in range(f):
        for pj in range(f):
            for qi in range(f):
                for qj in range(f):
                    i, j = pi + qi - ctr, pj + qj - ctr
                    if 0 <= i < f and 0 <= j < f:
                        ref[:, pi, pj] += x[:, i, j] @ w[qi, qj]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_resize_matrix():
    np.testing.assert_allclose(T.resize_matrix(11, 11), np.eye(11), atol=1e-6)
    for n in (7, 15):   # a constant map stays constant where the resized map lands
        m = T.resize_matrix(11, n)
        rows = m.sum(1)
        b = abs(n - 11) // 2
        np.testing.assert_allclose(rows[b:11 - b] if n < 11 else rows, 1.0, atol=1e-6)
        if n < 11:
            assert np.all(rows[:b] == 0) and np.all(rows[11 - b:] == 0)


# --------------------------------------------------------------------------- slow references

def _np_corr(x, w):
    """Direct "same" correlation (the slow reference of corr_same), float64."""
    f = x.shape[0]
    c = (f - 1) // 2
    xp = np.pad(x, ((c, c), (c, c), (0, 0)))
    out = np.zeros((f, f))
    for qi in range(f):
        for qj in range(f):
            out += xp[qi:qi + f, qj:qj + f] @ w[qi, qj]
    return out


def _np_reg_loss(w, x, label, kmask, ridge):
    wm = w * kmask[..., None]
    return np.mean((_np_corr(x, wm) - label) ** 2) + ridge * np.sum(wm ** 2)


def _np_reg_grad_w(w, x, label, kmask, ridge):
    f = x.shape[0]
    c = (f - 1) // 2
    r = _np_corr(x, w * kmask[..., None]) - label
    xp = np.pad(x, ((c, c), (c, c), (0, 0)))
    g = np.zeros_like(w)
    for qi in range(f):
        for qj in range(f):
            g[qi, qj] = 2.0 / (f * f) * np.einsum("ab,abc->c", r, xp[qi:qi + f, qj:qj + f])
    return (g + 2 * ridge * w * kmask[..., None]) * kmask[..., None]


def _np_regression_importance(config, x, hh, hw, eps=1e-4):
    """Slow reference: the same fit in numpy loops, then central finite differences of
    the loss w.r.t. a constant added to each channel (= F^2 x GAP of the gradient)."""
    f = x.shape[0]
    label = np.asarray(T.gaussian_label(config, jnp.int32(hh), jnp.int32(hw)), np.float64)
    kmask = np.asarray(T.box_mask(f, hh + 1, hw + 1), np.float64)
    p = T._fft_size(f)
    spec = np.fft.rfft2(np.moveaxis(x, -1, 0), s=(p, p))
    lip = 2.0 * np.max(np.sum(np.abs(spec) ** 2, axis=0)) / (f * f)
    ridge = 0.5 * config.reg_ridge * lip
    step = config.reg_step / (lip * (1.0 + config.reg_ridge))
    w = np.zeros_like(x)
    v = np.zeros_like(x)
    for _ in range(config.reg_iters):
        g = _np_reg_grad_w(w + config.reg_momentum * v, x, label, kmask, ridge)
        v = config.reg_momentum * v - step * g
        w = w + v
    imp = np.zeros(x.shape[-1])
    for ch in range(x.shape[-1]):
        d = np.zeros_like(x)
        d[..., ch] = eps
        imp[ch] = -(_np_reg_loss(w, x + d, label, kmask, ridge)
                    - _np_reg_loss(w, x - d, label, kmask, ridge)) / (2 * eps) / (f * f)
    return imp


def _np_ranking_importance(config, x, hh, hw, eps=1e-5):
    """Slow reference: the ranking loss in numpy, finite differences of a channel gain."""
    f = x.shape[0]
    pmask = np.asarray(T.box_mask(f, hh, hw), np.float64)[..., None]
    kmax = min(config.rank_steps, (f - 1) // 2)
    sizes = [f + 2 * k for k in range(-kmax, kmax + 1)]
    pairs = T.rank_pairs(np.asarray(sizes, np.float32) / f)

    def loss(xx, norm):
        scores = np.array([np.sum((T.resize_matrix(f, n) @ xx.transpose(2, 0, 1) @ T.resize_matrix(f, n).T)
                                  .transpose(1, 2, 0) * pmask * xx * pmask) for n in sizes]) / norm
        return np.mean(np.log1p(np.exp(scores[pairs[:, 1]] - scores[pairs[:, 0]])))

    norm = np.sum((x * pmask) ** 2)            # held fixed (stop_gradient in the tracker)
    imp = np.zeros(x.shape[-1])
    for ch in range(x.shape[-1]):
        g = np.ones(x.shape[-1])
        g[ch] += eps
        lp = loss(x * g, norm)
        g[ch] -= 2 * eps
        imp[ch] = -(lp - loss(x * g, norm)) / (2 * eps)
    return imp


@pytest.fixture(scope="module")
def small_maps():
    """Two small feature maps: noise, plus a 'target' at the centre in a few channels."""
    rng = np.random.default_rng(3)
    f, c = 11, 8
    x = 0.3 * rng.standard_normal((f, f, c))
    yy, xx = np.mgrid[:f, :f] - (f - 1) / 2
    blob = np.exp(-(yy ** 2 + xx ** 2) / 4.0)
    x[..., [1, 4]] += 2.0 * blob[..., None]
    x[..., 6] += 1.5 * (yy / f + 0.5)         # a ramp: background structure
    return x


def test_regression_importance_matches_finite_differences(small_maps):
    cfg = small_config()
    assert cfg.map_size == 11
    hh, hw = 2, 1
    got = np.asarray(T.regression_importance(cfg, jnp.asarray(small_maps, jnp.float32),
                                             jnp.int32(hh), jnp.int32(hw)))
    ref = _np_regression_importance(cfg, small_maps, hh, hw)
    np.testing.assert_allclose(got, ref, rtol=2e-2, atol=2e-3 * np.abs(ref).max())
    assert list(np.argsort(-got)[:3]) == list(np.argsort(-ref)[:3])
    # the channels carrying the target (and the ramp, positive under it) beat the noise ones
    assert set(np.argsort(-got)[:3]) == {1, 4, 6}


def test_ranking_importance_matches_finite_differences(small_maps):
    cfg = small_config()
    hh, hw = 2, 2
    got = np.asarray(T.ranking_importance(cfg, jnp.asarray(small_maps, jnp.float32),
                                          jnp.int32(hh), jnp.int32(hw)))
    ref = _np_ranking_importance(cfg, small_maps, hh, hw)
    np.testing.assert_allclose(got, ref, rtol=2e-2, atol=2e-3 * np.abs(ref).max())
    np.testing.assert_array_equal(np.argsort(-got)[:3], np.argsort(-ref)[:3])


def test_selection_follows_the_target():
    """The channels kept are those the gradients point at, and move with the target (the
    project's regression and ranking; the official ranking keeps a feature-independent half
    of the shallow channels, docs/fidelity_tadt.md)."""
    rng = np.random.default_rng(0)
    f, c = 11, 12
    cfg = small_config(n_deep=3, n_shallow=2, min_total=0, balance_channels=2, regression="project",
                       ranking="project")
    yy, xx = np.mgrid[:f, :f] - (f - 1) / 2
    blob = np.exp(-(yy ** 2 + xx ** 2) / 3.0)[..., None]
    base = 0.2 * rng.standard_normal((f, f, c))
    sel = {}
    for name, chans in (("a", [0, 3, 5]), ("b", [7, 9, 10])):
        x = base.copy()
        x[..., chans] += 2.0 * blob
        xs = xd = jnp.asarray(x, jnp.float32)
        idx_s, w_s, idx_d, w_d, info = _select(cfg, xs, xd, jnp.int32(2), jnp.int32(2),
                                                         jax.random.PRNGKey(0))
        kept_d = set(np.asarray(idx_d)[np.asarray(w_d) > 0].tolist())
        kept_s = set(np.asarray(idx_s)[np.asarray(w_s) > 0].tolist())
        # the deep tap keeps exactly the top regression-importance channels
        top = np.argsort(-np.asarray(info["reg_deep"]))[:3]
        assert kept_d == set(top.tolist()) == set(chans), (name, kept_d, chans)
        assert kept_s <= set(chans) and kept_s
        sel[name] = kept_d
    assert sel["a"] != sel["b"]


def test_selection_modes_and_counts():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((11, 11, 10)), jnp.float32)
    out = {}
    for mode in T.SELECTIONS:
        cfg = small_config(selection=mode, n_deep=4, n_shallow=3, min_total=6)
        idx_s, w_s, idx_d, w_d, _ = _select(cfg, x, x, jnp.int32(2), jnp.int32(1),
                                                      jax.random.PRNGKey(5))
        out[mode] = (np.asarray(idx_s), np.asarray(w_s) > 0, np.asarray(idx_d), np.asarray(w_d) > 0)
    assert out["all"][1].sum() == 10 and out["all"][3].sum() == 10
    ta, rnd = out["target_aware"], out["random"]
    assert ta[1].sum() + ta[3].sum() >= 6                          # the minimum is met
    assert ta[1].sum() == rnd[1].sum() and ta[3].sum() == rnd[3].sum()   # same counts
    assert set(ta[2][ta[3]].tolist()) != set(rnd[2][rnd[3]].tolist())


# --------------------------------------------------------------------------- the tracker

def test_tadt_tracks_a_synthetic_sequence(mobilenet_pt):
    from jaxtrack.data.synthetic import make_sequence
    from jaxtrack.driver import JitTracker, run_sequence
    from jaxtrack.frames import pad_frame
    from jaxtrack import boxes as bx
    import jaxtrack
    tracker = jaxtrack.make_tracker("tadt", **SMALL)
    seq = make_sequence(0, num_frames=8, size=(120, 160))
    jt = JitTracker(tracker)
    r = run_sequence(jt, seq, seed=0)
    assert r.boxes.shape == (8, 4) and np.all(np.isfinite(r.boxes))
    iou = bx.iou(r.boxes, seq.gt)
    assert np.mean(iou[1:]) > 0.3, iou
    assert jt.num_compilations == 2
    st = jt.init(jt.params, pad_frame(seq.frame(0)),
                 jnp.asarray(seq.gt[0], jnp.float32), jax.random.PRNGKey(0))
    assert st.template.shape == (11, 11, 10 + 56)


@pytest.mark.slow
def test_tadt_real_data(otb_root, mobilenet_pt):
    """Target-aware TADT (MobileNetV2 stand-in) on two real OTB sequences."""
    import jaxtrack
    from jaxtrack.data import load_dataset
    from jaxtrack.driver import JitTracker, run_sequence
    from jaxtrack.frames import pad_frame
    from jaxtrack.eval.metrics import sequence_metrics
    jt = JitTracker(jaxtrack.make_tracker("tadt"))
    seqs = load_dataset("otb", otb_root, sequences=["Crossing", "Couple"])
    aucs = []
    for seq in seqs:
        r = run_sequence(jt, seq, seed=0)
        aucs.append(sequence_metrics(r.boxes, seq.gt, seq.index_base)["auc"])
    assert min(aucs) > 0.6, aucs
    # the selection depends on the target: two boxes in one real frame
    frame = pad_frame(seqs[1].frame(0))
    a = jt.init(jt.params, frame, jnp.asarray(seqs[1].gt[0], jnp.float32), jax.random.PRNGKey(0))
    other = np.asarray(seqs[1].gt[0], np.float32) + np.array([150, 40, 0, 0], np.float32)
    b = jt.init(jt.params, frame, jnp.asarray(other), jax.random.PRNGKey(0))
    assert set(np.asarray(a.idx_deep)[np.asarray(a.w_deep) > 0]) != set(np.asarray(b.idx_deep)[np.asarray(b.w_deep) > 0])


@pytest.mark.parametrize("side_in_search_px", [0.55, 1.0, 1.5])
def test_official_peak_on_the_small_map_equals_the_full_map(side_in_search_px):
    # _official_track_step computes the peak on a 1.5 search_px map while the window fits:
    # the same scale and cell as on the max_window map, the value to float rounding
    cfg = T.TADTConfig()
    small = int(np.ceil(T.SMALL_WINDOW * cfg.search_px))
    x_side = jnp.float32(np.floor(side_in_search_px * cfg.search_px))
    resp = jax.random.normal(jax.random.PRNGKey(3), (3, cfg.map_size, cfg.map_size))
    on_small = jax.jit(lambda r, s: T.official_peak(cfg, r, s, cap=small))(resp, x_side)
    on_full = jax.jit(lambda r, s: T.official_peak(cfg, r, s))(resp, x_side)
    assert small < T.window_cap(cfg)
    assert [int(v) for v in on_small[:3]] == [int(v) for v in on_full[:3]]
    assert abs(float(on_small[3]) - float(on_full[3])) <= 1e-6 * abs(float(on_full[3]))
