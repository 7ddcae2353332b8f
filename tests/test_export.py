"""jax.export of init/track_step: a fresh process without tracker code gives the same boxes."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import jaxtrack
from jaxtrack.data import load_dataset
from jaxtrack.data.synthetic import make_dataset, write_got10k_layout
from jaxtrack.driver import JitTracker, run_sequence
from jaxtrack.export import export_tracker, from_bytes, load_exported, to_bytes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_exported_track_step_runs_in_fresh_process(tmp_path):
    root = tmp_path / "data"
    write_got10k_layout(make_dataset(5, 1, num_frames=6, size=(120, 160)), str(root), split="val")
    seq = load_dataset("got10k", str(root), split="val")[0]
    tracker = jaxtrack.make_tracker("siamfc", backbone="mobilenet_v2", allow_random=True)
    path = tmp_path / "siamfc.jaxexport"
    meta = export_tracker(tracker, [(128, 192)], str(path))
    assert meta["params"] == "argument" and meta["buckets"] == [[128, 192]]
    out = tmp_path / "boxes.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "run_exported.py"),
                           "--export", str(path), "--dataset", "got10k", "--root", str(root),
                           "--split", "val", "--no-cache", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["tracker_modules_imported"] == []            # no tracker/model/flax code ran
    ref = run_sequence(JitTracker(tracker), seq)
    np.testing.assert_allclose(np.array(got["sequences"][seq.name]["boxes"]), ref.boxes, atol=1e-3)
    np.testing.assert_allclose(np.array(got["sequences"][seq.name]["scores"]), ref.scores,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("flatbuffers", [True, False])
def test_export_roundtrip_and_errors(tmp_path, monkeypatch, flatbuffers):
    """Both formats: JAX's own (needs the flatbuffers package) and the JSON + StableHLO one."""
    import jax
    import jax.numpy as jnp
    from jaxtrack import export as jexport
    if flatbuffers:
        pytest.importorskip("flatbuffers")
    monkeypatch.setattr(jexport, "_have_flatbuffers", lambda: flatbuffers)

    def f(xs, y):
        return tuple(x * y for x in xs), {"s": jnp.sum(y)}
    exp = jax.export.export(jax.jit(f))([jax.ShapeDtypeStruct((3,), jnp.float32)] * 2,
                                        jax.ShapeDtypeStruct((3,), jnp.float32))
    blob = to_bytes(exp)
    assert blob[:4] == (b"JAXF" if flatbuffers else b"JAXJ")
    back = from_bytes(blob)
    x = jnp.arange(3.0)
    a, b = back.call([x, x + 1], x)
    np.testing.assert_allclose(a[1], (x + 1) * x)
    np.testing.assert_allclose(b["s"], 3.0)
    with pytest.raises(ValueError, match="unknown tag"):
        from_bytes(b"XXXX1234")
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(2))
    with pytest.raises(ValueError, match="not a jaxtrack export"):
        load_exported(str(bad))
