"""The scripts users run: demo, run_ope (with resume), bench_compile, train_siamfc."""
import json
import os
import sys

import numpy as np
import pytest

from jaxtrack.data.synthetic import make_dataset, write_got10k_layout

EXP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments")
sys.path.insert(0, EXP)


def test_demo_prints_metrics_and_draws_boxes(tmp_path, capsys):
    import demo
    summary = demo.main(["--frames", "30", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "success AUC" in out and "FPS" in out
    assert os.path.getsize(summary["picture"]) > 1000
    assert 0.0 <= summary["auc"] <= 1.0 and summary["fps"] > 0
    assert summary["compilations"] == 2


def test_run_ope_writes_results_and_resumes(tmp_path):
    import run_ope
    root = tmp_path / "data"
    write_got10k_layout(make_dataset(11, 3, num_frames=12), str(root), split="val")
    args = ["--tracker", "siamfc", "--backbone", "mobilenet_v2", "--dataset", "got10k",
            "--root", str(root), "--split", "val", "--results", str(tmp_path / "R"), "--no-progress",
            "--no-cache"]
    report = run_ope.main(args)
    tdir = tmp_path / "R" / "siamfc_mobilenet_v2"
    files = sorted(p.name for p in tdir.glob("*.txt"))
    assert len(files) == 3
    metrics = json.loads((tdir / "metrics.json").read_text())
    assert set(metrics["per_sequence"]) == {f[:-4] for f in files}
    assert {"auc", "prec20", "fps"} <= set(metrics["mean"])
    assert (tdir / "metrics.md").exists() and (tdir / "success.png").exists()
    # resume: nothing is recomputed, so nothing compiles
    stamp = {f: (tdir / f).stat().st_mtime_ns for f in files}
    report2 = run_ope.main(args)
    assert {f: (tdir / f).stat().st_mtime_ns for f in files} == stamp
    assert report2["compilations"] == 0 and report["compilations"] == 2
    assert report2["mean"]["auc"] == pytest.approx(report["mean"]["auc"])


def test_bench_compile_reports_compile_and_frame_times(tmp_path):
    import bench_compile
    out = tmp_path / "b.json"
    bench_compile.main(["--trackers", "siamfc:mobilenet_v2", "--frames", "3", "--no-warm", "--out", str(out)])
    row = json.loads(out.read_text())["rows"][0]
    assert row["compile_init_s"] > 0 and row["compile_track_step_s"] > 0 and row["fps"] > 0


def test_train_siamfc_resumes_exactly(tmp_path):
    import train_siamfc
    base = ["--backbone", "mobilenet_v2", "--images", "", "--synthetic", "2", "--pool", "8",
            "--batch", "4", "--ckpt-every", "2", "--seed", "3"]
    full = train_siamfc.main(base + ["--out", str(tmp_path / "a"), "--steps", "4"])
    train_siamfc.main(base + ["--out", str(tmp_path / "b"), "--steps", "4", "--stop-after", "2"])
    resumed = train_siamfc.main(base + ["--out", str(tmp_path / "b"), "--steps", "4"])
    np.testing.assert_allclose(np.asarray(full["head"]["adjust"]["kernel"]),
                               np.asarray(resumed["head"]["adjust"]["kernel"]), rtol=1e-5, atol=1e-7)


def test_ablation_dat_merges_parallel_runs_and_refuses_conflicts(tmp_path):
    import ablation_dat
    curves = {"success": np.linspace(1, 0, 21).tolist(), "precision": np.linspace(0, 1, 51).tolist()}

    def write(folder, config, seq, auc, seed=0):
        os.makedirs(folder, exist_ok=True)
        run = {"config": "DATConfig(...)", "overrides": {"lam": 5.0}, "seed": seed, "max_frames": None,
               "backbone": "mobilenet_v2",
               "sequences": {seq: {"auc": auc, "prec20": 0.5, "frames": 10, "fps": 2.0, "curves": curves}}}
        (folder / f"{config}.json").write_text(json.dumps(run))

    write(tmp_path / "a" / "lam5-bag", "lam5", "bag", 0.6)
    write(tmp_path / "b", "lam5", "David", 0.7)
    ablation_dat.main(["--merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")])
    merged = json.loads((tmp_path / "m" / "lam5.json").read_text())
    assert set(merged["sequences"]) == {"bag", "David"}
    assert "| lam5 | 2 |" in (tmp_path / "m" / "summary.md").read_text()
    write(tmp_path / "c", "lam5", "bag", 0.61)               # the same sequence, another result
    with pytest.raises(SystemExit, match="lam5 bag AUC"):
        ablation_dat.main(["--merge", str(tmp_path / "a"), str(tmp_path / "c"), "--out", str(tmp_path / "n")])
    write(tmp_path / "d", "lam5", "Couple", 0.5, seed=1)       # other settings
    with pytest.raises(SystemExit, match="seed"):
        ablation_dat.main(["--merge", str(tmp_path / "a"), str(tmp_path / "d"), "--out", str(tmp_path / "o")])


def test_train_iounet_objects_from_several_folders(tmp_path):
    """``--objects`` takes several cut-out folders (e.g. stamps and clip art) and names
    a folder that holds none."""
    import cv2
    import train_iounet
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[8:56, 8:56] = (40, 200, 90, 255)
    rgba[20:40, 20:40, :3] = 230
    for name in ("stamps", "clipart"):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / "0000.png"), rgba)
    (tmp_path / "empty").mkdir()
    base = ["--images", "", "--synthetic", "2", "--fresh", "--paste", "--steps", "1", "--stop-after", "0"]
    train_iounet.main(base + ["--out", str(tmp_path / "a"), "--export", str(tmp_path / "x.msgpack"),
                              "--objects", str(tmp_path / "stamps"), str(tmp_path / "clipart")])
    assert json.loads((tmp_path / "x.msgpack.json").read_text())["num_objects"] == 2
    with pytest.raises(SystemExit, match="empty"):
        train_iounet.main(base + ["--out", str(tmp_path / "b"),
                                  "--objects", str(tmp_path / "stamps"), str(tmp_path / "empty")])


def test_train_iounet_fresh_pairs_resume_exactly(tmp_path):
    """``--fresh`` draws new pairs every step from (seed, step), so an interrupted run
    resumes on the same stream: 2 + 2 steps end where 4 steps do."""
    import jax
    import train_iounet
    base = ["--images", "", "--synthetic", "2", "--fresh", "--batch", "2", "--proposals", "4",
            "--steps", "4", "--ckpt-every", "2", "--seed", "7"]
    full, _ = train_iounet.main(base + ["--out", str(tmp_path / "a")])
    train_iounet.main(base + ["--out", str(tmp_path / "b"), "--stop-after", "2"])
    resumed, _ = train_iounet.main(base + ["--out", str(tmp_path / "b")])
    assert not list(tmp_path.glob("*/pool_*.npz"))                  # no cached pool
    for x, y in zip(jax.tree_util.tree_leaves(full), jax.tree_util.tree_leaves(resumed), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-7)
    with pytest.raises(AssertionError):                            # and the steps did train
        init = train_iounet.main(base + ["--out", str(tmp_path / "c"), "--stop-after", "0"])[0]
        for x, y in zip(jax.tree_util.tree_leaves(full), jax.tree_util.tree_leaves(init)):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-7)


def test_gradnet_ablation_siamfc_tracking_rows_use_the_siamfc_trackers_values():
    """The "..., SiamFC tracking" rows must track with the baseline's values, whatever the
    siamfc tracker's defaults become."""
    import dataclasses
    import ablation_gradnet
    from jaxtrack.trackers import gradnet, siamfc
    sf = siamfc.SiamFCConfig()
    fields = {f.name for f in dataclasses.fields(gradnet.GradNetConfig)}
    for key, value in ablation_gradnet.SIAMFC_TRACKING.items():
        assert key in fields, key
        if hasattr(sf, key):
            assert getattr(sf, key) == value, key
    config = gradnet.GradNetConfig(**ablation_gradnet.SIAMFC_TRACKING)
    for key in ("num_scales", "scale_lr", "response_up", "context"):
        assert getattr(config, key) == getattr(sf, key), key
    assert not config.refind and config.no_window_after < 0


def test_trace_gradnet_reports_updates_and_memory_drift():
    import jaxtrack
    import trace_gradnet
    seq = make_dataset(3, 1, num_frames=12, size=(120, 160))[0]
    kw = dict(backbone="alexnet", allow_random=True)
    rec = trace_gradnet.trace(jaxtrack.make_tracker("gradnet", **kw), seq)
    assert [r["frame"] for r in rec] == list(range(1, 12))
    assert [r["updated"] for r in rec] == [int(i % 5 == 0) for i in range(1, 12)]
    assert all(r["memory_drift"] == 0 for r in rec[:4]) and rec[4]["memory_drift"] > 0
    assert all(0 <= r["iou"] <= 1 for r in rec) and sum(r["stored"] for r in rec) >= 5  # frames 1-5 always
    # memory_keep = rescue_keep = 1: the memory never moves (the template still updates)
    frozen = trace_gradnet.trace(jaxtrack.make_tracker("gradnet", memory_keep=1.0, rescue_keep=1.0, **kw), seq)
    assert all(r["memory_drift"] == 0 for r in frozen)
    assert trace_gradnet.parse_overrides(["memory_keep=1.0", "refind=False"]) == {"memory_keep": 1.0, "refind": False}
