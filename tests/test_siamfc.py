"""SiamFC: the contract (pure, jittable, pytree state), weights, and tracking for real."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxtrack
from jaxtrack import checkpoints
from jaxtrack.data.synthetic import make_sequence
from jaxtrack.driver import JitTracker, run_sequence
from jaxtrack.frames import pad_frame
from jaxtrack.eval.metrics import sequence_metrics
from jaxtrack.trackers import siamfc


def test_registry_and_config_errors():
    assert "siamfc" in jaxtrack.available_trackers()
    with pytest.raises(KeyError, match="unknown tracker 'nope'"):
        jaxtrack.make_tracker("nope")
    with pytest.raises(TypeError, match="scale_stepp"):
        jaxtrack.make_tracker("siamfc", scale_stepp=1.1, allow_random=True)
    t = jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2", window_influence=0.3, allow_random=True)
    assert t.config.window_influence == 0.3 and t.config.scale_step == 1.0375


def test_siamfc_pytorch_hyperparameters_are_the_defaults():
    c = siamfc.SiamFCConfig()
    assert (c.exemplar_size, c.instance_size, c.num_scales, c.scale_step, c.scale_penalty,
            c.scale_lr, c.window_influence, c.response_up) == (127, 255, 3, 1.0375, 0.9745, 0.59, 0.176, 16)


@pytest.mark.parametrize("backbone", ["alexnet", "mobilenet_v2"])
def test_state_is_a_pytree_and_steps_are_pure(backbone):
    t = jaxtrack.make_tracker("siamfc", backbone=backbone, allow_random=True)
    seq = make_sequence(1, num_frames=3)
    init, step = jax.jit(t.init), jax.jit(t.track_step)
    state = init(t.params, pad_frame(seq.frame(0)), jnp.asarray(seq.gt[0], jnp.float32), jax.random.PRNGKey(0))
    leaves = jax.tree_util.tree_leaves(state)
    assert leaves and all(isinstance(x, jax.Array) for x in leaves)
    f1 = pad_frame(seq.frame(1))
    s1, o1 = step(t.params, state, f1)
    s2, o2 = step(t.params, state, f1)           # same inputs, same outputs: no hidden state
    np.testing.assert_array_equal(np.asarray(o1.box), np.asarray(o2.box))
    assert o1.box.shape == (4,) and o1.score.shape == ()
    assert int(s1.frame_index) == 1


def test_alexnet_loads_a_siamfc_pytorch_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    t = jaxtrack.make_tracker("siamfc", backbone="alexnet", allow_random=True)
    sd = {}
    for name, shape in [("conv1", (96, 3, 11, 11)), ("conv2", (256, 48, 5, 5)), ("conv3", (384, 256, 3, 3)),
                        ("conv4", (384, 192, 3, 3)), ("conv5", (256, 192, 3, 3))]:
        sd[f"backbone.{name}.0.weight"] = torch.randn(shape) * 0.01
        sd[f"backbone.{name}.0.bias"] = torch.zeros(shape[0])
        if name != "conv5":
            for k, v in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
                sd[f"backbone.{name}.1.{k}"] = torch.full((shape[0],), v)
    path = tmp_path / "siamfc_alexnet_e50.pth"
    torch.save(sd, path)
    t2 = jaxtrack.make_tracker("siamfc", backbone="alexnet", weights=str(path))
    k = t2.params["backbone"]["params"]
    assert jax.tree_util.tree_structure(k) == jax.tree_util.tree_structure(t.params["backbone"]["params"])


def test_wrong_shape_checkpoint_is_named(tmp_path):
    cfg = siamfc.SiamFCConfig(backbone="mobilenet_v2", adjust_channels=64)
    bad = siamfc.init_head(cfg, jax.random.PRNGKey(0))
    path = tmp_path / "head.msgpack"
    checkpoints.save_variables(str(path), bad)
    with pytest.raises(ValueError, match="adjust"):
        jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2", weights=str(path))
    with pytest.raises(FileNotFoundError, match="not found"):
        jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2", weights=str(tmp_path / "missing.msgpack"))


def test_trained_mobilenet_siamfc_tracks_a_synthetic_sequence():
    if not os.path.exists(checkpoints.default_checkpoint("siamfc", "mobilenet_v2")):
        pytest.fail("the committed SiamFC MobileNetV2 head is missing")
    jt = JitTracker(jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2"))
    aucs, random_aucs = [], []
    rand = JitTracker(jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2", params={
        "backbone": jt.params["backbone"],
        "head": siamfc.init_head(jt.tracker.config, jax.random.PRNGKey(7))}))
    for seed in (101, 102):           # training used synthetic seeds >= 1000
        seq = make_sequence(seed, num_frames=30)
        aucs.append(sequence_metrics(run_sequence(jt, seq).boxes, seq.gt, 0)["auc"])
        random_aucs.append(sequence_metrics(run_sequence(rand, seq).boxes, seq.gt, 0)["auc"])
    assert np.mean(aucs) > 0.5, aucs
    assert np.mean(aucs) > np.mean(random_aucs), (aucs, random_aucs)


def test_untrained_heads_keep_dot_products_centre_and_whiten():
    """The heads of experiments/make_siamfc_heads.py: identity keeps features.13's dot
    products, ``centered`` removes the mean, ``whitened`` gives unit covariance, ``pca64``
    keeps the top 64 components; each has the trained head's shapes."""
    from jaxtrack.train.siamfc import HEADS, feature_statistics, untrained_head
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((96, 96)) * np.linspace(0.1, 3, 96)
    feats = (rng.standard_normal((4000, 96)) @ mix + 5.0).astype(np.float32)
    mean, values, comps = feature_statistics(feats)

    def apply(h):
        return feats @ h["adjust"]["kernel"] + h["adjust"]["bias"]

    heads = {n: untrained_head(n, mean, values, comps, seed=0) for n in HEADS}
    for h in heads.values():
        assert h["adjust"]["kernel"].shape == (96, 128) and h["adjust"]["bias"].shape == (128,)
    ident = apply(heads["identity"])
    np.testing.assert_allclose(ident @ ident[:5].T, feats @ feats[:5].T, rtol=1e-5)
    np.testing.assert_allclose(apply(heads["centered"]).mean(0), 0, atol=1e-3)
    white = apply(heads["whitened"])[:, :96]
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(96), atol=1e-3)
    pca = apply(heads["pca64"])
    assert np.abs(pca[:, 64:]).max() == 0 and pca[:, :64].var(0)[0] > pca[:, :64].var(0)[-1]
    with pytest.raises(ValueError, match="unknown head"):
        untrained_head("learned")


def test_pool_head_scales_the_projection_to_unit_logits():
    """``--head-init``: the untrained head fitted on a pool, scaled so the response logits
    have unit standard deviation (the projection itself unchanged up to that scale)."""
    from jaxtrack.trackers import siamfc
    from jaxtrack.train.siamfc import pool_head, untrained_head
    rng = np.random.default_rng(0)
    pool = {"z": rng.standard_normal((8, 16, 16, 96)).astype(np.float16) + 2,
            "x": rng.standard_normal((8, 32, 32, 96)).astype(np.float16) + 2}
    config = siamfc.SiamFCConfig(backbone="mobilenet_v2")
    head = pool_head(config, "identity", pool)
    adj = head["adjust"]
    z = jnp.einsum("bhwc,cd->bhwd", jnp.asarray(pool["z"], jnp.float32), adj["kernel"]) + adj["bias"]
    x = jnp.einsum("bhwc,cd->bhwd", jnp.asarray(pool["x"], jnp.float32), adj["kernel"]) + adj["bias"]
    logits = siamfc.score(config, {"head": {"bias": jnp.zeros(())}}, siamfc.template_features(config, z), x)
    assert abs(float(jnp.std(logits)) - 1.0) < 1e-3
    raw = untrained_head("identity")["adjust"]["kernel"]
    gain = float(adj["kernel"][0, 0])
    np.testing.assert_allclose(np.asarray(adj["kernel"]), raw * gain, rtol=1e-6)


def test_small_targets_variant_floors_the_exemplar_side():
    """``min_exemplar_side``: a 10 px target gets a 64 px exemplar (and a 64 * 255 / 127 px
    search region) on every frame; a large target keeps siamfc-pytorch's sides."""
    tracker = jaxtrack.make_tracker("siamfc", variant="tiny", allow_random=True, min_exemplar_side=64.0)
    jt = JitTracker(tracker)
    seq = make_sequence([3, 1], num_frames=3, size=(96, 120))
    frame = pad_frame(seq.frame(0))
    state = jt.init(tracker.params, frame, jnp.array([50.0, 40.0, 10.0, 10.0]))
    assert float(state.z_side) == 64.0
    for i in (1, 2):
        state, _ = jt.step(tracker.params, state, pad_frame(seq.frame(i)))
        assert float(state.z_side) >= 64.0 - 1e-4
        np.testing.assert_allclose(float(state.x_side), float(state.z_side) * 191 / 127, rtol=1e-6)
    big = jt.init(tracker.params, frame, jnp.array([20.0, 20.0, 60.0, 50.0]))
    assert float(big.z_side) == pytest.approx(np.sqrt((60 + 55) * (50 + 55)), rel=1e-6)
