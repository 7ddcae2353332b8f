"""GradNet variants, the ablation rows of the paper's Table 3 (and the project's extensions),
and the training recipes behind them (``experiments/train_gradnet.py`` arguments).

``default``: the official ``track.py`` values (:class:`GradNetConfig`).
"""
from jaxtrack.configs import Row, frozen
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
    "tiny": {"instance_size": 191, "response_up": 4, "num_samples": 2, "update_interval": 2,
             "threshold_frames": 2, "no_window_after": 3, "rescue_before": 4},
})

# training recipe -> train_gradnet.py arguments (each row trains its recipe once)
TRAIN = {
    "full": ["--variant", "full"],
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
    "GradNet, next-view loss": Row("gradnet", train="next"),
    "GradNet, joint features": Row("gradnet", train="joint"),
    "GradNet, joint features, SiamFC tracking": Row("gradnet", "siamfc_tracking", train="joint"),
    "w/o U, joint features": Row("gradnet", "no_update", train="joint"),
    "joint features, SiamFC map only": Row("gradnet", "joint_siamfc_map_only", train="joint"),
    "SiamFC +budget, triplets": Row("siamfc", "mobilenet_v2", train="siamfc_next"),
}
DEFAULT_ROWS = ("GradNet", "SiamFC +budget", "w/o U", "w/o M", "w/o MG", "w 2U", "SiamFC start",
                "SiamFC, GradNet tracking")
