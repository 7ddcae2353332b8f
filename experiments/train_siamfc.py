"""Train SiamFC offline with optax: balanced logistic loss on exemplar/search pairs.

Data (honest by construction, see DEVELOPERS.md): pairs made from single photographs
that ship in PyPI/Debian packages (``experiments/fetch_training_images.py``) and pairs
from synthetic sequences (``jaxtrack.data.synthetic``), optionally frames packed with the
TFDS builder (``--tfds-dir``). No benchmark sequence is ever read.

* ``--backbone mobilenet_v2`` (default): the ImageNet backbone is frozen, so backbone
  features of a fixed, seeded pool of augmented pairs are computed once (and cached in
  the run folder); then only the adjust layer and score bias train, fast, on CPU.
* ``--backbone alexnet``: the whole SiamFC AlexNet trains end to end on fresh pairs.

The optimiser follows siamfc-pytorch: SGD momentum 0.9, weight decay 5e-4, learning rate
decaying log-linearly from ``--lr`` to ``--final-lr``. The batch is sharded over all
visible devices (a 1-D ``jax.sharding.Mesh``; XLA averages the gradients). Checkpoints
(params, optimiser state, step) are written atomically every ``--ckpt-every`` steps and a
rerun with the same ``--out`` resumes exactly (batches are drawn from ``(seed, step)``).

    python experiments/train_siamfc.py --out runs/siamfc_mnv2 --steps 3000 \
        --export jaxtrack/checkpoints/siamfc_mobilenet_v2.msgpack
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxtrack import ops
from jaxtrack.data import pairs as pairlib
from jaxtrack.fileio import atomic_write_bytes, atomic_write_json
from jaxtrack.training import (log_record, pair_sources, raw_pair, restore_checkpoint,
                               save_checkpoint, siamfc_sgd)
from jaxtrack.trackers import siamfc


# ------------------------------------------------------------------ data

def make_sources(args):
    """The pair sources: photographs and sequences (synthetic, or TFDS-packed)."""
    return pair_sources(args.images, args.synthetic, args.seed, args.tfds_dir, args.max_gap)


def draw_pair(rng, config, images, sequences, sampler, index):
    """One augmented training pair from a randomly chosen source."""
    return pairlib.siamfc_crop_pair(rng, config, *raw_pair(rng, images, sequences, sampler, index))


def labels_for(offsets, response_size, config, r_pos=16.0):
    """Logistic labels centred where each target really is (offset / stride cells)."""
    r = response_size
    grid = np.arange(r) - (r - 1) / 2
    dx = grid[None, None, :] - offsets[:, 0, None, None] / config.total_stride
    dy = grid[None, :, None] - offsets[:, 1, None, None] / config.total_stride
    dist = np.abs(dx) + np.abs(dy)
    return (dist <= r_pos / config.total_stride).astype(np.float32)


def make_batch(seed, step, batch, config, sources, stream=0):
    """``batch`` pairs drawn from ``(seed, stream, step)``: training (0) and the pool (1)
    have separate streams, so resuming redraws exactly the same batches."""
    rng = np.random.default_rng([seed, stream, step])
    ps = [draw_pair(rng, config, *sources, index=step * batch + i) for i in range(batch)]
    return (np.stack([p.z for p in ps]), np.stack([p.x for p in ps]),
            np.stack([p.offset for p in ps]))


# ------------------------------------------------------------------ model / loss

def make_loss(config):
    def loss_fn(trainable, frozen, z, x, labels):
        params = {**frozen, **trainable}
        if config.backbone == "mobilenet_v2":
            # z, x are cached frozen-backbone features: only the head runs here
            adj = params["head"]["adjust"]
            fz = jnp.einsum("bhwc,cd->bhwd", z, adj["kernel"]) + adj["bias"]
            fx = jnp.einsum("bhwc,cd->bhwd", x, adj["kernel"]) + adj["bias"]
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


def split_params(config, params):
    """(trainable, frozen): the frozen MobileNetV2 backbone is never updated."""
    if config.backbone == "mobilenet_v2":
        return {"head": params["head"]}, {"backbone": params["backbone"]}
    return {"head": params["head"], "backbone": {"params": params["backbone"]["params"]}}, \
           {"backbone_stats": params["backbone"].get("batch_stats", {})}


# ------------------------------------------------------------------ feature pool (frozen backbone)

def backbone_features(config, params, images, batch=32):
    module = siamfc.backbone_module(config)
    fn = jax.jit(lambda im: module.apply(params["backbone"], im))
    out = [np.asarray(fn(jnp.asarray(images[i:i + batch], jnp.float32)), np.float16)
           for i in range(0, len(images), batch)]
    return np.concatenate(out)


def build_pool(args, config, params, sources, out_dir):
    path = os.path.join(out_dir, f"pool_seed{args.seed}_n{args.pool}.npz")
    if os.path.exists(path):
        with np.load(path) as f:
            return f["z"], f["x"], f["offsets"]
    t0 = time.time()
    zs, xs, offs = [], [], []
    chunk = 256
    for start in range(0, args.pool, chunk):
        n = min(chunk, args.pool - start)
        z, x, o = make_batch(args.seed, start, n, config, sources, stream=1)
        zs.append(backbone_features(config, params, z))
        xs.append(backbone_features(config, params, x))
        offs.append(o)
        print(f"  pool {start + n}/{args.pool} ({time.time() - t0:.0f}s)", flush=True)
    z, x, o = np.concatenate(zs), np.concatenate(xs), np.concatenate(offs)
    import io
    buf = io.BytesIO()
    np.savez(buf, z=z, x=x, offsets=o)
    atomic_write_bytes(path, buf.getvalue())
    return z, x, o


# ------------------------------------------------------------------ main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="mobilenet_v2", choices=["mobilenet_v2", "alexnet"])
    ap.add_argument("--out", required=True, help="run folder: checkpoints, log, cached pool")
    ap.add_argument("--images", default=os.path.expanduser("~/.cache/jaxtrack/train_images"))
    ap.add_argument("--synthetic", type=int, default=64, help="number of synthetic sequences")
    ap.add_argument("--tfds-dir", default=None, help="array_record data packed by the TFDS builder")
    ap.add_argument("--max-gap", type=int, default=50)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--pool", type=int, default=4096, help="mobilenet_v2: cached augmented pairs")
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--final-lr", type=float, default=1e-5)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--stop-after", type=int, default=None,
                    help="end this run after N steps, as an interruption would (tests resuming)")
    ap.add_argument("--export", default=None, help="write the trained params here when done")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    config = siamfc.SiamFCConfig(backbone=args.backbone)
    params = siamfc.load_params(config, weights="", seed=args.seed, allow_random=True) \
        if args.backbone == "alexnet" else siamfc.load_params(config, seed=args.seed, allow_random=True)
    if args.backbone == "mobilenet_v2":
        params = {"backbone": params["backbone"],
                  "head": siamfc.init_head(config, jax.random.PRNGKey(args.seed))}
    trainable, frozen = split_params(config, params)

    schedule, opt = siamfc_sgd(args.lr, args.final_lr, args.steps, args.weight_decay, args.momentum)
    opt_state = opt.init(trainable)
    step0 = 0
    ckpt = os.path.join(args.out, "checkpoint.msgpack")
    restored = restore_checkpoint(ckpt, {"trainable": trainable, "opt_state": opt_state, "step": 0})
    if restored is not None:
        trainable, opt_state, step0 = restored["trainable"], restored["opt_state"], int(restored["step"])

    mesh = Mesh(np.array(jax.devices()), ("data",))
    data_sharding = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    loss_fn = make_loss(config)

    @jax.jit
    def train_step(trainable, opt_state, frozen, z, x, labels):
        (loss, frozen), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable, frozen, z, x, labels)
        updates, opt_state = opt.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), opt_state, frozen, loss

    sources = make_sources(args)
    pool = build_pool(args, config, params, sources, args.out) if args.backbone == "mobilenet_v2" else None
    response = None
    log_path = os.path.join(args.out, "log.jsonl")
    t0 = time.time()
    trainable, frozen = jax.device_put((trainable, frozen), replicated)
    last = args.steps if args.stop_after is None else min(args.steps, step0 + args.stop_after)
    for step in range(step0, last):
        if pool is not None:
            idx = np.random.default_rng([args.seed, 2, step]).integers(0, len(pool[0]), args.batch)
            z, x, offsets = pool[0][idx].astype(np.float32), pool[1][idx].astype(np.float32), pool[2][idx]
        else:
            z, x, offsets = make_batch(args.seed, step, args.batch, config, sources)
            z, x = z.astype(np.float32), x.astype(np.float32)
        if response is None:
            zf = siamfc.template_features(config, jnp.zeros((1,) + z.shape[1:])) \
                if pool is not None else None
            response = _response_size(config, z, x, zf)
        labels = labels_for(offsets, response, config)
        z, x, labels = jax.device_put((z, x, labels), data_sharding)
        trainable, opt_state, frozen, loss = train_step(trainable, opt_state, frozen, z, x, labels)
        if (step + 1) % 50 == 0 or step == step0:
            rec = {"step": step + 1, "loss": float(loss), "lr": float(schedule(step)),
                   "elapsed_s": round(time.time() - t0, 1)}
            log_record(log_path, rec)
        if (step + 1) % args.ckpt_every == 0 or step + 1 == last:
            save_checkpoint(ckpt, {"trainable": trainable, "opt_state": opt_state, "step": step + 1})
    final = jax.device_get(trainable)
    if args.export:
        from jaxtrack import checkpoints
        out = final["head"] if args.backbone == "mobilenet_v2" else \
            {"backbone": {"params": final["backbone"]["params"],
                          "batch_stats": jax.device_get(frozen)["backbone_stats"]},
             "head": final["head"]}
        checkpoints.save_variables(args.export, out)
        atomic_write_json(args.export + ".json", {
            "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
            "schedule_steps": args.steps, "steps_done": int(last) if step0 < last else step0,
            "batch": args.batch, "seed": args.seed, "pool": args.pool,
            "images": args.images, "synthetic_sequences": args.synthetic,
            "train_seconds_this_run": round(time.time() - t0, 1), "devices": len(jax.devices())})
        print(f"exported {args.export}")
    return final


def _response_size(config, z, x, zf):
    if zf is not None:                        # cached features: template crop vs search map
        return x.shape[1] - zf.shape[1] + 1
    return (x.shape[1] - z.shape[1]) // config.total_stride + 1


if __name__ == "__main__":
    main()
