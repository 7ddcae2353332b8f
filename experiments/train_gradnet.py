"""Train GradNet offline: the loss of the gradient-updated template, differentiated
through the inner ``jax.grad``, with template generalization, on a cached pool of pairs
from the package photographs and synthetic sequences (never a benchmark sequence).
``--recipe official`` (the default) is GradNet-Tensorflow's train.py: the search branch
from the trained SiamFC, the template branch and update subnet from random weights,
template 0 of a batch of 8 against all 8 search regions, no weight decay on biases;
``--recipe project`` is the project's reading (:data:`jaxtrack.train.gradnet.RECIPES`).
``--variant siamfc`` trains the SiamFC baseline on the same pairs and steps.
Design notes: docs/training.md.

    python experiments/train_gradnet.py --out runs/gradnet_full --steps 1000 \
        --export jaxtrack/checkpoints/gradnet_mobilenet_v2.msgpack
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import optax

from jaxtrack import checkpoints, cli
from jaxtrack.train import common, gradnet


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="mobilenet_v2", choices=["mobilenet_v2", "alexnet"])
    ap.add_argument("--variant", default="full", choices=gradnet.VARIANTS)
    ap.add_argument("--recipe", default="official", choices=sorted(gradnet.RECIPES),
                    help="template init, batch, bias decay and update scale (train.gradnet.RECIPES)")
    ap.add_argument("--generalization", action=argparse.BooleanOptionalAction, default=True,
                    help="template generalization (M): K search regions from K sources")
    ap.add_argument("--out", required=True, help="run folder: checkpoint, log")
    ap.add_argument("--pool-dir", default=None, help="where the cached pool lives (default --out)")
    common.add_data_args(ap, synthetic=64)
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
    ap.add_argument("--groups", type=int, default=None,
                    help="official recipe: pairs per batch (8); project: templates per step (4)")
    ap.add_argument("--k", type=int, default=None, help="project recipe: search regions per template (4)")
    common.add_sgd_args(ap)
    ap.add_argument("--bn-momentum", type=float, default=0.95)
    ap.add_argument("--update-gamma", type=float, default=None,
                    help="initial BN scale of the update subnet (official recipe 1, project 0.1)")
    ap.add_argument("--first-order", action="store_true", help="stop the second-order terms (comparison)")
    ap.add_argument("--train-search", action="store_true",
                    help="(an extension) also train the search branch and bias, adding the SiamFC "
                         "template's loss on every region's own pair (the baseline's loss), so the "
                         "features are trained as the SiamFC +budget baseline's are")
    ap.add_argument("--clip-template", type=float, default=None,
                    help="clip the global norm of the template branch's and update subnet's "
                         "gradient (with --train-search the features under them move, and the "
                         "x1e4 inner gradient can then blow the step up); default the recipe's "
                         "(official 10, project none; never the siamfc baseline's); 0: no clip")
    ap.add_argument("--siamfc-weights", default=None, help="trained SiamFC to start from")
    ap.add_argument("--allow-random-siamfc", action="store_true", help="(tests) start from a random SiamFC head")
    common.add_run_args(ap, ckpt_every=100)
    common.add_validation_args(ap, val_every=250)
    args = ap.parse_args(argv)
    recipe = gradnet.RECIPES[args.recipe]
    for name in ("groups", "k", "update_gamma", "clip_template"):
        if getattr(args, name) is None and not (name == "clip_template" and args.variant == "siamfc"):
            # (the optimiser never clips the baseline's head; left None so its record says so)
            setattr(args, name, getattr(recipe, name))
    return args


def main(argv=None):
    args = parse(argv)
    if args.train_search and (args.variant == "siamfc" or args.target_view == "next"):
        raise SystemExit("--train-search is for the GradNet variants with --target-view same")
    os.makedirs(args.out, exist_ok=True)
    recipe = gradnet.RECIPES[args.recipe]
    config = gradnet.variant_config(args.backbone, args.variant)
    params = gradnet.start_params(config, args.siamfc_weights, args.seed, args.allow_random_siamfc,
                                  args.update_gamma, recipe.template_init if args.variant != "siamfc" else "siamfc")
    trainable, frozen = gradnet.split_params(config, args.variant, params, args.train_search)
    generalization = args.generalization and args.variant != "siamfc"
    # official: templates 1..groups-1 of the batch enter the update's BN statistics with a zero gradient
    zero_templates = args.groups - 1 if recipe.one_template and generalization else 0

    schedule, opt = gradnet.optimizer(trainable, args.lr, args.final_lr, args.steps, args.weight_decay,
                                      args.momentum, args.clip_template, recipe.decay_biases)
    opt_state = opt.init(trainable)
    step0 = 0
    ckpt = os.path.join(args.out, "checkpoint.msgpack")
    restored = common.restore_checkpoint(ckpt, {"trainable": trainable, "opt_state": opt_state,
                                                "stats": frozen["update_stats"], "step": 0})
    if restored is not None:
        trainable, opt_state, step0 = restored["trainable"], restored["opt_state"], int(restored["step"])
        frozen = {**frozen, "update_stats": restored["stats"]}

    devices = common.data_parallel()
    loss_fn = gradnet.make_loss(config, args.variant, args.first_order, zero_templates)
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

    sources = gradnet.make_sources(args.images, args.synthetic, args.seed, args.appearance_change)
    next_view = args.target_view == "next"
    pool_dir = args.pool_dir or args.out
    if next_view:
        pool = gradnet.build_triplet_pool(pool_dir, config, params, sources, args.pool, args.pool_seed,
                                          args.appearance_change)
    else:
        pool = gradnet.build_pool(pool_dir, config, params, sources, args.pool, args.pool_seed,
                                  args.appearance_change, args.siamfc_pool)
    response = gradnet.response_size(config, params, pool)

    log_path = os.path.join(args.out, "log.jsonl")
    t0 = time.time()
    trainable, frozen = jax.device_put((trainable, frozen), devices.replicated)
    last = args.steps if args.stop_after is None else min(args.steps, step0 + args.stop_after)

    def validate(done: int):
        """Model selection on the validation set (docs/validation.md), every --val-every steps."""
        root = common.validation_due(args, done, log_path)
        if root:
            common.save_checkpoint(ckpt, {"trainable": trainable, "opt_state": opt_state,
                                          "stats": frozen["update_stats"], "step": done})
            host = gradnet.merge(args.variant, *jax.device_get((trainable, frozen)))
            name, tracker_params, overrides = gradnet.validation_tracker(config, args.variant, host)
            common.validate_step(args, root, args.out, done, name, tracker_params,
                                 gradnet.export_variables(config, args.variant, host), log_path, **overrides)

    validate(step0)                         # the start (step 0), or what a resumed run missed
    for step in range(step0, last):
        batch = gradnet.make_batch(pool, config, response, args.seed, step, args.groups, args.k,
                                   generalization, next_view, args.train_search, recipe.one_template)
        (z, x, labels, weights), eval_views, z_own = jax.device_put(batch, devices.data)
        trainable, opt_state, frozen, loss = train_step(trainable, opt_state, frozen, z, x, labels, weights,
                                                        jnp.asarray(step == 0), eval_views, z_own)
        if (step + 1) % 25 == 0 or step == step0:
            common.log_record(log_path, {"step": step + 1, "loss": float(loss), "lr": float(schedule(step)),
                                         "elapsed_s": round(time.time() - t0, 1)})
        if (step + 1) % args.ckpt_every == 0 or step + 1 == last:
            common.save_checkpoint(ckpt, {"trainable": trainable, "opt_state": opt_state,
                                          "stats": frozen["update_stats"], "step": step + 1})
        validate(step + 1)

    final = gradnet.merge(args.variant, jax.device_get(trainable), jax.device_get(frozen))
    if args.export and last == args.steps:
        exported, selected = common.exported_choice(args, args.out,
                                                    gradnet.export_variables(config, args.variant, final))
        checkpoints.save_variables(args.export, exported)
        common.write_provenance(args.export, {
            "command": common.command_line("experiments/train_gradnet.py", argv), **selected,
            "variant": args.variant, "recipe": args.recipe, **dataclasses.asdict(recipe),
            "update_gamma": args.update_gamma, "zero_gradient_templates": zero_templates,
            "generalization": generalization, "backbone": args.backbone,
            "target_view": args.target_view,
            "steps": args.steps, "groups": args.groups, "k": args.k, "seed": args.seed,
            "pool": args.pool, "pool_seed": args.pool_seed, "siamfc_pool": args.siamfc_pool,
            "images": args.images, "synthetic_sequences": args.synthetic,
            "appearance_change": args.appearance_change, "num_sources": int(sum(map(len, sources))),
            "siamfc_start": args.siamfc_weights or checkpoints.default_checkpoint("siamfc", args.backbone),
            "first_order": args.first_order, "train_search": args.train_search,
            "clip_template": args.clip_template, "train_seconds_this_run": round(time.time() - t0, 1),
            "devices": len(jax.devices()),
            "data": "package photographs (image pairs) + synthetic sequences; no benchmark data"})
        print(f"exported {args.export}")
    return final


if __name__ == "__main__":
    cli.run(main)
