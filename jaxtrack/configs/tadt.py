"""TADT variants: the official channel selection (``default``) and the paper's ablations.

Geometry and channel budget per backbone are in :data:`jaxtrack.trackers.tadt.BACKBONE_DEFAULTS`.
"""
from jaxtrack.configs import Row, frozen
from jaxtrack.trackers.tadt import SELECTIONS

VARIANTS = frozen({
    "default": {},
    **{s: {"selection": s} for s in SELECTIONS},             # target_aware is the default
    # a small geometry: search window 88 px at stride 8 -> 11x11 maps (fast tests)
    "tiny": {"min_size": 16.0, "max_size": 24.0, "rank_steps": 3, "reg_iters": 30},
})

# channel-selection ablation: target-aware against all / random / one loss only
ABLATION = {s: Row("tadt", s) for s in SELECTIONS}
DEFAULT_ROWS = tuple(ABLATION)
