"""Fuzzing the entry points that read user input (hypothesis): every reader layout, the
ground-truth parser, box conversions and validation, frame padding, the checkpoint loaders.

The property is the same everywhere: random or mutated input either gives a correct value
or raises one of jaxtrack's named errors (``jaxtrack.errors.JaxtrackError``) that names the
file, line or argument; never another exception, never a hang (a per-example deadline),
never a silent wrong value (each target checks what it returns). The default suite runs a
few examples per target; ``-m slow`` runs the long part with the recorded seed ``FUZZ_SEED``.
"""
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from jaxtrack import boxes
from jaxtrack.data import load_dataset, load_sequence, readers
from jaxtrack.errors import JaxtrackError
from jaxtrack.frames import BUCKET_LADDER, bucket_shape, pad_frame

from fakes import FAKES

FUZZ_SEED = 20261202
QUICK = settings(max_examples=25, deadline=5000, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
LONG = settings(max_examples=3000, deadline=5000,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _named_error_or(fn):
    """fn()'s value, or None when it raised a JaxtrackError naming something; any other
    exception fails the test."""
    try:
        return fn()
    except JaxtrackError as e:
        assert str(e), "a named error needs a message"
        return None


# ----------------------------------------------------------------------------- ground truth

_FIELD = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.integers(-10**6, 10**6).map(str),
                   st.sampled_from(["nan", "NaN", "inf", "-inf", "1e400", "", "x", "1,", "0x10", "１"]),
                   st.text(max_size=4))
_SEP = st.sampled_from([",", "\t", " ", ";", ", ", "  "])
_LINE = st.tuples(st.lists(_FIELD, min_size=0, max_size=9), _SEP).map(lambda t: t[1].join(t[0]))
_GT_TEXT = st.lists(_LINE, max_size=8).map("\n".join)


def _expected_rows(text: str):
    """What a correct parser must return for ``text``, or None where it must refuse it."""
    import re
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:                 # not UTF-8 once written: must be refused
        return None
    rows = []
    for line in io.StringIO(text.removeprefix("\ufeff"), newline=None):
        fields = [s for s in re.split(r"[,\s]+", line.strip()) if s]
        if not fields:
            continue
        if len(fields) not in (4, 8):
            return None
        try:
            values = [float(s) for s in fields]
        except ValueError:
            return None
        if any(np.isinf(values)):
            return None
        rows.append(boxes.polygon_to_xywh(values) if len(values) == 8 else values)
    return np.asarray(rows, np.float64).reshape(-1, 4) if rows else None


def _check_gt_parser(tmp_path, text):
    path = tmp_path / "groundtruth_rect.txt"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    got = _named_error_or(lambda: readers.read_boxes(str(path)))
    want = _expected_rows(text)
    if got is None:
        assert want is None, f"refused a valid file: {text!r}"
    else:
        assert want is not None, f"accepted {text!r} as {got}"
        np.testing.assert_array_equal(got, want)


@QUICK
@given(text=_GT_TEXT)
def test_fuzz_ground_truth_parser(tmp_path, text):
    _check_gt_parser(tmp_path, text)


@pytest.mark.slow
@seed(FUZZ_SEED)
@LONG
@given(text=_GT_TEXT)
def test_fuzz_ground_truth_parser_long(tmp_path, text):
    _check_gt_parser(tmp_path, text)


# ----------------------------------------------------------------------------- reader layouts

_MUTATIONS = st.sampled_from(["truncate", "flip", "delete", "empty", "garbage", "duplicate_line"])


def _mutate(path: Path, how: str, data: st.DataObject):
    raw = path.read_bytes()
    if how == "truncate":
        path.write_bytes(raw[:data.draw(st.integers(0, max(len(raw) - 1, 0)))])
    elif how == "flip" and raw:
        i = data.draw(st.integers(0, len(raw) - 1))
        path.write_bytes(raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1:])
    elif how == "delete":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(data.draw(st.binary(max_size=64)))
    elif how == "duplicate_line":
        lines = raw.splitlines(keepends=True)
        if lines:
            path.write_bytes(raw + lines[data.draw(st.integers(0, len(lines) - 1))])


def _check_layout(tmp_path, layout, data):
    root = tmp_path / "root"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    split, folders = FAKES[layout](root)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for _ in range(data.draw(st.integers(1, 3))):
        target = files[data.draw(st.integers(0, len(files) - 1))]
        if target.exists():
            _mutate(target, data.draw(_MUTATIONS), data)
    seqs = _named_error_or(lambda: load_dataset(layout, root, split=split))
    for seq in seqs or []:
        assert seq.gt.shape == (len(seq), 4) and np.isfinite(seq.gt[0]).all()
        assert np.all(seq.gt[0, 2:] > 0)
        for i in range(len(seq)):
            image = _named_error_or(lambda: seq.frame(i))
            if image is not None:
                assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    for folder, target in folders.values():
        if folder.is_dir():
            _named_error_or(lambda: load_sequence(folder, layout, target=target))


@QUICK
@given(data=st.data(), layout=st.sampled_from(readers.LAYOUTS))
def test_fuzz_reader_layouts(tmp_path, data, layout):
    _check_layout(tmp_path, layout, data)


@pytest.mark.slow
@seed(FUZZ_SEED)
@LONG
@given(data=st.data(), layout=st.sampled_from(readers.LAYOUTS))
def test_fuzz_reader_layouts_long(tmp_path, data, layout):
    _check_layout(tmp_path, layout, data)


def test_a_truncated_jpeg_is_refused_by_name(tmp_path):
    """The probe's silent case: half a JPEG decodes to a half-grey frame without a word."""
    import cv2
    y, x = np.mgrid[:240, :320]
    image = np.stack([(x + y) % 256, (3 * x) % 256, (5 * y) % 256], -1).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", image)
    half = tmp_path / "0004.jpg"
    half.write_bytes(jpg.tobytes()[: len(jpg) // 2])
    from jaxtrack.data.sequence import read_image
    with pytest.raises(JaxtrackError, match="0004.jpg: truncated JPEG"):
        read_image(str(half))
    whole = tmp_path / "0005.jpg"
    whole.write_bytes(jpg.tobytes() + b"trailing bytes after the end marker are legal")
    assert read_image(str(whole)).shape == (240, 320, 3)


# ----------------------------------------------------------------------------- boxes

_NUM = st.floats(allow_nan=True, allow_infinity=True, width=64)


def _check_validate_box(box, hw):
    got = _named_error_or(lambda: boxes.validate_box(box, hw, where="first box"))
    b = np.asarray(box, np.float64)
    valid = (np.isfinite(b).all() and b[2] > 0 and b[3] > 0 and b[0] < hw[1] and b[1] < hw[0]
             and b[0] + b[2] > 0 and b[1] + b[3] > 0)
    assert (got is not None) == valid, (box, hw)
    if got is not None:
        np.testing.assert_array_equal(got, b)


@QUICK
@given(box=st.lists(_NUM, min_size=4, max_size=4), h=st.integers(1, 9000), w=st.integers(1, 9000))
def test_fuzz_box_validation(box, h, w):
    _check_validate_box(box, (h, w))


@pytest.mark.slow
@seed(FUZZ_SEED)
@LONG
@given(box=st.lists(_NUM, min_size=4, max_size=4), h=st.integers(1, 9000), w=st.integers(1, 9000))
def test_fuzz_box_validation_long(box, h, w):
    _check_validate_box(box, (h, w))


@QUICK
@given(b=st.lists(st.floats(-1e6, 1e6), min_size=4, max_size=4), base=st.sampled_from([0, 1]))
def test_fuzz_box_conversions_round_trip(b, base):
    b = np.asarray(b)
    np.testing.assert_allclose(boxes.to_dataset(boxes.from_dataset(b, base), base), b, atol=1e-6)
    np.testing.assert_allclose(boxes.xyxy_to_xywh(boxes.xywh_to_xyxy(b)), b, atol=1e-6)
    poly = np.array([b[0], b[1], b[0] + abs(b[2]), b[1], b[0] + abs(b[2]), b[1] + abs(b[3]), b[0], b[1] + abs(b[3])])
    aa = boxes.polygon_to_xywh(poly)          # an axis-aligned polygon keeps its box (VOT's +1 rule)
    np.testing.assert_allclose(aa, [b[0] + abs(b[2]) / 2 - (abs(b[2]) + 1) / 2,
                                    b[1] + abs(b[3]) / 2 - (abs(b[3]) + 1) / 2,
                                    abs(b[2]) + 1, abs(b[3]) + 1], rtol=1e-9, atol=1e-6)


# ----------------------------------------------------------------------------- frame padding

_DTYPES = st.sampled_from([np.uint8, np.float32, np.float64, np.int32, np.uint16, np.bool_, np.int8])


@st.composite
def _images(draw):
    shape = draw(st.one_of(
        st.tuples(st.integers(0, 40), st.integers(0, 40)),
        st.tuples(st.integers(0, 40), st.integers(0, 40), st.sampled_from([0, 1, 2, 3, 4, 5])),
        st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
        st.sampled_from([(9000, 1, 3), (1, 8193, 3), (8192, 1, 3)])))
    dtype = draw(_DTYPES)
    scale = draw(st.sampled_from([1.0, 255.0, 300.0, -1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.random(shape) * scale
    if draw(st.booleans()) and a.size:
        a.flat[0] = draw(st.sampled_from([np.nan, np.inf, 0.0, 255.0]))
    with np.errstate(invalid="ignore"):
        return a.astype(dtype)


def _check_pad(image):
    frame = _named_error_or(lambda: pad_frame(image, where="frame 7"))
    if frame is None:
        return
    arr = np.asarray(image)
    h, w = arr.shape[:2]
    assert tuple(frame.size) == (h, w) and frame.image.shape == bucket_shape(h, w) + (3,)
    assert max(h, w) <= BUCKET_LADDER[-1]
    rgb = arr if arr.ndim == 3 else arr[..., None]
    rgb = np.repeat(rgb, 3, -1) if rgb.shape[-1] == 1 else rgb[..., :3]
    np.testing.assert_array_equal(frame.image[:h, :w], rgb)
    assert not frame.image[h:].any() and not frame.image[:, w:].any()
    assert np.isfinite(frame.image.astype(np.float64)).all()
    assert frame.image.min() >= 0 and frame.image.max() <= 255
    if frame.image.dtype != np.uint8:          # a [0, 1] image would track as near-black
        assert frame.image.max() > 1.0 or frame.image.max() == 0


@QUICK
@given(image=_images())
def test_fuzz_frame_padding(image):
    _check_pad(image)


@pytest.mark.slow
@seed(FUZZ_SEED)
@LONG
@given(image=_images())
def test_fuzz_frame_padding_long(image):
    _check_pad(image)


# ----------------------------------------------------------------------------- checkpoint loaders

def _template():
    return {"adjust": {"kernel": np.zeros((4, 3), np.float32), "bias": np.zeros((3,), np.float32)},
            "bias": np.zeros((), np.float32)}


@pytest.fixture(scope="module")
def valid_checkpoints(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from jaxtrack import checkpoints
    d = tmp_path_factory.mktemp("ckpt")
    rng = np.random.default_rng(0)
    tree = {"adjust": {"kernel": rng.normal(size=(4, 3)).astype(np.float32),
                       "bias": rng.normal(size=(3,)).astype(np.float32)},
            "bias": np.float32(0.5)}
    checkpoints.save_variables(d / "head.msgpack", tree)
    torch.save({"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}, d / "zip.pt")
    torch.save({"w": torch.arange(6.0).reshape(2, 3)}, d / "legacy.pt", _use_new_zipfile_serialization=False)
    return {name: (d / name).read_bytes() for name in ("head.msgpack", "zip.pt", "legacy.pt")}


def _check_checkpoint(tmp_path, valid, data, name):
    from jaxtrack import checkpoints
    from jaxtrack.formats import torch_pickle
    raw = data.draw(st.one_of(st.binary(max_size=256), st.just(valid[name])))
    how = data.draw(st.sampled_from(["truncate", "flip", "none", "append"]))
    if how == "truncate" and raw:
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip" and raw:
        i = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1:]
    elif how == "append":
        raw = raw + data.draw(st.binary(min_size=1, max_size=16))
    path = tmp_path / f"mutated_{name}"
    path.write_bytes(raw)
    if name.endswith(".msgpack"):
        got = _named_error_or(lambda: checkpoints.load_variables(path, _template()))
        if got is not None:                    # then it is shaped exactly as asked
            assert got["adjust"]["kernel"].shape == (4, 3) and got["bias"].shape == ()
    else:
        got = _named_error_or(lambda: torch_pickle.load_state_dict(path))
        if got is not None:
            assert all(isinstance(v, np.ndarray) for v in got.values())
    for reader in (lambda: checkpoints.load_variables(path, _template()),
                   lambda: torch_pickle.read_torch_checkpoint(path)):
        try:
            reader()
        except JaxtrackError as e:
            assert str(path) in str(e), f"the error does not name the file: {e}"


@QUICK
@given(data=st.data(), name=st.sampled_from(["head.msgpack", "zip.pt", "legacy.pt"]))
def test_fuzz_checkpoint_loaders(tmp_path, valid_checkpoints, data, name):
    _check_checkpoint(tmp_path, valid_checkpoints, data, name)


@pytest.mark.slow
@seed(FUZZ_SEED)
@LONG
@given(data=st.data(), name=st.sampled_from(["head.msgpack", "zip.pt", "legacy.pt"]))
def test_fuzz_checkpoint_loaders_long(tmp_path, valid_checkpoints, data, name):
    _check_checkpoint(tmp_path, valid_checkpoints, data, name)


def test_pickles_that_ask_for_huge_memory_are_refused_at_once():
    """Found by the long fuzz run: six bytes whose memo index made CPython's unpickler size a
    multi-gigabyte table (the process was killed for memory); and zero strides or a bytearray
    that would make memory from nothing."""
    import pickle
    import time
    from jaxtrack.formats import torch_pickle
    t0 = time.perf_counter()
    with pytest.raises(JaxtrackError, match="memo index 318767104 in a pickle of 6 bytes"):
        torch_pickle.read_torch_checkpoint(b")r\x00\x00\x00\x13")
    assert time.perf_counter() - t0 < 1.0
    storage = torch_pickle._Storage(np.dtype(np.float32), 4, np.zeros(4, np.float32).tobytes())
    with pytest.raises(pickle.UnpicklingError, match="elements from a storage of 4"):
        torch_pickle._make_array(storage, 0, (1 << 30,), (0,))
    assert torch_pickle._make_array(storage, 0, (8,), (0,)).shape == (8,)      # a small expand is fine
    with pytest.raises(pickle.UnpicklingError, match="more memory"):
        torch_pickle._bytearray(1 << 40)
