"""Tracking metrics that reproduce the got10k toolkit's numbers exactly (numpy float64).

What each benchmark reports (checked against got10k's ``experiments/otb.py``,
``lasot.py`` and ``got10k.py``):

* **Success / AUC** (OTB, LaSOT): fraction of frames with IoU *strictly greater*
  than each of 21 thresholds ``linspace(0, 1, 21)``; the AUC is the mean of that curve.
* **Precision @ 20 px** (OTB, LaSOT): fraction of frames whose centre error is
  ``<=`` each threshold ``0, 1, ..., 50`` px; the score is the curve at 20 px.
* **Normalised precision** (LaSOT): centre error divided by the ground-truth size,
  ``<=`` each of 51 thresholds ``linspace(0, 0.5, 51)``. got10k's ExperimentLaSOT
  reports the **mean of that curve** (``norm_prec``); pytracking reports the curve at
  0.2 (index 20), which we give too as ``norm_prec20``.
* **AO, SR@0.5, SR@0.75** (GOT-10k): mean IoU and fraction of IoUs ``> 0.5`` /
  ``> 0.75`` over frames ``1..N-1`` (the initialisation frame is *excluded*) where the
  target is visible, with boxes clipped to the image as got10k's ``rect_iou(bound=...)``
  does when the image size is known.

First frame and missing ground truth
------------------------------------
As got10k's OTB/LaSOT experiments do, the first predicted box is replaced by the
ground truth (``boxes[0] = anno[0]``) before anything is measured. Frames whose
ground truth has a NaN are left out of every metric, as ExperimentLaSOT does
(ExperimentOTB would count them as failures, but OTB has no such frames, so the two
agree on OTB). A NaN *prediction* counts as a failure (IoU 0 for AO, where got10k
would return NaN for the whole sequence).

Aggregation (``aggregate``) follows got10k too: the per-sequence curves are averaged,
and AUC / Prec@20 / normalised precision are read off the *mean curves*; AO and SR
are frame-weighted over all sequences, as ExperimentGOT10k concatenates the IoUs of
every sequence before averaging.
"""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np

from jaxtrack import boxes as B

IOU_THRESHOLDS = np.linspace(0, 1, 21)
CE_THRESHOLDS = np.arange(51)
NCE_THRESHOLDS = np.linspace(0, 0.5, 51)
PREC_PIXELS = 20  # index of the 20 px threshold in CE_THRESHOLDS
NORM_PREC_INDEX = 20  # index of 0.2 in NCE_THRESHOLDS (pytracking's normalised precision)


# ----------------------------------------------------------------------------- curves

def _fraction(mask: np.ndarray) -> np.ndarray:
    """Mean over frames (axis 0) of a boolean (frames, thresholds) mask; NaN if no frame."""
    if mask.shape[0] == 0:
        return np.full(mask.shape[1], np.nan)
    return mask.mean(axis=0)


def success_curve(ious, thresholds=IOU_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with IoU strictly greater than each threshold (got10k's rule)."""
    ious = np.asarray(ious, np.float64).reshape(-1, 1)
    return _fraction(ious > np.asarray(thresholds, np.float64)[None, :])


def precision_curve(center_errors, thresholds=CE_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with centre error ``<=`` each threshold (pixels)."""
    ce = np.asarray(center_errors, np.float64).reshape(-1, 1)
    return _fraction(ce <= np.asarray(thresholds, np.float64)[None, :])


def norm_precision_curve(norm_center_errors, thresholds=NCE_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with normalised centre error ``<=`` each threshold (LaSOT)."""
    return precision_curve(norm_center_errors, thresholds)


def auc(succ_curve) -> float:
    """Success score: the mean of the 21-point success curve (got10k's 'success_score')."""
    return float(np.mean(succ_curve))


def prec_at(prec_curve, index: int = PREC_PIXELS) -> float:
    """Precision score: the curve at 20 px (got10k's 'precision_score')."""
    return float(np.asarray(prec_curve)[index])


# ----------------------------------------------------------------------------- GOT-10k

def clip_to_image(rects, image_wh) -> np.ndarray:
    """Clip xywh boxes to the image the way got10k's ``rect_iou(bound=(W, H))`` does.

    The corner is clipped to ``[0, W] x [0, H]`` first, then the size to what is left
    of the image from that corner. (A box that starts left of the image keeps its
    width: this is got10k's rule, kept so that AO matches the official numbers.)
    """
    r = np.array(rects, np.float64, copy=True)
    w_img, h_img = float(image_wh[0]), float(image_wh[1])
    r[:, 0] = np.clip(r[:, 0], 0, w_img)
    r[:, 1] = np.clip(r[:, 1], 0, h_img)
    r[:, 2] = np.clip(r[:, 2], 0, w_img - r[:, 0])
    r[:, 3] = np.clip(r[:, 3], 0, h_img - r[:, 1])
    return r


def got10k_ious(pred, gt, visible=None, image_wh=None) -> np.ndarray:
    """The IoUs GOT-10k averages: frames 1..N-1, visible target, boxes clipped to the image.

    ``pred`` and ``gt`` are (N, 4) xywh in the dataset's convention (GOT-10k is 0-based,
    which matters for the clipping only). ``visible`` is an optional (N,) mask (GOT-10k's
    ``cover > 0``); frames whose ground truth has a NaN are always left out. A NaN
    prediction gives IoU 0.
    """
    pred = np.asarray(pred, np.float64)[1:]
    gt = np.asarray(gt, np.float64)[1:]
    keep = ~np.isnan(gt).any(axis=1)
    if visible is not None:
        keep &= np.asarray(visible, bool)[1:]
    if image_wh is not None:
        pred, gt = clip_to_image(pred, image_wh), clip_to_image(gt, image_wh)
    ious = np.asarray(B.iou(pred[keep], gt[keep]), np.float64)
    return np.nan_to_num(ious, nan=0.0)


def ao_sr(ious) -> tuple[float, float, float]:
    """GOT-10k's average overlap, SR@0.5 and SR@0.75 of a set of IoUs (NaN if empty)."""
    ious = np.asarray(ious, np.float64)
    if ious.size == 0:
        return float("nan"), float("nan"), float("nan")
    return float(ious.mean()), float(np.mean(ious > 0.5)), float(np.mean(ious > 0.75))


# ----------------------------------------------------------------------------- sequences

def dataset_sequence_metrics(pred, gt, *, visible=None, image_wh=None) -> dict:
    """Metrics of one sequence from boxes already in the dataset's own convention.

    ``pred`` and ``gt`` are (N, 4) xywh arrays exactly as the result and ground-truth
    files hold them. See the module docstring for what each entry means.
    """
    pred = np.array(pred, np.float64, copy=True).reshape(-1, 4)
    gt = np.asarray(gt, np.float64).reshape(-1, 4)
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} predicted boxes for {len(gt)} ground-truth boxes")
    if len(gt) == 0:
        raise ValueError("empty sequence")
    pred[0] = gt[0]  # got10k: the first frame is given, not tracked

    valid = ~np.isnan(gt).any(axis=1)
    p, g = pred[valid], gt[valid]
    succ = success_curve(B.iou(p, g))
    prec = precision_curve(B.center_error(p, g))
    nprec = norm_precision_curve(B.normalized_center_error(p, g))
    ious = got10k_ious(pred, gt, visible, image_wh)
    ao, sr50, sr75 = ao_sr(ious)
    return {
        "auc": auc(succ),
        "prec20": prec_at(prec),
        "norm_prec": float(np.mean(nprec)),
        "norm_prec20": prec_at(nprec, NORM_PREC_INDEX),
        "ao": ao,
        "sr50": sr50,
        "sr75": sr75,
        "success_curve": succ,
        "precision_curve": prec,
        "norm_precision_curve": nprec,
        "frames": int(len(gt)),
        "valid_frames": int(valid.sum()),
        "ao_frames": int(ious.size),
    }


def sequence_metrics(pred_xywh, gt_xywh, index_base: int, *, visible=None, image_wh=None) -> dict:
    """Metrics of one sequence from jaxtrack-convention boxes (0-based continuous xywh).

    Both are moved to the dataset's convention (``boxes.to_dataset``) first, so the
    numbers are those got10k computes on the written result files (this matters for
    GOT-10k's clipping to the image; IoU and centre errors are shift-invariant).

    Returns a dict with ``auc, prec20, norm_prec, norm_prec20, ao, sr50, sr75``
    (floats), ``success_curve`` (21,), ``precision_curve`` (51,),
    ``norm_precision_curve`` (51,) and frame counts ``frames, valid_frames, ao_frames``.
    """
    return dataset_sequence_metrics(B.to_dataset(pred_xywh, index_base),
                                    B.to_dataset(gt_xywh, index_base),
                                    visible=visible, image_wh=image_wh)


def aggregate(per_seq: Mapping[str, dict] | Sequence[dict]) -> dict:
    """Benchmark scores over sequences, as got10k computes them.

    Curves are the per-sequence curves averaged with equal weight per sequence, and
    ``auc`` / ``prec20`` / ``norm_prec`` are read off those mean curves. ``ao``, ``sr50``
    and ``sr75`` are frame-weighted (got10k concatenates all sequences' IoUs).
    Sequences with no annotated frame are skipped with a warning.
    """
    items = list(per_seq.values()) if isinstance(per_seq, Mapping) else list(per_seq)
    used = [m for m in items if m.get("valid_frames", 1) > 0]
    if len(used) < len(items):
        warnings.warn(f"{len(items) - len(used)} sequence(s) without annotated frames left out")
    if not used:
        raise ValueError("no sequence to aggregate")
    succ = np.mean([m["success_curve"] for m in used], axis=0)
    prec = np.mean([m["precision_curve"] for m in used], axis=0)
    nprec = np.mean([m["norm_precision_curve"] for m in used], axis=0)

    n = np.array([m["ao_frames"] for m in used], np.float64)
    def frame_weighted(key):
        vals = np.array([m[key] for m in used], np.float64)
        return float(np.sum(vals[n > 0] * n[n > 0]) / n.sum()) if n.sum() > 0 else float("nan")

    return {
        "auc": auc(succ),
        "prec20": prec_at(prec),
        "norm_prec": float(np.mean(nprec)),
        "norm_prec20": prec_at(nprec, NORM_PREC_INDEX),
        "ao": frame_weighted("ao"),
        "sr50": frame_weighted("sr50"),
        "sr75": frame_weighted("sr75"),
        "success_curve": succ,
        "precision_curve": prec,
        "norm_precision_curve": nprec,
        "sequences": len(used),
        "frames": int(sum(m["frames"] for m in used)),
    }
