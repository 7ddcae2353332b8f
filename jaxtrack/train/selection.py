"""Model selection on the validation set (docs/validation.md): a tracker's mean AUC on it,
and the best-so-far record that a training run keeps and exports.

The validation root is the one ``experiments/make_validation_set.py`` writes; a folder
without its ``manifest.json`` (a benchmark root, say) is refused, so a checkpoint cannot be
chosen on the reported sequences by passing the wrong ``--val-root``.
"""
from __future__ import annotations

import json
import os

from jaxtrack import checkpoints, fileio

# where experiments/make_validation_set.py writes; JAXTRACK_VALIDATION_ROOT moves it (the
# tests point it at an empty place, so they run alike with and without a built set)
DEFAULT_ROOT = os.environ.get("JAXTRACK_VALIDATION_ROOT", os.path.expanduser("~/.cache/jaxtrack/validation"))
BEST = "best.msgpack"          # the best-by-validation weights in a run folder, + ".json"


def validation_root(root: str | None) -> str | None:
    """``root`` checked to be a validation set; None: the default one if it was built, else None."""
    if root is None:
        return DEFAULT_ROOT if os.path.isfile(os.path.join(DEFAULT_ROOT, "manifest.json")) else None
    manifest = os.path.join(root, "manifest.json")
    try:
        with open(manifest) as f:
            split_rule = json.load(f).get("split_rule")
    except (OSError, ValueError) as e:
        raise SystemExit(f"--val-root {root}: not a validation set ({manifest}: {e}); build one with "
                         "experiments/make_validation_set.py (benchmark sequences are for reporting only)")
    if not split_rule:
        raise SystemExit(f"--val-root {root}: {manifest} records no split rule; not a validation set "
                         "written by experiments/make_validation_set.py")
    return root


def validation_auc(tracker_name: str, params, root: str, *, sequences=None, seed: int = 0,
                   variant: str = "default", **overrides) -> dict:
    """Mean success AUC of ``tracker_name`` with ``params`` over the validation set at ``root``:
    ``{"auc", "per_sequence": {name: auc}, "parts": {part: mean auc}, "frames"}`` (sequences
    tracked from their first box; ``parts`` by :func:`part_of`, reported, not selected on)."""
    from jaxtrack.data.readers import load_dataset
    from jaxtrack.driver import run_sequence
    from jaxtrack.eval.sweep import sequence_result
    jt = _jit_tracker(tracker_name, variant, params, overrides)
    per = {}
    frames = 0
    for seq in load_dataset("otb", root, sequences=sequences):
        per[seq.name] = sequence_result(run_sequence(jt, seq, seed=seed), seq)["auc"]
        frames += len(seq)
    return {"auc": sum(per.values()) / len(per), "per_sequence": per, "parts": part_means(per),
            "frames": frames}


def part_of(name: str) -> str:
    """Which part of the validation set a sequence is: "synthetic" (``val_syn_*``), "real"
    (``val_real_*``, pseudo-labelled real video) or "composed" (the rest)."""
    return "synthetic" if name.startswith("val_syn_") else "real" if name.startswith("val_real_") else "composed"


def part_means(per_sequence: dict) -> dict:
    """{part: mean AUC} over the parts present (:func:`part_of`)."""
    groups = {}
    for name, auc in per_sequence.items():
        groups.setdefault(part_of(name), []).append(auc)
    return {part: round(sum(v) / len(v), 4) for part, v in sorted(groups.items())}


_COMPILED = {}      # (tracker, variant, overrides) -> JitTracker: later validations reuse the compiled steps


def _jit_tracker(tracker_name: str, variant: str, params, overrides: dict):
    """The jitted tracker for this config, compiled once per process; ``params`` are an
    argument of its jitted functions, so new weights need no new compilation."""
    import jaxtrack
    from jaxtrack.driver import JitTracker
    key = (tracker_name, variant, json.dumps(overrides, sort_keys=True, default=str))
    if key not in _COMPILED:
        _COMPILED[key] = JitTracker(jaxtrack.make_tracker(tracker_name, variant=variant, params=params,
                                                          **overrides))
    jt = _COMPILED[key]
    jt.params = params
    return jt


def best_record(run_dir: str) -> dict | None:
    """The run's best validation record (``best.msgpack.json``), or None before the first."""
    try:
        with open(os.path.join(run_dir, BEST + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def keep_if_best(run_dir: str, step: int, result: dict, variables) -> bool:
    """Write ``variables`` as the run's ``best.msgpack`` (atomically, then its record) when
    ``result["auc"]`` beats the record so far; True when it did. Ties keep the earlier step."""
    best = best_record(run_dir)
    if best is not None and best["auc"] >= result["auc"]:
        return False
    path = os.path.join(run_dir, BEST)
    checkpoints.save_variables(path, variables)
    fileio.atomic_write_json(path + ".json", {"step": int(step), **result})
    return True
