"""Any jaxtrack tracker as a TraX server, for the VOT toolkit (``vot evaluate``).

    python -m jaxtrack.integrations.vot --tracker siamfc --backbone mobilenet_v2
    python -m jaxtrack.integrations.vot --tracker atom --variant no_iou --set learning_rate=0.02

The toolkit starts this command (a ``trackers.ini`` entry with ``protocol = trax``: see
``vot_trackers.ini`` beside this file and docs/vot.md) and talks TraX to it over stdin /
stdout, using the ``trax`` module of the ``vot-trax`` package (the protocol the VOT
toolkit's ``vot.py`` wrapper speaks; the server is used directly so that one process
serves every re-initialisation of a sequence without re-compiling).

* Frames arrive as file paths (TraX image type ``path``) and are read as ``jaxtrack eval``
  reads them (:func:`jaxtrack.data.sequence.read_image`), padded to their shape bucket;
  ``init`` and ``track_step`` are jitted once per bucket (:class:`jaxtrack.driver.JitTracker`).
* Regions: the server accepts rectangles and polygons and reports rectangles. A polygon (VOT's
  rotated ground truth) becomes an axis-aligned box by :func:`jaxtrack.boxes.polygon_to_xywh`,
  as jaxtrack's VOT reader does. The toolkit passes regions in the annotation files'
  coordinates, which jaxtrack reads as 1-based pixel indices (``--index-base 1``, the
  default, as ``jaxtrack eval --dataset vot``); boxes go back in the same convention.
* Each reported region carries the tracker's score as ``confidence``.
* Every ``initialize`` (the first frame, and each re-initialisation after a failure in the
  toolkit's supervised experiment) starts the tracker afresh with
  ``jaxtrack.frames.sequence_key(seed, name)``, ``name`` being the folder the frame lies in
  (:func:`jaxtrack.integrations.sequence_name_from_path`; the toolkit does not send the
  sequence name).
* A state that turns non-finite is handled as ``jaxtrack eval`` does: the last finite box is
  reported from there on (until the next initialize), with a line on stderr.

Nothing but TraX goes to stdout (Python's ``print`` is redirected to stderr, which the
toolkit shows in its log).
"""
from __future__ import annotations

import argparse
import sys

SUMMARY = "serve a jaxtrack tracker to the VOT toolkit over TraX"


def region_to_box(region, index_base: int = 1):
    """A TraX rectangle or polygon -> jaxtrack xywh (0-based) float64 [4]."""
    import numpy as np
    import trax

    from jaxtrack import boxes as B
    if region.type == trax.Region.RECTANGLE:
        box = np.asarray(region.bounds(), np.float64)
    elif region.type == trax.Region.POLYGON:
        points = [region.get(i) for i in range(region.size())]
        flat = np.asarray(points, np.float64).reshape(-1)
        if flat.size != 8:             # not VOT's 4-corner polygon: its bounding box
            xs, ys = flat[0::2], flat[1::2]
            box = np.array([xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()])
        else:
            box = B.polygon_to_xywh(flat)
    else:
        raise ValueError(f"unsupported region type {region.type!r} (rectangle or polygon only)")
    return B.from_dataset(box, index_base)


def box_to_region(box, index_base: int = 1):
    """jaxtrack xywh -> a TraX rectangle in the toolkit's (``index_base``) coordinates."""
    import trax

    from jaxtrack import boxes as B
    x, y, w, h = (float(v) for v in B.to_dataset(box, index_base))
    return trax.Rectangle.create(x, y, w, h)


def _frame_path(request) -> str:
    import trax
    image = request.image.get(trax.ImageChannel.COLOR) if isinstance(request.image, dict) else request.image
    if not isinstance(image, trax.FileImage):
        raise TypeError("expected the colour channel as a file path (TraX image type 'path'), "
                         f"got {image}")
    path = image.path()
    return path.removeprefix("file://")


def serve(tracker, *, seed: int = 0, index_base: int = 1, checked: bool = False, log=sys.stderr) -> int:
    """Answer TraX requests with ``tracker`` until the client quits; returns the frames tracked."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import trax

    from jaxtrack import boxes as B
    from jaxtrack.data.sequence import read_image
    from jaxtrack.driver import JitTracker
    from jaxtrack.frames import pad_frame, sequence_key
    from jaxtrack.integrations import sequence_name_from_path

    jt = JitTracker(tracker, checked=checked)
    state, last, held, name, index, frames = None, None, False, "", 0, 0
    with trax.Server([trax.Region.RECTANGLE, trax.Region.POLYGON], [trax.Image.PATH],
                     tracker_name=f"jaxtrack-{tracker.name}", tracker_family="jaxtrack") as server:
        while True:
            try:
                request = server.wait()
            except trax.TraxException as e:          # the client went away without a quit
                print(f"jaxtrack TraX server: {e}; stopping", file=log, flush=True)
                break
            if request.type in (trax.TraxStatus.QUIT, trax.TraxStatus.ERROR):
                break
            path = _frame_path(request)
            image = read_image(path)
            if request.type == trax.TraxStatus.INITIALIZE:
                if len(request.objects) != 1:
                    raise ValueError(f"one object per sequence, got {len(request.objects)}")
                name, index, held = sequence_name_from_path(path), 0, False
                box = B.validate_box(region_to_box(request.objects[0][0], index_base), image.shape[:2],
                                     where=f"{path}: initial region")
                state = jt.init(jt.params, pad_frame(image, where=path), jnp.asarray(box, jnp.float32),
                                sequence_key(seed, name))
                jax.block_until_ready(state)
                last, score = box, 1.0
            else:
                if state is None:
                    raise RuntimeError("a frame before initialize")
                index += 1
                state, out = jt.step(jt.params, state, pad_frame(image, where=path))
                score = float(out.score)
                if not held and not bool(out.finite):
                    held = True
                    print(f"{name}: the tracker's state became non-finite at frame {index} after the "
                          "last initialize; reporting the last finite box from there", file=log, flush=True)
                if not held:
                    last = np.asarray(out.box, np.float64)
                frames += 1
            server.status([(box_to_region(last, index_base), {"confidence": score})])
    return frames


def add_arguments(ap: argparse.ArgumentParser) -> None:
    from jaxtrack import cli
    cli.add_tracker_args(ap)
    ap.add_argument("--index-base", type=int, default=1, choices=(0, 1),
                    help="pixel index base of the toolkit's regions (1: VOT annotation files, as "
                         "jaxtrack's VOT reader; 0: treat them as 0-based)")
    ap.add_argument("--debug-nans", action="store_true", help="run under checkify (slower)")


def run(args) -> int:
    from jaxtrack import cli
    cli.setup_runtime(args)
    tracker = cli.make_tracker(args)
    return serve(tracker, seed=args.seed, index_base=args.index_base, checked=args.debug_nans)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m jaxtrack.integrations.vot", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    args = ap.parse_args(argv)
    stdout, sys.stdout = sys.stdout, sys.stderr      # stdout carries TraX only
    try:
        from jaxtrack import cli
        cli.run(lambda: run(args))
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    main()
