"""Toolkit integrations: the got10k toolkit's own experiment code and the VOT toolkit (over
TraX) run jaxtrack trackers, and score them as ``jaxtrack eval`` does."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import jaxtrack
from jaxtrack import boxes as B
from jaxtrack.data import load_dataset, load_sequence, make_sequence
from jaxtrack.driver import JitTracker, run_sequence
from jaxtrack.eval.ope import read_boxes, run_ope
from jaxtrack.integrations import sequence_name_from_path

TOL = 1e-9


def _tiny():
    # the tiny SiamFC AlexNet has no trained weights: a fixed random network, seeded
    return jaxtrack.make_tracker("siamfc", variant="tiny", allow_random=True)


def _write_frames(folder, seq, pattern):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(len(seq)):
        cv2.imwrite(str(folder / (pattern % (k + 1))), seq.frame(k)[..., ::-1])


def _write_otb(root, names, frames=12, size=(96, 120)):
    """Synthetic sequences in the OTB layout (img/0001.jpg.., 1-based groundtruth_rect.txt)."""
    for i, name in enumerate(names):
        seq = make_sequence(i, num_frames=frames, size=size, name=name)
        _write_frames(root / name / "img", seq, "%04d.jpg")
        np.savetxt(root / name / "groundtruth_rect.txt", B.to_dataset(seq.gt, 1), fmt="%.4f", delimiter=",")
    return load_dataset("otb", root)


def _write_vot(folder, seed=3, frames=30, size=(96, 120), misplace=()):
    """A synthetic sequence in the VOT layout: frames at the root, 8-value polygons (VOT's pixel
    corners, 1-based) on a 1/8 px grid, so TraX's float32 carries them exactly. The boxes of
    the frames ``misplace`` are moved off the target (a 1 px box in the far corner), so that
    the toolkit's supervised experiment records a failure there and re-initialises."""
    seq = make_sequence(seed, num_frames=frames, size=size, name=folder.name)
    _write_frames(folder, seq, "%08d.jpg")
    g = B.to_dataset(seq.gt, 1)
    for i in misplace:
        far = (1.0, 1.0) if g[i, 0] > size[1] / 2 or g[i, 1] > size[0] / 2 else (size[1] - 1.0, size[0] - 1.0)
        g[i] = [far[0], far[1], 2.0, 2.0]
    x1, y1, x2, y2 = g[:, 0], g[:, 1], g[:, 0] + g[:, 2] - 1, g[:, 1] + g[:, 3] - 1
    poly = np.round(np.stack([x1, y1, x2, y1, x2, y2, x1, y2], 1) * 8) / 8
    np.savetxt(folder / "groundtruth.txt", poly, fmt="%.3f", delimiter=",")
    return load_sequence(folder, "vot")


def test_sequence_name_from_path():
    assert sequence_name_from_path("/d/OTB/Basketball/img/0001.jpg") == "Basketball"
    assert sequence_name_from_path("/d/vot2016/bag/00000001.jpg") == "bag"
    assert sequence_name_from_path("ws/sequences/bag/color/00000001.jpg") == "bag"
    assert sequence_name_from_path("/d/GOT-10k/val/GOT-10k_Val_000001/00000001.jpg") == "GOT-10k_Val_000001"


# ----------------------------------------------------------------------------- got10k

def _toolkit_and_jaxtrack(tracker, sequences, tmp_path, variant):
    """got10k's ExperimentOTB.run/report with the adapter, and run_ope with run_sequence."""
    pytest.importorskip("got10k")
    from jaxtrack.integrations.got10k import Got10kTracker, experiment_otb
    adapter = Got10kTracker(tracker, variant=variant)
    experiment = experiment_otb(sequences, tmp_path / "results", tmp_path / "reports")
    experiment.run(adapter)
    toolkit = experiment.report([adapter.name])[adapter.name]
    jt = adapter.jit                  # the same compiled functions: jaxtrack eval's own driver
    ours = run_ope(adapter.name, sequences, lambda s: run_sequence(jt, s), tmp_path / "ours", progress=False)
    return adapter, experiment, toolkit, ours


def _compare(toolkit, ours):
    """Rows (name, AUC got10k, AUC jaxtrack, Prec@20 got10k, Prec@20 jaxtrack) and the largest
    difference of any score or curve point."""
    rows, worst = [], 0.0
    for name, m in ours["per_sequence"].items():
        t = toolkit["seq_wise"][name]
        rows.append((name, t["success_score"], m["auc"], t["precision_score"], m["prec20"]))
    t, m = toolkit["overall"], ours["mean"]
    rows.append(("mean", t["success_score"], m["auc"], t["precision_score"], m["prec20"]))
    for _, a, b, c, d in rows:
        worst = max(worst, abs(a - b), abs(c - d))
    worst = max(worst, np.abs(np.subtract(t["success_curve"], m["success_curve"])).max(),
                np.abs(np.subtract(t["precision_curve"], m["precision_curve"])).max())
    return rows, worst


def _box_difference(experiment, adapter, ours_dir, sequences):
    """Largest difference between got10k's result files (%.3f) and jaxtrack's (%.4f)."""
    return max(np.abs(np.loadtxt(os.path.join(experiment.result_dir, adapter.name, f"{s.name}.txt"), delimiter=",")
                      - read_boxes(ours_dir / f"{s.name}.txt")).max() for s in sequences)


def test_got10k_toolkit_scores_the_adapter_as_jaxtrack_eval_does(tmp_path):
    from PIL import Image
    sequences = _write_otb(tmp_path / "otb", ["SynA", "SynB"])
    adapter, experiment, toolkit, ours = _toolkit_and_jaxtrack(_tiny(), sequences, tmp_path, "tiny")
    assert adapter.name.startswith("siamfc_alexnet_tiny_")
    rows, worst = _compare(toolkit, ours)
    assert worst <= TOL, rows
    # the same boxes, in the same (1-based) convention: only got10k's 3 decimals differ
    assert _box_difference(experiment, adapter, tmp_path / "ours" / adapter.name, sequences) <= 5.01e-4
    assert adapter.num_compilations == 2                  # one frame bucket: init + track_step
    # a bare init (got10k's VOT experiment) names the sequence from the PIL image's file;
    # index_base=0 (GOT-10k) shifts what goes in and what comes out by exactly one pixel
    seq = sequences[1]
    got = np.loadtxt(os.path.join(experiment.result_dir, adapter.name, f"{seq.name}.txt"), delimiter=",")
    adapter.index_base = 0
    adapter.init(Image.open(seq.frame_paths[0]), B.to_dataset(seq.gt[0], 0))
    assert adapter.sequence_name == seq.name
    for k in (1, 2):
        box = adapter.update(Image.open(seq.frame_paths[k]))
        assert np.abs(B.to_dataset(box, 1) - got[k]).max() <= 5.01e-4
    assert adapter.num_compilations == 2


@pytest.mark.slow
def test_got10k_toolkit_on_the_shared_sequences(otb_root, tmp_path):
    """SiamFC with the committed MobileNetV2 weights on every shared sequence: got10k's report
    equals jaxtrack's metrics (the table is printed; run with -s to see it)."""
    sequences = load_dataset("otb", otb_root)
    tracker = jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2")
    adapter, experiment, toolkit, ours = _toolkit_and_jaxtrack(tracker, sequences, tmp_path, "default")
    rows, worst = _compare(toolkit, ours)
    print("\n| sequence | AUC got10k | AUC jaxtrack | Prec@20 got10k | Prec@20 jaxtrack |")
    print("|---|---:|---:|---:|---:|")
    for name, a, b, c, d in rows:
        print(f"| {name} | {a:.12f} | {b:.12f} | {c:.12f} | {d:.12f} |")
    boxes = _box_difference(experiment, adapter, tmp_path / "ours" / adapter.name, sequences)
    print(f"largest difference: {worst:.3g}; boxes: {boxes:.3g} px; compilations {adapter.num_compilations}")
    assert len(sequences) == 6
    assert worst <= TOL, rows
    assert boxes <= 5.01e-4


# ----------------------------------------------------------------------------- VOT / TraX

def _serve_over_trax(command, seq, starts=(0,)):
    """Drive the TraX server with trax's own client over stdin/stdout, as the VOT toolkit does,
    (re-)initialising on the frames ``starts``; returns every reported box (toolkit
    coordinates) and confidence."""
    pytest.importorskip("trax")
    import trax
    from trax.client import Client
    from trax.image import FileImage
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "JAX_PLATFORMS": "cpu", "TRAX": "1"})
    try:
        client = Client(stream=(proc.stdin.fileno(), proc.stdout.fileno()), log=lambda _: None)
        assert set(client.region_formats) == {"rectangle", "polygon"} and client.image_formats == ["path"]
        gt = np.loadtxt(os.path.join(os.path.dirname(seq.frame_paths[0]), "groundtruth.txt"), delimiter=",")
        boxes, scores = [], []
        for k, path in enumerate(seq.frame_paths):
            image = {"color": FileImage.create(path)}
            if k in starts:                   # the first frame, and re-initialisations
                poly = gt[k]
                region = trax.Polygon.create([(float(poly[i]), float(poly[i + 1])) for i in range(0, 8, 2)])
                (reply,), _ = client.initialize(image, [(region, {})], {})
            else:
                (reply,), _ = client.frame(image, {}, [])
            boxes.append(reply[0].bounds())
            scores.append(float(reply[1]["confidence"]))
        client.quit()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    return np.asarray(boxes), np.asarray(scores)


@pytest.mark.slow
def test_trax_server_tracks_as_jaxtrack_does(tmp_path):
    from jaxtrack.data import Sequence
    seq = _write_vot(tmp_path / "synv", frames=10)
    boxes, scores = _serve_over_trax([sys.executable, "-m", "jaxtrack.integrations.vot", "--tracker", "siamfc",
                                      "--variant", "tiny", "--allow-random", "--no-cache"], seq, starts=(0, 5))
    # frames 0-4 tracked from frame 0, frames 5-9 from a re-initialisation at frame 5
    jt = JitTracker(_tiny())
    tail = Sequence("synv", seq.gt[5:], 1, frame_paths=seq.frame_paths[5:])
    ours = [run_sequence(jt, seq), run_sequence(jt, tail)]
    expected = np.concatenate([ours[0].boxes[:5], ours[1].boxes[:5]])
    expected_scores = np.concatenate([ours[0].scores[:5], ours[1].scores[:5]])
    # the same polygon -> box rule and 1-based coordinates; TraX carries float32 as text
    assert np.abs(boxes - B.to_dataset(expected, 1)).max() < 1e-3
    assert np.allclose(scores, expected_scores, rtol=1e-5)


@pytest.mark.slow
def test_vot_toolkit_evaluates_and_analyses_offline(tmp_path, run_script):
    """The whole path: a local workspace and stack, `vot evaluate` (TraX), `vot analysis`, and
    EAO / accuracy / robustness read back from the toolkit's report."""
    pytest.importorskip("vot")
    _write_vot(tmp_path / "synv", frames=30, misplace=(12, 13))   # a failure at frame 12
    ws = tmp_path / "ws"
    out = run_script("vot_workspace", "--workspace", ws, "--sequence", tmp_path / "synv",
                     "--tracker", "siamfc", "--variant", "tiny", "--allow-random", "--no-cache",
                     "--repetitions", "3", "--eao-low", "1", "--eao-high", "20").stdout
    assert "-m vot evaluate --workspace" in out and "-m vot analysis --workspace" in out
    summary = json.loads((ws / "jaxtrack_vot_summary.json").read_text())
    assert summary["tracker"].startswith("siamfc_alexnet_tiny_")
    assert 0.0 <= summary["eao"] <= 1.0 and 0.0 <= summary["accuracy"] <= 1.0
    assert summary["robustness"] == 1.0                     # the failure, then re-initialised at 17
    assert (ws / "sequences" / "list.txt").read_text().split() == ["synv"]
    assert (ws / "sequences" / "synv" / "color" / "00000001.jpg").is_symlink()
    assert list((ws / "results" / summary["tracker"] / "baseline" / "synv").glob("synv_00*"))
    report = json.loads(Path(summary["report"]).read_text())
    assert report["results"]["baseline"]["type"].endswith("SupervisedExperiment")
