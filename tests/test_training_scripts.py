"""The training scripts, each run as a program: resume exactness and their data flags."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

EXP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments")


def _train(script, args):
    """Run ``experiments/<script>`` as a program; returns the finished process."""
    proc = subprocess.run([sys.executable, os.path.join(EXP, script)] + args, capture_output=True,
                          text=True, timeout=900)
    return proc


def _train_ok(script, args):
    proc = _train(script, args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _exported(path):
    """The leaves of an exported checkpoint, in key order."""
    import jax
    from flax import serialization
    with open(path, "rb") as f:
        return jax.tree_util.tree_leaves(serialization.msgpack_restore(f.read()))


def test_train_siamfc_resumes_exactly(tmp_path):
    base = ["--backbone", "mobilenet_v2", "--images", "", "--synthetic", "2", "--pool", "8",
            "--batch", "4", "--ckpt-every", "2", "--seed", "3"]
    _train_ok("train_siamfc.py", base + ["--out", str(tmp_path / "a"), "--steps", "4",
                                         "--export", str(tmp_path / "full.msgpack")])
    _train_ok("train_siamfc.py", base + ["--out", str(tmp_path / "b"), "--steps", "4", "--stop-after", "2"])
    out = _train_ok("train_siamfc.py", base + ["--out", str(tmp_path / "b"), "--steps", "4",
                                               "--export", str(tmp_path / "resumed.msgpack")]).stdout
    assert "resumed from" in out and "at step 2" in out
    full, resumed = _exported(tmp_path / "full.msgpack"), _exported(tmp_path / "resumed.msgpack")
    assert len(full) == len(resumed) == 3                        # adjust kernel and bias, score bias
    for x, y in zip(full, resumed):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


def test_train_siamfc_selects_on_the_validation_set_and_refuses_another_root(tmp_path):
    """Every --val-every steps and at the last, the run tracks the validation set, logs the
    AUC, keeps the best as best.msgpack and exports it (``--keep-validated``: and every validated
    step's weights); a root that is not a validation set (no manifest, as a benchmark folder)
    is refused by name."""
    from jaxtrack.data import validation
    from jaxtrack.data.synthetic import make_sequence
    val = tmp_path / "val"
    validation.write_otb_root([(f"v{i}", make_sequence([77, i], num_frames=4, size=(96, 120)), [])
                               for i in range(2)], val)
    base = ["--backbone", "mobilenet_v2", "--images", "", "--synthetic", "2", "--pool", "8",
            "--batch", "4", "--seed", "3", "--steps", "3", "--ckpt-every", "3"]
    _train_ok("train_siamfc.py", base + ["--out", str(tmp_path / "a"), "--val-root", str(val),
                                         "--val-every", "2", "--keep-validated",
                                         "--export", str(tmp_path / "x.msgpack")])
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    kept = sorted(p.name for p in (tmp_path / "a" / "validated").iterdir())
    assert kept == ["step_000000.msgpack", "step_000002.msgpack", "step_000003.msgpack"]
    vals = [r for r in log if "val_auc" in r]
    assert [r["step"] for r in vals] == [0, 2, 3] and vals[0]["best"] and vals[0]["val_frames"] == 8
    assert set(vals[0]["val_parts"]) == {"composed"}                 # v0, v1: neither val_syn_ nor val_real_
    best = json.loads((tmp_path / "a" / "best.msgpack.json").read_text())
    assert abs(best["auc"] - max(r["val_auc"] for r in vals)) < 1e-4        # the log rounds to 1e-4
    prov = json.loads((tmp_path / "x.msgpack.json").read_text())
    assert prov["selected"] == "best validation AUC" and prov["selected_step"] == best["step"]
    for x, y in zip(_exported(tmp_path / "x.msgpack"), _exported(tmp_path / "a" / "best.msgpack")):
        np.testing.assert_array_equal(x, y)
    kept_best = tmp_path / "a" / "validated" / f"step_{best['step']:06d}.msgpack"
    for x, y in zip(_exported(kept_best), _exported(tmp_path / "a" / "best.msgpack")):
        np.testing.assert_array_equal(x, y)
    (tmp_path / "bench" / "seq").mkdir(parents=True)
    proc = _train("train_siamfc.py", base + ["--out", str(tmp_path / "b"), "--val-root", str(tmp_path / "bench"),
                                             "--val-every", "2"])
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"--val-root {tmp_path / 'bench'}: not a validation set" in proc.stderr


@pytest.mark.slow  # 12-30 s on 2 cores; the default suite stays under 15 min
def test_train_iounet_objects_from_several_folders(tmp_path):
    """``--objects`` takes several cut-out folders (e.g. stamps and clip art) and names
    a folder that holds none."""
    import cv2
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[8:56, 8:56] = (40, 200, 90, 255)
    rgba[20:40, 20:40, :3] = 230
    for name in ("stamps", "clipart"):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / "0000.png"), rgba)
    (tmp_path / "empty").mkdir()
    base = ["--images", "", "--synthetic", "2", "--fresh", "--paste", "--steps", "1", "--stop-after", "0"]
    _train_ok("train_iounet.py", base + ["--out", str(tmp_path / "a"), "--export", str(tmp_path / "x.msgpack"),
                                         "--objects", str(tmp_path / "stamps"), str(tmp_path / "clipart")])
    assert json.loads((tmp_path / "x.msgpack.json").read_text())["num_objects"] == 2
    proc = _train("train_iounet.py", base + ["--out", str(tmp_path / "b"),
                                             "--objects", str(tmp_path / "stamps"), str(tmp_path / "empty")])
    assert proc.returncode != 0 and "Traceback" not in proc.stderr     # a SystemExit message
    assert f"--objects {tmp_path / 'empty'}: no RGBA PNG cut-outs there" in proc.stderr


@pytest.mark.slow
def test_train_iounet_fresh_pairs_resume_exactly(tmp_path):
    """``--fresh`` draws new pairs every step from (seed, step), so an interrupted run
    resumes on the same stream: 2 + 2 steps end where 4 steps do."""
    base = ["--images", "", "--synthetic", "2", "--fresh", "--batch", "2", "--proposals", "4",
            "--steps", "4", "--ckpt-every", "2", "--seed", "7"]
    _train_ok("train_iounet.py", base + ["--out", str(tmp_path / "a"), "--export", str(tmp_path / "full.msgpack")])
    _train_ok("train_iounet.py", base + ["--out", str(tmp_path / "b"), "--stop-after", "2"])
    _train_ok("train_iounet.py", base + ["--out", str(tmp_path / "b"), "--export", str(tmp_path / "resumed.msgpack")])
    assert not list(tmp_path.glob("*/pool_*.npz"))                  # no cached pool
    full, resumed = _exported(tmp_path / "full.msgpack"), _exported(tmp_path / "resumed.msgpack")
    assert len(full) == len(resumed) > 0
    for x, y in zip(full, resumed):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    # and the steps did train: the weights the run started from differ
    import jax
    from jaxtrack.train import iounet
    from jaxtrack.trackers.atom import ATOMConfig
    init = jax.tree_util.tree_leaves(iounet.export_variables(*iounet.start_params(ATOMConfig(backbone="mobilenet_v2"), 7)))
    assert len(init) == len(full)
    assert not all(np.allclose(x, y, rtol=1e-5, atol=1e-7) for x, y in zip(full, init))


def test_train_iounet_fresh_batches_depend_on_seed_and_step_only():
    """What makes ``--fresh`` resume exactly (the end-to-end run is a slow test): a step's
    pairs and proposals are drawn from ``(seed, step)`` alone, whatever was drawn before."""
    from jaxtrack.data.sources import pair_sources
    from jaxtrack.train import iounet
    sources = pair_sources(None, 2, seed=7)
    later = iounet.fresh_batch(sources, 7, 3, batch=2, proposals=4)
    iounet.fresh_batch(sources, 7, 2, batch=2, proposals=4)
    again = iounet.fresh_batch(sources, 7, 3, batch=2, proposals=4)
    other = iounet.fresh_batch(sources, 8, 3, batch=2, proposals=4)
    for a, b in zip(later, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(later[0], other[0])
