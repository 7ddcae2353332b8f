"""ATOM variants: pytracking's ``atom/default.py`` (``default``), jaxtrack's former geometry
(``grid19``) and the ablations.

``gd`` replaces Gauss-Newton/CG by plain gradient descent with the same number of Jacobian
products; in the ablation table (``SWEEP``) its step is picked from ``GD_STEPS`` by the mean
first-frame classifier loss on ``GD_TUNE_SEQUENCES`` synthetic sequences (never on evaluation
data), and every row records its first-frame classifier loss per sequence.
"""
from jaxtrack.configs import Row, frozen
from jaxtrack.eval.sweep import Hooks, init_state

VARIANTS = frozen({
    "default": {},
    # jaxtrack's former geometry: 19x19 map with a parabolic peak, continuous crops, scale
    # clamp, augmentation on the 288 crop (docs/fidelity_atom.md, A1-A9)
    "grid19": {"geometry": "grid19"},
    "no_iou": {"use_iou_net": False},            # the classifier peak moves the box, size kept
    "gd": {"optimizer": "gd"},
    "resnet18": {"backbone": "resnet18"},        # the paper's backbone (pytracking's atom_default.pth)
    "tiny": {"augment": False, "memory_size": 24, "init_gn_iter": 2, "init_cg_iter": 3,
             "train_skipping": 2},
})
GD_STEPS = (1e-3, 3e-3, 1e-2)
GD_TUNE_SEQUENCES = 3                            # synthetic sequences that pick the GD step

ABLATION = {"full": Row("atom"), "no_iou": Row("atom", "no_iou"), "gd": Row("atom", "gd")}
DEFAULT_ROWS = tuple(ABLATION)


def tune_sequences(seed: int) -> list:
    """The synthetic sequences the GD step is picked on (seeds ``seed + 500 + i``)."""
    from jaxtrack.data.synthetic import make_sequence
    return [make_sequence(seed + 500 + i, num_frames=2, size=(240, 320)) for i in range(GD_TUNE_SEQUENCES)]


def first_frame_losses(tracker, sequences, seed: int) -> list[float]:
    """The classifier loss after the first-frame optimisation on each sequence."""
    import jax
    import jax.numpy as jnp

    from jaxtrack.frames import pad_frame, sequence_key
    init = jax.jit(tracker.init)
    return [float(init(tracker.params, pad_frame(s.frame(0)), jnp.asarray(s.gt[0], jnp.float32),
                       sequence_key(seed, s.name)).loss) for s in sequences]


def pick_gd_step(rows, ctx) -> dict:
    """Hook: every row that runs gradient descent without a given ``gd_step`` gets the step of
    ``GD_STEPS`` with the lowest mean first-frame loss on :func:`tune_sequences` (recorded)."""
    import math
    out, picked = {}, {}
    for name, row in rows.items():
        kw = ctx.resolved(row)
        if kw.get("optimizer") != "gd" or "gd_step" in kw:
            continue
        key = repr(sorted(kw.items()))
        if key not in picked:
            base = ctx.make(row)
            tune = tune_sequences(ctx.seed)
            losses = {}
            for step in GD_STEPS:
                t = ctx.make(row, gd_step=step, params=base.params)
                ls = first_frame_losses(t, tune, ctx.seed)
                losses[step] = sum(ls) / len(ls) if all(map(math.isfinite, ls)) else float("inf")
                ctx.log(f"{name}: gd step {step}: synthetic first-frame loss {losses[step]:.4f}")
            picked[key] = (min(losses, key=losses.get), losses)
        step, losses = picked[key]
        ctx.extra.setdefault("gd_step", {})[name] = {
            "chosen": step, "synthetic_first_frame_loss": {repr(s): v for s, v in losses.items()}}
        out[name] = {"gd_step": step}
    return out


def first_frame_loss(jt, seq, result, seed) -> dict:
    """The classifier loss after the first-frame optimisation (``state.loss`` after init)."""
    return {"init_loss": float(init_state(jt, seq, result, seed).loss)}


def gd_markdown(record) -> str:
    picks = record.get("extra", {}).get("gd_step") or {}
    return "".join(f"\n{row}: gradient-descent step {p['chosen']:g}, the lowest mean first-frame "
                   f"classifier loss of {GD_STEPS} on {GD_TUNE_SEQUENCES} synthetic sequences "
                   f"({', '.join(f'{s}: {v:.4f}' for s, v in p['synthetic_first_frame_loss'].items())}).\n"
                   for row, p in picks.items())


SWEEP = Hooks(metrics={"init_loss": "{:.4f}"}, prepare=pick_gd_step, sequence=first_frame_loss,
              markdown=gd_markdown)
