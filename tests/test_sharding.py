"""Sharded evaluation and training on 4 virtual CPU devices (subprocesses: the device count
must be set before JAX initialises) against the 1-device runs of this process."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import jaxtrack
from jaxtrack import checkpoints
from jaxtrack.data.synthetic import make_dataset, write_got10k_layout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXP = os.path.join(REPO, "experiments")
# runs a script as its own program with the script's path from the environment, so the
# child's command line does not name the script (immune to pkill -f)
_RUN_SCRIPT = ("import os, runpy, sys; sys.argv[0] = os.environ['JAXTRACK_SCRIPT']; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")


def _run(args, devices=4, env_extra=None, wait=True):
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", **(env_extra or {})}
    cmd = [sys.executable] + args
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def _run_script(script, args, devices=4):
    """``experiments/<script>`` with ``args`` on ``devices`` virtual CPU devices."""
    return _run(["-c", _RUN_SCRIPT] + args, devices, {"JAXTRACK_SCRIPT": os.path.join(EXP, script)})


def _metrics(results):
    return json.loads((results / "siamfc_mobilenet_v2" / "metrics.json").read_text())


@pytest.fixture(scope="module")
def ope_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ope")
    root = tmp / "data"
    write_got10k_layout(make_dataset(13, 5, num_frames=7, size=(120, 160)), str(root), split="val")
    head = tmp / "head.msgpack"          # a fixed random head: independent of the committed one
    checkpoints.save_variables(str(head), jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2",
                                                      allow_random=True, seed=1).params["head"])
    base = ["--tracker", "siamfc", "--backbone", "mobilenet_v2", "--weights", str(head),
            "--dataset", "got10k", "--root", str(root), "--split", "val", "--no-progress", "--no-cache",
            "--name", "siamfc_mobilenet_v2"]
    _run([os.path.join(EXP, "run_ope.py")] + base + ["--results", str(tmp / "R1")], devices=1)  # sequential
    return tmp, base, _metrics(tmp / "R1")


@pytest.mark.slow  # 12-30 s on 2 cores; the default suite stays under 15 min
def test_parallel_ope_on_4_devices_matches_1_device_and_resumes(ope_setup):
    tmp, base, ref = ope_setup
    out = _run([os.path.join(EXP, "run_ope.py")] + base + ["--results", str(tmp / "R4"), "--parallel", "4"])
    assert "4 local device(s)" in out
    d1, d4 = tmp / "R1" / "siamfc_mobilenet_v2", tmp / "R4" / "siamfc_mobilenet_v2"
    m4 = json.loads((d4 / "metrics.json").read_text())
    assert m4["info"]["local_devices"] == 4 and m4["info"]["parallel"] == 4
    names = sorted(ref["per_sequence"])
    assert sorted(m4["per_sequence"]) == names and len(names) == 5
    for n in names:
        np.testing.assert_allclose(np.loadtxt(d4 / f"{n}.txt", delimiter=","),
                                   np.loadtxt(d1 / f"{n}.txt", delimiter=","), atol=2e-3)
        for k in ("auc", "prec20", "norm_prec"):
            assert m4["per_sequence"][n][k] == pytest.approx(ref["per_sequence"][n][k], abs=1e-6)
    assert m4["mean"]["auc"] == pytest.approx(ref["mean"]["auc"], abs=1e-6)
    # interruption: one result lost; a rerun redoes exactly that one, the rest untouched
    (d4 / f"{names[2]}.txt").unlink()
    stamp = {n: (d4 / f"{n}.txt").stat().st_mtime_ns for n in names if n != names[2]}
    _run([os.path.join(EXP, "run_ope.py")] + base + ["--results", str(tmp / "R4"), "--parallel", "2"], devices=1)
    report = _metrics(tmp / "R4")
    assert {n: (d4 / f"{n}.txt").stat().st_mtime_ns for n in stamp} == stamp
    assert (d4 / f"{names[2]}.txt").exists()
    assert report["mean"]["auc"] == pytest.approx(ref["mean"]["auc"], abs=1e-6)


@pytest.mark.slow
def test_two_processes_share_the_sequences(ope_setup, tmp_path):
    """A 2-host run on one machine: 2 processes x 2 virtual devices, jax.distributed."""
    tmp, base, ref = ope_setup
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [os.path.join(EXP, "run_ope.py")] + base + [
        "--results", str(tmp_path / "RH"), "--parallel", "2", "--coordinator", f"127.0.0.1:{port}",
        "--num-processes", "2", "--wait-timeout", "600"]
    procs = [_run(args + ["--process-id", str(i)], devices=2, wait=False) for i in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, o[-2000:] + e[-3000:]
    assert "process 1/2" in outs[1][0] and "process 0/2" in outs[0][0]
    m = json.loads((tmp_path / "RH" / "siamfc_mobilenet_v2" / "metrics.json").read_text())
    assert m["info"]["processes"] == 2 and sorted(m["per_sequence"]) == sorted(ref["per_sequence"])
    assert m["mean"]["auc"] == pytest.approx(ref["mean"]["auc"], abs=1e-6)


def test_data_parallel_training_4_devices_matches_1(tmp_path):
    base = ["--backbone", "mobilenet_v2", "--images", "", "--synthetic", "2", "--pool", "8",
            "--batch", "4", "--steps", "50", "--ckpt-every", "50", "--seed", "5"]
    l1, l4 = _train_1_and_4(tmp_path, "train_siamfc.py", base, "pool_*.npz")
    assert [r["step"] for r in l1] == [r["step"] for r in l4] == [1, 50]
    np.testing.assert_allclose([r["loss"] for r in l4], [r["loss"] for r in l1], rtol=1e-4)
    one = _exported(tmp_path, "d1")
    four = checkpoints.load_variables(str(tmp_path / "d4" / "h.msgpack"), one)      # same structure
    np.testing.assert_allclose(np.asarray(four["adjust"]["kernel"]), np.asarray(one["adjust"]["kernel"]),
                               rtol=1e-4, atol=1e-6)


def _leaves_close(a, b, rtol=1e-4, atol=1e-6):
    import jax
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x, np.float32), np.asarray(y, np.float32), rtol=rtol, atol=atol)


def _exported(tmp_path, run):
    from flax import serialization
    return serialization.msgpack_restore((tmp_path / run / "h.msgpack").read_bytes())


def _train_1_and_4(tmp_path, script, base, pool_glob):
    """Run ``experiments/<script>`` on 1 device and then on 4 on the same cached pool (both
    export ``<run>/h.msgpack``); return both logs."""
    _run_script(script, base + ["--out", str(tmp_path / "d1"), "--export", str(tmp_path / "d1" / "h.msgpack")],
                devices=1)
    (tmp_path / "d4").mkdir()
    for f in (tmp_path / "d1").glob(pool_glob):          # same cached features: skip the backbone
        shutil.copy(f, tmp_path / "d4" / f.name)
    _run_script(script, base + ["--out", str(tmp_path / "d4"), "--export", str(tmp_path / "d4" / "h.msgpack")])
    log = lambda d: [json.loads(line) for line in (tmp_path / d / "log.jsonl").read_text().splitlines()]
    assert json.loads((tmp_path / "d1" / "h.msgpack.json").read_text())["devices"] == 1
    assert json.loads((tmp_path / "d4" / "h.msgpack.json").read_text())["devices"] == 4
    return log("d1"), log("d4")


@pytest.mark.slow   # the SiamFC and GradNet cases check the same data-parallel step in the default suite
def test_data_parallel_iounet_training_4_devices_matches_1(tmp_path):
    """IoU-Net (BatchNorm in training mode: the batch statistics span all 4 shards).

    Step 1 (same weights, global batch statistics) must match closely. Later steps drift
    apart a little: the conv biases in front of BatchNorm have a zero gradient up to
    reduction-order noise (~1e-8), and Adam turns that noise into full ~lr steps.
    """
    base = ["--images", "", "--synthetic", "2", "--pool", "8", "--batch", "4", "--proposals", "4",
            "--steps", "25", "--ckpt-every", "25", "--seed", "5"]
    l1, l4 = _train_1_and_4(tmp_path, "train_iounet.py", base, "pool_*.npz")
    assert [r["step"] for r in l1] == [r["step"] for r in l4] == [1, 25]
    np.testing.assert_allclose(l4[0]["loss"], l1[0]["loss"], rtol=1e-5)
    np.testing.assert_allclose(l4[1]["loss"], l1[1]["loss"], rtol=0.1)


@pytest.mark.slow  # 12-30 s on 2 cores; the default suite stays under 15 min
def test_data_parallel_gradnet_training_4_devices_matches_1(tmp_path):
    """GradNet, second-order step with template generalization (4 templates x 2 regions: the
    project recipe; the official one has a single template to shard)."""
    base = ["--recipe", "project", "--images", "", "--synthetic", "3", "--pool", "8", "--groups", "4", "--k", "2",
            "--steps", "3", "--ckpt-every", "3", "--seed", "5", "--allow-random-siamfc"]
    l1, l4 = _train_1_and_4(tmp_path, "train_gradnet.py", base, "pool_*.npz")
    assert [r["step"] for r in l1] == [r["step"] for r in l4] == [1]
    np.testing.assert_allclose(l4[0]["loss"], l1[0]["loss"], rtol=1e-4)
    from jaxtrack.train import gradnet
    config = gradnet.variant_config("mobilenet_v2", "full")
    start = gradnet.start_params(config, seed=5, allow_random_siamfc=True)
    one = checkpoints.load_variables(str(tmp_path / "d1" / "h.msgpack"), gradnet.export_variables(config, "full", start))
    four = checkpoints.load_variables(str(tmp_path / "d4" / "h.msgpack"), one)
    _leaves_close(four, one)
