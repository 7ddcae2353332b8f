"""GradNet (AlexNet) with ``--variant official`` computes what GradNet-Tensorflow computes: its
boxes and raw response maps, recorded by ``experiments/reference/gradnet_tf.py`` (numbers only,
``tests/fixtures/reference/gradnet``), on weights regenerated here from their seed.
docs/fidelity_gradnet.md has the whole comparison.
"""
import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxtrack
from jaxtrack.data import load_sequence
from jaxtrack.data.synthetic import make_sequence
from jaxtrack.frames import pad_frame
from jaxtrack.models import seeded
from jaxtrack.trackers import gradnet
from reference_checks import check_boxes as check_boxes_within, track_recording

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "reference" / "gradnet"
META = json.loads((FIXTURES / "gradnet_reference.json").read_text())
BOX_TOL = 0.01       # pixels, any coordinate of any frame (measured: 5e-5)
MAP_TOL = 1e-4       # max |ours - reference| / max |reference| (measured: 5e-6)
REAL_FRAMES = 16     # of the fixture's 40 (the test's time)
SYN_FRAMES = 16      # of the fixture's 24 (covers the updates at frames 5, 10, 15)


@functools.lru_cache(maxsize=1)
def official_tracker():
    weights = seeded.gradnet_tf_weights(META["weights"])
    assert seeded.digest(weights) == META["weights"]["sha256"], "the weights no longer regenerate"
    config = gradnet.GradNetConfig(backbone="alexnet", **META["jaxtrack_options"])
    params = gradnet.params_from_tf_tensors(config, weights)
    return jaxtrack.make_tracker("gradnet", backbone="alexnet", params=params, **META["jaxtrack_options"])


@functools.lru_cache(maxsize=1)
def jitted():
    t = official_tracker()

    def maps(params, state, frame):     # the raw maps track_step's first search computes
        m = gradnet.search_maps(t.config, params, state, frame, state.center, t.config.window_influence)
        return m["sia"], m["gra"]

    return jax.jit(t.init), jax.jit(t.track_step), jax.jit(maps)


def track(seq, num_frames, maps_at=()):
    t = official_tracker()
    init, step, maps = jitted()
    state = init(t.params, pad_frame(seq.frame(0)), jnp.asarray(seq.gt[0], jnp.float32))
    return track_recording(t.params, step, maps, state, seq, num_frames, maps_at)


def check_boxes(ours, ref):     # from frame 1: frame 0 is the reference's float64 box
    check_boxes_within(ours, ref, BOX_TOL, "GradNet-Tensorflow", first=1)


def test_synthetic_boxes_and_maps_are_gradnet_tensorflows():
    syn = META["synthetic"]
    seq = make_sequence(syn["make_sequence_seed"], num_frames=syn["make_sequence_num_frames"])
    ours, maps = track(seq, SYN_FRAMES, maps_at=(1, 2))
    check_boxes(ours, syn["boxes"][:SYN_FRAMES])
    with np.load(FIXTURES / "maps.npz") as ref:
        for k in (1, 2):
            for j, m in enumerate(("sia", "gra")):
                r = ref[f"frame{k}_{m}"].reshape(maps[k][j].shape)
                err = np.max(np.abs(maps[k][j] - r)) / np.max(np.abs(r))
                assert err <= MAP_TOL, f"frame {k} {m}: maps differ by {err:.3g} relative"


def test_crossing_boxes_are_gradnet_tensorflows(otb_root):
    real = META["real"]
    seq = load_sequence(otb_root / real["otb_sequence"], "otb")
    ours, _ = track(seq, REAL_FRAMES)
    check_boxes(ours, real["boxes"][:REAL_FRAMES])


def test_official_options_are_config_fields():
    from jaxtrack.configs import variants
    assert variants("gradnet")["official"] == {"backbone": "alexnet"}
    c = gradnet.GradNetConfig()                      # the official options are the default
    assert {k: getattr(c, k) for k in META["jaxtrack_options"]} == META["jaxtrack_options"]
    c = gradnet.GradNetConfig(**variants("gradnet")["continuous"])
    assert (c.crop, c.centre_cell, c.round_side, c.official_refind, c.clamp_box) == (
        "continuous", "exact", False, False, True)
    with pytest.raises(ValueError, match="crop"):
        gradnet.GradNetConfig(crop="rounded")
    with pytest.raises(ValueError, match="centre_cell"):
        gradnet.GradNetConfig(centre_cell="round")
