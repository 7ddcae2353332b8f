"""Success / precision plots comparing trackers, drawn from report dicts.

Plots are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas, so they
never touch pyplot's global state or need a display, and are saved atomically.
Legends read ``name: [score]`` and are sorted best first, as got10k draws them.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping

import numpy as np

from jaxtrack.eval import metrics as M
from jaxtrack.eval.report import format_score
from jaxtrack.fileio import atomic_write_bytes

_STYLES = [c + m for m in ("-", "--", "-.") for c in [""] * 10]  # got10k's line styles


def _summary(entry) -> dict:
    """The overall scores and curves of a report (``evaluate_results`` output) or an
    ``aggregate`` dict."""
    summary = entry.get("mean", entry) if isinstance(entry, Mapping) else None
    if not summary or "success_curve" not in summary:
        raise ValueError("no curves to plot (empty report?)")
    return summary


def _figure_png(draw) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    draw(ax)
    ax.grid(True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    return buf.getvalue()


def _plot_curves(ax, summaries, x, curve_key, score_key, fmt):
    order = sorted(summaries, key=lambda n: -(summaries[n][score_key] or 0.0))
    for i, name in enumerate(order):
        s = summaries[name]
        ax.plot(x, np.asarray(s[curve_key], float), _STYLES[i % len(_STYLES)],
                label=f"{name}: [{format_score(s[score_key], fmt)}]")
    ax.legend(loc="lower left" if curve_key == "success_curve" else "lower right", fontsize=7.4)


def plot_success_precision(named_results: Mapping, out_dir, *, title: str = "OPE") -> dict:
    """Draw one success plot and one precision plot comparing several trackers.

    ``named_results`` maps a legend name to a report dict or an ``aggregate`` dict (result
    folders and ``metrics.json`` files: :func:`jaxtrack.eval.ope.load_results`). Writes
    ``success.png`` and ``precision.png`` in ``out_dir``; returns their paths.
    """
    summaries = {name: _summary(entry) for name, entry in named_results.items()}
    out = Path(out_dir)

    def success(ax):
        _plot_curves(ax, summaries, M.IOU_THRESHOLDS, "success_curve", "auc", "%.3f")
        ax.set(xlabel="Overlap threshold", ylabel="Success rate", xlim=(0, 1), ylim=(0, 1),
               title=f"Success plots of {title}")

    def precision(ax):
        _plot_curves(ax, summaries, M.CE_THRESHOLDS, "precision_curve", "prec20", "%.3f")
        ax.set(xlabel="Location error threshold", ylabel="Precision",
               xlim=(0, M.CE_THRESHOLDS.max()), ylim=(0, 1), title=f"Precision plots of {title}")

    paths = {"success": out / "success.png", "precision": out / "precision.png"}
    atomic_write_bytes(paths["success"], _figure_png(success))
    atomic_write_bytes(paths["precision"], _figure_png(precision))
    return paths
