"""Builds the fixed validation set and the size/speed probe set (issue 23), in the OTB layout.

The validation set (``--out``) is what model-selection choices are made on: 8 synthetic
sequences, 16 sequences composed from the held-out photographs and cut-outs
(``split="validation"`` of ``--images``/``--objects``) and, when ``--videos`` holds real
video, its pseudo-labelled tracks from the validation part of the time split
(``jaxtrack.data.motion_tracks``). The probe set (``--probe-out``)
has one composed sequence per target size and speed. Only those held-out files are read;
the benchmark sequences in ../shared/data are never read. Idempotent: a root whose
manifest matches the inputs is left as it is. See docs/validation.md.

  python experiments/make_validation_set.py
  jaxtrack eval --tracker siamfc --backbone mobilenet_v2 --dataset otb \\
      --root ~/.cache/jaxtrack/validation --results results/validation
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from jaxtrack import cli
from jaxtrack.data import sources, synthetic
from jaxtrack.data import validation as V


def _readable(files, read, keep=lambda a: True):
    """(files, arrays) of the ``files`` that ``read`` decodes and ``keep`` accepts."""
    pairs = [(f, a) for f, a in ((f, read(f)) for f in files) if a is not None and keep(a)]
    return [f for f, _ in pairs], [a for _, a in pairs]


def _inputs(args, image_files, object_files, kind, plan=None, video_files=()) -> dict:
    """What a set is built from, recorded in (and compared against) its manifest: the seed,
    the sha256 of every held-out photograph and solid cut-out (in the order the settings'
    indices refer to) and of the rendering code, and for the validation set the plan
    (seeds, flags, settings)."""
    out = {"set": kind, "seed": args.seed,
           "background": "photographs" if image_files else "synthetic",
           "target": "cut-outs" if object_files else ("photo blobs" if image_files else "synthetic blobs"),
           "images": V.file_digests(image_files), "objects": V.file_digests(object_files),
           # the code that renders: a change rebuilds the set (and the manifest tells)
           "code": V.file_digests([V.__file__, synthetic.__file__])}
    if kind == "probe":
        out.update(sizes=list(V.PROBE_SIZES), speeds=list(V.PROBE_SPEEDS))
    if plan is not None:
        out["plan"] = {name: dict(kw, kind=kind_) for name, kind_, kw in plan}
    if video_files:
        from jaxtrack.data import motion_tracks
        out["videos"] = V.file_digests(video_files)
        out["video_split"] = {"validation": list(motion_tracks.TIME_SPLIT["validation"])}
        out["code"] += V.file_digests([motion_tracks.__file__])
    return out


def _real_tracks(video_files):
    """[(name, Sequence, attributes)] of the videos' pseudo-labelled validation tracks."""
    from jaxtrack.data.motion_tracks import video_tracks
    out = []
    for path in video_files:
        stem = os.path.splitext(os.path.basename(path))[0]
        out += [(seq.name, seq, list(seq.attrs))
                for seq in video_tracks(path, "validation", prefix=f"val_real_{stem}")]
    return out


def _build(root, inputs, make, label):
    root = os.path.expanduser(root)
    if V.is_current(root, inputs):
        print(f"{label}: {root} is up to date (manifest matches), nothing written")
        return
    t = time.perf_counter()
    entries = make()
    wrote = V.write_otb_root(entries, root, inputs)
    frames = sum(len(seq) for _, seq, _ in entries)
    print(f"{label}: {'wrote' if wrote else 'unchanged'} {len(entries)} sequences, {frames} frames "
          f"in {root} ({time.perf_counter() - t:.1f} s)")
    for name, seq, attrs in entries:
        print(f"  {name}: {len(seq)} frames {seq.frame_size()[1]}x{seq.frame_size()[0]}, "
              f"attributes {','.join(attrs) or '-'}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="~/.cache/jaxtrack/validation", help="validation set root (OTB layout)")
    ap.add_argument("--probe-out", default="~/.cache/jaxtrack/probe", help="probe set root (OTB layout)")
    ap.add_argument("--images", default=sources.DEFAULT_IMAGES, help="photograph folder (held-out files used)")
    ap.add_argument("--objects", default=sources.DEFAULT_OBJECTS, help="cut-out folder (held-out files used)")
    ap.add_argument("--videos", default=sources.DEFAULT_VIDEOS,
                    help="real videos (fetch_training_images.py --videos-out); their validation-part tracks are added")
    ap.add_argument("--seed", type=int, default=V.VALIDATION_SEED, help="the validation seed")
    ap.add_argument("--skip-probe", action="store_true", help="build the validation set only")
    args = ap.parse_args(argv)
    for folder in (args.images, args.objects):
        if folder and not os.path.isdir(folder):
            print(f"warning: {folder} not found; composed sequences fall back to synthetic material",
                  file=sys.stderr)

    # the held-out files, kept with their paths for the manifest (line-art cut-outs left out)
    image_files, images = _readable(sources.image_files(args.images, "validation"), sources.read_photo)
    object_files, objects = _readable(sources.object_files(args.objects, "validation"), sources.read_cutout,
                                      V.is_solid)
    print(f"held-out sources: {len(images)} photographs from {args.images}, "
          f"{len(objects)} cut-outs from {args.objects} ({V.SPLIT_RULE})")
    video_files = sources.video_files(args.videos)
    print(f"real video: {len(video_files)} file(s) from {args.videos}"
          + ("" if video_files else " (none: the validation set has no real-video part)"))
    plan = V.validation_plan(len(images), len(objects), args.seed)
    _build(args.out, _inputs(args, image_files, object_files, "validation", plan, video_files),
           lambda: V.validation_sequences(images, objects, args.seed) + _real_tracks(video_files),
           "validation set")
    if not args.skip_probe:
        _build(args.probe_out, _inputs(args, image_files, object_files, "probe"),
               lambda: V.probe_sequences(images, objects, args.seed), "probe set")


if __name__ == "__main__":
    cli.run(main)
