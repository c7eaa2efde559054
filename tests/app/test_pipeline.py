"""Pipeline and Monitor: stages composed, timings, media-time intervals, status updates, sinks, flushing."""

from __future__ import annotations

import csv
import json
import threading
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

from conftest import SHIPPED_MODEL, TINY_MODEL, requires_shipped_model
from maskwatch.config import Config, DetectorConfig
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces
from maskwatch.frames import SourceState
from maskwatch.monitor import Monitor
from maskwatch.sinks import CallbackSink, sinks_from_config
from maskwatch.paths import demo_clip
from maskwatch.pipeline import STAGES, Pipeline


from fakes import PLUMBING_DETECTOR, FakeDetector, FakeLiveSource, tiny_config  # noqa: E402,F401 - tests/support/fakes.py


def test_pipeline_on_a_file_yields_every_frame_with_stage_timings(known_faces_clip):
    config = tiny_config(known_faces_clip["path"], interval_s=1.0)
    with Pipeline(config) as pipeline:
        results = list(pipeline)
        final = pipeline.close()
        assert pipeline.close() is final  # idempotent
    assert [r.frame.index for r in results] == list(range(known_faces_clip["frames"]))
    for r in results:
        assert set(STAGES) <= set(r.stats.stage_ms)
        assert r.stats.stage_ms["detect"] > 0 and r.stats.stage_ms["total"] >= r.stats.stage_ms["detect"]
        assert r.stats.latency_ms >= 0
        assert np.isfinite(r.faces.probs).all()  # every face classified on detector frames
    assert results[-1].stats.fps > 0
    faces_per_frame = [len(r.faces) for r in results]
    assert sum(n > 0 for n in faces_per_frame) >= 0.8 * (known_faces_clip["frames"] - known_faces_clip["gap_frames"])
    assert pipeline.source.state == SourceState.ENDED

    # intervals are in media time: 1 s of media per row, whatever the processing speed
    summaries = [r.summary for r in results if r.summary] + [final]
    start = pipeline.run_start_epoch
    assert [round(s.start - start, 3) for s in summaries] == [float(k) for k in range(len(summaries))]
    assert sum(s.frames for s in summaries) == known_faces_clip["frames"]
    assert abs(summaries[-1].end - (start + known_faces_clip["frames"] / known_faces_clip["fps"])) < 1e-6
    # two people walk through: two tracks counted, whatever labels the (untrained) test classifier gives
    assert sum(s.people_seen for s in summaries) == results[-1].totals.people_seen == known_faces_clip["people"]


def test_detect_every_n_tracks_in_between(known_faces_clip):
    config = tiny_config(known_faces_clip["path"], detector=DetectorConfig(mode="full", every_n=3))
    with Pipeline(config) as pipeline:
        results = list(pipeline)
    detected = [r.stats.stage_ms["detect"] > 0 for r in results]
    assert detected[:6] == [True, False, False, True, False, False]
    # a face found on frame 0 is carried (same id) by the tracker on frames 1 and 2
    ids = [set(r.faces.track_id.tolist()) for r in results[:3]]
    assert ids[0] and ids[0] == ids[1] == ids[2]


def test_a_bad_model_fails_before_the_source_is_opened(tmp_path, monkeypatch):
    import maskwatch.pipeline

    opened = []
    monkeypatch.setattr(maskwatch.pipeline, "open_source", lambda *a, **k: opened.append(a))
    with pytest.raises(MaskwatchError, match="model file not found"):
        Pipeline(Config(source=str(demo_clip()), model=tmp_path / "missing.tflite"))
    with pytest.raises(MaskwatchError, match="source not found"):  # checked before any model is loaded
        Pipeline(Config(source=str(tmp_path / "missing.mp4"), model=tmp_path / "missing.tflite"))
    assert not opened


def test_read_ahead_and_direct_reads_give_the_same_results(known_faces_clip):
    config = tiny_config(known_faces_clip["path"], interval_s=1.0)
    runs = []
    for depth in (0, 3):
        with Pipeline(config, read_ahead=depth) as pipeline:
            runs.append([(r.frame.index, r.faces.xyxy.round(1).tolist(), r.faces.track_id.tolist(),
                          r.stats.source_state) for r in pipeline])
    assert runs[0] == runs[1]
    assert {state for *_, state in runs[1]} == {SourceState.LIVE}


def test_stop_from_another_thread_ends_iteration():
    config = tiny_config(demo_clip(), sources=replace(Config().sources, realtime=True))
    pipeline = Pipeline(config)
    timer = threading.Timer(0.5, pipeline.stop)
    t0 = time.monotonic()
    timer.start()
    n = sum(1 for _ in pipeline)
    elapsed = time.monotonic() - t0
    pipeline.close()
    assert 0 < n < 300 and elapsed < 3.0


def test_silent_live_source_gives_status_updates_and_wall_clock_rows():
    source = FakeLiveSource(frames=4)
    detector = FakeDetector()
    config = tiny_config("unused", interval_s=0.3)
    pipeline = Pipeline(config, source=source, detector=detector, idle_tick_s=0.05)
    results, t0 = [], time.monotonic()
    for r in pipeline:
        results.append(r)
        if time.monotonic() - t0 > 1.0:
            pipeline.stop()
    final = pipeline.close()
    frames = [r for r in results if r.frame is not None]
    status = [r for r in results if r.frame is None]
    assert len(frames) == 4
    assert status and all(r.stats.source_state == SourceState.RECONNECTING for r in status)
    assert all(len(r.faces) == 0 for r in status)
    assert status[0].stats.reconnect_in == 1.5
    rows = [r.summary for r in results if r.summary]
    assert len(rows) >= 2  # intervals keep closing on the wall clock while no frame comes
    assert rows[0].frames == 4 and rows[0].source_state == SourceState.RECONNECTING
    assert all(r.frames == 0 and r.source_state == SourceState.RECONNECTING for r in rows[1:])
    assert all(a.end == b.start for a, b in zip(rows, rows[1:]))
    # the open interval has no frames but is time the camera was away: kept (counting, 255095d)
    assert final is not None and final.frames == 0 and final.source_state == SourceState.RECONNECTING
    assert final.start == rows[-1].end
    assert source.closed and detector.closed


def test_frame_size_change_after_a_reconnect_keeps_going():
    class ResizingSource(FakeLiveSource):
        def read(self, timeout=None):
            frame = super().read(timeout)
            if frame is not None and frame.index >= 5:  # the camera came back at another resolution
                frame.image = np.full((240, 320, 3), 80, np.uint8)
            return frame

    source = ResizingSource(frames=10, then=SourceState.ENDED)
    with Pipeline(tiny_config("unused"), source=source, detector=FakeDetector()) as pipeline:
        results = [r for r in pipeline if r.frame is not None]
    assert len(results) == 10
    assert results[-1].faces.xyxy[0].tolist() == [128.0, 72.0, 192.0, 144.0]  # boxes in the new frame's pixels
    assert len(set(results[-1].faces.track_id.tolist())) == 1


def test_live_source_giving_up_before_its_first_frame_is_an_error():
    source = FakeLiveSource(frames=0, then=SourceState.ENDED, last_error="connection refused")
    pipeline = Pipeline(tiny_config("unused"), source=source, detector=FakeDetector(), idle_tick_s=0.01)
    with pytest.raises(MaskwatchError, match="cannot open rtsp://cam/stream: connection refused"):
        list(pipeline)
    pipeline.close()
    assert source.closed


class DownAtStartSource(FakeLiveSource):
    """A camera that is down (reconnecting, 'connection refused') for its first ``down_reads``
    reads, then comes up and delivers frames: the camera powered on after the monitor started."""

    def __init__(self, down_reads: int, frames: int):
        super().__init__(frames=frames, then=SourceState.ENDED)
        self.down_reads = down_reads

    def read(self, timeout=None):
        if self.down_reads > 0:
            self.down_reads -= 1
            self.state, self.reconnect_in, self.last_error = SourceState.RECONNECTING, 0.5, "connection refused"
            return None
        self.last_error = None
        return super().read(timeout)


def test_a_camera_down_at_start_is_retried_and_its_frames_counted(tmp_path):
    """Not an error while the source retries before its first frame (as serve does): the status
    updates say why it is down, then its frames are processed and the person counted."""
    import io

    from maskwatch.sinks.console import ConsoleSink

    source = DownAtStartSource(down_reads=5, frames=30)
    err = io.StringIO()
    console = ConsoleSink(io.StringIO(), err)
    with Pipeline(tiny_config("unused"), source=source, detector=FakeDetector(), idle_tick_s=0.01) as pipeline:
        results = list(pipeline)
        for r in results:
            console.on_result(r)
    waiting = [r for r in results if r.frame is None and r.stats.source_state == SourceState.RECONNECTING]
    assert len(waiting) == 5 and all(r.stats.source_error == "connection refused" for r in waiting)
    assert sum(r.frame is not None for r in results) == 30
    assert results[-1].totals.people_seen == 1
    lines = err.getvalue().splitlines()  # one line for the reason (not one per retry)
    assert lines[0] == ("maskwatch: source not reachable yet: connection refused; retrying (next attempt in 0.5 s), "
                        "Ctrl+C stops"), lines
    assert sum("not reachable yet" in line for line in lines) == 1


def test_live_source_giving_up_after_frames_is_an_error_after_its_rows(tmp_path):
    config = tiny_config("unused", interval_s=60, log=tmp_path / "counts.csv")
    source = FakeLiveSource(frames=6, then=SourceState.ENDED, last_error="no frame for 5 s (stalled)")
    source.reconnects = 10
    with pytest.raises(MaskwatchError, match="gave up on rtsp://cam/stream after 10 reconnects: no frame"):
        Monitor(config, pipeline=Pipeline(config, source=source, detector=FakeDetector())).run()
    table = list(csv.DictReader((tmp_path / "counts.csv").open()))
    assert [r["frames"] for r in table] == ["6"]


def test_monitor_writes_rows_events_and_the_partial_interval(tmp_path):
    config = tiny_config("unused", interval_s=0.2, log=tmp_path / "counts.csv", events=tmp_path / "events.jsonl")
    source = FakeLiveSource(frames=12, then=SourceState.ENDED)

    class SlowDetector(FakeDetector):
        def detect(self, image):
            time.sleep(0.03)
            return super().detect(image)

    pipeline = Pipeline(config, source=source, detector=SlowDetector())
    seen, rows = [], []
    frames_only = CallbackSink(on_result=seen.append, on_interval=rows.append, on_status=lambda stats: None)
    totals = Monitor(config, sinks=lambda: [*sinks_from_config(config), frames_only], pipeline=pipeline).run()
    assert len(seen) == 12 and all(r.frame is not None for r in seen)
    table = list(csv.DictReader((tmp_path / "counts.csv").open()))
    assert len(table) == len(rows) >= 2
    assert sum(int(r["frames"]) for r in table) == 12
    assert sum(int(r["people_seen"]) for r in table) == totals.people_seen == 1
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[0]["kind"] == "person_seen" and events[0]["track_id"] == 1


@pytest.mark.parametrize("live", [True, False], ids=["live", "file-read-ahead"])
def test_monitor_keeps_the_partial_interval_when_a_stage_fails(tmp_path, live):
    config = tiny_config("unused", interval_s=60, log=tmp_path / "counts.csv")
    source = FakeLiveSource(frames=100, fail_after=7)
    source.is_live = live  # a file source is read ahead in a thread: its error is raised in order
    pipeline = Pipeline(config, source=source, detector=FakeDetector())
    with pytest.raises(MaskwatchError, match="stream broke"):
        Monitor(config, pipeline=pipeline).run()
    table = list(csv.DictReader((tmp_path / "counts.csv").open()))
    assert len(table) == 1 and table[0]["frames"] == "7"
    assert source.closed


def test_monitor_stop_before_run_returns_at_once(known_faces_clip):
    config = tiny_config(known_faces_clip["path"])
    monitor = Monitor(config)
    monitor.stop()
    totals = monitor.run()
    assert totals.people_seen == 0 and monitor.rows_written == 0


@requires_shipped_model
def test_known_faces_clip_counts_with_the_shipped_model(known_faces_clip):
    config = Config(source=str(known_faces_clip["path"]), model=SHIPPED_MODEL, interval_s=60)
    totals = Monitor(config).run()
    assert totals.people_seen == known_faces_clip["people"] == 2
    assert totals.by_label == known_faces_clip["by_label"]


@requires_shipped_model
def test_demo_clip_has_one_masked_person():
    totals = Monitor(Config(source=str(demo_clip()), model=SHIPPED_MODEL, interval_s=60)).run()
    assert totals.people_seen == 1
    assert totals.by_label == {"with_mask": 1, "without_mask": 0, "mask_worn_incorrectly": 0}


def test_stages_and_test_doubles_offer_what_the_pipeline_reads():
    from maskwatch.classification import MaskClassifier
    from maskwatch.counting import Counter
    from maskwatch.sources import FileSource, ImageFolderSource
    from maskwatch.stages import Classifier, Detector, FrameSource, Tracker
    from maskwatch.stages import Counter as CounterProtocol
    from maskwatch.tracking import make_tracker

    assert isinstance(FakeLiveSource(), FrameSource) and isinstance(FakeDetector(), Detector)
    with FileSource(demo_clip()) as source:
        assert isinstance(source, FrameSource)
    assert isinstance(ImageFolderSource([], "none"), FrameSource)
    assert isinstance(MaskClassifier(TINY_MODEL), Classifier)
    assert isinstance(make_tracker(Config().tracker), Tracker)
    assert isinstance(Counter(60.0), CounterProtocol)

    incomplete = FakeLiveSource()
    del incomplete.reconnects  # a double without it would have failed only when the camera gave up
    assert not isinstance(incomplete, FrameSource)


def test_motion_gating_is_for_video_not_for_a_folder_of_photos(tmp_path, known_faces_clip):
    """Unrelated photos are not frames of one scene: faces must not carry over from one to the next."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(folder / name), np.full((120, 160, 3), 128, np.uint8))
    retina = DetectorConfig()  # the default mode, whose motion option is left unset
    with Pipeline(tiny_config(folder, detector=retina)) as photos:
        assert photos.detector.options["motion"] is False
    with Pipeline(tiny_config(known_faces_clip["path"], detector=retina)) as video:
        assert video.detector.options["motion"] is True


def test_faces_in_ignored_regions_are_not_people():
    """A painting on the wall: its region is ignored, so its face is never tracked or counted."""
    from maskwatch.config import DetectorConfig

    class PaintingAndPerson(FakeDetector):
        def detect(self, image):
            h, w = image.shape[:2]
            return Faces(xyxy=[[w * 0.1, h * 0.1, w * 0.2, h * 0.25], [w * 0.4, h * 0.3, w * 0.6, h * 0.6]],
                         score=[0.95, 0.9])

    def run(ignore):
        config = tiny_config("unused", detector=replace(PLUMBING_DETECTOR, ignore=ignore))
        source = FakeLiveSource(frames=30, then=SourceState.ENDED)
        with Pipeline(config, source=source, detector=PaintingAndPerson()) as pipeline:
            results = [r for r in pipeline if r.frame is not None]
            return results, pipeline.totals

    results, totals = run([])
    assert totals.people_seen == 2
    results, totals = run([[0.05, 0.05, 0.3, 0.3]])
    assert totals.people_seen == 1 and all(len(r.faces) == 1 for r in results)
    assert results[-1].faces.xyxy[0][0] > 0.3 * 160  # the person's box, not the painting's
    assert isinstance(DetectorConfig().ignore, list)


def test_a_mask_taken_off_goes_through_the_whole_pipeline_to_the_event_log_alerts_and_csv(tmp_path):
    """One person, masked for 4 s, then unmasked for 6 s (25 fps): one person counted with_mask, a
    label_changed event and a mask_off alert about 1 s (change_after_s) after the change, and the
    interval row's person-seconds split by label."""
    from maskwatch.config import TrackerConfig

    class MediaTimeSource(FakeLiveSource):
        def read(self, timeout=None):
            frame = super().read(timeout)
            if frame is not None:
                frame.timestamp = 1e9 + frame.index / 25.0
            return frame

    class MaskOffClassifier:
        calls = 0

        def classify_faces(self, image, xyxy):
            self.calls += 1
            row = [0.9, 0.05, 0.05] if self.calls <= 100 else [0.05, 0.9, 0.05]
            return np.tile(np.array([row], np.float32), (len(xyxy), 1))

    config = tiny_config("unused", interval_s=60, events=tmp_path / "events.jsonl", log=tmp_path / "counts.csv",
                         tracker=TrackerConfig(change_after_s=1.0))
    source = MediaTimeSource(frames=250, then=SourceState.ENDED)
    pipeline = Pipeline(config, source=source, detector=FakeDetector(), classifier=MaskOffClassifier())
    totals = Monitor(config, sinks=lambda: sinks_from_config(config), pipeline=pipeline).run()

    assert totals.people_seen == 1 and totals.by_label["with_mask"] == 1 and totals.label_changes == 1
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    changed = [r for r in records if r["kind"] == "label_changed"]
    assert len(changed) == 1 and (changed[0]["label"], changed[0]["previous"]) == ("without_mask", "with_mask")
    assert 1.0 <= (changed[0]["frame_index"] - 100) / 25.0 <= 1.5  # the window turns in ~8 frames, then 1 s
    alerts = [r for r in records if r["kind"] == "alert" and r["alert"] == "mask_off"]
    assert len(alerts) == 1 and alerts[0]["message"] == f"Person #{changed[0]['track_id']} took the mask off"
    row, = list(csv.DictReader((tmp_path / "counts.csv").open()))
    changed_at = changed[0]["frame_index"]
    decided_at = next(r["frame_index"] for r in records if r["kind"] == "label_decided")
    assert float(row["with_mask_s"]) == pytest.approx((changed_at - decided_at) / 25.0, abs=0.05)
    assert float(row["without_mask_s"]) == pytest.approx((250 - changed_at) / 25.0, abs=0.05)
    assert row["label_changes"] == "1" and row["people_seen"] == "1" and row["with_mask"] == "1"
    assert float(row["masked_time_share"]) == pytest.approx((changed_at - decided_at) / (250 - decided_at), abs=0.01)
