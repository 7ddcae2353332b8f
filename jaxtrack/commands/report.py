r"""Tables and plots comparing result folders: ours or another toolkit's.

    jaxtrack report RESULTS/siamfc_mobilenet_v2_default_72c7739e RESULTS/atom_mobilenet_v2_default_3ab4874b \
        --root ../shared/data/otb --attributes --out report_otb

Each folder is scored on the dataset's sequences as ``jaxtrack eval`` scores its own
(``<seq>.txt`` in the dataset's convention, comma-, tab- or space-separated, or GOT-10k's
``<seq>/<seq>_001.txt``; speed from ``times/<seq>_time.txt`` or ``<seq>_time.txt`` when
present), and named by its folder name. Writes to ``--out``: ``report.md`` (a table of all
trackers: AUC, Prec@20, normalised precision, FPS; AUC and Prec@20 per sequence), the
success and precision plots of all trackers in one figure each, and ``report.json``.

``--attributes`` adds OTB's attribute-wise table (per attribute: how many sequences have
it and each tracker's AUC over them) and ``radar.png``. Attributes come from each
sequence's ``attrs.txt``, else from the table shipped with jaxtrack (OTB-100,
``jaxtrack/data/attributes/otb.json``) or from ``--attributes FILE`` (JSON
``{"Biker": ["SV", "OCC", ...], ...}``). Put ``--attributes`` after the folders (or write
``--attributes=FILE``), or it takes the next folder for its file.
"""
from __future__ import annotations

import os
from pathlib import Path

SUMMARY = "tables and plots (overall, per sequence, per attribute) from result folders"


def add_arguments(ap) -> None:
    ap.add_argument("dirs", nargs="+", metavar="DIR", help="result folders (each named by its folder name)")
    ap.add_argument("--root", required=True, help="dataset root")
    ap.add_argument("--dataset", default="otb", help="dataset layout (default otb)")
    ap.add_argument("--split", default=None)
    ap.add_argument("--sequences", nargs="*", default=None, help="only these sequence names")
    ap.add_argument("--attributes", nargs="?", const="", default=None, metavar="FILE",
                    help="attribute-wise table and radar plot; FILE: a JSON {sequence: [codes]} "
                         "used instead of the shipped table for sequences without attrs.txt")
    ap.add_argument("--out", default="report", help="output folder (default ./report)")


def folder_names(dirs) -> dict[str, str]:
    """``{legend name: folder}``: each folder's name; folders of the same name get their parent's
    name in front (``a/siamfc``, ``b/siamfc``)."""
    paths = [Path(os.path.abspath(d)) for d in dirs]
    out = {}
    for p, d in zip(paths, dirs):
        name = p.name
        if sum(q.name == name for q in paths) > 1:
            name = f"{p.parent.name}/{p.name}"
        base, k = name, 2
        while name in out:
            name, k = f"{base} ({k})", k + 1
        out[name] = d
    return out


def _best_first(reports: dict) -> list[str]:
    return sorted(reports, key=lambda n: -((reports[n].get("mean") or {}).get("auc") or 0.0))


def per_sequence_table(reports: dict, sequences, key: str = "auc", label: str = "AUC") -> str:
    """Markdown: a row per sequence (with its frame count), a column per tracker (best first by
    mean AUC), ``key`` in each cell, the best of a row in bold, ``-`` where a tracker has no
    result."""
    from jaxtrack.eval.report import format_score
    names = _best_first(reports)
    lines = [f"| Sequence ({label}) | Frames | " + " | ".join(names) + " |",
             "|---|---:|" + "---:|" * len(names)]
    for seq in sequences:
        vals = {n: reports[n]["per_sequence"].get(seq.name, {}).get(key) for n in names}
        best = format_score(max((v for v in vals.values() if v is not None), default=None))
        cells = [("**%s**" if v is not None and format_score(v) == best and len(names) > 1 else "%s")
                 % format_score(v) for v in vals.values()]
        lines.append(f"| {seq.name} | {len(seq)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _notes(reports: dict, dirs: dict) -> list[str]:
    notes = []
    for name, r in reports.items():
        if r.get("missing"):
            notes.append(f"{name} ({dirs[name]}): no result for {', '.join(r['missing'])}; "
                         "its means are over the other sequences")
        if r.get("unreadable"):
            notes.append(f"{name}: unreadable result for " + "; ".join(
                f"{s} ({why})" for s, why in r["unreadable"].items()))
    return notes


def run(args):
    from jaxtrack.errors import ResultsError
    from jaxtrack.data import load_dataset
    from jaxtrack.eval import attributes as A
    from jaxtrack.eval import ope
    from jaxtrack.eval.plots import plot_success_precision
    from jaxtrack.eval.report import markdown_table
    from jaxtrack.fileio import atomic_write_json, atomic_write_text

    dirs = folder_names(args.dirs)
    for name, d in dirs.items():
        if not os.path.isdir(d):
            raise ResultsError(f"{d}: no such results folder")
    sequences = load_dataset(args.dataset, args.root, split=args.split, sequences=args.sequences)
    reports = ope.load_results(dirs, sequences)
    for name, r in reports.items():
        if not r["mean"]:
            raise ResultsError(f"{dirs[name]}: no readable result for any of the {len(sequences)} "
                               f"sequences of {args.root} (files <seq>.txt or <seq>/<seq>_001.txt)")
    out = Path(args.out)
    order = _best_first(reports)
    reports = {n: reports[n] for n in order}

    # a tracker scored on fewer sequences than the others says so in the overall table
    labelled = {(n if not (r["missing"] or r["unreadable"]) else
                 f"{n} ({r['mean']['sequences']}/{len(sequences)} sequences)"): r for n, r in reports.items()}
    parts = [f"# Results on {args.dataset} ({args.root}, {len(sequences)} sequences)", "",
             markdown_table(labelled), ope.FPS_NOTE, ""]
    notes = _notes(reports, dirs)
    if notes:
        parts += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    parts += ["## Per sequence", "", per_sequence_table(reports, sequences),
              per_sequence_table(reports, sequences, "prec20", "Prec@20")]
    plots = plot_success_precision(labelled, out)
    summary = {"dataset": args.dataset, "root": os.fspath(args.root),
               "trackers": {n: {"dir": os.fspath(dirs[n]), "report": reports[n]} for n in order}}

    radar = None
    if args.attributes is not None:
        table = A.load_attribute_table(args.attributes or None, dataset=args.dataset)
        seq_attrs = A.sequence_attributes(sequences, table)
        scores = A.attribute_scores(reports, seq_attrs)
        parts += ["## Per attribute", "", A.attribute_table(scores)]
        radar = A.plot_radar(scores, out / "radar.png")
        summary["attributes"] = {"sequence_attributes": {k: list(v) for k, v in seq_attrs.items()},
                                 "table": os.fspath(args.attributes or A.default_table_path(args.dataset) or ""),
                                 **scores}
        if radar is None:
            parts += ["(no sequence has an attribute: no radar plot)", ""]

    text = "\n".join(parts)
    atomic_write_text(out / "report.md", text)
    atomic_write_json(out / "report.json", summary)
    print(text)
    written = [out / "report.md", out / "report.json", plots["success"], plots["precision"]]
    written += [radar] if radar else []
    print("written: " + ", ".join(map(os.fspath, written)))
    return {"reports": reports, "summary": summary, "paths": written}
