"""Train ATOM's IoU-Net (and the MobileNetV2 adapters) offline, as ATOM's ``ltr`` does.

Data (honest by construction): pairs made from single photographs shipped in
PyPI/Debian packages (``experiments/fetch_training_images.py``; ATOM uses COCO the same
way), frame pairs from synthetic sequences (``jaxtrack.data.synthetic``), optionally
frame pairs from the TFDS builder (``--tfds-dir``). No benchmark sequence is ever read.

Each pair gives ATOM's processing: a reference crop (5x the target, 288 px, centred on
the target) and a test crop centred on a jittered box (centre jitter 4.5, scale jitter
0.5, as ``ATOMProcessing``); 16 proposals per test box are Gaussian perturbations of it
with IoU >= 0.1 (standard deviation sqrt(w h) times a factor drawn from 0.01..0.3, as
pytracking's ``perturb_box``); the target is ``2 * IoU - 1`` and
the loss is MSE. Adam 1e-3 with step decay (x0.2 at 60 % and 85 % of the steps).

The ImageNet MobileNetV2 is frozen, so its features.6 / features.13 maps of a fixed,
seeded pool of pairs are computed once and cached in the run folder; proposals are
redrawn every step from ``(seed, step)``. A small pool overfits (held-out MSE about twice
the training loss), so ``--fresh`` instead draws new pairs every step (from ``(seed,
step)``, on a host thread while the device trains) and runs the backbone on them; on a
CPU this costs no more per step than the pool. Only the adapters and the IoU-Net train
(BatchNorm in training mode, running statistics kept). The batch is sharded over all
visible devices (1-D ``jax.sharding.Mesh``). Checkpoints (params, BN statistics, Adam
state, step) are written atomically and a rerun with the same ``--out`` resumes exactly.

    python experiments/train_iounet.py --out runs/iounet_mnv2 --steps 1500 \
        --export jaxtrack/checkpoints/atom_mobilenet_v2.msgpack

On a CPU the step is bound by the IoU-Net's full-map convolutions (about 1.9 GMAC per
pair), not by the per-proposal pooling: ``--proposals 64`` costs ~35 % more per step than
16 and gives four times the IoU targets per cached pair. A larger ``--pool`` of the same
seed extends a smaller one (``--pool-from``: its pairs are an exact prefix).
``--export-dtype float16`` halves the exported file (read back as float32).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxtrack import boxes as bx
from jaxtrack.data import pairs as pairlib
from jaxtrack.fileio import atomic_write_bytes, atomic_write_json
from jaxtrack.training import (load_objects, log_record, pair_sources, raw_pair, restore_checkpoint,
                               save_checkpoint)
from jaxtrack.models import iounet as iou_lib
from jaxtrack.trackers import atom

SAMPLE = 288
SEARCH_FACTOR = 5.0
CENTER_JITTER = 4.5
SCALE_JITTER = 0.5
SIGMA_FACTORS = (0.01, 0.05, 0.1, 0.2, 0.3)


# ------------------------------------------------------------------ data

def crop_around(rng, image, box, jitter: bool):
    """A 288 px crop of 5x the (jittered) target; returns (crop, box in crop xywh)."""
    box = np.asarray(box, np.float64)
    size, center = box[2:], box[:2] + box[2:] / 2
    if jitter:
        size = size * np.exp(rng.standard_normal(2) * SCALE_JITTER)
        center = center + np.sqrt(np.prod(size)) * CENTER_JITTER * (rng.uniform(size=2) - 0.5)
    side = np.sqrt(np.prod(size)) * SEARCH_FACTOR
    crop = pairlib._affine_crop(image, center, side, SAMPLE)
    s = SAMPLE / side
    b = np.concatenate([(box[:2] - (center - side / 2)) * s, box[2:] * s])
    return crop, b.astype(np.float32)


def draw_pair(rng, images, sequences, sampler, index, paste=False, objects=()):
    for _ in range(20):
        raw = raw_pair(rng, images, sequences, sampler, index, paste=paste, objects=objects)
        z, bz = crop_around(rng, raw[0], raw[1], jitter=False)
        x, bxx = crop_around(rng, raw[2], raw[3], jitter=True)
        # the test box must overlap its crop (ATOM drops such pairs too)
        inside = bx.iou(bxx.astype(np.float64), np.array([0, 0, SAMPLE, SAMPLE], np.float64))
        if inside > 0 and min(bxx[2:]) > 2:
            x = pairlib._photometric(rng, x, 0.2, 0.1)
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


def build_pool(args, config, backbone_vars, sources, out_dir, objects=()):
    tag = f"pool_seed{args.seed}{'_paste' if args.paste else ''}{'_obj' if objects else ''}_n"
    path = os.path.join(out_dir, f"{tag}{args.pool}.npz")
    if os.path.exists(path):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    fn = jax.jit(lambda im: atom.backbone_features(config, backbone_vars, im))
    t0 = time.time()
    parts = {k: [] for k in ("z3", "z4", "x3", "x4", "bz", "bx")}
    chunk = 32
    # chunk ``start`` is drawn from rng [seed, 1, start] only, so a smaller pool of the same
    # seed (here or in --pool-from) is an exact prefix of this one: reuse it
    prefix = 0
    for d in dict.fromkeys([out_dir] + list(args.pool_from or [])):
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if name.startswith(tag) and name.endswith(".npz"):
                n = int(name[len(tag):-4])
                if prefix < n < args.pool and n % chunk == 0:
                    with np.load(os.path.join(d, name)) as f:
                        parts = {k: [f[k]] for k in parts}
                    prefix = n
    if prefix:
        print(f"  pool: reusing the first {prefix} pairs", flush=True)
    for start in range(prefix, args.pool, chunk):
        n = min(chunk, args.pool - start)
        rng = np.random.default_rng([args.seed, 1, start])
        ps = [draw_pair(rng, *sources, index=start + i, paste=args.paste, objects=objects) for i in range(n)]
        z3, z4 = fn(jnp.asarray(np.stack([p[0] for p in ps]), jnp.float32))
        x3, x4 = fn(jnp.asarray(np.stack([p[2] for p in ps]), jnp.float32))
        for k, v in (("z3", z3), ("z4", z4), ("x3", x3), ("x4", x4)):
            parts[k].append(np.asarray(v, np.float16))
        parts["bz"].append(np.stack([p[1] for p in ps]))
        parts["bx"].append(np.stack([p[3] for p in ps]))
        if (start // chunk) % 8 == 0:
            print(f"  pool {start + n}/{args.pool} ({time.time() - t0:.0f}s)", flush=True)
    pool = {k: np.concatenate(v) for k, v in parts.items()}
    buf = io.BytesIO()
    np.savez(buf, **pool)
    atomic_write_bytes(path, buf.getvalue())
    return pool


def fresh_batch(sources, seed, step, batch, paste=False, objects=(), proposals=16):
    """One batch of pairs drawn new for this step (rng ``[seed, 3, step]``, so a resumed
    run sees the same stream): crops and proposals; the backbone runs on the device."""
    rng = np.random.default_rng([seed, 3, step])
    ps = [draw_pair(rng, *sources, index=step * batch + i, paste=paste, objects=objects)
          for i in range(batch)]
    return (np.stack([p[0] for p in ps]), np.stack([p[1] for p in ps]), np.stack([p[2] for p in ps]),
            *proposal_targets(rng, [p[3] for p in ps], proposals))


def make_batch(pool, seed, step, batch, stream=2, proposals=16):
    """One batch; the cached features stay float16 (half the host-to-device bytes) and
    are widened to float32 inside the jitted step."""
    rng = np.random.default_rng([seed, stream, step])
    idx = rng.integers(0, len(pool["bz"]), batch)
    return (pool["z3"][idx], pool["z4"][idx], pool["bz"][idx], pool["x3"][idx], pool["x4"][idx],
            *proposal_targets(rng, pool["bx"][idx], proposals))


# ------------------------------------------------------------------ model / loss

def loss_fn(trainable, stats, z3, z4, bz, x3, x4, props, target):
    a = trainable["adapter"]
    z3, z4, x3, x4 = (v.astype(jnp.float32) for v in (z3, z4, x3, x4))
    z3, z4 = iou_lib.adapt(a, (z3, z4))
    x3, x4 = iou_lib.adapt(a, (x3, x4))
    variables = {"params": trainable["iounet"], "batch_stats": stats}
    pred, upd = iou_lib.AtomIoUNet().apply(variables, z3, z4, bz, x3, x4, props, train=True,
                                           mutable=["batch_stats"])
    return jnp.mean((pred - target) ** 2), upd["batch_stats"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--images", default=os.path.expanduser("~/.cache/jaxtrack/train_images"))
    ap.add_argument("--synthetic", type=int, default=48, help="number of synthetic sequences")
    ap.add_argument("--tfds-dir", default=None)
    ap.add_argument("--max-gap", type=int, default=50)
    ap.add_argument("--pool", type=int, default=1536, help="cached pairs (frozen backbone features)")
    ap.add_argument("--fresh", action="store_true",
                    help="draw new pairs every step (backbone on the device) instead of a cached pool")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--stop-after", type=int, default=None)
    ap.add_argument("--time-limit", type=float, default=None,
                    help="stop (checkpointed, resumable) after this many seconds of training")
    ap.add_argument("--proposals", type=int, default=16, help="jittered proposals per pair")
    ap.add_argument("--pool-from", nargs="*", default=None,
                    help="other run folders whose smaller pool (same seed) is reused as a prefix")
    ap.add_argument("--paste", action="store_true",
                    help="add copy-paste pairs from the photographs (shapes cut from one pasted on another)")
    ap.add_argument("--objects", nargs="+", default=None, metavar="DIR",
                    help="with --paste: folders of RGBA object cut-outs to paste too "
                         "(fetch_training_images.py --objects-out)")
    ap.add_argument("--init-from", default=None,
                    help="start from an exported IoU-Net checkpoint (adapters, weights, BN statistics)")
    ap.add_argument("--export", default=None)
    ap.add_argument("--export-dtype", default="float32", choices=["float32", "float16"],
                    help="float16 halves the exported file; the tracker reads it back as float32")
    args = ap.parse_args(argv)
    if args.objects and not args.paste:
        raise SystemExit("--objects needs --paste (the cut-outs are only used for copy-paste pairs)")
    os.makedirs(args.out, exist_ok=True)

    config = atom.ATOMConfig(backbone="mobilenet_v2")
    from jaxtrack import checkpoints
    from jaxtrack.models import pretrained
    backbone = pretrained.mobilenet_v2_variables()
    head = atom.init_head(config, jax.random.PRNGKey(args.seed))
    if args.init_from:
        head = checkpoints.load_variables(args.init_from, {"adapter": head["adapter"], "iounet": head["iounet"]})
    trainable = {"adapter": head["adapter"], "iounet": head["iounet"]["params"]}
    stats = head["iounet"]["batch_stats"]
    n_dec = [int(args.steps * 0.6), int(args.steps * 0.85)]
    schedule = optax.piecewise_constant_schedule(args.lr, {n_dec[0]: 0.2, n_dec[1]: 0.2})
    opt = optax.adam(schedule)
    opt_state = opt.init(trainable)
    step0 = 0
    ckpt = os.path.join(args.out, "checkpoint.msgpack")
    r = restore_checkpoint(ckpt, {"trainable": trainable, "stats": stats, "opt_state": opt_state, "step": 0})
    if r is not None:
        trainable, stats, opt_state, step0 = r["trainable"], r["stats"], r["opt_state"], int(r["step"])

    images, sequences, sampler = pair_sources(args.images, args.synthetic, args.seed,
                                              args.tfds_dir, args.max_gap)
    t_pool = time.time()
    objects = []
    for folder in args.objects or []:          # --objects without --paste was refused above
        found = load_objects(folder)
        if not found:
            raise SystemExit(f"--objects {folder}: no RGBA PNG cut-outs there")
        objects += found
    sources = (images, sequences, sampler)
    if not args.fresh:
        pool = build_pool(args, config, backbone, sources, args.out, objects)
        print(f"pool ready: {len(pool['bz'])} pairs ({time.time() - t_pool:.0f}s)", flush=True)

    mesh = Mesh(np.array(jax.devices()), ("data",))
    data_sh, repl = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())

    @jax.jit
    def train_step(trainable, stats, opt_state, batch):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable, stats, *batch)
        updates, opt_state = opt.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), stats, opt_state, loss

    @jax.jit
    def features(backbone, z, bz, x, props, target):
        # frozen backbone: the fresh crops become the cached pool's (z3, z4, bz, x3, x4, ...)
        z3, z4 = atom.backbone_features(config, backbone, z.astype(jnp.float32))
        x3, x4 = atom.backbone_features(config, backbone, x.astype(jnp.float32))
        return z3, z4, bz, x3, x4, props, target

    def next_batch(step):
        if args.fresh:
            return fresh_batch(sources, args.seed, step, args.batch, args.paste, objects, args.proposals)
        return make_batch(pool, args.seed, step, args.batch, proposals=args.proposals)

    trainable, stats, opt_state = jax.device_put((trainable, stats, opt_state), repl)
    backbone = jax.device_put(backbone, repl)
    log_path = os.path.join(args.out, "log.jsonl")
    t0 = time.time()
    last = args.steps if args.stop_after is None else min(args.steps, step0 + args.stop_after)
    # the next batch is drawn on a host thread while the device trains on this one
    prefetch = ThreadPoolExecutor(1)
    pending = prefetch.submit(next_batch, step0) if step0 < last else None
    step, losses = step0, []
    while step < last:
        batch = jax.device_put(pending.result(), data_sh)
        if step + 1 < last:
            pending = prefetch.submit(next_batch, step + 1)
        if args.fresh:
            batch = features(backbone, *batch)
        trainable, stats, opt_state, loss = train_step(trainable, stats, opt_state, batch)
        losses.append(float(loss))
        step += 1
        if step % 25 == 0 or step == step0 + 1:
            rec = {"step": step, "loss": float(np.mean(losses[-25:])), "lr": float(schedule(step - 1)),
                   "elapsed_s": round(time.time() - t0, 1)}
            log_record(log_path, rec)
        timed_out = args.time_limit is not None and time.time() - t0 > args.time_limit
        if step % args.ckpt_every == 0 or step == last or timed_out:
            save_checkpoint(ckpt, {"trainable": trainable, "stats": stats, "opt_state": opt_state,
                                   "step": step})
        if timed_out:
            print(f"time limit reached at step {step}; rerun with the same --out to resume")
            break
    prefetch.shutdown(wait=False, cancel_futures=True)
    trainable, stats = jax.device_get((trainable, stats))
    if args.export:
        head = {"adapter": trainable["adapter"], "iounet": {"params": trainable["iounet"], "batch_stats": stats}}
        if args.export_dtype == "float16":
            head = jax.tree_util.tree_map(lambda v: np.asarray(v, np.float16), head)
        checkpoints.save_variables(args.export, head)
        atomic_write_json(args.export + ".json", {
            "command": " ".join(["experiments/train_iounet.py"] + sys.argv[1:]),
            "steps_done": step, "steps_planned": args.steps, "batch": args.batch, "seed": args.seed,
            "proposals_per_pair": args.proposals, "dtype": args.export_dtype,
            "pool_pairs": None if args.fresh else args.pool, "fresh_pairs": args.fresh,
            "paste_pairs": args.paste, "init_from": args.init_from,
            "objects": args.objects, "num_objects": len(objects),
            "images": args.images, "num_images": len(images),
            "synthetic_sequences": args.synthetic, "tfds_dir": args.tfds_dir,
            "final_loss_last25": float(np.mean(losses[-25:])) if losses else None,
            "train_seconds_this_run": round(time.time() - t0, 1), "devices": len(jax.devices()),
            "device": str(jax.devices()[0])})
        print(f"exported {args.export}")
    return trainable, stats


if __name__ == "__main__":
    main()
