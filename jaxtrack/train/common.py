"""What the offline training scripts share: the SGD recipe of siamfc-pytorch / GradNet,
resumable training state, the run log, cached data pools, the data-parallel mesh, the
flags every script takes and the provenance record beside an exported checkpoint.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxtrack import checkpoints
from jaxtrack.data.sources import DEFAULT_IMAGES
from jaxtrack.fileio import atomic_write_bytes, atomic_write_json


# ------------------------------------------------------------------ optimiser

def siamfc_sgd(lr: float, final_lr: float, steps: int, weight_decay: float, momentum: float,
               decay_mask=None, anchor=None):
    """(schedule, optimiser) of siamfc-pytorch / GradNet: SGD with momentum and weight decay
    (on the leaves ``decay_mask`` marks, default all), the learning rate decaying
    log-linearly from ``lr`` to ``final_lr`` over ``steps``. With ``anchor`` (a params
    pytree) the decay pulls towards it instead of towards zero (:func:`decay_towards`)."""
    import optax
    schedule = optax.exponential_decay(lr, transition_steps=steps, decay_rate=final_lr / lr)
    decay = optax.add_decayed_weights(weight_decay, mask=decay_mask) if anchor is None \
        else decay_towards(anchor, weight_decay)
    return schedule, optax.chain(decay, optax.sgd(schedule, momentum=momentum))


def decay_towards(anchor, rate: float):
    """Weight decay towards ``anchor``: adds ``rate * (params - anchor)`` to the updates, so a
    head started at an untrained projection stays near it unless the loss pays for moving."""
    import optax

    def update_fn(updates, state, params):
        return jax.tree_util.tree_map(lambda u, p, a: u + rate * (p - a), updates, params, anchor), state
    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


# ------------------------------------------------------------------ state, log, pools

def restore_checkpoint(path: str, template: dict):
    """The training state saved at ``path`` (structure of ``template``), or None if absent."""
    from flax import serialization
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        state = serialization.from_bytes(template, f.read())
    print(f"resumed from {path} at step {int(state['step'])}")
    return state


def save_checkpoint(path: str, state: dict) -> None:
    """Write the training state atomically: an interruption leaves the previous one intact."""
    from flax import serialization
    atomic_write_bytes(path, serialization.to_bytes(state))


def log_record(path: str, record: dict) -> None:
    """Print one JSON line and append it to the run's ``log.jsonl``."""
    line = json.dumps(record)
    print(line, flush=True)
    with open(path, "a") as f:
        f.write(line + "\n")


def cached_pool(path: str, make) -> dict:
    """The pool of arrays at ``path`` (.npz); if absent, ``make()`` (a dict of arrays) is
    called and its result written there atomically, so a killed run leaves no half pool."""
    if os.path.exists(path):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    pool = make()
    buf = io.BytesIO()
    np.savez(buf, **pool)
    atomic_write_bytes(path, buf.getvalue())
    return pool


# ------------------------------------------------------------------ devices

class DataParallel(NamedTuple):
    """A 1-D mesh over every visible device: ``data`` splits the batch axis over it (XLA
    then averages the gradients), ``replicated`` puts a full copy on each device."""
    mesh: Mesh
    data: NamedSharding
    replicated: NamedSharding


def data_parallel() -> DataParallel:
    mesh = Mesh(np.array(jax.devices()), ("data",))
    return DataParallel(mesh, NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec()))


# ------------------------------------------------------------------ flags

def add_data_args(ap: argparse.ArgumentParser, synthetic: int) -> None:
    """``--images`` (the package photographs) and ``--synthetic`` (how many sequences)."""
    ap.add_argument("--images", default=DEFAULT_IMAGES,
                    help="folder of training photographs (fetch_training_images.py); '' for none")
    ap.add_argument("--synthetic", type=int, default=synthetic, help="number of synthetic sequences")


def add_sgd_args(ap: argparse.ArgumentParser) -> None:
    """``--lr --final-lr --weight-decay --momentum``, defaults of :func:`siamfc_sgd`'s recipe."""
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--final-lr", type=float, default=1e-5)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--momentum", type=float, default=0.9)


def add_run_args(ap: argparse.ArgumentParser, ckpt_every: int) -> None:
    """``--seed --ckpt-every --stop-after --export``."""
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt-every", type=int, default=ckpt_every)
    ap.add_argument("--stop-after", type=int, default=None,
                    help="end this run after N steps, as an interruption would (a rerun resumes)")
    ap.add_argument("--export", default=None, help="write the trained weights here when done")


def add_validation_args(ap: argparse.ArgumentParser, val_every: int) -> None:
    """``--val-root --val-every --val-sequences --export-last --keep-validated`` (docs/validation.md)."""
    ap.add_argument("--val-root", default=None,
                    help="validation set for model selection (default ~/.cache/jaxtrack/validation when "
                         "built by experiments/make_validation_set.py); a benchmark root is refused")
    ap.add_argument("--val-every", type=int, default=val_every,
                    help="validate every N steps and keep the best as best.msgpack (0: never)")
    ap.add_argument("--val-sequences", nargs="+", default=None, help="a subset of the validation set")
    ap.add_argument("--export-last", action="store_true",
                    help="export the last step instead of the best by validation AUC")
    ap.add_argument("--keep-validated", action="store_true",
                    help="also keep the weights of every validated step (validated/step_NNNNNN.msgpack), "
                         "for learning curves")


def validation_due(args, step: int, log_path: str) -> str | None:
    """The validation root when ``step`` is one to validate (step 0, the weights training starts
    from, so that a run never exports worse than its start; every ``--val-every`` steps and
    the last; a validation set built; not yet validated: a resumed run catches up), else None."""
    from jaxtrack.train import selection
    if not args.val_every or step < 0 or (step % args.val_every and step != args.steps):
        return None
    root = selection.validation_root(args.val_root)
    return None if root is None or step in validated_steps(log_path) else root


def validate_step(args, root: str, out: str, step: int, tracker_name: str, tracker_params, exported,
                  log_path: str, **overrides) -> None:
    """Track the validation set at ``root`` (``tracker_name`` with ``tracker_params`` and config
    ``overrides``), log the AUC, keep ``exported`` as the run's best (``best.msgpack``) when it wins."""
    from jaxtrack.train import selection
    t0 = time.time()
    result = selection.validation_auc(tracker_name, tracker_params, root, sequences=args.val_sequences,
                                      **overrides)
    best = selection.keep_if_best(out, step, result, exported)
    if getattr(args, "keep_validated", False):
        checkpoints.save_variables(os.path.join(out, "validated", f"step_{step:06d}.msgpack"), exported)
    log_record(log_path, {"step": step, "val_auc": round(result["auc"], 4), "val_parts": result["parts"],
                          "val_frames": result["frames"],
                          "val_root": root, "best": best, "val_s": round(time.time() - t0, 1)})


def validated_steps(log_path: str) -> set[int]:
    """Steps the run's log shows validated."""
    try:
        with open(log_path) as f:
            records = [json.loads(line) for line in f if line.strip()]
    except OSError:
        return set()
    return {r["step"] for r in records if "val_auc" in r}


def exported_choice(args, out: str, last_variables) -> tuple[object, dict]:
    """(weights to export, provenance fields): the best by validation AUC unless
    ``--export-last`` or no validation ran; then the last step's."""
    from jaxtrack.train import selection
    best = None if args.export_last else selection.best_record(out)
    if best is None:
        return last_variables, {"selected": "last step" + ("" if args.export_last else " (no validation ran)")}
    variables = checkpoints.load_variables(os.path.join(out, selection.BEST), last_variables)
    return variables, {"selected": "best validation AUC", "selected_step": best["step"],
                       "val_auc": best["auc"], "val_parts": best.get("parts"),
                       "val_per_sequence": best["per_sequence"]}


def command_line(script: str, argv=None) -> str:
    """``script`` and its arguments (``argv``, default the process's) as one string."""
    return " ".join([script] + list(sys.argv[1:] if argv is None else argv))


def write_provenance(export_path: str, record: dict) -> None:
    """``record`` (how the weights were trained) as ``<export_path>.json``, atomically."""
    atomic_write_json(export_path + ".json", record)
