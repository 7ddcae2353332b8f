"""Backbones (flax) and their converters from torch state dicts."""
import numpy as np


def take_checked(state_dict: dict, key: str, shape, what: str, shown_key: str | None = None) -> np.ndarray:
    """``state_dict[key]`` as float32, or an error naming the key (and both shapes)."""
    shown = shown_key or key
    if key not in state_dict:
        raise KeyError(f"{what} state dict lacks {shown!r}")
    v = np.asarray(state_dict[key])
    if tuple(v.shape) != tuple(shape):
        raise ValueError(f"{what} {shown}: expected shape {tuple(shape)}, got {tuple(v.shape)}")
    return v.astype(np.float32)
