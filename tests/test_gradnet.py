"""GradNet: second-order gradients are real, labels/loss follow the official code, the
update changes the template, tracking compiles once and follows a synthetic target."""
import dataclasses
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxtrack.train import gradnet as train_gradnet
from jaxtrack.trackers import gradnet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the continuous refind path compiles a second whole tracker (about 40 s): slow
SLOW_CASES = {"test_refind_is_the_second_search_of_the_official_rule[continuous]"}


def _tiny(seed=0, unshared=False, use_gradient=True, channels=16, feat=8, groups=3, k=2):
    """A small mobilenet_v2-layout GradNet working on fake backbone features."""
    # small maps keep the compile time of the second-order graph short:
    # shallow 8x8 -> template 4x4, search 12x12 -> 9x9 responses
    config = gradnet.GradNetConfig(adjust_channels=channels, use_gradient=use_gradient,
                                   unshared_deep=unshared, grad_scale=1e3, shallow_crop=8,
                                   template_crop=4)
    keys = jax.random.split(jax.random.PRNGKey(seed), 8)
    adj = lambda kk: {"kernel": 0.3 * jax.random.normal(kk, (feat, channels)),
                      "bias": 0.01 * jax.random.normal(kk, (channels,))}
    update, stats = gradnet.init_update(config, keys[2], channels, gamma=1.0)
    params = {"search": {"adjust": adj(keys[0])},
              "template": {"adjust": adj(keys[1]), **gradnet.init_deep_mnv2(config, keys[3], 0.5)},
              "bias": jnp.asarray(-0.5), "update": update, "update_stats": stats}
    if unshared:
        params["template0"] = {"adjust": adj(keys[1]), **gradnet.init_deep_mnv2(config, keys[4], 0.5)}
    z = jax.random.normal(keys[5], (groups, 10, 10, feat))
    x = jax.random.normal(keys[6], (groups, k, 12, 12, feat))
    offsets = np.asarray(jax.random.uniform(keys[7], (groups, k, 2), minval=-16, maxval=16))
    labels, weights = gradnet.make_labels(offsets, 12 - 4 + 1, 8, 16.0)
    return config, params, z, x, jnp.asarray(labels), jnp.asarray(weights)


def _loss(config, first_order=False, train=True):
    def f(trainable, frozen, z, x, labels, weights):
        params = {**frozen, **trainable}
        g, k = x.shape[:2]
        xf = gradnet.search_branch(config, params, x.reshape((g * k,) + x.shape[2:]))
        xf = xf.reshape((g, k) + xf.shape[1:])
        h = gradnet.shallow(config, params, z)
        zf, _, _ = gradnet.gradient_update(config, params, h, xf, labels, weights,
                                           train=train, first_order=first_order)
        return gradnet.weighted_logistic_loss(gradnet.score_groups(config, params, zf, xf), labels, weights)
    return f


def _split(params, unshared=False):
    keys = ["template", "update"] + (["template0"] if unshared else [])
    return {k: params[k] for k in keys}, {k: v for k, v in params.items() if k not in keys}


def _norm(tree):
    return float(jnp.sqrt(sum(jnp.sum(a ** 2) for a in jax.tree_util.tree_leaves(tree))))


@pytest.mark.parametrize("unshared", [False, True])
def test_second_order_gradient_is_present(unshared):
    config, params, z, x, labels, weights = _tiny(unshared=unshared)
    trainable, frozen = _split(params, unshared)
    g2 = jax.jit(jax.grad(_loss(config)))(trainable, frozen, z, x, labels, weights)
    g1 = jax.jit(jax.grad(_loss(config, first_order=True)))(trainable, frozen, z, x, labels, weights)
    # every trainable part gets a non-zero gradient
    for part in trainable:
        assert _norm(g2[part]) > 1e-6, part
    # the update subnet (official t_scala5_zz): non-zero, and its gradient is the same with
    # or without second-order terms: the inner gradient does not depend on its weights
    np.testing.assert_allclose(g2["update"]["conv"]["kernel"], g1["update"]["conv"]["kernel"],
                               rtol=1e-4, atol=1e-7)
    # the layers the inner gradient does depend on get real second-order terms
    inner = "template0" if unshared else "template"
    for name in ("adjust", "deep1", "deep2") if not unshared else ("deep1", "deep2"):
        diff = _norm(jax.tree_util.tree_map(lambda a, b: a - b, g2[inner][name], g1[inner][name]))
        assert diff > 1e-3 * _norm(g2[inner][name]), (inner, name, diff)
    if unshared:   # template0 only enters through the inner gradient: first order sees nothing
        assert _norm(g1["template0"]) == 0.0 and _norm(g2["template0"]) > 0


def test_second_order_matches_finite_differences():
    """The full derivative, inner jax.grad included, against central differences (x64)."""
    with jax.enable_x64(True):
        config, params, z, x, labels, weights = _tiny(seed=3, groups=2, k=2)
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        z, x = z.astype(jnp.float64), x.astype(jnp.float64)
        trainable, frozen = _split(params)
        f = lambda t: _loss(config, train=False)(t, frozen, z, x, labels.astype(jnp.float64),
                                                 weights.astype(jnp.float64))
        g2 = jax.jit(jax.grad(f))(trainable)
        g1 = jax.jit(jax.grad(lambda t: _loss(config, first_order=True, train=False)(
            t, frozen, z, x, labels.astype(jnp.float64), weights.astype(jnp.float64))))(trainable)
        f = jax.jit(f)
        # direction: the deep1 kernel only (where first and second order differ)
        d = jax.random.normal(jax.random.PRNGKey(9), trainable["template"]["deep1"]["kernel"].shape, jnp.float64)
        def along(eps):
            t = jax.tree_util.tree_map(lambda a: a, trainable)
            t["template"] = {**t["template"], "deep1": {**t["template"]["deep1"],
                             "kernel": t["template"]["deep1"]["kernel"] + eps * d}}
            return f(t)
        eps = 1e-5
        fd = (along(eps) - along(-eps)) / (2 * eps)
        an2 = float(jnp.sum(g2["template"]["deep1"]["kernel"] * d))
        an1 = float(jnp.sum(g1["template"]["deep1"]["kernel"] * d))
        assert abs(fd - an2) < 1e-5 * max(1.0, abs(fd)), (fd, an2)
        assert abs(fd - an1) > 100 * abs(fd - an2), (fd, an1, an2)


def test_without_gradient_variant_has_no_inner_grad():
    config, params, z, x, labels, weights = _tiny(use_gradient=False)
    h = gradnet.shallow(config, params, z)
    xf = gradnet.search_branch(config, params, x.reshape((-1,) + x.shape[2:])).reshape(x.shape[:2] + (12, 12, -1))
    za, _, _ = gradnet.gradient_update(config, params, h, xf, labels, weights)
    zb, _, _ = gradnet.gradient_update(config, params, h, xf, -labels, weights)
    np.testing.assert_array_equal(za, zb)           # labels do not matter: no gradient read
    config_g = dataclasses.replace(config, use_gradient=True)
    za, _, _ = gradnet.gradient_update(config_g, params, h, xf, labels, weights)
    zb, _, _ = gradnet.gradient_update(config_g, params, h, xf, -labels, weights)
    assert float(jnp.max(jnp.abs(za - zb))) > 1e-4  # with the gradient they do


def test_labels_follow_official():
    # official createLogLossLabel: Euclidean radius 16/8 = 2 cells around floor(17/2)
    lab, w = gradnet.make_labels(np.zeros(2), 17, 8, 16.0)
    assert int((lab == 1).sum()) == 13 and lab[8, 8] == 1 and lab[8, 10] == 1 and lab[9, 10] == -1
    np.testing.assert_allclose(w[lab == 1].sum(), 0.5, rtol=1e-6)
    np.testing.assert_allclose(w[lab == -1].sum(), 0.5, rtol=1e-6)
    lab2, _ = gradnet.make_labels(np.array([16.0, -8.0]), 17, 8, 16.0)
    assert lab2[7, 10] == 1 and lab2[8, 8] == -1      # moved by (2, -1) cells
    s = jnp.asarray(np.random.default_rng(0).standard_normal((17, 17)), jnp.float32)
    ref = np.mean(w * np.log1p(np.exp(-lab * np.asarray(s))))
    np.testing.assert_allclose(gradnet.weighted_logistic_loss(s, lab, w), ref, rtol=1e-5)


def test_train_step_groups_sources():
    sources = np.repeat(np.arange(10), 3)
    rng = np.random.default_rng(0)
    t, idx = train_gradnet.sample_groups(rng, sources, 5, 4, True)
    assert idx.shape == (5, 4) and np.all(idx[:, 0] == t)
    for row in idx:
        assert len(set(sources[row].tolist())) == 4      # 4 different sources per template
    t, idx = train_gradnet.sample_groups(rng, sources, 5, 4, False)
    assert idx.shape == (20, 1) and np.all(idx[:, 0] == t)


@pytest.mark.slow
def test_track_synthetic(mobilenet_pt):
    """The whole tracker on a synthetic sequence: one compilation per function, the
    every-5-frames update changes the gradient template, the box follows the target."""
    import jaxtrack
    from jaxtrack.data.synthetic import make_sequence
    from jaxtrack.driver import JitTracker, run_sequence
    from jaxtrack.eval.metrics import sequence_metrics
    tracker = jaxtrack.make_tracker("gradnet", allow_random=True)
    jt = JitTracker(tracker)
    seq = make_sequence(0, num_frames=16, size=(240, 320))
    r = run_sequence(jt, seq)
    assert jt.num_compilations == 2
    assert np.all(np.isfinite(r.boxes))
    m = sequence_metrics(r.boxes, seq.gt, seq.index_base)
    assert m["prec20"] > 0.5, m


def test_heldout_probe_regimes():
    """The held-out probe scores the right search regions: with the second region equal
    to the first, "next" is "own" exactly; the update changes only the updated
    template's maps; and image_pair(box=...) keeps the given target."""
    from jaxtrack.data import pairs as pairlib
    config, params, _, _, _, _ = _tiny(seed=3)
    rng = np.random.default_rng(0)
    n = 12
    pool = {"z": rng.normal(size=(n, 10, 10, 8)).astype(np.float16),
            "x": rng.normal(size=(n, 12, 12, 8)).astype(np.float16),
            "offsets": rng.uniform(-16, 16, (n, 2)).astype(np.float32),
            "sources": np.repeat(np.arange(6), 2).astype(np.int32)}
    pool["x2"], pool["offsets2"] = pool["x"], pool["offsets"]
    res = train_gradnet.heldout_metrics(config, params, pool, k=3, chunk=5)
    assert set(res) == {"own", "generalization", "next"}
    for name in ("siamfc", "initial", "updated"):
        assert res["next"][name] == res["own"][name]
        assert res["own"][name]["maps"] == n and res["generalization"][name]["maps"] == 3 * n
        assert 0.0 <= res["own"][name]["hit"] <= 1.0 and np.isfinite(res["own"][name]["loss"])
    pool["x2"] = rng.normal(size=pool["x"].shape).astype(np.float16)
    moved = train_gradnet.heldout_metrics(config, params, pool, k=3, chunk=5)
    assert moved["next"]["updated"]["loss"] != res["next"]["updated"]["loss"]
    assert moved["own"] == res["own"]
    box = np.array([40.0, 30.0, 50.0, 40.0], np.float32)
    image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    _, box_z, _, box_x = pairlib.image_pair(np.random.default_rng(1), image, box=box)
    assert np.array_equal(box_z, box) and np.all(np.isfinite(box_x))


def test_next_view_loss_scores_the_second_view():
    """--target-view next: the update's gradient comes from the first view and the loss
    from the second; with the second view equal to the first it is the official loss."""
    config, params, z, x, labels, weights = _tiny(seed=4)
    trainable, frozen = train_gradnet.split_params(config, "full", params)
    loss_fn = train_gradnet.make_loss(config, "full")
    same, _ = loss_fn(trainable, frozen, z, x, labels, weights)
    again, _ = loss_fn(trainable, frozen, z, x, labels, weights, x, labels, weights)
    np.testing.assert_allclose(float(again), float(same), rtol=1e-6)
    x2 = jnp.roll(x, 3, axis=2)
    other, _ = loss_fn(trainable, frozen, z, x, labels, weights, x2, labels, weights)
    assert abs(float(other) - float(same)) > 1e-4
    # the gradient region still matters: a different first view changes the loss on x2
    moved, _ = loss_fn(trainable, frozen, z, x2, labels, weights, x2, labels, weights)
    assert abs(float(moved) - float(other)) > 1e-6


def test_train_search_adds_the_baselines_loss_and_trains_the_search_branch():
    """--train-search: the loss is GradNet's plus the SiamFC baseline's loss on every
    search region's own pair; the search branch and bias train from the latter only."""
    config, params, z, x, labels, weights = _tiny(seed=6)
    g, k = x.shape[:2]
    z_own = jax.random.normal(jax.random.PRNGKey(9), (g, k) + z.shape[1:])
    trainable, frozen = train_gradnet.split_params(config, "full", params, train_search=True)
    assert {"search", "bias"} <= set(trainable) and not {"search", "bias"} & set(frozen)
    loss_fn = jax.jit(train_gradnet.make_loss(config, "full"))
    gradnet_only, _ = loss_fn(trainable, frozen, z, x, labels, weights)
    joint, _ = loss_fn(trainable, frozen, z, x, labels, weights, z_own=z_own)
    head, rest = train_gradnet.split_params(config, "siamfc", params)
    pairs = lambda a: a.reshape((g * k, 1) + a.shape[2:])                  # noqa: E731
    baseline, base_grads = jax.jit(jax.value_and_grad(lambda t: train_gradnet.make_loss(config, "siamfc")(
        t, rest, z_own.reshape((g * k,) + z.shape[1:]), pairs(x), pairs(labels), pairs(weights))[0]))(head)
    np.testing.assert_allclose(float(joint), float(gradnet_only) + float(baseline), rtol=1e-5)
    grads = jax.jit(jax.grad(lambda t: loss_fn(t, frozen, z, x, labels, weights, z_own=z_own)[0]))(trainable)
    assert _norm(grads["search"]) > 0 and abs(float(grads["bias"])) > 0
    # ... from the baseline's loss alone: exactly the baseline's gradient on these pairs
    _close = lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-7)
    jax.tree_util.tree_map(_close, grads["search"]["adjust"], base_grads["head"]["adjust"])
    _close(grads["bias"], base_grads["head"]["bias"])
    # while the template branch still gets GradNet's gradient
    plain = jax.jit(jax.grad(lambda t: loss_fn(t, frozen, z, x, labels, weights)[0]))(trainable)
    jax.tree_util.tree_map(_close, grads["template"], plain["template"])


@pytest.mark.slow  # 12-30 s on 2 cores; the default suite stays under 15 min
def test_train_search_cli_moves_the_search_branch(tmp_path):
    """train_gradnet.py --train-search end to end: the exported weights carry a trained
    search branch (the official recipe leaves it at the SiamFC start)."""
    from jaxtrack import checkpoints
    base = ["--images", "", "--synthetic", "3", "--pool", "8", "--groups", "2", "--k", "2",
            "--steps", "2", "--seed", "5", "--allow-random-siamfc", "--pool-dir", str(tmp_path)]
    for name, extra in (("joint", ["--train-search", "--clip-template", "10"]), ("official", [])):
        proc = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "train_gradnet.py")] + base
                              + extra + ["--out", str(tmp_path / name), "--export", str(tmp_path / f"{name}.msgpack")],
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    config = gradnet.GradNetConfig()
    start = gradnet.trained_part(config, train_gradnet.start_params(config, seed=5, allow_random_siamfc=True))
    joint = checkpoints.load_variables(str(tmp_path / "joint.msgpack"), start)
    official = checkpoints.load_variables(str(tmp_path / "official.msgpack"), start)
    kernel = lambda p: np.asarray(p["search"]["adjust"]["kernel"])          # noqa: E731
    np.testing.assert_array_equal(kernel(official), kernel(start))
    assert np.abs(kernel(joint) - kernel(start)).max() > 1e-6


@pytest.mark.slow  # 12-30 s on 2 cores; the default suite stays under 15 min
def test_trace_gradnet_reports_updates_and_memory_drift():
    import jaxtrack
    from jaxtrack.data.synthetic import make_dataset
    from jaxtrack.eval.trace import gradnet_trace
    seq = make_dataset(3, 1, num_frames=12, size=(120, 160))[0]
    kw = dict(backbone="alexnet", allow_random=True)
    rec = gradnet_trace(jaxtrack.make_tracker("gradnet", **kw), seq)
    assert [r["frame"] for r in rec] == list(range(1, 12))
    assert [r["updated"] for r in rec] == [int(i % 5 == 0) for i in range(1, 12)]
    assert all(r["memory_drift"] == 0 for r in rec[:4]) and rec[4]["memory_drift"] > 0
    assert all(0 <= r["iou"] <= 1 for r in rec) and sum(r["stored"] for r in rec) >= 5  # frames 1-5 always
    # memory_keep = rescue_keep = 1: the memory never moves (the template still updates)
    frozen = gradnet_trace(jaxtrack.make_tracker("gradnet", memory_keep=1.0, rescue_keep=1.0, **kw), seq)
    assert all(r["memory_drift"] == 0 for r in frozen)


def test_zero_gradient_templates_enter_the_update_statistics():
    """The official batch's templates 1-7 (zero inner gradient) count in the update subnet's
    BN statistics exactly as explicit zero inputs would."""
    config, params, *_ = _tiny(seed=4)
    u = jax.random.normal(jax.random.PRNGKey(1), (1, 8, 8, 16))
    padded = jnp.concatenate([u, jnp.zeros((3, 8, 8, 16))])
    got, stats = gradnet.update_subnet(config, params, u, train=True, zero_templates=3)
    want, want_stats = gradnet.update_subnet(config, params, padded, train=True)
    np.testing.assert_allclose(got, want[:1], rtol=1e-5, atol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), stats, want_stats)
    alone, _ = gradnet.update_subnet(config, params, u, train=True)
    assert np.abs(np.asarray(alone) - np.asarray(got)).max() > 1e-3


def test_official_recipe_batch_weight_decay_and_template_init():
    """The official recipe: one template against ``groups`` regions of distinct sources (its
    own first), kernels decayed and biases not, the template branch drawn afresh."""
    sources = np.repeat(np.arange(10), 2)
    pool = {"z": np.arange(20, dtype=np.float32)[:, None, None, None] * np.ones((20, 4, 4, 3), np.float32),
            "x": np.arange(20, dtype=np.float32)[:, None, None, None] * np.ones((20, 6, 6, 3), np.float32),
            "offsets": np.zeros((20, 2), np.float32), "sources": sources}
    config = gradnet.GradNetConfig()
    (z, x, labels, _), _, _ = train_gradnet.make_batch(pool, config, 9, 0, 3, 8, 4, True, one_template=True)
    assert z.shape[0] == 1 and x.shape[:2] == (1, 8) and labels.shape[:2] == (1, 8)
    ids = x[0, :, 0, 0, 0].astype(int)
    assert ids[0] == int(z[0, 0, 0, 0]) and len(set(sources[ids].tolist())) == 8
    (z, x, _, _), _, _ = train_gradnet.make_batch(pool, config, 9, 0, 3, 8, 4, False, one_template=True)
    assert z.shape[0] == 8 and x.shape[:2] == (8, 1)
    with pytest.raises(ValueError, match="12 different sources"):
        train_gradnet.sample_groups(np.random.default_rng(0), sources, 1, 12, True)

    _, params, *_ = _tiny(seed=2)
    mask = train_gradnet.kernels_only({"template": params["template"], "update": params["update"]})
    flat = jax.tree_util.tree_flatten_with_path(mask)[0]
    assert any(v for _, v in flat) and all(v == (path[-1].key == "kernel") for path, v in flat)
    fresh = train_gradnet.random_template_branch(params, jax.random.PRNGKey(0), update_gamma=1.0)
    k = np.asarray(fresh["template"]["adjust"]["kernel"])
    assert np.abs(k).max() <= 0.02 + 1e-6 and 0.005 < k.std() < 0.01
    np.testing.assert_array_equal(fresh["template"]["adjust"]["bias"], np.float32(0.1))
    np.testing.assert_array_equal(fresh["update"]["bn"]["scale"], 1.0)
    np.testing.assert_array_equal(fresh["search"]["adjust"]["kernel"], params["search"]["adjust"]["kernel"])


def test_clip_template_never_clips_the_baseline():
    """``optimizer(clip_template=...)`` clips the template branch, not the search head nor the
    siamfc variant's head."""
    tree = {"template": jnp.ones(4), "search": jnp.ones(4), "head": jnp.ones(4)}
    grads = {k: 100.0 * jnp.ones(4) for k in tree}
    _, opt = train_gradnet.optimizer(tree, 1.0, 0.5, 10, 0.0, 0.0, clip_template=1.0)
    updates, _ = opt.update(grads, opt.init(tree), tree)
    norm = {k: float(jnp.linalg.norm(v)) for k, v in updates.items()}
    np.testing.assert_allclose(norm["template"], 1.0, rtol=1e-5)
    np.testing.assert_allclose(norm["search"], 200.0, rtol=1e-5)
    np.testing.assert_allclose(norm["head"], 200.0, rtol=1e-5)


@pytest.mark.parametrize("variant", ["tiny", "continuous"])
def test_refind_is_the_second_search_of_the_official_rule(mobilenet_pt, variant):
    """With a refind due, the step searches again around the image centre and keeps that
    result when both of its peaks are higher (track.py), computed here from two plain
    :func:`search_maps` calls; without one, the step is the first search alone. The two
    synthetic sequences give one refind kept and one refused."""
    import jaxtrack
    from jaxtrack.data.synthetic import make_sequence
    from jaxtrack.frames import pad_frame
    overrides = {} if variant == "tiny" else {"instance_size": 191, "response_up": 4}
    tracker = jaxtrack.make_tracker("gradnet", variant=variant, allow_random=True, **overrides)
    config, params = tracker.config, tracker.params
    init, step = jax.jit(tracker.init), jax.jit(tracker.track_step)
    search = jax.jit(lambda st, frame, c, side: gradnet.search_maps(config, params, st, frame, c,
                                                                    config.window_influence, disp_side=side))
    scales = np.asarray(gradnet.ops.scale_factors(config.num_scales, config.scale_step))
    lr, lo, hi = config.scale_lr, config.min_side_ratio, config.max_side_ratio
    kept = set()
    for seed in (2, 4):
        seq = make_sequence(seed, num_frames=2, size=(240, 320))
        state0 = init(params, pad_frame(seq.frame(0)), jnp.asarray(seq.gt[0], jnp.float32), jax.random.PRNGKey(0))
        frame = pad_frame(seq.frame(1))
        for refind in (False, True):
            state = state0._replace(refind=jnp.asarray(refind))
            m1 = search(state, frame, state.center, state.x_side)
            f1 = (1 - lr) + lr * scales[int(m1["best"])]
            side1 = np.clip(float(state.x_side) * f1, lo * float(state.x_side0), hi * float(state.x_side0))
            size1 = np.asarray(state.target_size) * f1
            want = np.concatenate([np.asarray(m1["center"]) - size1 / 2, size1])
            if refind:
                h, w = np.asarray(frame.size, np.float32)
                official = config.official_refind
                m2 = search(state, frame, jnp.asarray([w / 2, h / 2]) - (1.0 if official else 0.0),
                            side1 if official else state.x_side)
                f2 = scales[int(m2["best"])]
                size2 = ((1 - lr) * size1 + lr * np.asarray(state.target_size) * f2 if official
                         else np.asarray(state.target_size) * ((1 - lr) + lr * f2))
                better = bool(m2["peak"] > m1["peak"]) and bool(m2["gra_peak"] > m1["peak"])
                kept.add(better)
                if better:
                    want = np.concatenate([np.asarray(m2["center"]) - size2 / 2, size2])
            _, out = step(params, state, frame)
            np.testing.assert_allclose(np.asarray(out.box), want, atol=1e-3)
    assert kept == {True, False}
