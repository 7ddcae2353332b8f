"""A safe reader for ``torch.save`` files: tensors become numpy arrays, no code runs.

``read_torch_checkpoint`` / ``load_state_dict`` need neither torch nor trust in the file.
Both layouts are read: the zip format (``<name>/data.pkl`` + ``<name>/data/<key>``
records, torch >= 1.6) and the legacy stream format (magic number, protocol, sys-info
pickles, the main pickle, the storage keys, then the raw storages). The pickles go
through a restricted ``pickle.Unpickler`` whose ``find_class`` maps the few globals a
tensor state dict needs onto local functions that build numpy arrays; any other global
raises :class:`UnsafeCheckpointError`, or, with ``allow_unknown_objects="skip"``, becomes
an inert :class:`UnknownObject` (never imported, never called), so the tensors of e.g. a
pytracking checkpoint (which pickles an ``ltr`` ``NetConstructor``) can still be read.
"""
from __future__ import annotations

import _compat_pickle
import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxtrack.errors import CheckpointError

__all__ = ["UnsafeCheckpointError", "UnknownObject", "read_torch_checkpoint", "load_state_dict"]


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint's pickle names a global that a tensor state dict does not need."""



# --------------------------------------------------------------------------------------
# dtypes: torch storage class names and torch dtype names -> numpy dtypes.

def _bfloat16():
    try:  # ml_dtypes comes with jax; numpy itself has no bfloat16.
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    except ImportError:  # pragma: no cover
        return None


_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_, "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128, "UntypedStorage": np.uint8,
}
_TORCH_DTYPES = {
    "float64": np.float64, "double": np.float64, "float32": np.float32, "float": np.float32,
    "float16": np.float16, "half": np.float16, "bfloat16": "bfloat16", "int64": np.int64,
    "long": np.int64, "int32": np.int32, "int": np.int32, "int16": np.int16,
    "short": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
    "complex64": np.complex64, "complex128": np.complex128, "uint16": np.uint16,
    "uint32": np.uint32, "uint64": np.uint64,
}


def _np_dtype(spec, what: str) -> np.dtype:
    if spec == "bfloat16":
        dt = _bfloat16()
        if dt is None:
            raise ValueError(f"{what}: bfloat16 needs the ml_dtypes package")
        return dt
    return np.dtype(spec)


class _Frozen:
    """Objects a pickle gets hold of must not be changeable by it (BUILD sets attributes)."""
    __slots__ = ()

    def _init(self, **attrs):
        for k, v in attrs.items():
            object.__setattr__(self, k, v)

    def __setattr__(self, name, value):
        raise UnsafeCheckpointError(f"checkpoint tried to set {name!r} on {type(self).__name__}")

    __delattr__ = __setattr__


class _DType(_Frozen):
    """Stands for ``torch.float32`` etc. (newer files pass dtypes to ``_rebuild_tensor_v3``)."""
    __slots__ = ("name", "dtype")

    def __init__(self, name: str):
        self._init(name=name, dtype=_np_dtype(_TORCH_DTYPES[name], f"torch.{name}"))

    def __repr__(self):
        return f"torch.{self.name}"


class _StorageType(_Frozen):
    """Stands for ``torch.FloatStorage`` etc. in a storage's persistent id."""
    __slots__ = ("name", "dtype")

    def __init__(self, name: str):
        self._init(name=name, dtype=_np_dtype(_STORAGE_DTYPES[name], f"torch.{name}"))

    def __repr__(self):
        return f"torch.{self.name}"


class _Storage(_Frozen):
    """Raw bytes of one torch storage with its element dtype (``data`` is None while unknown)."""
    __slots__ = ("dtype", "numel", "data")

    def __init__(self, dtype: np.dtype, numel: int, data=None):
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise UnsafeCheckpointError(f"bad storage dtype {dtype!r}")
        self._init(dtype=dtype, numel=int(numel), data=data)

    def array(self) -> np.ndarray:
        if self.data is None:
            raise pickle.UnpicklingError("storage data not loaded")
        return np.frombuffer(self.data, dtype=self.dtype, count=self.numel)


# --------------------------------------------------------------------------------------
# Tensor rebuild functions: local stand-ins for torch._utils._rebuild_*.

# A tensor may have more elements than its storage only through zero strides (an expanded
# view); beyond this many, a file could make the reader allocate memory it never held.
MAX_EXPANDED_ELEMENTS = 1 << 26

def _make_array(storage, offset, size, stride, dtype=None):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"tensor rebuilt from {type(storage).__name__}, not a storage")
    if storage.data is None:  # first pass over a legacy file: only sizes matter
        return None
    size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(offset)
    if len(size) != len(stride) or min(size + stride + (offset,), default=0) < 0:
        raise pickle.UnpicklingError(f"bad tensor geometry size={size} stride={stride} offset={offset}")
    flat = storage.array()
    if dtype is not None and dtype != flat.dtype:  # v3 over an untyped (byte) storage
        flat = flat.view(np.uint8).view(dtype)
    if any(s == 0 for s in size):
        return np.zeros(size, flat.dtype)
    count = int(np.prod(size, dtype=object))
    if count > max(flat.size, MAX_EXPANDED_ELEMENTS):   # zero strides would make memory from nothing
        raise pickle.UnpicklingError(f"tensor size={size} has {count} elements from a storage of {flat.size}")
    last = offset + sum((n - 1) * st for n, st in zip(size, stride))
    if last >= flat.size:  # as_strided would read outside the buffer: refuse
        raise pickle.UnpicklingError(
            f"tensor size={size} stride={stride} offset={offset} exceeds its storage of {flat.size}")
    view = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=size, strides=[st * flat.itemsize for st in stride], writeable=False)
    return np.array(view, copy=True, order="C")  # own the memory, C-contiguous


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _make_array(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _make_array(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    if not isinstance(dtype, _DType):
        raise pickle.UnpicklingError(f"tensor dtype {dtype!r} is not a torch dtype")
    return _make_array(storage, storage_offset, size, stride, dtype.dtype)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    # ``func`` came through find_class too, so it is one of the functions above (or inert).
    return func(*args)


def _tensor_type(data=None, *unused):
    """``torch.Tensor`` / ``torch.nn.Parameter`` as used by ``_rebuild_from_type_v2``."""
    return data


def _torch_size(*args):
    return tuple(*args)


def _torch_device(*args):
    return ":".join(str(a) for a in args)


def _bytearray(*args):
    """``bytearray`` for pickles, refusing to allocate more than the reader allows."""
    if args and isinstance(args[0], int) and args[0] > MAX_EXPANDED_ELEMENTS:
        raise pickle.UnpicklingError(f"bytearray({args[0]}) asks for more memory than a checkpoint holds")
    return bytearray(*args)


def _codecs_encode(obj, encoding="utf-8", errors="strict"):
    # Protocol-2 pickles write ``bytes`` as _codecs.encode(str, "latin1"); allow only that.
    if not isinstance(obj, str) or not isinstance(encoding, str):
        raise UnsafeCheckpointError("_codecs.encode called with non-string arguments")
    return obj.encode(encoding, errors)


class _SafeCallable(_Frozen):
    """Hands a pickle one of our functions without handing it the (mutable) function object."""
    __slots__ = ("fn",)

    def __init__(self, fn):
        self._init(fn=fn)

    def __call__(self, *args):
        return self.fn(*args)

    def __repr__(self):
        return f"<safe {self.fn.__name__}>"


# Built-in types are returned as they are (immutable, and NEWOBJ needs a real type);
# Python functions only wrapped.
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _tensor_type,
    ("torch._tensor", "Tensor"): _tensor_type,
    ("torch.nn.parameter", "Parameter"): _tensor_type,
    ("torch", "Size"): _torch_size,
    ("torch", "device"): _torch_device,
    ("_codecs", "encode"): _codecs_encode,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): _bytearray,
}
for _key, _value in list(_SAFE_GLOBALS.items()):
    if not isinstance(_value, type):
        _SAFE_GLOBALS[_key] = _SafeCallable(_value)
for _name in _STORAGE_DTYPES:
    _SAFE_GLOBALS[("torch", _name)] = _name  # resolved lazily: bfloat16 may be unavailable
for _name in _TORCH_DTYPES:
    _SAFE_GLOBALS[("torch", _name)] = ("dtype", _name)


# --------------------------------------------------------------------------------------
# Inert stand-ins for unknown objects (allow_unknown_objects="skip").

class UnknownObject:
    """Inert stand-in for an instance of a class that the checkpoint names but we refuse.

    ``module`` and ``name`` say what it was; ``args``, ``state``, ``items`` and
    ``list_items`` keep what the pickle passed to it (plain data, tensors as numpy).
    Nothing is imported and no code of the original class ever runs.
    """
    module = "?"
    name = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        object.__setattr__(obj, "__dict__", {"args": args, "kwargs": kwargs, "state": None,
                                             "items": {}, "list_items": []})
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["state"] = state

    def __setitem__(self, key, value):
        self.__dict__["items"][key] = value

    def append(self, value):
        self.__dict__["list_items"].append(value)

    def extend(self, values):
        self.__dict__["list_items"].extend(values)

    def __repr__(self):
        return f"<UnknownObject {self.module}.{self.name}>"


def _unknown_class(module: str, name: str) -> type:
    # A class (not a function) because NEWOBJ/REDUCE need a type to instantiate. A fresh
    # one per reader, so that a file cannot tamper with the classes another file gets.
    return type(f"Unknown[{module}.{name}]", (UnknownObject,),
                {"module": module, "name": name, "__module__": __name__})


# --------------------------------------------------------------------------------------
# The restricted unpickler.

class _RestrictedUnpickler(pickle.Unpickler):

    def __init__(self, file, persistent_load=None, allow_unknown_objects: str = "error"):
        super().__init__(file, encoding="utf-8")
        self._persistent = persistent_load
        self._allow_unknown = allow_unknown_objects
        self._unknown: dict[tuple[str, str], type] = {}

    def find_class(self, module, name):
        # Protocol-2 pickles from Python 2 era code say "__builtin__" etc.; normalise first
        # (only the names are mapped, nothing is imported).
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        value = _SAFE_GLOBALS.get((module, name))
        if isinstance(value, str):
            return _StorageType(value)
        if isinstance(value, tuple):
            return _DType(value[1])
        if value is not None:
            return value
        if self._allow_unknown == "skip":
            if (module, name) not in self._unknown:
                self._unknown[(module, name)] = _unknown_class(module, name)
            return self._unknown[(module, name)]
        raise UnsafeCheckpointError(
            f"checkpoint refers to global {module}.{name}, which a tensor state dict does not "
            "need; refusing to load it (pass allow_unknown_objects='skip' to replace unknown "
            "objects by inert placeholders, or load a file you trust with use_torch=True)")

    def persistent_load(self, pid):
        if self._persistent is None:
            raise UnsafeCheckpointError(f"unexpected persistent id {pid!r}")
        return self._persistent(pid)


def _restricted_load(file, persistent_load=None, allow_unknown_objects="error"):
    _check_memo(file)
    return _RestrictedUnpickler(file, persistent_load, allow_unknown_objects).load()


_MEMO_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}


def _check_memo(file) -> None:
    """Refuse a pickle whose memo indices exceed its own length, before the unpickler sees it:
    CPython's unpickler sizes its memo table by the largest index, so a few bytes could
    otherwise make it allocate gigabytes. Opcodes are only parsed here (pickletools), never run."""
    import pickletools
    start = file.tell()
    data = file.read()
    file.seek(start)
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in _MEMO_OPS and int(arg) > len(data):
                raise pickle.UnpicklingError(f"memo index {int(arg)} in a pickle of {len(data)} bytes")
    except pickle.UnpicklingError:
        raise
    except Exception:     # a malformed stream: the unpickler itself will say what is wrong
        pass


def _decode(s):
    return s.decode("ascii") if isinstance(s, bytes) else s


def _storage_type_dtype(storage_type) -> np.dtype:
    if not isinstance(storage_type, _StorageType):
        raise pickle.UnpicklingError(f"storage type {storage_type!r} is not a torch storage class")
    return storage_type.dtype


def _read_zip(fileobj, allow_unknown_objects):
    with zipfile.ZipFile(fileobj) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if not pkl:
            raise ValueError("zip file has no data.pkl: not a torch checkpoint")
        pkl = min(pkl, key=len)
        prefix = pkl[: -len("data.pkl")]
        big_endian = False
        if prefix + "byteorder" in names:
            big_endian = zf.read(prefix + "byteorder").strip() == b"big"
        storages: dict[str, _Storage] = {}

        def persistent_load(pid):
            if not isinstance(pid, tuple) or len(pid) != 5 or _decode(pid[0]) != "storage":
                raise UnsafeCheckpointError(f"unexpected persistent id {pid!r}")
            _, storage_type, key, _location, numel = pid
            key = str(_decode(key))
            if key not in storages:
                dtype = _storage_type_dtype(storage_type)
                record = prefix + "data/" + key
                if record not in names:
                    raise ValueError(f"checkpoint lacks storage record {record!r}")
                data = zf.read(record)
                if len(data) < int(numel) * dtype.itemsize:
                    raise ValueError(f"storage {key}: {len(data)} bytes, expected "
                                     f"{int(numel) * dtype.itemsize}")
                if big_endian and dtype.itemsize > 1:
                    data = np.frombuffer(data, dtype.newbyteorder(">"), int(numel)).astype(dtype).tobytes()
                storages[key] = _Storage(dtype, numel, data)
            return storages[key]

        with zf.open(pkl) as f:
            return _restricted_load(f, persistent_load, allow_unknown_objects)


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _read_legacy(data: bytes, allow_unknown_objects):
    """The pre-1.6 stream format; two passes because the storages follow the pickle."""
    f = io.BytesIO(data)
    try:
        magic = _restricted_load(f)
    except Exception as e:  # not a pickle at all
        if isinstance(e, UnsafeCheckpointError):
            raise
        raise ValueError(f"not a torch checkpoint (neither zip nor legacy format): {e}") from None
    if magic != _LEGACY_MAGIC:
        raise ValueError("not a torch checkpoint: bad magic number "
                         "(the very old tar-based format is not supported)")
    protocol = _restricted_load(f)
    if protocol != 1001:
        raise ValueError(f"unsupported legacy torch protocol version {protocol}")
    sys_info = _restricted_load(f)
    big_endian = isinstance(sys_info, dict) and not sys_info.get("little_endian", True)
    start = f.tell()

    def make_persistent_load(roots: dict):
        def persistent_load(pid):
            if not isinstance(pid, tuple) or not pid:
                raise UnsafeCheckpointError(f"unexpected persistent id {pid!r}")
            if _decode(pid[0]) != "storage" or len(pid) != 6:
                raise UnsafeCheckpointError(f"unsupported persistent id {pid!r}")
            _, storage_type, root_key, _location, numel, view = pid
            dtype = _storage_type_dtype(storage_type)
            root_key = str(_decode(root_key))
            if root_key not in roots:
                roots[root_key] = _Storage(dtype, numel)
            root = roots[root_key]
            if view is None:
                return root
            _view_key, offset, size = view  # a slice of the root storage (torch < 0.4 files)
            if root.data is None:
                return _Storage(dtype, size)
            start_b = int(offset) * root.dtype.itemsize
            return _Storage(dtype, size, root.data[start_b:start_b + int(size) * dtype.itemsize])
        return persistent_load

    # Pass 1: learn the storages' dtypes and sizes, and where the main pickle ends.
    roots: dict[str, _Storage] = {}
    _restricted_load(f, make_persistent_load(roots), allow_unknown_objects)
    keys = _restricted_load(f)
    if not isinstance(keys, list):
        raise ValueError("corrupt legacy checkpoint: storage key list missing")
    for key in keys:
        key = str(_decode(key))
        if key not in roots:
            raise ValueError(f"corrupt legacy checkpoint: unknown storage key {key!r}")
        st = roots[key]
        (numel,) = struct.unpack("<q", f.read(8))
        nbytes = numel * st.dtype.itemsize
        raw = f.read(nbytes)
        if numel != st.numel or len(raw) != nbytes:
            raise ValueError(f"corrupt legacy checkpoint: storage {key} truncated or resized")
        if big_endian and st.dtype.itemsize > 1:
            raw = np.frombuffer(raw, st.dtype.newbyteorder(">")).astype(st.dtype).tobytes()
        object.__setattr__(st, "data", raw)  # the one place a storage is filled in
    # Pass 2: the same pickle again, now with the data in place.
    f.seek(start)
    return _restricted_load(f, make_persistent_load(roots), allow_unknown_objects)


def _torch_to_numpy(obj):
    import torch
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(_bfloat16())
        return t.numpy().copy()
    if isinstance(obj, Mapping):
        return {k: _torch_to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_torch_to_numpy(v) for v in obj)
    return obj


def read_torch_checkpoint(path_or_file, allow_unknown_objects: str = "error",
                          use_torch: bool = False) -> Any:
    """Read a ``torch.save`` file into plain Python containers with numpy arrays for tensors.

    Never imports torch and never executes code from the file (unless ``use_torch``).

    Args:
      path_or_file: a path, or a binary file object / bytes.
      allow_unknown_objects: ``"error"`` (default) raises :class:`UnsafeCheckpointError`
        for any global outside the tensor allow-list; ``"skip"`` turns unknown classes
        into inert :class:`UnknownObject` instances (tensors are still read).
      use_torch: delegate to ``torch.load(path, map_location="cpu", weights_only=True)``
        (torch must be installed); tensors are converted to numpy.
    """
    if allow_unknown_objects not in ("error", "skip"):
        raise ValueError(f"allow_unknown_objects must be 'error' or 'skip', got {allow_unknown_objects!r}")
    if use_torch:
        import torch
        src = io.BytesIO(path_or_file) if isinstance(path_or_file, (bytes, bytearray)) else path_or_file
        return _torch_to_numpy(torch.load(src, map_location="cpu", weights_only=True))
    if isinstance(path_or_file, (bytes, bytearray, memoryview)):
        data = bytes(path_or_file)
    elif hasattr(path_or_file, "read"):
        data = path_or_file.read()
    else:
        data = Path(path_or_file).read_bytes()
    where = path_or_file if isinstance(path_or_file, (str, os.PathLike)) else "<file object>"
    try:
        if data[:4] == b"PK\x03\x04" or zipfile.is_zipfile(io.BytesIO(data)):
            return _read_zip(io.BytesIO(data), allow_unknown_objects)
        return _read_legacy(data, allow_unknown_objects)
    except UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(f"{where}: {e}") from None
    except MemoryError:
        raise
    except Exception as e:            # whatever a malformed pickle or zip makes the parser raise
        raise CheckpointError(f"{where}: not a readable torch checkpoint ({type(e).__name__}: {e})") from None


def _has_arrays(obj) -> bool:
    if isinstance(obj, np.ndarray):
        return True
    if isinstance(obj, Mapping):
        return any(_has_arrays(v) for v in obj.values())
    return False


def _flatten(obj, prefix: str, out: dict) -> None:
    if isinstance(obj, np.ndarray):
        out[prefix] = obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    # anything else (ints, strings, placeholders, lists) is not part of a state dict


_STATE_KEYS = ("state_dict", "net", "model", "model_state_dict", "params")


def load_state_dict(path, allow_unknown_objects: str = "error",
                    use_torch: bool = False) -> dict[str, np.ndarray]:
    """A flat ``{dotted.key: np.ndarray}`` state dict from a torch checkpoint.

    If the checkpoint is a dict holding a ``state_dict``/``net``/``model``/
    ``model_state_dict``/``params`` entry with tensors (pytracking saves ``net``,
    others ``state_dict``), that entry is used; otherwise the whole object is flattened,
    nested dicts giving dotted keys. Non-tensor leaves are dropped.
    """
    obj = read_torch_checkpoint(path, allow_unknown_objects=allow_unknown_objects,
                                use_torch=use_torch)
    if isinstance(obj, Mapping):
        for key in _STATE_KEYS:
            if key in obj and isinstance(obj[key], Mapping) and _has_arrays(obj[key]):
                obj = obj[key]
                break
    out: dict[str, np.ndarray] = {}
    _flatten(obj, "", out)
    if not out:
        raise CheckpointError(f"{path}: no tensors found in checkpoint")
    return out
