"""Backbones (flax modules and pure functions) and their converters from other frameworks.

:func:`backbone` is the one table from a backbone name to its module; each tracker keeps
only the options it uses (taps, dilation). Pretrained ImageNet weights:
:mod:`jaxtrack.models.pretrained`.
"""
from __future__ import annotations

import importlib

import numpy as np

from jaxtrack.errors import ConfigError

# name -> (module, class): the flax backbones the trackers share
BACKBONES = {
    "alexnet": ("jaxtrack.models.alexnet", "SiamFCAlexNet"),
    "mobilenet_v2": ("jaxtrack.models.mobilenet_v2", "MobileNetV2Features"),
    "resnet18": ("jaxtrack.models.resnet18", "ResNet18"),
    "vgg16": ("jaxtrack.models.vgg16", "VGG16Features"),
}


def backbone(name: str, **options):
    """The flax module of backbone ``name`` built with ``options`` (e.g. ``taps=(6, 13)``)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")
    module, cls = BACKBONES[name]
    return getattr(importlib.import_module(module), cls)(**options)


def check_backbone(tracker: str, name: str, supported) -> None:
    """A config's backbone must be one its tracker supports: raise naming both."""
    if name not in supported:
        raise ConfigError(f"{tracker}: unknown backbone {name!r} ({' | '.join(supported)})")


def take_checked(state_dict: dict, key: str, shape, what: str, shown_key: str | None = None) -> np.ndarray:
    """``state_dict[key]`` as float32, or an error naming the key (and both shapes)."""
    shown = shown_key or key
    if key not in state_dict:
        raise KeyError(f"{what} state dict lacks {shown!r}")
    v = np.asarray(state_dict[key])
    if tuple(v.shape) != tuple(shape):
        raise ValueError(f"{what} {shown}: expected shape {tuple(shape)}, got {tuple(v.shape)}")
    return v.astype(np.float32)
