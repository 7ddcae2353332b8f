"""TFDS packing into array_record and the random-access pair sampler, without TensorFlow."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from jaxtrack.data import Sequence, load_dataset
from jaxtrack.data.synthetic import make_dataset, write_got10k_layout

tfds = pytest.importorskip("tensorflow_datasets")
td = pytest.importorskip("jaxtrack.data.tfds_dataset")

NUM_FRAMES = 12
ABSENT = (3, 4, 5, 6)  # frames of sequence 1 without a box


def _sequences():
    seqs = make_dataset(11, 3, num_frames=NUM_FRAMES, size=(48, 64))
    gt = seqs[1].gt.copy()
    gt[list(ABSENT)] = np.nan
    seqs[1] = Sequence(seqs[1].name, gt, 0, images=seqs[1].images, dataset="synthetic")
    return seqs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    seqs = _sequences()
    write_got10k_layout(seqs, root / "src", split="train")
    write_got10k_layout(make_dataset(12, 1, num_frames=5, size=(48, 64)), root / "src", split="val")
    builder = td.build_tfds(root / "src", root / "data", layout="got10k")
    return builder, seqs, root


def _close(a, b):
    return np.abs(a.astype(int) - b.astype(int)).mean() < 10  # JPEG q95 round trip, small busy frames


def test_build_writes_array_record(built):
    builder, seqs, root = built
    files = sorted(p.name for p in (root / "data").rglob("*array_record*"))
    assert any("train" in f for f in files) and any("val" in f for f in files)
    assert str(builder.info.file_format.value) == "array_record"
    meta = builder.info.metadata["train"]
    assert meta["names"] == [s.name for s in seqs]
    assert meta["lengths"] == [NUM_FRAMES] * 3 and meta["offsets"] == [0, NUM_FRAMES, 2 * NUM_FRAMES]
    assert meta["valid"][1] == "".join("0" if i in ABSENT else "1" for i in range(NUM_FRAMES))


def test_random_access_reads_one_frame(built):
    builder, seqs, root = built
    source = builder.as_data_source()["train"]
    assert len(source) == 3 * NUM_FRAMES
    on_disk = load_dataset("got10k", root / "src", split="train")
    for index in [0, 17, 35, 13]:
        image, box, s, f = td.read_frame(source, index)
        assert (s, f) == divmod(index, NUM_FRAMES)
        assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
        assert _close(image, seqs[s].frame(f))
        np.testing.assert_array_equal(image, on_disk[s].frame(f))  # JPEG bytes copied verbatim
        np.testing.assert_allclose(box, seqs[s].gt[f], atol=5e-5)  # NaN rows compare equal
    # the registered builder is found by name, as a user would open it
    again = tfds.data_source("tracking_frames/got10k", data_dir=str(root / "data"), split="val")
    assert len(again) == 5


def test_pair_sampler_guarantees(built):
    builder, seqs, root = built
    source = builder.as_data_source()["train"]
    sampler = td.PairSampler(source, max_gap=3, seed=0)
    assert len(sampler) == 3
    for index in range(60):
        s, z, x = sampler.choose(index)
        assert s == index % 3 and z != x and abs(z - x) <= 3
        if s == 1:
            assert z not in ABSENT and x not in ABSENT
    for index in [0, 1, 2, 4]:
        image_z, box_z, image_x, box_x = sampler[index]
        s, z, x = sampler.choose(index)
        assert image_z.dtype == np.uint8 and image_z.shape == (48, 64, 3)
        assert _close(image_z, seqs[s].frame(z)) and _close(image_x, seqs[s].frame(x))
        np.testing.assert_allclose(box_z, seqs[s].gt[z], atol=5e-5)
        np.testing.assert_allclose(box_x, seqs[s].gt[x], atol=5e-5)
        assert np.isfinite(box_z).all() and np.isfinite(box_x).all()


def test_pair_sampler_is_deterministic(built):
    builder, _, _ = built
    source = builder.as_data_source()["train"]
    a, b = td.PairSampler(source, max_gap=5, seed=3), td.PairSampler(source, max_gap=5, seed=3)
    order = [5, 1, 9, 1]
    first = [a[i] for i in order]
    second = [b[i] for i in reversed(order)][::-1]  # call order does not matter
    for p, q in zip(first, second):
        for u, v in zip(p, q):
            np.testing.assert_array_equal(u, v)
    c = td.PairSampler(source, max_gap=5, seed=4)
    assert [a.choose(i) for i in range(30)] != [c.choose(i) for i in range(30)]
    rng = np.random.default_rng(1)
    assert a.choose(2, np.random.default_rng(1)) == c.choose(2, rng)  # an explicit Generator wins


def test_sequence_table_fallback_scans_records(built):
    builder, _, _ = built
    source = builder.as_data_source()["train"]

    class Plain:  # a data source without TFDS metadata
        def __len__(self):
            return len(source)

        def __getitem__(self, i):
            return source[i]

    table = td.sequence_table(Plain())
    meta = builder.info.metadata["train"]
    assert table["offsets"] == meta["offsets"] and table["valid"] == meta["valid"]
    sampler = td.PairSampler(Plain(), max_gap=3, seed=0)
    assert sampler.choose(4) == td.PairSampler(source, max_gap=3, seed=0).choose(4)
    assert sampler[4][0].shape == (48, 64, 3)


def test_no_tensorflow_imported(built):
    builder, _, _ = built
    td.PairSampler(builder.as_data_source()["train"], seed=0)[0]
    assert "tensorflow" not in sys.modules


def test_bad_layout_and_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="unknown layout"):
        td.build_tfds(tmp_path, tmp_path / "data", layout="imagenet")
    with pytest.raises(FileNotFoundError, match="nope"):
        td.build_tfds(tmp_path / "nope", tmp_path / "data")
