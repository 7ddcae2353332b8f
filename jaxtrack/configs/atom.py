"""ATOM variants: pytracking's ``atom/default.py`` (``default``) and the ablations.

``gd`` replaces Gauss-Newton/CG by plain gradient descent with the same number of Jacobian
products; its step is picked from ``GD_STEPS`` by the first-frame loss on synthetic
sequences (never on evaluation data), see ``experiments/ablate.py``.
"""
from jaxtrack.configs import Row, frozen

VARIANTS = frozen({
    "default": {},
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
