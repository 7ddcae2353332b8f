"""SiamFC variants. ``default``: siamfc-pytorch's tracking values and crops (:class:`SiamFCConfig`);
``continuous``: jaxtrack's bilinear crops at the exact position with the pysot-style box clamp."""
from jaxtrack.configs import frozen

VARIANTS = frozen({
    "default": {},
    "mobilenet_v2": {"backbone": "mobilenet_v2"},   # the ImageNet stand-in with its trained head
    "continuous": {"crop": "continuous", "clamp_box": True},     # the project's geometry
    # siamfc-pytorch's network (docs/fidelity_siamfc.md): load its .pth with --weights
    "official": {"backbone": "alexnet"},
    "tiny": {"backbone": "alexnet", "instance_size": 191, "response_up": 4},
    # jaxtrack's small/fast-target variant (docs/generalization.md): exemplar side >= 64 px
    "small_targets": {"min_exemplar_side": 64.0},
})
