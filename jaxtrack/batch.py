"""Batched tracking: many sequences in lockstep, one compiled call per frame step.

Any tracker's ``track_step`` runs under ``jax.vmap`` over ``B`` *slots*, each holding one
sequence at a time. The slot axis is sharded over the local devices with ``jax.shard_map``
on a 1-D :class:`jax.sharding.Mesh` (axis ``"batch"``; params replicated, no
communication). An inactive slot keeps its state (the ``active`` mask); all slots of a
batch share one padded frame bucket; a finished slot is refilled with the next sequence's
unbatched ``init``, written in at a traced slot index, so each bucket compiles once
whatever the number of sequences. Per-frame times: a step's wall time shared equally by
the slots it advanced. :class:`BatchTracker` holds the compiled functions,
:func:`track_batched` drives them; :func:`initialize_distributed` and :func:`host_subset`
split the sequences over processes. Design notes: docs/trackers/batched.md.
"""
from __future__ import annotations

import collections
import concurrent.futures
import os
import time
from typing import Callable, Sequence as Seq

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxtrack import boxes as bx, xla_options
from jaxtrack.core import Frame, Tracker
from jaxtrack.driver import finish_result
from jaxtrack.frames import bucket_shape, check_image, sequence_key

BATCH_AXIS = "batch"


# ----------------------------------------------------------------------------- sharding

def batch_mesh(devices=None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: this process's local devices)."""
    devices = list(devices) if devices is not None else jax.local_devices()
    return Mesh(np.array(devices), (BATCH_AXIS,))


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> tuple[int, int]:
    """``jax.distributed.initialize`` when asked (flags, or ``JAX_COORDINATOR_ADDRESS`` /
    ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` in the environment); returns
    ``(process_index, process_count)``, ``(0, 1)`` for a single process."""
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and os.environ.get("JAX_PROCESS_ID"):
        process_id = int(os.environ["JAX_PROCESS_ID"])
    if coordinator is None and (num_processes or 1) == 1:
        return 0, 1
    if coordinator is None or num_processes is None or process_id is None:
        raise ValueError("multi-process run: give the coordinator address, the number of "
                         f"processes and this process's id (got {coordinator!r}, "
                         f"{num_processes!r}, {process_id!r})")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process id {process_id} outside [0, {num_processes})")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
    return jax.process_index(), jax.process_count()


def host_subset(items: Seq, process_index: int, process_count: int) -> list:
    """Items ``i`` with ``i % process_count == process_index`` (this host's share)."""
    return [x for i, x in enumerate(items) if i % process_count == process_index]


# ----------------------------------------------------------------------------- tracker

def _select(mask, new, old):
    """Per-slot ``where(mask, new, old)`` over two state pytrees with a leading batch axis."""
    def one(n, o):
        return jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o)
    return jax.tree_util.tree_map(one, new, old)


class BatchTracker:
    """A tracker's ``init`` / ``track_step`` vmapped over ``batch_size`` slots, sharded.

    ``batch_size`` must be a multiple of the number of devices in the mesh. Three
    functions, compiled ahead of time once per frame bucket ``(Hb, Wb)`` and kept in
    ``self.executables`` (so ``num_compilations`` is exact and slot refills provably
    reuse them):

    * ``step(bucket)(params, states, images[B,Hb,Wb,3], sizes[B,2], active[B]) -> (states, TrackOutput[B])``
    * ``init_batch(bucket)(params, states, images, sizes, boxes[B,4], keys[B,2], mask[B]) -> states``
    * ``init_slot(bucket)(params, states, image[Hb,Wb,3], size[2], box[4], key[2], slot) -> states``

    ``states`` is donated to all three (updated in place).
    """

    def __init__(self, tracker: Tracker, batch_size: int, devices=None):
        self.tracker = tracker
        self.mesh = batch_mesh(devices)
        n = self.mesh.size
        if batch_size < 1 or batch_size % n:
            raise ValueError(f"batch size {batch_size} must be a positive multiple of the "
                             f"{n} device(s) it is sharded over")
        self.batch_size = batch_size
        self.sharded = NamedSharding(self.mesh, P(BATCH_AXIS))
        self.replicated = NamedSharding(self.mesh, P())
        self.params = jax.device_put(tracker.params, self.replicated)
        self.executables: dict = {}          # (kind, bucket) -> compiled
        self.compile_seconds: dict = {}      # (kind, bucket) -> seconds
        init, track_step = tracker.init, tracker.track_step
        b = P(BATCH_AXIS)

        def step(params, states, images, sizes, active):
            new, out = jax.vmap(track_step, in_axes=(None, 0, 0))(params, states, Frame(images, sizes))
            return _select(active, new, states), out

        def init_batch(params, states, images, sizes, boxes, keys, mask):
            new = jax.vmap(init, in_axes=(None, 0, 0, 0))(params, Frame(images, sizes), boxes, keys)
            return _select(mask, new, states)

        def init_slot(params, states, image, size, box, key, slot):
            new = init(params, Frame(image, size), box, key)
            return jax.tree_util.tree_map(lambda s, x: s.at[slot].set(x.astype(s.dtype)), states, new)

        # shard_map: each device runs the vmapped functions on its own slots, no collectives.
        # check_vma=False: trackers' scans start from unbatched constants (e.g. zero
        # filters) whose carries become per-slot, which the varying-axes check rejects.
        opts = tracker.compiler_options
        self._jit = {
            "step": xla_options.jit(jax.shard_map(step, mesh=self.mesh, in_specs=(P(), b, b, b, b),
                                                  out_specs=(b, b), check_vma=False), opts,
                                    donate_argnums=(1,)),
            "init_batch": xla_options.jit(jax.shard_map(init_batch, mesh=self.mesh,
                                                        in_specs=(P(), b, b, b, b, b, b), out_specs=b,
                                                        check_vma=False), opts,
                                          donate_argnums=(1,)),
            # one sequence's init (replicated), written into its slot of the sharded state
            "init_slot": xla_options.jit(init_slot, opts, donate_argnums=(1,), out_shardings=self.sharded),
        }

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    @property
    def num_compilations(self) -> int:
        return len(self.executables)

    def state_shapes(self, bucket: tuple[int, int]):
        """ShapeDtypeStructs of the batched state for ``bucket`` frames (sharded over slots)."""
        hb, wb = bucket
        frame = Frame(jax.ShapeDtypeStruct((hb, wb, 3), jnp.uint8), jax.ShapeDtypeStruct((2,), jnp.int32))
        key = jax.eval_shape(lambda: jax.random.PRNGKey(0))
        shapes = jax.eval_shape(self.tracker.init, self.tracker.params, frame,
                                jax.ShapeDtypeStruct((4,), jnp.float32), key)
        return jax.tree_util.tree_map(
            lambda s: jax.ShapeDtypeStruct((self.batch_size,) + tuple(s.shape), s.dtype,
                                           sharding=self.sharded), shapes)

    def blank_states(self, bucket: tuple[int, int]):
        """Zero states of the right structure for ``bucket`` frames, sharded over slots."""
        return jax.device_put(jax.tree_util.tree_map(
            lambda s: np.zeros(s.shape, s.dtype), self.state_shapes(bucket)), self.sharded)

    def _args(self, kind: str, bucket: tuple[int, int]):
        B, (hb, wb) = self.batch_size, bucket
        key = jax.eval_shape(lambda: jax.random.PRNGKey(0))

        def sh(shape, dtype, sharding):
            return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
        states = self.state_shapes(bucket)
        if kind == "step":
            return (self.params, states, sh((B, hb, wb, 3), jnp.uint8, self.sharded),
                    sh((B, 2), jnp.int32, self.sharded), sh((B,), jnp.bool_, self.sharded))
        if kind == "init_batch":
            return (self.params, states, sh((B, hb, wb, 3), jnp.uint8, self.sharded),
                    sh((B, 2), jnp.int32, self.sharded), sh((B, 4), jnp.float32, self.sharded),
                    sh((B,) + key.shape, key.dtype, self.sharded), sh((B,), jnp.bool_, self.sharded))
        r = self.replicated
        return (self.params, states, sh((hb, wb, 3), jnp.uint8, r), sh((2,), jnp.int32, r),
                sh((4,), jnp.float32, r), sh(key.shape, key.dtype, r), sh((), jnp.int32, r))

    def compiled(self, kind: str, bucket: tuple[int, int]):
        """The compiled ``kind`` function for ``bucket``, compiling it on first use."""
        k = (kind, tuple(int(x) for x in bucket))
        if k not in self.executables:
            t0 = time.perf_counter()
            self.executables[k] = self._jit[kind].lower(*self._args(kind, k[1])).compile()
            self.compile_seconds[k] = time.perf_counter() - t0
        return self.executables[k]

    def step(self, states, images, sizes, active):
        """One batched ``track_step`` (host arrays in, device outputs back)."""
        fn = self.compiled("step", images.shape[1:3])
        return fn(self.params, states, self.put(images), self.put(sizes), self.put(active))

    def init_batch(self, states, images, sizes, boxes, keys, mask):
        fn = self.compiled("init_batch", images.shape[1:3])
        return fn(self.params, states, self.put(images), self.put(sizes), self.put(boxes),
                  self.put(keys), self.put(mask))

    def init_slot(self, states, image, size, box, key, slot: int):
        fn = self.compiled("init_slot", image.shape[:2])
        rep = lambda x, dt: jax.device_put(np.asarray(x, dt), self.replicated)
        return fn(self.params, states, rep(image, np.uint8), rep(size, np.int32),
                  rep(box, np.float32), rep(key, np.uint32), rep(slot, np.int32))

    def put(self, x):
        """Host array with a leading slot axis -> sharded over the mesh."""
        return jax.device_put(x, self.sharded)


# ----------------------------------------------------------------------------- host driver

def pad_into(image: np.ndarray, bucket: tuple[int, int], out: np.ndarray, size: np.ndarray,
             where: str) -> None:
    """Write an [H, W, 3] image into ``out`` [Hb, Wb, 3] zero-padded, as
    :func:`jaxtrack.frames.pad_frame` pads it, and its (h, w) into ``size``. ``out`` and
    ``size`` hold the slot's previous frame: the padding is only cleared when the size changes."""
    image = check_image(image, where)
    h, w = image.shape[:2]
    if h > bucket[0] or w > bucket[1]:
        raise ValueError(f"{where}: frame of size {h}x{w} does not fit the batch's bucket "
                         f"{bucket[0]}x{bucket[1]} (bucket_policy='max' pads to the largest)")
    if size[0] != h or size[1] != w:
        out[:] = 0
        size[:] = h, w
    out[:h, :w] = image


class _Slot:
    """Host-side bookkeeping of one sequence in one slot."""

    def __init__(self, index: int, seq):
        n = len(seq)
        self.index, self.seq, self.t = index, seq, 0          # t: the frame last tracked
        self.boxes = np.zeros((n, 4), np.float64)
        self.scores = np.zeros(n, np.float64)
        self.times = np.zeros(n, np.float64)
        self.lost, self.finite = np.zeros(n, bool), np.ones(n, bool)
        self.sizes = np.zeros((n, 2), np.int64)
        self.next = None                                    # future of frame t + 1

    @property
    def done(self) -> bool:
        return self.t + 1 >= len(self.seq)


def sequence_bucket(seq) -> tuple[int, int]:
    """The shape bucket of a sequence's first frame (header read only for files)."""
    return bucket_shape(*seq.frame_size(0))


def group_by_bucket(sequences, policy: str = "group") -> list[tuple[tuple[int, int], list[int]]]:
    """``[(bucket, [sequence indices])]``: one group per bucket (``"group"``, in order of
    first appearance), or a single group at the largest bucket (``"max"``)."""
    buckets = [sequence_bucket(s) for s in sequences]
    if policy == "max":
        return [((max(b[0] for b in buckets), max(b[1] for b in buckets)), list(range(len(sequences))))] \
            if buckets else []
    if policy != "group":
        raise ValueError(f"unknown bucket policy {policy!r} (group | max)")
    groups: dict = collections.OrderedDict()
    for i, b in enumerate(buckets):
        groups.setdefault(b, []).append(i)
    return list(groups.items())


def track_batched(bt: BatchTracker, sequences, seed: int = 0, *, bucket_policy: str = "group",
                  on_done: Callable | None = None, workers: int = 4,
                  batch_init_min: int | None = None) -> dict:
    """Track every sequence from its first ground-truth box, ``bt.batch_size`` at a time.

    Returns ``{name: SequenceResult(boxes, scores, times)}`` (boxes in jaxtrack xywh,
    row 0 the init box, as :func:`jaxtrack.driver.run_sequence`); ``on_done(seq, result)``
    is called as each sequence finishes. ``batch_init_min``: start this many or more new
    sequences with one vmapped ``init_batch`` (faster first fill, but not bit-equal to
    the one-sequence driver: docs/trackers/batched.md); default ``None``: always per-slot
    ``init_slot``, exactly the unbatched ``init``.
    """
    sequences = list(sequences)
    names = [s.name for s in sequences]
    if len(set(names)) != len(names):
        raise ValueError("sequence names must be unique")
    results = {}
    pool = concurrent.futures.ThreadPoolExecutor(max(1, workers))
    try:
        for bucket, idx in group_by_bucket(sequences, bucket_policy):
            _track_group(bt, [sequences[i] for i in idx], bucket, seed, pool, results, on_done,
                         batch_init_min if batch_init_min is not None else bt.batch_size + 1)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results


def _track_group(bt, sequences, bucket, seed, pool, results, on_done, batch_init_min):
    B = bt.batch_size
    hb, wb = bucket
    queue = collections.deque(enumerate(sequences))
    slots: list[_Slot | None] = [None] * B
    states = bt.blank_states(bucket)
    # host staging buffers, reused: every use below blocks before they are written again
    images = np.zeros((B, hb, wb, 3), np.uint8)
    sizes = np.zeros((B, 2), np.int32)

    def finish(s: int):
        slot = slots[s]
        res = finish_result(slot.seq.name, slot.boxes, slot.scores, slot.times, slot.lost, slot.finite,
                            slot.sizes)
        results[slot.seq.name] = res
        slots[s] = None
        if on_done is not None:
            on_done(slot.seq, res)

    while True:
        # ---- start new sequences in free slots
        starting = []
        for s in range(B):
            if slots[s] is None and queue:
                i, seq = queue.popleft()
                slots[s] = _Slot(i, seq)
                slots[s].next = pool.submit(seq.frame, 0)
                starting.append(s)
        if starting:
            t0 = time.perf_counter()
            boxes = np.zeros((B, 4), np.float32)
            keys = np.zeros((B,) + tuple(np.shape(jax.random.PRNGKey(0))), np.uint32)
            mask = np.zeros(B, bool)
            for s in starting:
                slot = slots[s]
                image = slot.next.result()
                pad_into(image, bucket, images[s], sizes[s], f"{slot.seq.name} frame 0")
                slot.sizes[0] = sizes[s]
                box = bx.validate_box(slot.seq.gt[0], image.shape[:2], where=f"{slot.seq.name}: first box")
                boxes[s], keys[s], mask[s] = box, np.asarray(sequence_key(seed, slot.seq.name)), True
                slot.boxes[0], slot.scores[0] = box, 1.0
                if len(slot.seq) > 1:
                    slot.next = pool.submit(slot.seq.frame, 1)
            if len(starting) >= batch_init_min:
                states = bt.init_batch(states, images, sizes, boxes, keys, mask)
            else:
                for s in starting:
                    states = bt.init_slot(states, images[s], sizes[s], boxes[s], keys[s], s)
            jax.block_until_ready(states)
            dt = (time.perf_counter() - t0) / len(starting)
            for s in starting:
                slots[s].times[0] = dt
            for s in starting:
                if slots[s].done:          # a one-frame sequence: init is all there is
                    finish(s)
            if queue and any(slots[s] is None for s in starting):
                continue                   # refill those slots before stepping
        active = np.array([sl is not None for sl in slots])
        if not active.any():
            break
        # ---- one batched step over every active slot
        t0 = time.perf_counter()
        for s in np.flatnonzero(active):
            slot = slots[s]
            pad_into(slot.next.result(), bucket, images[s], sizes[s],
                     f"{slot.seq.name} frame {slot.t + 1}")
            slot.t += 1
            slot.sizes[slot.t] = sizes[s]
            if not slot.done:
                slot.next = pool.submit(slot.seq.frame, slot.t + 1)
        states, out = bt.step(states, images, sizes, active)
        out_boxes, out_scores = np.asarray(out.box), np.asarray(out.score)
        out_lost, out_finite = np.asarray(out.lost), np.asarray(out.finite)
        dt = (time.perf_counter() - t0) / active.sum()
        for s in np.flatnonzero(active):
            slot = slots[s]
            slot.boxes[slot.t], slot.scores[slot.t], slot.times[slot.t] = out_boxes[s], out_scores[s], dt
            slot.lost[slot.t], slot.finite[slot.t] = out_lost[s], out_finite[s]
            if slot.done:
                finish(s)
