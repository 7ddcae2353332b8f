"""A fixed validation set for model selection, made only of honest data (issue 23).

Everything a tracker's settings, checkpoints or thresholds are chosen on comes from here:
synthetic sequences (:mod:`jaxtrack.data.synthetic`) and sequences composed from held-out
package photographs and RGBA object cut-outs (:func:`composed_sequence`). The benchmark
sequences in ``../shared/data`` are for reporting only; nothing here reads them.

Held-out files are chosen by :func:`is_validation`, a pure function of a file's bytes, so
renaming or renumbering a folder cannot move a file across the split. The probe set
(:func:`probe_sequences`) isolates target size and speed with every other nuisance off.
Both sets are written in the OTB layout by :func:`write_otb_root` (see docs/validation.md
and ``experiments/make_validation_set.py``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import cv2
import numpy as np

from jaxtrack import boxes as boxes_lib
from jaxtrack import fileio
from jaxtrack.data import synthetic
from jaxtrack.data.pairs import _blob_mask, _tight_box
from jaxtrack.data.sequence import Sequence

# Seeds: synthetic validation sequences use [VALIDATION_SEED, i] (training uses
# [seed + 1000, i] for small training seeds), composed ones [VALIDATION_SEED, 101..103, i],
# the probe set [VALIDATION_SEED, 200, j]. The number itself is arbitrary ("23": the issue).
VALIDATION_SEED = 23_000_023
VERSION = 1          # bump when anything below changes what is rendered
SPLIT_RULE = "validation iff int(sha256(file bytes).hexdigest()[:8], 16) % 5 == 0"


# ----------------------------------------------------------------------------- the split

def is_validation(data: bytes) -> bool:
    """True for the held-out files (about 1 in 5), decided by the file's content alone."""
    return int(hashlib.sha256(data).hexdigest()[:8], 16) % 5 == 0


def in_split(data: bytes, split: str | None) -> bool:
    """Whether a file with these bytes belongs to ``split`` (None: all, "train", "validation")."""
    if split is None:
        return True
    if split not in ("train", "validation"):
        raise ValueError(f"split must be None, 'train' or 'validation', got {split!r}")
    return is_validation(data) == (split == "validation")


def file_digests(paths) -> list[dict]:
    """[{"file": basename, "sha256": ...}] for ``paths``, in order: the manifest's record."""
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append({"file": os.path.basename(p), "sha256": hashlib.sha256(f.read()).hexdigest()})
    return out


# ----------------------------------------------------------------------------- smooth signals

def _wave_params(rng, lo, hi, terms):
    """Amplitudes (summing to 1), frequencies (cycles per 100 steps) and phases of a wave."""
    amps = rng.uniform(0.2, 1.0, terms)
    return amps / amps.sum(), rng.uniform(lo, hi, terms) / 100, rng.uniform(0, 2 * np.pi, terms)


def _wave_at(params, t):
    """A smooth signal in [-1, 1] at (any, possibly fractional) times ``t``."""
    amps, freqs, phases = params
    t = np.asarray(t, np.float64)
    return np.sum(amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None]), axis=0)


def _path(rng, n, lo_xy, hi_xy, speeds):
    """(n, 2) centres on a smooth curve inside the rectangle [lo_xy, hi_xy], travelling
    ``speeds[i]`` pixels between frame i and i+1: the curve (a sum of sinusoids per axis,
    so its direction changes smoothly) is re-sampled by arc length."""
    lo, hi = np.asarray(lo_xy, np.float64), np.asarray(hi_xy, np.float64)
    pu, pv = _wave_params(rng, 0.5, 1.5, 3), _wave_params(rng, 0.5, 1.5, 3)
    need = float(np.sum(speeds[:n - 1]))
    tau_max = 200.0
    while True:
        tau = np.arange(0.0, tau_max, 0.02)
        uv = 0.5 + 0.49 * np.stack([_wave_at(pu, tau), _wave_at(pv, tau)], 1)
        pts = lo + uv * (hi - lo)
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
        if arc[-1] >= need or tau_max > 1e5:
            break
        tau_max *= 2
    s = np.concatenate([[0.0], np.cumsum(speeds[:n - 1])])
    return np.stack([np.interp(s, arc, pts[:, 0]), np.interp(s, arc, pts[:, 1])], 1)


# ----------------------------------------------------------------------------- layers

def _cutout(rgba):
    """An RGBA cut-out cropped to its alpha's bounding box: (premultiplied rgb, alpha) float32."""
    a = rgba[..., 3].astype(np.float32) / 255
    ys, xs = np.nonzero(a > 0.02)
    if len(xs):
        a = a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        rgba = rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return rgba[..., :3].astype(np.float32) * a[..., None], a


def is_solid(rgba, min_fill: float = 0.5) -> bool:
    """Whether a cut-out is a filled object rather than line art: its opaque pixels (alpha >
    127) cover at least ``min_fill`` of their outer outline's area (held-out tuxpaint
    stamps: one outline drawing at 0.25, the rest 0.73..1)."""
    a = (np.asarray(rgba)[..., 3] > 127).astype(np.uint8)
    contours, _ = cv2.findContours(a, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(a)
    cv2.drawContours(filled, contours, -1, 1, -1)
    return bool(a.sum() >= min_fill * max(int(filled.sum()), 1))


def _outline(alpha):
    """Corner points (continuous patch coordinates) of the convex hull of the pixels where
    ``alpha`` exceeds half its maximum: what the ground-truth box is the extent of."""
    mask = (alpha > 0.5 * alpha.max()).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    return cv2.convexHull(corners.astype(np.float32)).reshape(-1, 2).astype(np.float64)


def _box_of(points, m):
    """xywh box of patch ``points`` (continuous coordinates) under the cv2 affine ``m``."""
    p = points @ m[:, :2].T + m[:, 2] + 0.5 - m[:, :2] @ np.array([0.5, 0.5])
    lo, hi = p.min(0), p.max(0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def _photo_blob(rng, photo, aspect):
    """A smooth random shape cut from a photograph: (premultiplied rgb, alpha), 128 px long side."""
    ph, pw = (128, max(8, int(128 * aspect))) if aspect < 1 else (max(8, int(128 / aspect)), 128)
    sh, sw = photo.shape[:2]
    rw, rh = sw * rng.uniform(0.2, 0.5), sh * rng.uniform(0.2, 0.5)
    x0, y0 = rng.uniform(0, sw - rw), rng.uniform(0, sh - rh)
    m = np.array([[pw / rw, 0, -x0 * pw / rw], [0, ph / rh, -y0 * ph / rh]])
    tex = cv2.warpAffine(photo, m, (pw, ph), flags=cv2.INTER_AREA).astype(np.float32)
    alpha = _blob_mask(rng, ph, pw)
    return tex * alpha[..., None], alpha


def _outline_side(alpha):
    """sqrt(w * h) of the box of the pixels above half the maximum alpha."""
    ys, xs = np.nonzero(alpha > 0.5 * alpha.max())
    return float(np.sqrt((np.ptp(xs) + 1) * (np.ptp(ys) + 1)))


def _resized(layer, side_px):
    """The layer resized (area-averaged, premultiplied) so that its outline's box (pixels
    above half alpha, what the ground truth measures) has sqrt(w * h) ~ ``side_px``; one
    correction step, because thin parts fade below half alpha when an object shrinks."""
    col, a = layer
    h, w = a.shape

    def shrink(f):
        size = (max(2, round(w * f)), max(2, round(h * f)))
        return size, cv2.resize(a, size, interpolation=cv2.INTER_AREA)

    f = side_px / _outline_side(a)
    size, small = shrink(f * side_px / _outline_side(shrink(f)[1]))
    return cv2.resize(col, size, interpolation=cv2.INTER_AREA), small


def _place(patch_hw, center, scale, angle_deg):
    """2x3 affine taking patch pixels to the frame: patch centre at ``center``, scaled, rotated."""
    ph, pw = patch_hw
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = np.zeros((2, 3))
    m[:, :2] = rot
    # continuous coords: patch (u, v) -> centre + rot @ ((u, v) - (pw, ph) / 2); cv2 indexes
    # pixel centres, which adds rot @ 0.5 - 0.5 to the translation
    m[:, 2] = np.asarray(center) - rot @ np.array([pw / 2, ph / 2]) + rot @ np.array([0.5, 0.5]) - 0.5
    return m


def _extent(patch_hw, scale, angle_deg):
    """(width, height) of the rotated, scaled patch's bounding box."""
    ph, pw = patch_hw
    c, s = abs(np.cos(np.deg2rad(angle_deg))), abs(np.sin(np.deg2rad(angle_deg)))
    return scale * (c * pw + s * ph), scale * (s * pw + c * ph)


def _render(layer, m, hw, margin=2):
    """The layer warped by ``m`` into a region of a frame of size ``hw``:
    (x0, y0, premultiplied rgb, alpha), or None when it falls outside the frame."""
    col, a = layer
    ph, pw = a.shape
    corners = m[:, :2] @ np.array([[0, 0], [pw, 0], [0, ph], [pw, ph]], np.float64).T + m[:, 2:] + 0.5
    H, W = hw
    x0, y0 = max(0, int(np.floor(corners[0].min())) - margin), max(0, int(np.floor(corners[1].min())) - margin)
    x1, y1 = min(W, int(np.ceil(corners[0].max())) + margin), min(H, int(np.ceil(corners[1].max())) + margin)
    if x1 <= x0 or y1 <= y0:
        return None
    mr = m.copy()
    mr[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    c = cv2.warpAffine(col, mr, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    w = cv2.warpAffine(a, mr, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return x0, y0, c.reshape(size[1], size[0], 3), w


def _over(canvas, region):
    """Composites a rendered (premultiplied) region over the float canvas, in place."""
    if region is None:
        return
    x0, y0, c, a = region
    roi = canvas[y0:y0 + a.shape[0], x0:x0 + a.shape[1]]
    roi *= 1 - a[..., None]
    roi += c


def _blurred(region, length, angle):
    """The region smeared along ``angle`` over ``length`` pixels (object motion blur)."""
    if region is None or length < 2:
        return region
    x0, y0, c, a = region
    k = synthetic._motion_kernel(int(length), float(angle))
    return (x0, y0, cv2.filter2D(c, -1, k, borderType=cv2.BORDER_CONSTANT),
            cv2.filter2D(a, -1, k, borderType=cv2.BORDER_CONSTANT))


def _camera(rng, photo, n, hw, move=True):
    """(n, 2, 3) affines from a pre-scaled copy of ``photo`` to the frame, panning and
    zooming (0.9x..1.1x) smoothly inside the photograph, and that copy (float32)."""
    H, W = hw
    ph, pw = photo.shape[:2]
    f = max(H / ph, W / pw) * 1.25          # the view covers 1/1.25 of the photo's tight side
    big = cv2.resize(photo, (max(W + 2, round(pw * f)), max(H + 2, round(ph * f))),
                     interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR).astype(np.float32)
    bh, bw = big.shape[:2]
    t = np.arange(n, dtype=np.float64)
    zp, xp, yp = (_wave_params(rng, 0.3, 1.0, 2) for _ in range(3))
    z = np.exp(0.1 * _wave_at(zp, t)) if move else np.ones(n)
    u = 0.5 + 0.45 * _wave_at(xp, t) if move else np.full(n, 0.5)
    v = 0.5 + 0.45 * _wave_at(yp, t) if move else np.full(n, 0.5)
    mats = np.zeros((n, 2, 3))
    for i in range(n):
        half_w, half_h = W / 2 / z[i], H / 2 / z[i]
        cx = half_w + u[i] * (bw - 2 * half_w)
        cy = half_h + v[i] * (bh - 2 * half_h)
        mats[i] = [[z[i], 0, W / 2 - z[i] * cx], [0, z[i], H / 2 - z[i] * cy]]
        mats[i, :, 2] += z[i] * 0.5 - 0.5
    return mats, big


# ----------------------------------------------------------------------------- composed sequences

def _settings(rng, n_backgrounds, n_objects, target_px, speed_px):
    """The scalar choices of one composed sequence (sources, size, speed, nuisance details);
    all are drawn whatever the flags, so a flag only switches its own nuisance."""
    nb = max(n_backgrounds, 1)
    s = dict(background=int(rng.integers(nb)), blob_photo=int(rng.integers(nb)),
             object=int(rng.integers(n_objects)) if n_objects else None,
             occluder=int(rng.integers(n_objects)) if n_objects else None,
             occluder_photo=int(rng.integers(nb)),
             side_px=float(np.exp(rng.uniform(*np.log(target_px)))),
             speed_px=float(np.exp(rng.uniform(*np.log(speed_px)))),
             blob_aspect=float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))),
             occluder_scale=float(rng.uniform(0.7, 1.3)), occluder_mid=float(rng.uniform(0.3, 0.75)),
             occluder_speed=float(rng.uniform(3, 8)), occluder_angle=float(rng.uniform(0, 2 * np.pi)),
             distractor_scale=float(rng.uniform(0.8, 1.2)),
             distractor_gain=[float(g) for g in rng.uniform(0.75, 1.25, 3)])
    if n_objects > 1 and s["occluder"] == s["object"]:
        s["occluder"] = (s["object"] + 1) % n_objects
    return s


def composed_settings(seed, n_backgrounds: int, n_objects: int, *, target_px=(40, 120),
                      speed_px=(1, 8)) -> dict:
    """The settings :func:`composed_sequence` uses for this seed and pool sizes (source
    indices, target side in px, mean speed in px/frame, ...), without rendering anything."""
    return _settings(np.random.default_rng(seed).spawn(8)[0], n_backgrounds, n_objects, target_px, speed_px)


def composed_sequence(seed, backgrounds, objects, num_frames: int = 100, size=(360, 480), *,
                      target_px=(40, 120), speed_px=(1, 8), scale_change=True, rotation=True,
                      illumination=True, motion_blur=True, occlusion=True, distractor=True,
                      camera=True, speed_variation: float = 0.3, name=None) -> Sequence:
    """An object cut-out moving over a photograph, with exact ground truth.

    The background is one of ``backgrounds`` (RGB uint8; a synthetic texture if none),
    seen by a camera that pans and zooms smoothly (``camera``). The target is one of
    ``objects`` (RGBA uint8 cut-outs; if none, a smooth shape cut from a photograph) whose
    size sqrt(w * h) in pixels is drawn log-uniformly from ``target_px`` and whose speed
    from ``speed_px`` (px/frame; it varies smoothly by exp(+-``speed_variation``) around
    that, direction turning smoothly). Nuisances: ``scale_change`` (up to 1.35x either
    way), ``rotation`` (in-plane, up to 30 degrees), ``illumination`` (global gain
    0.65..1.35), ``motion_blur`` (the target smeared along its velocity over 0.4 of the
    frame's displacement), ``occlusion`` (another cut-out or photo patch passes in front
    once), ``distractor`` (a recoloured, rescaled copy of the target moving on its own).

    Ground truth (jaxtrack xywh, ``index_base=0``, sub-pixel): the extent of the target's
    full outline (its pixels above half alpha, mapped by the frame's pose; before blur,
    and occlusion does not shrink it, as OTB annotates); the target stays fully inside
    the frame. ``attrs`` holds OTB codes measured on the
    rendered sequence (see :func:`_attributes`). All randomness comes from
    ``numpy.random.default_rng(seed)``: the same seed and inputs give identical bytes.
    """
    n = int(num_frames)
    if n < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    H, W = size
    rng_set, rng_cam, rng_path, rng_pose, rng_dis, rng_ill, rng_src, rng_bg = \
        np.random.default_rng(seed).spawn(8)
    s = _settings(rng_set, len(backgrounds), len(objects), target_px, speed_px)
    t = np.arange(n, dtype=np.float64)

    def photo(i):
        if backgrounds:
            return np.asarray(backgrounds[i])[..., :3]
        return synthetic._background(np.random.default_rng([int(rng_bg.integers(2**31)), i]),
                                     int(H * 1.4), int(W * 1.4)).astype(np.uint8)

    mats, big = _camera(rng_cam, photo(s["background"]), n, (H, W), camera)
    target = _cutout(objects[s["object"]]) if objects else _photo_blob(rng_src, photo(s["blob_photo"]),
                                                                       s["blob_aspect"])
    scale_max = 1.35 if scale_change else 1.0
    patch = _resized(target, s["side_px"] * scale_max)          # rendered at <= 1x, never upsampled
    base = 1 / scale_max
    hw = patch[1].shape
    outline = _outline(patch[1])
    scale = base * (np.exp(np.log(1.35) * _wave_at(_wave_params(rng_pose, 0.3, 1.0, 2), t))
                    if scale_change else np.ones(n))
    angle = 30 * _wave_at(_wave_params(rng_pose, 0.3, 1.2, 2), t) if rotation else np.zeros(n)

    # keep the whole target inside: centre range from the largest extent it will take
    ext = np.array([_extent(hw, scale[i], angle[i]) for i in range(n)])
    fit = min(1.0, (W - 4) / ext[:, 0].max(), (H - 4) / ext[:, 1].max())
    scale, ext = scale * fit, ext * fit
    half = ext.max(0) / 2 + 2
    speeds = s["speed_px"] * (np.exp(speed_variation * _wave_at(_wave_params(rng_path, 0.5, 1.5, 2), t))
                              if speed_variation else np.ones(n))
    centre = _path(rng_path, n, half, (W - half[0], H - half[1]), speeds)
    velocity = np.gradient(centre, axis=0) if n > 1 else np.zeros((n, 2))

    dis = None
    if distractor:
        col, a = patch
        f = s["distractor_scale"]
        dis_layer = (np.clip(col * np.asarray(s["distractor_gain"], np.float32), 0, 255 * a[..., None]), a)
        dhalf = ext.max(0) * f / 2 + 2
        if np.all(dhalf * 2 < (W, H)):
            dspeeds = s["speed_px"] * np.exp(0.3 * _wave_at(_wave_params(rng_dis, 0.5, 1.5, 2), t))
            dis = (dis_layer, f, _path(rng_dis, n, dhalf, (W - dhalf[0], H - dhalf[1]), dspeeds))

    occ = None
    if occlusion and n >= 10:
        if objects:
            occ_layer = _resized(_cutout(objects[s["occluder"]]), s["side_px"] * s["occluder_scale"])
        else:
            occ_layer = _resized(_photo_blob(rng_src, photo(s["occluder_photo"]), 1.0),
                                 s["side_px"] * s["occluder_scale"])
        # it sweeps across the target once: relative motion linear in time, crossing at t_mid
        t_mid = s["occluder_mid"] * (n - 1)
        reach = (ext.max() + max(occ_layer[1].shape)) / 2 + 2
        rel = max(s["occluder_speed"], 1.5 * reach / max(t_mid, 1))
        d = np.array([np.cos(s["occluder_angle"]), np.sin(s["occluder_angle"])])
        occ = (occ_layer, centre + (t - t_mid)[:, None] * rel * d)

    gain = 1 + 0.35 * _wave_at(_wave_params(rng_ill, 0.5, 1.5, 2), t) if illumination else np.ones(n)

    frames = np.empty((n, H, W, 3), np.uint8)
    gt = np.zeros((n, 4))
    blur_len = np.zeros(n, int)
    occ_boxes = []
    for i in range(n):
        canvas = cv2.warpAffine(big, mats[i], (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if dis is not None:
            dl, f, dpath = dis
            _over(canvas, _render(dl, _place(hw, dpath[i], scale[i] * f, -angle[i]), (H, W)))
        m = _place(hw, centre[i], scale[i], angle[i])
        region = _render(patch, m, (H, W))
        gt[i] = _box_of(outline, m)
        if motion_blur:
            speed = float(np.hypot(*velocity[i]))
            blur_len[i] = 2 * round(0.4 * speed / 2) + 1 if 0.4 * speed >= 2 else 0
            region = _blurred(_render(patch, m, (H, W), margin=2 + blur_len[i] // 2), blur_len[i],
                              np.arctan2(*velocity[i][::-1]))
        _over(canvas, region)
        if occ is not None:
            oregion = _render(occ[0], _place(occ[0][1].shape, occ[1][i], 1.0, 0.0), (H, W))
            _over(canvas, oregion)
            ob = None if oregion is None else _tight_box(oregion[3])
            occ_boxes.append(None if ob is None else ob + (oregion[0], oregion[1], 0, 0))
        canvas *= gain[i]
        np.clip(canvas + 0.5, 0, 255, out=canvas)
        frames[i] = canvas.astype(np.uint8)
    gt[:, :2] = np.maximum(gt[:, :2], 0)                      # a no-op: the target stays inside
    gt[:, 2] = np.minimum(gt[:, 2], W - gt[:, 0])
    gt[:, 3] = np.minimum(gt[:, 3], H - gt[:, 1])

    attrs = _attributes(gt, angle if rotation else None, gain, blur_len, occ_boxes, dis is not None)
    if name is None:
        name = "composed-" + ("-".join(str(v) for v in np.ravel(seed)) if np.ndim(seed) else str(seed))
    return Sequence(name=name, gt=gt, index_base=0, images=frames, attrs=tuple(attrs), dataset="composed")


def _iou_part(a, b):
    """Fraction of box ``a`` covered by box ``b`` (xywh)."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih / max(a[2] * a[3], 1e-9)


def _attributes(gt, angle, gain, blur_len, occ_boxes, distractor):
    """OTB attribute codes measured on a rendered sequence. Thresholds follow OTB where it
    gives them (SV: area ratio to the first frame outside [1/2, 2]; FM: centre moves more
    than 20 px in a frame; LR: sqrt(w * h) under 30 px in some frame, the issue's bound);
    otherwise: IPR rotation range > 10 degrees, IV gain range > 0.2, MB blur >= 5 px,
    OCC a quarter of the box covered in some frame, BC a look-alike distractor present."""
    area = gt[:, 2] * gt[:, 3]
    ratio = area / area[0]
    centre = gt[:, :2] + gt[:, 2:] / 2
    step = np.linalg.norm(np.diff(centre, axis=0), axis=1) if len(gt) > 1 else np.zeros(1)
    out = []
    out += ["IV"] * bool(np.ptp(gain) > 0.2)
    out += ["SV"] * bool(ratio.max() > 2 or ratio.min() < 0.5)
    out += ["OCC"] * any(b is not None and _iou_part(g, b) >= 0.25 for g, b in zip(gt, occ_boxes))
    out += ["MB"] * bool(blur_len.max() >= 5)
    out += ["FM"] * bool(step.max() > 20)
    out += ["IPR"] * bool(angle is not None and np.ptp(angle) > 10)
    out += ["BC"] * bool(distractor)
    out += ["LR"] * bool(np.sqrt(area).min() < 30)
    return out


# ----------------------------------------------------------------------------- the two sets

def _mixed_flags(rng):
    """Each nuisance on with probability 1/2 (a spread of difficulties), drawn from ``rng``."""
    names = ("scale_change", "rotation", "illumination", "motion_blur", "occlusion", "distractor")
    return {k: bool(v) for k, v in zip(names, rng.random(len(names)) < 0.5)}


# (group name, seed tag, count, target_px, speed_px) of the composed validation sequences
COMPOSED_GROUPS = (("comp", 101, 8, (40, 120), (1, 8)),
                   ("small", 102, 4, (15, 35), (1, 6)),
                   ("fast", 103, 4, (30, 90), (12, 30)))


def validation_plan(n_images: int, n_objects: int, seed: int = VALIDATION_SEED, num_frames: int = 100):
    """[(name, kind, kwargs)] of the validation set: what :func:`validation_sequences`
    renders, cheap to compute (the manifest records it). ``n_objects`` counts the solid
    cut-outs (:func:`is_solid`); settings' indices refer to that list."""
    plan = [(f"val_syn_{i:02d}", "synthetic", dict(seed=[int(seed), i], num_frames=num_frames))
            for i in range(8)]
    for group, tag, count, target_px, speed_px in COMPOSED_GROUPS:
        for i in range(count):
            flags = _mixed_flags(np.random.default_rng([int(seed), tag, 1000 + i]))
            kw = dict(seed=[int(seed), tag, i], num_frames=num_frames, target_px=target_px,
                      speed_px=speed_px, **flags)
            kw["settings"] = composed_settings(kw["seed"], n_images, n_objects, target_px=target_px,
                                               speed_px=speed_px)
            plan.append((f"val_{group}_{i:02d}", "composed", kw))
    return plan


def validation_sequences(images, objects, seed: int = VALIDATION_SEED, num_frames: int = 100,
                         size=(360, 480)):
    """[(name, Sequence, attributes)]: 8 synthetic sequences (seeds [seed, i]) and 16
    composed ones (8 with targets of 40-120 px at 1-8 px/frame, 4 small targets of
    15-35 px, 4 fast ones at 12-30 px/frame; nuisances on at random, half the time each).
    ``images``/``objects`` must be the held-out (``split="validation"``) files; line-art
    cut-outs are left out (:func:`is_solid`)."""
    objects = [o for o in objects if is_solid(o)]
    out = []
    for name, kind, kw in validation_plan(len(images), len(objects), seed, num_frames):
        kw = {k: v for k, v in kw.items() if k != "settings"}
        if kind == "synthetic":
            seq = synthetic.make_sequence(kw.pop("seed"), size=size, name=name, **kw)
        else:
            seq = composed_sequence(kw.pop("seed"), images, objects, size=size, name=name, **kw)
        out.append((name, seq, list(seq.attrs)))
    return out


PROBE_SIZES = (16, 24, 32, 48, 64, 96)
PROBE_SPEEDS = (2, 6, 12, 24)
_NO_NUISANCE = dict(scale_change=False, rotation=False, illumination=False, motion_blur=False,
                    occlusion=False, distractor=False, camera=False, speed_variation=0.0)


def probe_sequences(images, objects, seed: int = VALIDATION_SEED, sizes=PROBE_SIZES, speeds=PROBE_SPEEDS,
                    num_frames: int = 60, size=(360, 480)):
    """[(name, Sequence, attributes)]: one composed sequence per (target size, speed), every
    other nuisance off (still camera too), constant size sqrt(w * h) and speed (px/frame),
    direction turning smoothly; named ``probe_s<size>_v<speed>``. Each (size, speed) has its
    own seed [seed, 200, size, speed], so adding a size or speed leaves the others as they
    were. Line-art cut-outs are left out (:func:`is_solid`)."""
    objects = [o for o in objects if is_solid(o)]
    out = []
    for si in sizes:
        for v in speeds:
            name = f"probe_s{si}_v{v}"
            seq = composed_sequence([int(seed), 200, int(si), int(v)], images, objects, num_frames, size,
                                    target_px=(si, si), speed_px=(v, v), name=name, **_NO_NUISANCE)
            out.append((name, seq, list(seq.attrs)))
    return out


# ----------------------------------------------------------------------------- OTB layout on disk

def _fmt(v: float) -> str:
    return np.format_float_positional(float(v), precision=4, trim="-")


def read_manifest(root) -> dict | None:
    """The manifest.json of a written root, or None."""
    path = os.path.join(os.fspath(root), "manifest.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_current(root, inputs: dict) -> bool:
    """Whether ``root`` holds a complete set written by this version from ``inputs``."""
    m = read_manifest(root)
    return (m is not None and m.get("version") == VERSION and m.get("inputs") == json.loads(json.dumps(inputs))
            and all(os.path.isfile(os.path.join(os.fspath(root), s, "groundtruth_rect.txt"))
                    for s in m.get("sequences", {})))


def _write_sequence(seq, folder, attrs, jpeg_quality):
    """One OTB sequence folder, built under a temporary name and renamed into place."""
    parent, name = os.path.split(folder)
    tmp, old = os.path.join(parent, f".{name}.tmp"), os.path.join(parent, f".{name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "img"))
    for i in range(len(seq)):
        ok, buf = cv2.imencode(".jpg", seq.frame(i)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise OSError(f"{seq.name}: cannot encode frame {i} as JPEG")
        with open(os.path.join(tmp, "img", f"{i + 1:04d}.jpg"), "wb") as f:
            f.write(buf.tobytes())
    gt = boxes_lib.to_dataset(seq.gt, 1)          # OTB files are 1-based
    fileio.atomic_write_text(os.path.join(tmp, "groundtruth_rect.txt"),
                             "\n".join(",".join(_fmt(v) for v in row) for row in gt) + "\n")
    fileio.atomic_write_text(os.path.join(tmp, "attrs.txt"), ",".join(attrs) + "\n")
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(folder):
        os.rename(folder, old)
    os.rename(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def write_otb_root(entries, root, inputs: dict | None = None, jpeg_quality: int = 95) -> bool:
    """Writes [(name, Sequence, attributes)] as an OTB root: ``<name>/img/0001.jpg..``
    (JPEG quality 95), ``<name>/groundtruth_rect.txt`` (1-based x,y,w,h), ``<name>/attrs.txt``,
    then ``attributes.json`` (name -> codes) and, last, ``manifest.json`` (version, split
    rule, ``inputs`` such as seed and source sha256s, frame counts and attributes per
    sequence). Each sequence folder appears atomically. Returns False and writes nothing
    when the manifest already matches; folders named by an older manifest but not by
    this one are removed (nothing else is touched)."""
    root = os.fspath(root)
    manifest = {"version": VERSION, "split_rule": SPLIT_RULE, "inputs": inputs or {},
                "sequences": {name: {"frames": len(seq), "attributes": list(attrs)}
                              for name, seq, attrs in entries}}
    manifest = json.loads(json.dumps(manifest))
    old = read_manifest(root)
    if old == manifest and is_current(root, manifest["inputs"]):
        return False
    os.makedirs(root, exist_ok=True)
    for name, seq, attrs in entries:
        _write_sequence(seq, os.path.join(root, name), attrs, jpeg_quality)
    for name in (old or {}).get("sequences", {}):
        if name not in manifest["sequences"] and os.path.basename(name) == name and name:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    fileio.atomic_write_json(os.path.join(root, "attributes.json"),
                             {name: list(attrs) for name, _, attrs in entries})
    fileio.atomic_write_json(os.path.join(root, "manifest.json"), manifest)
    return True
