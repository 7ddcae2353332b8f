"""Helpers shared by the experiment scripts: device choice, compilation cache, tracker set-up."""
from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def select_device(device: str | None) -> None:
    """``--device cpu|gpu``: must run before JAX initialises its backends."""
    if device:
        os.environ["JAX_PLATFORMS"] = {"gpu": "cuda", "cpu": "cpu"}.get(device, device)


def enable_compilation_cache(path: str | None) -> None:
    """JAX's persistent compilation cache, on by default for the scripts (``--no-cache`` off)."""
    if not path:
        return
    import jax
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(base, "jaxtrack", "xla")


def add_common_args(ap) -> None:
    ap.add_argument("--tracker", default="siamfc")
    ap.add_argument("--backbone", default=None, help="alexnet | mobilenet_v2 (tracker default if unset)")
    ap.add_argument("--weights", default=None, help="trained weights (default: the committed checkpoint)")
    ap.add_argument("--device", default=None, choices=["cpu", "gpu"])
    ap.add_argument("--seed", type=int, default=0, help="PRNG seed, recorded with the results")
    add_cache_args(ap)


def add_cache_args(ap) -> None:
    """``--cache-dir`` / ``--no-cache``: the persistent compilation cache, on by default."""
    ap.add_argument("--cache-dir", default=default_cache_dir(), help="persistent XLA compilation cache")
    ap.add_argument("--no-cache", action="store_true", help="turn the compilation cache off")


def setup_cache(args) -> None:
    """Turn the persistent compilation cache on unless ``--no-cache``."""
    if not args.no_cache:
        enable_compilation_cache(args.cache_dir)


def add_distributed_args(ap) -> None:
    """Multi-host flags for ``jax.distributed.initialize`` (or the JAX_* environment variables)."""
    ap.add_argument("--coordinator", default=None,
                    help="host:port of process 0 (env JAX_COORDINATOR_ADDRESS)")
    ap.add_argument("--num-processes", type=int, default=None, help="env JAX_NUM_PROCESSES")
    ap.add_argument("--process-id", type=int, default=None, help="env JAX_PROCESS_ID")


def tracker_overrides(args) -> dict:
    kw = {}
    if args.backbone:
        kw["backbone"] = args.backbone
    if args.weights:
        kw["weights"] = args.weights
    return kw


def tracker_label(args) -> str:
    return args.tracker + (f"_{args.backbone}" if args.backbone else "")


def build_for_timing(spec: str):
    """``NAME[:BACKBONE]`` -> (tracker, random_weights): timing needs no trained checkpoint,
    so a tracker without one is built with random weights (and says so)."""
    import jaxtrack
    name, _, backbone = spec.partition(":")
    kw = {"backbone": backbone} if backbone else {}
    try:
        return jaxtrack.make_tracker(name, **kw), False
    except FileNotFoundError:
        return jaxtrack.make_tracker(name, allow_random=True, **kw), True


def sequence_result(result, seq) -> dict:
    """AUC, Prec@20, FPS (frames after the first, as run_ope) and frame count of one
    tracked sequence (``result`` from :func:`jaxtrack.driver.run_sequence`)."""
    from jaxtrack.eval.metrics import sequence_metrics
    m = sequence_metrics(result.boxes, seq.gt, seq.index_base)
    times = result.times[1:]
    return {"auc": float(m["auc"]), "prec20": float(m["prec20"]),
            "fps": float(len(times) / times.sum()), "frames": len(seq)}


def finish_ablation(record: dict, seqs, keys, json_path: str, md_path: str, markdown) -> dict:
    """Means of ``keys`` over ``seqs`` for every complete row of ``record["results"]``; write
    the JSON and ``markdown(record)`` (atomically), print the table."""
    import numpy as np
    from jaxtrack.fileio import atomic_write_json, atomic_write_text
    for row, res in record["results"].items():
        if all(s.name in res for s in seqs):
            record["means"][row] = {k: float(np.mean([res[s.name][k] for s in seqs])) for k in keys}
    atomic_write_json(json_path, record)
    text = markdown(record)
    atomic_write_text(md_path, text)
    print(text)
    return record
