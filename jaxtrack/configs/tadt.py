"""TADT variants: TADT-python's channel selection and geometry (``default``), its network
(``official``), the project's own geometry and losses (``project``) and the paper's ablations.

Geometry and channel budget per backbone are in :data:`jaxtrack.trackers.tadt.BACKBONE_DEFAULTS`.
The ablation table adds the number of channels each selection keeps per sequence (``SWEEP``).
"""
from jaxtrack.configs import Row, frozen
from jaxtrack.eval.sweep import Hooks, init_state
from jaxtrack.trackers.tadt import SELECTIONS

VARIANTS = frozen({
    "default": {},
    **{s: {"selection": s} for s in SELECTIONS},             # target_aware is the default
    # TADT-python's network, VGG-16, with its 49-channel balance (docs/fidelity_tadt.md; its
    # window geometry, SGD regression and LSEP ranking are the default); its .mat with --weights
    "official": {"backbone": "vgg16", "balance_channels": 49},
    # jaxtrack's own: continuous window, closed-form regression, pairwise ranking importance
    "project": {"geometry": "project", "regression": "project", "ranking": "project"},
    # a small geometry: search window 88 px at stride 8 -> 11x11 maps (fast tests)
    "tiny": {"min_size": 16.0, "max_size": 24.0, "rank_steps": 3, "reg_iters": 30},
})

# channel-selection ablation: target-aware against all / random / one loss only
ABLATION = {s: Row("tadt", s) for s in SELECTIONS}
DEFAULT_ROWS = tuple(ABLATION)


def channels_kept(jt, seq, result, seed) -> dict:
    """Shallow plus deep channels the selection kept on ``seq`` (init run once more)."""
    import numpy as np
    st = init_state(jt, seq, result, seed)
    return {"channels": int(np.sum(np.asarray(st.w_shallow) > 0) + np.sum(np.asarray(st.w_deep) > 0))}


SWEEP = Hooks(metrics={"channels": "{:.1f}"}, sequence=channels_kept)
