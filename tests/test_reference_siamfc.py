"""SiamFC with siamfc-pytorch's options (``crop="rounded"``, ``clamp_box=False``) computes what
siamfc-pytorch computes: its boxes and response maps, recorded by
``experiments/reference/siamfc_pytorch.py`` (numbers only, ``tests/fixtures/reference/siamfc``),
on weights regenerated here from their seed. docs/fidelity_siamfc.md has the whole comparison.
"""
import functools
import json
import platform
from pathlib import Path

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxtrack
from jaxtrack import boxes as bx
from jaxtrack import ops
from jaxtrack.data import load_sequence
from jaxtrack.data.synthetic import make_sequence
from jaxtrack.frames import pad_frame
from jaxtrack.models import seeded
from jaxtrack.models.alexnet import alexnet_from_siamfc_torch
from jaxtrack.trackers import siamfc
from reference_checks import check_boxes as check_boxes_within, track_recording

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "reference" / "siamfc"
META = json.loads((FIXTURES / "siamfc_reference.json").read_text())
BOX_TOL = 0.5        # pixels, any coordinate of any frame
MAP_TOL = 1e-4       # max |ours - reference| / max |reference|


@functools.lru_cache(maxsize=1)
def official_tracker():
    weights = seeded.siamfc_alexnet_weights(META["weights"])
    assert seeded.digest(weights) == META["weights"]["sha256"], "the weights no longer regenerate"
    params = {"backbone": alexnet_from_siamfc_torch(weights), "head": {"bias": jnp.zeros((), jnp.float32)}}
    return jaxtrack.make_tracker("siamfc", backbone="alexnet", params=params, **META["jaxtrack_options"])


@functools.lru_cache(maxsize=1)
def jitted():
    t = official_tracker()

    def maps(params, state, frame):     # the response maps track_step computes, before upsampling
        scales = jnp.asarray(ops.scale_factors(t.config.num_scales, t.config.scale_step), jnp.float32)
        x = siamfc.crop_rounded(t.config, frame, state.center, state.x_side * scales, t.config.instance_size,
                                state.fill)
        return siamfc.score(t.config, params, state.kernel, siamfc.embed(t.config, params, x)[0])

    return jax.jit(t.init), jax.jit(t.track_step), jax.jit(maps)


def track(seq, num_frames, maps_at=()):
    t = official_tracker()
    init, step, maps = jitted()
    state = init(t.params, pad_frame(seq.frame(0)), jnp.asarray(seq.gt[0], jnp.float32))
    return track_recording(t.params, step, maps, state, seq, num_frames, maps_at)


def check_boxes(ours, ref_1based):
    check_boxes_within(ours, bx.from_dataset(np.asarray(ref_1based), 1), BOX_TOL, "siamfc-pytorch")


def test_synthetic_boxes_and_maps_are_siamfc_pytorchs():
    syn = META["synthetic"]
    seq = make_sequence(syn["make_sequence_seed"], num_frames=syn["make_sequence_num_frames"])
    ours, responses = track(seq, syn["frames"], maps_at=(1, 2))
    check_boxes(ours, syn["boxes_1based"])
    with np.load(FIXTURES / "responses.npz") as ref:
        for k in (1, 2):
            r = ref[f"frame{k}"]
            assert responses[k].shape == r.shape
            err = np.max(np.abs(responses[k] - r)) / np.max(np.abs(r))
            assert err <= MAP_TOL, f"frame {k}: response maps differ by {err:.3g} relative"


def test_crossing_boxes_are_siamfc_pytorchs(otb_root):
    real = META["real"]
    seq = load_sequence(otb_root / real["otb_sequence"], "otb")
    ours, _ = track(seq, real["frames"])
    check_boxes(ours, real["boxes_1based"])


def test_rounded_crop_is_opencvs_resize_of_the_rounded_window():
    """``ops.crop_patch_rounded``: the window ``round(side)`` px wide at ``round(c - (side-1)/2)``
    (pixel indices), outside pixels ``round(fill)``, resized by ``cv2.resize(INTER_LINEAR)``:
    bit-exact against OpenCV's x86 SIMD path; other builds may round a value 1 apart."""
    exact = platform.machine().lower() in ("x86_64", "amd64")
    rng = np.random.default_rng(0)
    crop = jax.jit(ops.crop_patch_rounded, static_argnums=4)
    for trial in range(24):
        h, w = rng.integers(40, 200, 2)
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        fill = image.reshape(-1, 3).mean(0)
        cy, cx = rng.uniform(-10, h + 10), rng.uniform(-10, w + 10)      # pixel indices
        side = float(rng.choice([rng.uniform(5, 500), 254.0, 254.5, 127.0]))
        out = (127, 255)[trial % 2]
        n = round(side)
        top, left = int(np.round(np.float32(cy) - (n - 1) / 2)), int(np.round(np.float32(cx) - (n - 1) / 2))
        pad = n + 20
        padded = np.empty((h + 2 * pad, w + 2 * pad, 3), np.uint8)
        padded[:] = np.clip(np.round(fill), 0, 255).astype(np.uint8)
        padded[pad:pad + h, pad:pad + w] = image
        window = padded[pad + top:pad + top + n, pad + left:pad + left + n]
        expected = cv2.resize(window, (out, out), interpolation=cv2.INTER_LINEAR)
        frame = pad_frame(image)
        got = crop(frame.image, frame.size, jnp.asarray([cx + 0.5, cy + 0.5], jnp.float32), jnp.float32(side),
                   out, jnp.asarray(fill, jnp.float32))
        diff = np.abs(np.asarray(got) - expected.astype(np.float32))
        assert diff.max() <= (0 if exact else 1), f"trial {trial}: {diff.max()} grey levels apart"


def test_official_options_are_config_fields():
    from jaxtrack.configs import variants
    assert variants("siamfc")["official"] == {"backbone": "alexnet"}
    c = siamfc.SiamFCConfig()                        # the official options are the default
    assert {k: getattr(c, k) for k in META["jaxtrack_options"]} == META["jaxtrack_options"]
    c = siamfc.SiamFCConfig(**variants("siamfc")["continuous"])
    assert c.crop == "continuous" and c.clamp_box
    with pytest.raises(ValueError, match="crop"):
        siamfc.SiamFCConfig(crop="nearest")
    with pytest.raises(ValueError, match="supersample"):
        siamfc.SiamFCConfig(crop="rounded", supersample=2)
