"""jaxtrack.eval.ope: result layout, dataset convention, resume, atomicity, reports."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pytest

from jaxtrack import boxes as B
from jaxtrack.eval import (evaluate_results, load_results, markdown_table, plot_success_precision,
                           read_boxes, read_times, run_ope)
from jaxtrack.eval import metrics as M

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Seq:
    """Stand-in for jaxtrack.data.Sequence (name, gt in jaxtrack xywh, index_base)."""
    name: str
    gt: np.ndarray
    index_base: int = 1

    def __len__(self):
        return len(self.gt)


def make_sequences(n_seqs=5, seed=0, index_base=1):
    rng = np.random.default_rng(seed)
    seqs = []
    for i in range(n_seqs):
        n = int(rng.integers(8, 20))
        gt = np.concatenate([rng.uniform(0, 200, (n, 2)), rng.uniform(10, 60, (n, 2))], 1)
        gt = np.round(gt)
        if i == 1:
            gt[3] = np.nan  # an unannotated frame
        seqs.append(Seq(f"seq_{i:02d}", gt, index_base))
    return seqs


def fake_prediction(seq):
    """Deterministic per sequence, so a rerun would write identical files."""
    rng = np.random.default_rng(sum(map(ord, seq.name)))
    gt = np.nan_to_num(seq.gt, nan=50.0)
    pred = gt + rng.normal(0, 4, gt.shape)
    pred[:, 2:] = np.maximum(pred[:, 2:], 1)
    return pred


class Counter:
    """A track_fn that records the sequences it ran and can fail after ``fail_after`` calls."""

    def __init__(self, fail_after=None):
        self.calls, self.fail_after = [], fail_after

    def __call__(self, seq):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("killed")
        self.calls.append(seq.name)
        return fake_prediction(seq), np.full(len(seq), 0.01)


def tmp_files(root):
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".tmp")]


def assert_complete(tracker_dir, seq):
    boxes = read_boxes(tracker_dir / f"{seq.name}.txt")
    times = read_times(tracker_dir / "times" / f"{seq.name}_time.txt")
    assert boxes.shape == (len(seq), 4) and times.shape == (len(seq),)


def test_layout_convention_and_reports(tmp_path):
    seqs = make_sequences()
    report = run_ope("T", seqs, Counter(), tmp_path, progress=False, extra_info={"cfg": "x"})
    d = tmp_path / "T"
    for seq in seqs:
        assert_complete(d, seq)
        lines = (d / f"{seq.name}.txt").read_text().splitlines()
        assert len(lines) == len(seq) and lines[0].count(",") == 3
        # written in the dataset's 1-based convention: jaxtrack x,y + 1
        np.testing.assert_allclose(read_boxes(d / f"{seq.name}.txt"),
                                   fake_prediction(seq) + [1, 1, 0, 0], atol=1e-4)
    assert not tmp_files(tmp_path)

    on_disk = json.loads((d / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert on_disk["info"] == {"cfg": "x"}
    assert set(on_disk["per_sequence"]) == {s.name for s in seqs}
    for k in ("auc", "prec20", "norm_prec", "fps", "frames"):
        assert k in on_disk["per_sequence"]["seq_00"]
    for k in ("auc", "prec20", "norm_prec", "fps"):
        assert k in on_disk["mean"]
    # the numbers are got10k's on the written files
    s = seqs[1]
    ref = M.dataset_sequence_metrics(read_boxes(d / f"{s.name}.txt"), B.to_dataset(s.gt, 1))
    assert report["per_sequence"][s.name]["auc"] == pytest.approx(ref["auc"], abs=1e-12)
    assert report["per_sequence"][s.name]["fps"] == pytest.approx(100.0)  # frame 0 excluded
    assert report["mean"]["fps"] == pytest.approx(100.0)
    assert report["mean"]["frames"] == sum(len(s) for s in seqs)

    md = (d / "metrics.md").read_text()
    assert "| seq_00 |" in md and "**mean**" in md and "Prec@20" in md
    for png in ("success.png", "precision.png"):
        assert (d / png).read_bytes()[:8] == PNG_MAGIC


def test_resume_after_kill_does_not_recompute(tmp_path):
    seqs = make_sequences(6)
    first = Counter(fail_after=3)
    with pytest.raises(RuntimeError, match="killed"):
        run_ope("T", seqs, first, tmp_path, progress=False)
    assert first.calls == [s.name for s in seqs[:3]]
    for s in seqs[:3]:
        assert_complete(tmp_path / "T", s)
    assert not (tmp_path / "T" / f"{seqs[3].name}.txt").exists()
    assert not tmp_files(tmp_path)

    second = Counter()
    report = run_ope("T", seqs, second, tmp_path, progress=False)
    assert second.calls == [s.name for s in seqs[3:]]
    for s in seqs:
        assert_complete(tmp_path / "T", s)
    assert len(report["per_sequence"]) == 6 and not report["missing"]

    third = Counter()
    run_ope("T", seqs, third, tmp_path, progress=False)
    assert third.calls == []
    run_ope("T", seqs, third, tmp_path, progress=False, overwrite=True)
    assert third.calls == [s.name for s in seqs]


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    seqs = make_sequences(2)
    real_fsync = os.fsync

    def boom(fd):  # interrupt the write of the first result file, after its times file
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.endswith(".tmp") and os.path.basename(os.path.dirname(path)) == "T":
            raise KeyboardInterrupt
        return real_fsync(fd)

    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs /proc to spot the temporary file")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        run_ope("T", seqs, Counter(), tmp_path, progress=False)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert not (tmp_path / "T" / f"{seqs[0].name}.txt").exists()
    assert not tmp_files(tmp_path)

    again = Counter()
    run_ope("T", seqs, again, tmp_path, progress=False)
    assert again.calls == [s.name for s in seqs]  # the half-done sequence is redone


def test_corrupt_or_partial_files_are_redone(tmp_path):
    seqs = make_sequences(4)
    run_ope("T", seqs, Counter(), tmp_path, progress=False)
    d = tmp_path / "T"
    short = d / f"{seqs[0].name}.txt"
    short.write_text("".join(short.read_text().splitlines(True)[:-2]))      # truncated
    (d / f"{seqs[1].name}.txt").write_text("1,2,3,4\nnot,a,box,here\n")      # garbage
    (d / "times" / f"{seqs[2].name}_time.txt").unlink()                      # no times

    redo = Counter()
    with pytest.warns(UserWarning, match="running it again"):
        run_ope("T", seqs, redo, tmp_path, progress=False)
    assert redo.calls == [s.name for s in seqs[:3]]
    for s in seqs:
        assert_complete(d, s)


def test_bad_track_fn_output_is_refused(tmp_path):
    seqs = make_sequences(1)
    with pytest.raises(ValueError, match="the tracker returned boxes"):
        run_ope("T", seqs, lambda s: (np.zeros((len(s) - 1, 4)), np.zeros(len(s) - 1)),
                tmp_path, progress=False)
    assert not (tmp_path / "T" / f"{seqs[0].name}.txt").exists()


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    run_ope("T", make_sequences(2), Counter(), tmp_path, progress=True)
    out, err = capsys.readouterr()
    assert "T" in err and out == ""


def test_zero_based_dataset_convention(tmp_path):
    seqs = make_sequences(1, index_base=0)
    run_ope("T", seqs, Counter(), tmp_path, progress=False)
    np.testing.assert_allclose(read_boxes(tmp_path / "T" / f"{seqs[0].name}.txt"),
                               fake_prediction(seqs[0]), atol=1e-4)


def test_evaluate_foreign_tab_separated_folder(tmp_path):
    seqs = make_sequences(4)
    ours = run_ope("T", seqs, Counter(), tmp_path, progress=False)
    # a pytracking-style folder: tab-separated, times beside the boxes, one sequence missing
    foreign = tmp_path / "other_toolkit"
    foreign.mkdir()
    for s in seqs[:3]:
        np.savetxt(foreign / f"{s.name}.txt", read_boxes(tmp_path / "T" / f"{s.name}.txt"),
                   delimiter="\t", fmt="%.4f")
        np.savetxt(foreign / f"{s.name}_time.txt", np.full(len(s), 0.02), fmt="%.6f")
    with pytest.warns(UserWarning, match="no results for 1"):
        theirs = evaluate_results(foreign, seqs)
    assert theirs["missing"] == [seqs[3].name]
    for s in seqs[:3]:
        for k in ("auc", "prec20", "norm_prec"):
            assert theirs["per_sequence"][s.name][k] == ours["per_sequence"][s.name][k]
        assert theirs["per_sequence"][s.name]["fps"] == pytest.approx(50.0)

    # whitespace-separated too, and a folder without times has no fps
    spaced = tmp_path / "spaced"
    spaced.mkdir()
    np.savetxt(spaced / f"{seqs[0].name}.txt", read_boxes(foreign / f"{seqs[0].name}.txt"), fmt="%.2f")
    with pytest.warns(UserWarning):
        r = evaluate_results(spaced, seqs[:1] + seqs[3:])
    assert r["per_sequence"][seqs[0].name]["fps"] is None and r["missing"] == [seqs[3].name]

    # a garbled foreign file is reported, not fatal
    (spaced / f"{seqs[3].name}.txt").write_text("1 2 3\n")
    with pytest.warns(UserWarning, match="unreadable"):
        r = evaluate_results(spaced, seqs[:1] + seqs[3:])
    assert list(r["unreadable"]) == [seqs[3].name] and list(r["per_sequence"]) == [seqs[0].name]

    # compare the trackers on one plot and in one table
    named = load_results({"T": ours, "other": foreign, "T again": tmp_path / "T"}, seqs[:3])
    assert named["T again"]["per_sequence"] == {s.name: ours["per_sequence"][s.name] for s in seqs[:3]}
    paths = plot_success_precision(named, tmp_path / "cmp")
    for p in paths.values():
        assert p.read_bytes()[:8] == PNG_MAGIC
    table = markdown_table({"T": ours, "other": theirs})
    assert table.count("\n") == 4 and "| T |" in table and "| other |" in table


def test_results_folders_are_named_by_the_whole_run_and_never_mixed(tmp_path):
    from jaxtrack.eval.ope import RunMismatchError, claim_folder, run_identity, run_name
    import jaxtrack
    t = jaxtrack.make_tracker("siamfc", variant="tiny", allow_random=True)
    ident = run_identity(t, variant="tiny", seed=0)
    assert ident["config"]["instance_size"] == 191 and len(ident["params_sha256"]) == 64
    name = run_name(ident)
    assert name.startswith("siamfc_alexnet_tiny_") and name == run_name(run_identity(t, variant="tiny", seed=0))
    other_seed = run_identity(t, variant="tiny", seed=1)
    other_config = run_identity(jaxtrack.make_tracker("siamfc", variant="tiny", params=t.params,
                                                      window_influence=0.3), variant="tiny", seed=0)
    other_weights = run_identity(jaxtrack.make_tracker("siamfc", variant="tiny", allow_random=True, seed=1),
                                 variant="tiny", seed=0)
    assert len({name, run_name(other_seed), run_name(other_config), run_name(other_weights)}) == 4
    folder = tmp_path / name
    claim_folder(folder, ident)
    claim_folder(folder, ident)                               # the same run resumes
    with pytest.raises(RunMismatchError, match="config.window_influence: recorded 0.176, now 0.3"):
        claim_folder(folder, other_config)
    with pytest.raises(RunMismatchError, match="params_sha256"):
        claim_folder(folder, other_weights)
    with pytest.raises(RunMismatchError, match="seed: recorded 0, now 1"):
        claim_folder(folder, other_seed)
    claim_folder(folder, other_seed, overwrite=True)          # --overwrite starts afresh
    assert json.loads((folder / "run.json").read_text())["seed"] == 1
    legacy = tmp_path / "old"
    legacy.mkdir()
    (legacy / "a.txt").write_text("1,2,3,4\n")
    with pytest.raises(RunMismatchError, match="no run.json"):
        claim_folder(legacy, ident)
