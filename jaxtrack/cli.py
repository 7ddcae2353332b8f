"""Command-line pieces every script shares: the device, the compilation cache, and which
tracker to build (``--tracker NAME --variant V --set key=value ...``)."""
from __future__ import annotations

import argparse
import ast
import os


def select_device(device: str | None) -> None:
    """``--device cpu|gpu``: must run before JAX initialises its backends (jax itself may be
    imported already: it reads ``JAX_PLATFORMS`` at import, so the setting goes to its config)."""
    if device:
        platform = {"gpu": "cuda", "cpu": "cpu"}.get(device, device)
        os.environ["JAX_PLATFORMS"] = platform
        import jax
        jax.config.update("jax_platforms", platform)


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(base, "jaxtrack", "xla")


def enable_compilation_cache(path: str | None) -> None:
    """JAX's persistent compilation cache, on by default for the scripts (``--no-cache`` off)."""
    if not path:
        return
    import jax
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def add_runtime_args(ap: argparse.ArgumentParser) -> None:
    """``--device``, ``--seed``, ``--cache-dir`` / ``--no-cache``."""
    ap.add_argument("--device", default=None, choices=["cpu", "gpu"])
    ap.add_argument("--seed", type=int, default=0, help="PRNG seed, recorded with the results")
    ap.add_argument("--cache-dir", default=default_cache_dir(), help="persistent XLA compilation cache")
    ap.add_argument("--no-cache", action="store_true", help="turn the compilation cache off")


def setup_runtime(args) -> None:
    """Apply ``--device`` and turn the compilation cache on unless ``--no-cache``."""
    select_device(getattr(args, "device", None))
    if not getattr(args, "no_cache", False):
        enable_compilation_cache(args.cache_dir)


def add_tracker_args(ap: argparse.ArgumentParser, default: str | None = "siamfc") -> None:
    """``--tracker --variant --set --backbone --weights`` (and the runtime flags)."""
    ap.add_argument("--tracker", default=default, required=default is None)
    ap.add_argument("--variant", default="default",
                    help="a named variant from jaxtrack/configs/<tracker>.py (default: the official values)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override one config field (Python literal), e.g. --set learning_rate=0.02; repeatable")
    ap.add_argument("--backbone", default=None, help="shorthand for --set backbone=NAME")
    ap.add_argument("--weights", default=None, help="trained weights (default: the committed checkpoint)")
    ap.add_argument("--allow-random", action="store_true",
                    help="untrained (seeded random) weights where no checkpoint exists: tests and timing only")
    add_runtime_args(ap)


def parse_sets(items) -> dict:
    """``["k=v", ...]`` -> ``{k: literal(v)}``; a value that is not a Python literal stays a
    string (``--set backbone=vgg16``). A malformed item is an error naming it."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


def tracker_overrides(args) -> dict:
    """Config overrides and weights from ``--set``, ``--backbone`` and ``--weights``."""
    kw = parse_sets(getattr(args, "sets", []))
    if getattr(args, "backbone", None):
        kw["backbone"] = args.backbone
    if getattr(args, "weights", None):
        kw["weights"] = args.weights
    if getattr(args, "allow_random", False):
        kw["allow_random"] = True
    return kw


def make_tracker(args, **extra):
    """The tracker the flags name (``extra``: more overrides, e.g. ``params=``)."""
    import jaxtrack
    return jaxtrack.make_tracker(args.tracker, variant=args.variant, **{**tracker_overrides(args), **extra})


def add_distributed_args(ap: argparse.ArgumentParser) -> None:
    """Multi-host flags for ``jax.distributed.initialize`` (or the JAX_* environment variables)."""
    ap.add_argument("--coordinator", default=None,
                    help="host:port of process 0 (env JAX_COORDINATOR_ADDRESS)")
    ap.add_argument("--num-processes", type=int, default=None, help="env JAX_NUM_PROCESSES")
    ap.add_argument("--process-id", type=int, default=None, help="env JAX_PROCESS_ID")


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


def run(main) -> None:
    """Run a script's ``main()``: input errors jaxtrack recognised are one line on stderr (exit 2),
    and Ctrl-C always ends the run with exit 130, even when the KeyboardInterrupt lands in a
    callback that swallows it (JAX's garbage-collection callback does)."""
    import signal
    import sys

    from jaxtrack.errors import JaxtrackError
    interrupted = []

    def on_sigint(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except JaxtrackError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if interrupted:
        print("interrupted (the interrupt arrived where it could not stop the run at once)",
              file=sys.stderr)
        sys.exit(130)


# ----------------------------------------------------------------------------- the `jaxtrack` command

COMMANDS = {                       # subcommand -> module in jaxtrack.commands
    "track": "track",
    "eval": "evaluate",
    "report": "report",
    "show": "show",
    "bench": "bench",
    "roofline": "roofline",
    "export": "export",
    "pack": "pack",
}


def _parser_for(module, prog: str | None = None, parent=None, name: str | None = None):
    kw = dict(description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap = parent.add_parser(name, help=module.SUMMARY, **kw) if parent is not None else \
        argparse.ArgumentParser(prog=prog, **kw)
    module.add_arguments(ap)
    ap.set_defaults(_run=module.run)
    return ap


def run_command(module, argv=None):
    """Parse ``argv`` with a command module's flags and run it as :func:`run` does (the
    ``experiments/`` scripts that wrap a subcommand call this)."""
    args = _parser_for(module).parse_args(argv)
    out = []
    run(lambda: out.append(module.run(args)))
    return out[0] if out else None


def main(argv=None):
    """``jaxtrack <command> ...``: the console script (``pyproject.toml``, ``[project.scripts]``)."""
    import importlib
    ap = argparse.ArgumentParser(prog="jaxtrack", description="Visual object trackers that learn from "
                                 "gradients, in JAX. Every command's --help shows an example.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        _parser_for(importlib.import_module(f"jaxtrack.commands.{module}"), parent=sub, name=name)
    args = ap.parse_args(argv)
    run(lambda: args._run(args))
