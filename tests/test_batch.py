"""Batched tracking (jaxtrack.batch): vmapped lockstep tracking equals one sequence at a time."""
import numpy as np
import pytest

import jaxtrack
from jaxtrack.batch import BatchTracker, group_by_bucket, host_subset, pad_into, track_batched
from jaxtrack.data.synthetic import make_sequence
from jaxtrack.driver import JitTracker, run_sequence


@pytest.fixture(scope="module")
def tracker():
    return jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2", allow_random=True)


def _sequences():
    # different lengths (one of a single frame) and true frame sizes, all in the 128x192 bucket
    spec = [(7, (120, 160)), (3, (100, 150)), (1, (120, 160)), (5, (128, 192)), (6, (110, 170))]
    return [make_sequence([21, i], num_frames=n, size=hw, name=f"b{i}") for i, (n, hw) in enumerate(spec)]


def test_batched_equals_one_at_a_time_and_refill_never_recompiles(tracker):
    seqs = _sequences()
    jt = JitTracker(tracker)
    ref = {s.name: run_sequence(jt, s, seed=3) for s in seqs}
    bt = BatchTracker(tracker, 2)
    finished = []
    res = track_batched(bt, seqs, seed=3, on_done=lambda seq, r: finished.append(seq.name))
    assert sorted(finished) == sorted(s.name for s in seqs)
    for s in seqs:
        np.testing.assert_allclose(res[s.name].boxes, ref[s.name].boxes, atol=1e-3, err_msg=s.name)
        np.testing.assert_allclose(res[s.name].scores, ref[s.name].scores, rtol=1e-4, atol=1e-4)
        assert res[s.name].boxes.shape == (len(s), 4) and np.all(res[s.name].times > 0)
    # 5 sequences through 2 slots, 3 of them refills: one step and one slot init, compiled once
    assert sorted(k for k, _ in bt.executables) == ["init_slot", "step"]
    # a second pass (other order) reuses every executable
    res2 = track_batched(bt, seqs[::-1], seed=3)
    assert bt.num_compilations == 2
    for s in seqs:
        np.testing.assert_allclose(res2[s.name].boxes, res[s.name].boxes, atol=1e-3)


def test_bucket_groups_and_padding():
    a = make_sequence(0, num_frames=2, size=(100, 150), name="a")
    b = make_sequence(1, num_frames=2, size=(300, 200), name="b")
    c = make_sequence(2, num_frames=2, size=(120, 160), name="c")
    assert group_by_bucket([a, b, c]) == [((128, 192), [0, 2]), ((384, 256), [1])]
    assert group_by_bucket([a, b, c], "max") == [((384, 256), [0, 1, 2])]
    with pytest.raises(ValueError, match="bucket policy"):
        group_by_bucket([a], "smallest")
    out, size = np.full((128, 192, 3), 7, np.uint8), np.array([128, 192], np.int32)
    pad_into(a.frame(0), (128, 192), out, size, "a")
    assert tuple(size) == (100, 150) and out[100:].max() == 0 and out[:, 150:].max() == 0
    assert np.array_equal(out[:100, :150], a.frame(0))
    with pytest.raises(ValueError, match="does not fit"):
        pad_into(b.frame(0), (128, 192), out, size, "b frame 0")
    assert host_subset(list("abcde"), 1, 2) == ["b", "d"]


def test_batch_size_must_divide_devices(tracker):
    import jax
    with pytest.raises(ValueError, match="multiple"):
        BatchTracker(tracker, 0)
    assert BatchTracker(tracker, 3, devices=jax.local_devices()[:1]).num_devices == 1


@pytest.mark.slow
def test_batched_equals_one_at_a_time_on_six_real_sequences(otb_root):
    """The shared OTB sequences, B=4 (sequences of several buckets, refills), box for box."""
    from jaxtrack.data import load_dataset
    try:
        tr = jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2")
    except FileNotFoundError:
        tr = jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2", allow_random=True)
    seqs = load_dataset("otb", str(otb_root))
    jt = JitTracker(tr)
    res = track_batched(BatchTracker(tr, 4), seqs, seed=0)
    for s in seqs:
        ref = run_sequence(jt, s, seed=0)
        np.testing.assert_allclose(res[s.name].boxes, ref.boxes, atol=1e-2, err_msg=s.name)


# Every tracker on its tiny variant, online updates included, batched against one at a
# time: tests/test_contract.py.
