"""Attribute-wise scores: each tracker's AUC over the sequences that have an attribute.

OTB labels every sequence with some of eleven attributes (``OTB_ATTRIBUTES``: IV, SV, OCC, ...).
A sequence's attributes come from its own ``attrs.txt`` (``Sequence.attrs``) and, for a
sequence without one, from a table ``{sequence: [codes]}``: the one shipped in
``jaxtrack/data/attributes/<dataset>.json`` (OTB-100, with its source in the README beside it)
or a file of the user's (:func:`load_attribute_table`).

An attribute's score is what the OTB toolkit and got10k's ``ExperimentOTB`` compute for a
subset of sequences: the per-sequence success curves averaged over the subset, and the AUC
read off that mean curve. The AUC is the mean of the curve, so this is exactly the mean of
the per-sequence AUCs (likewise for precision at 20 px), which is what
:func:`attribute_scores` takes from the reports of :func:`jaxtrack.eval.ope.evaluate_results`.
A tracker without a result for some sequence of the subset is scored on the rest, and the
count it was scored on is kept (the tables show ``k/n`` then).
"""
from __future__ import annotations

import io
import json
import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from jaxtrack.errors import DatasetError, DatasetNotFoundError
from jaxtrack.eval.report import format_score
from jaxtrack.fileio import atomic_write_bytes

# The eleven OTB attributes (Wu, Lim and Yang, TPAMI 2015), in the benchmark's order.
OTB_ATTRIBUTES = {
    "IV": "Illumination Variation",
    "SV": "Scale Variation",
    "OCC": "Occlusion",
    "DEF": "Deformation",
    "MB": "Motion Blur",
    "FM": "Fast Motion",
    "IPR": "In-Plane Rotation",
    "OPR": "Out-of-Plane Rotation",
    "OV": "Out-of-View",
    "BC": "Background Clutters",
    "LR": "Low Resolution",
}

# per-sequence scores that average linearly over sequences (AO is frame-weighted: not here)
_LINEAR = ("auc", "prec20", "norm_prec", "norm_prec20")
_SPLIT = re.compile(r"[,;\s]+")


# ----------------------------------------------------------------------------- tables of attributes

def default_table_path(dataset: str = "otb") -> Path | None:
    """The attribute table shipped for ``dataset`` (``jaxtrack/data/attributes/<dataset>.json``),
    or None when none is shipped."""
    name = dataset.lower().replace("-", "").replace("_", "")
    path = resources.files("jaxtrack.data").joinpath("attributes").joinpath(f"{name}.json")
    return Path(os.fspath(path)) if path.is_file() else None


def parse_codes(codes) -> tuple[str, ...]:
    """Attribute codes from a list or a string (``"IV ,SV"``, ``"SV OCC LR"``), upper-cased, in
    their given order, without duplicates."""
    if isinstance(codes, str):
        codes = _SPLIT.split(codes)
    out = []
    for c in codes:
        c = str(c).strip().upper()
        if c and c not in out:
            out.append(c)
    return tuple(out)


def load_attribute_table(path=None, *, dataset: str = "otb") -> dict[str, tuple[str, ...]]:
    """``{sequence: (codes...)}`` from a JSON file ``{"Biker": ["SV", "OCC", ...], ...}``.

    ``path=None``: the table shipped for ``dataset`` (an empty table when there is none).
    A missing file raises ``DatasetNotFoundError``, anything but a JSON object of lists of
    strings ``DatasetError``, each naming the file (and the entry).
    """
    if path is None:
        path = default_table_path(dataset)
        if path is None:
            return {}
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{path}: attribute table not found") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the attribute table ({e.strerror or e})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}:{e.lineno}: not JSON ({e.msg})") from None
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a JSON object {{sequence: [attributes]}}, "
                           f"got {type(raw).__name__}")
    table = {}
    for name, codes in raw.items():
        if isinstance(codes, str) or not isinstance(codes, list) or \
                not all(isinstance(c, str) for c in codes):
            raise DatasetError(f"{path}: entry {name!r}: expected a list of attribute codes, "
                               f"got {codes!r}")
        table[name] = parse_codes(codes)
    return table


def lookup(table: Mapping, name: str) -> tuple[str, ...] | None:
    """A sequence's codes in ``table``: by its name, then (for jaxtrack's ``Jogging.1`` names of
    two-target folders) the benchmark's ``Jogging-1``, then the folder ``Jogging``."""
    for key in (name, name.replace(".", "-"), name.rsplit(".", 1)[0]):
        if key in table:
            return tuple(table[key])
    return None


def sequence_attributes(sequences: Iterable, table: Mapping | None = None) -> dict[str, tuple[str, ...]]:
    """``{sequence name: codes}``: a sequence's own ``attrs`` (OTB's ``attrs.txt``) when it has
    any, otherwise its entry in ``table``, otherwise ``()``."""
    out = {}
    for seq in sequences:
        own = parse_codes(getattr(seq, "attrs", ()) or ())
        out[seq.name] = own if own else (lookup(table or {}, seq.name) or ())
    return out


# ----------------------------------------------------------------------------- scores

def attribute_scores(reports: Mapping[str, dict], seq_attrs: Mapping[str, Iterable[str]], *,
                     codes: Mapping[str, str] = OTB_ATTRIBUTES, metric: str = "auc") -> dict:
    """Each tracker's ``metric`` over the sequences that have each attribute.

    ``reports``: ``{tracker: report}`` (:func:`jaxtrack.eval.ope.evaluate_results`, whose
    ``per_sequence`` scores are used); ``seq_attrs``: ``{sequence: codes}``
    (:func:`sequence_attributes`), the sequences to count. Returns ``{"metric", "trackers",
    "attributes": {code: {"name", "sequences": [...], "scores": {tracker: {"score", "scored",
    "missing": [...]}}}}, "without_attributes": [...], "other_codes": {code: [...]}}``;
    ``score`` is None where the tracker has no result on any sequence of the attribute.
    """
    if metric not in _LINEAR:
        raise ValueError(f"metric {metric!r}: choose from {', '.join(_LINEAR)} "
                         "(scores that average over sequences)")
    seq_attrs = {name: parse_codes(a) for name, a in seq_attrs.items()}
    attributes = {}
    for code, full in codes.items():
        members = [s for s, a in seq_attrs.items() if code in a]
        scores = {}
        for tracker, report in reports.items():
            per_seq = report.get("per_sequence", {})
            values = {s: per_seq.get(s, {}).get(metric) for s in members}
            got = [v for v in values.values() if v is not None and math.isfinite(v)]
            scores[tracker] = {"score": float(np.mean(got)) if got else None, "scored": len(got),
                               "missing": [s for s, v in values.items() if v is None or not math.isfinite(v)]}
        attributes[code] = {"name": full, "sequences": members, "scores": scores}
    other = {}
    for s, a in seq_attrs.items():
        for c in a:
            if c not in codes:
                other.setdefault(c, []).append(s)
    return {"metric": metric, "trackers": list(reports), "attributes": attributes,
            "without_attributes": [s for s, a in seq_attrs.items() if not any(c in codes for c in a)],
            "other_codes": other}


_METRIC_NAMES = {"auc": "AUC", "prec20": "Prec@20", "norm_prec": "Norm. Prec",
                 "norm_prec20": "Norm. Prec@0.2"}


def attribute_table(scores: dict, *, fmt: str = "%.3f") -> str:
    """Markdown: a row per attribute (full name and code, number of sequences), a column per
    tracker, the best score of a row in bold; ``k/n`` after a score made on only k of the n
    sequences (never bold: it is not comparable); notes on sequences without a known attribute."""
    trackers = scores["trackers"]
    metric = _METRIC_NAMES.get(scores["metric"], scores["metric"])
    lines = [f"| Attribute ({metric}) | Sequences | " + " | ".join(trackers) + " |",
             "|---|---:|" + "---:|" * len(trackers)]
    for code, entry in scores["attributes"].items():
        n = len(entry["sequences"])
        values = {t: entry["scores"][t]["score"] for t in trackers}
        complete = [v for t, v in values.items() if v is not None and entry["scores"][t]["scored"] == n]
        best = format_score(max(complete), fmt) if complete else None
        cells = []
        for t in trackers:
            v, k = values[t], entry["scores"][t]["scored"]
            cell = format_score(v, fmt)
            if v is not None and k == n and cell == best and len(trackers) > 1:
                cell = f"**{cell}**"            # the best over all n sequences; ties as shown all bold
            if v is not None and k < n:
                cell += f" ({k}/{n})"
            cells.append(cell)
        lines.append(f"| {entry['name']} ({code}) | {n} | " + " | ".join(cells) + " |")
    notes = []
    if scores["without_attributes"]:
        notes.append("No attribute known for: " + ", ".join(scores["without_attributes"]))
    if scores["other_codes"]:
        notes.append("Codes outside the table, ignored: " + "; ".join(
            f"{c} ({', '.join(s)})" for c, s in scores["other_codes"].items()))
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


# ----------------------------------------------------------------------------- radar plot

def plot_radar(scores: dict, path, *, title: str | None = None) -> Path | None:
    """A radar (spider) plot: an axis per attribute that has at least one sequence, a closed
    polygon per tracker (its score on each axis, 0 at the centre, 1 at the rim). Drawn on a bare
    Agg ``Figure`` (no pyplot state, no display) and written atomically as a PNG. Returns the
    path, or None when no attribute has a sequence (nothing to draw)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    codes = [c for c, e in scores["attributes"].items() if e["sequences"]]
    if not codes:
        return None
    trackers = scores["trackers"]
    angles = np.linspace(0, 2 * np.pi, len(codes), endpoint=False)
    closed = np.concatenate([angles, angles[:1]])

    fig = Figure(figsize=(7.0, 6.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1, projection="polar")
    ax.set_theta_offset(np.pi / 2)          # first attribute at the top, going clockwise
    ax.set_theta_direction(-1)
    colours = [f"C{i % 10}" for i in range(len(trackers))]
    styles = ["-", "--", "-.", ":"]
    for i, t in enumerate(trackers):
        vals = [scores["attributes"][c]["scores"][t]["score"] for c in codes]
        v = np.array([np.nan if x is None else x for x in vals], np.float64)
        v = np.concatenate([v, v[:1]])
        partial = any(scores["attributes"][c]["scores"][t]["scored"] < len(scores["attributes"][c]["sequences"])
                      for c in codes)
        ax.plot(closed, v, styles[(i // 10) % len(styles)], color=colours[i], linewidth=1.6,
                marker="o", markersize=3, label=t + (" (results missing)" if partial else ""))
        ax.fill(closed, np.nan_to_num(v), color=colours[i], alpha=0.06)
    ax.set_xticks(angles)
    ax.set_xticklabels([f"{c}\n({len(scores['attributes'][c]['sequences'])})" for c in codes], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_yticks([0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_yticklabels(["0.2", "0.4", "0.6", "0.8", "1.0"], fontsize=7, color="0.4")
    ax.set_rlabel_position(180.0 / len(codes))      # radial labels between the first two axes
    ax.tick_params(axis="x", pad=6)
    ax.grid(True, linewidth=0.6)
    metric = _METRIC_NAMES.get(scores["metric"], scores["metric"])
    ax.set_title(title or f"{metric} per attribute (sequences per attribute in brackets)", fontsize=10, pad=18)
    ax.legend(loc="upper left", bbox_to_anchor=(1.04, 1.0), fontsize=8, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
