"""``jaxtrack track``: your own video, frame folder or camera (jaxtrack.commands.track,
jaxtrack.data.video), run in-process through ``jaxtrack.cli.main`` with the tiny SiamFC.

Outputs (boxes, scores, annotated MP4, track.json), several targets in one batched step
agreeing with each tracked alone, the streamed sources, and every bad input giving the
project's named error with the input named (exit code 2 through the dispatcher).
"""
import inspect
import json
import os

import cv2
import numpy as np
import pytest

from jaxtrack import cli
from jaxtrack.commands import track
from jaxtrack.data.synthetic import make_sequence
from jaxtrack.data.video import draw_boxes, open_source, prefetched
from jaxtrack.errors import BoxError, DatasetNotFoundError, FrameError

N = 12
SIZE = (96, 128)                      # (h, w): one small frame bucket
TINY = ["--tracker", "siamfc", "--variant", "tiny", "--allow-random", "--no-cache", "--no-progress"]


def _box_arg(box) -> str:
    return ",".join(f"{v:.3f}" for v in box)


@pytest.fixture(scope="module")
def seq():
    return make_sequence([7, 1], num_frames=N, size=SIZE, name="trackme")


@pytest.fixture(scope="module")
def video(seq, tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 20, (SIZE[1], SIZE[0]))
    assert writer.isOpened()
    for i in range(N):
        writer.write(cv2.cvtColor(seq.frame(i), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def folder(seq, tmp_path_factory):
    """PNG frames named 1..12 without padding: numeric order is not name order."""
    d = tmp_path_factory.mktemp("frames") / "walk"
    d.mkdir()
    for i in range(N):
        cv2.imwrite(str(d / f"f{i + 1}.png"), cv2.cvtColor(seq.frame(i), cv2.COLOR_RGB2BGR))
    return d


def _others(seq):
    """Two more targets on the first frame (anything inside it will do)."""
    return [np.array([5.0, 6.0, 30.0, 24.0]), np.array([70.0, 50.0, 40.0, 30.0])]


@pytest.fixture(scope="module")
def runs(seq, video, tmp_path_factory):
    """The first target tracked alone, and with two more in one batch of three."""
    out = tmp_path_factory.mktemp("runs")
    cli.main(["track", str(video), *TINY, "--box", _box_arg(seq.gt[0]), "--out", str(out / "one")])
    cli.main(["track", str(video), *TINY, "--box", _box_arg(seq.gt[0]),
              *sum((["--box", _box_arg(b)] for b in _others(seq)), []), "--out", str(out / "three")])
    return out / "one", out / "three"


def _boxes(d, k):
    return np.loadtxt(d / f"boxes_{k}.txt", delimiter=",", ndmin=2)


def _video_frames(path):
    cap = cv2.VideoCapture(str(path))
    n, size = 0, None
    while True:
        ok, f = cap.read()
        if not ok:
            break
        n, size = n + 1, f.shape[:2]
    cap.release()
    return n, size


def test_one_box_outputs(runs, seq, video):
    one, _ = runs
    b = _boxes(one, 0)
    assert b.shape == (N, 4) and np.all(np.isfinite(b)) and np.all(b[:, 2:] > 0)
    np.testing.assert_allclose(b[0], seq.gt[0], atol=1e-3)        # line 1: the given box
    s = np.loadtxt(one / "scores_0.txt", delimiter=",", ndmin=2)
    assert s.shape == (N, 3) and np.all(np.isfinite(s)) and set(np.unique(s[:, 1:])) <= {0.0, 1.0}
    assert _video_frames(one / "annotated.mp4") == (N, SIZE)
    info = json.loads((one / "track.json").read_text())
    assert info["input"] == str(video) and info["input_kind"] == "video"
    assert (info["tracker"], info["variant"], info["seed"], info["frames"]) == ("siamfc", "tiny", 0, N)
    assert info["complete"] and info["stopped"] is None and info["compilations"] == 2
    assert info["fps"] > 0 and info["peak_rss_mib"] > 0 and info["config"]["instance_size"] == 191
    assert info["video_fps"] == pytest.approx(20.0) and info["annotated"] == "annotated.mp4"
    assert not [n for n in os.listdir(one) if "partial" in n]


def test_three_boxes_in_one_batch_agree_with_one(runs, seq):
    one, three = runs
    for k in range(3):
        assert _boxes(three, k).shape == (N, 4)
    np.testing.assert_allclose(_boxes(three, 0), _boxes(one, 0), atol=1e-2)
    np.testing.assert_allclose(_boxes(three, 1)[0], _others(seq)[0], atol=1e-3)
    info = json.loads((three / "track.json").read_text())
    assert len(info["targets"]) == 3 and info["compilations"] == 2        # one batched step
    assert _video_frames(three / "annotated.mp4") == (N, SIZE)


def test_frame_folder_start_and_max_frames(seq, folder, tmp_path):
    out = tmp_path / "out"
    cli.main(["track", str(folder), *TINY, "--box", _box_arg(seq.gt[2]), "--start-frame", "2",
              "--max-frames", "4", "--no-video", "--out", str(out)])
    b = _boxes(out, 0)
    assert b.shape == (4, 4) and np.all(np.isfinite(b))
    np.testing.assert_allclose(b[0], seq.gt[2], atol=1e-3)
    info = json.loads((out / "track.json").read_text())
    assert (info["input_kind"], info["start_frame"], info["frames"]) == ("folder", 2, 4)
    assert info["annotated"] is None and not (out / "annotated.mp4").exists()


def test_sources_stream_frames_in_order(seq, video, folder):
    src = open_source(folder)
    assert (src.kind, src.frame_count, src.stem) == ("folder", N, "walk")
    frames = src.frames()
    assert inspect.isgenerator(frames)                     # streamed, not a list
    for i, image in frames:
        np.testing.assert_array_equal(image, seq.frame(i))  # f10.png after f9.png
    vid = open_source(video)
    assert (vid.kind, vid.frame_count, vid.stem, vid.fps) == ("video", N, "clip", 20.0)
    got = list(prefetched(vid.frames(start=3, max_frames=4)))
    assert [i for i, _ in got] == [3, 4, 5, 6]
    assert all(im.shape == SIZE + (3,) and im.dtype == np.uint8 for _, im in got)
    # lossy, but the same picture: RGB order kept
    assert np.abs(got[0][1].astype(int) - seq.frame(3).astype(int)).mean() < 12


def test_frame_size_change_names_the_frame_and_keeps_what_was_tracked(seq, tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(4):
        image = seq.frame(i) if i != 2 else np.zeros((SIZE[0] + 8, SIZE[1], 3), np.uint8)
        cv2.imwrite(str(d / f"{i:04d}.png"), image)
    with pytest.raises(FrameError, match=r"frame 2: the frame size changes"):
        list(open_source(d).frames())
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        cli.main(["track", str(d), *TINY, "--box", _box_arg(seq.gt[0]), "--out", str(out), "--no-video"])
    assert e.value.code == 2
    assert _boxes(out, 0).shape == (2, 4)                  # frames 0 and 1, finalised
    info = json.loads((out / "track.json").read_text())
    assert not info["complete"] and "frame 2" in info["stopped"]


# ----------------------------------------------------------------------------- bad input

def _bad_inputs(tmp_path, video):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    return {
        "missing": (str(tmp_path / "nope.mp4"), ["--box", "1,1,5,5"], DatasetNotFoundError, "nope.mp4"),
        "empty folder": (str(tmp_path), ["--box", "1,1,5,5"], DatasetNotFoundError, "no frames"),
        "random bytes": (str(junk), ["--box", "1,1,5,5"], FrameError, "junk.mp4"),
        "empty file": (str(empty), ["--box", "1,1,5,5"], FrameError, "empty.avi"),
        "camera": ("97", ["--box", "1,1,5,5"], DatasetNotFoundError, "camera 97"),
        "box outside": (str(video), ["--box", "1,1,5,5", "--box", "300,20,10,10"], BoxError, "300,20,10,10"),
        "bad box": (str(video), ["--box", "1,1,5"], BoxError, "'1,1,5'"),
        "no box, no display": (str(video), [], BoxError, "--box x,y,w,h"),
    }


CASES = ["missing", "empty folder", "random bytes", "empty file", "camera", "box outside", "bad box",
         "no box, no display"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_a_named_error(case, tmp_path, video, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if case == "no box, no display" and not os.sys.platform.startswith("linux"):
        pytest.skip("the no-display rule is for Linux")
    spec, extra, error, text = _bad_inputs(tmp_path, video)[case]
    argv = [spec, *TINY, *extra, "--out", str(tmp_path / "out")]
    args = cli._parser_for(track).parse_args(argv)
    with pytest.raises(error) as e:                        # the class, from the command itself
        track.run(args)
    assert text in str(e.value)
    if case in ("missing", "random bytes", "camera", "box outside", "no box, no display"):
        assert spec in str(e.value) or f"camera {spec}" in str(e.value)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:                   # and through the dispatcher: exit 2
        cli.main(["track", *argv])
    assert e.value.code == 2
    assert text in capsys.readouterr().err


def test_first_boxes_drawn_in_a_window(monkeypatch):
    """The selection window's wiring (RectangleSelector, keys), driven by synthetic mouse and
    key events on the Agg canvas instead of a display."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import KeyEvent, MouseEvent

    def user():                                   # what plt.show would wait for
        fig = plt.gcf()
        ax, canvas = fig.axes[0], fig.canvas
        canvas.draw()

        def drag(p0, p1):
            (x0, y0), (x1, y1) = ax.transData.transform([p0, p1])
            MouseEvent("button_press_event", canvas, x0, y0, button=1)._process()
            MouseEvent("motion_notify_event", canvas, x1, y1, button=1)._process()
            MouseEvent("button_release_event", canvas, x1, y1, button=1)._process()
        drag((30, 5), (10, 25))                   # dragged up-left
        KeyEvent("key_press_event", canvas, "a")._process()
        drag((1, 1), (5, 9))
        KeyEvent("key_press_event", canvas, "a")._process()
        KeyEvent("key_press_event", canvas, "d")._process()     # drop the last
        drag((40, 10), (50, 30))                  # not added with "a": Enter takes it too
        KeyEvent("key_press_event", canvas, "enter")._process()

    monkeypatch.setattr(track, "_interactive_backend", lambda: "agg")
    monkeypatch.setattr(plt, "show", user)
    plt.close("all")                              # figures other tests left open
    boxes = track.select_boxes(np.zeros((40, 60, 3), np.uint8), "clip.mp4 frame 0")
    np.testing.assert_allclose(boxes, [[10, 5, 20, 20], [40, 10, 10, 20]], atol=1e-6)
    assert not plt.get_fignums()                  # Enter closed the window
    monkeypatch.setattr(plt, "show", lambda: None)  # closed without drawing a box
    with pytest.raises(BoxError, match="no box was drawn"):
        track.select_boxes(np.zeros((40, 60, 3), np.uint8), "clip.mp4 frame 0")
    plt.close("all")
    with pytest.raises(BoxError, match="four numbers"):
        track.parse_box("a,b,c,d", 0)
    np.testing.assert_array_equal(track.parse_box(" 1, 2 3,4 ", 0), [1, 2, 3, 4])


def test_draw_boxes_solid_dashed_and_labels():
    black = np.zeros((60, 80, 3), np.uint8)
    solid = draw_boxes(black, [[10, 10, 40, 30]], colors=[(255, 0, 0)], thickness=1)
    dashed = draw_boxes(black, [[10, 10, 40, 30]], colors=[(255, 0, 0)], dashed=[True], thickness=1)
    assert black.max() == 0                                   # drawn on a copy
    top_solid, top_dashed = solid[10, 10:51, 0], dashed[10, 10:51, 0]
    assert np.all(top_solid == 255) and 0 < np.mean(top_dashed > 128) < 0.9
    labelled = draw_boxes(black, [[10, 20, 40, 30], [np.nan] * 4], labels=["0", "1"])
    assert labelled[5:20, 10:25].any()                        # the tag above the box
