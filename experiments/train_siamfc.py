"""Train SiamFC offline (balanced logistic loss on exemplar/search pairs) on pairs from the
package photographs and synthetic sequences (optionally TFDS-packed frames), never a
benchmark sequence. mobilenet_v2 trains its head on a cached pool of frozen backbone
features; alexnet trains end to end. Design notes: docs/training.md.

    python experiments/train_siamfc.py --out runs/siamfc_mnv2 --steps 3000 \
        --export jaxtrack/checkpoints/siamfc_mobilenet_v2.msgpack
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import optax

from jaxtrack import checkpoints, cli
from jaxtrack.data.sources import PAIR_KINDS, PairMix, load_objects, load_video_tracks, pair_sources
from jaxtrack.train import common, siamfc
from jaxtrack.train.siamfc import HEADS
from jaxtrack.trackers.siamfc import SiamFCConfig


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="mobilenet_v2", choices=["mobilenet_v2", "alexnet"])
    ap.add_argument("--out", required=True, help="run folder: checkpoints, log, cached pool")
    common.add_data_args(ap, synthetic=64)
    ap.add_argument("--tfds-dir", default=None, help="array_record data packed by the TFDS builder")
    ap.add_argument("--max-gap", type=int, default=50)
    ap.add_argument("--paste", action="store_true",
                    help="add copy-paste pairs: shapes cut from the photographs (and --objects) pasted on them")
    ap.add_argument("--objects", default=None, metavar="DIR", help="RGBA cut-outs for --paste (training split)")
    ap.add_argument("--videos", default=None, metavar="DIR",
                    help="add pairs from pseudo-labelled tracks of the real videos in DIR (training part of "
                         "their time split; fetch_training_images.py --videos-out)")
    ap.add_argument("--pair-kinds", nargs="+", default=None, choices=PAIR_KINDS,
                    help="draw only these kinds of pair (e.g. 'object' to train on cut-outs alone)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--pool", type=int, default=4096, help="mobilenet_v2: cached augmented pairs")
    ap.add_argument("--head-init", default="default", choices=("default",) + HEADS,
                    help="mobilenet_v2: start the head at an untrained projection (make_siamfc_heads.py's), "
                         "fitted on the pool; default: small random")
    ap.add_argument("--decay-to-init", action="store_true",
                    help="weight decay pulls the head towards its start instead of towards zero")
    common.add_sgd_args(ap)
    common.add_run_args(ap, ckpt_every=200)
    common.add_validation_args(ap, val_every=500)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if args.objects and not args.paste:
        raise SystemExit("--objects needs --paste (the cut-outs are only used for copy-paste pairs)")
    os.makedirs(args.out, exist_ok=True)
    config = SiamFCConfig(backbone=args.backbone)
    params = siamfc.init_params(config, args.seed)
    sources = PairMix(*pair_sources(args.images, args.synthetic, args.seed, args.tfds_dir, args.max_gap),
                      objects=tuple(load_objects(args.objects, split="train")), paste=args.paste,
                      kinds=tuple(args.pair_kinds) if args.pair_kinds else None,
                      videos=tuple(load_video_tracks(args.videos, "train")))
    pool = siamfc.build_pool(args.out, config, params, sources, args.pool, args.seed) \
        if args.backbone == "mobilenet_v2" else None
    if args.head_init != "default":           # an untrained projection, fitted on the pool's features
        params = {**params, "head": siamfc.pool_head(config, args.head_init, pool, args.seed)}
    trainable, frozen = siamfc.split_params(config, params)

    schedule, opt = common.siamfc_sgd(args.lr, args.final_lr, args.steps, args.weight_decay, args.momentum,
                                      anchor=trainable if args.decay_to_init else None)
    opt_state = opt.init(trainable)
    step0 = 0
    ckpt = os.path.join(args.out, "checkpoint.msgpack")
    restored = common.restore_checkpoint(ckpt, {"trainable": trainable, "opt_state": opt_state, "step": 0})
    if restored is not None:
        trainable, opt_state, step0 = restored["trainable"], restored["opt_state"], int(restored["step"])

    devices = common.data_parallel()
    loss_fn = siamfc.make_loss(config)

    @jax.jit
    def train_step(trainable, opt_state, frozen, z, x, labels):
        (loss, frozen), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable, frozen, z, x, labels)
        updates, opt_state = opt.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), opt_state, frozen, loss

    response = siamfc.response_size(config, pool)

    log_path = os.path.join(args.out, "log.jsonl")
    t0 = time.time()
    trainable, frozen = jax.device_put((trainable, frozen), devices.replicated)
    last = args.steps if args.stop_after is None else min(args.steps, step0 + args.stop_after)

    def validate(done: int):
        """Model selection on the validation set (docs/validation.md), every --val-every steps."""
        root = common.validation_due(args, done, log_path)
        if root:
            common.save_checkpoint(ckpt, {"trainable": trainable, "opt_state": opt_state, "step": done})
            host = jax.device_get((trainable, frozen))
            common.validate_step(args, root, args.out, done, "siamfc", siamfc.tracker_params(config, *host),
                                 siamfc.export_variables(config, *host), log_path, backbone=config.backbone)

    validate(step0)                         # the start (step 0), or what a resumed run missed
    for step in range(step0, last):
        batch = siamfc.train_batch(config, args.seed, step, args.batch, response, pool, sources)
        z, x, labels = jax.device_put(batch, devices.data)
        trainable, opt_state, frozen, loss = train_step(trainable, opt_state, frozen, z, x, labels)
        if (step + 1) % 50 == 0 or step == step0:
            common.log_record(log_path, {"step": step + 1, "loss": float(loss), "lr": float(schedule(step)),
                                         "elapsed_s": round(time.time() - t0, 1)})
        if (step + 1) % args.ckpt_every == 0 or step + 1 == last:
            common.save_checkpoint(ckpt, {"trainable": trainable, "opt_state": opt_state, "step": step + 1})
        validate(step + 1)

    final = jax.device_get(trainable)
    if args.export:
        exported, selected = common.exported_choice(
            args, args.out, siamfc.export_variables(config, final, jax.device_get(frozen)))
        checkpoints.save_variables(args.export, exported)
        common.write_provenance(args.export, {
            "command": common.command_line("experiments/train_siamfc.py", argv), **selected,
            "schedule_steps": args.steps, "steps_done": int(last) if step0 < last else step0,
            "batch": args.batch, "seed": args.seed, "pool": args.pool,
            "head_init": args.head_init, "decay_to_init": args.decay_to_init,
            "images": args.images, "synthetic_sequences": args.synthetic, "paste": args.paste,
            "objects": args.objects, "num_objects": len(sources.objects), "pair_kinds": args.pair_kinds,
            "videos": args.videos, "video_tracks": len(sources.videos),
            "train_seconds_this_run": round(time.time() - t0, 1), "devices": len(jax.devices())})
        print(f"exported {args.export}")
    return final


if __name__ == "__main__":
    cli.run(main)
