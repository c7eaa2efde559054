"""Monitor: fans each result out to its sinks (order, status updates, failing sinks, closing, sinks
added and removed while it runs, the old callbacks), and keeps the partial interval of an outage."""

from __future__ import annotations

import csv
import threading
import time
from dataclasses import replace
from datetime import datetime

import cv2
import numpy as np
import pytest

from conftest import TINY_MODEL
from maskwatch.config import Config, DetectorConfig
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces
from maskwatch.frames import Frame, SourceState
from maskwatch.monitor import Monitor, fan_out
from maskwatch.results import Event, FrameResult, IntervalSummary, Stats, Totals
from maskwatch.sinks import BaseSink, CallbackSink, IntervalCsvLog, Sink, sinks_from_config


def summary(start: float, frames: int = 5, state=SourceState.LIVE) -> IntervalSummary:
    return IntervalSummary(start, start + 1, frames, 0, 0, {"with_mask": 0, "without_mask": 0, "mask_worn_incorrectly": 0},
                           25.0, 0, state)


def frame_result(i: int, events=(), closed: IntervalSummary | None = None) -> FrameResult:
    frame = Frame(np.zeros((24, 32, 3), np.uint8), i, i / 25, 0.0)
    return FrameResult(frame, Faces.empty(), Stats(source_state=SourceState.LIVE), Totals(), list(events), closed)


def status_update() -> FrameResult:
    return FrameResult(None, Faces.empty(), Stats(source_state=SourceState.RECONNECTING, reconnect_in=2.0), Totals())


class FakePipeline:
    """Yields the given results (until stopped); ``close`` returns ``final`` (the partial interval)."""

    def __init__(self, results, final: IntervalSummary | None = None):
        self.results = list(results)
        self.final = final
        self.stopped = False
        self.closed = False
        self.totals = Totals(people_seen=len(self.results))

    def __iter__(self):
        for r in self.results:
            if self.stopped:
                return
            yield r

    def stop(self):
        self.stopped = True

    def close(self):
        self.closed = True
        return self.final


class Recorder(BaseSink):
    """Writes down every call it gets, in order."""

    def __init__(self, name="rec", log=None):
        self.name = name
        self.calls = [] if log is None else log
        self.closed = 0

    def on_result(self, result):
        self.calls.append((self.name, "result", None if result.frame is None else result.frame.index))

    def on_event(self, event):
        self.calls.append((self.name, "event", event.track_id))

    def on_interval(self, s):
        self.calls.append((self.name, "interval", s.start))

    def close(self):
        self.closed += 1


class Failing(Recorder):
    """Raises on the ``n``-th result it gets (a full disk, a broken pipe)."""

    def __init__(self, n: int, name="failing", log=None):
        super().__init__(name, log)
        self.n = n
        self.seen = 0

    def on_result(self, result):
        self.seen += 1
        if self.seen == self.n:
            raise MaskwatchError("disk full")
        super().on_result(result)


def test_every_sink_gets_events_then_the_interval_then_the_result():
    log = []
    a, b = Recorder("a", log), Recorder("b", log)
    assert isinstance(a, Sink)
    result = frame_result(3, events=[Event("person_seen", 7, 0.1, 3)], closed=summary(100.0))
    assert fan_out(result, [a, b]) is None
    assert log == [("a", "event", 7), ("b", "event", 7), ("a", "interval", 100.0), ("b", "interval", 100.0),
                   ("a", "result", 3), ("b", "result", 3)]


def test_run_feeds_frames_status_updates_and_the_final_interval_then_closes():
    rec = Recorder()
    pipeline = FakePipeline([frame_result(0), status_update(), frame_result(1, closed=summary(1.0))], final=summary(2.0))
    totals = Monitor(Config(), sinks=[rec], pipeline=pipeline).run()
    assert rec.calls == [("rec", "result", 0), ("rec", "result", None),  # a status update: a result without frame
                         ("rec", "interval", 1.0), ("rec", "result", 1), ("rec", "interval", 2.0)]
    assert rec.closed == 1 and pipeline.closed and totals.people_seen == 3


def test_a_failing_sink_ends_the_run_but_the_others_keep_every_row(tmp_path):
    log = tmp_path / "counts.csv"
    csv_log, failing, after = IntervalCsvLog(log), Failing(n=2), Recorder("after")
    results = [frame_result(0, closed=summary(0.0)), frame_result(1, closed=summary(1.0)), frame_result(2, closed=summary(2.0))]
    monitor = Monitor(Config(), sinks=[csv_log, failing, after], pipeline=FakePipeline(results, final=summary(3.0)))
    with pytest.raises(MaskwatchError, match="disk full"):
        monitor.run()
    rows = list(csv.DictReader(log.open()))
    # the row of the frame the video failed on, and the partial interval at the end, are kept
    assert [datetime.fromisoformat(r["start"]).timestamp() for r in rows] == [0.0, 1.0, 3.0]
    assert ("after", "result", 1) in after.calls  # sinks after the failing one still got that frame
    assert ("after", "interval", 3.0) in after.calls
    assert failing.closed == after.closed == 1 and csv_log._fh is None  # all closed


def test_every_sink_is_closed_even_when_one_cannot_close():
    class BadClose(Recorder):
        def close(self):
            super().close()
            raise MaskwatchError("cannot finalise")

    bad, good = BadClose("bad"), Recorder("good")
    with pytest.raises(MaskwatchError, match="cannot finalise"):
        Monitor(Config(), sinks=[bad, good], pipeline=FakePipeline([frame_result(0)])).run()
    assert bad.closed == good.closed == 1


def test_an_interrupt_while_closing_one_sink_still_closes_the_others(tmp_path):
    """Regression: _finish caught only Exception, so a KeyboardInterrupt (a second Ctrl-C) in one
    sink's close skipped the sinks after it: the video was never finalised."""
    from maskwatch.sinks import VideoSink

    class Interrupted(Recorder):
        def close(self):
            super().close()
            raise KeyboardInterrupt

    first, video = Interrupted("first"), VideoSink(tmp_path / "rec.mp4", fps=25)
    monitor = Monitor(Config(), sinks=[first, video], pipeline=FakePipeline([frame_result(i) for i in range(5)]))
    with pytest.raises(KeyboardInterrupt):
        monitor.run()
    assert monitor.finishing and first.closed == 1
    assert cv2.VideoCapture(str(video.path)).get(cv2.CAP_PROP_FRAME_COUNT) == 5  # finalised after the interrupt


def test_an_added_sink_with_an_error_handler_is_dropped_and_the_run_goes_on():
    errors = []
    main = Recorder("main")
    optional = Failing(n=2, name="video")
    results = [frame_result(i) for i in range(5)]

    class AddsOnFirst(BaseSink):  # adds the optional sink while the run is going (like Record)
        def on_result(self, result):
            if result.frame.index == 0:
                assert monitor.add_sink(optional, on_error=lambda sink, e: errors.append((sink, str(e))))

    monitor = Monitor(Config(), sinks=[AddsOnFirst(), main], pipeline=FakePipeline(results, final=summary(9.0)))
    monitor.run()
    assert errors == [(optional, "disk full")]
    assert optional.closed == 1 and optional not in monitor.sinks
    assert [c for c in optional.calls if c[1] == "result"] == [("video", "result", 1)]  # from frame 1 on, until it failed
    assert [c[2] for c in main.calls if c[1] == "result"] == [0, 1, 2, 3, 4]
    assert ("main", "interval", 9.0) in main.calls


def test_removing_a_sink_closes_it_and_adding_after_the_run_is_refused():
    extra = Recorder("extra")
    results = [frame_result(i) for i in range(4)]

    class Toggles(BaseSink):
        def on_result(self, result):
            if result.frame.index == 0:
                monitor.add_sink(extra)
            if result.frame.index == 2:
                monitor.remove_sink(extra)

    monitor = Monitor(Config(), sinks=[Toggles()], pipeline=FakePipeline(results))
    monitor.run()
    assert [c[2] for c in extra.calls] == [1, 2] and extra.closed == 1
    late = Recorder("late")
    assert monitor.add_sink(late) is False and late.calls == []


def test_removing_a_sink_while_the_run_closes_it_returns_with_the_file_complete(tmp_path):
    """Regression: remove_sink only closed a sink it still found, so Stop recording racing the end
    of the run returned while the video was not finalised yet (the run's thread had taken it)."""
    from maskwatch.sinks import VideoSink

    video = VideoSink(tmp_path / "rec.mp4", fps=25)
    closing, go_on = threading.Event(), threading.Event()

    class SlowClose(BaseSink):  # closed before the video: the run's thread waits here
        def close(self):
            closing.set()
            go_on.wait(10)

    monitor = Monitor(Config(), sinks=[SlowClose(), video], pipeline=FakePipeline([frame_result(i) for i in range(5)]))
    runner = threading.Thread(target=monitor.run)
    runner.start()
    try:
        assert closing.wait(10)  # the run is over and is closing its sinks; the video is not done yet
        monitor.remove_sink(video)  # Stop recording, now
        assert video.path.exists() and video.frames_written == 5  # complete when remove_sink returns
        frames = cv2.VideoCapture(str(video.path)).get(cv2.CAP_PROP_FRAME_COUNT)
        assert frames == 5
    finally:
        go_on.set()
        runner.join(10)
    assert not runner.is_alive()
    late = Recorder("late")
    monitor.remove_sink(late)  # never added: closed all the same
    assert late.closed == 1


def test_stopped_before_the_run_opens_nothing_and_builds_nothing():
    opened = []
    monitor = Monitor(Config(source="/no/such/clip.mp4"), sinks=lambda: opened.append(1) or [])
    monitor.stop()
    assert monitor.run() == Totals() and monitor.pipeline is None and opened == []


def test_sinks_are_opened_after_the_pipeline_is_built():
    order = []

    class Pipe(FakePipeline):
        def __iter__(self):
            order.append("iterate")
            return super().__iter__()

    def open_sinks():
        order.append("open sinks")
        return [Recorder()]

    Monitor(Config(), sinks=open_sinks, pipeline=Pipe([frame_result(0)])).run()
    assert order == ["open sinks", "iterate"]


def test_plain_functions_go_in_as_a_callback_sink():
    frames, rows, states = [], [], []
    pipeline = FakePipeline([frame_result(0), status_update(), frame_result(1, closed=summary(1.0))], final=summary(2.0))
    functions = CallbackSink(on_result=frames.append, on_interval=rows.append, on_status=states.append)
    Monitor(Config(), pipeline=pipeline, sinks=[functions]).run()
    assert [r.frame.index for r in frames] == [0, 1]  # only results with a frame
    assert [s.start for s in rows] == [1.0, 2.0]
    assert [s.source_state for s in states] == [SourceState.RECONNECTING]
    seen = []
    CallbackSink(on_result=seen.append).on_result(status_update())  # without on_status: every result
    assert seen[0].frame is None


class SilentAfterLive:
    """A live camera: ``frames`` frames, then reconnecting forever (nothing comes back)."""

    kind = "network"
    is_live = True
    fps = 25.0
    name = "rtsp://cam/stream"

    def __init__(self, frames: int):
        self.remaining = frames
        self.state = SourceState.CONNECTING
        self.reconnect_in = None
        self.dropped = 0
        self.reconnects = 0
        self.last_error = None
        self.index = 0

    def read(self, timeout=None):
        if self.remaining > 0:
            self.remaining -= 1
            self.state = SourceState.LIVE
            self.index += 1
            return Frame(np.full((120, 160, 3), 80, np.uint8), self.index, time.time(), time.monotonic())
        self.state, self.reconnect_in, self.last_error = SourceState.RECONNECTING, 1.0, "connection refused"
        time.sleep(timeout or 0)
        return None

    def close(self):
        self.state = SourceState.ENDED


class NoFaces:
    mode = "fake"

    def detect(self, image):
        return Faces.empty()

    def close(self):
        pass


def test_stop_during_an_outage_keeps_the_partial_interval_of_the_outage(tmp_path):
    """Regression: the interval a tick opened while the camera was away has no frame; stopping in
    it (SIGTERM) lost that last row, so the log ended at the last interval boundary."""
    from maskwatch.pipeline import Pipeline

    log = tmp_path / "counts.csv"
    config = replace(Config(source="unused", model=TINY_MODEL, detector=DetectorConfig(mode="full")),
                     interval_s=0.3, log=log)
    pipeline = Pipeline(config, source=SilentAfterLive(frames=3), detector=NoFaces(), idle_tick_s=0.02)
    rows = []
    monitor = Monitor(config, pipeline=pipeline, sinks=lambda: [*sinks_from_config(config), CallbackSink(on_interval=rows.append)])
    runner = threading.Thread(target=monitor.run)
    runner.start()
    deadline = time.monotonic() + 20
    while not any(r.frames == 0 for r in rows) and time.monotonic() < deadline:
        time.sleep(0.02)  # a whole interval of outage was logged
    time.sleep(0.15)  # ... and we are half-way through the next one
    stopped_at = time.time()
    monitor.stop()
    runner.join(10)
    assert not runner.is_alive()
    last = rows[-1]
    assert last.frames == 0 and last.source_state == SourceState.RECONNECTING
    assert last.start == rows[-2].end and 0 < last.end - last.start <= 0.3 + 1e-6  # a partial interval
    # the row reaches the moment of the stop (loose: a loaded machine may run the stop late)
    assert abs(last.end - stopped_at) < 1.0 and last.end <= time.time()
    table = list(csv.DictReader(log.open()))
    assert len(table) == len(rows) and table[-1]["source_state"] == "reconnecting"
