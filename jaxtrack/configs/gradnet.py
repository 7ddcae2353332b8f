"""GradNet variants, the ablation rows of the paper's Table 3 (and the project's extensions),
and the training recipes behind them (``experiments/train_gradnet.py`` arguments).

``default``: the official ``track.py`` values (:class:`GradNetConfig`). In the ablation table
(``SWEEP``) every row with a recipe tracks with the weights that recipe exports (trained
first, once per sweep folder), and the held-out probe scores each row's weights;
``TRAIN_OPTIONS`` are the defaults of that training.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from jaxtrack.configs import Row, frozen
from jaxtrack.eval.sweep import Hooks
from jaxtrack.trackers.siamfc import SiamFCConfig

_SIAMFC = SiamFCConfig()
# the siamfc tracker's values (siamfc-pytorch) as GradNet config overrides, derived, not re-typed
SIAMFC_TRACKING = {"scale_step": _SIAMFC.scale_step, "scale_penalty": _SIAMFC.scale_penalty,
                   "window_influence": _SIAMFC.window_influence, "no_window_after": -1, "refind": False}

VARIANTS = frozen({
    "default": {},
    "no_update": {"online_update": False},                  # "w/o U": the first-frame update only
    "no_gradient": {"use_gradient": False},                 # "w/o MG" tracking: the subnet sees h
    "two_u": {"unshared_deep": True},                       # "w 2U": separate deep layers for z0
    "siamfc_tracking": SIAMFC_TRACKING,                     # only the template differs from SiamFC
    "siamfc_tracking_no_update": {**SIAMFC_TRACKING, "online_update": False},
    "siamfc_map_only": {"grad_influence": 0.0, "online_update": False},
    "joint_siamfc_map_only": {**SIAMFC_TRACKING, "grad_influence": 0.0, "online_update": False},
    "updated_map_only": {"grad_influence": 1.0},
    "updated_map_only_no_update": {"grad_influence": 1.0, "online_update": False},
    "alexnet": {"backbone": "alexnet"},                     # the paper's network (official TF checkpoint)
    # GradNet-Tensorflow's network (its track.py arithmetic is the default; docs/fidelity_gradnet.md)
    "official": {"backbone": "alexnet"},
    # the project's continuous geometry: exact-position crops, exact map centre, box clamp
    "continuous": {"crop": "continuous", "centre_cell": "exact", "round_side": False,
                   "official_refind": False, "clamp_box": True},
    "tiny": {"instance_size": 191, "response_up": 4, "num_samples": 2, "update_interval": 2,
             "threshold_frames": 2, "no_window_after": 3, "rescue_before": 4},
})

# training recipe -> train_gradnet.py arguments (each row trains its recipe once)
# (every recipe trains with train_gradnet.py's default --recipe official unless it names one)
TRAIN = {
    "full": ["--variant", "full"],
    "project": ["--variant", "full", "--recipe", "project"],     # the project's reading of train.py
    "no_m": ["--variant", "full", "--no-generalization"],
    "no_mg": ["--variant", "no_mg", "--no-generalization"],
    "two_u": ["--variant", "two_u"],
    "siamfc": ["--variant", "siamfc"],
    "next": ["--variant", "full", "--target-view", "next"],
    "siamfc_next": ["--variant", "siamfc", "--target-view", "next"],
    "joint": ["--variant", "full", "--train-search"],
}

ABLATION = {                                              # in the order they run
    "GradNet": Row("gradnet", train="full"),
    # the SiamFC head fine-tuned on the same pairs for the same steps (same data, same budget)
    "SiamFC +budget": Row("siamfc", "mobilenet_v2", train="siamfc"),
    "w/o U": Row("gradnet", "no_update", train="full"),
    "w/o M": Row("gradnet", train="no_m"),
    "w/o MG": Row("gradnet", "no_gradient", train="no_mg"),
    "w 2U": Row("gradnet", "two_u", train="two_u"),
    "SiamFC start": Row("siamfc", "mobilenet_v2"),       # the head every recipe starts from
    # the full model's frozen SiamFC branch under GradNet's tracking values, no gradient template
    "SiamFC, GradNet tracking": Row("gradnet", "siamfc_map_only", train="full"),
    # extensions (only when asked for)
    "GradNet, SiamFC tracking": Row("gradnet", "siamfc_tracking", train="full"),
    "w/o U, SiamFC tracking": Row("gradnet", "siamfc_tracking_no_update", train="full"),
    "GradNet, updated map only": Row("gradnet", "updated_map_only", train="full"),
    "w/o U, updated map only": Row("gradnet", "updated_map_only_no_update", train="full"),
    "GradNet, project recipe": Row("gradnet", train="project"),
    "GradNet, next-view loss": Row("gradnet", train="next"),
    "GradNet, joint features": Row("gradnet", train="joint"),
    "GradNet, joint features, SiamFC tracking": Row("gradnet", "siamfc_tracking", train="joint"),
    "w/o U, joint features": Row("gradnet", "no_update", train="joint"),
    "joint features, SiamFC map only": Row("gradnet", "joint_siamfc_map_only", train="joint"),
    "SiamFC +budget, triplets": Row("siamfc", "mobilenet_v2", train="siamfc_next"),
}
DEFAULT_ROWS = ("GradNet", "SiamFC +budget", "w/o U", "w/o M", "w/o MG", "w 2U", "SiamFC start",
                "SiamFC, GradNet tracking")


# ---------------------------------------------------------------------------- the ablation's steps

# train_gradnet.py flags every recipe gets (``experiments/ablate.py`` flags of the same names;
# groups and k None: each recipe's own, jaxtrack.train.gradnet.RECIPES)
TRAIN_OPTIONS = {"steps": 400, "pool": 4096, "pool_dir": None, "siamfc_pool": None,
                 "siamfc_weights": None, "groups": None, "k": None, "train_args": "", "export_full": None,
                 "heldout": 512, "train_script": None}
HELDOUT_SYNTHETIC = 64     # the held-out probe's synthetic sequences (train_gradnet.py's default)
HELDOUT_K = 4              # the held-out probe's search regions per template unless --k is given


def options(ctx) -> dict:
    """``TRAIN_OPTIONS`` with the sweep's options (those not None) over them."""
    return {**TRAIN_OPTIONS, **{k: v for k, v in ctx.options.items() if k in TRAIN_OPTIONS and v is not None}}


def recipe_flag(recipe: str, flag: str, default=None):
    """The value of ``flag`` in recipe ``recipe``'s arguments."""
    args = TRAIN[recipe]
    return args[args.index(flag) + 1] if flag in args else default


def train_argv(recipe: str, out: str, export: str, opts: dict, seed: int) -> list[str]:
    """train_gradnet.py's arguments for ``recipe``: the recipe, then the flags every recipe gets."""
    argv = TRAIN[recipe] + ["--out", os.path.join(out, "train_" + recipe), "--steps", str(opts["steps"]),
                            "--pool", str(opts["pool"]), "--pool-dir", opts["pool_dir"] or out,
                            "--seed", str(seed), "--export", export]
    for flag in ("groups", "k"):
        if opts[flag] is not None:
            argv += ["--" + flag, str(opts[flag])]
    if opts["siamfc_pool"] and recipe_flag(recipe, "--target-view") != "next":   # triplets are drawn
        argv += ["--siamfc-pool", opts["siamfc_pool"]]
    if opts["siamfc_weights"]:
        argv += ["--siamfc-weights", opts["siamfc_weights"]]
    return argv + shlex.split(opts["train_args"])


def _settings(argv: list[str]) -> list[str]:
    """``argv`` less the flags naming where things are written."""
    out, skip = [], False
    for a in argv:
        if not skip and a not in ("--out", "--export", "--pool-dir"):
            out.append(a)
        skip = a in ("--out", "--export", "--pool-dir") and not skip
    return out


def train_recipe(recipe: str, ctx) -> str:
    """``ctx.out/<recipe>.msgpack``, trained by ``experiments/train_gradnet.py`` in a
    subprocess unless present; a present file made with other arguments is refused."""
    opts = options(ctx)
    path = os.path.join(ctx.out, f"{recipe}.msgpack")
    argv = train_argv(recipe, ctx.out, path, opts, ctx.seed)
    if os.path.exists(path):
        meta = Path(path + ".json")
        if meta.exists():
            # train_gradnet.py records its arguments joined by spaces: compare them so split
            made = json.loads(meta.read_text()).get("command", "").split(" ")[1:]
            if made and _settings(made) != _settings(" ".join(argv).split(" ")):
                from jaxtrack.eval.ope import RunMismatchError
                raise RunMismatchError(f"{path}: trained with {' '.join(made)}, this sweep asks for "
                                       f"{' '.join(argv)}; use another --out")
        return path
    script = opts["train_script"] or str(Path(__file__).resolve().parents[2] / "experiments" / "train_gradnet.py")
    os.makedirs(ctx.out, exist_ok=True)
    cmd = [sys.executable, script, *argv]
    ctx.log(f"== train {recipe}: {' '.join(argv)}")
    if subprocess.run(cmd).returncode != 0 or not os.path.exists(path):
        raise RuntimeError(f"training recipe {recipe!r} failed: {shlex.join(cmd)}")
    return path


def train_rows(rows, ctx) -> dict:
    """Hook: the weights of every row with a recipe (trained first), and ``--siamfc-weights``
    for the SiamFC rows without one."""
    opts = options(ctx)
    out = {}
    for name, row in rows.items():
        if row.train:
            out[name] = {"weights": train_recipe(row.train, ctx)}
            if row.train == "full" and opts["export_full"]:
                for ext in ("", ".json"):
                    shutil.copyfile(out[name]["weights"] + ext, opts["export_full"] + ext)
        elif row.tracker == "siamfc" and opts["siamfc_weights"]:
            out[name] = {"weights": opts["siamfc_weights"]}
    return out


def heldout_probe(rows, trackers, ctx) -> None:
    """Hook: ``jaxtrack.train.gradnet.heldout_metrics`` of each row's weights (once per
    weights: a recipe, or ``start``, the SiamFC head every recipe starts from) on
    ``--heldout`` held-out triplets, into ``ctx.extra["heldout"]``."""
    import time
    opts = options(ctx)
    if not opts["heldout"]:
        return
    import jax

    from jaxtrack import checkpoints
    from jaxtrack.data.sources import DEFAULT_IMAGES      # the held-out photographs: training's default
    from jaxtrack.train import gradnet as train
    from jaxtrack.trackers import gradnet
    done = ctx.extra.setdefault("heldout", {})
    for name, row in rows.items():
        label = row.train or ("start" if row.tracker == "siamfc" else None)
        if label is None or label in done:
            continue
        kind = "siamfc" if label == "start" else recipe_flag(label, "--variant")
        config = train.variant_config(trackers[name].config.backbone, kind)
        path = os.path.join(ctx.out, f"{label}.msgpack")
        if kind != "siamfc":
            params = gradnet.load_params(config, path)
        else:
            params = train.start_params(config, siamfc_weights=opts["siamfc_weights"], seed=0,
                                        allow_random_siamfc=ctx.allow_random, update_gamma=0.1)
            if label != "start":             # a trained SiamFC head (the siamfc tracker's file)
                head = checkpoints.load_variables(path, {"adjust": params["search"]["adjust"],
                                                         "bias": params["bias"]})
                params = {**params, "search": {"adjust": head["adjust"]}, "bias": head["bias"]}
        pool = train.heldout_pool(opts["pool_dir"] or ctx.out, config, params, opts["heldout"],
                                  DEFAULT_IMAGES, HELDOUT_SYNTHETIC, seed=99)
        t0 = time.time()
        done[label] = jax.tree_util.tree_map(float, train.heldout_metrics(
            config, params, pool, k=opts["k"] or HELDOUT_K, seed=ctx.seed))
        ctx.log(f"held-out probe {label} ({time.time() - t0:.0f} s)")


def heldout_markdown(record: dict) -> str:
    """Held-out probe table: per trained weights and template, loss / error / hit per regime."""
    probe = record.get("extra", {}).get("heldout") or {}
    if not probe:
        return ""
    regimes = ("own", "generalization", "next")
    lines = ["| weights | template | " + " | ".join(f"{r}: loss / err px / hit" for r in regimes) + " |",
             "|---" * (len(regimes) + 2) + "|"]
    for label, res in probe.items():
        names = ["siamfc"] if label.startswith("siamfc") or label == "start" else ["siamfc", "initial", "updated"]
        for name in names:
            cells = [f"{res[r][name]['loss']:.3f} / {res[r][name]['err_px']:.1f} / {res[r][name]['hit']:.3f}"
                     for r in regimes]
            lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    n = int(next(iter(probe.values()))["own"]["siamfc"]["maps"])
    return (f"\nHeld-out probe ({n} pairs never trained on; regimes: jaxtrack.train.gradnet.heldout_metrics; "
            "err: peak error in search-crop pixels; hit: peak within r_pos):\n\n" + "\n".join(lines) + "\n")


SWEEP = Hooks(prepare=train_rows, finish=heldout_probe, markdown=heldout_markdown)
