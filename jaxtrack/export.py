"""Export a tracker's ``init`` and ``track_step`` with ``jax.export``; reload them anywhere.

:func:`export_tracker` writes ONE file (an uncompressed ``.npz``, read with
``allow_pickle=False``) holding, per frame bucket ``(Hb, Wb)``:

* ``init_<Hb>x<Wb>``: serialised StableHLO of ``init(params, image, size, box, key) -> state``;
* ``step_<Hb>x<Wb>``: of ``track_step(params, state, image, size) -> (state, box, score)``;

plus the parameters as ``param_<i>`` arrays and a JSON ``meta`` record. **Parameters
are passed as an argument, not baked in**: the exported functions take the flat list
of parameter leaves first, and the file carries those leaves beside the code. So the
same exported code runs other weights of the same shapes (a retrained head) without
re-exporting, and large weights do not become HLO constants.

Serialisation: ``Exported.serialize()`` (JAX's flatbuffer format) needs the optional
``flatbuffers`` package. Where it is missing (as on the project's CI image) the
:class:`~jax.export.Exported` record is written field by field instead (:func:`to_bytes`):
the StableHLO bytecode as is, plus shapes, dtypes, tree structure, platforms and
calling-convention version as JSON. That covers exactly what these exports use (flat
trees, one device, no effects) and refuses anything else with a clear error.

Everything crosses the boundary flat (lists/tuples of arrays): the exported calling
convention then needs no tracker-specific pytree types (``SiamFCState`` ...), so
:func:`load_exported` and ``experiments/run_exported.py`` need only ``jax`` and
``numpy``, never the tracker's source. The loader lives in this module but imports
nothing of jaxtrack's trackers or models (a test checks ``sys.modules``).
"""
from __future__ import annotations

import io
import json

import jax
import jax.numpy as jnp
import numpy as np


FORMAT = "jaxtrack-export-v2"      # v2: step also returns the health flags (lost, finite)


def _bucket_name(bucket) -> str:
    return f"{int(bucket[0])}x{int(bucket[1])}"


def _key_struct():
    return jax.eval_shape(lambda: jax.random.PRNGKey(0))


# ----------------------------------------------------------------------------- Exported <-> bytes

def _have_flatbuffers() -> bool:
    try:
        import flatbuffers  # noqa: F401
        return True
    except ImportError:
        return False


def _tree_spec(treedef):
    """A JSON skeleton of a tree of tuples/lists/dicts/None with leaves marked ``0``."""
    def enc(x):
        if isinstance(x, tuple):
            return {"t": [enc(v) for v in x]}
        if isinstance(x, list):
            return {"l": [enc(v) for v in x]}
        if isinstance(x, dict):
            return {"d": [[k, enc(v)] for k, v in x.items()]}
        if x is None:
            return None
        if x == 0:
            return 0
        raise TypeError(f"cannot serialise pytree node {type(x).__name__}")
    skeleton = jax.tree_util.tree_unflatten(treedef, [0] * treedef.num_leaves)
    spec = enc(skeleton)
    if jax.tree_util.tree_structure(_tree_from_spec(spec)) != treedef:
        raise TypeError(f"pytree {treedef} has node types beyond tuple/list/dict")
    return spec


def _tree_from_spec(spec):
    if spec is None or spec == 0:
        return spec
    if "t" in spec:
        return tuple(_tree_from_spec(v) for v in spec["t"])
    if "l" in spec:
        return [_tree_from_spec(v) for v in spec["l"]]
    return {k: _tree_from_spec(v) for k, v in spec["d"]}


def to_bytes(exp) -> bytes:
    """Serialise a ``jax.export.Exported``: JAX's own format when ``flatbuffers`` is
    installed, else a JSON header + StableHLO bytecode (flat trees, one device only)."""
    if _have_flatbuffers():
        return b"JAXF" + bytes(exp.serialize())
    bad = [name for name, v in (("ordered_effects", exp.ordered_effects),
                                ("unordered_effects", exp.unordered_effects),
                                ("disabled_safety_checks", exp.disabled_safety_checks)) if v]
    if exp.nr_devices != 1 or any(s is not None for s in exp.in_shardings_hlo + exp.out_shardings_hlo):
        bad.append("shardings / several devices")
    if bad:
        raise ValueError(f"{exp.fun_name}: without the 'flatbuffers' package only single-device, "
                         f"effect-free exports can be written (this one has {bad})")
    avals = lambda avs: [[list(a.shape), str(a.dtype)] for a in avs]  # noqa: E731
    header = {"fun_name": exp.fun_name, "in_tree": _tree_spec(exp.in_tree),
              "out_tree": _tree_spec(exp.out_tree), "in_avals": avals(exp.in_avals),
              "out_avals": avals(exp.out_avals), "platforms": list(exp.platforms),
              "calling_convention_version": exp.calling_convention_version,
              "module_kept_var_idx": list(exp.module_kept_var_idx),
              "uses_global_constants": bool(exp.uses_global_constants)}
    h = json.dumps(header).encode()
    return b"JAXJ" + len(h).to_bytes(8, "little") + h + bytes(exp.mlir_module_serialized)


def from_bytes(data: bytes):
    """Inverse of :func:`to_bytes`: a ``jax.export.Exported`` ready to ``.call``."""
    data = bytes(data)
    tag, body = data[:4], data[4:]
    if tag == b"JAXF":
        return jax.export.deserialize(bytearray(body))
    if tag != b"JAXJ":
        raise ValueError("not a serialised jaxtrack export (unknown tag)")
    n = int.from_bytes(body[:8], "little")
    hdr = json.loads(body[8:8 + n].decode())
    from jax._src import core
    avals = lambda spec: tuple(core.ShapedArray(tuple(s), np.dtype(d)) for s, d in spec)  # noqa: E731
    nin, nout = len(hdr["in_avals"]), len(hdr["out_avals"])
    return jax.export.Exported(
        fun_name=hdr["fun_name"],
        in_tree=jax.tree_util.tree_structure(_tree_from_spec(hdr["in_tree"])),
        in_avals=avals(hdr["in_avals"]),
        out_tree=jax.tree_util.tree_structure(_tree_from_spec(hdr["out_tree"])),
        out_avals=avals(hdr["out_avals"]),
        _has_named_shardings=False, _in_named_shardings=(None,) * nin,
        _out_named_shardings=(None,) * nout,
        in_shardings_hlo=(None,) * nin, out_shardings_hlo=(None,) * nout, nr_devices=1,
        platforms=tuple(hdr["platforms"]), ordered_effects=(), unordered_effects=(),
        disabled_safety_checks=(), mlir_module_serialized=body[8 + n:],
        calling_convention_version=hdr["calling_convention_version"],
        module_kept_var_idx=tuple(hdr["module_kept_var_idx"]),
        uses_global_constants=hdr["uses_global_constants"], _get_vjp=None)


# ----------------------------------------------------------------------------- export

def export_tracker(tracker, buckets, path: str, platforms=None) -> dict:
    """Serialise ``tracker``'s init/track_step for each bucket in ``buckets`` to ``path``.

    ``platforms``: e.g. ``("cpu", "cuda")`` to lower for several backends at once
    (default: the current backend). Returns the ``meta`` record written.
    """
    from jaxtrack.core import Frame
    from jaxtrack.fileio import atomic_savez

    param_leaves, param_tree = jax.tree_util.tree_flatten(tracker.params)
    param_structs = [jax.ShapeDtypeStruct(np.shape(x), jnp.asarray(x).dtype) for x in param_leaves]
    key = _key_struct()
    box = jax.ShapeDtypeStruct((4,), jnp.float32)
    size = jax.ShapeDtypeStruct((2,), jnp.int32)
    arrays, entries, state_info = {}, [], None
    for bucket in buckets:
        hb, wb = int(bucket[0]), int(bucket[1])
        image = jax.ShapeDtypeStruct((hb, wb, 3), jnp.uint8)
        state_shape = jax.eval_shape(tracker.init, tracker.params, Frame(image, size), box, key)
        state_leaves, state_tree = jax.tree_util.tree_flatten(state_shape)

        def init_flat(pl, image, size, box, key):
            state = tracker.init(jax.tree_util.tree_unflatten(param_tree, pl), Frame(image, size), box, key)
            return tuple(jax.tree_util.tree_leaves(state))

        def step_flat(pl, sl, image, size):
            params = jax.tree_util.tree_unflatten(param_tree, pl)
            state = jax.tree_util.tree_unflatten(state_tree, list(sl))
            state, out = tracker.track_step(params, state, Frame(image, size))
            return (tuple(jax.tree_util.tree_leaves(state)),) + tuple(out)

        kw = {"platforms": tuple(platforms)} if platforms else {}
        exp_init = jax.export.export(jax.jit(init_flat), **kw)(param_structs, image, size, box, key)
        exp_step = jax.export.export(jax.jit(step_flat), **kw)(
            param_structs, tuple(jax.ShapeDtypeStruct(s.shape, s.dtype) for s in state_leaves), image, size)
        name = _bucket_name((hb, wb))
        arrays[f"init_{name}"] = np.frombuffer(to_bytes(exp_init), np.uint8)
        arrays[f"step_{name}"] = np.frombuffer(to_bytes(exp_step), np.uint8)
        entries.append([hb, wb])
        state_info = [[list(s.shape), str(s.dtype)] for s in state_leaves]
        platforms_used = list(exp_step.platforms)
    for i, x in enumerate(param_leaves):
        arrays[f"param_{i}"] = np.asarray(x)
    meta = {"format": FORMAT, "tracker": tracker.name, "config": repr(tracker.config),
            "buckets": entries, "num_params": len(param_leaves), "state_leaves": state_info,
            "params": "argument", "serialization": "jax" if _have_flatbuffers() else "json+stablehlo",
            "platforms": platforms_used, "jax": jax.__version__,
            "key": [list(key.shape), str(key.dtype)],
            "compiler_options": tracker.compiler_options,
            "signature": {"init": "init(param_leaves, image[Hb,Wb,3] uint8, size[2] int32, "
                                  "box[4] float32 xywh, key) -> state_leaves",
                          "step": "step(param_leaves, state_leaves, image, size) -> "
                                  "(state_leaves, box[4], score[], lost[] bool, finite[] bool)"}}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    atomic_savez(path, **arrays)
    return meta


# ----------------------------------------------------------------------------- load / run

class ExportedTracker:
    """An exported tracker, reloaded: jitted ``init`` / ``step`` per bucket, params on device."""

    def __init__(self, path: str):
        with open(path, "rb") as f:
            data = np.load(io.BytesIO(f.read()), allow_pickle=False)
        if "meta" not in data.files:
            raise ValueError(f"{path}: not a jaxtrack export (no 'meta' entry)")
        self.meta = json.loads(bytes(data["meta"]).decode())
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{path}: format {self.meta.get('format')!r}, this loader reads {FORMAT!r}")
        self.params = [jnp.asarray(data[f"param_{i}"]) for i in range(self.meta["num_params"])]
        self.buckets = [tuple(b) for b in self.meta["buckets"]]
        self._init, self._step = {}, {}
        from jaxtrack import xla_options
        opts = xla_options.for_this_backend(self.meta.get("compiler_options"))   # the tracker's
        for b in self.buckets:
            name = _bucket_name(b)
            self._init[b] = xla_options.jit(from_bytes(data[f"init_{name}"].tobytes()).call, opts)
            self._step[b] = xla_options.jit(from_bytes(data[f"step_{name}"].tobytes()).call, opts,
                                            donate_argnums=(1,))

    def bucket_for(self, h: int, w: int) -> tuple[int, int]:
        """The smallest exported bucket that holds an ``h x w`` frame."""
        fits = [b for b in self.buckets if b[0] >= h and b[1] >= w]
        if not fits:
            raise ValueError(f"a {h}x{w} frame fits none of the exported buckets "
                             f"{[_bucket_name(b) for b in self.buckets]}; export with a larger one")
        return min(fits, key=lambda b: b[0] * b[1])

    @staticmethod
    def pad(image: np.ndarray, bucket) -> tuple[np.ndarray, np.ndarray]:
        """Zero-pad an [H, W, 3] uint8 image into ``bucket``; returns (padded, size)."""
        image = np.asarray(image)
        h, w = image.shape[:2]
        out = np.zeros((bucket[0], bucket[1], 3), np.uint8)
        out[:h, :w] = image
        return out, np.array([h, w], np.int32)

    def init(self, bucket, image, box, key):
        padded, size = self.pad(image, bucket)
        return self._init[bucket](self.params, padded, size, jnp.asarray(box, jnp.float32), key)

    def step(self, bucket, state, image):
        padded, size = self.pad(image, bucket)
        return self._step[bucket](self.params, state, padded, size)

    def track(self, frames, box, key, bucket=None):
        """Track over an iterable of [H, W, 3] uint8 frames; returns (boxes (N, 4), scores (N,))."""
        boxes, scores, state = [], [], None
        for i, image in enumerate(frames):
            if i == 0:
                bucket = bucket or self.bucket_for(*np.shape(image)[:2])
                state = self.init(bucket, image, box, key)
                boxes.append(np.asarray(box, np.float64))
                scores.append(1.0)
            else:
                state, b, s, _, _ = self.step(bucket, state, image)
                boxes.append(np.asarray(b, np.float64))
                scores.append(float(s))
        return np.stack(boxes), np.asarray(scores)


def load_exported(path: str) -> ExportedTracker:
    return ExportedTracker(path)
