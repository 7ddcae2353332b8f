"""DAT: guided backprop, the second-order reciprocative loss, VGG-M .mat loading, tracking."""
import numpy as np
import pytest

import jax
import jax.numpy as jnp

import jaxtrack
from jaxtrack import guided_backprop as gb
from jaxtrack.models import vggm
from jaxtrack.trackers import dat


def test_guided_relu_backward_rule():
    x = jnp.array([-1.0, 2.0, 3.0, 7.0])
    g = jnp.array([1.0, -1.0, 2.0, 5.0])
    _, vjp = jax.vjp(gb.guided_relu, x)
    np.testing.assert_allclose(vjp(g)[0], [0.0, 0.0, 2.0, 5.0])
    _, vjp6 = jax.vjp(gb.guided_relu6, x)
    np.testing.assert_allclose(vjp6(g)[0], [0.0, 0.0, 2.0, 0.0])   # 7 > 6: inactive
    np.testing.assert_allclose(gb.guided_relu6(x), jax.nn.relu6(x))


def _tiny_net(key, dtype=jnp.float32):
    """conv 3x3 (3->4) + guided ReLU, flatten, dense -> 6 + guided ReLU, dense -> 2."""
    k1, k2, k3 = jax.random.split(key, 3)
    return {"conv": {"kernel": 0.5 * jax.random.normal(k1, (3, 3, 3, 4), dtype)},
            "fc": {"w1": 0.3 * jax.random.normal(k2, (5 * 5 * 4, 6), dtype),
                   "w2": 0.5 * jax.random.normal(k3, (6, 2), dtype)}}


def _tiny_scores(p, x, guided=True):
    act = gb.relu(guided)
    y = jax.lax.conv_general_dilated(x, p["conv"]["kernel"], (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = act(y).reshape(x.shape[0], -1)
    return act(y @ p["fc"]["w1"] + 0.1) @ p["fc"]["w2"]


def _tiny_loss(p, pos, neg, lam):
    # as DAT: plain ReLUs for the classification loss, guided ones for the attention maps
    bce = (-jnp.sum(jax.nn.log_softmax(_tiny_scores(p, pos, False))[:, 1])
           - jnp.sum(jax.nn.log_softmax(_tiny_scores(p, neg, False))[:, 0]))
    return bce + lam * gb.reciprocative_loss(lambda q: _tiny_scores(p, q), pos, neg)


def test_reciprocative_terms_follow_the_official_ratios():
    # maps [2 classes, B, H, W]; class 0 = positive score, class 1 = negative score
    rng = np.random.default_rng(0)
    pos, neg = rng.random((2, 3, 4, 4)) + 0.1, rng.random((2, 2, 4, 4)) + 0.1
    t = gb.reciprocative_terms(jnp.asarray(pos), jnp.asarray(neg))
    mu = lambda m: m.mean(axis=(-2, -1))          # noqa: E731
    sd = lambda m: m.std(axis=(-2, -1))           # noqa: E731
    want = (sd(pos[0]).sum() / mu(pos[0]).sum(), sd(neg[1]).sum() / mu(neg[1]).sum(),
            mu(pos[1]).sum() / sd(pos[1]).sum(), mu(neg[0]).sum() / sd(neg[0]).sum())
    np.testing.assert_allclose(np.array(t), want, rtol=1e-5)


def test_reciprocative_loss_is_second_order_and_matches_finite_differences():
    with jax.enable_x64(True):
        p = _tiny_net(jax.random.PRNGKey(3), jnp.float64)
        kx = jax.random.split(jax.random.PRNGKey(4))
        pos = jax.random.normal(kx[0], (3, 7, 7, 3), jnp.float64)
        neg = jax.random.normal(kx[1], (3, 7, 7, 3), jnp.float64)
        g0 = jax.grad(_tiny_loss)(p, pos, neg, 0.0)
        g5 = jax.grad(_tiny_loss)(p, pos, neg, 5.0)
        # the regulariser's gradient reaches both the conv and the fc parameters
        for path in (("conv", "kernel"), ("fc", "w1"), ("fc", "w2")):
            a, b = g0[path[0]][path[1]], g5[path[0]][path[1]]
            assert float(jnp.max(jnp.abs(a - b))) > 1e-3 * float(jnp.max(jnp.abs(a))), path
        # and is linear in lambda (the loss is bce + lam * reg)
        g1 = jax.grad(_tiny_loss)(p, pos, neg, 1.0)
        lin = jax.tree_util.tree_map(lambda a, b, c: (c - a) - 5 * (b - a), g0, g1, g5)
        assert max(float(jnp.max(jnp.abs(v))) for v in jax.tree_util.tree_leaves(lin)) < 1e-8
        # central finite differences of the full loss along random directions
        leaves, tree = jax.tree_util.tree_flatten(p)
        rng = np.random.default_rng(0)
        for t in range(3):
            d = jax.tree_util.tree_unflatten(tree, [jnp.asarray(rng.standard_normal(l.shape)) for l in leaves])
            eps = 1e-6
            plus = jax.tree_util.tree_map(lambda a, b: a + eps * b, p, d)
            minus = jax.tree_util.tree_map(lambda a, b: a - eps * b, p, d)
            fd = (_tiny_loss(plus, pos, neg, 5.0) - _tiny_loss(minus, pos, neg, 5.0)) / (2 * eps)
            an = sum(jnp.sum(a * b) for a, b in zip(jax.tree_util.tree_leaves(g5), jax.tree_util.tree_leaves(d)))
            np.testing.assert_allclose(float(an), float(fd), rtol=1e-5, atol=1e-7)
        # only the regulariser part: its gradient is not zero (a real second-order path)
        greg = jax.grad(lambda q: gb.reciprocative_loss(lambda x: _tiny_scores(q, x), pos, neg))(p)
        assert float(jnp.max(jnp.abs(greg["conv"]["kernel"]))) > 0


def test_vggm_mat_roundtrip_and_errors(tmp_path):
    params = vggm.init_vggm(jax.random.PRNGKey(0))
    path = tmp_path / "imagenet-vgg-m.mat"
    vggm.save_vggm_mat(path, params)
    loaded = vggm.load_vggm_mat(path)
    for name in vggm.VGGM_LAYERS:
        np.testing.assert_array_equal(loaded[name]["kernel"], params[name]["kernel"])
        np.testing.assert_array_equal(loaded[name]["bias"], params[name]["bias"])
    f = vggm.vggm_features(loaded, jnp.full((2, 107, 107, 3), 100.0))
    assert f.shape == (2, 3, 3, 512)
    bad = dict(params, conv2={"kernel": jnp.zeros((3, 3, 96, 256)), "bias": jnp.zeros(256)})
    vggm.save_vggm_mat(tmp_path / "bad.mat", bad)
    with pytest.raises(ValueError, match=r"conv2 filters: expected shape \(5, 5, 96, 256\)"):
        vggm.load_vggm_mat(tmp_path / "bad.mat")
    t = jaxtrack.make_tracker("dat", backbone="vggm", weights=str(path))
    np.testing.assert_array_equal(t.params["conv"]["conv3"]["kernel"], params["conv3"]["kernel"])
    with pytest.raises(FileNotFoundError, match="nope.mat"):
        jaxtrack.make_tracker("dat", backbone="vggm", weights=str(tmp_path / "nope.mat"))


def test_vggm_lrn_and_pool_match_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 9, 9, 7)).astype(np.float32) * 30
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2))
    # MDNet's LRN: sum of squares over 5 neighbouring channels
    sq = torch.nn.functional.pad(xt ** 2, (0, 0, 0, 0, 2, 2))
    s = sum(sq[:, i:i + 7] for i in range(5))
    want = (xt / (2 + 1e-4 * s) ** 0.75).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(vggm.lrn(jnp.asarray(x)), want, rtol=1e-5)
    pool = torch.nn.functional.max_pool2d(xt, 3, 2).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(vggm.maxpool3s2(jnp.asarray(x)), pool)


@pytest.mark.parametrize("stride", [1, 2])
def test_vggm_derivative_rules_equal_autodiff_to_second_order(stride):
    """``conv2d`` and ``channel_window_sum`` carry their own derivative rules (fast paths on
    XLA:CPU); their first and second derivatives equal XLA's autodiff of the plain ops."""
    rng = np.random.default_rng(stride)
    x = jnp.asarray(rng.standard_normal((2, 11, 11, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 3, 5)), jnp.float32)
    w2 = jnp.asarray(rng.standard_normal((3, 3, 5, 4)), jnp.float32)

    def plain_conv(a, k, s):
        return jax.lax.conv_general_dilated(a, k, (s, s), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def plain_window(v):
        p = jnp.pad(v, ((0, 0),) * 3 + ((2, 2),))
        return sum(p[..., i:i + v.shape[-1]] for i in range(5))

    def net(conv, window, a, k, k2):
        h = conv(a, k, stride)
        h = h / (2.0 + 1e-1 * window(jnp.square(h))) ** 0.75
        return jnp.sum(jnp.tanh(conv(h, k2, 1)))

    def second_order(conv, window):
        # the attention term's shape: a loss on the input gradient, differentiated in all inputs
        g = lambda a, k, k2: jax.grad(net, argnums=2)(conv, window, a, k, k2)   # noqa: E731
        return jax.grad(lambda a, k, k2: jnp.sum(jnp.square(g(a, k, k2))), argnums=(0, 1, 2))(x, w, w2)

    def first_order(conv, window):
        return jax.grad(net, argnums=(2, 3, 4))(conv, window, x, w, w2)

    ours = (first_order(vggm.conv2d, vggm.channel_window_sum), second_order(vggm.conv2d, vggm.channel_window_sum))
    # inside a loop (DAT trains in a fori_loop) no kernel gradient falls back to XLA's form,
    # a convolution with the batch as its contracted dimension
    looped = jax.make_jaxpr(lambda k: jax.lax.fori_loop(
        0, 2, lambda i, kk: kk + second_order(vggm.conv2d, vggm.channel_window_sum)[1], k))(w)
    assert "lhs_spec=(3, 0, 1, 2)" not in str(looped)
    want = (first_order(plain_conv, plain_window), second_order(plain_conv, plain_window))
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * float(np.abs(b).max()))


def test_folded_mobilenet_matches_the_flax_module(mobilenet_pt):
    from jaxtrack.models.mobilenet_v2 import MobileNetV2Features, fold_batchnorm, folded_features
    from jaxtrack.models.pretrained import mobilenet_v2_variables
    v = mobilenet_v2_variables(mobilenet_pt)
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 107, 107, 3)) * 255
    ref = jax.jit(MobileNetV2Features(last_block=13).apply)(v, x)
    got = jax.jit(folded_features)(fold_batchnorm(v, 13), x)
    assert got.shape == (2, 7, 7, 96)
    np.testing.assert_allclose(got, ref, atol=1e-4 * float(jnp.max(jnp.abs(ref))))


def test_samples_and_bbox_regression():
    key = jax.random.PRNGKey(0)
    box = jnp.array([50.0, 40.0, 30.0, 20.0])
    img = jnp.array([200.0, 150.0])
    pos, ok = dat.gen_filtered(key, "gaussian", box, 100, img, 0.1, 1.2, iou_range=(0.7, 1.0))
    assert bool(ok) and float(jnp.min(dat.box_iou(pos, box))) >= 0.7
    neg, _ = dat.gen_filtered(key, "uniform", box, 100, img, 1.5, 1.2, iou_range=(0.0, 0.3))
    assert float(jnp.max(dat.box_iou(neg, box))) <= 0.3
    whole = dat.gen_samples(key, "whole", box, 100, img, 0.0, 1.2, 1.1)
    assert float(jnp.min(whole[:, 2:])) >= 10 and float(jnp.max(whole[:, :2] + whole[:, 2:] / 2)) <= 200
    # ridge regression recovers a linear map from features to MDNet's box targets
    boxes, _ = dat.gen_filtered(key, "uniform", box, 200, img, 0.3, 1.5, 1.1)
    c = dat._xywh_to_cxcy(boxes)
    g = dat._xywh_to_cxcy(box)
    y = jnp.concatenate([(g[:2] - c[:, :2]) / c[:, 2:], jnp.log(g[2:] / c[:, 2:])], 1)
    feats = jnp.concatenate([y * 100.0, jax.random.normal(key, (200, 20))], 1)
    cfg = dat.DATConfig(bbreg_alpha=1e-3)
    w, b = dat.fit_bbreg(cfg, feats, boxes, box, jnp.ones(200, bool))
    np.testing.assert_allclose(feats @ w + b, y, atol=1e-3)


def test_chunked_extraction_equals_one_batch():
    """Candidates / collected samples go through the conv part in chunks (lax.map): same features."""
    import dataclasses
    from jaxtrack.core import Frame
    t = jaxtrack.make_tracker("dat", backbone="vggm", allow_random=True, chunk=4)
    rng = np.random.default_rng(0)
    frame = Frame(jnp.asarray(rng.integers(0, 256, (120, 160, 3)), jnp.uint8), jnp.array([120, 160], jnp.int32))
    boxes = jnp.asarray(np.c_[rng.uniform(0, 100, (10, 2)), rng.uniform(15, 50, (10, 2))], jnp.float32)
    chunked = dat.extract(t.config, t.params["conv"], frame, boxes)          # 3 chunks, last one padded
    whole = dat.conv_features(t.config, t.params["conv"],
                              dat.crop_patches(t.config, frame, boxes)).reshape(10, -1)
    assert chunked.shape == whole.shape == (10, 4608)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(whole))))
    one = dat.extract(dataclasses.replace(t.config, chunk=10), t.params["conv"], frame, boxes)
    np.testing.assert_allclose(one, whole, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(whole))))


SMALL = dict(n_samples=16, n_bbreg=32, n_pos_init=16, n_neg_init=32, maxiter_init=2, n_pos_update=8,
             n_neg_update=8, n_frames_long=3, n_frames_short=2, maxiter_update=1, batch_pos=8,
             batch_neg=8, batch_neg_cand=16, att_batch=2, att_frames=2, att_pos_per_frame=2,
             att_neg_per_frame=2, chunk=16, long_interval=2)


def test_config_errors():
    with pytest.raises(TypeError, match="lamda"):
        jaxtrack.make_tracker("dat", backbone="vggm", allow_random=True, lamda=3)
    with pytest.raises(ValueError, match="attention must be"):
        jaxtrack.make_tracker("dat", backbone="vggm", allow_random=True, attention="both")
    with pytest.raises(ValueError, match="memory_dtype"):
        jaxtrack.make_tracker("dat", backbone="vggm", allow_random=True, memory_dtype="float16")
    with pytest.raises(FileNotFoundError, match="imagenet-vgg-m.mat"):
        jaxtrack.make_tracker("dat", backbone="vggm")


@pytest.mark.slow
@pytest.mark.parametrize("attention,lam", [("reg", 5.0), ("weight", 0.0)])
def test_tracker_runs_jitted_with_fixed_shapes(attention, lam):
    from jaxtrack.data.synthetic import make_sequence
    from jaxtrack.driver import JitTracker, run_sequence
    t = jaxtrack.make_tracker("dat", backbone="vggm", allow_random=True, attention=attention, lam=lam, **SMALL)
    seq = make_sequence(1, num_frames=5)
    jt = JitTracker(t)
    r = run_sequence(jt, seq)
    assert r.boxes.shape == (5, 4) and np.all(np.isfinite(r.boxes))
    assert jt.num_compilations == 2


@pytest.mark.slow
def test_classifier_loss_gradients_change_with_lambda_vggm():
    t = jaxtrack.make_tracker("dat", backbone="vggm", allow_random=True)
    c, conv, fc = t.config, t.params["conv"], t.params["fc"]
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    pf, nf = jax.random.normal(k[0], (4, 4608)), jax.random.normal(k[1], (4, 4608))
    ap_, an = jax.random.uniform(k[2], (2, 107, 107, 3)) * 255, jax.random.uniform(k[3], (2, 107, 107, 3)) * 255

    def grads(lam):
        return jax.jit(jax.grad(lambda f, cv: dat.classifier_loss(c, f, cv, pf, nf, ap_, an, k[0], lam)[0],
                                argnums=(0, 1)))(fc, conv)
    (f0, c0), (f5, c5) = grads(0.0), grads(5.0)
    assert float(jnp.max(jnp.abs(c0["conv1"]["kernel"]))) == 0.0    # bce: conv sees no gradient
    assert float(jnp.max(jnp.abs(c5["conv1"]["kernel"]))) > 0.0
    assert float(jnp.max(jnp.abs(f5["fc4"]["kernel"] - f0["fc4"]["kernel"]))) > 0.0


@pytest.mark.slow
def test_dat_on_otb(otb_root):
    """The six-sequence evaluation (CPU: tens of minutes); prints AUC per sequence."""
    from jaxtrack.data import load_dataset
    from jaxtrack.driver import JitTracker, run_sequence
    from jaxtrack.eval.metrics import sequence_metrics
    jt = JitTracker(jaxtrack.make_tracker("dat", backbone="mobilenet_v2"))
    aucs = []
    for seq in load_dataset("otb", str(otb_root)):
        r = run_sequence(jt, seq)
        aucs.append(sequence_metrics(r.boxes, seq.gt, seq.index_base)["auc"])
        print(seq.name, aucs[-1])
    assert np.mean(aucs) > 0.3


def test_batches_walk_the_permutation_rounds():
    """``_perm_idx``'s batch ``it`` is positions ``it*n ..`` of the concatenated
    ``permutation_round``s (valid entries only), the official ``train``'s ``np.random.permutation``
    walk that the reference harness replays."""
    key = jax.random.PRNGKey(5)
    mask = jnp.arange(12) % 3 != 1
    rounds = np.concatenate([np.asarray(dat.permutation_round(key, mask, r))[:8] for r in range(4)])
    assert sorted(rounds[:8]) == [i for i in range(12) if i % 3 != 1]
    for it in range(3):
        np.testing.assert_array_equal(dat._perm_idx(key, mask, it, 8, 8), rounds[it * 8:it * 8 + 8])


@pytest.mark.slow
def test_draw_helpers_are_the_trackers_own_draws():
    """``init_draws``, ``step_keys``, ``candidate_boxes`` and ``collect_boxes`` give the boxes
    the tracker itself uses (the reference harness's ``--shared-draws`` replays them into the
    official code)."""
    from jaxtrack.data.synthetic import make_sequence
    from jaxtrack.frames import pad_frame
    # success_thr: every frame a success, so that samples are stored
    t = jaxtrack.make_tracker("dat", backbone="vggm", allow_random=True, lam=0.0, success_thr=-1e9, **SMALL)
    c, seq, key = t.config, make_sequence(1, num_frames=4), jax.random.PRNGKey(5)
    box = jnp.asarray(seq.gt[0], jnp.float32)
    wh = jnp.asarray(seq.frame(0).shape[1::-1], jnp.float32)
    state = jax.jit(t.init)(t.params, pad_frame(seq.frame(0)), box, key)
    draws, _, _ = dat.init_draws(c, key, box, wh)
    np.testing.assert_allclose(state.pos_boxes[0], draws["pos"][:c.n_pos_update], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(state.neg_boxes[0], draws["neg"][:c.n_neg_update], rtol=1e-6, atol=1e-4)
    step, found = jax.jit(t.track_step), 0
    for i in range(1, 4):
        frame = pad_frame(seq.frame(i))
        _, ks, kc, _ = dat.step_keys(state.key)
        cand = dat.candidate_boxes(c, ks, state.box, state.trans_f, wh)
        scores = dat.scores_of(c, state.fc, dat.extract(c, t.params["conv"], frame, cand))
        new, out = step(t.params, state, frame)
        if not bool(out.lost):      # the new box: the mean of the top-k candidates; samples drawn round it stored
            top = cand[jax.lax.top_k(scores, c.top_k)[1]]
            np.testing.assert_allclose(new.box, jnp.mean(top, 0), rtol=1e-6)
            pos, neg = dat.collect_boxes(c, kc, new.box, wh)
            seq_no = int(new.n_stored) - 1
            # outside the jitted step XLA fuses the box arithmetic differently: equal to a float32 ulp
            np.testing.assert_allclose(new.pos_boxes[seq_no % c.n_frames_long], pos, rtol=1e-6, atol=1e-4)
            np.testing.assert_allclose(new.neg_boxes[seq_no % c.n_frames_short], neg, rtol=1e-6, atol=1e-4)
            found += 1
        state = new
    assert found == 3
