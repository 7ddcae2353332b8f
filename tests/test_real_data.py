"""Real sequences from ../shared (evaluation only; skipped when absent)."""
import pytest

import jaxtrack
from jaxtrack.data import load_dataset
from jaxtrack.driver import JitTracker, run_sequence
from jaxtrack.frames import bucket_shape
from jaxtrack.eval.metrics import aggregate, sequence_metrics


def test_six_shared_sequences_fall_into_few_buckets(otb_root):
    seqs = load_dataset("otb", otb_root)
    assert len(seqs) == 6
    buckets = {bucket_shape(*s.frame_size()) for s in seqs}
    assert len(buckets) <= 4


@pytest.mark.slow
def test_siamfc_mobilenet_beats_mil_on_shared_otb(otb_root):
    """The issue's bar: SiamFC on the MobileNetV2 backbone beats OpenCV's MIL (AUC 0.31)."""
    jt = JitTracker(jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2"))
    per = {}
    for seq in load_dataset("otb", otb_root):
        r = run_sequence(jt, seq)
        per[seq.name] = sequence_metrics(r.boxes, seq.gt, seq.index_base)
    mean = aggregate(per)
    assert mean["auc"] > 0.31, {k: v["auc"] for k, v in per.items()}
    assert jt.num_compilations <= 8
