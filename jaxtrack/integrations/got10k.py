"""Any jaxtrack tracker as a got10k toolkit tracker, and got10k's OTB experiment on any sequences.

    from got10k.experiments import ExperimentOTB
    from jaxtrack.integrations.got10k import Got10kTracker

    tracker = Got10kTracker("siamfc", backbone="mobilenet_v2")
    experiment = ExperimentOTB("data/OTB", version=2015)
    experiment.run(tracker)
    experiment.report([tracker.name])

:class:`Got10kTracker` implements ``got10k.trackers.Tracker`` (``init(image, box)`` /
``update(image) -> box``): the tracker's ``init`` and ``track_step`` run under ``jax.jit``
(:class:`jaxtrack.driver.JitTracker`), every frame padded to its shape bucket
(:func:`jaxtrack.frames.pad_frame`), so a whole benchmark compiles once per bucket, as
``jaxtrack eval`` does.

Box convention. got10k hands a tracker the first box exactly as the dataset's annotation
file gives it and scores the returned boxes against that file unchanged: for OTB, VOT,
LaSOT and UAV123 (``ExperimentOTB``, ``ExperimentVOT``, ``ExperimentLaSOT``...) these are
1-based pixel indices, for GOT-10k (``ExperimentGOT10k``) 0-based. ``index_base`` (default
1; pass 0 for GOT-10k) converts them to jaxtrack's 0-based boxes (``boxes.from_dataset``)
and back (``boxes.to_dataset``), the conversion ``jaxtrack eval`` applies when it writes a
dataset's result files, so the two write the same boxes.

PRNG key. got10k never tells a tracker which sequence it is on, while ``jaxtrack eval``
keys each sequence with ``jaxtrack.frames.sequence_key(seed, sequence_name)``. The adapter
uses the same key with the name taken from the frame files
(:func:`jaxtrack.integrations.sequence_name_from_path`): ``track(img_files, box)`` (what
got10k's OTB, LaSOT and GOT-10k experiments call) passes the first file's path; a bare
``init(image, box)`` (got10k's VOT experiment) uses the PIL image's ``filename`` when it has
one. Where neither is known (``init`` with an array, or with an image that was converted),
the key is ``sequence_key(seed, "")``, the same for every sequence; ``set_sequence(name)``
names it explicitly. For OTB's two-target folders the folder name (``Jogging``) is used for
both targets where jaxtrack says ``Jogging.1`` / ``Jogging.2``. (SiamFC ignores the key.)

Frames. got10k decodes frames with PIL; ``jaxtrack eval`` with OpenCV. Both wheels decode
JPEG with libjpeg-turbo, and on ../shared/data/otb the pixels were found byte-identical;
a decoder that differed would change the boxes, not the scoring.

A non-finite state is handled as ``jaxtrack eval`` does (:func:`jaxtrack.driver.finish_result`):
from the first frame whose state is not finite the adapter keeps returning the last finite
box, with a warning naming the frame.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence as Seq
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
from got10k.trackers import Tracker as _Got10kBase

from jaxtrack import boxes as B
from jaxtrack.core import Tracker
from jaxtrack.driver import JitTracker
from jaxtrack.frames import pad_frame, sequence_key
from jaxtrack.integrations import sequence_name_from_path

__all__ = ["Got10kTracker", "SequenceDataset", "experiment_otb"]


class Got10kTracker(_Got10kBase):
    """A jaxtrack tracker behind got10k's ``Tracker`` interface.

    Args:
      tracker: a tracker name (built with ``jaxtrack.make_tracker(tracker, variant,
        **overrides)``) or an already built :class:`jaxtrack.core.Tracker`.
      variant: the named variant to build; with a built tracker it only names the run.
      name: the name got10k files the results under; default: ``jaxtrack eval``'s folder
        name for this tracker, variant, weights and seed (``siamfc_mobilenet_v2_default_1a2b3c4d``).
      seed: seeds the per-sequence PRNG keys, as ``jaxtrack eval --seed``.
      index_base: pixel index base of the boxes got10k passes and scores: 1 (OTB, VOT, LaSOT,
        UAV123; the default) or 0 (GOT-10k).
      checked: run under ``checkify`` (stops at the first NaN-making operation; slower).
      **overrides: config fields, ``backbone``, ``weights``, ``allow_random``... for
        ``make_tracker`` (only with a tracker name).
    """

    def __init__(self, tracker: str | Tracker = "siamfc", variant: str = "default", *,
                 name: str | None = None, seed: int = 0, index_base: int = 1,
                 checked: bool = False, **overrides):
        if isinstance(tracker, Tracker):
            if overrides:
                raise TypeError(f"Got10kTracker: overrides {sorted(overrides)} need a tracker name, "
                                "not a built tracker")
            built = tracker
        else:
            import jaxtrack
            built = jaxtrack.make_tracker(tracker, variant=variant, **overrides)
        if index_base not in (0, 1):
            raise ValueError(f"Got10kTracker: index_base must be 0 or 1, got {index_base!r}")
        if name is None:
            from jaxtrack.eval.ope import run_identity, run_name
            name = run_name(run_identity(built, variant=variant, seed=seed))
        super().__init__(name=name, is_deterministic=True)   # a key per sequence: same boxes every run
        self.tracker = built
        self.variant = variant
        self.seed = seed
        self.index_base = index_base
        self.jit = JitTracker(built, checked=checked)
        self.last_output = None     # the TrackOutput of the latest update (score, lost, finite)
        self._sequence: str | None = None
        self._state = None
        self._frame = 0
        self._held = None           # the last finite box once the state went non-finite
        self._last_box = None
        self.sequence_name = None   # the name the current sequence's key was made from

    # ------------------------------------------------------------------ got10k's interface

    def set_sequence(self, name: str | None) -> None:
        """Name the sequence the next ``init`` starts (its PRNG key); ``None``: from the frames."""
        self._sequence = name

    def track(self, img_files, box, visualize=False):
        """got10k's whole-sequence loop, with the sequence named after ``img_files[0]``'s folder."""
        explicit = self._sequence
        if explicit is None and len(img_files):
            self._sequence = sequence_name_from_path(img_files[0])
        try:
            return super().track(img_files, box, visualize=visualize)
        finally:
            self._sequence = explicit

    def init(self, image, box):
        """Start on ``image`` (PIL or [H, W, 3] array) at ``box`` (x, y, w, h, ``index_base``)."""
        name = self._sequence
        if name is None:
            filename = getattr(image, "filename", None)
            name = sequence_name_from_path(filename) if filename else ""
        self.sequence_name = name
        pixels = _pixels(image)
        first = B.validate_box(B.from_dataset(np.asarray(box, np.float64).reshape(-1)[:4], self.index_base),
                               pixels.shape[:2], where=f"{name or 'sequence'}: first box")
        frame = pad_frame(pixels, where=f"{name or 'sequence'} frame 0")
        self._state = self.jit.init(self.jit.params, frame, jnp.asarray(first, jnp.float32),
                                    sequence_key(self.seed, name))
        jax.block_until_ready(self._state)
        self._frame, self._held, self.last_output = 0, None, None
        self._last_box = first

    def update(self, image):
        """Track one more frame; returns its box (x, y, w, h, ``index_base``) as float64 [4]."""
        if self._state is None:
            raise RuntimeError("Got10kTracker.update before init")
        self._frame += 1
        frame = pad_frame(_pixels(image), where=f"{self.sequence_name or 'sequence'} frame {self._frame}")
        self._state, out = self.jit.step(self.jit.params, self._state, frame)
        self.last_output = out
        box = np.asarray(out.box, np.float64)
        if self._held is None and not bool(out.finite):
            self._held = self._last_box
            warnings.warn(f"{self.sequence_name}: the tracker's state became non-finite at frame "
                          f"{self._frame}; the boxes from there repeat frame {self._frame - 1}'s")
        if self._held is not None:
            box = self._held
        self._last_box = box
        return B.to_dataset(box, self.index_base)

    @property
    def num_compilations(self) -> int:
        """Compilations so far (one ``init`` and one ``track_step`` per frame bucket)."""
        return self.jit.num_compilations


def _pixels(image) -> np.ndarray:
    """A PIL image or an array as an [H, W, 3] (or grey) array; ``pad_frame`` checks the rest."""
    if hasattr(image, "convert") and getattr(image, "mode", "RGB") not in ("RGB", "L"):   # PIL.Image
        image = image.convert("RGB")
    return np.asarray(image)


# ----------------------------------------------------------------------------- got10k experiments on our sequences

class SequenceDataset:
    """What got10k's experiments need of a dataset, over jaxtrack :class:`~jaxtrack.data.Sequence`
    objects read from disk: ``seq_names``, ``len`` and ``[i or name] -> (img_files, anno)``,
    ``anno`` in the dataset's own convention (``boxes.to_dataset(seq.gt, seq.index_base)``,
    the file's values for OTB; VOT polygons already reduced by ``polygon_to_xywh``)."""

    def __init__(self, sequences: Seq):
        self.sequences = list(sequences)
        for s in self.sequences:
            if not s.frame_paths:
                raise ValueError(f"{s.name}: got10k reads frames from files; this sequence is in memory")
        self.seq_names = [s.name for s in self.sequences]
        if len(set(self.seq_names)) != len(self.seq_names):
            raise ValueError("sequence names must be unique (they name the result files)")

    def __len__(self):
        return len(self.sequences)

    def __getitem__(self, index):
        if isinstance(index, str):
            index = self.seq_names.index(index)
        s = self.sequences[index]
        return list(s.frame_paths), B.to_dataset(s.gt, s.index_base)


def experiment_otb(sequences: Seq, result_dir: str = "results", report_dir: str = "reports",
                   version: str = "jaxtrack"):
    """got10k's own ``ExperimentOTB`` (run, report, curves: its unmodified code) on
    ``sequences`` instead of the OTB-2015 folder set its constructor insists on.

    Results go to ``<result_dir>/OTB<version>/<tracker>/``, reports to
    ``<report_dir>/OTB<version>/<tracker>/performance.json``, as got10k lays them out.
    """
    from got10k.experiments import otb as otb_module
    dataset = SequenceDataset(sequences)
    with mock.patch.object(otb_module, "OTB", lambda *args, **kwargs: dataset):
        return otb_module.ExperimentOTB(os.fspath(result_dir), version=version,
                                        result_dir=os.fspath(result_dir), report_dir=os.fspath(report_dir))
