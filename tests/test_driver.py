"""The driver: shape buckets, padding invariance, bounded compilation, bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxtrack
from jaxtrack.core import Frame
from jaxtrack.data.synthetic import make_sequence
from jaxtrack.driver import JitTracker, run_sequence
from jaxtrack.frames import BUCKET_LADDER, bucket_shape, check_image, pad_frame


@pytest.fixture(scope="module")
def tracker():
    # weights are irrelevant to these properties; random ones keep the test self-contained
    return jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2", allow_random=True)


def test_bucket_ladder():
    assert bucket_shape(240, 320) == (256, 384)
    assert bucket_shape(360, 640) == (384, 768)
    assert all(b / a <= 1.5 for a, b in zip(BUCKET_LADDER, BUCKET_LADDER[1:]))
    with pytest.raises(ValueError, match="exceeds the largest bucket"):
        bucket_shape(10, 10**5)


def test_check_image_converts_grayscale_and_rejects_bad_shapes():
    assert check_image(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert check_image(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6, 3)
    with pytest.raises(ValueError, match="colour channels"):
        check_image(np.zeros((5, 6, 2), np.uint8), where="x.jpg")
    with pytest.raises(ValueError, match="empty image"):
        check_image(np.zeros((0, 6, 3), np.uint8))


def test_padding_does_not_change_the_track(tracker):
    seq = make_sequence(3, num_frames=6, size=(100, 130))
    init, step = jax.jit(tracker.init), jax.jit(tracker.track_step)
    key = jax.random.PRNGKey(0)
    box = jnp.asarray(seq.gt[0], jnp.float32)
    runs = []
    for wrap in (Frame.of, lambda im: pad_frame(im)):
        state = init(tracker.params, wrap(seq.frame(0)), box, key)
        out = []
        for i in range(1, len(seq)):
            state, o = step(tracker.params, state, wrap(seq.frame(i)))
            out.append(np.asarray(o.box))
        runs.append(np.stack(out))
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-3)


def test_compilations_are_bounded_by_buckets_not_sequences(tracker):
    # a fresh build: jit caches are per function object, and the fixture's are shared
    jt = JitTracker(jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2", params=tracker.params))
    sizes = [(100, 130), (110, 150), (97, 140), (120, 180), (200, 260), (230, 300)]
    for i, hw in enumerate(sizes):
        seq = make_sequence(i, num_frames=3, size=hw)
        r = run_sequence(jt, seq)
        assert r.boxes.shape == (3, 4) and np.all(np.isfinite(r.boxes))
    buckets = {bucket_shape(*hw) for hw in sizes}
    assert len(buckets) == 2
    assert jt.num_compilations == 2 * len(buckets)       # init + track_step per bucket


def test_run_sequence_is_deterministic(tracker):
    seq = make_sequence(5, num_frames=5)
    jt = JitTracker(tracker)
    a, b = run_sequence(jt, seq, seed=1), run_sequence(jt, seq, seed=1, prefetch=False)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert a.times.shape == (5,) and np.all(a.times > 0)


def test_bad_first_box_is_named():
    from jaxtrack.data.sequence import Sequence
    seq = make_sequence(5, num_frames=3)
    with pytest.raises(ValueError, match="outside"):
        Sequence(name="bad", gt=np.tile([[500.0, 500.0, 10.0, 10.0]], (3, 1)), index_base=0, images=seq.images)
    with pytest.raises(ValueError, match="zero or negative size"):
        Sequence(name="bad", gt=np.tile([[5.0, 5.0, 0.0, 10.0]], (3, 1)), index_base=0, images=seq.images)


def test_health_allows_infinite_markers_but_catches_nan():
    """A state may use -inf as a marker (GradNet's empty sample slots): that is not a fault;
    a NaN anywhere in the state, or a non-finite box, is."""
    import jax.numpy as jnp
    from jaxtrack.core import TrackOutput, all_finite, with_health
    assert bool(all_finite({"scores": jnp.array([0.0, -jnp.inf]), "n": jnp.array(3)}))
    assert not bool(all_finite({"scores": jnp.array([0.0, jnp.nan])}))
    step = with_health(lambda state, frame: (state, TrackOutput(jnp.array([1.0, 2.0, 3.0, jnp.inf]), 0.5)))
    _, out = step({"x": jnp.zeros(2)}, None)
    assert not bool(out.finite) and out.lost.dtype == jnp.bool_
