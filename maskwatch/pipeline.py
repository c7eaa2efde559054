"""``Pipeline``: source -> detector -> classifier -> tracker -> counter, one ``FrameResult`` per frame.

The pipeline composes the stages and measures them; it knows nothing about Qt, files or printing
(the :class:`~maskwatch.monitor.Monitor` feeds the sinks, the GUI draws, ``maskwatch bench``
aggregates the timings). Every consumer reads the same stream.

Per frame:

1. ``source.read`` (``stage_ms["decode"]``: for files the decode time, for live sources the wait
   for the reader thread's newest frame; with ``--realtime`` it includes the pacing sleep). Files
   are read ahead by a thread (:class:`ReadAhead`, a queue of ``read_ahead`` frames) so decoding
   the next frame overlaps detecting this one; frames stay in order, every one is processed, and
   the per-frame ``stage_ms`` then add up to more than the wall time per frame;
2. every ``detector.every_n`` processed frames the face detector runs (``"detect"``), the tracker
   matches its faces (``"track"``) and the faces it kept are classified in ONE batch
   (``"classify"``); on the frames in between the tracker only predicts where its tracks are
   (``Tracker.predict``: no detection, no classification, no new votes). A tracker that takes
   low-score boxes (kind ``byte``, ``tracker.low_score``) gets the detector's boxes down to that
   score for association only: those under ``detector.min_score`` are classified only when
   matched to a confirmed person, and the tracker drops those it matched to nobody;
3. the counter turns tracks into events and closes intervals.

Time: a file's frames carry their media position (``index / fps``); the pipeline adds the epoch
time at which the run started, so interval rows and events of a file run are in *media* time
(a 10 s clip gives the same rows whether it is processed at 5 or 500 fps). Live frames already
carry the epoch time of capture. ``stats.latency_ms`` is capture to label (monotonic clock).

The classifier can be swapped while the pipeline runs (:meth:`Pipeline.swap_classifier`, from any
thread: the desktop app's Settings, ``serve``'s SIGHUP): the next frame is classified by the new
model; tracks, their votes and the counts so far stay. Each interval row names the model(s) that
labelled it (``IntervalSummary.model``: ``"name version (sha256 8 hex)"``, ``"A -> B"`` for an
interval during which the model was swapped).

Live sources that deliver nothing (connecting, reconnecting after a camera dropped): ``read``
returns ``None`` after ``idle_tick_s``; the pipeline then yields a *status update*: a
``FrameResult`` whose ``frame`` is ``None`` and ``faces`` empty, with the current
``stats.source_state`` / ``reconnect_in`` / ``dropped_frames``, and it closes elapsed intervals on
the wall clock (``Counter.tick``), so a log keeps getting one row per interval, marked
``reconnecting``, while the camera is away. Consumers that only draw frames skip results with
``result.frame is None`` (see :mod:`maskwatch.sinks.base`).

A live source that fails before delivering its first frame (unreachable camera, wrong URL path,
bad credentials) raises ``MaskwatchError`` ("cannot open rtsp://...: why") instead of retrying
silently forever; once frames have flowed, outages are retried (``sources.max_reconnects``).

Example (needs the shipped model)::

    from maskwatch.config import Config
    with Pipeline(Config(source="clip.mp4", interval_s=5)) as pipeline:
        for result in pipeline:
            if result.summary:
                print(result.summary)
        last = pipeline.close()   # the partial interval
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator

from maskwatch.boxes import outside_regions
from maskwatch.classification import MaskClassifier
from maskwatch.config import Config
from maskwatch.counting import Counter as IntervalCounter
from maskwatch.detection import FaceDetector
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces
from maskwatch.frames import Frame, SourceState
from maskwatch.results import FrameResult, IntervalSummary, Stats, Totals
from maskwatch.sources import open_source
from maskwatch.sources.read_ahead import ReadAhead  # noqa: F401 - importable from here, as before
from maskwatch.sources.spec import is_photos, parse  # noqa: F401 - is_photos importable from here, as before
from maskwatch.stages import Classifier, Counter, Detector, FrameSource, Tracker
from maskwatch.tracking import make_tracker
from maskwatch.votes import LabelVotes

log = logging.getLogger("maskwatch.pipeline")

STAGES: tuple[str, ...] = ("decode", "detect", "classify", "track")
"""The timed stages, keys of ``Stats.stage_ms`` (plus ``"total"``: decode to counted)."""

FPS_SMOOTHING = 0.1
"""Weight of the newest frame in the exponential moving average of the processed fps."""


class Pipeline:
    """Runs the stages on a source; iterate it for ``FrameResult``\\ s.

    Stages given must offer what the Protocols of :mod:`maskwatch.stages` say (``FrameSource``,
    ``Detector``, ``Classifier``, ``Tracker``, ``Counter``): the pipeline reads those attributes
    directly. Stages not given are built from ``config``: the classifier and the face detector
    first, then the source, so a missing or broken model fails fast before a camera is opened.
    The pipeline owns every stage it is given or builds: :meth:`close` closes the source and the
    detector.

    ``stop()`` may be called from any thread (a signal handler, the GUI thread): iteration ends
    after the frame being processed (or within ``idle_tick_s`` when a live source is silent).
    """

    def __init__(
        self,
        config: Config,
        *,
        source: FrameSource | None = None,
        detector: Detector | None = None,
        classifier: Classifier | None = None,
        tracker: Tracker | None = None,
        counter: Counter | None = None,
        idle_tick_s: float = 0.25,
        require_first_connection: bool = True,
        read_ahead: int = 2,
    ):
        self.config = config.validate()  # a bad value is one line naming it, before anything is loaded
        self.require_first_connection = require_first_connection
        self.idle_tick_s = float(idle_tick_s)
        self.every_n = max(int(config.detector.every_n), 1)
        self._stop = threading.Event()
        self._read_ahead_depth = max(int(read_ahead), 0)
        self._reader: ReadAhead | None = None
        self._frame_state: SourceState | None = None  # the source's state when a read-ahead frame was read
        self._closed = False
        self._final: IntervalSummary | None = None
        self._swap_lock = threading.RLock()  # re-entrant: a swap may come from a signal handler in this thread
        self._pending_classifier: Classifier | None = None
        self.swaps = 0  # classifiers swapped in so far
        self.detector = None
        self.source = None
        if source is None:
            precheck_source(config.spec)  # a typo'd path fails before any model is loaded
        try:
            if classifier is None:
                classifier = MaskClassifier(config.model)
            self.classifier = classifier
            if tracker is None:
                tracker = make_tracker(config.tracker)
            self.tracker = tracker
            # a tracker that takes low-score boxes (byte) gets them down to its low_score, for
            # association only: the detector runs at that score, boxes under detector.min_score
            # are classified only once matched to a person
            self.low_score = low_score_for(tracker, config.detector.min_score)
            if hasattr(tracker, "high_score"):
                tracker.high_score = config.detector.min_score
            if detector is None:
                det_config = config.detector
                if self.low_score is not None:
                    det_config = dataclasses.replace(det_config, min_score=self.low_score)
                # frames of one camera: motion gating; photos (an image folder) are not frames of one scene
                detector = FaceDetector.from_config(det_config, video=not is_photos(config.spec))
            self.detector = detector
            self.votes = LabelVotes.from_config(config.tracker)
            if counter is None:
                counter = IntervalCounter(config.interval_s, min_hits=config.tracker.min_hits, end_events=True)
            self.counter = counter
            self.counter.use_model(self.model_description)  # the counter stamps it on each summary
            if source is None:
                source = open_source(config.spec, config.sources)
            self.source = source
        except BaseException:
            self._close_stages()
            raise
        self.run_start_epoch = time.time()  # file runs: media time 0 maps to this epoch time
        self.stats = Stats(source_state=self.source.state)
        self.frames_processed = 0
        self._last_frame: Frame | None = None
        self._continuity: tuple | None = None  # (frame shape, source reconnects) of the last frame
        self._last_done: float | None = None  # perf_counter at the end of the previous frame

    # -- public ------------------------------------------------------------------------------------

    @property
    def is_live(self) -> bool:
        return bool(self.source.is_live)

    @property
    def totals(self) -> Totals:
        """A copy of the counter's totals (unique people since start)."""
        t = self.counter.totals
        return Totals(people_seen=t.people_seen, by_label=dict(t.by_label), person_s=dict(t.person_s),
                      label_changes=t.label_changes)

    @property
    def model_info(self):
        """The :class:`~maskwatch.classification.ModelInfo` of the classifier in use (``None`` for
        a classifier that has none, e.g. a test double)."""
        return getattr(self.classifier, "info", None)

    @property
    def model_description(self) -> str | None:
        """``"name version (sha256 8 hex)"`` of the classifier in use, ``None`` if it does not say."""
        info = self.model_info
        return info.describe() if info is not None else None

    def swap_classifier(self, classifier: Classifier) -> None:
        """Classify with ``classifier`` from the next frame on (thread-safe; the caller loaded and
        checked it). Tracks, votes and counts stay; a second swap before the next frame wins."""
        with self._swap_lock:
            self._pending_classifier = classifier

    def __iter__(self) -> Iterator[FrameResult]:
        if self._closed:
            raise RuntimeError("pipeline is closed")
        if self._read_ahead_depth and not self.is_live and self._reader is None:
            self._reader = ReadAhead(self.source, self._read_ahead_depth, self._stop)
        while not self._stop.is_set():
            if self._reader is not None:
                item = self._reader.read()
                if item is None:
                    return
                frame, decode_ms, self._frame_state = item
                yield self._process(frame, decode_ms)
                continue
            t0 = time.perf_counter()
            frame = self.source.read(timeout=self.idle_tick_s)
            decode_ms = (time.perf_counter() - t0) * 1000.0
            if frame is None:
                self._refresh_source_stats()
                self._check_first_connection()
                if self.stats.source_state == SourceState.ENDED:
                    self._check_gave_up()
                    return
                yield self._status_update()
                continue
            yield self._process(frame, decode_ms)

    def stop(self) -> None:
        """Ask the iteration to end after the current frame (thread-safe, signal-safe)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def close(self) -> IntervalSummary | None:
        """Flush the counter's partial interval (returned; ``None`` if it saw no frame) and close
        the source and the detector. Idempotent: later calls return the same summary."""
        if self._closed:
            return self._final
        self._closed = True
        self._stop.set()
        try:
            self._frame_state = None  # the last row reports the source's state now (ended, for a finished file)
            self._refresh_source_stats()
            self._final = self.counter.flush(self._end_timestamp(), self.stats)
        finally:
            self._close_stages()
        return self._final

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------

    def _timestamp(self, frame: Frame) -> float:
        return frame.timestamp if self.is_live else self.run_start_epoch + frame.timestamp

    def _end_timestamp(self) -> float:
        """Where the partial interval ends: now for live sources, after the last frame for files."""
        if self.is_live or self._last_frame is None:
            return time.time()
        fps = float(self.source.fps or 0.0)
        return self._timestamp(self._last_frame) + (1.0 / fps if fps > 0 else 0.0)

    def _refresh_source_stats(self) -> None:
        s = self.source
        self.stats.source_state = self._frame_state or s.state
        self.stats.reconnect_in = s.reconnect_in
        self.stats.dropped_frames = int(s.dropped)
        down = self.stats.source_state in (SourceState.RECONNECTING, SourceState.ENDED)
        self.stats.source_error = (getattr(s, "last_error", None) or None) if down else None

    def _apply_swap(self) -> bool:
        """Take the classifier :meth:`swap_classifier` left, if any (in the iterating thread)."""
        with self._swap_lock:
            new, self._pending_classifier = self._pending_classifier, None
        if new is None:
            return False
        old = self.model_description
        self.classifier = new
        self.swaps += 1
        self.counter.use_model(self.model_description)
        log.info("mask classifier swapped: %s -> %s", old, self.model_description)
        return True

    def _process(self, frame: Frame, decode_ms: float) -> FrameResult:
        self._apply_swap()
        ms = {"decode": decode_ms, "detect": 0.0, "classify": 0.0, "track": 0.0}
        seq = self.frames_processed  # our own frame counter: monotonic even if a source restarts its index
        self._check_continuity(frame)
        if seq % self.every_n == 0:
            t = time.perf_counter()
            faces = self.detector.detect(frame.image)
            if self.config.detector.ignore and len(faces):  # paintings, posters, screens: not people
                h, w = frame.image.shape[:2]
                faces = faces[outside_regions(faces.xyxy, self.config.detector.ignore, w, h)]
            ms["detect"] = (time.perf_counter() - t) * 1000.0
            t = time.perf_counter()
            update = self.tracker.update(faces, frame)  # may drop low-score boxes it matched to nobody
            ms["track"] = (time.perf_counter() - t) * 1000.0
            t = time.perf_counter()
            faces = update.faces
            if len(faces):
                self._classify(frame, faces, update)
            ms["classify"] = (time.perf_counter() - t) * 1000.0
        else:
            t = time.perf_counter()
            update = self.tracker.predict(frame)
            ms["track"] = (time.perf_counter() - t) * 1000.0
        timestamp = self._timestamp(frame)
        decisions = self.votes.update(update, timestamp)  # fills update.faces.track_label
        faces = update.faces
        self.frames_processed += 1
        self._last_frame = frame

        now = time.perf_counter()
        if self._last_done is not None and now > self._last_done:
            inst = 1.0 / (now - self._last_done)
            self.stats.fps = inst if self.stats.fps == 0 else (1 - FPS_SMOOTHING) * self.stats.fps + FPS_SMOOTHING * inst
        self._last_done = now
        self._refresh_source_stats()
        ms["total"] = sum(ms[k] for k in STAGES)
        self.stats.stage_ms = ms
        self.stats.latency_ms = max(time.monotonic() - frame.captured_at, 0.0) * 1000.0
        events, summary = self.counter.update(
            faces, timestamp, frame.index, self._stats_copy(), track_update=update, labels=decisions
        )
        return FrameResult(frame=frame, faces=faces, stats=self._stats_copy(), totals=self.totals,
                           events=events, summary=summary)

    def _check_continuity(self, frame: Frame) -> None:
        """A reconnect or a new frame size breaks what depends on consecutive frames: the tracker
        drops its motion state (people counted before may be re-linked, never counted twice) and the
        motion-gated detector its background model and remembered faces."""
        shape, reconnects = frame.image.shape[:2], self.source.reconnects
        if self._continuity is not None and self._continuity != (shape, reconnects):
            log.info("continuity lost (%s): tracker motion and detector motion gate reset",
                     "frame size changed" if self._continuity[0] != shape else "source reconnected")
            self.tracker.reset()
            reset = getattr(self.detector, "reset", None)  # a stateful detector (motion gating) forgets the old frames
            if reset is not None:
                reset()
        self._continuity = (shape, reconnects)

    def _classify(self, frame: Frame, faces: Faces, update) -> None:
        """Classify the faces (one batch): all of them, or with low-score boxes in play only those
        above ``detector.min_score`` and those matched to a person (the others stay NaN: no vote)."""
        if self.low_score is None:
            faces.probs = self.classifier.classify_faces(frame.image, faces.xyxy)
            return
        import numpy as np

        chosen = (faces.score >= self.config.detector.min_score) | np.isin(faces.track_id, list(update.live))
        if chosen.all():
            faces.probs = self.classifier.classify_faces(frame.image, faces.xyxy)
        elif chosen.any():
            probs = faces.probs.copy()
            probs[chosen] = self.classifier.classify_faces(frame.image, faces.xyxy[chosen])
            faces.probs = probs

    def _check_first_connection(self) -> None:
        """A live source that gave up before its first frame: say so in one line (``cannot open
        <camera>: <why>``). A camera that is down when the run starts is retried like one that went
        down later (as ``serve`` does), for as long as ``sources.max_reconnects`` allows (forever
        by default; ``0`` gives up at the first failure); the stats carry why it is down meanwhile.
        A webcam that cannot be opened gives up at once (no retry of the first open)."""
        if not self.require_first_connection or self.frames_processed or not self.is_live:
            return
        if self.stats.source_state == SourceState.ENDED and self.source.last_error:
            raise MaskwatchError(f"cannot open {self.source.name}: {self.source.last_error}")

    def _check_gave_up(self) -> None:
        """A live source that ended by itself (not by ``close``) gave up reconnecting: an error."""
        if self.is_live and not self._stop.is_set() and self.source.last_error:
            raise MaskwatchError(
                f"gave up on {self.source.name} after {self.source.reconnects} reconnects: {self.source.last_error}"
            )

    def _status_update(self) -> FrameResult:
        """No frame this tick (a live source connecting or reconnecting): state, and elapsed intervals."""
        summary = None
        if self.is_live:
            self._apply_swap()
            summary = self.counter.tick(time.time(), self._stats_copy())
        self.stats.stage_ms = {}
        return FrameResult(frame=None, faces=Faces.empty(), stats=self._stats_copy(), totals=self.totals,
                           summary=summary)

    def _stats_copy(self) -> Stats:
        s = self.stats
        return Stats(fps=s.fps, stage_ms=dict(s.stage_ms), dropped_frames=s.dropped_frames,
                     source_state=s.source_state, reconnect_in=s.reconnect_in, latency_ms=s.latency_ms,
                     source_error=s.source_error)

    def _close_stages(self) -> None:
        if self._reader is not None:
            self._reader.close()
        for stage in (self.source, self.detector):
            if stage is None:
                continue
            try:
                stage.close()
            except Exception as e:  # closing must never hide the run's own outcome
                log.warning("closing %s failed: %s", type(stage).__name__, e)


def low_score_for(tracker, min_score: float) -> float | None:
    """The detector score a tracker wants boxes down to (``tracker.low_score``, kind ``byte``), or
    ``None`` when it takes none under ``min_score``.

    >>> from types import SimpleNamespace
    >>> low_score_for(SimpleNamespace(low_score=0.3), 0.5), low_score_for(SimpleNamespace(), 0.5)
    (0.3, None)
    """
    low = getattr(tracker, "low_score", None)
    return None if low is None or low >= min_score else float(low)


def precheck_source(spec) -> None:
    """Cheap checks of a source spec before models are loaded: a camera URL must parse, a path
    must exist (:meth:`SourceSpec.check`). Opening (and every deeper check) is
    ``maskwatch.sources.open_source``'s job."""
    parse(spec).check()

