"""`jaxtrack report / show / pack` and jaxtrack.eval.attributes, on tiny synthetic datasets written
to disk in the OTB, GOT-10k and TrackingNet layouts (fast: a few frames of 64x48)."""
from __future__ import annotations

import json
import os
import zipfile

import cv2
import numpy as np
import pytest

from jaxtrack import boxes as B
from jaxtrack import cli
from jaxtrack.commands.pack import pack_entries
from jaxtrack.errors import ResultsError
from jaxtrack.data import load_dataset
from jaxtrack.data.synthetic import make_sequence, write_got10k_layout
from jaxtrack.errors import DatasetError
from jaxtrack.eval import attributes as A
from jaxtrack.eval import metrics as M
from jaxtrack.eval.ope import evaluate_results, read_boxes, read_times, write_sequence_result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_FRAMES = 6

# sequence -> attrs.txt content (None: no attrs.txt; the name decides what the shipped table gives)
OTB_SEQS = {"Biker": None, "Deer": None, "Custom": "IV, SV", "Unknown": None}


def _synthetic(i, name, n=N_FRAMES):
    return make_sequence(i, num_frames=n, size=(48, 64), occlusion=False, blur=False,
                         distractors=0, name=name)


def _prediction(seq, shift):
    """The ground truth moved by ``shift`` px (jaxtrack xywh, all finite)."""
    pred = np.array(seq.gt, np.float64)
    pred[1:, :2] += shift
    return pred


@pytest.fixture(scope="module")
def otb(tmp_path_factory):
    """An OTB-layout root with four sequences and three result folders: two of ours (``alpha``
    exact, ``beta`` 3 px off and without Deer) and a foreign tab-separated one without times."""
    base = tmp_path_factory.mktemp("otb")
    root, results = base / "data", base / "results"
    for i, (name, attrs) in enumerate(OTB_SEQS.items()):
        seq, folder = _synthetic(i, name), root / name
        (folder / "img").mkdir(parents=True)
        for k in range(len(seq)):
            cv2.imwrite(str(folder / "img" / f"{k + 1:04d}.jpg"), seq.frame(k)[..., ::-1])
        gt = B.to_dataset(seq.gt, 1)
        (folder / "groundtruth_rect.txt").write_text("".join(",".join(f"{v:.4f}" for v in r) + "\n" for r in gt))
        if attrs:
            (folder / "attrs.txt").write_text(attrs + "\n")
    seqs = load_dataset("otb", root)
    for seq in seqs:
        write_sequence_result(results / "alpha", seq, _prediction(seq, 0.0), np.full(len(seq), 0.01))
        if seq.name != "Deer":
            write_sequence_result(results / "beta", seq, _prediction(seq, 3.0), np.full(len(seq), 0.02))
        foreign = B.to_dataset(_prediction(seq, 6.0 + len(seq.name)), 1)
        (results / "kcf").mkdir(parents=True, exist_ok=True)
        (results / "kcf" / f"{seq.name}.txt").write_text(
            "".join("\t".join(f"{v:.2f}" for v in r) + "\n" for r in foreign))
    return {"root": root, "results": results, "sequences": seqs}


# ----------------------------------------------------------------------------- attributes

def test_shipped_table_has_the_shared_sequences_attributes():
    table = A.load_attribute_table()
    readme = {"David": "IV SV OCC DEF MB IPR OPR", "Crossing": "SV DEF FM OPR BC",
              "Couple": "SV DEF FM OPR BC", "Walking2": "SV OCC LR", "Skiing": "IV SV DEF IPR OPR"}
    for name, codes in readme.items():
        assert table[name] == tuple(codes.split())
    assert "bag" not in table                     # a VOT sequence: no OTB attributes
    assert all(c in A.OTB_ATTRIBUTES for codes in table.values() for c in codes)
    assert A.lookup(table, "Jogging.1") == table["Jogging-1"]     # jaxtrack's two-target names
    assert A.lookup(table, "NotASequence") is None


def test_attribute_table_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"Biker": "SV OCC"}')
    with pytest.raises(DatasetError, match="Biker"):
        A.load_attribute_table(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(DatasetError, match="JSON object"):
        A.load_attribute_table(bad)
    with pytest.raises(FileNotFoundError):
        A.load_attribute_table(tmp_path / "missing.json")


def test_attribute_scores_match_a_hand_count():
    reports = {"A": {"per_sequence": {"s1": {"auc": 0.2}, "s2": {"auc": 0.4}, "s3": {"auc": 0.9}, "s4": {"auc": 0.5}}},
               "B": {"per_sequence": {"s1": {"auc": 0.6}, "s3": {"auc": 0.1}, "s4": {"auc": 0.5}}}}
    seq_attrs = {"s1": ("IV", "SV"), "s2": ("SV",), "s3": ("occ", "XYZ"), "s4": ()}
    s = A.attribute_scores(reports, seq_attrs)
    att = s["attributes"]
    assert att["IV"]["sequences"] == ["s1"] and att["SV"]["sequences"] == ["s1", "s2"]
    assert att["OCC"]["sequences"] == ["s3"] and att["DEF"]["sequences"] == []
    assert att["SV"]["scores"]["A"]["score"] == pytest.approx(0.3)
    assert att["SV"]["scores"]["B"] == {"score": pytest.approx(0.6), "scored": 1, "missing": ["s2"]}
    assert att["OCC"]["scores"]["B"]["score"] == pytest.approx(0.1)
    assert att["DEF"]["scores"]["A"]["score"] is None
    assert s["without_attributes"] == ["s4"] and s["other_codes"] == {"XYZ": ["s3"]}
    md = A.attribute_table(s)
    assert "| Scale Variation (SV) | 2 | **0.300** | 0.600 (1/2) |" in md     # 1 of 2: not comparable
    assert "| Deformation (DEF) | 0 | - | - |" in md
    assert "No attribute known for: s4" in md and "XYZ (s3)" in md
    with pytest.raises(ValueError, match="metric"):
        A.attribute_scores(reports, seq_attrs, metric="ao")


def test_attribute_auc_is_the_auc_of_the_mean_curve(otb):
    """The OTB toolkit's attribute score (the subset's success curves averaged, AUC of that) is
    what attribute_scores gives from the per-sequence AUCs."""
    seqs = otb["sequences"]
    report = evaluate_results(otb["results"] / "kcf", seqs)
    attrs = A.sequence_attributes(seqs, A.load_attribute_table())
    assert attrs["Custom"] == ("IV", "SV") and attrs["Unknown"] == ()
    assert attrs["Biker"] == ("SV", "OCC", "MB", "FM", "OPR", "OV", "LR")
    s = A.attribute_scores({"kcf": report}, attrs)
    for code in ("SV", "LR", "IV"):
        members = [q for q in seqs if code in attrs[q.name]]
        per = {}
        for q in members:
            pred = read_boxes(otb["results"] / "kcf" / f"{q.name}.txt")
            per[q.name] = M.dataset_sequence_metrics(pred, B.to_dataset(q.gt, 1))
        assert s["attributes"][code]["scores"]["kcf"]["score"] == pytest.approx(M.aggregate(per)["auc"], abs=1e-12)


# ----------------------------------------------------------------------------- report

@pytest.mark.filterwarnings("ignore:.*no results for")
def test_report_command(otb, tmp_path, capsys):
    res, out = otb["results"], tmp_path / "rep"
    cli.main(["report", str(res / "alpha"), str(res / "beta"), str(res / "kcf"),
              "--root", str(otb["root"]), "--attributes", "--out", str(out)])
    printed = capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert md in printed
    for name in ("alpha", "kcf", "beta (3/4 sequences)"):
        assert f"| {name} |" in md
    assert "## Per sequence" in md and "| Deer | 6 |" in md
    assert "beta (" in md and "no result for Deer" in md
    assert "| Scale Variation (SV) | 2 |" in md and "| Deformation (DEF) | 0 |" in md
    for f in ("success.png", "precision.png", "radar.png"):
        assert (out / f).read_bytes()[:8] == PNG_MAGIC
    summary = json.loads((out / "report.json").read_text())
    att = summary["attributes"]
    # hand count: Biker SV OCC MB FM OPR OV LR, Deer MB FM IPR BC LR (shipped table), Custom IV SV
    # (its attrs.txt), Unknown none
    count = {c: len(att["attributes"][c]["sequences"]) for c in A.OTB_ATTRIBUTES}
    assert count == {"IV": 1, "SV": 2, "OCC": 1, "DEF": 0, "MB": 2, "FM": 2, "IPR": 1, "OPR": 1,
                     "OV": 1, "BC": 1, "LR": 2}
    assert att["without_attributes"] == ["Unknown"]
    per = summary["trackers"]["alpha"]["report"]["per_sequence"]
    mb = att["attributes"]["MB"]["scores"]
    assert mb["alpha"]["score"] == pytest.approx((per["Biker"]["auc"] + per["Deer"]["auc"]) / 2)
    assert mb["beta"]["scored"] == 1 and mb["beta"]["missing"] == ["Deer"]
    assert summary["trackers"]["kcf"]["report"]["mean"]["fps"] is None     # no times: FPS unknown


def test_report_attribute_file_overrides_the_shipped_table(otb, tmp_path):
    table = tmp_path / "mine.json"
    table.write_text(json.dumps({"Unknown": ["DEF"], "Biker": ["LR"], "Custom": ["OV"]}))
    out = tmp_path / "rep"
    cli.main(["report", str(otb["results"] / "alpha"), "--root", str(otb["root"]),
              "--attributes", str(table), "--out", str(out)])
    att = json.loads((out / "report.json").read_text())["attributes"]
    assert att["attributes"]["DEF"]["sequences"] == ["Unknown"]
    assert att["attributes"]["LR"]["sequences"] == ["Biker"]         # from the file, not the shipped table
    assert att["attributes"]["IV"]["sequences"] == ["Custom"]        # attrs.txt wins over the file
    assert att["without_attributes"] == ["Deer"]


@pytest.mark.filterwarnings("ignore:.*no results for")
def test_report_refuses_a_folder_without_results(otb, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["report", str(tmp_path / "nope"), "--root", str(otb["root"]), "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "nope" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        cli.main(["report", str(tmp_path / "empty"), "--root", str(otb["root"]), "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "no readable result" in capsys.readouterr().err


# ----------------------------------------------------------------------------- show

def test_show_png_grid(otb, tmp_path):
    out = tmp_path / "grid.png"
    res = otb["results"]
    cli.main(["show", str(res / "alpha"), str(res / "kcf"), "--root", str(otb["root"]),
              "--sequence", "Biker", "--out", str(out), "--frames", "0,2", "5"])
    assert out.read_bytes()[:8] == PNG_MAGIC
    img = cv2.imread(str(out))
    assert img.shape[1] == 3 * 64 + 2 * 4           # three 64-px tiles in a row, 4-px gaps
    cli.main(["show", str(res / "alpha"), "--root", str(otb["root"]), "--sequence", "Biker",
              "--out", str(out)])                    # default: 8 evenly spaced (6 frames: all 6)
    assert cv2.imread(str(out)).shape[1] == 4 * 64 + 3 * 4


def test_show_mp4_has_every_frame(otb, tmp_path):
    out = tmp_path / "video.mp4"
    res = otb["results"]
    cli.main(["show", str(res / "alpha"), str(res / "beta"), str(res / "kcf"), "--root", str(otb["root"]),
              "--sequence", "Custom", "--out", str(out)])
    cap = cv2.VideoCapture(str(out))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == N_FRAMES
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]     # no temporary left


def test_show_errors(otb, tmp_path, capsys):
    res = otb["results"]
    with pytest.raises(SystemExit) as e:              # beta has no result for Deer
        cli.main(["show", str(res / "beta"), "--root", str(otb["root"]), "--sequence", "Deer",
                  "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2 and "Deer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["show", str(res / "alpha"), "--root", str(otb["root"]), "--sequence", "Deer",
                  "--frames", "6", "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2 and "0..5" in capsys.readouterr().err


# ----------------------------------------------------------------------------- pack

@pytest.fixture
def got10k_test(tmp_path):
    """A GOT-10k test split of two sequences and our results for it (``jaxtrack eval``'s writer)."""
    truth = [_synthetic(10 + i, f"GOT-10k_Test_{i + 1:06d}", n=5 + i) for i in range(2)]
    split = write_got10k_layout(truth, tmp_path / "got10k", split="test")
    for t in truth:                          # as GOT-10k's test split ships: the first box only
        gt = os.path.join(split, t.name, "groundtruth.txt")
        first = open(gt).readline()
        open(gt, "w").write(first)
        os.unlink(os.path.join(split, t.name, "absence.label"))
    seqs = load_dataset("got10k", tmp_path / "got10k", split="test")
    results = tmp_path / "results" / "ours"
    for seq, t in zip(seqs, truth):
        assert len(seq) == len(t) and np.isnan(seq.gt[1:]).all()      # NaN-padded by the reader
        rng = np.random.default_rng(len(seq))
        write_sequence_result(results, seq, _prediction(t, 1.234567), rng.uniform(0.001, 0.05, len(seq)))
    return tmp_path / "got10k", results, seqs


def test_pack_got10k_matches_the_got10k_toolkit(got10k_test, tmp_path, monkeypatch):
    """The same boxes and times recorded by got10k's ExperimentGOT10k and zipped by its report()
    give the same files, byte for byte, as `jaxtrack pack got10k`."""
    got10k_exp = pytest.importorskip("got10k.experiments.got10k")
    from got10k.trackers import Tracker
    root, results, seqs = got10k_test
    out = tmp_path / "ours.zip"
    cli.main(["pack", "got10k", str(results), "--root", str(root), "--out", str(out)])

    class Replay(Tracker):                  # returns our recorded boxes and times
        def __init__(self):
            super().__init__("replay", is_deterministic=True)

        def track(self, img_files, box, visualize=False):
            name = os.path.basename(os.path.dirname(img_files[0]))
            return read_boxes(results / f"{name}.txt"), read_times(results / "times" / f"{name}_time.txt")

    monkeypatch.setattr(got10k_exp.time, "sleep", lambda s: None)
    exp = got10k_exp.ExperimentGOT10k(str(root), subset="test", result_dir=str(tmp_path / "toolkit"),
                                      report_dir=str(tmp_path / "toolkit_reports"))
    exp.run(Replay())
    exp.report(["replay"])
    with zipfile.ZipFile(tmp_path / "toolkit" / "GOT-10k" / "replay.zip") as z:
        theirs = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(out) as z:
        ours = {n: z.read(n) for n in z.namelist()}
    assert sorted(ours) == sorted(theirs) and any(n.endswith("/") for n in ours)
    assert ours == theirs
    # the toolkit's own result folder (GOT-10k layout) packs to the same files
    again = tmp_path / "again.zip"
    cli.main(["pack", "got10k", str(tmp_path / "toolkit" / "GOT-10k" / "replay"), "--root", str(root),
              "--out", str(again)])
    with zipfile.ZipFile(again) as z:
        assert {n: z.read(n) for n in z.namelist()} == theirs
    first = ours[f"{seqs[0].name}/{seqs[0].name}_001.txt"].decode()
    assert first.splitlines()[0] == ",".join("%.3f" % v for v in B.to_dataset(seqs[0].gt[0], 0))


@pytest.fixture
def trackingnet_test(tmp_path):
    """A TrackingNet TEST chunk of two sequences (first box only) and our results for it."""
    root = tmp_path / "trackingnet"
    truth = [_synthetic(20 + i, f"seq_{i}", n=4 + i) for i in range(2)]
    for t in truth:
        frames = root / "TEST" / "frames" / t.name
        frames.mkdir(parents=True)
        for k in range(len(t)):
            cv2.imwrite(str(frames / f"{k}.jpg"), t.frame(k)[..., ::-1])
        (root / "TEST" / "anno").mkdir(parents=True, exist_ok=True)
        (root / "TEST" / "anno" / f"{t.name}.txt").write_text(",".join(f"{v:.4f}" for v in t.gt[0]) + "\n")
    seqs = load_dataset("trackingnet", root, split="test")
    results = tmp_path / "results" / "ours"
    for seq, t in zip(seqs, truth):
        write_sequence_result(results, seq, _prediction(t, 2.0), np.full(len(seq), 0.01))
    return root, results, seqs


def test_pack_trackingnet_layout(trackingnet_test, tmp_path):
    root, results, seqs = trackingnet_test
    out = tmp_path / "tn.zip"
    cli.main(["pack", "trackingnet", str(results), "--root", str(root), "--out", str(out)])
    with zipfile.ZipFile(out) as z:
        assert sorted(z.namelist()) == sorted(f"{s.name}.txt" for s in seqs)
        for s in seqs:
            # pytracking's pack_trackingnet_results: np.savetxt(..., delimiter=',', fmt='%.2f')
            expect = "".join(",".join("%.2f" % v for v in row) + "\n"
                             for row in np.loadtxt(results / f"{s.name}.txt", delimiter=","))
            assert z.read(f"{s.name}.txt").decode() == expect
            assert len(expect.splitlines()) == len(s)


def test_pack_refuses_incomplete_results(got10k_test, trackingnet_test, tmp_path, capsys):
    root, results, seqs = got10k_test
    out = tmp_path / "x.zip"
    args = ["pack", "got10k", str(results), "--root", str(root), "--out", str(out)]
    (results / "times" / f"{seqs[0].name}_time.txt").unlink()          # GOT-10k needs the times
    box = results / f"{seqs[1].name}.txt"
    box.write_text("".join(box.read_text().splitlines(keepends=True)[:-1]))   # one line short
    with pytest.raises(SystemExit) as e:
        cli.main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and not out.exists()
    assert f"{seqs[0].name} (no times file" in err
    assert f"{seqs[1].name} (" in err and f"has {len(seqs[1]) - 1} lines for {len(seqs[1])} frames" in err

    tn_root, tn_results, tn_seqs = trackingnet_test
    (tn_results / f"{tn_seqs[0].name}.txt").unlink()
    with pytest.raises(ResultsError, match=f"{tn_seqs[0].name} \\(no result file\\)"):
        pack_entries("trackingnet", tn_results, tn_seqs)
    bad = tn_results / f"{tn_seqs[1].name}.txt"
    lines = bad.read_text().splitlines()
    lines[1] = "nan,1,2,3"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsError, match="not a finite number"):
        pack_entries("trackingnet", tn_results, tn_seqs[1:])
