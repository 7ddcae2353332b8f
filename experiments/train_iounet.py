"""Train ATOM's IoU-Net (and the MobileNetV2 adapters) offline, as ATOM's ``ltr`` does, on
pairs from the package photographs (optionally copy-paste pairs and object cut-outs),
synthetic sequences and optionally TFDS-packed frames, never a benchmark sequence; on a
cached pool of frozen backbone features, or on pairs drawn fresh every step (``--fresh``).
Design notes: docs/training.md.

    python experiments/train_iounet.py --out runs/iounet_mnv2 --steps 1500 \
        --export jaxtrack/checkpoints/atom_mobilenet_v2.msgpack
"""
from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np
import optax

from jaxtrack import checkpoints, cli
from jaxtrack.data.sources import load_objects, pair_sources
from jaxtrack.models import pretrained
from jaxtrack.train import common, iounet
from jaxtrack.trackers.atom import ATOMConfig


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="run folder: checkpoint, log, cached pool")
    common.add_data_args(ap, synthetic=48)
    ap.add_argument("--tfds-dir", default=None, help="array_record data packed by the TFDS builder")
    ap.add_argument("--max-gap", type=int, default=50)
    ap.add_argument("--pool", type=int, default=1536, help="cached pairs (frozen backbone features)")
    ap.add_argument("--fresh", action="store_true",
                    help="draw new pairs every step (backbone on the device) instead of a cached pool")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    common.add_run_args(ap, ckpt_every=100)
    common.add_validation_args(ap, val_every=500)
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
    ap.add_argument("--export-dtype", default="float32", choices=["float32", "float16"],
                    help="float16 halves the exported file; the tracker reads it back as float32")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if args.objects and not args.paste:
        raise SystemExit("--objects needs --paste (the cut-outs are only used for copy-paste pairs)")
    os.makedirs(args.out, exist_ok=True)

    config = ATOMConfig(backbone="mobilenet_v2")
    backbone = pretrained.mobilenet_v2_variables()
    trainable, stats = iounet.start_params(config, args.seed, args.init_from)
    schedule, opt = iounet.optimizer(args.lr, args.steps)
    opt_state = opt.init(trainable)
    step0 = 0
    ckpt = os.path.join(args.out, "checkpoint.msgpack")
    r = common.restore_checkpoint(ckpt, {"trainable": trainable, "stats": stats, "opt_state": opt_state,
                                         "step": 0})
    if r is not None:
        trainable, stats, opt_state, step0 = r["trainable"], r["stats"], r["opt_state"], int(r["step"])

    images, sequences, sampler = pair_sources(args.images, args.synthetic, args.seed,
                                              args.tfds_dir, args.max_gap)
    t_pool = time.time()
    objects = []
    for folder in args.objects or []:          # --objects without --paste was refused above
        found = load_objects(folder, split="train")
        if not found:
            raise SystemExit(f"--objects {folder}: no RGBA PNG cut-outs there")
        objects += found
    sources = (images, sequences, sampler)
    if not args.fresh:
        pool = iounet.build_pool(args.out, config, backbone, sources, args.pool, args.seed, args.paste,
                                 objects, args.pool_from)
        print(f"pool ready: {len(pool['bz'])} pairs ({time.time() - t_pool:.0f}s)", flush=True)

    devices = common.data_parallel()

    @jax.jit
    def train_step(trainable, stats, opt_state, batch):
        (loss, stats), grads = jax.value_and_grad(iounet.loss_fn, has_aux=True)(trainable, stats, *batch)
        updates, opt_state = opt.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), stats, opt_state, loss

    features = jax.jit(lambda backbone, *batch: iounet.fresh_features(config, backbone, *batch))

    def next_batch(step):
        if args.fresh:
            return iounet.fresh_batch(sources, args.seed, step, args.batch, args.paste, objects, args.proposals)
        return iounet.make_batch(pool, args.seed, step, args.batch, proposals=args.proposals)

    trainable, stats, opt_state = jax.device_put((trainable, stats, opt_state), devices.replicated)
    backbone = jax.device_put(backbone, devices.replicated)
    log_path = os.path.join(args.out, "log.jsonl")
    t0 = time.time()
    last = args.steps if args.stop_after is None else min(args.steps, step0 + args.stop_after)
    # the next batch is drawn on a host thread while the device trains on this one
    prefetch = ThreadPoolExecutor(1)
    pending = prefetch.submit(next_batch, step0) if step0 < last else None
    step, losses = step0, []

    def validate(done: int):
        """Model selection on the validation set (docs/validation.md): ATOM with these weights."""
        root = common.validation_due(args, done, log_path)
        if root:
            common.save_checkpoint(ckpt, {"trainable": trainable, "stats": stats, "opt_state": opt_state,
                                          "step": done})
            head = iounet.export_variables(*jax.device_get((trainable, stats)))
            common.validate_step(args, root, args.out, done, "atom", {"backbone": backbone, **head},
                                 head, log_path, backbone=config.backbone)

    validate(step0)                         # the start (step 0), or what a resumed run missed
    while step < last:
        batch = jax.device_put(pending.result(), devices.data)
        if step + 1 < last:
            pending = prefetch.submit(next_batch, step + 1)
        if args.fresh:
            batch = features(backbone, *batch)
        trainable, stats, opt_state, loss = train_step(trainable, stats, opt_state, batch)
        losses.append(float(loss))
        step += 1
        if step % 25 == 0 or step == step0 + 1:
            common.log_record(log_path, {"step": step, "loss": float(np.mean(losses[-25:])),
                                         "lr": float(schedule(step - 1)), "elapsed_s": round(time.time() - t0, 1)})
        timed_out = args.time_limit is not None and time.time() - t0 > args.time_limit
        if step % args.ckpt_every == 0 or step == last or timed_out:
            common.save_checkpoint(ckpt, {"trainable": trainable, "stats": stats, "opt_state": opt_state,
                                          "step": step})
        if timed_out:
            print(f"time limit reached at step {step}; rerun with the same --out to resume")
            break
        validate(step)
    prefetch.shutdown(wait=False, cancel_futures=True)

    trainable, stats = jax.device_get((trainable, stats))
    if args.export:
        exported, selected = common.exported_choice(args, args.out, iounet.export_variables(trainable, stats))
        checkpoints.save_variables(args.export, iounet.stored_dtype(exported, args.export_dtype))
        common.write_provenance(args.export, {
            "command": common.command_line("experiments/train_iounet.py", argv), **selected,
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
    cli.run(main)
