"""SiamFC variants. ``default``: siamfc-pytorch's tracking values (:class:`SiamFCConfig`)."""
from jaxtrack.configs import frozen

VARIANTS = frozen({
    "default": {},
    "mobilenet_v2": {"backbone": "mobilenet_v2"},   # the ImageNet stand-in with its trained head
    "tiny": {"backbone": "alexnet", "instance_size": 191, "response_up": 4},
})
