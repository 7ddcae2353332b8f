"""Ablation sweeps: every row of a table tracked on the same sequences, one record, one table.

A row is a :class:`jaxtrack.configs.Row`; a tracker's rows and the extra steps of its table
(:class:`Hooks`: weights to train, a step to tune, a metric to add) are defined in
``jaxtrack/configs/<tracker>.py``; ``experiments/ablate.py`` is the command line. A sweep
folder holds ``sweep.json`` (settings, what each row tracked with, per (row, sequence)
results, means), ``sweep.md`` (the table) and ``boxes/<row>/`` (run_ope's result files).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from jaxtrack.configs import Row, variant_overrides
from jaxtrack.eval.ope import RunMismatchError, claim_folder, result_paths, run_identity, write_sequence_result
from jaxtrack.fileio import atomic_write_json, atomic_write_text

RECORD, TABLE, BOXES = "sweep.json", "sweep.md", "boxes"
SETTINGS = ("table", "seed", "overrides", "dataset", "max_frames")   # a resumed record must match
AGREE = ("auc", "prec20", "frames")                                  # a merged sequence must match


@dataclasses.dataclass(frozen=True)
class Hooks:
    """What one ablation table adds to the generic loop (every field optional).

    ``metrics``: ``{name: format}`` of the extra per-sequence metrics ``sequence`` returns
    (table columns, means over sequences), e.g. ``{"channels": "{:.1f}"}``.
    ``prepare(rows, ctx) -> {row: overrides}``: before any tracker is built (train weights,
    tune a step); what it decides and wants recorded goes into ``ctx.extra``.
    ``sequence(jt, seq, result, seed) -> {name: value}``: after each tracked sequence.
    ``finish(rows, trackers, ctx)``: after tracking (e.g. probe the weights), into ``ctx.extra``.
    ``markdown(record) -> str``: appended to the table.
    """
    metrics: Mapping[str, str] = dataclasses.field(default_factory=dict)
    prepare: Callable | None = None
    sequence: Callable | None = None
    finish: Callable | None = None
    markdown: Callable | None = None


@dataclasses.dataclass
class Context:
    """What hooks see: the sweep's folder, seed and global overrides, the script's options,
    and ``extra`` (kept in the record, resumed with it)."""
    out: str
    seed: int = 0
    overrides: dict = dataclasses.field(default_factory=dict)
    options: dict = dataclasses.field(default_factory=dict)
    extra: dict = dataclasses.field(default_factory=dict)
    allow_random: bool = False
    log: Callable = print

    def resolved(self, row: Row) -> dict:
        """The row's overrides as ``make_tracker`` applies them: variant, row, global."""
        return {**variant_overrides(row.tracker, row.variant), **row.overrides, **self.overrides}

    def make(self, row: Row, **extra):
        """The row's tracker: its variant, its overrides, the global ones, then ``extra``."""
        import jaxtrack
        kw = {**row.overrides, **self.overrides, **extra}
        if self.allow_random:
            kw.setdefault("allow_random", True)
        return jaxtrack.make_tracker(row.tracker, variant=row.variant, **kw)


# ----------------------------------------------------------------------------- one sequence

def sequence_result(result, seq) -> dict:
    """AUC, prec@20, FPS (frames after the first over their summed times, as run_ope), frames,
    init and tracking seconds of one sequence (``result``: :func:`jaxtrack.driver.run_sequence`)."""
    from jaxtrack.eval.metrics import sequence_metrics
    m = sequence_metrics(result.boxes, seq.gt, seq.index_base)
    times = np.asarray(result.times, np.float64)
    track_s = float(times[1:].sum())
    return {"auc": float(m["auc"]), "prec20": float(m["prec20"]),
            "fps": (len(times) - 1) / track_s if track_s > 0 else None, "frames": len(seq),
            "init_s": float(times[0]), "track_s": track_s}


def init_state(jt, seq, result, seed: int):
    """The state ``init`` gave on ``seq`` (run again: ``jt.init`` is compiled already)."""
    import jax.numpy as jnp

    from jaxtrack.frames import pad_frame, sequence_key
    return jt.init(jt.params, pad_frame(seq.frame(0)), jnp.asarray(result.boxes[0], jnp.float32),
                   sequence_key(seed, seq.name))


def truncate(seq, n: int | None):
    """The first ``n`` frames of ``seq`` (all of them when ``n`` is None)."""
    if n is None or len(seq) <= n:
        return seq
    kw = {"gt": seq.gt[:n]}
    if seq.images is not None:
        kw["images"] = seq.images[:n]
    else:
        kw["frame_paths"] = seq.frame_paths[:n]
    if seq.visible is not None:
        kw["visible"] = seq.visible[:n]
    return dataclasses.replace(seq, **kw)


def row_folder(name: str) -> str:
    """A row's folder under ``boxes/`` (row names hold ``/``, spaces, commas)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_") or "row"


def _plain(x):
    """``x`` as it reads back from JSON (tuples become lists), so records compare equal."""
    return json.loads(json.dumps(x))


def _row_identity(row: Row, tracker) -> dict:
    from jaxtrack.checkpoints import fingerprint
    return _plain({"tracker": row.tracker, "variant": row.variant, "overrides": row.overrides,
                   "train": row.train, "config": repr(tracker.config),
                   "params_sha256": fingerprint(tracker.params)})


def _differences(old: dict, new: dict, keys=None) -> list[str]:
    keys = keys or sorted(set(old) | set(new))
    return [f"{k}: recorded {old.get(k)!r}, now {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def _union(old: list, new) -> list:
    return list(old) + [x for x in new if x not in old]


def _check_folders(rows) -> None:
    folders = {}
    for name in rows:
        other = folders.setdefault(row_folder(name), name)
        if other != name:
            raise ValueError(f"rows {other!r} and {name!r} would share the folder {row_folder(name)!r}")


# ----------------------------------------------------------------------------- the loop

def sweep(rows: Mapping[str, Row], sequences, out, *, seed: int = 0, overrides: dict | None = None,
          dataset: str = "", table: str = "", hooks: Hooks | None = None, options: dict | None = None,
          max_frames: int | None = None, allow_random: bool = False, info: dict | None = None,
          log: Callable = print) -> dict:
    """Track every row on every sequence (its first ``max_frames`` frames) and tabulate.

    ``rows``: ``{name: Row}``, in table order; ``overrides`` apply to every row (config fields,
    or ``weights``); ``table``: the ablation's name (its hooks' tracker); ``options``: what the
    hooks read (e.g. training flags). The record ``out/sweep.json`` is rewritten after every
    sequence; a rerun skips finished (row, sequence) pairs, and raises
    :class:`~jaxtrack.eval.ope.RunMismatchError` when the record's settings (seed, global
    overrides, dataset, ``max_frames``) or a row's config or weights differ from this run's.
    Returns the record (with ``means`` of the rows done on every sequence).
    """
    rows = dict(rows)
    hooks = hooks or Hooks()
    _check_folders(rows)
    sequences = [truncate(s, max_frames) for s in sequences]
    names = [s.name for s in sequences]
    if len(set(names)) != len(names):
        raise ValueError("sequence names must be unique")
    out = str(out)
    path = os.path.join(out, RECORD)
    settings = _plain({"table": table, "seed": seed, "overrides": dict(overrides or {}),
                       "dataset": dataset, "max_frames": max_frames})
    record = {"settings": settings, "rows": [], "row_settings": {}, "sequences": [], "results": {},
              "extra": {}, "means": {}}
    if os.path.exists(path):
        old = load_record(path)
        diff = _differences(old["settings"], settings, SETTINGS)
        if diff:
            raise RunMismatchError(f"{path}: holds a sweep with other settings ({'; '.join(diff)}); "
                                   "use another --out")
        record.update({k: old[k] for k in ("rows", "row_settings", "sequences", "results", "extra")})
    record["rows"] = _union(record["rows"], rows)
    _check_folders(record["rows"])
    record["sequences"] = _union(record["sequences"], names)

    os.makedirs(out, exist_ok=True)
    ctx = Context(out, seed, dict(settings["overrides"]), dict(options or {}), record["extra"],
                  allow_random, log)
    # before this process touches a device: a hook may train in a subprocess that needs it
    row_overrides = hooks.prepare(rows, ctx) if hooks.prepare else {}
    record["info"] = _info(info, options)
    trackers = {}
    for name, row in rows.items():                 # every row checked before anything is tracked
        tracker = ctx.make(row, **row_overrides.get(name, {}))
        ident = _row_identity(row, tracker)
        old = record["row_settings"].get(name)
        if old is not None and old != ident:
            raise RunMismatchError(f"{path}: row {name!r} was tracked with other settings "
                                   f"({'; '.join(_differences(old, ident)[:3])}); use another --out")
        record["row_settings"][name] = ident
        trackers[name] = tracker
    atomic_write_json(path, record)

    from jaxtrack.driver import JitTracker, run_sequence
    for name, tracker in trackers.items():
        res = record["results"].setdefault(name, {})
        todo = [s for s in sequences if s.name not in res]
        if not todo:
            continue
        folder = os.path.join(out, BOXES, row_folder(name))
        extra_id = {"max_frames": max_frames} if max_frames else {}
        claim_folder(folder, run_identity(tracker, variant=rows[name].variant, seed=seed, **extra_id))
        jt = JitTracker(tracker)
        for seq in todo:
            t0 = time.perf_counter()
            r = run_sequence(jt, seq, seed=seed)
            m = sequence_result(r, seq)
            if hooks.sequence:
                m.update(hooks.sequence(jt, seq, r, seed))
            write_sequence_result(folder, seq, r.boxes, r.times)
            res[seq.name] = m
            atomic_write_json(path, record)
            extras = "".join(f" {k} {hooks.metrics[k].format(m[k])}" for k in hooks.metrics if k in m)
            fps = "-" if m["fps"] is None else f"{m['fps']:.1f}"
            log(f"{name:15s} {seq.name:10s} AUC {m['auc']:.3f} prec {m['prec20']:.3f} fps {fps}"
                f"{extras} ({time.perf_counter() - t0:.0f} s)")
    if hooks.finish:
        hooks.finish(rows, trackers, ctx)
    return finish(record, out, hooks, log=log)


def _info(info, options) -> dict:
    import jax
    return _plain({**(info or {}), "options": options or {}, "device": str(jax.devices()[0]),
                   "jax": jax.__version__})


def load_record(path) -> dict:
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    if "settings" not in record or "results" not in record:
        raise RunMismatchError(f"{path}: not a sweep record")
    return record


# ----------------------------------------------------------------------------- means and table

def means(record: dict, metrics=()) -> dict:
    """``{row: means}`` for the rows done on every sequence of the record: AUC, prec@20 and the
    ``metrics`` averaged over sequences, FPS over all tracked frames (as run_ope)."""
    out = {}
    seqs = record["sequences"]
    for row in record["rows"]:
        res = record["results"].get(row, {})
        if not seqs or not all(s in res for s in seqs):
            continue
        per = [res[s] for s in seqs]
        frames = sum(p["frames"] - 1 for p in per)
        secs = sum(p.get("track_s") or 0.0 for p in per)
        m = {"auc": float(np.mean([p["auc"] for p in per])),
             "prec20": float(np.mean([p["prec20"] for p in per])),
             "fps": frames / secs if secs > 0 else None, "frames": sum(p["frames"] for p in per)}
        for k in metrics:
            vals = [p[k] for p in per if p.get(k) is not None]
            m[k] = float(np.mean(vals)) if len(vals) == len(per) else None
        out[row] = m
    return out


def markdown(record: dict, hooks: Hooks | None = None) -> str:
    """The table: a line per row, AUC / prec@20 per sequence, the means, FPS and the extra
    metrics' means (``-`` where a row has not done every sequence); then ``hooks.markdown``."""
    hooks = hooks or Hooks()
    st, seqs = record["settings"], record["sequences"]
    extra = list(hooks.metrics)
    fmt = lambda x, f="{:.3f}": "-" if x is None else f.format(x)    # noqa: E731
    title = (f"{st['table'] or 'sweep'}: dataset {st['dataset']}, {len(seqs)} sequence(s)"
             + (f" (first {st['max_frames']} frames)" if st.get("max_frames") else "")
             + f", seed {st['seed']}" + (f", overrides {st['overrides']}" if st["overrides"] else "")
             + f", device {record.get('info', {}).get('device', '?')}.")
    lines = [title, "", "| row | " + " | ".join(seqs + ["mean AUC", "mean prec@20", "FPS"] + extra) + " |",
             "|---" * (len(seqs) + 4 + len(extra)) + "|"]
    for row in record["rows"]:
        res = record["results"].get(row, {})
        if not res:
            continue
        m = record["means"].get(row, {})
        cells = [f"{res[s]['auc']:.3f} / {res[s]['prec20']:.3f}" if s in res else "-" for s in seqs]
        cells += [f"**{fmt(m.get('auc'))}**" if m else "-", fmt(m.get("prec20")), fmt(m.get("fps"), "{:.1f}")]
        cells += [fmt(m.get(k), hooks.metrics[k]) for k in extra]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + ("\n\nPer sequence: AUC / precision@20px. FPS: frames after the first "
                               "over their summed times.\n")
    if hooks.markdown:
        text += hooks.markdown(record)
    return text


def finish(record: dict, out, hooks: Hooks | None = None, log: Callable = print) -> dict:
    """Means of the complete rows; write ``sweep.json`` and ``sweep.md``; log the table."""
    hooks = hooks or Hooks()
    record["means"] = means(record, list(hooks.metrics))
    atomic_write_json(os.path.join(out, RECORD), record)
    text = markdown(record, hooks)
    atomic_write_text(os.path.join(out, TABLE), text)
    log(text)
    return record


# ----------------------------------------------------------------------------- merging

def find_records(folders) -> list[Path]:
    """Every ``sweep.json`` under ``folders`` (searched recursively), in a fixed order."""
    found = []
    for folder in folders:
        for dirpath, _, files in sorted(os.walk(folder)):
            if RECORD in files:
                found.append(Path(dirpath) / RECORD)
    return found


def merge(folders, out, hooks: Hooks | None = None, log: Callable = print) -> dict:
    """One sweep from several run separately (e.g. one process per row or sequence): the
    records under ``folders`` (recursively) and their boxes, into ``out``. Settings and every
    shared row's config and weights must agree, and a (row, sequence) found twice must have
    the same AUC, prec@20 and frames; otherwise :class:`RunMismatchError` names it."""
    paths = find_records(folders)
    if not paths:
        raise FileNotFoundError(f"no {RECORD} under {list(map(str, folders))}")
    merged, source = None, {}
    for path in paths:
        rec = load_record(path)
        if merged is None:
            merged = {"settings": rec["settings"], "rows": [], "row_settings": {}, "sequences": [],
                      "results": {}, "extra": {}, "means": {},
                      "info": {**rec.get("info", {}), "merged_from": []}}
        diff = _differences(merged["settings"], rec["settings"], SETTINGS)
        if diff:
            raise RunMismatchError(f"{path}: settings differ from {paths[0]} ({'; '.join(diff)})")
        for row, ident in rec["row_settings"].items():
            old = merged["row_settings"].setdefault(row, ident)
            if old != ident:
                raise RunMismatchError(f"{path}: row {row!r} has other settings than in an earlier record "
                                       f"({'; '.join(_differences(old, ident)[:3])})")
        for row, res in rec["results"].items():
            into = merged["results"].setdefault(row, {})
            for seq, m in res.items():
                old = into.get(seq)
                if old is None:
                    into[seq], source[row, seq] = m, path.parent
                    continue
                bad = [k for k in AGREE if not _agree(old.get(k), m.get(k))]
                if bad:
                    raise RunMismatchError(
                        f"{path}: {row} {seq}: " + ", ".join(f"{k} {m.get(k)} differs from {old.get(k)}"
                                                            for k in bad)
                        + f" in {source[row, seq] / RECORD}")
        merged["rows"] = _union(merged["rows"], rec["rows"])
        merged["sequences"] = _union(merged["sequences"], rec["sequences"])
        for k, v in rec.get("extra", {}).items():
            have = merged["extra"].get(k)
            merged["extra"][k] = {**v, **have} if isinstance(v, dict) and isinstance(have, dict) else \
                (v if have is None else have)
        merged["info"]["merged_from"].append(str(path.parent))
    _check_folders(merged["rows"])
    for (row, seq), src in source.items():       # the boxes, times and run.json of every result
        for name in (result_paths(row_folder(row), seq) + (Path(row_folder(row)) / "run.json",)):
            a, b = src / BOXES / name, Path(out) / BOXES / name
            if not a.exists():
                log(f"warning: {a} missing (not copied)")
            elif not (b.exists() and os.path.samefile(a, b)):
                b.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(a, b)
    os.makedirs(out, exist_ok=True)
    return finish(merged, out, hooks, log=log)


def _agree(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= 1e-9
    return a == b
