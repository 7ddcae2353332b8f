"""The ablation sweep (jaxtrack.eval.sweep): resume, refusal, table, merge, the tables' hooks,
and experiments/ablate.py end to end."""
import json
import shutil

import numpy as np
import pytest

from jaxtrack.configs import Row
from jaxtrack.eval import sweep as S
from jaxtrack.eval.ope import RunMismatchError, read_boxes

ROWS = {"base": Row("siamfc", "tiny"), "w/o scale": Row("siamfc", "tiny", {"scale_step": 1.0})}


def _seqs():
    from jaxtrack.data import make_dataset
    return make_dataset(7, 2, num_frames=5, size=(120, 160))


def _run(out, rows=ROWS, logs=None, **kw):
    kw = {"table": "siamfc", "dataset": "synthetic", "allow_random": True, **kw}
    return S.sweep(rows, kw.pop("sequences", None) or _seqs(), out, log=(logs if logs is not None else []).append, **kw)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    logs = []
    return out, _run(out, logs=logs), logs


def test_sweep_records_every_row_and_sequence(swept):
    out, record, logs = swept
    names = [s.name for s in _seqs()]
    assert record["rows"] == list(ROWS) and record["sequences"] == names
    for row in ROWS:
        assert set(record["results"][row]) == set(names)
        for name, seq in zip(names, _seqs()):
            m = record["results"][row][name]
            assert m["frames"] == 5 and 0 <= m["auc"] <= 1 and m["fps"] > 0 and m["init_s"] > 0
            assert m["fps"] == pytest.approx(4 / m["track_s"])
            assert read_boxes(out / "boxes" / S.row_folder(row) / f"{name}.txt").shape == (5, 4)
        mean = record["means"][row]
        assert mean["auc"] == pytest.approx(np.mean([record["results"][row][n]["auc"] for n in names]))
    assert json.loads((out / "sweep.json").read_text())["means"] == record["means"]
    assert record["row_settings"]["w/o scale"]["config"] != record["row_settings"]["base"]["config"]
    assert len(record["row_settings"]["base"]["params_sha256"]) == 64
    table = (out / "sweep.md").read_text()
    assert f"| row | {names[0]} | {names[1]} | mean AUC | mean prec@20 | FPS |" in table
    m = record["means"]["w/o scale"]
    assert f"| w/o scale | {record['results']['w/o scale'][names[0]]['auc']:.3f} / " in table
    assert f"**{m['auc']:.3f}** | {m['prec20']:.3f} | {m['fps']:.1f} |" in table
    assert sum(" fps " in line for line in logs) == 4          # one line per tracked sequence


def test_sweep_resumes_without_tracking(swept, monkeypatch):
    import jaxtrack.driver
    out, record, _ = swept
    stamp = {p: p.stat().st_mtime_ns for p in (out / "boxes").rglob("*.txt")}
    monkeypatch.setattr(jaxtrack.driver, "run_sequence", lambda *a, **k: pytest.fail("tracked again"))
    again = _run(out)
    assert again["results"] == record["results"] and again["means"] == record["means"]
    assert {p: p.stat().st_mtime_ns for p in (out / "boxes").rglob("*.txt")} == stamp


@pytest.mark.parametrize("change, match", [
    ({"seed": 1}, "seed"),
    ({"overrides": {"scale_lr": 0.5}}, "overrides"),
    ({"max_frames": 3}, "max_frames"),
    ({"dataset": "otb"}, "dataset"),
    ({"rows": {"base": Row("siamfc", "tiny", {"scale_lr": 0.5})}}, "row 'base'.*config"),
    ({"rows": {"base": Row("siamfc", "tiny", {"seed": 3})}}, "row 'base'.*params_sha256"),
])
def test_sweep_refuses_to_resume_with_other_settings(swept, change, match, monkeypatch):
    import jaxtrack.driver
    out, record, _ = swept
    before = (out / "sweep.json").read_text()
    monkeypatch.setattr(jaxtrack.driver, "run_sequence", lambda *a, **k: pytest.fail("tracked"))
    with pytest.raises(RunMismatchError, match=match):
        _run(out, **change)
    assert (out / "sweep.json").read_text() == before


def _part(src, dst, keep, edit=None):
    """A copy of sweep folder ``src`` with only the sequences in ``keep``."""
    shutil.copytree(src, dst)
    rec = json.loads((dst / "sweep.json").read_text())
    rec["sequences"] = [s for s in rec["sequences"] if s in keep]
    rec["results"] = {r: {s: m for s, m in res.items() if s in keep} for r, res in rec["results"].items()}
    if edit:
        edit(rec)
    (dst / "sweep.json").write_text(json.dumps(rec))
    return dst


def test_merge_joins_runs_and_stops_at_a_disagreement(swept, tmp_path):
    out, record, _ = swept
    a, b = record["sequences"]
    _part(out, tmp_path / "runs" / "x", [a])
    _part(out, tmp_path / "runs" / "deeper" / "y", [b])
    merged = S.merge([tmp_path / "runs"], tmp_path / "m", log=lambda s: None)
    assert merged["results"] == record["results"] and merged["means"] == record["means"]
    for row in ROWS:
        for seq in (a, b):
            name = f"{S.row_folder(row)}/{seq}.txt"
            assert (tmp_path / "m" / "boxes" / name).read_bytes() == (out / "boxes" / name).read_bytes()
    assert "| base |" in (tmp_path / "m" / "sweep.md").read_text()

    def other_auc(rec):
        rec["results"]["base"][a]["auc"] += 0.01
    _part(out, tmp_path / "c", [a], other_auc)
    with pytest.raises(RunMismatchError, match=f"base {a}: auc"):
        S.merge([tmp_path / "runs" / "x", tmp_path / "c"], tmp_path / "n", log=lambda s: None)

    def other_seed(rec):
        rec["settings"]["seed"] = 1
    _part(out, tmp_path / "d", [b], other_seed)
    with pytest.raises(RunMismatchError, match="seed"):
        S.merge([tmp_path / "runs" / "x", tmp_path / "d"], tmp_path / "o", log=lambda s: None)


def test_truncate_keeps_the_first_frames():
    seq = _seqs()[0]
    short = S.truncate(seq, 3)
    assert len(short) == 3 and np.array_equal(short.gt, seq.gt[:3]) and short.name == seq.name
    assert S.truncate(seq, None) is seq and S.truncate(seq, 9) is seq


# the script end to end on TADT (a fresh process compiling two TADT rows, 25 s on 2 cores); the
# sweep it drives is tested in-process above
@pytest.mark.slow
def test_ablate_script_tadt_channels(tmp_path, run_script, mobilenet_pt):
    """The script on TADT's table (tiny geometry through --set): the channel count per
    sequence, fewer for the target-aware selection than for all; then a rerun into the same
    folder with another seed is refused."""
    from jaxtrack.configs import tadt
    tiny = [f"{k}={v!r}" for k, v in tadt.VARIANTS["tiny"].items()]
    args = ["--tracker", "tadt", "--rows", "target_aware", "all", "--set", *tiny,
            "--synthetic-eval", "1", "--eval-frames", "4", "--out", tmp_path, "--no-cache"]
    proc = run_script("ablate", *args)
    rec = json.loads((tmp_path / "sweep.json").read_text())
    (seq,) = rec["sequences"]
    kept = {row: rec["results"][row][seq]["channels"] for row in ("target_aware", "all")}
    assert 0 < kept["target_aware"] < kept["all"], kept
    assert rec["means"]["all"]["channels"] == kept["all"]
    assert "| target_aware |" in proc.stdout and "channels" in (tmp_path / "sweep.md").read_text()
    bad = run_script("ablate", *args, "--seed", "1", check=False)
    assert bad.returncode != 0 and "seed" in bad.stderr


# ----------------------------------------------------------------------------- the tables' hooks

def test_gradnet_trains_each_recipe_once_and_refuses_other_arguments(tmp_path):
    """The training hook runs train_gradnet with the recipe plus the common flags, reuses an
    exported file, and refuses one trained with other arguments."""
    from jaxtrack.configs import gradnet as G
    fake = tmp_path / "fake_train.py"           # stands in for experiments/train_gradnet.py
    fake.write_text("import json, sys\n"
                    "argv = sys.argv[1:]\n"
                    "out = argv[argv.index('--export') + 1]\n"
                    "open(out, 'w').write('weights')\n"
                    "json.dump({'command': ' '.join(['train_gradnet.py'] + argv)}, open(out + '.json', 'w'))\n")
    opts = {"steps": 7, "siamfc_pool": "pool.npz", "train_args": "--images '' --synthetic 2",
            "train_script": str(fake), "siamfc_weights": None}
    ctx = S.Context(str(tmp_path / "run"), seed=3, options=opts, log=lambda s: None)
    rows = {r: G.ABLATION[r] for r in ("GradNet", "w/o U", "SiamFC start", "SiamFC +budget, triplets")}
    got = G.train_rows(rows, ctx)
    assert got == {"GradNet": {"weights": str(tmp_path / "run" / "full.msgpack")},
                   "w/o U": {"weights": str(tmp_path / "run" / "full.msgpack")},
                   "SiamFC +budget, triplets": {"weights": str(tmp_path / "run" / "siamfc_next.msgpack")}}
    full = json.loads((tmp_path / "run" / "full.msgpack.json").read_text())["command"].split(" ")
    assert full[1:] == ["--variant", "full", "--out", str(tmp_path / "run" / "train_full"), "--steps", "7",
                        "--pool", "4096", "--pool-dir", str(tmp_path / "run"),
                        "--seed", "3", "--export", str(tmp_path / "run" / "full.msgpack"),
                        "--siamfc-pool", "pool.npz", "--images", "", "--synthetic", "2"]
    triplets = json.loads((tmp_path / "run" / "siamfc_next.msgpack.json").read_text())["command"]
    assert "--siamfc-pool" not in triplets and "--target-view next" in triplets
    fake.write_text("raise SystemExit('trained twice')\n")
    assert G.train_rows({"GradNet": G.ABLATION["GradNet"]}, ctx) == {"GradNet": got["GradNet"]}
    ctx.options["steps"] = 8
    with pytest.raises(RunMismatchError, match="full.msgpack: trained with"):
        G.train_rows({"GradNet": G.ABLATION["GradNet"]}, ctx)
    ctx.options["siamfc_weights"] = "head.msgpack"        # an untrained SiamFC row tracks with it
    assert G.train_rows({"SiamFC start": G.ABLATION["SiamFC start"]}, ctx) == \
        {"SiamFC start": {"weights": "head.msgpack"}}


def test_gradnet_siamfc_tracking_rows_use_the_siamfc_trackers_values():
    """The "..., SiamFC tracking" rows track with the baseline's values, whatever the siamfc
    tracker's defaults become."""
    import dataclasses

    from jaxtrack.configs.gradnet import SIAMFC_TRACKING
    from jaxtrack.trackers import gradnet, siamfc
    sf = siamfc.SiamFCConfig()
    fields = {f.name for f in dataclasses.fields(gradnet.GradNetConfig)}
    for key, value in SIAMFC_TRACKING.items():
        assert key in fields, key
        if hasattr(sf, key):
            assert getattr(sf, key) == value, key
    config = gradnet.GradNetConfig(**SIAMFC_TRACKING)
    for key in ("num_scales", "scale_lr", "response_up", "context"):
        assert getattr(config, key) == getattr(sf, key), key
    assert not config.refind and config.no_window_after < 0


def test_atom_gd_step_is_picked_on_synthetic_sequences(monkeypatch):
    """The gd row gets the step with the lowest mean first-frame loss (a diverging step
    counts as infinite); other rows, and a gd row with its own step, are left alone."""
    from jaxtrack.configs import atom as A
    losses = {1e-3: [0.5, 0.7], 3e-3: [0.2, 0.4], 1e-2: [0.1, float("nan")]}
    seen = []

    def fake_losses(tracker, seqs, seed):
        seen.append((len(seqs), seed, tracker.config.optimizer))
        return losses[tracker.config.gd_step]
    monkeypatch.setattr(A, "first_frame_losses", fake_losses)
    ctx = S.Context("unused", seed=2, log=lambda s: None)
    no_weights = {"params": {}}                   # the losses are faked: no weights needed
    rows = {"full": Row("atom", "tiny"), "gd": Row("atom", "tiny", {"optimizer": "gd", **no_weights}),
            "gd fixed": Row("atom", "tiny", {"optimizer": "gd", "gd_step": 0.5})}
    assert A.pick_gd_step(rows, ctx) == {"gd": {"gd_step": 3e-3}}
    assert seen == [(A.GD_TUNE_SEQUENCES, 2, "gd")] * len(A.GD_STEPS)
    assert ctx.extra["gd_step"]["gd"]["chosen"] == 3e-3
    assert ctx.extra["gd_step"]["gd"]["synthetic_first_frame_loss"]["0.01"] == float("inf")
    assert "gradient-descent step 0.003" in A.gd_markdown({"extra": ctx.extra})
