"""Evaluate a jaxtrack tracker with the official VOT toolkit, offline, on local sequences.

    python experiments/vot_workspace.py --workspace VOT_WS --sequence ../shared/data/otb/bag \
        --tracker siamfc --backbone mobilenet_v2

Builds a VOT workspace that needs no download (docs/vot.md):

* ``<ws>/stack.yaml``: a local experiment stack without a ``dataset`` URL (the toolkit
  downloads only when a stack names one). Default: VOT2016's ``baseline`` (the supervised
  experiment with re-initialisation: 15 repetitions, re-initialised 5 frames after a
  failure, AR with sensitivity 30, EAO over sequence lengths 108..371); the flags change it.
* ``<ws>/sequences/list.txt`` and one folder per ``--sequence``: ``sequence`` (the toolkit's
  metadata file: channel pattern, size, length), ``groundtruth.txt`` and ``color/00000001.jpg..``
  as symbolic links to the source frames (copies where links are refused). A VOT-layout source
  (``groundtruth.txt``) keeps its annotation file unchanged (rotated polygons included); an
  OTB-layout one (``img/`` + ``groundtruth_rect.txt``) gets its boxes as 4-value rectangles.
* ``<ws>/config.yaml`` (``stack: stack.yaml``, ``registry: [./trackers.ini]``) and
  ``<ws>/trackers.ini``: one entry running ``python -m jaxtrack.integrations.vot`` with this
  interpreter and the tracker flags given here.

Then it runs the toolkit itself, as subprocesses, printing each command:
``python -m vot evaluate --workspace <ws> <id>`` and
``python -m vot analysis --workspace <ws> --format json --name <id> <id>``, and reads EAO,
accuracy and robustness back from the toolkit's report ``<ws>/analysis/<id>.json``. A summary
goes to ``<ws>/jaxtrack_vot_summary.json``. The tracker identifier defaults to
``jaxtrack eval``'s run name (tracker, backbone, variant and a hash of config, weights and seed),
so results of another setting never mix with these in ``<ws>/results``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import yaml

from jaxtrack import cli

TOOLKIT_VERSION = "0.7.4"     # the vot-toolkit this script was written against (a warning otherwise)


# ----------------------------------------------------------------------------- the workspace

def stack_definition(args) -> dict:
    """The local stack: one supervised ``baseline`` experiment with AR and EAO analyses."""
    return {
        "title": "jaxtrack local stack (VOT2016 baseline settings)" if _is_vot2016(args)
        else "jaxtrack local stack",
        "url": "",
        "experiments": {"baseline": {
            "type": "supervised",
            "repetitions": args.repetitions,
            "skip_initialize": args.skip_initialize,
            "analyses": [
                {"type": "supervised_average_ar", "sensitivity": args.sensitivity},
                {"type": "supervised_eao_score", "low": args.eao_low, "high": args.eao_high},
            ],
        }},
    }


def _is_vot2016(args) -> bool:
    return (args.repetitions, args.skip_initialize, args.sensitivity, args.eao_low, args.eao_high) == \
        (15, 5, 30, 108, 371)


def _load_source(path):
    """A jaxtrack Sequence for a VOT-layout (groundtruth.txt) or OTB-layout folder, and its layout."""
    from jaxtrack.data import load_sequence
    layout = "vot" if os.path.isfile(os.path.join(path, "groundtruth.txt")) else "otb"
    return load_sequence(path, layout), layout


def write_sequence(src: str, dest: str) -> dict:
    """One sequence folder of the workspace, in the VOT toolkit's layout; returns its description."""
    from jaxtrack import boxes as B
    seq, layout = _load_source(src)
    exts = {os.path.splitext(p)[1].lower() for p in seq.frame_paths}
    if len(exts) != 1:
        raise SystemExit(f"{src}: frames of several types {sorted(exts)}; the toolkit reads one pattern")
    ext = exts.pop()
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    color = os.path.join(dest, "color")
    os.makedirs(color)
    linked = True
    for i, frame in enumerate(seq.frame_paths, 1):
        target = os.path.join(color, f"{i:08d}{ext}")
        try:
            os.symlink(os.path.abspath(frame), target)
        except OSError:
            shutil.copyfile(frame, target)
            linked = False
    if layout == "vot":
        shutil.copyfile(os.path.join(src, "groundtruth.txt"), os.path.join(dest, "groundtruth.txt"))
        for name in os.listdir(src):              # per-frame attribute tags, as VOT ships them
            if name.endswith((".tag", ".label", ".value")):
                shutil.copyfile(os.path.join(src, name), os.path.join(dest, name))
    else:
        gt = B.to_dataset(seq.gt, seq.index_base)
        lines = [",".join(f"{v:.4f}" for v in row) if np.all(np.isfinite(row)) else "0" for row in gt]
        with open(os.path.join(dest, "groundtruth.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    h, w = seq.frame_size(0)
    meta = {"channel.default": "color", "channels.color": f"color/%08d{ext}", "fps": "30",
            "format": "default", "width": str(w), "height": str(h), "length": str(len(seq)),
            "name": os.path.basename(dest)}
    with open(os.path.join(dest, "sequence"), "w") as f:
        f.write("".join(f"{k}={v}\n" for k, v in sorted(meta.items())))
    return {"name": os.path.basename(dest), "source": os.path.abspath(src), "layout": layout,
            "frames": len(seq), "size": [w, h], "frames_linked": linked}


def tracker_command(args) -> list[str]:
    """The TraX server command line for this script's tracker flags."""
    cmd = [sys.executable, "-m", "jaxtrack.integrations.vot", "--tracker", args.tracker,
           "--variant", args.variant, "--seed", str(args.seed)]
    for item in args.sets:
        cmd += ["--set", item]
    for flag in ("backbone", "weights", "device"):
        if getattr(args, flag):
            cmd += [f"--{flag}", os.path.abspath(args.weights) if flag == "weights" else getattr(args, flag)]
    if args.allow_random:
        cmd.append("--allow-random")
    cmd += ["--no-cache"] if args.no_cache else ["--cache-dir", os.path.abspath(args.cache_dir)]
    return cmd


def trackers_ini(identifier: str, label: str, command: list[str], timeout: int) -> str:
    """A trackers.ini entry for the TraX server (the toolkit reads the file with configparser,
    so a ``%`` is written ``%%``)."""
    return (f"[{identifier}]\n"
            f"label = {label}\n"
            "protocol = trax\n"
            f"command = {shlex.join(command).replace('%', '%%')}\n"
            f"timeout = {timeout}\n")


def build_workspace(args, identifier: str, label: str) -> dict:
    ws = os.path.abspath(args.workspace)
    os.makedirs(os.path.join(ws, "sequences"), exist_ok=True)
    names = [os.path.basename(os.path.normpath(p)) for p in args.sequence]
    if len(set(names)) != len(names):
        raise SystemExit(f"sequence folder names must be unique: {names}")
    described = [write_sequence(src, os.path.join(ws, "sequences", name))
                 for src, name in zip(args.sequence, names)]
    with open(os.path.join(ws, "sequences", "list.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    with open(os.path.join(ws, "stack.yaml"), "w") as f:
        yaml.safe_dump(stack_definition(args), f, sort_keys=False)
    with open(os.path.join(ws, "config.yaml"), "w") as f:
        yaml.safe_dump({"stack": "stack.yaml", "registry": ["./trackers.ini"], "sequences": "sequences"}, f)
    with open(os.path.join(ws, "trackers.ini"), "w") as f:
        f.write(trackers_ini(identifier, label, tracker_command(args), args.timeout))
    for d in ("results", "analysis"):
        os.makedirs(os.path.join(ws, d), exist_ok=True)
    return {"workspace": ws, "sequences": described}


# ----------------------------------------------------------------------------- running the toolkit

def run_toolkit(argv: list[str], ws: str, env: dict) -> str:
    """``python -m vot <argv>`` in the workspace; its output is echoed and returned."""
    cmd = [sys.executable, "-m", "vot", *argv]
    extra = " ".join(f"{k}={v}" for k, v in env.items())
    print(f"$ cd {shlex.quote(ws)} && {extra + ' ' if extra else ''}{shlex.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, check=False, cwd=ws, env={**os.environ, **env}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    print(proc.stdout, end="" if proc.stdout.endswith("\n") else "\n", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"vot {argv[0]} exited with status {proc.returncode}")
    return proc.stdout


def read_analysis(path: str, identifier: str) -> dict:
    """EAO, accuracy and robustness of ``identifier`` from the toolkit's JSON analysis report.

    The report lists, per experiment, one entry per analysis of the stack in its order:
    ``supervised_average_ar`` -> per tracker ``[accuracy, failures, [AR robustness, accuracy],
    length]``, ``supervised_eao_score`` -> per tracker ``[eao]``.
    """
    with open(path) as f:
        doc = json.load(f)
    (ref,) = [r for r in doc["trackers"] if r == identifier or r.split("@")[0] == identifier]
    index = list(doc["trackers"]).index(ref)
    ar, eao = doc["results"]["baseline"]["results"]
    a = _tracker_entry(ar, index)
    e = _tracker_entry(eao, index)
    accuracy, failures, (ar_robustness, _), length = a
    return {"eao": _num(e[0]), "accuracy": _num(accuracy), "robustness": _num(failures),
            "ar_robustness": _num(ar_robustness), "mean_length": _num(length),
            "toolkit": doc.get("toolkit"), "report": os.path.abspath(path)}


def _tracker_entry(analysis, index):
    """An analysis' result for tracker ``index`` (the serialised grid has one row per tracker)."""
    return analysis[index]


def _num(x):
    return None if x is None else float(x)


def check_results(ws: str, identifier: str, names: list[str], log: str) -> None:
    """``vot evaluate`` logs a tracker failure and exits 0: fail here, naming what is missing."""
    missing = [n for n in names if not os.path.isdir(os.path.join(ws, "results", identifier, "baseline", n))
               or not os.listdir(os.path.join(ws, "results", identifier, "baseline", n))]
    if missing or "Evaluation concluded successfuly" not in log:
        raise SystemExit(f"vot evaluate did not finish: no results for {missing or 'some sequences'} "
                         f"(see its log above)")


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", required=True, help="the VOT workspace folder (created or updated)")
    ap.add_argument("--sequence", action="append", required=True,
                    help="a VOT-layout (groundtruth.txt) or OTB-layout sequence folder; repeatable")
    cli.add_tracker_args(ap)
    ap.add_argument("--tracker-id", default=None,
                    help="the toolkit's tracker identifier (default: jaxtrack eval's run name)")
    ap.add_argument("--repetitions", type=int, default=15)
    ap.add_argument("--skip-initialize", type=int, default=5)
    ap.add_argument("--sensitivity", type=float, default=30)
    ap.add_argument("--eao-low", type=int, default=108)
    ap.add_argument("--eao-high", type=int, default=371)
    ap.add_argument("--timeout", type=int, default=600,
                    help="seconds the toolkit waits for one reply of the tracker (start-up and "
                         "compilation included)")
    ap.add_argument("--force", action="store_true", help="rerun the toolkit even where results exist")
    ap.add_argument("--no-run", action="store_true", help="only build the workspace")
    args = ap.parse_args(argv)
    cli.setup_runtime(args)

    import vot
    if vot.__version__ != TOOLKIT_VERSION:
        print(f"warning: vot-toolkit {vot.__version__}; this script was checked with {TOOLKIT_VERSION}",
              file=sys.stderr)
    from jaxtrack.eval.ope import run_identity, run_name
    tracker = cli.make_tracker(args)
    identifier = args.tracker_id or run_name(run_identity(tracker, variant=args.variant, seed=args.seed))
    if not re.fullmatch(r"[A-Za-z0-9_-]+", identifier):
        raise SystemExit(f"--tracker-id {identifier!r}: the toolkit accepts letters, digits, '-' and '_'")
    label = f"jaxtrack {args.tracker} ({getattr(tracker.config, 'backbone', '') or args.variant})"
    built = build_workspace(args, identifier, label)
    ws = built["workspace"]
    print(f"workspace {ws}: {len(built['sequences'])} sequence(s), tracker {identifier}")
    if args.no_run:
        return built

    env = {"VOT_WORKER_POOL_SIZE": "1"}
    log = run_toolkit(["evaluate", "--workspace", ws, *(["--force"] if args.force else []), identifier], ws, env)
    check_results(ws, identifier, [s["name"] for s in built["sequences"]], log)
    shutil.rmtree(os.path.join(ws, "cache"), ignore_errors=True)   # analyses of earlier results
    run_toolkit(["analysis", "--workspace", ws, "--format", "json", "--name", identifier, identifier], ws, env)
    metrics = read_analysis(os.path.join(ws, "analysis", f"{identifier}.json"), identifier)
    summary = {**built, "tracker": identifier, "tracker_command": tracker_command(args),
               "stack": stack_definition(args), **metrics}
    with open(os.path.join(ws, "jaxtrack_vot_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print("\n| tracker | sequences | EAO | accuracy | robustness (failures) | AR robustness |")
    print("|---|---|---:|---:|---:|---:|")
    print(f"| {identifier} | {', '.join(s['name'] for s in built['sequences'])} | {metrics['eao']:.4f} | "
          f"{metrics['accuracy']:.4f} | {metrics['robustness']:.4f} | {metrics['ar_robustness']:.4f} |")
    print(f"toolkit report: {metrics['report']}; summary: {os.path.join(ws, 'jaxtrack_vot_summary.json')}")
    return summary


if __name__ == "__main__":
    cli.run(main)
