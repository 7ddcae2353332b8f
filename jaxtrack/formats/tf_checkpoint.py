"""Read TensorFlow (V2, "tensor bundle") checkpoints in pure Python, without TensorFlow.

A checkpoint ``<prefix>`` is two files:

* ``<prefix>.index``: a LevelDB-format SSTable ("table"). Its keys are tensor names
  (sorted bytes); the value of the empty key is a ``BundleHeaderProto`` (num_shards,
  endianness, version), every other value a ``BundleEntryProto`` (dtype, shape,
  shard_id, offset, size, crc32c, slices).
* ``<prefix>.data-SSSSS-of-NNNNN``: the raw tensor bytes; an entry's ``size`` bytes
  at ``offset`` in shard ``shard_id``, little-endian, C order.

Format references used (all public):

* LevelDB ``doc/table_format.md`` and ``table/format.{h,cc}``, ``table/block.cc``
  (TensorFlow's copy: ``tensorflow/core/lib/io/{format,block,table}.cc``): the 48-byte
  footer (two varint BlockHandles padded to 40 bytes, then the fixed64 magic
  ``0xdb4775248b80fb57``), block trailers (1 byte compression type, fixed32 masked
  crc32c of contents + type), prefix-compressed entries (shared, non_shared,
  value_length varints) and the restart array;
* ``tensorflow/core/protobuf/tensor_bundle.proto`` (BundleHeaderProto,
  BundleEntryProto), ``tensor_shape.proto``, ``types.proto`` (DataType numbers), and
  ``tensorflow/core/util/tensor_bundle/tensor_bundle.cc`` (shard file names, the
  entry's crc32c being the *masked* crc32c of the tensor bytes);
* ``tensorflow/core/lib/hash/crc32c.h`` (CRC-32C, Castagnoli; mask
  ``((c >> 15) | (c << 17)) + 0xa282ead8``); the protobuf wire format (varints,
  length-delimited fields, fixed32/64); the Snappy format description
  (``format_description.txt``) for blocks written with Snappy compression.

Only what a tensor checkpoint needs is decoded; unknown proto fields are skipped.
String tensors and partitioned (sliced) variables are listed but not read.
"""
from __future__ import annotations

import os
import struct
from typing import NamedTuple

import numpy as np

from jaxtrack.errors import CheckpointError

__all__ = ["TFCheckpoint", "Entry", "CheckpointFormatError", "read_checkpoint", "read_index",
           "crc32c", "mask_crc", "unmask_crc", "DTYPES", "TABLE_MAGIC"]

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER = 5

# tensorflow/core/framework/types.proto: DataType -> numpy dtype
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
          8: np.complex64, 9: np.int64, 10: np.bool_, 17: np.uint16, 18: np.complex128,
          19: np.float16, 22: np.uint32, 23: np.uint64}
DT_STRING, DT_BFLOAT16 = 7, 14


class CheckpointFormatError(CheckpointError):
    """The files are not a (readable) TensorFlow V2 checkpoint; the message says where."""


# ----------------------------------------------------------------------------- crc32c

def _crc_table():
    poly = 0x82F63B78                      # CRC-32C (Castagnoli), reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def _crc_bytes(reg: int, data) -> int:
    t = _CRC_TABLE
    for b in data:
        reg = t[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C of ``data`` (continuing ``crc``).

    Large inputs are split into M chunks whose CRC registers advance together as numpy
    vectors (the register update is linear over GF(2)); they are then chained with the
    "feed L zero bytes" map, precomputed on the 32 basis vectors:
    ``reg(A||B) = zeros_|B|(reg(A)) ^ reg_from_0(B)``. Much faster than a byte loop.
    """
    data = memoryview(bytes(data)) if not isinstance(data, (bytes, bytearray)) else data
    n = len(data)
    reg = crc ^ 0xFFFFFFFF
    if n < 1 << 14:
        return _crc_bytes(reg, data) ^ 0xFFFFFFFF
    length = int(np.sqrt(n))
    m = n // length
    chunks = np.frombuffer(data, np.uint8, count=m * length).reshape(m, length).T.copy()
    table = np.asarray(_CRC_TABLE, np.uint32)
    regs = np.zeros(m, np.uint32)
    regs[0] = reg
    for j in range(length):
        regs = table[(regs ^ chunks[j]) & 0xFF] ^ (regs >> 8)
    basis = [_crc_bytes(1 << k, bytes(length)) for k in range(32)]
    reg = int(regs[0])
    for r in regs[1:].tolist():
        shifted = 0
        k = 0
        while reg:
            if reg & 1:
                shifted ^= basis[k]
            reg >>= 1
            k += 1
        reg = shifted ^ r
    return _crc_bytes(reg, data[m * length:]) ^ 0xFFFFFFFF


def mask_crc(c: int) -> int:
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def unmask_crc(m: int) -> int:
    r = (m - 0xA282EAD8) & 0xFFFFFFFF
    return ((r >> 17) | (r << 15)) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- varints / protobuf

def _varint(buf: bytes, pos: int, where: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointFormatError(f"{where}: truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointFormatError(f"{where}: varint longer than 10 bytes")


def _proto_fields(buf: bytes, where: str):
    """Yield (field number, wire type, value) of a protobuf message; length-delimited
    values are bytes, varints ints, fixed32/64 ints."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos, where)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos, where)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos, where)
            value, pos = bytes(buf[pos:pos + n]), pos + n
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise CheckpointFormatError(f"{where}: unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise CheckpointFormatError(f"{where}: truncated protobuf field {field}")
        yield field, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


class Entry(NamedTuple):
    """One tensor's BundleEntryProto."""
    dtype: int
    shape: tuple
    shard_id: int
    offset: int
    size: int
    crc32c: int          # masked, as stored
    sliced: bool


def _parse_shape(buf: bytes, where: str) -> tuple:
    dims = []
    for f, _, v in _proto_fields(buf, where):
        if f == 2:                                    # Dim
            size = 0
            for f2, _, v2 in _proto_fields(v, where):
                if f2 == 1:
                    size = _signed64(v2)
            dims.append(size)
        elif f == 3 and v:
            raise CheckpointFormatError(f"{where}: unknown rank")
    return tuple(dims)


def _parse_entry(buf: bytes, where: str) -> Entry:
    d = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "crc32c": 0, "sliced": False}
    for f, _, v in _proto_fields(buf, where):
        if f == 1:
            d["dtype"] = v
        elif f == 2:
            d["shape"] = _parse_shape(v, where)
        elif f == 3:
            d["shard_id"] = v
        elif f == 4:
            d["offset"] = _signed64(v)
        elif f == 5:
            d["size"] = _signed64(v)
        elif f == 6:
            d["crc32c"] = v
        elif f == 7:
            d["sliced"] = True
    return Entry(**d)


def _parse_header(buf: bytes, where: str) -> dict:
    h = {"num_shards": 0, "endianness": 0, "version": {}}
    for f, _, v in _proto_fields(buf, where):
        if f == 1:
            h["num_shards"] = v
        elif f == 2:
            h["endianness"] = v
        elif f == 3:
            h["version"] = {("producer", "min_consumer", "bad_consumers")[f2 - 1]: v2
                            for f2, _, v2 in _proto_fields(v, where) if 1 <= f2 <= 3}
    return h


# ----------------------------------------------------------------------------- snappy

def snappy_decompress(data: bytes, where: str = "snappy block") -> bytes:
    """Raw Snappy (format_description.txt): a varint length, then literals and copies."""
    n, pos = _varint(data, 0, where)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:                                   # literal
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(data[pos:pos + extra], "little")
                pos += extra
            length += 1
            out += data[pos:pos + length]
            pos += length
            continue
        if kind == 1:
            length = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 2], "little")
            pos += 2
        else:
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise CheckpointFormatError(f"{where}: bad copy offset {offset}")
        for _ in range(length):                        # copies may overlap themselves
            out.append(out[-offset])
    if len(out) != n:
        raise CheckpointFormatError(f"{where}: decompressed {len(out)} bytes, header says {n}")
    return bytes(out)


# ----------------------------------------------------------------------------- the table

def _read_block(buf: bytes, handle: tuple[int, int], where: str, verify: bool) -> bytes:
    offset, size = handle
    end = offset + size + BLOCK_TRAILER
    if offset < 0 or end > len(buf):
        raise CheckpointFormatError(f"{where}: block [{offset}, {end}) outside the {len(buf)}-byte file")
    contents = buf[offset:offset + size]
    kind = buf[offset + size]
    if verify:
        stored = struct.unpack_from("<I", buf, offset + size + 1)[0]
        actual = mask_crc(crc32c(bytes([kind]), crc32c(contents)))
        if stored != actual:
            raise CheckpointFormatError(f"{where}: block at {offset} fails its crc32c check")
    if kind == 0:
        return bytes(contents)
    if kind == 1:
        return snappy_decompress(contents, f"{where}: block at {offset}")
    raise CheckpointFormatError(f"{where}: block at {offset} has unknown compression type {kind}")


def _block_entries(block: bytes, where: str):
    """Yield (key, value) of a table block (prefix-compressed keys)."""
    if len(block) < 4:
        raise CheckpointFormatError(f"{where}: block shorter than its restart count")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise CheckpointFormatError(f"{where}: bad restart count {num_restarts}")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos, where)
        non_shared, pos = _varint(block, pos, where)
        vlen, pos = _varint(block, pos, where)
        if shared > len(key) or pos + non_shared + vlen > limit:
            raise CheckpointFormatError(f"{where}: corrupt block entry at {pos}")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + vlen]
        pos += vlen


def _handle(buf: bytes, pos: int, where: str) -> tuple[tuple[int, int], int]:
    off, pos = _varint(buf, pos, where)
    size, pos = _varint(buf, pos, where)
    return (off, size), pos


def read_table(path: str, verify: bool = True) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of a LevelDB-format table file, in order."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < FOOTER_SIZE:
        raise CheckpointFormatError(f"{path}: {len(buf)} bytes, too short for a table footer")
    footer = buf[-FOOTER_SIZE:]
    magic = struct.unpack_from("<Q", footer, 40)[0]
    if magic != TABLE_MAGIC:
        raise CheckpointFormatError(f"{path}: not a TensorFlow checkpoint index "
                                    f"(footer magic {magic:#x}, expected {TABLE_MAGIC:#x})")
    _, pos = _handle(footer, 0, f"{path} footer")          # metaindex: nothing needed from it
    index_handle, _ = _handle(footer, pos, f"{path} footer")
    index = _read_block(buf, index_handle, f"{path} index block", verify)
    out = []
    for _, value in _block_entries(index, f"{path} index block"):
        handle, _ = _handle(value, 0, f"{path} index entry")
        data = _read_block(buf, handle, f"{path} data block", verify)
        out.extend(_block_entries(data, f"{path} data block"))
    return out


def read_index(path: str, verify: bool = True) -> tuple[dict, dict[str, Entry]]:
    """(header dict, {tensor name: Entry}) of a ``.index`` file."""
    header, entries = None, {}
    for key, value in read_table(path, verify):
        name = key.decode("utf-8")
        if name == "":
            header = _parse_header(value, f"{path} header")
        else:
            entries[name] = _parse_entry(value, f"{path} entry {name!r}")
    if header is None:
        raise CheckpointFormatError(f"{path}: no BundleHeaderProto (empty key) in the index")
    if header["endianness"] != 0:
        raise CheckpointFormatError(f"{path}: big-endian checkpoints are not supported")
    return header, entries


def _prefix(path: str) -> str:
    p = str(path)
    if p.endswith(".index"):
        return p[:-len(".index")]
    if ".data-" in os.path.basename(p):
        return p[:p.rindex(".data-")]
    return p


class TFCheckpoint:
    """A TensorFlow V2 checkpoint opened for reading: ``keys()``, ``entries``, ``read(name)``.

    ``path`` is the prefix (``…/model.ckpt``) or its ``.index`` / ``.data-…`` file.
    ``verify`` checks block and tensor crc32c sums.
    """

    def __init__(self, path: str, verify: bool = True):
        self.prefix = _prefix(path)
        index = self.prefix + ".index"
        if not os.path.exists(index):
            raise FileNotFoundError(f"TensorFlow checkpoint index not found: {index}")
        self.verify = verify
        self.header, self.entries = read_index(index, verify)

    def keys(self) -> list[str]:
        return sorted(self.entries)

    def shard_path(self, shard_id: int) -> str:
        return f"{self.prefix}.data-{shard_id:05d}-of-{self.header['num_shards']:05d}"

    def read(self, name: str) -> np.ndarray:
        if name not in self.entries:
            raise KeyError(f"{self.prefix}: no tensor {name!r} (it has {len(self.entries)} tensors)")
        e = self.entries[name]
        if e.sliced:
            raise NotImplementedError(f"{name}: partitioned (sliced) variables are not supported")
        if e.dtype == DT_STRING:
            raise NotImplementedError(f"{name}: string tensors are not supported")
        if e.dtype == DT_BFLOAT16:
            import ml_dtypes
            dtype = np.dtype(ml_dtypes.bfloat16)
        elif e.dtype in DTYPES:
            dtype = np.dtype(DTYPES[e.dtype])
        else:
            raise CheckpointFormatError(f"{name}: unsupported DataType {e.dtype}")
        count = int(np.prod(e.shape, dtype=np.int64))
        if count * dtype.itemsize != e.size:
            raise CheckpointFormatError(f"{name}: shape {e.shape} of {dtype} is {count * dtype.itemsize} "
                                        f"bytes, the entry says {e.size}")
        path = self.shard_path(e.shard_id)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{name}: data shard not found: {path}")
        with open(path, "rb") as f:
            f.seek(e.offset)
            data = f.read(e.size)
        if len(data) != e.size:
            raise CheckpointFormatError(f"{name}: {path} ends before offset {e.offset} + {e.size}")
        if self.verify and mask_crc(crc32c(data)) != e.crc32c:
            raise CheckpointFormatError(f"{name}: tensor bytes fail their crc32c check ({path})")
        return np.frombuffer(data, dtype.newbyteorder("<")).reshape(e.shape).copy()


def read_checkpoint(path: str, names=None, verify: bool = True, skip=("Momentum", "Adam")) -> dict:
    """{name: array} of a checkpoint's tensors (``names``, or all but optimizer slots whose
    name contains one of ``skip``)."""
    ckpt = TFCheckpoint(path, verify)
    if names is None:
        names = [n for n in ckpt.keys() if not any(s in n for s in skip)
                 and ckpt.entries[n].dtype != DT_STRING and not ckpt.entries[n].sliced]
    return {n: ckpt.read(n) for n in names}
