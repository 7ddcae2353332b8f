"""SiamFC offline training: augmented exemplar/search pairs, labels centred where each
target is, the balanced logistic loss, and the pool of frozen MobileNetV2 features of a
fixed, seeded set of pairs. Augmentation and label radius follow siamfc-pytorch
(:data:`jaxtrack.data.pairs.SIAMFC_AUGMENT`, ``r_pos`` 16 px).
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxtrack import ops
from jaxtrack.data import pairs
from jaxtrack.data.sources import PairMix, raw_pair
from jaxtrack.train.common import cached_pool
from jaxtrack.trackers import siamfc

POOL_CHUNK = 256      # pairs per seeded draw in the pool (gradnet.pool_from_siamfc replays it)


# ------------------------------------------------------------------ data

def draw_pair(rng, config, sources, index):
    """One augmented training pair from a randomly chosen source of ``sources`` (the
    (images, sequences, sampler) of ``pair_sources``, or a :class:`PairMix`)."""
    mix = sources if isinstance(sources, PairMix) else PairMix(*sources)
    return pairs.siamfc_crop_pair(rng, config, *raw_pair(rng, mix.images, mix.sequences, mix.sampler, index,
                                                         mix.paste, mix.objects, mix.kinds, mix.videos))


def labels_for(offsets, response_size, config, r_pos=16.0):
    """Logistic labels centred where each target really is (offset / stride cells)."""
    r = response_size
    grid = np.arange(r) - (r - 1) / 2
    dx = grid[None, None, :] - offsets[:, 0, None, None] / config.total_stride
    dy = grid[None, :, None] - offsets[:, 1, None, None] / config.total_stride
    dist = np.abs(dx) + np.abs(dy)
    return (dist <= r_pos / config.total_stride).astype(np.float32)


def make_batch(seed, step, batch, config, sources, stream=0):
    """``batch`` crop pairs (z, x, offsets) drawn from ``(seed, stream, step)``: training (0)
    and the pool (1) have separate streams, so resuming redraws exactly the same batches."""
    rng = np.random.default_rng([seed, stream, step])
    ps = [draw_pair(rng, config, sources, index=step * batch + i) for i in range(batch)]
    return (np.stack([p.z for p in ps]), np.stack([p.x for p in ps]),
            np.stack([p.offset for p in ps]))


def response_size(config, pool=None) -> int:
    """Side of the score map: on a feature pool, the search map minus the cropped template
    map plus one; on crops, (instance - exemplar) / stride + 1."""
    if pool is None:
        return (config.instance_size - config.exemplar_size) // config.total_stride + 1
    z = jax.ShapeDtypeStruct((1,) + pool["z"].shape[1:], jnp.float32)
    zf = jax.eval_shape(lambda a: siamfc.template_features(config, a), z)
    return pool["x"].shape[1] - zf.shape[1] + 1


def train_batch(config, seed, step, batch, response, pool=None, sources=None):
    """Step ``step``'s (z, x, labels), float32: ``batch`` pairs picked from the feature pool
    by rng ``[seed, 2, step]``, or (no pool) crop pairs drawn new by :func:`make_batch`."""
    if pool is not None:
        idx = np.random.default_rng([seed, 2, step]).integers(0, len(pool["z"]), batch)
        z, x, offsets = pool["z"][idx], pool["x"][idx], pool["offsets"][idx]
    else:
        z, x, offsets = make_batch(seed, step, batch, config, sources)
    return z.astype(np.float32), x.astype(np.float32), labels_for(offsets, response, config)


# ------------------------------------------------------------------ model / loss

def init_params(config, seed: int):
    """Start of training: mobilenet_v2: the ImageNet backbone and a random head;
    alexnet: a random network."""
    if config.backbone == "alexnet":
        return siamfc.load_params(config, weights="", seed=seed, allow_random=True)
    from jaxtrack.models.pretrained import mobilenet_v2_variables
    return {"backbone": mobilenet_v2_variables(), "head": siamfc.init_head(config, jax.random.PRNGKey(seed))}


def split_params(config, params):
    """(trainable, frozen): the frozen MobileNetV2 backbone is never updated; AlexNet's BN
    running statistics are carried as ``frozen``."""
    if config.backbone == "mobilenet_v2":
        return {"head": params["head"]}, {"backbone": params["backbone"]}
    return {"head": params["head"], "backbone": {"params": params["backbone"]["params"]}}, \
           {"backbone_stats": params["backbone"].get("batch_stats", {})}


def make_loss(config):
    """``loss_fn(trainable, frozen, z, x, labels) -> (loss, frozen)``; mobilenet_v2 takes
    cached backbone features, alexnet crops (BN in training mode)."""
    def loss_fn(trainable, frozen, z, x, labels):
        params = {**frozen, **trainable}
        if config.backbone == "mobilenet_v2":
            # z, x are cached frozen-backbone features: only the head runs here
            fz, fx = (siamfc.adjust(params["head"]["adjust"], a) for a in (z, x))
            logits = siamfc.score(config, params, siamfc.template_features(config, fz), fx)
            return ops.balanced_logistic_loss(logits, labels), frozen
        # end to end: BN in training mode, its running statistics carried as ``frozen``
        variables = {"params": trainable["backbone"]["params"], "batch_stats": frozen["backbone_stats"]}
        fz, upd = siamfc.embed(config, {"backbone": variables}, z, train=True)
        variables = {**variables, **upd}
        fx, upd = siamfc.embed(config, {"backbone": variables}, x, train=True)
        logits = siamfc.score(config, params, fz, fx)
        return ops.balanced_logistic_loss(logits, labels), {"backbone_stats": upd["batch_stats"]}
    return loss_fn


def export_variables(config, trainable, frozen):
    """What the siamfc tracker loads: mobilenet_v2 the head; alexnet the whole network."""
    if config.backbone == "mobilenet_v2":
        return trainable["head"]
    return {"backbone": {"params": trainable["backbone"]["params"], "batch_stats": frozen["backbone_stats"]},
            "head": trainable["head"]}


def tracker_params(config, trainable, frozen):
    """The siamfc tracker's params (backbone and head) during training, for validation."""
    if config.backbone == "mobilenet_v2":
        return {"backbone": frozen["backbone"], "head": trainable["head"]}
    return export_variables(config, trainable, frozen)


# ------------------------------------------------------------------ feature pool (frozen backbone)

def backbone_features(config, params, images, batch=32):
    """Frozen backbone features of uint8 crops, float16, ``batch`` crops per call."""
    module = siamfc.backbone_module(config)
    fn = jax.jit(lambda im: module.apply(params["backbone"], im))
    out = [np.asarray(fn(jnp.asarray(images[i:i + batch], jnp.float32)), np.float16)
           for i in range(0, len(images), batch)]
    return np.concatenate(out)


def pool_path(folder: str, seed: int, n: int) -> str:
    return os.path.join(folder, f"pool_seed{seed}_n{n}.npz")


def draw_pool(config, params, sources, n: int, seed: int) -> dict:
    """``n`` pairs (stream 1 of ``seed``, :data:`POOL_CHUNK` per draw) as backbone features:
    z, x (float16) and the target offsets."""
    t0 = time.time()
    zs, xs, offs = [], [], []
    for start in range(0, n, POOL_CHUNK):
        m = min(POOL_CHUNK, n - start)
        z, x, o = make_batch(seed, start, m, config, sources, stream=1)
        zs.append(backbone_features(config, params, z))
        xs.append(backbone_features(config, params, x))
        offs.append(o)
        print(f"  pool {start + m}/{n} ({time.time() - t0:.0f}s)", flush=True)
    return {"z": np.concatenate(zs), "x": np.concatenate(xs), "offsets": np.concatenate(offs)}


def build_pool(folder: str, config, params, sources, n: int, seed: int) -> dict:
    """The feature pool of :func:`draw_pool`, cached in ``folder`` (:func:`pool_path`)."""
    return cached_pool(pool_path(folder, seed, n), lambda: draw_pool(config, params, sources, n, seed))


# ------------------------------------------------------------------ untrained heads (issue 23)

# the heads experiments/make_siamfc_heads.py writes: the trained adjust's shape, set without a loss
HEADS = ("identity", "random", "centered", "pca64", "whitened")
IN_CHANNELS, OUT_CHANNELS = 96, 128


def head_variables(kernel: np.ndarray, bias: np.ndarray) -> dict:
    """The siamfc tracker's head pytree: adjust 96 -> 128 (zero-padded columns), bias 0."""
    k = np.zeros((IN_CHANNELS, OUT_CHANNELS), np.float32)
    k[:, :kernel.shape[1]] = kernel
    b = np.zeros((OUT_CHANNELS,), np.float32)
    b[:kernel.shape[1]] = bias
    return {"adjust": {"kernel": k, "bias": b}, "bias": np.zeros((), np.float32)}


def feature_statistics(vectors: np.ndarray):
    """(mean, eigenvalues descending, eigenvectors as columns) of ``[N, 96]`` features."""
    v = vectors.astype(np.float64)
    mean = v.mean(0)
    cov = np.cov(v - mean, rowvar=False)
    values, vectors_ = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    return mean, values[order], vectors_[:, order]


def untrained_head(name: str, mean=None, values=None, components=None, seed: int = 0) -> dict:
    """One of :data:`HEADS` as the tracker's head pytree."""
    eye = np.eye(IN_CHANNELS)
    if name == "identity":
        return head_variables(eye, np.zeros(IN_CHANNELS))
    if name == "random":
        k = np.random.default_rng(seed).standard_normal((IN_CHANNELS, OUT_CHANNELS)) / np.sqrt(IN_CHANNELS)
        return head_variables(k, np.zeros(OUT_CHANNELS))
    if name == "centered":
        return head_variables(eye, -mean)
    if name == "pca64":
        k = components[:, :64]
        return head_variables(k, -mean @ k)
    if name == "whitened":
        k = components / np.sqrt(np.maximum(values, 1e-6 * values[0]))
        return head_variables(k, -mean @ k)
    raise ValueError(f"unknown head {name!r}; choose from {HEADS}")


def pool_cells(pool: dict) -> np.ndarray:
    """Every cell of a feature pool's exemplar and search maps as ``[N, 96]`` vectors."""
    return np.concatenate([pool["z"].reshape(-1, IN_CHANNELS), pool["x"].reshape(-1, IN_CHANNELS)])


def pool_head(config, name: str, pool: dict, seed: int = 0, max_vectors: int = 200_000,
              pairs: int = 64) -> dict:
    """:func:`untrained_head` ``name`` with mean and components fitted on a feature pool's
    exemplar and search cells (evenly subsampled to ``max_vectors``), as jax arrays, its
    adjust scaled so the response logits of the pool's first ``pairs`` pairs have unit
    standard deviation (the tracker's decisions do not change with a positive scale; the
    logistic loss does, and raw dot products of 96 channels over 64 cells saturate it)."""
    if pool is None:
        raise SystemExit("--head-init needs the mobilenet_v2 feature pool")
    vectors = pool_cells(pool)
    vectors = vectors[::max(1, len(vectors) // max_vectors)]
    head = jax.tree_util.tree_map(jnp.asarray, untrained_head(name, *feature_statistics(vectors), seed=seed))
    adj = head["adjust"]
    z, x = (siamfc.adjust(adj, jnp.asarray(pool[k][:pairs], jnp.float32)) for k in ("z", "x"))
    logits = siamfc.score(config, {"head": {"bias": jnp.zeros(())}}, siamfc.template_features(config, z), x)
    gain = 1.0 / jnp.sqrt(jnp.std(logits) + 1e-12)          # logits are quadratic in the adjust
    return {**head, "adjust": {"kernel": adj["kernel"] * gain, "bias": adj["bias"] * gain}}
