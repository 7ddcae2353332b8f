"""The pure-Python TensorFlow checkpoint reader, on bundles written by a test-only writer
in the exact V2 format (LevelDB table .index + raw .data shard), and on the official
GradNet index when the fetched mirror is present."""
import os
import struct
import subprocess

import numpy as np
import pytest

from jaxtrack.formats import tf_checkpoint as T

# ------------------------------------------------------------------ test-only writer

_NP_TO_DT = {np.dtype(v): k for k, v in T.DTYPES.items()}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, wire: int, payload) -> bytes:
    tag = _varint((num << 3) | wire)
    if wire == 0:
        return tag + _varint(payload)
    if wire == 2:
        return tag + _varint(len(payload)) + payload
    if wire == 5:
        return tag + struct.pack("<I", payload)
    raise ValueError(wire)


def _entry_proto(dtype, shape, shard, offset, size, crc) -> bytes:
    dims = b"".join(_field(2, 2, _field(1, 0, d)) for d in shape)
    out = _field(1, 0, dtype) + _field(2, 2, dims)
    if shard:
        out += _field(3, 0, shard)
    if offset:
        out += _field(4, 0, offset)
    return out + _field(5, 0, size) + _field(6, 5, crc)


def _block(items, restart_interval=4) -> bytes:
    """A table block: prefix-compressed entries, restart array, restart count."""
    out, restarts, last = bytearray(), [], b""
    for i, (k, v) in enumerate(items):
        if i % restart_interval == 0:
            restarts.append(len(out))
            shared = 0
        else:
            shared = 0
            while shared < min(len(k), len(last)) and k[shared] == last[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(k) - shared) + _varint(len(v)) + k[shared:] + v
        last = k
    for r in restarts or [0]:
        out += struct.pack("<I", r)
    out += struct.pack("<I", len(restarts or [0]))
    return bytes(out)


def _emit(buf: bytearray, contents: bytes, kind: int = 0) -> bytes:
    """Append a block + trailer; return its BlockHandle encoding."""
    off = len(buf)
    buf += contents + bytes([kind]) + struct.pack("<I", T.mask_crc(T.crc32c(bytes([kind]), T.crc32c(contents))))
    return _varint(off) + _varint(len(contents))


def write_bundle(prefix, tensors: dict, block_entries=3, num_shards=1, corrupt_magic=False):
    """Write ``tensors`` ({name: array}) as a TF V2 checkpoint (several data blocks,
    ``num_shards`` data files)."""
    shards = [bytearray() for _ in range(num_shards)]
    entries = []
    for i, name in enumerate(sorted(tensors)):
        a = np.array(tensors[name], order="C")    # (ascontiguousarray would make 0-d 1-d)
        s = i % num_shards
        data = a.astype(a.dtype.newbyteorder("<")).tobytes()
        entries.append((name.encode(), _entry_proto(_NP_TO_DT[a.dtype], a.shape, s, len(shards[s]),
                                                     len(data), T.mask_crc(T.crc32c(data)))))
        shards[s] += data
    header = _field(1, 0, num_shards) + _field(3, 2, _field(1, 0, 1))
    items = [(b"", header)] + entries
    buf = bytearray()
    index_items = []
    for start in range(0, len(items), block_entries):
        chunk = items[start:start + block_entries]
        handle = _emit(buf, _block(chunk))
        index_items.append((chunk[-1][0] + b"\xff", handle))   # a separator >= the block's keys
    meta = _emit(buf, _block([]))
    index = _emit(buf, _block(index_items, restart_interval=1))
    footer = (meta + index).ljust(40, b"\x00")
    magic = T.TABLE_MAGIC ^ (1 if corrupt_magic else 0)
    buf += footer + struct.pack("<Q", magic)
    with open(prefix + ".index", "wb") as f:
        f.write(buf)
    for s, data in enumerate(shards):
        with open(f"{prefix}.data-{s:05d}-of-{num_shards:05d}", "wb") as f:
            f.write(data)


# ------------------------------------------------------------------ tests

def _tensors(rng):
    return {"siamese/scala1/conv/weights": rng.standard_normal((11, 11, 3, 96)).astype(np.float32),
            "siamese/scala1/conv/biases": rng.standard_normal(96).astype(np.float32),
            "siamese/scala1/bn/moving_variance": rng.random(96).astype(np.float32),
            "siamese/scala2/conv/weights": rng.standard_normal((5, 5, 48, 256)).astype(np.float32),
            "global_step": np.array(1234, np.int64),
            "a/int": np.arange(7, dtype=np.int32),
            "a/half": rng.standard_normal((2, 3)).astype(np.float16),
            "siamese/scala1/conv/weights/Momentum": np.zeros((2,), np.float32)}


def test_crc32c_known_vectors():
    assert T.crc32c(b"123456789") == 0xE3069283           # the CRC-32C check value
    assert T.crc32c(b"") == 0
    c = T.crc32c(b"hello world")
    assert T.unmask_crc(T.mask_crc(c)) == c and T.mask_crc(c) != c


@pytest.mark.parametrize("num_shards", [1, 2])
def test_roundtrip(tmp_path, num_shards):
    tensors = _tensors(np.random.default_rng(0))
    prefix = str(tmp_path / "model.ckpt")
    write_bundle(prefix, tensors, num_shards=num_shards)
    ck = T.TFCheckpoint(prefix)
    assert ck.header["num_shards"] == num_shards
    assert ck.keys() == sorted(tensors)
    for name, a in tensors.items():
        got = ck.read(name)
        assert got.dtype == a.dtype and got.shape == a.shape, name
        np.testing.assert_array_equal(got, a)
    # the .index / .data paths work as the prefix; optimizer slots skipped by default
    got = T.read_checkpoint(prefix + ".index")
    assert "siamese/scala1/conv/weights/Momentum" not in got and len(got) == len(tensors) - 1


def test_bad_inputs_are_named(tmp_path):
    tensors = _tensors(np.random.default_rng(1))
    prefix = str(tmp_path / "m")
    write_bundle(prefix, tensors)
    with pytest.raises(KeyError, match="no tensor 'nope'"):
        T.TFCheckpoint(prefix).read("nope")
    # flip one byte of a tensor: its crc32c check names it
    e = T.TFCheckpoint(prefix).entries["a/int"]
    path = prefix + ".data-00000-of-00001"
    data = bytearray(open(path, "rb").read())
    data[e.offset] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(T.CheckpointFormatError, match="a/int.*crc32c"):
        T.TFCheckpoint(prefix).read("a/int")
    assert T.TFCheckpoint(prefix, verify=False).read("a/int")[0] != 0
    # corrupt an index block byte: the block crc fails
    idx = bytearray(open(prefix + ".index", "rb").read())
    idx[3] ^= 0x01
    open(prefix + ".index", "wb").write(bytes(idx))
    with pytest.raises(T.CheckpointFormatError, match="crc32c"):
        T.TFCheckpoint(prefix)
    write_bundle(str(tmp_path / "bad"), tensors, corrupt_magic=True)
    with pytest.raises(T.CheckpointFormatError, match="magic"):
        T.TFCheckpoint(str(tmp_path / "bad"))
    with pytest.raises(FileNotFoundError):
        T.TFCheckpoint(str(tmp_path / "absent"))


def test_snappy_literal_and_overlapping_copy():
    # "abcd" literal, then copy-1 (length 4..11, offset 4) of 8 bytes: "abcdabcdabcd"
    stream = _varint(12) + bytes([(4 - 1) << 2]) + b"abcd" + bytes([0b001 | ((8 - 4) << 2), 4])
    assert T.snappy_decompress(stream) == b"abcdabcdabcd"
    with pytest.raises(T.CheckpointFormatError):
        T.snappy_decompress(_varint(5) + bytes([(4 - 1) << 2]) + b"abcd")


def test_gradnet_import_from_tf_layout(tmp_path):
    """Official layout → GradNet alexnet params (shapes, the BN eps fold)."""
    import jax.numpy as jnp
    from jaxtrack.models.alexnet import LAYERS, IN_CHANNELS
    from jaxtrack.trackers import gradnet
    rng = np.random.default_rng(2)
    tensors = {}
    for scope in ("scala{}", "scala{}_z"):
        for i, (name, (cout, k, _, g, has_bn)) in enumerate(LAYERS.items(), start=1):
            pre = "siamese/" + scope.format(i)
            tensors[f"{pre}/conv/weights"] = 0.01 * rng.standard_normal((k, k, IN_CHANNELS[name] // g, cout)).astype(np.float32)
            tensors[f"{pre}/conv/biases"] = np.full(cout, 0.1, np.float32)
            if has_bn:
                for bn, v in (("beta", 0.0), ("gamma", 1.0), ("moving_mean", 0.0), ("moving_variance", 1.0)):
                    tensors[f"{pre}/bn/{bn}"] = np.full(cout, v, np.float32)
    pre = "siamese/t_scala5_zz"
    tensors[f"{pre}/conv/weights"] = rng.standard_normal((3, 3, 256, 256)).astype(np.float32)
    tensors[f"{pre}/conv/biases"] = np.zeros(256, np.float32)
    for bn, v in (("beta", 0.0), ("gamma", 1.0), ("moving_mean", 0.0), ("moving_variance", 1.0)):
        tensors[f"{pre}/bn/{bn}"] = np.full(256, v, np.float32)
    prefix = str(tmp_path / "model_epoch49.ckpt")
    write_bundle(prefix, tensors, block_entries=16)
    config = gradnet.GradNetConfig(backbone="alexnet")
    params = gradnet.load_params(config, weights=prefix)
    np.testing.assert_array_equal(params["template"]["params"]["conv3"]["kernel"],
                                  tensors["siamese/scala3_z/conv/weights"])
    np.testing.assert_allclose(params["search"]["batch_stats"]["bn1"]["var"], 1.0 + 1e-3 - 1e-6, rtol=1e-6)
    # the official network was trained on BGR frames: conv1 takes RGB with its inputs reversed
    for branch, scope in (("search", "scala1"), ("template", "scala1_z")):
        np.testing.assert_array_equal(params[branch]["params"]["conv1"]["kernel"],
                                      tensors[f"siamese/{scope}/conv/weights"][:, :, ::-1, :])
    assert params["update"]["conv"]["kernel"].shape == (3, 3, 256, 256)
    # a wrong shape names the key and both shapes
    tensors[f"{pre}/conv/weights"] = np.zeros((3, 3, 128, 256), np.float32)
    write_bundle(prefix, tensors, block_entries=16)
    with pytest.raises(ValueError, match=r"t_scala5_zz/conv/weights.*\(3, 3, 256, 256\).*\(3, 3, 128, 256\)"):
        gradnet.load_params(config, weights=prefix)
    assert isinstance(jnp.asarray(0), object)


MIRROR = "/work/.mirror/LPXTT+GradNet-Tensorflow/repo"


@pytest.mark.skipif(not os.path.isdir(MIRROR), reason="official GradNet mirror not fetched")
def test_official_gradnet_index(tmp_path):
    """The real official index (its data shard is not in the mirror): header, names, shapes."""
    data = subprocess.run(["git", "-C", MIRROR, "show", "HEAD:ckpt/base_l5_1t_49/model_epoch49.ckpt.index"],
                          capture_output=True, check=True).stdout
    path = tmp_path / "model_epoch49.ckpt.index"
    path.write_bytes(data)
    header, entries = T.read_index(str(path))
    assert header["num_shards"] == 1
    assert entries["siamese/scala1/conv/weights"].shape == (11, 11, 3, 96)
    assert entries["siamese/scala2_z/conv/weights"].shape == (5, 5, 48, 256)
    assert entries["siamese/t_scala5_zz/conv/weights"].shape == (3, 3, 256, 256)
    assert entries["siamese/t_scala5_zz/bn/moving_variance"].shape == (256,)
    e = entries["siamese/scala1/conv/weights"]
    assert e.dtype == 1 and e.size == 11 * 11 * 3 * 96 * 4
