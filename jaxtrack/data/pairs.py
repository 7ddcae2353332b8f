"""Training pairs for Siamese trackers: exemplar/search crops with their label geometry.

Two honest sources (never benchmark sequences):

* ``image_pair``: one photograph makes a pair, as ATOM makes pairs from COCO: a random
  box is the target; the search view is the same image under a random similarity
  transform (shift, scale, small rotation) with photometric jitter and blur;
* ``sequence_pair``: two frames of one (synthetic or packed) sequence within ``max_gap``;
* ``paste_pair``: copy-paste: an object cut-out (RGBA, e.g. Debian's tuxpaint stamps) or a
  patch of a photograph cut by a random smooth shape is pasted on a photograph; in the search view the background moves
  (camera) and the object moves, scales, deforms and changes brightness on its own. The
  box is the tight box of the pasted shape, so, unlike a random box, its edges are visible
  object boundaries (what a box regressor such as IoU-Net has to learn).

``crop_pair`` turns (image_z, box_z, image_x, box_x) into SiamFC training crops: the
exemplar (context 0.5, ``exemplar_size``) centred on the target, and the search crop
(``instance_size``) centred on the target plus a random shift, returned with the
target's offset from the search-crop centre in crop pixels, so labels can be centred
exactly where the target is. Every random choice draws from the ``numpy.random.Generator``
passed in. Crops are one ``cv2.warpAffine`` each (bilinear, mean-colour border), the
same sampling as :func:`jaxtrack.ops.crop_patch`.
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np


class Pair(NamedTuple):
    z: np.ndarray        # uint8 [Ez, Ez, 3] exemplar crop
    x: np.ndarray        # uint8 [Ex, Ex, 3] search crop
    offset: np.ndarray   # float32 (2,) target centre minus search-crop centre, crop pixels (dx, dy)


def affine_crop(image, center, side, out_size, angle=0.0, fill=None):
    """Crop a ``side``-pixel square around ``center`` (continuous coords), rotated by
    ``angle`` degrees, onto ``out_size`` pixels."""
    if fill is None:
        fill = image.reshape(-1, image.shape[-1]).mean(0)
    s = out_size / side
    a = np.deg2rad(angle)
    c, sn = np.cos(a) * s, np.sin(a) * s
    # maps continuous image coords to continuous crop coords; cv2 works on pixel centres,
    # which shifts both sides by 0.5 (handled in the translation)
    cx, cy = center
    m = np.array([[c, sn, 0.0], [-sn, c, 0.0]])
    m[:, 2] = out_size / 2 - m[:, :2] @ np.array([cx, cy])
    m[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return cv2.warpAffine(image, m, (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(v) for v in fill))


def context_side(box, context: float = 0.5) -> float:
    """SiamFC exemplar side: sqrt((w + p)(h + p)), p = context * (w + h)."""
    w, h = box[2], box[3]
    p = context * (w + h)
    return float(np.sqrt((w + p) * (h + p)))


def crop_pair(rng: np.random.Generator, image_z, box_z, image_x, box_x, *,
              exemplar_size=127, instance_size=255, context=0.5, max_shift=32,
              max_stretch=0.05, max_angle=0.0, color_jitter=0.0, blur_prob=0.0) -> Pair:
    """SiamFC crops of one pair (boxes in jaxtrack xywh), with shift/stretch augmentation."""
    cz = np.asarray(box_z[:2]) + np.asarray(box_z[2:]) / 2
    cx = np.asarray(box_x[:2]) + np.asarray(box_x[2:]) / 2
    z_side = context_side(box_z, context) * (1 + rng.uniform(-max_stretch, max_stretch))
    x_side = context_side(box_x, context) * instance_size / exemplar_size
    x_side *= 1 + rng.uniform(-max_stretch, max_stretch)
    shift = rng.uniform(-max_shift, max_shift, 2)                 # search-crop pixels
    angle = rng.uniform(-max_angle, max_angle) if max_angle else 0.0
    z = affine_crop(image_z, cz, z_side, exemplar_size)
    # the search crop is centred off the target by ``shift`` (in crop pixels)
    x_center = cx - shift * x_side / instance_size
    x = affine_crop(image_x, x_center, x_side, instance_size, angle)
    x = photometric(rng, x, color_jitter, blur_prob)
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    return Pair(z, x, (rot @ shift).astype(np.float32))


# SiamFC training's augmentation (train_siamfc.py, train_gradnet.py)
SIAMFC_AUGMENT = dict(max_shift=32, max_stretch=0.05, color_jitter=0.1, blur_prob=0.2)


def siamfc_crop_pair(rng: np.random.Generator, config, image_z, box_z, image_x, box_x) -> Pair:
    """:func:`crop_pair` at ``config``'s exemplar / instance sizes and context, with
    SiamFC training's augmentation (:data:`SIAMFC_AUGMENT`)."""
    return crop_pair(rng, image_z, box_z, image_x, box_x, exemplar_size=config.exemplar_size,
                     instance_size=config.instance_size, context=config.context, **SIAMFC_AUGMENT)


def photometric(rng, img, jitter, blur_prob):
    """Colour jitter (per-channel gain and a shared bias, both up to ``jitter``) and, with
    probability ``blur_prob``, a Gaussian blur of 3, 5 or 7 pixels."""
    out = img
    if jitter > 0:
        gain = 1 + rng.uniform(-jitter, jitter, 3)
        bias = rng.uniform(-jitter, jitter) * 64
        out = np.clip(out.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    if blur_prob > 0 and rng.uniform() < blur_prob:
        k = int(rng.choice([3, 5, 7]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    return out


def random_box(rng: np.random.Generator, hw, min_frac=0.08, max_frac=0.45, max_aspect=2.0):
    """A random target box inside an image of size ``hw``, aspect ratio in
    [1/``max_aspect``, ``max_aspect``] (log-uniform)."""
    h, w = hw
    area = rng.uniform(min_frac, max_frac) ** 2 * h * w
    aspect = np.exp(rng.uniform(-np.log(max_aspect), np.log(max_aspect)))
    bw = min(np.sqrt(area * aspect), 0.9 * w)
    bh = min(np.sqrt(area / aspect), 0.9 * h)
    x = rng.uniform(0, w - bw)
    y = rng.uniform(0, h - bh)
    return np.array([x, y, bw, bh], np.float64)


def image_pair(rng: np.random.Generator, image, max_scale=0.25, max_angle=15.0, box=None):
    """(image_z, box_z, image_x, box_x) from one photograph: the search view is the image
    under a random similarity transform, the target box moves with it. ``box`` (xywh)
    fixes the target (another view of the same target); default a random textured box."""
    h, w = image.shape[:2]
    if box is None:
        box = random_box(rng, (h, w))
        for _ in range(5):                   # prefer textured targets over flat sky
            x0, y0, bw, bh = box.astype(int)
            if image[y0:y0 + max(bh, 1), x0:x0 + max(bw, 1)].std() > 12:
                break
            box = random_box(rng, (h, w))
    s = np.exp(rng.uniform(-max_scale, max_scale))
    angle = rng.uniform(-max_angle, max_angle)
    c = box[:2] + box[2:] / 2
    t = rng.uniform(-0.3, 0.3, 2) * box[2:]
    m = cv2.getRotationMatrix2D((float(c[0] - 0.5), float(c[1] - 0.5)), angle, s)
    m[:, 2] += t
    warped = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    c2 = m[:, :2] @ (c - 0.5) + m[:, 2] + 0.5
    size2 = box[2:] * s
    box_x = np.concatenate([c2 - size2 / 2, size2])
    return image, box, warped, box_x


def _blob_mask(rng, h, w):
    """A smooth random shape filling an ``h`` x ``w`` patch (float32 alpha in [0, 1]):
    an ellipse, a rounded rectangle or a noise-bent blob, touching all four sides."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xx + 0.5) / w * 2 - 1
    v = (yy + 0.5) / h * 2 - 1
    kind = int(rng.integers(3))
    if kind == 0:                                            # ellipse
        r = np.sqrt(u ** 2 + v ** 2)
    elif kind == 1:                                          # rounded rectangle (superellipse)
        p = rng.uniform(3, 8)
        r = (np.abs(u) ** p + np.abs(v) ** p) ** (1 / p)
    else:                                                    # ellipse bent by smooth noise
        g = rng.standard_normal((4, 4)).astype(np.float32)
        noise = cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
        r = np.sqrt(u ** 2 + v ** 2) * (1 + 0.25 * noise)
    alpha = np.clip((1 - r) * min(h, w) / 2 + 0.5, 0, 1).astype(np.float32)
    return alpha


def _tight_box(alpha, thresh=0.5):
    ys, xs = np.nonzero(alpha > thresh)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()], np.float64)


def _paste(canvas, tex, alpha, m):
    """Composite ``tex`` with ``alpha`` onto float ``canvas`` under the 2x3 affine ``m``;
    returns the pasted alpha in canvas pixels."""
    h, w = canvas.shape[:2]
    t = cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=0)
    canvas += a[..., None] * (t - canvas)
    return a


def paste_pair(rng: np.random.Generator, background, source, max_scale=0.3, max_angle=15.0,
               max_stretch=0.15, max_aspect=4.0):
    """(image_z, box_z, image_x, box_x): ``source`` pasted on ``background``, either an RGBA
    cut-out (its alpha is the outline) or a photograph (a random smooth shape is cut from
    it); the search view moves the background and the object independently."""
    h, w = background.shape[:2]
    # wide and tall targets too (pedestrians are 1:3): shapes up to ``max_aspect``, cut-outs
    # stretched by up to 1.5x either way
    box = random_box(rng, (h, w), min_frac=0.1, max_frac=0.4, max_aspect=max_aspect)
    if source.shape[2] == 4:                                     # an RGBA cut-out: its own outline
        sh, sw = source.shape[:2]
        area, aspect = box[2] * box[3], sw / sh * np.exp(rng.uniform(-np.log(1.5), np.log(1.5)))
        pw = max(int(round(min(np.sqrt(area * aspect), 0.9 * w))), 4)
        ph = max(int(round(min(np.sqrt(area / aspect), 0.9 * h))), 4)
        obj = cv2.resize(source, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32)
        tex, alpha = obj[..., :3], obj[..., 3] / 255.0
        box = np.array([rng.uniform(0, w - pw), rng.uniform(0, h - ph), pw, ph], np.float64)
    else:                                                        # a random shape cut from a photo
        ph, pw = max(int(round(box[3])), 4), max(int(round(box[2])), 4)
        sh, sw = source.shape[:2]
        side = rng.uniform(0.5, 1.5)                             # source region vs object size
        rw, rh = min(sw, pw * side), min(sh, ph * side)
        x0, y0 = rng.uniform(0, sw - rw), rng.uniform(0, sh - rh)
        src = np.array([[pw / rw, 0, -x0 * pw / rw], [0, ph / rh, -y0 * ph / rh]])
        tex = cv2.warpAffine(source, src, (pw, ph), flags=cv2.INTER_AREA).astype(np.float32)
        alpha = _blob_mask(rng, ph, pw)

    def place(center, scale_xy, angle):
        a = np.deg2rad(angle)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.diag(scale_xy)
        m = np.zeros((2, 3))
        m[:, :2] = rot                                           # patch (u + 0.5) -> image
        m[:, 2] = center - rot @ np.array([pw / 2, ph / 2]) + rot @ np.array([0.5, 0.5]) - 0.5
        return m

    c = box[:2] + box[2:] / 2
    ref = background.astype(np.float32).copy()
    a_z = _paste(ref, tex, alpha, place(c, (1.0, 1.0), 0.0))
    # search view: camera similarity on the background, then the object's own motion
    s_cam = np.exp(rng.uniform(-0.1, 0.1))
    cam = cv2.getRotationMatrix2D((float(c[0] - 0.5), float(c[1] - 0.5)), rng.uniform(-5, 5), s_cam)
    cam[:, 2] += rng.uniform(-0.1, 0.1, 2) * np.array([w, h])
    search = cv2.warpAffine(background, cam, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    c2 = cam[:, :2] @ (c - 0.5) + cam[:, 2] + 0.5 + rng.uniform(-0.5, 0.5, 2) * box[2:]
    s = s_cam * np.exp(rng.uniform(-max_scale, max_scale))
    stretch = np.exp(rng.uniform(-max_stretch, max_stretch))
    obj = np.clip(tex * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20), 0, 255)
    a_x = _paste(search, obj, alpha, place(c2, (s * stretch, s / stretch), rng.uniform(-max_angle, max_angle)))
    box_z, box_x = _tight_box(a_z), _tight_box(a_x)
    if box_x is None or box_z is None:                           # pasted off the image: plain pair
        return image_pair(rng, background)
    return ref.astype(np.uint8), box_z, search.astype(np.uint8), box_x


def valid_frames(gt) -> np.ndarray:
    """Indices of the frames whose box is annotated and wider and taller than 1 px."""
    return np.flatnonzero(np.all(np.isfinite(gt), 1) & (gt[:, 2] > 1) & (gt[:, 3] > 1))


def sequence_pair(rng: np.random.Generator, seq, max_gap: int = 50):
    """(image_z, box_z, image_x, box_x) from two annotated frames of ``seq``."""
    valid = valid_frames(seq.gt)
    i = int(rng.choice(valid))
    near = valid[np.abs(valid - i) <= max_gap]
    j = int(rng.choice(near))
    return seq.frame(i), seq.gt[i], seq.frame(j), seq.gt[j]
