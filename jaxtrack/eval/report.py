"""Tables of tracking results: one tracker's per-sequence table, several trackers side by
side. Pure formatting of report dicts (:func:`jaxtrack.eval.ope.evaluate_results`)."""
from __future__ import annotations

from typing import Mapping

import numpy as np


def format_score(x, fmt: str = "%.3f") -> str:
    """A score for a table; ``-`` when unknown."""
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else fmt % x


def sequence_table(report: dict) -> str:
    """Markdown table of one tracker's report: a row per sequence and a mean row."""
    lines = ["| Sequence | Frames | AUC | Prec@20 | Norm. Prec | FPS |",
             "|---|---:|---:|---:|---:|---:|"]
    rows = list(report["per_sequence"].items()) + [("**mean**", report["mean"])]
    for name, m in rows:
        lines.append(f"| {name} | {m.get('frames', '')} | {format_score(m.get('auc'))} | "
                     f"{format_score(m.get('prec20'))} | {format_score(m.get('norm_prec'))} | "
                     f"{format_score(m.get('fps'), '%.1f')} |")
    if report.get("missing"):
        lines += ["", "Missing results: " + ", ".join(report["missing"])]
    if report.get("unreadable"):
        lines += ["", "Unreadable results: " + ", ".join(report["unreadable"])]
    return "\n".join(lines) + "\n"


def markdown_table(metrics_by_tracker: Mapping) -> str:
    """Markdown table, one row per tracker, best AUC first.

    Values are reports (``run_ope`` / ``evaluate_results``; their ``mean`` is used) or
    ``aggregate`` dicts.
    """
    rows = {name: (m.get("mean", m) or {}) for name, m in metrics_by_tracker.items()}
    lines = ["| Tracker | AUC | Prec@20 | Norm. Prec | AO | SR@0.5 | FPS |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name in sorted(rows, key=lambda n: -(rows[n].get("auc") or 0.0)):
        m = rows[name]
        lines.append(f"| {name} | {format_score(m.get('auc'))} | {format_score(m.get('prec20'))} | "
                     f"{format_score(m.get('norm_prec'))} | {format_score(m.get('ao'))} | "
                     f"{format_score(m.get('sr50'))} | {format_score(m.get('fps'), '%.1f')} |")
    return "\n".join(lines) + "\n"
