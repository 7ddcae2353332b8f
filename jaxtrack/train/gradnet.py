"""GradNet offline training: pools of augmented pairs (or triplets) with their source ids,
the batches of the two recipes (:data:`RECIPES`: GradNet-Tensorflow's ``train.py``, and the
project's reading of it), the loss of the gradient-updated template differentiated through
the inner ``jax.grad``, the variants of the paper's ablation, and the held-out probe of the
three templates. Design notes: docs/training.md.
"""
from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxtrack.data import pairs
from jaxtrack.data.sources import pair_sources
from jaxtrack.train.common import cached_pool, siamfc_sgd
from jaxtrack.train.siamfc import POOL_CHUNK
from jaxtrack.trackers import gradnet, siamfc

VARIANTS = ("full", "no_mg", "two_u", "siamfc")
SEARCH_HEAD = ("search", "bias")     # what the SiamFC baseline trains (and train_search adds)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the template branch and update subnet train (both from the same pool and SGD).

    ``template_init``: "random" (truncated normal 0.01, biases 0.1: train.py:439, 462-463
    restore only the search branch) or "siamfc" (the trained SiamFC head, the deep layers
    residual at gain 0.1, so the first template is SiamFC's). ``one_template``: a batch is
    ``groups`` pairs and template 0 alone meets all their search regions (siamese.py:86),
    the other templates entering the update's BN statistics with a zero gradient; otherwise
    ``groups`` templates each meet ``k`` regions of ``k`` sources. ``decay_biases``: weight
    decay on biases too (official: weights only, siamese.py:217-219). ``update_gamma``: the
    update subnet's initial BN scale (official 1). ``clip_template``: the global-norm clip of
    the template branch's gradient (not official: the loss here is summed over map cells, the
    official one averaged, and from the random start at learning rate 1e-2 that sum reaches
    NaN within 25 steps unclipped; docs/training.md)."""
    template_init: str
    one_template: bool
    decay_biases: bool
    update_gamma: float
    groups: int
    k: int
    clip_template: float | None = None


RECIPES = {
    "official": Recipe("random", one_template=True, decay_biases=False, update_gamma=1.0, groups=8, k=8,
                       clip_template=10.0),
    "project": Recipe("siamfc", one_template=False, decay_biases=True, update_gamma=0.1, groups=4, k=4),
}


# ------------------------------------------------------------------ data

def make_sources(images: str | None, synthetic: int, seed: int, appearance_change: float = 0.0):
    """(photographs, synthetic sequences): a pair's source id counts photographs first."""
    found, sequences, _ = pair_sources(images, synthetic, seed, appearance_change=appearance_change)
    return found, sequences


def draw_pair(rng, images, sequences, config):
    """(Pair, source id) from a random source (photograph or synthetic sequence)."""
    n = len(images) + len(sequences)
    src = int(rng.integers(n))
    raw = pairs.image_pair(rng, images[src]) if src < len(images) else \
        pairs.sequence_pair(rng, sequences[src - len(images)])
    return pairs.siamfc_crop_pair(rng, config, *raw), src


def pool_path(folder: str, kind: str, config, sources, tag: str, n: int,
              appearance_change: float = 0.0) -> str:
    """Where a cached pool of ``kind`` lives: the name records what drew it."""
    app = f"_app{appearance_change:g}" if appearance_change else ""
    return os.path.join(folder, f"{kind}_{config.backbone}_{tag}{app}_n{n}_src{sum(map(len, sources))}.npz")


def build_pool(folder: str, config, params, sources, n: int, seed: int, appearance_change: float = 0.0,
               siamfc_pool: str | None = None) -> dict:
    """The cached training pool in ``folder``: z, x (backbone features for mobilenet_v2,
    crops for alexnet), target offsets and source ids, pair i drawn from ``(seed, 1, i)``;
    or, with ``siamfc_pool``, the first ``n`` pairs of train_siamfc's pool there."""
    tag = f"siamfc{os.path.basename(siamfc_pool)[:-4]}" if siamfc_pool else f"seed{seed}"

    def make():
        if not siamfc_pool:
            return draw_pool(config, params, n, ("z", "x", "offsets", "sources"), "pool",
                             lambda i: _pair_record(np.random.default_rng([seed, 1, i]), sources, config))
        t0 = time.time()
        pool = pool_from_siamfc(config, sources, siamfc_pool, n)
        print(f"  pool: {n} pairs of {siamfc_pool}, sources replayed ({time.time() - t0:.0f}s)", flush=True)
        return pool
    return cached_pool(pool_path(folder, "pool", config, sources, tag, n, appearance_change), make)


def build_triplet_pool(folder: str, config, params, sources, n: int, seed: int,
                       appearance_change: float = 0.0) -> dict:
    """The cached pool of ``n`` triplets (:func:`draw_triplet_pool`) in ``folder``."""
    return cached_pool(pool_path(folder, "triplets", config, sources, f"seed{seed}", n, appearance_change),
                       lambda: draw_triplet_pool(config, params, sources, n, seed))


def _pair_record(rng, sources, config):
    pair, src = draw_pair(rng, *sources, config)
    return pair.z, pair.x, pair.offset, src


def draw_pool(config, params, n: int, keys, label: str, draw):
    """``n`` records ``draw(i)`` (one value per name in ``keys``) stacked per key, drawn
    in chunks of 64; the crops (z, x, x2) become backbone features (float16) for
    mobilenet_v2, and ``sources`` int32."""
    feat = jax.jit(lambda im: gradnet.backbone_features(config, params, im))
    parts = {k: [] for k in keys}
    t0 = time.time()
    for start in range(0, n, 64):
        records = [draw(i) for i in range(start, min(start + 64, n))]
        for key, col in zip(keys, zip(*records)):
            col = np.stack(col)
            if key in ("z", "x", "x2") and config.backbone == "mobilenet_v2":
                col = np.asarray(feat(jnp.asarray(col, jnp.float32)), np.float16)
            parts[key].append(col)
        print(f"  {label} {min(start + 64, n)}/{n} ({time.time() - t0:.0f}s)", flush=True)
    pool = {k: np.concatenate(v) for k, v in parts.items()}
    pool["sources"] = pool["sources"].astype(np.int32)
    return pool


def pool_from_siamfc(config, sources, path: str, n: int) -> dict:
    """The first ``n`` pairs of train_siamfc's cached pool at ``path`` (the very pairs the
    SiamFC baseline was trained on), with each pair's source id recovered by replaying its
    seeded draw; the replayed target offsets must equal the stored ones."""
    images, sequences = sources
    with np.load(path) as f:
        offsets = f["offsets"][:n]
        z, x = f["z"][:n], f["x"][:n]
    seed = int(os.path.basename(path).split("seed")[1].split("_")[0])
    kinds = [k for k, have in (("image", images), ("sequence", sequences)) if have]
    src = np.zeros(n, np.int32)
    chunk = POOL_CHUNK                         # train_siamfc's pool chunk
    for start in range(0, n, chunk):
        rng = np.random.default_rng([seed, 1, start])
        for i in range(start, min(start + chunk, n)):
            kind = kinds[int(rng.integers(len(kinds)))]
            if kind == "image":
                j = int(rng.integers(len(images)))
                raw, src[i] = pairs.image_pair(rng, images[j]), j
            else:
                j = int(rng.integers(len(sequences)))
                raw, src[i] = pairs.sequence_pair(rng, sequences[j]), len(images) + j
            pair = pairs.siamfc_crop_pair(rng, config, *raw)
            if not np.allclose(pair.offset, offsets[i], atol=1e-4):
                raise ValueError(f"{path}: replaying pair {i} gave offset {pair.offset}, stored "
                                 f"{offsets[i]}: the sources differ from the pool's")
    return {"z": z, "x": x, "offsets": offsets, "sources": src}


def sample_groups(rng, sources, groups: int, k: int, generalization: bool):
    """Pool indices [G, K]: with generalization, column 0 is the template's own pair and
    the other K-1 come from pairs of K-1 other, mutually different sources; without it,
    G*K templates each with their own search region ([G*K, 1])."""
    n = len(sources)
    if generalization and k > len(np.unique(sources)):
        raise ValueError(f"template generalization needs {k} different sources per template, "
                         f"the pool has {len(np.unique(sources))}: lower --k (--groups in the "
                         "official recipe) or add sources")
    if not generalization:
        t = rng.integers(0, n, groups * k)
        return t, t[:, None]
    t = rng.integers(0, n, groups)
    idx = np.zeros((groups, k), np.int64)
    for g in range(groups):
        chosen, used = [t[g]], {int(sources[t[g]])}
        while len(chosen) < k:
            j = int(rng.integers(0, n))
            if int(sources[j]) not in used:
                chosen.append(j)
                used.add(int(sources[j]))
        idx[g] = chosen
    return t, idx


def make_batch(pool, config, response: int, seed: int, step: int, groups: int, k: int,
               generalization: bool, next_view: bool = False, train_search: bool = False,
               one_template: bool = False):
    """Step ``step``'s batch (rng ``[seed, 2, step]``, so a resumed run redraws it):
    ((z, x, labels, weights), second views (x2, labels2, weights2) or (), the search
    regions' own exemplars (``train_search``) or None), float32. ``one_template``
    (:class:`Recipe`): ``groups`` pairs, one template meeting all their regions with
    generalization, each its own without."""
    rng = np.random.default_rng([seed, 2, step])
    if one_template:
        groups, k = (1, groups) if generalization else (groups, 1)
    t_idx, s_idx = sample_groups(rng, pool["sources"], groups, k, generalization)
    z = pool["z"][t_idx].astype(np.float32)
    x = pool["x"][s_idx].astype(np.float32)
    labels, weights = gradnet.make_labels(pool["offsets"][s_idx], response, config.total_stride, config.r_pos)
    eval_views = ()
    if next_view:
        eval_views = (pool["x2"][s_idx].astype(np.float32),) + gradnet.make_labels(
            pool["offsets2"][s_idx], response, config.total_stride, config.r_pos)
    z_own = pool["z"][s_idx].astype(np.float32) if train_search else None
    return (z, x, labels, weights), eval_views, z_own


# ------------------------------------------------------------------ model / loss

def split_params(config, variant, params, train_search: bool = False):
    """(trainable, frozen). ``train_search``: the search branch and the bias train too."""
    if variant == "siamfc":
        head = {"adjust": params["search"]["adjust"], "bias": params["bias"]}
        return {"head": head}, {k: v for k, v in params.items() if k not in SEARCH_HEAD}
    keys = ["template", "update"] + (["template0"] if config.unshared_deep else [])
    keys += list(SEARCH_HEAD) if train_search else []
    return {k: params[k] for k in keys}, {k: v for k, v in params.items() if k not in keys}


def merge(variant, trainable, frozen):
    """The full params from :func:`split_params`' two halves."""
    if variant == "siamfc":
        h = trainable["head"]
        return {**frozen, "search": {"adjust": h["adjust"]}, "bias": h["bias"]}
    return {**frozen, **trainable}


def search_groups(config, params, x):
    """Search features of x [G, K, ...] (backbone features or crops): [G, K, h, w, C]."""
    g, k = x.shape[:2]
    xf = gradnet.search_branch(config, params, x.reshape((g * k,) + x.shape[2:]))
    return xf.reshape((g, k) + xf.shape[1:])


def response_size(config, params, pool) -> int:
    """Side of the score map for the pool's shapes (no compute): search map - template + 1."""
    shape = lambda a: jax.ShapeDtypeStruct((1,) + a.shape[1:], jnp.float32)   # noqa: E731
    zf = jax.eval_shape(lambda z: gradnet.siamfc_template(config, params, z), shape(pool["z"]))
    xf = jax.eval_shape(lambda x: gradnet.search_branch(config, params, x), shape(pool["x"]))
    return xf.shape[1] - zf.shape[1] + 1


def make_loss(config, variant, first_order=False, zero_templates: int = 0):
    """Training loss ``loss_fn(trainable, frozen, z, x, labels, weights, x_eval, labels_eval,
    weights_eval, z_own) -> (loss, update-subnet BN batch statistics)``. The update's
    gradient is taken on search regions ``x`` (labels, weights); the loss is taken on
    ``x_eval`` (default ``x``, as the official code; a second view of the same targets when
    training with the next view).

    ``z_own`` [G, K, ...] (training the search branch too): every search region's own exemplar; the
    SiamFC template's loss on those pairs (what the ``siamfc`` baseline trains on) is
    added, and the search branch and bias, trainable then, learn from that loss alone:
    the features under the tracker's SiamFC map train as the baseline's do.
    ``zero_templates``: zero-gradient templates in the update's BN statistics (official)."""
    def loss_fn(trainable, frozen, z, x, labels, weights, x_eval=None, labels_eval=None,
                weights_eval=None, z_own=None):
        live = params = merge(variant, trainable, frozen)
        xf = xf_live = search_groups(config, live, x)
        if z_own is not None:
            # the search branch and bias learn from the baseline's loss only.
            # Through GradNet's maps their gradient is 5-7x the baseline's (the updated
            # template is larger than SiamFC's) and the official learning rate diverges.
            params = {**live, **jax.lax.stop_gradient({k: live[k] for k in SEARCH_HEAD})}
            xf = jax.lax.stop_gradient(xf_live)
        if x_eval is None:
            xe, labels_eval, weights_eval = xf, labels, weights
        else:
            xe = search_groups(config, params, x_eval)
        if variant == "siamfc":              # the baseline: SiamFC's template, no update
            zf = gradnet.siamfc_template(config, params, z)
            stats = frozen["update_stats"]
        else:
            h = gradnet.shallow(config, params, z)
            zf, _, stats = gradnet.gradient_update(config, params, h, xf, labels, weights, train=True,
                                                   first_order=first_order, zero_templates=zero_templates)
        s = gradnet.score_groups(config, params, zf, xe)
        cells = s.shape[-1] * s.shape[-2]
        loss = gradnet.weighted_logistic_loss(s, labels_eval, weights_eval) * cells
        if z_own is not None:                # plus the SiamFC pairs' loss
            g, k = x.shape[:2]
            own = gradnet.siamfc_template(config, live, z_own.reshape((g * k,) + z_own.shape[2:]))
            x_own = xf_live.reshape((g * k, 1) + xf_live.shape[2:])
            s_own = gradnet.score_groups(config, live, own, x_own)
            loss = loss + gradnet.weighted_logistic_loss(
                s_own, labels.reshape(s_own.shape), weights.reshape(s_own.shape)) * cells
        return loss, stats
    return loss_fn


def variant_config(backbone: str, variant: str):
    """The GradNetConfig a training variant (:data:`VARIANTS`) trains."""
    return gradnet.GradNetConfig(backbone=backbone, use_gradient=variant != "no_mg",
                                 unshared_deep=variant == "two_u")


def start_params(config, siamfc_weights: str | None = None, seed: int = 0,
                 allow_random_siamfc: bool = False, update_gamma: float = 0.1,
                 template_init: str = "siamfc"):
    """GradNet params copied from a trained SiamFC (``siamfc_weights``, default the
    committed checkpoint; random with ``allow_random_siamfc``), the rest seeded by ``seed``;
    ``update_gamma``: the initial BN scale of the update subnet; ``template_init``
    (:class:`Recipe`) "random" draws the template branch and update conv afresh."""
    sf_config = siamfc.SiamFCConfig(backbone=config.backbone)
    sf = siamfc.load_params(sf_config, weights=siamfc_weights, seed=seed, allow_random=allow_random_siamfc)
    params = gradnet.params_from_siamfc(config, sf, jax.random.PRNGKey(seed), update_gamma=update_gamma)
    if template_init == "random":
        params = random_template_branch(params, jax.random.PRNGKey(seed), update_gamma)
    elif template_init != "siamfc":
        raise ValueError(f"template_init must be 'random' or 'siamfc', not {template_init!r}")
    return params


def random_template_branch(params, key, update_gamma: float = 1.0, stddev: float = 0.01, bias: float = 0.1):
    """``params`` with the template branch(es) and the update conv drawn as the official
    train.py initialises them: kernels from a normal truncated at 2 sd (``stddev``), conv
    biases ``bias``, BN scale 1 (the update's ``update_gamma``) and offset 0."""
    def draw(tree, key):
        out = {}
        for name, leaf in tree.items():
            key, sub = jax.random.split(key)
            if isinstance(leaf, dict):
                out[name] = draw(leaf, sub)
            elif name == "kernel":
                out[name] = stddev * jax.random.truncated_normal(sub, -2.0, 2.0, leaf.shape, leaf.dtype)
            elif name == "bias":
                out[name] = jnp.full_like(leaf, bias if "kernel" in tree else 0.0)
            elif name == "scale":
                out[name] = jnp.ones_like(leaf)
            else:
                out[name] = leaf
        return out
    keys = jax.random.split(key, 3)
    out = dict(params)
    for name, sub in zip(("template", "template0"), keys[:2]):
        if name in params:
            out[name] = draw(params[name], sub)
    update = draw(params["update"], keys[2])
    update["bn"] = {**update["bn"], "scale": jnp.full_like(update["bn"]["scale"], update_gamma)}
    return {**out, "update": update}


def optimizer(trainable, lr: float, final_lr: float, steps: int, weight_decay: float, momentum: float,
              clip_template: float | None = None, decay_biases: bool = True):
    """(schedule, optimiser): :func:`siamfc_sgd`, decaying only conv kernels unless
    ``decay_biases``; ``clip_template`` clips the global norm of the template branch's and
    update subnet's gradient, never the baseline's part."""
    schedule, opt = siamfc_sgd(lr, final_lr, steps, weight_decay, momentum,
                               decay_mask=None if decay_biases else kernels_only)
    if clip_template:
        mask = {k: k not in SEARCH_HEAD + ("head",) for k in trainable}   # "head": the siamfc variant's
        opt = optax.chain(optax.masked(optax.clip_by_global_norm(clip_template), mask), opt)
    return schedule, opt


def kernels_only(params):
    """The weight-decay mask of the official recipe: True at conv kernels only."""
    return jax.tree_util.tree_map_with_path(lambda path, _: getattr(path[-1], "key", None) == "kernel", params)


def export_variables(config, variant: str, params):
    """What a checkpoint of ``variant`` stores: the siamfc baseline its head (for the siamfc
    tracker), the GradNet variants :func:`gradnet.trained_part`."""
    if variant == "siamfc":
        return {"adjust": params["search"]["adjust"], "bias": params["bias"]}
    return gradnet.trained_part(config, params)


def validation_tracker(config, variant: str, params) -> tuple[str, dict, dict]:
    """(tracker name, its params, its config overrides) that ``variant`` trains, for the
    validation set: the siamfc baseline its head on the backbone, GradNet its whole config."""
    if variant == "siamfc":
        head = export_variables(config, variant, params)          # the adjust of mobilenet_v2
        return "siamfc", {"backbone": params["backbone"], "head": head}, {"backbone": config.backbone}
    return "gradnet", params, dataclasses.asdict(config)


# ------------------------------------------------------------------ held-out probe

def draw_triplet(rng, images, sequences, config):
    """An exemplar and two search regions of the same target (two views of a photograph,
    or two frames near the exemplar's frame): (z, x1, offset1, x2, offset2, source id)."""
    n = len(images) + len(sequences)
    src = int(rng.integers(n))
    if src < len(images):
        image_z, box_z, image_1, box_1 = pairs.image_pair(rng, images[src])
        image_2, box_2 = pairs.image_pair(rng, images[src], box=box_z)[2:]
    else:
        seq = sequences[src - len(images)]
        valid = pairs.valid_frames(seq.gt)
        i = int(rng.choice(valid))
        j, k = rng.choice(valid[np.abs(valid - i) <= 50], 2)
        image_z, box_z, image_1, box_1, image_2, box_2 = (
            seq.frame(i), seq.gt[i], seq.frame(j), seq.gt[j], seq.frame(k), seq.gt[k])
    p1 = pairs.siamfc_crop_pair(rng, config, image_z, box_z, image_1, box_1)
    p2 = pairs.siamfc_crop_pair(rng, config, image_z, box_z, image_2, box_2)
    return p1.z, p1.x, p1.offset, p2.x, p2.offset, src


def draw_triplet_pool(config, params, sources, n: int, seed: int):
    """``n`` triplets (:func:`draw_triplet`, seeds ``[seed, 4, i]``) with backbone features
    as the training pool's: z, x, offsets, x2, offsets2, sources."""
    return draw_pool(config, params, n, ("z", "x", "offsets", "x2", "offsets2", "sources"), "triplets",
                     lambda i: draw_triplet(np.random.default_rng([seed, 4, i]), *sources, config))


def heldout_pool(pool_dir: str, config, params, n: int, images: str | None, synthetic: int,
                 seed: int = 99) -> dict:
    """``n`` triplets never trained on: the photographs in ``images`` re-drawn with seed
    ``seed`` and ``synthetic`` sequences of seed ``seed`` (disjoint from training's), cached
    in ``pool_dir``."""
    path = os.path.join(pool_dir, f"heldout_{config.backbone}_seed{seed}_n{n}.npz")
    sources = lambda: pair_sources(images, synthetic, seed)[:2]   # noqa: E731
    return cached_pool(path, lambda: draw_triplet_pool(config, params, sources(), n, seed))


def heldout_metrics(config, params, pool, k: int = 4, seed: int = 0, chunk: int = 32):
    """How well each template finds the target on held-out pairs. A regime names the
    search regions the update's gradient is taken on and those the template is scored on:

    * ``own``: its own pair's search region for both (K = 1);
    * ``generalization``: K search regions of K different sources for both (training's
      template generalization: only the gradient can tell the template what to find);
    * ``next``: the gradient on its own search region, the score on a second search
      region of the same target (another frame or view, ``x2``): what tracking needs, an
      update that helps on the frames after the one it was computed on.

    Templates: ``siamfc`` (the search branch on the exemplar, as the SiamFC tracker and
    GradNet's fixed template), ``initial`` (deep(shallow(z)), before the update) and
    ``updated`` (after the gradient update, BN running statistics, as when tracking).
    Per template: the training loss (official loss x cells), the mean peak error in
    search-crop pixels and ``hit``, the fraction of maps peaking within ``r_pos``.
    """
    n = len(pool["sources"])
    rng = np.random.default_rng([seed, 3])
    t_general, general = sample_groups(rng, pool["sources"], n, k, True)
    own = np.arange(n)[:, None]
    # (templates, gradient regions, scored regions); "x2" rows are offset by n below
    regimes = {"own": (own[:, 0], own, own), "generalization": (t_general, general, general),
               "next": (own[:, 0], own, own + n)}
    xs_all = np.concatenate([pool["x"], pool["x2"]])
    offsets_all = np.concatenate([pool["offsets"], pool["offsets2"]])
    response = response_size(config, params, pool)
    search = lambda x: search_groups(config, params, x)      # noqa: E731

    @jax.jit
    def maps(z, x_grad, labels, weights, x_eval):
        h = gradnet.shallow(config, params, z)
        z_up, _, _ = gradnet.gradient_update(config, params, h, search(x_grad), labels, weights)
        temps = {"siamfc": gradnet.siamfc_template(config, params, z),
                 "initial": gradnet.deep(config, params, h, initial=True), "updated": z_up}
        xs = search(x_eval)
        return {name: gradnet.score_groups(config, params, t, xs) for name, t in temps.items()}

    out = {}
    for regime, (t_idx, g_idx, e_idx) in regimes.items():
        sums = {}
        for start in range(0, len(t_idx), chunk):
            sl = slice(start, start + chunk)
            z = pool["z"][t_idx[sl]].astype(np.float32)
            lab_g, w_g = gradnet.make_labels(offsets_all[g_idx[sl]], response,
                                             config.total_stride, config.r_pos)
            offsets = offsets_all[e_idx[sl]]
            labels, weights = gradnet.make_labels(offsets, response, config.total_stride, config.r_pos)
            res = maps(z, xs_all[g_idx[sl]].astype(np.float32), lab_g, w_g,
                       xs_all[e_idx[sl]].astype(np.float32))
            for name, s in res.items():
                s = np.asarray(s)
                loss = np.sum(weights * np.logaddexp(0.0, -labels * s), axis=(-2, -1))
                peak = np.stack(np.unravel_index(np.argmax(s.reshape(s.shape[:2] + (-1,)), -1),
                                                 s.shape[-2:]), -1)[..., ::-1]
                err = np.linalg.norm((peak - (response - 1) / 2) * config.total_stride - offsets, axis=-1)
                acc = sums.setdefault(name, {"loss": 0.0, "err_px": 0.0, "hit": 0.0, "maps": 0})
                acc["loss"] += float(loss.sum())
                acc["err_px"] += float(err.sum())
                acc["hit"] += float((err <= config.r_pos).sum())
                acc["maps"] += int(err.size)
        out[regime] = {name: {m: a[m] / a["maps"] for m in ("loss", "err_px", "hit")} | {"maps": a["maps"]}
                       for name, a in sums.items()}
    return out
