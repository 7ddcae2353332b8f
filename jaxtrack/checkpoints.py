"""Flax checkpoints: msgpack files written atomically, read back with every leaf's shape
and dtype checked; where the trackers' committed checkpoints live, and the rule that
picks a trained part (the given file, else the committed one, else random when allowed).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from jaxtrack import fileio
from jaxtrack.errors import CheckpointError

CHECKPOINT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints")


def default_checkpoint(tracker: str, backbone: str) -> str:
    """The committed checkpoint of ``tracker`` on ``backbone``: ``checkpoints/<tracker>_<backbone>.msgpack``."""
    return os.path.join(CHECKPOINT_DIR, f"{tracker}_{backbone}.msgpack")


def save_variables(path, variables) -> None:
    """Write flax variables (any pytree of arrays / nested dicts) as msgpack, atomically."""
    import jax
    from flax import serialization
    state = serialization.to_state_dict(jax.device_get(variables))
    fileio.atomic_write_bytes(path, serialization.msgpack_serialize(state))


def _check_tree(got, want, path: tuple, file) -> None:
    where = "/".join(str(p) for p in path) or "<root>"
    if isinstance(want, Mapping):
        if not isinstance(got, Mapping):
            raise CheckpointError(f"{file}: at {where}: expected a dict, got {type(got).__name__}")
        missing = sorted(set(map(str, want)) - set(map(str, got)))
        extra = sorted(set(map(str, got)) - set(map(str, want)))
        if missing or extra:
            raise CheckpointError(f"{file}: at {where}: missing keys {missing}, unexpected keys {extra}")
        for k in want:
            _check_tree(got[k], want[k], path + (k,), file)
        return
    want_shape, want_dtype = tuple(np.shape(want)), np.dtype(want.dtype)
    if isinstance(got, Mapping):
        raise CheckpointError(f"{file}: at {where}: expected an array {want_shape}, got a dict")
    got = got if hasattr(got, "shape") else np.asarray(got)
    if tuple(got.shape) != want_shape:
        raise CheckpointError(f"{file}: at {where}: expected shape {want_shape}, got {tuple(got.shape)}")
    if np.dtype(got.dtype) != want_dtype:
        raise CheckpointError(f"{file}: at {where}: expected dtype {want_dtype}, got {np.dtype(got.dtype)}")


def _restore_msgpack(path):
    """The msgpack tree in ``path``, or a CheckpointError that names the file and says what it is."""
    from flax import serialization
    data = Path(path).read_bytes()
    try:
        raw = serialization.msgpack_restore(data)
    except Exception as e:                       # msgpack's own errors name no file
        kind = ("a zip file (a torch .pt/.pth checkpoint?)" if data[:2] == b"PK" else
                "a pickle (a legacy torch checkpoint?)" if data[:1] == b"\x80" else
                "empty" if not data else "not msgpack, or truncated")
        raise CheckpointError(f"{path}: not a jaxtrack .msgpack checkpoint ({kind}: "
                              f"{type(e).__name__}: {e})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: not a jaxtrack .msgpack checkpoint (holds a "
                              f"{type(raw).__name__}, not a dict of arrays)")
    return raw


def load_variables(path, template):
    """Read variables written by :func:`save_variables`, checked leaf by leaf against ``template``.

    ``template`` is a pytree of the same structure (real arrays or
    ``jax.ShapeDtypeStruct`` from ``jax.eval_shape``). Raises ``ValueError`` naming the
    file, the key path and the expected and found shapes (or dtypes, or keys).
    float16 leaves (files stored at half size) are widened to float32 first.
    Returns the restored pytree (same container types as ``template``), arrays as
    ``jax.Array``.
    """
    import jax
    import jax.numpy as jnp
    from flax import serialization
    raw = _restore_msgpack(path)
    raw = jax.tree.map(lambda v: v.astype(np.float32) if getattr(v, "dtype", None) == np.float16 else v,
                       raw)
    want = serialization.to_state_dict(template)
    _check_tree(raw, want, (), path)
    restored = serialization.from_state_dict(template, raw)
    return jax.tree.map(jnp.asarray, restored)


def load_trained_part(weights, default_path: str, template, *, allow_random: bool, what: str,
                      train_script: str):
    """A tracker's trained part: from ``weights`` (which must exist), else the committed
    ``default_path``, else ``template`` (random init) when ``allow_random``; otherwise a
    FileNotFoundError that says how to get one."""
    if weights and not os.path.exists(weights):
        raise FileNotFoundError(f"{what} weights not found: {weights}")
    path = weights or default_path
    if os.path.exists(path):
        return load_variables(path, template)
    if not allow_random:
        raise FileNotFoundError(f"no trained {what} at {path}; train one with {train_script} "
                                "or pass allow_random=True")
    return template


def fingerprint(tree) -> str:
    """sha256 over a pytree's key paths, shapes, dtypes and bytes: equal exactly when the
    params are (used to tell whether two runs tracked with the same weights)."""
    import hashlib

    import jax
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.shape}|{a.dtype}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()

