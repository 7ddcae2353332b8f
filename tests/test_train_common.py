"""jaxtrack.train: the pieces every training script shares (pool cache, resumable state,
log, flags, provenance) and the small pure helpers of the recipes."""
import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxtrack.train import common


def test_cached_pool_writes_once_and_reloads(tmp_path):
    path = str(tmp_path / "sub" / "pool.npz")
    calls = []

    def make():
        calls.append(1)
        return {"z": np.arange(6, dtype=np.float16).reshape(2, 3), "sources": np.array([3, 1], np.int32)}

    first = common.cached_pool(path, make)
    assert len(calls) == 1 and os.path.exists(path)
    assert os.listdir(tmp_path / "sub") == ["pool.npz"]              # no temporary file left behind
    stamp = os.stat(path).st_mtime_ns
    again = common.cached_pool(path, make)
    assert len(calls) == 1 and os.stat(path).st_mtime_ns == stamp    # read back, not made again
    assert list(again) == ["z", "sources"]
    for k in first:
        assert again[k].dtype == first[k].dtype
        np.testing.assert_array_equal(again[k], first[k])


def test_cached_pool_leaves_nothing_when_make_fails(tmp_path):
    path = str(tmp_path / "pool.npz")

    def make():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        common.cached_pool(path, make)
    assert os.listdir(tmp_path) == []


def test_checkpoint_roundtrip(tmp_path, capsys):
    path = str(tmp_path / "checkpoint.msgpack")
    params = {"head": {"kernel": jnp.arange(6.0).reshape(2, 3), "bias": jnp.float32(0.5)}}
    schedule, opt = common.siamfc_sgd(1e-2, 1e-5, 10, 5e-4, 0.9)
    opt_state = opt.init(params)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    template = {"trainable": jax.tree_util.tree_map(jnp.zeros_like, params),
                "opt_state": opt.init(params), "step": 0}
    assert common.restore_checkpoint(path, template) is None             # nothing saved yet
    common.save_checkpoint(path, {"trainable": params, "opt_state": opt_state, "step": 7})
    assert os.listdir(tmp_path) == ["checkpoint.msgpack"]
    restored = common.restore_checkpoint(path, template)
    assert "resumed from" in capsys.readouterr().out and int(restored["step"]) == 7
    want = jax.tree_util.tree_leaves({"trainable": params, "opt_state": opt_state})
    got = jax.tree_util.tree_leaves({"trainable": restored["trainable"], "opt_state": restored["opt_state"]})
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_siamfc_sgd_decays_log_linearly():
    schedule, _ = common.siamfc_sgd(1e-2, 1e-5, 100, 5e-4, 0.9)
    np.testing.assert_allclose(float(schedule(0)), 1e-2, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(50)), 1e-2 * (1e-3) ** 0.5, rtol=1e-5)
    np.testing.assert_allclose(float(schedule(100)), 1e-5, rtol=1e-5)


def test_log_record_appends_json_lines(tmp_path, capsys):
    path = str(tmp_path / "log.jsonl")
    common.log_record(path, {"step": 1, "loss": 0.5})
    common.log_record(path, {"step": 2, "loss": 0.25})
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
    assert capsys.readouterr().out.splitlines() == lines


def test_data_parallel_shards_the_batch_axis():
    devices = common.data_parallel()
    assert devices.mesh.axis_names == ("data",) and devices.mesh.size == len(jax.devices())
    x = jax.device_put(np.zeros((2 * len(jax.devices()), 3), np.float32), devices.data)
    assert x.sharding == devices.data
    assert jax.device_put(np.zeros(3), devices.replicated).sharding.is_fully_replicated


def test_flags_and_provenance(tmp_path):
    ap = argparse.ArgumentParser()
    common.add_data_args(ap, synthetic=48)
    common.add_sgd_args(ap)
    common.add_run_args(ap, ckpt_every=100)
    args = ap.parse_args([])
    assert (args.synthetic, args.lr, args.final_lr, args.weight_decay, args.momentum) == (48, 1e-2, 1e-5, 5e-4, 0.9)
    assert (args.seed, args.ckpt_every, args.stop_after, args.export) == (0, 100, None, None)
    assert args.images.endswith(os.path.join("jaxtrack", "train_images"))
    args = ap.parse_args(["--images", "", "--synthetic", "2", "--stop-after", "3", "--export", "w.msgpack"])
    assert (args.images, args.synthetic, args.stop_after, args.export) == ("", 2, 3, "w.msgpack")
    assert common.command_line("experiments/x.py", ["--a", "1"]) == "experiments/x.py --a 1"
    export = str(tmp_path / "w.msgpack")
    common.write_provenance(export, {"command": "x", "steps": 3})
    assert json.loads((tmp_path / "w.msgpack.json").read_text()) == {"command": "x", "steps": 3}


def test_siamfc_labels_sit_on_the_target():
    from jaxtrack.train import siamfc
    from jaxtrack.trackers.siamfc import SiamFCConfig
    config = SiamFCConfig(backbone="alexnet")
    r = siamfc.response_size(config)
    assert r == 17
    labels = siamfc.labels_for(np.array([[0.0, 0.0], [16.0, -8.0]], np.float32), r, config)
    assert labels.shape == (2, r, r) and labels[0, 8, 8] == 1 and labels[0, 8, 11] == 0
    assert labels[1, 7, 10] == 1 and labels[1, 8, 8] == 0            # moved by (2, -1) cells
    np.testing.assert_array_equal(labels[0], labels[0].T)            # centred: symmetric


def test_iounet_proposals_overlap_their_box():
    from jaxtrack import boxes as bx
    from jaxtrack.train import iounet
    rng = np.random.default_rng(0)
    box = np.array([100.0, 80.0, 40.0, 90.0])
    props, ious = iounet.perturb_proposals(rng, box, num=32)
    assert props.shape == (32, 4) and np.all(ious >= 0.1) and np.all(props[:, 2:] > 0)
    np.testing.assert_allclose(ious, [bx.iou(p.astype(np.float64), box) for p in props], rtol=1e-6)
    props2, targets = iounet.proposal_targets(np.random.default_rng(0), [box, box], 32)
    np.testing.assert_array_equal(props2[0], props)                  # same rng stream
    np.testing.assert_allclose(targets[0], 2 * ious - 1, rtol=1e-6)


def test_pair_kinds_draw_one_source_alone_and_name_an_empty_choice():
    """``raw_pair(kinds=...)`` draws only the kinds asked for (one data source alone), and
    asking for a kind without data is an error, not a silent fallback."""
    import numpy as np
    import pytest

    from jaxtrack.data.sources import raw_pair
    from jaxtrack.data.synthetic import make_sequence
    photo = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    cutout = np.zeros((40, 30, 4), np.uint8)
    cutout[5:35, 5:25] = (200, 30, 30, 255)
    seq = make_sequence([9, 0], num_frames=3, size=(96, 120))
    rng = np.random.default_rng(1)
    for _ in range(8):                 # the sequence's frames are 96 x 120, the photograph's 120 x 160
        z = raw_pair(rng, [photo], [seq], None, 0, paste=True, objects=[cutout], kinds=("sequence",))[0]
        assert z.shape[:2] == (96, 120)
        z = raw_pair(rng, [photo], [seq], None, 0, paste=True, objects=[cutout], kinds=("object",))[0]
        assert z.shape[:2] == (120, 160)
    with pytest.raises(ValueError, match="no training pair source left"):
        raw_pair(rng, [photo], [], None, 0, kinds=("sequence",))


def test_decay_towards_the_start_pulls_params_back_to_it():
    """``siamfc_sgd(anchor=...)``: with no loss gradient, the weights return to the anchor
    (plain weight decay would take them to zero)."""
    import jax.numpy as jnp
    import optax

    from jaxtrack.train.common import siamfc_sgd
    anchor = {"k": jnp.array([1.0, -2.0])}
    params = {"k": jnp.array([3.0, 0.0])}
    _, opt = siamfc_sgd(0.5, 0.5, 10, weight_decay=0.5, momentum=0.0, anchor=anchor)
    state = opt.init(params)
    for _ in range(60):
        updates, state = opt.update({"k": jnp.zeros(2)}, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params["k"], anchor["k"], atol=1e-4)
