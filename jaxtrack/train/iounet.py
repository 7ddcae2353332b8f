"""ATOM's IoU-Net training (and the MobileNetV2 adapters), as ATOM's ``ltr`` does it:
reference and jittered test crops (``ATOMProcessing``), Gaussian box proposals
(pytracking's ``perturb_box``) with ``2 * IoU - 1`` targets, MSE loss, Adam with step
decay; the frozen backbone's features of a fixed, seeded pool of pairs are cached. The
constants below are ATOM's.
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxtrack import boxes as bx
from jaxtrack.data import pairs
from jaxtrack.data.sources import raw_pair
from jaxtrack.models import iounet
from jaxtrack.train.common import cached_pool
from jaxtrack.trackers import atom

SAMPLE = 288
SEARCH_FACTOR = 5.0
CENTER_JITTER = 4.5
SCALE_JITTER = 0.5
SIGMA_FACTORS = (0.01, 0.05, 0.1, 0.2, 0.3)
POOL_CHUNK = 32       # pairs per seeded draw: a smaller pool of the same seed is a prefix


# ------------------------------------------------------------------ data

def crop_around(rng, image, box, jitter: bool):
    """A 288 px crop of 5x the (jittered) target; returns (crop, box in crop xywh)."""
    box = np.asarray(box, np.float64)
    size, center = box[2:], box[:2] + box[2:] / 2
    if jitter:
        size = size * np.exp(rng.standard_normal(2) * SCALE_JITTER)
        center = center + np.sqrt(np.prod(size)) * CENTER_JITTER * (rng.uniform(size=2) - 0.5)
    side = np.sqrt(np.prod(size)) * SEARCH_FACTOR
    crop = pairs.affine_crop(image, center, side, SAMPLE)
    s = SAMPLE / side
    b = np.concatenate([(box[:2] - (center - side / 2)) * s, box[2:] * s])
    return crop, b.astype(np.float32)


def draw_pair(rng, images, sequences, sampler, index, paste=False, objects=()):
    """(reference crop, its box, test crop, its box) of one pair; up to 20 tries for a
    test box that overlaps its crop."""
    for _ in range(20):
        raw = raw_pair(rng, images, sequences, sampler, index, paste=paste, objects=objects)
        z, bz = crop_around(rng, raw[0], raw[1], jitter=False)
        x, bxx = crop_around(rng, raw[2], raw[3], jitter=True)
        # the test box must overlap its crop (ATOM drops such pairs too)
        inside = bx.iou(bxx.astype(np.float64), np.array([0, 0, SAMPLE, SAMPLE], np.float64))
        if inside > 0 and min(bxx[2:]) > 2:
            x = pairs.photometric(rng, x, 0.2, 0.1)
            return z, bz, x, bxx
    return z, bz, x, bxx


def perturb_proposals(rng, box, num=16, min_iou=0.1):
    """``num`` Gaussian perturbations of ``box`` (xywh) with IoU >= ``min_iou``, and IoUs."""
    props, ious = [], []
    c, s = box[:2] + box[2:] / 2, box[2:]
    # as pytracking's perturb_box: one standard deviation, sqrt(w h) * sigma, for all four
    # coordinates (so a tall target's width varies as much as its height)
    side = np.sqrt(np.prod(s))
    for _ in range(num):
        sigma = SIGMA_FACTORS[int(rng.integers(len(SIGMA_FACTORS)))]
        for _ in range(100):
            cs = c + rng.standard_normal(2) * sigma * side
            ss = s + rng.standard_normal(2) * sigma * side
            ss = np.where(ss <= 1, s * rng.uniform(0.15, 0.5, 2), ss)
            p = np.concatenate([cs - ss / 2, ss])
            iou = bx.iou(p, box)
            if iou >= min_iou:
                break
            sigma *= 0.9
        props.append(p)
        ious.append(iou)
    return np.stack(props).astype(np.float32), np.asarray(ious, np.float32)


def proposal_targets(rng, boxes, num):
    """``num`` proposals per box and their regression targets ``2 * IoU - 1``."""
    props, ious = zip(*[perturb_proposals(rng, b, num=num) for b in boxes])
    return np.stack(props), 2 * np.stack(ious) - 1


def pool_tag(seed: int, paste: bool = False, objects=()) -> str:
    """A pool file's name up to its size: ``<tag><n>.npz``."""
    return f"pool_seed{seed}{'_paste' if paste else ''}{'_obj' if len(objects) else ''}_n"


def build_pool(folder: str, config, backbone_vars, sources, n: int, seed: int, paste: bool = False,
               objects=(), reuse_from=()) -> dict:
    """The frozen backbone's features.6 / features.13 maps (float16) of ``n`` pairs and their
    boxes, cached in ``folder``. Chunk ``start`` is drawn from rng ``[seed, 1, start]`` only,
    so a smaller pool of the same seed (in ``folder`` or ``reuse_from``) is an exact prefix
    of this one and is reused."""
    tag = pool_tag(seed, paste, objects)

    def make():
        fn = jax.jit(lambda im: atom.backbone_features(config, backbone_vars, im))
        t0 = time.time()
        parts = {k: [] for k in ("z3", "z4", "x3", "x4", "bz", "bx")}
        prefix = 0
        for d in dict.fromkeys([folder] + list(reuse_from or [])):
            for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                if name.startswith(tag) and name.endswith(".npz"):
                    m = int(name[len(tag):-4])
                    if prefix < m < n and m % POOL_CHUNK == 0:
                        with np.load(os.path.join(d, name)) as f:
                            parts = {k: [f[k]] for k in parts}
                        prefix = m
        if prefix:
            print(f"  pool: reusing the first {prefix} pairs", flush=True)
        for start in range(prefix, n, POOL_CHUNK):
            m = min(POOL_CHUNK, n - start)
            rng = np.random.default_rng([seed, 1, start])
            ps = [draw_pair(rng, *sources, index=start + i, paste=paste, objects=objects) for i in range(m)]
            z3, z4 = fn(jnp.asarray(np.stack([p[0] for p in ps]), jnp.float32))
            x3, x4 = fn(jnp.asarray(np.stack([p[2] for p in ps]), jnp.float32))
            for k, v in (("z3", z3), ("z4", z4), ("x3", x3), ("x4", x4)):
                parts[k].append(np.asarray(v, np.float16))
            parts["bz"].append(np.stack([p[1] for p in ps]))
            parts["bx"].append(np.stack([p[3] for p in ps]))
            if (start // POOL_CHUNK) % 8 == 0:
                print(f"  pool {start + m}/{n} ({time.time() - t0:.0f}s)", flush=True)
        return {k: np.concatenate(v) for k, v in parts.items()}
    return cached_pool(os.path.join(folder, f"{tag}{n}.npz"), make)


def fresh_batch(sources, seed, step, batch, paste=False, objects=(), proposals=16):
    """One batch of pairs drawn new for this step (rng ``[seed, 3, step]``, so a resumed
    run sees the same stream): crops and proposals; the backbone runs on the device
    (:func:`fresh_features`)."""
    rng = np.random.default_rng([seed, 3, step])
    ps = [draw_pair(rng, *sources, index=step * batch + i, paste=paste, objects=objects)
          for i in range(batch)]
    return (np.stack([p[0] for p in ps]), np.stack([p[1] for p in ps]), np.stack([p[2] for p in ps]),
            *proposal_targets(rng, [p[3] for p in ps], proposals))


def make_batch(pool, seed, step, batch, stream=2, proposals=16):
    """One batch from the pool (rng ``[seed, stream, step]``): (z3, z4, bz, x3, x4,
    proposals, targets); the cached features stay float16 (half the host-to-device bytes)
    and are widened to float32 inside the jitted step."""
    rng = np.random.default_rng([seed, stream, step])
    idx = rng.integers(0, len(pool["bz"]), batch)
    return (pool["z3"][idx], pool["z4"][idx], pool["bz"][idx], pool["x3"][idx], pool["x4"][idx],
            *proposal_targets(rng, pool["bx"][idx], proposals))


def fresh_features(config, backbone_vars, z, bz, x, props, target):
    """A :func:`fresh_batch` as a pool batch: the frozen backbone's maps of the crops."""
    z3, z4 = atom.backbone_features(config, backbone_vars, z.astype(jnp.float32))
    x3, x4 = atom.backbone_features(config, backbone_vars, x.astype(jnp.float32))
    return z3, z4, bz, x3, x4, props, target


# ------------------------------------------------------------------ model / loss

def start_params(config, seed: int, init_from: str | None = None):
    """(trainable {"adapter", "iounet"}, IoU-Net BN statistics): seeded random, or an
    exported IoU-Net checkpoint (``init_from``)."""
    from jaxtrack import checkpoints
    head = atom.init_head(config, jax.random.PRNGKey(seed))
    if init_from:
        head = checkpoints.load_variables(init_from, {"adapter": head["adapter"], "iounet": head["iounet"]})
    return {"adapter": head["adapter"], "iounet": head["iounet"]["params"]}, head["iounet"]["batch_stats"]


def optimizer(lr: float, steps: int):
    """(schedule, optimiser): Adam, the learning rate x0.2 at 60 % and 85 % of the steps."""
    n_dec = [int(steps * 0.6), int(steps * 0.85)]
    schedule = optax.piecewise_constant_schedule(lr, {n_dec[0]: 0.2, n_dec[1]: 0.2})
    return schedule, optax.adam(schedule)


def loss_fn(trainable, stats, z3, z4, bz, x3, x4, props, target):
    """MSE of the predicted against the target ``2 * IoU - 1``; BN in training mode.
    Returns (loss, new BN statistics)."""
    a = trainable["adapter"]
    z3, z4, x3, x4 = (v.astype(jnp.float32) for v in (z3, z4, x3, x4))
    z3, z4 = iounet.adapt(a, (z3, z4))
    x3, x4 = iounet.adapt(a, (x3, x4))
    variables = {"params": trainable["iounet"], "batch_stats": stats}
    pred, upd = iounet.AtomIoUNet().apply(variables, z3, z4, bz, x3, x4, props, train=True,
                                          mutable=["batch_stats"])
    return jnp.mean((pred - target) ** 2), upd["batch_stats"]


def export_variables(trainable, stats, dtype: str = "float32"):
    """What the atom tracker loads: adapters and IoU-Net (params, BN statistics);
    ``float16`` halves the file (the tracker widens it back)."""
    return stored_dtype({"adapter": trainable["adapter"], "iounet": {"params": trainable["iounet"],
                                                                     "batch_stats": stats}}, dtype)


def stored_dtype(head, dtype: str = "float32"):
    """``head`` as it is written: ``float16`` halves the file, ``float32`` leaves it."""
    if dtype == "float16":
        return jax.tree_util.tree_map(lambda v: np.asarray(v, np.float16), head)
    return head
