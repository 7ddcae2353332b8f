"""Synthetic tracking sequences, fully in memory and deterministic per seed.

A textured target (rectangle or ellipse with a striped/checkered, noise-modulated
pattern) moves smoothly over a smooth random background. Optional nuisances, each a
classic tracking difficulty: scale change (SV), partial occlusion by a bar moving with
the target (OCC), look-alike distractors (BC), global illumination change (IV) and
camera motion blur (MB).

The ground truth is exact: the target texture is warped with sub-pixel accuracy onto
exactly ``[x, x+w) x [y, y+h)`` (jaxtrack xywh, ``index_base=0``), anti-aliased, and the
box always lies fully inside the frame. All randomness comes from one
``numpy.random.default_rng(seed)``, so a seed gives byte-identical frames.

These sequences are for training and tests; benchmarks are measured on real data.
"""
from __future__ import annotations

import os
import shutil

import cv2
import numpy as np

from jaxtrack import boxes as boxes_lib
from jaxtrack import fileio
from jaxtrack.data.sequence import Sequence


# ----------------------------------------------------------------------------- textures

def _smooth_noise(rng, h, w, cells, channels=3):
    """Random field with features about ``min(h, w) / cells`` pixels large, in [0, 1]."""
    gh, gw = max(2, int(round(h / min(h, w) * cells))), max(2, int(round(w / min(h, w) * cells)))
    small = rng.random((gh, gw, channels), dtype=np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(big.reshape(h, w, channels), 0.0, 1.0)


def _background(rng, h, w):
    """Low-frequency colour field plus mid-frequency grey detail, float32 in [0, 255]."""
    colour = _smooth_noise(rng, h, w, cells=rng.uniform(3, 8)) * 160 + 40
    detail = (_smooth_noise(rng, h, w, cells=rng.uniform(20, 40), channels=1) - 0.5) * 70
    return np.clip(colour + detail, 0, 255).astype(np.float32)


def _pattern(rng, ph, pw, colours, kind, freq, angle):
    """Two-colour stripes/checker modulated by smooth noise: a distinctive, textured look."""
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    u = (xx * np.cos(angle) + yy * np.sin(angle)) / max(ph, pw)
    v = (-xx * np.sin(angle) + yy * np.cos(angle)) / max(ph, pw)
    s = np.sin(2 * np.pi * freq * u)
    if kind == "checker":
        s = s * np.sin(2 * np.pi * freq * v)
    t = (s > 0).astype(np.float32)[..., None]
    c0, c1 = np.asarray(colours[0], np.float32), np.asarray(colours[1], np.float32)
    tex = t * c0 + (1 - t) * c1
    tex *= 0.75 + 0.5 * _smooth_noise(rng, ph, pw, cells=3, channels=1)
    return np.clip(tex, 0, 255).astype(np.float32)


def _mask(ph, pw, shape):
    """Alpha of the patch: a full rectangle or the inscribed anti-aliased ellipse."""
    if shape == "rect":
        return np.ones((ph, pw), np.float32)
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    ry, rx = ph / 2, pw / 2
    r = np.sqrt(((xx + 0.5 - rx) / rx) ** 2 + ((yy + 0.5 - ry) / ry) ** 2)
    return np.clip((1 - r) * min(rx, ry) + 0.5, 0, 1).astype(np.float32)


def _object(rng, ph, pw, shape, colours=None, kind=None):
    """A textured object patch (texture, alpha) with random colours/pattern unless given."""
    if colours is None:
        colours = rng.uniform(0, 255, (2, 3))
        colours[0] = np.clip(colours[0] * 1.3, 0, 255)  # one bright, saturated colour
    kind = kind or rng.choice(["stripes", "checker"])
    tex = _pattern(rng, ph, pw, colours, kind, freq=rng.uniform(2, 4), angle=rng.uniform(0, np.pi))
    return tex, _mask(ph, pw, shape), colours, kind


# ----------------------------------------------------------------------------- drawing

def _draw(canvas, tex, alpha, box):
    """Composites ``tex`` (alpha-masked) onto ``canvas`` so that it covers exactly ``box``.

    The patch area [0, pw) x [0, ph) maps to [x, x+w) x [y, y+h) in continuous pixel
    coordinates; in OpenCV's pixel-centre indices that is j = sx * u + x + sx/2 - 1/2.
    Only the box's pixel neighbourhood is touched.
    """
    x, y, w, h = box
    H, W = canvas.shape[:2]
    ph, pw = alpha.shape
    x0, y0 = max(0, int(np.floor(x)) - 1), max(0, int(np.floor(y)) - 1)
    x1, y1 = min(W, int(np.ceil(x + w)) + 1), min(H, int(np.ceil(y + h)) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    sx, sy = w / pw, h / ph
    m = np.array([[sx, 0, x + sx / 2 - 0.5 - x0], [0, sy, y + sy / 2 - 0.5 - y0]], np.float64)
    size = (x1 - x0, y1 - y0)
    t = cv2.warpAffine(tex, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=0)[..., None]
    roi = canvas[y0:y1, x0:x1]
    roi += a * (t - roi)


def _motion_kernel(length, angle):
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = np.cos(angle) * c, np.sin(angle) * c
    cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
    return k / k.sum()


def _wave(rng, n, t, lo=0.3, hi=1.5, terms=3):
    """Smooth random signal in [-1, 1]: a few sinusoids, frequencies in cycles per 100 frames."""
    amps = rng.uniform(0.2, 1.0, terms)
    amps /= amps.sum()
    freqs = rng.uniform(lo, hi, terms) / 100
    phases = rng.uniform(0, 2 * np.pi, terms)
    return np.sum(amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None]), axis=0)


def _trajectory(rng, n, hw, base_wh, scale_change, speed=(0.5, 2.0)):
    """(n, 4) xywh boxes moving smoothly, always fully inside an image of size ``hw``."""
    H, W = hw
    t = np.arange(n, dtype=np.float64)
    bw, bh = base_wh
    s = np.exp(np.log(1.4) * _wave(rng, n, t, 0.3, 1.0, 2)) if scale_change else np.ones(n)
    ar = np.exp(0.08 * _wave(rng, n, t, 0.3, 1.0, 1)) if scale_change else np.ones(n)
    w, h = bw * s * ar, bh * s / ar
    # keep the box inside with a 1-pixel margin; clamp the size if it would not fit
    w, h = np.minimum(w, W - 2.0), np.minimum(h, H - 2.0)
    u = 0.5 + 0.5 * 0.98 * _wave(rng, n, t, *speed)
    v = 0.5 + 0.5 * 0.98 * _wave(rng, n, t, *speed)
    x = 1.0 + u * (W - 2.0 - w)
    y = 1.0 + v * (H - 2.0 - h)
    return np.stack([x, y, w, h], axis=1)


# ----------------------------------------------------------------------------- sequences

def make_sequence(seed, num_frames: int = 100, size=(240, 320), *, scale_change=True, occlusion=True,
                  distractors=1, illumination=True, blur=True, appearance_change: float = 0.0,
                  name=None, shape=None) -> Sequence:
    """A synthetic sequence with exact ground truth (jaxtrack xywh, ``index_base=0``).

    Args:
      seed: anything ``numpy.random.default_rng`` accepts (int or list of ints).
      num_frames: number of frames.
      size: (height, width).
      scale_change: target size varies smoothly by up to 1.4x either way.
      occlusion: a bar covers up to ~60% of the target for ~15% of the frames.
      distractors: number of look-alike objects (same pattern family, similar colours).
      illumination: smooth global brightness change (gain 0.6..1.4).
      blur: a stretch of frames gets camera motion blur.
      appearance_change: the target's texture turns, smoothly and monotonically, into a
        second one (new colours and pattern, same outline) by this fraction at the last
        frame (0: never; 1: the last frame shows only the second texture). The look-alike
        distractors keep resembling the first texture, so a fixed first-frame template is
        drawn to them as the target changes: the case template updates are for.
      name: defaults to ``synthetic-<seed>``.
      shape: "rect" or "ellipse" for the target (random if None).
    """
    # One child stream per component, so that switching a nuisance off leaves the rest of
    # the sequence (background, target, path) unchanged.
    # (child i of spawn(8) is child i of spawn(7): adding the 8th left older sequences as they were)
    rng_bg, rng_target, rng_path, rng_dis, rng_occ, rng_ill, rng_blur, rng_app = \
        np.random.default_rng(seed).spawn(8)
    H, W = size
    n = int(num_frames)
    if n < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    bg = _background(rng_bg, H, W)

    shape = shape or str(rng_target.choice(["rect", "ellipse"]))
    bw = rng_target.uniform(0.12, 0.22) * W
    bh = float(np.clip(bw * rng_target.uniform(0.6, 1.6), 0.08 * H, 0.35 * H))
    ph, pw = max(8, int(round(bh))), max(8, int(round(bw)))
    tex, alpha, colours, kind = _object(rng_target, ph, pw, shape)
    gt = _trajectory(rng_path, n, (H, W), (bw, bh), scale_change)

    if not 0.0 <= appearance_change <= 1.0:
        raise ValueError(f"appearance_change must be in [0, 1], got {appearance_change}")
    blend = np.zeros(n)
    if appearance_change > 0:
        tex_b = _object(rng_app, ph, pw, shape)[0]
        blend = appearance_change * 0.5 * (1 - np.cos(np.pi * np.arange(n) / max(n - 1, 1)))

    objects = []  # (texture, alpha, boxes) drawn behind the target
    for _ in range(int(distractors)):
        similar = np.clip(colours + rng_dis.uniform(-30, 30, colours.shape), 0, 255)
        dtex, dalpha, _, _ = _object(rng_dis, ph, pw, shape, colours=similar, kind=kind)
        f = rng_dis.uniform(0.8, 1.2)
        objects.append((dtex, dalpha, _trajectory(rng_dis, n, (H, W), (bw * f, bh * f), scale_change)))

    occ = None
    if occlusion and n >= 10:
        length = max(3, int(0.15 * n))
        start = int(rng_occ.integers(int(0.2 * n), max(int(0.2 * n) + 1, n - length)))
        ramp = np.zeros(n)
        ramp[start:start + length] = 0.6 * np.sin(np.linspace(0, np.pi, length + 2)[1:-1])
        otex = _smooth_noise(rng_occ, 32, 32, cells=2) * 90 + rng_occ.uniform(0, 120, 3).astype(np.float32)
        side = rng_occ.choice([-1, 1])  # the bar slides in from the left or the right
        occ = (otex.astype(np.float32), np.ones((32, 32), np.float32), ramp, side)

    t = np.arange(n, dtype=np.float64)
    gain = 1 + 0.4 * _wave(rng_ill, n, t, 0.5, 1.5, 2) if illumination else np.ones(n)
    blurred = np.zeros(n, bool)
    if blur and n >= 5:
        length = max(2, int(0.12 * n))
        start = int(rng_blur.integers(0, max(1, n - length)))
        blurred[start:start + length] = True
    blur_len = rng_blur.integers(5, 12, n)
    blur_angle = rng_blur.uniform(0, np.pi, n)

    frames = np.empty((n, H, W, 3), np.uint8)
    for i in range(n):
        canvas = bg.copy()
        for dtex, dalpha, dboxes in objects:
            _draw(canvas, dtex, dalpha, dboxes[i])
        _draw(canvas, tex if blend[i] == 0 else (1 - blend[i]) * tex + blend[i] * tex_b, alpha, gt[i])
        if occ is not None and occ[2][i] > 0:
            x, y, w, h = gt[i]
            f = occ[2][i]
            ox = x + (1 - f) * w if occ[3] > 0 else x - 0.3 * w
            _draw(canvas, occ[0], occ[1], (ox, y - 0.2 * h, (f + 0.3) * w, 1.4 * h))
        if gain[i] != 1:
            canvas *= gain[i]
        if blurred[i]:
            canvas = cv2.filter2D(canvas, -1, _motion_kernel(int(blur_len[i]), blur_angle[i]),
                                  borderType=cv2.BORDER_REFLECT)
        np.clip(canvas + 0.5, 0, 255, out=canvas)
        frames[i] = canvas.astype(np.uint8)  # +0.5 then truncation: round half up

    attrs = ["SV"] * bool(scale_change) + ["OCC"] * (occ is not None) + ["BC"] * (int(distractors) > 0) \
        + ["IV"] * bool(illumination) + ["MB"] * bool(blurred.any()) + ["APP"] * bool(appearance_change > 0)
    if name is None:
        name = "synthetic-" + ("-".join(str(s) for s in np.ravel(seed)) if np.ndim(seed) else str(seed))
    return Sequence(name=name, gt=gt, index_base=0, images=frames, attrs=tuple(attrs),
                    dataset="synthetic")


def make_leaving_sequence(seed, num_frames: int = 30, size=(96, 120), speed: float = 6.0,
                          name: str = "leaving") -> Sequence:
    """A textured target that slides out of the frame to the right and stays out: the
    ground truth is NaN from the first frame where the target is fully outside. For
    checking what trackers report (their ``lost`` flag, finite boxes) when there is
    nothing left to track."""
    rng_bg, rng_target = np.random.default_rng(seed).spawn(2)
    H, W = size
    side = max(8.0, min(H, W) / 4)
    tex, alpha, _, _ = _object(rng_target, int(side), int(side), "rect")
    background = _background(rng_bg, H, W)
    frames, gt = [], []
    x0, y = W / 3 - side / 2, H / 2 - side / 2
    for i in range(int(num_frames)):
        box = np.array([x0 + speed * i, y, side, side])
        canvas = background.copy()
        _draw(canvas, tex, alpha, box)
        frames.append(np.clip(canvas, 0, 255).astype(np.uint8))
        gt.append(box if box[0] < W else np.full(4, np.nan))
    return Sequence(name=name, gt=np.asarray(gt), index_base=0, images=np.stack(frames),
                    attrs=("OV",), dataset="synthetic")


def make_dataset(seed, count: int, **kw) -> list[Sequence]:
    """``count`` independent sequences; sequence ``i`` uses ``default_rng([seed, i])``."""
    return [make_sequence([int(seed), i], name=f"synthetic-{seed}-{i:04d}", **kw) for i in range(count)]


# ----------------------------------------------------------------------------- GOT-10k layout

def write_got10k_layout(sequences, root, split: str = "train", jpeg_quality: int = 95) -> str:
    """Writes sequences as ``<root>/<split>/<name>/00000001.jpg`` + ``groundtruth.txt``.

    Boxes are written in GOT-10k's convention (0-based, comma-separated, 4 decimals),
    the same ``index_base`` the got10k reader uses, so ``load_dataset("got10k", root,
    split)`` gives back the boxes to within 5e-5 px and the JPEG-compressed frames.
    ``absence.label`` marks frames without a finite box. ``list.txt`` lists every
    sequence folder of the split. Each sequence folder appears atomically (written
    under a temporary name, then renamed). Returns the split folder.
    """
    split_dir = os.path.join(os.fspath(root), split)
    os.makedirs(split_dir, exist_ok=True)
    for seq in sequences:
        final = os.path.join(split_dir, seq.name)
        tmp = os.path.join(split_dir, f".{seq.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        for i in range(len(seq)):
            ok, buf = cv2.imencode(".jpg", seq.frame(i)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            if not ok:
                raise IOError(f"{seq.name}: cannot encode frame {i} as JPEG")
            with open(os.path.join(tmp, f"{i + 1:08d}.jpg"), "wb") as f:
                f.write(buf.tobytes())
        gt = boxes_lib.to_dataset(seq.gt, 0)  # GOT-10k files are 0-based, as the reader assumes
        lines = [",".join("nan" if not np.isfinite(v) else f"{v:.4f}" for v in row) for row in gt]
        fileio.atomic_write_text(os.path.join(tmp, "groundtruth.txt"), "\n".join(lines) + "\n")
        absent = ~seq.valid
        fileio.atomic_write_text(os.path.join(tmp, "absence.label"),
                                 "\n".join(str(int(a)) for a in absent) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    names = sorted(d for d in os.listdir(split_dir)
                   if not d.startswith(".") and os.path.isfile(os.path.join(split_dir, d, "groundtruth.txt")))
    fileio.atomic_write_text(os.path.join(split_dir, "list.txt"), "\n".join(names) + "\n")
    return split_dir
