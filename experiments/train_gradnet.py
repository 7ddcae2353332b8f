"""Train GradNet offline: the loss of the gradient-updated template, differentiated
through the inner ``jax.grad`` (second-order terms real, not stopped).

Per step (official ``train.py`` semantics): G templates; each template is scored
against K search regions; the inner loss (official weighted logistic loss, mean over
the K maps) gives the gradient w.r.t. the template's shallow features; the update
subnet turns it into the updated template, whose loss on the same K search regions is
the training loss. Only the template branch and the update subnet train; the search
branch is frozen (official: only ``*_z`` variables train), and it starts from the
trained SiamFC (``--siamfc-weights``, default the committed checkpoint).

* Template generalization (``--generalization``, default on): the K=4 search regions
  of a template come from 4 different sources (its own pair and 3 pairs of other
  photographs / synthetic sequences), each labelled where its own target is, so one
  template must be updated, by its gradient, to find all of them. Off (``w/o M``):
  every template sees only its own search region, with G*K templates per step so the
  number of search regions per step (the budget) is the same.
* ``--variant``: ``full`` | ``no_mg`` (the update subnet sees the shallow features, no
  gradient) | ``two_u`` (unshared deep layers for the initial template) | ``siamfc``
  (the baseline: SiamFC's head (adjust + bias) fine-tuned on the same pairs and steps,
  exported for the ``siamfc`` tracker).
* ``--train-search`` (an extension, not the official recipe, which trains only the
  template branch): the search branch and bias train too, from the SiamFC template's
  loss on every region's own pair (the baseline's loss, added to GradNet's), so the
  features under the tracker's 0.85 SiamFC map train as ``SiamFC +budget``'s do and
  GradNet's template is the difference.

* ``--target-view next`` (an extension, not the official code, which takes the gradient
  and the loss on the same search region): the pool holds triplets, an exemplar and two
  views of its target (two similarity transforms of a photograph, or two frames near
  the exemplar's); the update's gradient comes from the first view and the loss from
  the second, as tracking applies an update computed on one frame to the next ones.

Data (honest by construction): pairs from the package photographs and synthetic
sequences, never a benchmark sequence. ``--backbone mobilenet_v2`` caches the frozen
MobileNetV2 features of a fixed, seeded pool of augmented pairs (with their source ids)
in ``--pool-dir``; ``alexnet`` pools the crops and runs the whole network.

Optimiser (official): SGD momentum 0.9, weight decay 5e-4, learning rate log-linear from
1e-2 to 1e-5. The training loss is the official loss times the number of map cells
(the official mean over cells shrinks gradients by R^2 = 625 on our 25x25 maps). The
update subnet's BN trains with batch statistics; its running statistics are an EMA
(``--bn-momentum``). The batch is sharded over all visible devices (1-D Mesh);
checkpoints are atomic and a rerun with the same ``--out`` resumes exactly.

    python experiments/train_gradnet.py --out runs/gradnet_full --steps 1000 \
        --export jaxtrack/checkpoints/gradnet_mobilenet_v2.msgpack
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxtrack.data import pairs as pairlib
from jaxtrack.fileio import atomic_write_bytes, atomic_write_json
from jaxtrack.training import (log_record, pair_sources, restore_checkpoint, save_checkpoint,
                               siamfc_sgd)
from jaxtrack.trackers import gradnet, siamfc

VARIANTS = ("full", "no_mg", "two_u", "siamfc")
SEARCH_HEAD = ("search", "bias")     # what the SiamFC baseline trains (and --train-search adds)


# ------------------------------------------------------------------ data

def make_sources(args):
    """Pair sources, each with an id: photographs first, then synthetic sequences."""
    images, sequences, _ = pair_sources(args.images, args.synthetic, args.seed,
                                        appearance_change=args.appearance_change)
    return images, sequences


def draw_pair(rng, images, sequences, config):
    """(Pair, source id) from a random source (photograph or synthetic sequence)."""
    n = len(images) + len(sequences)
    src = int(rng.integers(n))
    raw = pairlib.image_pair(rng, images[src]) if src < len(images) else \
        pairlib.sequence_pair(rng, sequences[src - len(images)])
    return pairlib.siamfc_crop_pair(rng, config, *raw), src


def build_pool(args, config, params, sources):
    """The cached pool: z, x (backbone features for mobilenet_v2, crops for alexnet),
    target offsets and source ids, drawn from ``(pool_seed, i)``."""
    tag = f"siamfc{os.path.basename(args.siamfc_pool)[:-4]}" if args.siamfc_pool else f"seed{args.pool_seed}"

    def make():
        if not args.siamfc_pool:
            return draw_pool(config, params, args.pool, ("z", "x", "offsets", "sources"), "pool",
                             lambda i: _pair_record(np.random.default_rng([args.pool_seed, 1, i]),
                                                    sources, config))
        t0 = time.time()
        pool = pool_from_siamfc(args, config, sources, args.siamfc_pool)
        print(f"  pool: {args.pool} pairs of {args.siamfc_pool}, sources replayed "
              f"({time.time() - t0:.0f}s)", flush=True)
        return pool
    return cached_pool(pool_path(args, "pool", config, sources, tag), make)


def pool_path(args, kind: str, config, sources, tag: str) -> str:
    """Where a cached pool of ``kind`` lives: the name records what drew it."""
    app = f"_app{args.appearance_change:g}" if args.appearance_change else ""
    return os.path.join(args.pool_dir or args.out,
                        f"{kind}_{config.backbone}_{tag}{app}_n{args.pool}_src{sum(map(len, sources))}.npz")


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


def pool_from_siamfc(args, config, sources, path):
    """The first ``args.pool`` pairs of train_siamfc.py's cached pool (the very pairs the
    SiamFC baseline was trained on), with each pair's source id recovered by replaying its
    seeded draw; the replayed target offsets must equal the stored ones."""
    images, sequences = sources
    with np.load(path) as f:
        offsets = f["offsets"][:args.pool]
        z, x = f["z"][:args.pool], f["x"][:args.pool]
    seed = int(os.path.basename(path).split("seed")[1].split("_")[0])
    kinds = [k for k, have in (("image", images), ("sequence", sequences)) if have]
    src = np.zeros(args.pool, np.int32)
    chunk = 256                                # train_siamfc.build_pool's chunk
    for start in range(0, args.pool, chunk):
        rng = np.random.default_rng([seed, 1, start])
        for i in range(start, min(start + chunk, args.pool)):
            kind = kinds[int(rng.integers(len(kinds)))]
            if kind == "image":
                j = int(rng.integers(len(images)))
                raw, src[i] = pairlib.image_pair(rng, images[j]), j
            else:
                j = int(rng.integers(len(sequences)))
                raw, src[i] = pairlib.sequence_pair(rng, sequences[j]), len(images) + j
            pair = pairlib.siamfc_crop_pair(rng, config, *raw)
            if not np.allclose(pair.offset, offsets[i], atol=1e-4):
                raise ValueError(f"{path}: replaying pair {i} gave offset {pair.offset}, stored "
                                 f"{offsets[i]}: the sources differ from the pool's")
    return {"z": z, "x": x, "offsets": offsets, "sources": src}


def sample_groups(rng, sources, groups: int, k: int, generalization: bool):
    """Pool indices [G, K]: with generalization, column 0 is the template's own pair and
    the other K-1 come from pairs of K-1 other, mutually different sources; without it,
    G*K templates each with their own search region ([G*K, 1])."""
    n = len(sources)
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


def make_loss(config, variant, first_order=False):
    """Training loss. The update's gradient is taken on search regions ``x`` (labels,
    weights); the loss is taken on ``x_eval`` (default ``x``, as the official code;
    ``--target-view next``: a second view of the same targets).

    ``z_own`` [G, K, ...] (``--train-search``): every search region's own exemplar; the
    SiamFC template's loss on those pairs (what the ``siamfc`` baseline trains on) is
    added, and the search branch and bias, trainable then, learn from that loss alone:
    the features under the tracker's SiamFC map train as the baseline's do."""
    def loss_fn(trainable, frozen, z, x, labels, weights, x_eval=None, labels_eval=None,
                weights_eval=None, z_own=None):
        live = params = merge(variant, trainable, frozen)
        xf = xf_live = search_groups(config, live, x)
        if z_own is not None:
            # --train-search: the search branch and bias learn from the baseline's loss only.
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
            zf, _, stats = gradnet.gradient_update(config, params, h, xf, labels, weights,
                                                   train=True, first_order=first_order)
        s = gradnet.score_groups(config, params, zf, xe)
        cells = s.shape[-1] * s.shape[-2]
        loss = gradnet.weighted_logistic_loss(s, labels_eval, weights_eval) * cells
        if z_own is not None:                # --train-search: plus the SiamFC pairs' loss
            g, k = x.shape[:2]
            own = gradnet.siamfc_template(config, live, z_own.reshape((g * k,) + z_own.shape[2:]))
            x_own = xf_live.reshape((g * k, 1) + xf_live.shape[2:])
            s_own = gradnet.score_groups(config, live, own, x_own)
            loss = loss + gradnet.weighted_logistic_loss(
                s_own, labels.reshape(s_own.shape), weights.reshape(s_own.shape)) * cells
        return loss, stats
    return loss_fn


def start_params(args, config):
    sf_config = siamfc.SiamFCConfig(backbone=config.backbone)
    sf = siamfc.load_params(sf_config, weights=args.siamfc_weights, seed=args.seed,
                            allow_random=args.allow_random_siamfc)
    return gradnet.params_from_siamfc(config, sf, jax.random.PRNGKey(args.seed),
                                      update_gamma=args.update_gamma)


def variant_config(backbone, variant):
    return gradnet.GradNetConfig(backbone=backbone, use_gradient=variant != "no_mg",
                                 unshared_deep=variant == "two_u")


# ------------------------------------------------------------------ held-out probe

def draw_triplet(rng, images, sequences, config):
    """An exemplar and two search regions of the same target (two views of a photograph,
    or two frames near the exemplar's frame): (z, x1, offset1, x2, offset2, source id)."""
    n = len(images) + len(sequences)
    src = int(rng.integers(n))
    if src < len(images):
        image_z, box_z, image_1, box_1 = pairlib.image_pair(rng, images[src])
        image_2, box_2 = pairlib.image_pair(rng, images[src], box=box_z)[2:]
    else:
        seq = sequences[src - len(images)]
        valid = pairlib.valid_frames(seq.gt)
        i = int(rng.choice(valid))
        j, k = rng.choice(valid[np.abs(valid - i) <= 50], 2)
        image_z, box_z, image_1, box_1, image_2, box_2 = (
            seq.frame(i), seq.gt[i], seq.frame(j), seq.gt[j], seq.frame(k), seq.gt[k])
    p1 = pairlib.siamfc_crop_pair(rng, config, image_z, box_z, image_1, box_1)
    p2 = pairlib.siamfc_crop_pair(rng, config, image_z, box_z, image_2, box_2)
    return p1.z, p1.x, p1.offset, p2.x, p2.offset, src


def draw_triplet_pool(config, params, sources, n: int, seed: int):
    """``n`` triplets (:func:`draw_triplet`, seeds ``[seed, 4, i]``) with backbone features
    as the training pool's: z, x, offsets, x2, offsets2, sources."""
    return draw_pool(config, params, n, ("z", "x", "offsets", "x2", "offsets2", "sources"), "triplets",
                     lambda i: draw_triplet(np.random.default_rng([seed, 4, i]), *sources, config))


def cached_pool(path: str, make):
    """The pool at ``path`` (.npz), made by ``make()`` and written atomically if absent."""
    if os.path.exists(path):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    pool = make()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **pool)
    atomic_write_bytes(path, buf.getvalue())
    return pool


def heldout_pool(args, config, params, n: int, seed: int = 99):
    """``n`` triplets never trained on: the photographs re-drawn with seed ``seed`` and
    synthetic sequences of seed ``seed`` (disjoint from training's). Cached in the pool dir."""
    path = os.path.join(args.pool_dir or args.out, f"heldout_{config.backbone}_seed{seed}_n{n}.npz")
    sources = lambda: pair_sources(args.images, args.synthetic, seed)[:2]   # noqa: E731
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


# ------------------------------------------------------------------ main

def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="mobilenet_v2", choices=["mobilenet_v2", "alexnet"])
    ap.add_argument("--variant", default="full", choices=VARIANTS)
    ap.add_argument("--generalization", action=argparse.BooleanOptionalAction, default=True,
                    help="template generalization (M): K search regions from K sources")
    ap.add_argument("--out", required=True, help="run folder: checkpoint, log")
    ap.add_argument("--pool-dir", default=None, help="where the cached pool lives (default --out)")
    ap.add_argument("--images", default=os.path.expanduser("~/.cache/jaxtrack/train_images"))
    ap.add_argument("--synthetic", type=int, default=64)
    ap.add_argument("--appearance-change", type=float, default=0.0,
                    help="synthetic sequences whose target turns into a second texture by this "
                         "fraction (synthetic.make_sequence); 0: the usual sequences")
    ap.add_argument("--pool", type=int, default=2048)
    ap.add_argument("--pool-seed", type=int, default=1)
    ap.add_argument("--siamfc-pool", default=None,
                    help="reuse train_siamfc.py's cached pool .npz (mobilenet_v2; same seed/sources)")
    ap.add_argument("--target-view", default="same", choices=["same", "next"],
                    help="same: the loss on the regions the gradient was taken on (official); "
                         "next: on a second view/frame of the same targets (a triplet pool)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=8, help="templates per step (with generalization)")
    ap.add_argument("--k", type=int, default=4, help="search regions per template")
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--final-lr", type=float, default=1e-5)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--bn-momentum", type=float, default=0.95)
    ap.add_argument("--update-gamma", type=float, default=0.1, help="initial BN scale of the update subnet")
    ap.add_argument("--first-order", action="store_true", help="stop the second-order terms (comparison)")
    ap.add_argument("--train-search", action="store_true",
                    help="(an extension) also train the search branch and bias, adding the SiamFC "
                         "template's loss on every region's own pair (the baseline's loss), so the "
                         "features are trained as the SiamFC +budget baseline's are")
    ap.add_argument("--clip-template", type=float, default=None,
                    help="clip the global norm of the template branch's and update subnet's "
                         "gradient (with --train-search the features under them move, and the "
                         "x1e4 inner gradient can then blow the step up)")
    ap.add_argument("--siamfc-weights", default=None, help="trained SiamFC to start from")
    ap.add_argument("--allow-random-siamfc", action="store_true", help="(tests) start from a random SiamFC head")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--stop-after", type=int, default=None)
    ap.add_argument("--export", default=None)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if args.train_search and (args.variant == "siamfc" or args.target_view == "next"):
        raise SystemExit("--train-search is for the GradNet variants with --target-view same")
    os.makedirs(args.out, exist_ok=True)
    config = variant_config(args.backbone, args.variant)
    params = start_params(args, config)
    trainable, frozen = split_params(config, args.variant, params, args.train_search)
    generalization = args.generalization and args.variant != "siamfc"

    schedule, opt = siamfc_sgd(args.lr, args.final_lr, args.steps, args.weight_decay, args.momentum)
    if args.clip_template:       # the template branch and update subnet only, never the baseline's part
        mask = {k: k not in SEARCH_HEAD for k in trainable}
        opt = optax.chain(optax.masked(optax.clip_by_global_norm(args.clip_template), mask), opt)
    opt_state = opt.init(trainable)
    step0 = 0
    ckpt = os.path.join(args.out, "checkpoint.msgpack")
    stats0 = frozen["update_stats"]
    restored = restore_checkpoint(ckpt, {"trainable": trainable, "opt_state": opt_state,
                                         "stats": stats0, "step": 0})
    if restored is not None:
        trainable, opt_state, step0 = restored["trainable"], restored["opt_state"], int(restored["step"])
        frozen = {**frozen, "update_stats": restored["stats"]}

    mesh = Mesh(np.array(jax.devices()), ("data",))
    data_sharding = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    loss_fn = make_loss(config, args.variant, args.first_order)
    bn_m = args.bn_momentum

    @jax.jit
    def train_step(trainable, opt_state, frozen, z, x, labels, weights, first, eval_views, z_own):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            trainable, frozen, z, x, labels, weights, *eval_views, z_own=z_own)
        updates, opt_state = opt.update(grads, opt_state, trainable)
        old = frozen["update_stats"]
        # the running statistics start at the first batch's (no bias towards 0 / 1)
        new = jax.tree_util.tree_map(lambda a, b: jnp.where(first, b, bn_m * a + (1 - bn_m) * b),
                                     old, stats)
        return optax.apply_updates(trainable, updates), opt_state, {**frozen, "update_stats": new}, loss

    sources = make_sources(args)
    next_view = args.target_view == "next"
    if next_view:
        pool = cached_pool(pool_path(args, "triplets", config, sources, f"seed{args.pool_seed}"),
                           lambda: draw_triplet_pool(config, params, sources, args.pool, args.pool_seed))
    else:
        pool = build_pool(args, config, params, sources)
    response = response_size(config, params, pool)

    log_path = os.path.join(args.out, "log.jsonl")
    t0 = time.time()
    trainable, frozen = jax.device_put((trainable, frozen), replicated)
    last = args.steps if args.stop_after is None else min(args.steps, step0 + args.stop_after)
    for step in range(step0, last):
        rng = np.random.default_rng([args.seed, 2, step])
        t_idx, s_idx = sample_groups(rng, pool["sources"], args.groups, args.k, generalization)
        z = pool["z"][t_idx].astype(np.float32)
        x = pool["x"][s_idx].astype(np.float32)
        labels, weights = gradnet.make_labels(pool["offsets"][s_idx], response,
                                              config.total_stride, config.r_pos)
        batch = (z, x, labels, weights)
        if next_view:
            batch += (pool["x2"][s_idx].astype(np.float32),) + gradnet.make_labels(
                pool["offsets2"][s_idx], response, config.total_stride, config.r_pos)
        z_own = pool["z"][s_idx].astype(np.float32) if args.train_search else None
        batch, eval_views, z_own = jax.device_put((batch[:4], batch[4:], z_own), data_sharding)
        trainable, opt_state, frozen, loss = train_step(trainable, opt_state, frozen, *batch,
                                                        jnp.asarray(step == 0), eval_views, z_own)
        if (step + 1) % 25 == 0 or step == step0:
            rec = {"step": step + 1, "loss": float(loss), "lr": float(schedule(step)),
                   "elapsed_s": round(time.time() - t0, 1)}
            log_record(log_path, rec)
        if (step + 1) % args.ckpt_every == 0 or step + 1 == last:
            save_checkpoint(ckpt, {"trainable": trainable, "opt_state": opt_state,
                                   "stats": frozen["update_stats"], "step": step + 1})
    final = merge(args.variant, jax.device_get(trainable), jax.device_get(frozen))
    if args.export and last == args.steps:
        from jaxtrack import checkpoints
        if args.variant == "siamfc":
            out = {"adjust": final["search"]["adjust"], "bias": final["bias"]}
        else:
            out = gradnet.trained_part(config, final)
        checkpoints.save_variables(args.export, out)
        atomic_write_json(args.export + ".json", {
            "command": " ".join(["train_gradnet.py"] + (argv if argv is not None else sys.argv[1:])),
            "invoked_by": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
            "variant": args.variant, "generalization": generalization, "backbone": args.backbone,
            "target_view": args.target_view,
            "steps": args.steps, "groups": args.groups, "k": args.k, "seed": args.seed,
            "pool": args.pool, "pool_seed": args.pool_seed, "siamfc_pool": args.siamfc_pool, "images": args.images,
            "synthetic_sequences": args.synthetic, "appearance_change": args.appearance_change, "num_sources": int(sum(map(len, sources))),
            "siamfc_start": args.siamfc_weights or siamfc.default_checkpoint(args.backbone),
            "first_order": args.first_order, "train_search": args.train_search,
            "clip_template": args.clip_template, "train_seconds_this_run": round(time.time() - t0, 1),
            "devices": len(jax.devices()),
            "data": "package photographs (image pairs) + synthetic sequences; no benchmark data"})
        print(f"exported {args.export}")
    return final


if __name__ == "__main__":
    main()
