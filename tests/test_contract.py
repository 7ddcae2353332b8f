"""The tracker contract, checked for every tracker on its ``tiny`` variant.

A new tracker gets these checks by being in ``jaxtrack.available_trackers()`` with a
``tiny`` variant in ``jaxtrack/configs/<name>.py``:

* ``init`` and ``track_step`` compile once per frame bucket, not per sequence;
* the state keeps its tree structure, shapes and dtypes from step to step;
* batched tracking (``jaxtrack.batch``) gives the boxes of one-at-a-time tracking;
* the exported functions (``jaxtrack.export``) give the boxes of the jitted ones;
* the same key gives the same boxes; another key runs and gives finite boxes.
"""
import jax
import numpy as np
import pytest

import jaxtrack
from jaxtrack.batch import BatchTracker, track_batched
from jaxtrack.data.synthetic import make_sequence
from jaxtrack.driver import JitTracker, run_sequence
from jaxtrack.frames import bucket_shape, pad_frame

TRACKERS = jaxtrack.available_trackers()
# DAT's batched and exported steps take 20-30 s each to compile on 2 cores: run with -m slow
SLOW_CASES = {"test_batched_equals_one_at_a_time[dat]", "test_exported_equals_jitted[dat]"}


def _sequences():
    """Three short sequences of different lengths and frame sizes, in one frame bucket (so a
    batch of two refills a slot: the slots' periodic updates fall on different steps)."""
    return [make_sequence([31, 0], num_frames=5, size=(96, 120), name="a"),
            make_sequence([31, 1], num_frames=2, size=(100, 128), name="b"),
            make_sequence([31, 2], num_frames=4, size=(90, 110), name="c")]


@pytest.fixture(scope="module", params=TRACKERS)
def tracked(request):
    """A tiny tracker, its jitted functions, and its boxes on the three sequences (seed 0)."""
    tracker = jaxtrack.make_tracker(request.param, variant="tiny", allow_random=True)
    jt = JitTracker(tracker)
    seqs = _sequences()
    assert len({bucket_shape(*s.frame_size(0)) for s in seqs}) == 1
    results = {s.name: run_sequence(jt, s, seed=0) for s in seqs}
    return tracker, jt, seqs, results


def test_every_tracker_has_a_tiny_variant():
    from jaxtrack.configs import variants
    for name in TRACKERS:
        assert "default" in variants(name) and "tiny" in variants(name), name


def test_compiles_once_per_bucket(tracked):
    _, jt, _, results = tracked
    assert jt.num_compilations == 2, "init + track_step once for three sequences of one bucket"
    for r in results.values():
        assert np.all(np.isfinite(r.boxes)) and np.all(r.boxes[:, 2:] > 0)


def test_state_shapes_and_dtypes_are_fixed(tracked):
    tracker, jt, seqs, _ = tracked
    seq = seqs[0]
    state = jt.init(jt.params, pad_frame(seq.frame(0)), np.asarray(seq.gt[0], np.float32),
                    jax.random.PRNGKey(0))
    spec = jax.tree_util.tree_structure(state), [(a.shape, a.dtype) for a in jax.tree_util.tree_leaves(state)]
    for i in range(1, len(seq)):
        state, out = jt.step(jt.params, state, pad_frame(seq.frame(i)))
        got = jax.tree_util.tree_structure(state), [(a.shape, a.dtype) for a in jax.tree_util.tree_leaves(state)]
        assert got == spec, f"frame {i}: the state changed structure, shape or dtype"
        assert out.box.shape == (4,) and out.score.shape == ()


def test_batched_equals_one_at_a_time(tracked):
    tracker, _, seqs, results = tracked
    batched = track_batched(BatchTracker(tracker, 2), seqs, seed=0)
    for s in seqs:
        np.testing.assert_allclose(batched[s.name].boxes, results[s.name].boxes, atol=1e-2, err_msg=s.name)


def test_exported_equals_jitted(tracked, tmp_path):
    from jaxtrack.export import export_tracker, load_exported
    from jaxtrack.frames import sequence_key
    tracker, _, seqs, results = tracked
    seq = seqs[0]
    bucket = bucket_shape(*seq.frame_size(0))
    path = tmp_path / f"{tracker.name}.jaxexport"
    export_tracker(tracker, [bucket], str(path))
    exported = load_exported(str(path))
    boxes, _ = exported.track([seq.frame(i) for i in range(len(seq))], results[seq.name].boxes[0],
                              sequence_key(0, seq.name))
    np.testing.assert_allclose(boxes, results[seq.name].boxes, atol=1e-3)


def test_same_key_same_boxes_other_key_runs(tracked):
    _, jt, seqs, results = tracked
    again = run_sequence(jt, seqs[0], seed=0)
    np.testing.assert_array_equal(again.boxes, results["a"].boxes)
    other = run_sequence(jt, seqs[0], seed=1)
    assert np.all(np.isfinite(other.boxes))


def test_a_target_leaving_the_frame_keeps_boxes_and_state_finite(tracked):
    """The target slides out (same frame bucket, no compile): every box and the state stay
    finite, and the health flags come back per frame."""
    from jaxtrack.data.synthetic import make_leaving_sequence
    _, jt, _, _ = tracked
    r = run_sequence(jt, make_leaving_sequence(5, num_frames=16, size=(96, 120), speed=8.0), seed=0)
    assert np.all(np.isfinite(r.boxes)) and r.finite.all() and r.nonfinite_frame is None
    assert r.lost.shape == (16,) and r.lost.dtype == bool and not r.lost[0]
