"""Long-run and fault checks of run_ope (``-m slow``): killed at seeded random points and
resumed, the result files are byte-identical to an uninterrupted run; a read-only folder or
a full disk fails before any tracking; two processes on one results folder either cooperate
(same run) or one refuses (another run), never mixing; Ctrl-C always ends with exit 130."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxtrack.data.synthetic import make_dataset, write_got10k_layout

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
KILL_SEED = 7                       # the seeded list of kill times, recorded here


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_got10k_layout(make_dataset(41, 3, num_frames=40, size=(120, 160)), str(root), split="val")
    return root


def _cmd(data, results, *extra):
    return [sys.executable, str(REPO / "experiments" / "run_ope.py"), "--tracker", "siamfc",
            "--variant", "tiny", "--allow-random", "--dataset", "got10k", "--root", str(data),
            "--split", "val", "--results", str(results), "--no-progress", "--no-cache",
            "--name", "run", *extra]


def _env():
    return {**os.environ, "JAX_PLATFORMS": "cpu"}


def _boxes(folder):
    return {p.name: p.read_bytes() for p in sorted(Path(folder).glob("*.txt"))}


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    subprocess.run(_cmd(data, out), check=True, env=_env(), capture_output=True, timeout=900)
    boxes = _boxes(out / "run")
    assert len(boxes) == 3
    return boxes


def test_sigkill_at_random_points_then_resume_is_byte_identical(data, reference, tmp_path):
    delays = np.random.default_rng(KILL_SEED).uniform(2.0, 14.0, 4)
    for i, delay in enumerate(delays):
        out = tmp_path / f"k{i}"
        proc = subprocess.Popen(_cmd(data, out), env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = subprocess.run(_cmd(data, out), env=_env(), capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        assert _boxes(out / "run") == reference, f"killed after {delay:.1f} s"
        assert not list(out.rglob("*.tmp")), "a temporary file was left behind"


def _mount(kind, path):
    path.mkdir()
    opts = "ro,size=1m" if kind == "ro" else "size=40k"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a {kind} tmpfs here (needs root): {r.stderr.decode()[:100]}")


@pytest.mark.parametrize("kind", ["ro", "full"])
def test_unwritable_results_folder_fails_before_tracking(data, tmp_path, kind):
    folder = tmp_path / "mnt"
    _mount(kind, folder)
    try:
        if kind == "full":               # fill it up first
            (folder / "filler").write_bytes(b"\0" * 40000)
        t0 = time.perf_counter()
        p = subprocess.run(_cmd(data, folder / "results"), env=_env(), capture_output=True, text=True,
                           timeout=900)
        assert p.returncode == 2, p.stderr[-2000:]
        assert "cannot write" in p.stderr and str(folder) in p.stderr
        assert "compilations" not in p.stdout and "Traceback" not in p.stderr
        assert time.perf_counter() - t0 < 60
    finally:
        subprocess.run(["umount", str(folder)])


def test_two_processes_on_one_folder_cooperate_or_refuse(data, reference, tmp_path):
    same = [subprocess.Popen(_cmd(data, tmp_path / "same"), env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in same:
        assert p.wait(timeout=900) == 0, p.stderr.read()[-2000:]
    assert _boxes(tmp_path / "same" / "run") == reference
    other = [subprocess.Popen(_cmd(data, tmp_path / "other", *extra), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for extra in ([], ["--set", "window_influence=0.3"])]
    codes = [p.wait(timeout=900) for p in other]
    errors = [p.stderr.read() for p in other]
    assert sorted(codes) == [0, 2], errors
    loser = errors[codes.index(2)]
    assert "holds results of another run" in loser
    winner = json.loads((tmp_path / "other" / "run" / "run.json").read_text())
    if codes[0] == 0:                    # the default run won: its boxes are the reference
        assert winner["config"]["window_influence"] == 0.176
        assert _boxes(tmp_path / "other" / "run") == reference
    else:
        assert winner["config"]["window_influence"] == 0.3


def test_ctrl_c_always_ends_with_130(data, tmp_path):
    for i, delay in enumerate(np.random.default_rng(KILL_SEED + 1).uniform(3.0, 12.0, 3)):
        proc = subprocess.Popen(_cmd(data, tmp_path / f"c{i}"), env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        if proc.poll() is not None:
            continue                      # it finished first: nothing to interrupt
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=300) == 130, proc.stderr.read()[-2000:]
