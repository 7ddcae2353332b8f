"""DAT variants: the official ``tracking/options.py`` and ``run_tracker.py`` computation
(``default``, lambda 5), jaxtrack's former attention term (``guided8``), and the ablations of
the reciprocative weight and of attention as feature weights."""
from jaxtrack.configs import Row, frozen

LAMBDAS = (0, 1, 3, 5, 7)

VARIANTS = frozen({
    "default": {},
    **{f"lam{lam}": {"lam": float(lam)} for lam in LAMBDAS},     # lam0: MDNet, no attention term
    "weight": {"attention": "weight", "lam": 0.0},             # attention maps as feature weights
    "vggm": {"backbone": "vggm"},                              # the paper's backbone (imagenet-vgg-m.mat)
    # jaxtrack's former attention term: guided maps w.r.t. the patch, 8+8 samples per iteration
    # from a patch memory, fc gradients alone in the clip norm, batches drawn with replacement
    "guided8": {"att_layer": "input", "att_guided": True, "att_source": "memory", "clip_with_conv": False,
                "sampling": "replacement"},
    "tiny": {"backbone": "vggm", "n_samples": 16, "n_bbreg": 32, "n_pos_init": 16, "n_neg_init": 32,
             "maxiter_init": 2, "n_pos_update": 8, "n_neg_update": 8, "n_frames_long": 3,
             "n_frames_short": 2, "maxiter_update": 1, "batch_pos": 2, "batch_neg": 2, "clip_with_conv": False,
             "batch_neg_cand": 16, "att_batch": 2, "att_frames": 2, "att_pos_per_frame": 2,
             "att_neg_per_frame": 2, "chunk": 16, "long_interval": 2},
})

ABLATION = {**{f"lam{lam}": Row("dat", f"lam{lam}") for lam in LAMBDAS}, "weight": Row("dat", "weight")}
DEFAULT_ROWS = tuple(ABLATION)
