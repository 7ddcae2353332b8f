"""jaxtrack.eval.metrics against the got10k toolkit's own code, to 1e-9.

Unit comparisons use got10k's functions (rect_iou, center_error, ExperimentOTB's
_calc_curves, ExperimentLaSOT's curves, ExperimentGOT10k's AO/SR); end-to-end tests
write result files in got10k's layout, run the experiment's ``report()`` on a small
fake dataset, and compare every number with ``evaluate_results`` / ``aggregate``.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest

got10k = pytest.importorskip("got10k")
from got10k.experiments import ExperimentGOT10k, ExperimentOTB  # noqa: E402
from got10k.utils import metrics as gm  # noqa: E402

from jaxtrack import boxes as B  # noqa: E402
from jaxtrack.eval import metrics as M  # noqa: E402
from jaxtrack.eval.ope import evaluate_results  # noqa: E402

TOL = 1e-9
MIRROR = os.environ.get("GOT10K_TOOLKIT_GIT", "/work/.mirror/got-10k+toolkit/repo")


@dataclass
class Seq:
    """Stand-in for jaxtrack.data.Sequence (name, gt in jaxtrack xywh, index_base)."""
    name: str
    gt: np.ndarray
    index_base: int = 1
    visible: np.ndarray | None = None  # optional, GOT-10k's cover > 0
    image_wh: tuple | None = None      # optional, GOT-10k's resolution

    def __len__(self):
        return len(self.gt)


def make_case(rng, n, integer_gt=True, img=(640, 480)):
    """Ground truth and predictions in a dataset's convention, with edge cases mixed in."""
    xy = rng.uniform(0, 400, (n, 2))
    wh = rng.uniform(8, 120, (n, 2))
    gt = np.concatenate([xy, wh], 1)
    if integer_gt:
        gt = np.round(gt)  # benchmark annotations are integers; keeps test ties exact
    pred = gt + rng.normal(0, 1, (n, 4)) * np.array([10, 10, 5, 5])
    pred[:, 2:] = np.abs(pred[:, 2:]) + 1
    k = max(n // 8, 1)
    pred[1:1 + k] = gt[1:1 + k]                                       # identical boxes
    pred[1 + k:1 + 2 * k] = gt[1 + k:1 + 2 * k] + [500, 0, 0, 0]      # zero overlap
    pred[1 + 2 * k:1 + 3 * k] = gt[1 + 2 * k:1 + 3 * k] + [20, 0, 0, 0]  # centre error exactly 20
    pred[1 + 3 * k:1 + 4 * k] = gt[1 + 3 * k:1 + 4 * k] + [-30, -20, 0, 0]  # partly off image
    pred[0] = [1, 2, 3, 4]  # garbage: got10k replaces frame 0 by the ground truth
    return np.round(pred, 4), gt


def otb_curves(pred, gt):
    exp = ExperimentOTB.__new__(ExperimentOTB)
    exp.nbins_iou, exp.nbins_ce = 21, 51
    pred = pred.copy()
    pred[0] = gt[0]
    return exp._calc_curves(gm.rect_iou(pred, gt), gm.center_error(pred, gt))


def load_upstream_lasot():
    """got10k's ExperimentLaSOT: installed, or (got10k 0.1.3 on PyPI lacks it) the
    toolkit's git source with its package-relative imports resolved."""
    try:
        from got10k.experiments.lasot import ExperimentLaSOT
        return ExperimentLaSOT
    except ImportError:
        pass
    try:
        show = lambda p: subprocess.run(["git", "-C", MIRROR, "show", f"HEAD:{p}"], check=True,
                                        capture_output=True, text=True).stdout
        metrics_src, lasot_src = show("got10k/utils/metrics.py"), show("got10k/experiments/lasot.py")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("got10k's ExperimentLaSOT is neither installed nor in a toolkit checkout")
    ns = {"__name__": "got10k_upstream_lasot"}
    exec(compile(metrics_src, "got10k/utils/metrics.py", "exec"), ns)
    lasot_src = (lasot_src.replace("from .otb import ExperimentOTB",
                                   "from got10k.experiments.otb import ExperimentOTB")
                 .replace("from ..datasets import LaSOT", "LaSOT = None")
                 .replace("from ..utils.metrics import", "# names from upstream metrics:"))
    exec(compile(lasot_src, "got10k/experiments/lasot.py", "exec"), ns)
    return ns["ExperimentLaSOT"]


class FakeDataset:
    """Enough of a got10k dataset for the experiments' ``report()``."""

    def __init__(self, annos, metas=None):
        self.seq_names = list(annos)
        self.annos, self.metas = annos, metas
        self.return_meta = False

    def __len__(self):
        return len(self.seq_names)

    def __getitem__(self, key):
        name = self.seq_names[key] if isinstance(key, int) else key
        if self.metas is not None and self.return_meta:
            return [], self.annos[name], self.metas[name]
        return [], self.annos[name]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def write_got10k_results(folder, name, pred, times, delimiter=","):
    os.makedirs(os.path.join(folder, "times"), exist_ok=True)
    np.savetxt(os.path.join(folder, f"{name}.txt"), pred, fmt="%.4f", delimiter=delimiter)
    np.savetxt(os.path.join(folder, "times", f"{name}_time.txt"), times, fmt="%.8f")


# ----------------------------------------------------------------------------- units

def test_iou_and_center_error_match_got10k():
    pred, gt = make_case(np.random.default_rng(0), 200, integer_gt=False)
    np.testing.assert_allclose(B.iou(pred, gt), gm.rect_iou(pred.copy(), gt.copy()), rtol=0, atol=TOL)
    np.testing.assert_allclose(B.center_error(pred, gt), gm.center_error(pred, gt), rtol=0, atol=TOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sequence_curves_match_otb_calc_curves(seed):
    pred, gt = make_case(np.random.default_rng(seed), 97, integer_gt=bool(seed % 2))
    succ, prec = otb_curves(pred, gt)
    m = M.dataset_sequence_metrics(pred, gt)
    np.testing.assert_allclose(m["success_curve"], succ, rtol=0, atol=TOL)
    np.testing.assert_allclose(m["precision_curve"], prec, rtol=0, atol=TOL)
    assert abs(m["auc"] - np.mean(succ)) < TOL
    assert abs(m["prec20"] - prec[20]) < TOL


def test_edge_cases_identical_and_disjoint():
    gt = np.tile([10.0, 20.0, 30.0, 40.0], (11, 1))
    same = M.dataset_sequence_metrics(gt.copy(), gt)
    succ, prec = otb_curves(gt.copy(), gt)
    # IoU of identical boxes is A / (A + eps) < 1, so the threshold 1.0 is never passed
    assert same["auc"] == pytest.approx(20 / 21, abs=TOL) == np.mean(succ)
    assert same["prec20"] == 1.0 and same["ao"] == pytest.approx(1.0, abs=1e-12)
    far = gt + [1000, 0, 0, 0]
    off = M.dataset_sequence_metrics(far, gt)
    succ, prec = otb_curves(far, gt)
    np.testing.assert_allclose(off["success_curve"], succ, atol=TOL)
    assert off["auc"] == pytest.approx(20 / 21 / 11, abs=TOL)  # only frame 0 (set to gt)
    assert off["ao"] == 0.0 and off["sr50"] == 0.0 and off["sr75"] == 0.0


def test_curve_threshold_rules():
    # success counts IoU strictly above t, precision counts errors at or below t
    np.testing.assert_array_equal(M.success_curve([0.5], [0.4, 0.5, 0.6]), [1, 0, 0])
    np.testing.assert_array_equal(M.precision_curve([20.0], [19, 20, 21]), [0, 1, 1])
    assert np.isnan(M.success_curve([])).all()


def test_sequence_metrics_uses_dataset_convention():
    rng = np.random.default_rng(3)
    pred, gt = make_case(rng, 40)
    a = M.sequence_metrics(B.from_dataset(pred, 1), B.from_dataset(gt, 1), 1)
    b = M.dataset_sequence_metrics(pred, gt)
    for k in ("auc", "prec20", "norm_prec", "ao", "sr50", "sr75"):
        assert abs(a[k] - b[k]) < TOL
    # the first prediction never matters
    p2 = B.from_dataset(pred, 1)
    p2[0] = [1e4, 1e4, 1, 1]
    assert M.sequence_metrics(p2, B.from_dataset(gt, 1), 1)["auc"] == a["auc"]


def test_lasot_curves_and_nan_ground_truth():
    ExperimentLaSOT = load_upstream_lasot()
    exp = ExperimentLaSOT.__new__(ExperimentLaSOT)
    exp.nbins_iou, exp.nbins_ce, exp.nbins_nce = 21, 51, 51
    pred, gt = make_case(np.random.default_rng(4), 120, integer_gt=False)
    gt[[5, 6, 50, 119]] = np.nan  # unannotated frames (LaSOT's absent targets)
    pred[7] = np.nan  # a lost prediction counts as a failure
    ref_pred = pred.copy()
    ref_pred[0] = gt[0]
    ious, ces, nces = exp._calc_metrics(ref_pred, gt)
    succ, prec, nprec = exp._calc_curves(ious, ces, nces)
    m = M.dataset_sequence_metrics(pred, gt)
    np.testing.assert_allclose(m["success_curve"], succ, rtol=0, atol=TOL)
    np.testing.assert_allclose(m["precision_curve"], prec, rtol=0, atol=TOL)
    np.testing.assert_allclose(m["norm_precision_curve"], nprec, rtol=0, atol=TOL)
    assert abs(m["norm_prec"] - np.mean(nprec)) < TOL  # got10k reports the curve's mean
    assert abs(m["norm_prec20"] - nprec[20]) < TOL     # pytracking's: the value at 0.2
    assert m["valid_frames"] == 116


# ----------------------------------------------------------------------------- end to end

def test_otb_report_end_to_end(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    annos, seqs, name = {}, [], "MyTracker"
    for i, n in enumerate([30, 55, 81]):
        pred, gt = make_case(rng, n)
        annos[f"seq{i}"] = gt
        seqs.append(Seq(f"seq{i}", B.from_dataset(gt, 1), 1))
        write_got10k_results(tmp_path / "res" / name, f"seq{i}", pred, rng.uniform(0.01, 0.02, n))

    monkeypatch.setattr(ExperimentOTB, "plot_curves", lambda *a, **k: None)
    exp = ExperimentOTB.__new__(ExperimentOTB)
    exp.dataset = FakeDataset(annos)
    exp.result_dir, exp.report_dir = str(tmp_path / "res"), str(tmp_path / "rep")
    exp.nbins_iou, exp.nbins_ce = 21, 51
    perf = exp.report([name])[name]

    ours = evaluate_results(tmp_path / "res" / name, seqs)
    assert abs(ours["mean"]["auc"] - perf["overall"]["success_score"]) < TOL
    assert abs(ours["mean"]["prec20"] - perf["overall"]["precision_score"]) < TOL
    np.testing.assert_allclose(ours["mean"]["success_curve"], perf["overall"]["success_curve"], atol=TOL)
    np.testing.assert_allclose(ours["mean"]["precision_curve"], perf["overall"]["precision_curve"], atol=TOL)
    for s in annos:
        assert abs(ours["per_sequence"][s]["auc"] - perf["seq_wise"][s]["success_score"]) < TOL
        assert abs(ours["per_sequence"][s]["prec20"] - perf["seq_wise"][s]["precision_score"]) < TOL


def test_lasot_report_end_to_end(tmp_path, monkeypatch):
    ExperimentLaSOT = load_upstream_lasot()
    rng = np.random.default_rng(6)
    annos, seqs, name = {}, [], "MyTracker"
    for i, n in enumerate([40, 64]):
        pred, gt = make_case(rng, n)
        gt[rng.choice(np.arange(1, n), 5, replace=False)] = np.nan
        annos[f"lasot-{i}"] = gt
        seqs.append(Seq(f"lasot-{i}", B.from_dataset(gt, 1), 1))
        write_got10k_results(tmp_path / "res" / name, f"lasot-{i}", pred, rng.uniform(0.01, 0.02, n),
                             delimiter="\t" if i else ",")
    # got10k reads commas only; give it a comma copy of the tab file, we read the tab one
    tab = tmp_path / "res" / name / "lasot-1.txt"
    (tmp_path / "got" / name / "times").mkdir(parents=True)
    for s in annos:
        src = tmp_path / "res" / name / f"{s}.txt"
        (tmp_path / "got" / name / f"{s}.txt").write_text(src.read_text().replace("\t", ","))
    assert "\t" in tab.read_text()

    monkeypatch.setattr(ExperimentLaSOT, "plot_curves", lambda *a, **k: None)
    exp = ExperimentLaSOT.__new__(ExperimentLaSOT)
    exp.dataset = FakeDataset(annos)
    exp.result_dir, exp.report_dir = str(tmp_path / "got"), str(tmp_path / "rep")
    exp.nbins_iou, exp.nbins_ce, exp.nbins_nce = 21, 51, 51
    perf = exp.report([name])[name]

    ours = evaluate_results(tmp_path / "res" / name, seqs)
    assert abs(ours["mean"]["auc"] - perf["overall"]["success_score"]) < TOL
    assert abs(ours["mean"]["prec20"] - perf["overall"]["precision_score"]) < TOL
    assert abs(ours["mean"]["norm_prec"] - perf["overall"]["normalized_precision_score"]) < TOL
    for s in annos:
        got = perf["seq_wise"][s]
        assert abs(ours["per_sequence"][s]["auc"] - got["success_score"]) < TOL
        assert abs(ours["per_sequence"][s]["norm_prec"] - got["normalized_precision_score"]) < TOL


def test_got10k_ao_sr_end_to_end(tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    res = (320, 240)
    annos, metas, full, name = {}, {}, {}, "MyTracker"
    ref_ious = []
    for i, n in enumerate([25, 60, 33]):
        pred, gt = make_case(rng, n, img=res)
        gt[:, :2] = np.minimum(gt[:, :2], 250)  # GOT-10k gt lies in the image (0-based)
        pred[rng.choice(np.arange(1, n), 3)] = [-40, -30, 100, 90]  # leaves the image
        cover = rng.integers(0, 9, n)
        cover[rng.choice(np.arange(1, n), 4, replace=False)] = 0  # absent target
        s = f"GOT-10k_Val_{i:06d}"
        annos[s], metas[s] = gt, {"cover": cover, "resolution": str(res)}
        d = tmp_path / "res" / name / s
        d.mkdir(parents=True)
        np.savetxt(d / f"{s}_001.txt", pred, fmt="%.4f", delimiter=",")
        np.savetxt(d / f"{s}_time.txt", rng.uniform(0.01, 0.02, n), fmt="%.8f")
        pred = np.loadtxt(d / f"{s}_001.txt", delimiter=",")
        full[s] = M.dataset_sequence_metrics(pred, gt, visible=cover > 0, image_wh=res)
        ref = gm.rect_iou(pred[1:].copy(), gt[1:].copy(), bound=res)[cover[1:] > 0]
        ref_ious.append(ref)
        assert abs(full[s]["sr75"] - np.mean(ref > 0.75)) < TOL

    monkeypatch.setattr(ExperimentGOT10k, "plot_curves", lambda *a, **k: None)
    exp = ExperimentGOT10k.__new__(ExperimentGOT10k)
    exp.subset, exp.dataset = "val", FakeDataset(annos, metas)
    exp.result_dir, exp.report_dir = str(tmp_path / "res"), str(tmp_path / "rep")
    exp.nbins_iou = 101
    perf = exp.report([name])[name]

    # the same numbers from the result folder, in GOT-10k's <seq>/<seq>_001.txt layout
    seqs = [Seq(s, B.from_dataset(annos[s], 0), 0, metas[s]["cover"] > 0, res) for s in annos]
    folder = evaluate_results(tmp_path / "res" / name, seqs)
    for s in annos:
        assert abs(full[s]["ao"] - perf["seq_wise"][s]["ao"]) < TOL
        assert abs(full[s]["sr50"] - perf["seq_wise"][s]["sr"]) < TOL
        assert abs(folder["per_sequence"][s]["ao"] - perf["seq_wise"][s]["ao"]) < TOL
    assert abs(folder["mean"]["ao"] - perf["overall"]["ao"]) < TOL
    agg = M.aggregate(full)
    assert abs(agg["ao"] - perf["overall"]["ao"]) < TOL  # frame-weighted, as got10k
    assert abs(agg["sr50"] - perf["overall"]["sr"]) < TOL
    assert abs(agg["sr75"] - np.mean(np.concatenate(ref_ious) > 0.75)) < TOL


def test_aggregate_is_mean_of_curves():
    rng = np.random.default_rng(8)
    per = {f"s{i}": M.dataset_sequence_metrics(*make_case(rng, n)) for i, n in enumerate([10, 50, 200])}
    agg = M.aggregate(per)
    succ = np.mean([m["success_curve"] for m in per.values()], axis=0)
    prec = np.mean([m["precision_curve"] for m in per.values()], axis=0)
    assert abs(agg["auc"] - succ.mean()) < TOL and abs(agg["prec20"] - prec[20]) < TOL
    assert agg["sequences"] == 3 and agg["frames"] == 260
    assert M.aggregate(list(per.values()))["auc"] == agg["auc"]
