"""SiamFC variants. ``default``: siamfc-pytorch's tracking values (:class:`SiamFCConfig`)."""
from jaxtrack.configs import frozen

VARIANTS = frozen({
    "default": {},
    "mobilenet_v2": {"backbone": "mobilenet_v2"},   # the ImageNet stand-in with its trained head
    # siamfc-pytorch's computation to float rounding: whole-pixel crops resized as OpenCV
    # resizes uint8 images, no box clamp (docs/fidelity_siamfc.md); load its .pth with --weights
    "official": {"backbone": "alexnet", "crop": "rounded", "clamp_box": False},
    "tiny": {"backbone": "alexnet", "instance_size": 191, "response_up": 4},
})
