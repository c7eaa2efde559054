"""Sinks: CSV interval log (header, rows, append, no clobber, flush), JSONL events, snapshots."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces
from maskwatch.frames import SourceState
from maskwatch.results import Event, IntervalSummary
from maskwatch.sinks import CSV_COLUMNS, EventJsonl, IntervalCsvLog, SnapshotSaver

HEADER = ("start,end,frames,faces,people_seen,with_mask,without_mask,mask_worn_incorrectly,compliance_rate,fps,dropped_frames,source_state,model,"
          "with_mask_s,without_mask_s,mask_worn_incorrectly_s,masked_time_share,label_changes")
MODEL_HEADER = HEADER.split(",with_mask_s")[0]  # logs written before the time-weighted columns


def summary(start=1_700_000_000.0, people=(3, 1, 0), **kw) -> IntervalSummary:
    values = dict(start=start, end=start + 60, frames=1500, faces=2400, people_seen=sum(people),
                  by_label=dict(zip(("with_mask", "without_mask", "mask_worn_incorrectly"), people)),
                  fps=24.96, dropped_frames=2, source_state=SourceState.LIVE)
    values.update(kw)
    return IntervalSummary(**values)


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_header_and_row(tmp_path):
    path = tmp_path / "logs" / "counts.csv"  # parent folder is created
    with IntervalCsvLog(path) as log:
        log.write(summary())
        log.write(summary(start=1_700_000_060.0, people=(0, 0, 0), people_seen=0, source_state=SourceState.RECONNECTING))
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER == ",".join(CSV_COLUMNS)
    rows = read_rows(path)
    assert len(rows) == 2
    r = rows[0]
    assert datetime.fromisoformat(r["start"]).timestamp() == 1_700_000_000.0
    assert datetime.fromisoformat(r["end"]).timestamp() == 1_700_000_060.0
    assert datetime.fromisoformat(r["start"]).tzinfo is not None
    assert (r["frames"], r["faces"], r["people_seen"]) == ("1500", "2400", "4")
    assert (r["with_mask"], r["without_mask"], r["mask_worn_incorrectly"]) == ("3", "1", "0")
    assert (r["compliance_rate"], r["fps"], r["dropped_frames"], r["source_state"]) == ("0.750", "25.0", "2", "live")
    assert rows[1]["compliance_rate"] == ""  # nobody decided
    assert rows[1]["source_state"] == "reconnecting"


def test_row_visible_to_another_reader_immediately(tmp_path):
    path = tmp_path / "counts.csv"
    log = IntervalCsvLog(path)
    assert path.read_text() == HEADER + "\n"
    log.write(summary())
    assert len(read_rows(path)) == 1  # before close
    log.close()
    log.close()  # idempotent
    with pytest.raises(MaskwatchError):
        log.write(summary())


def test_append_never_clobbers(tmp_path):
    path = tmp_path / "counts.csv"
    with IntervalCsvLog(path) as log:
        log.write(summary())
    before = path.read_bytes()
    with IntervalCsvLog(path) as log:
        log.write(summary(start=1_700_000_060.0))
    after = path.read_bytes()
    assert after.startswith(before)
    assert after.count(HEADER.encode()) == 1
    assert len(read_rows(path)) == 2


def test_empty_existing_file_gets_header(tmp_path):
    path = tmp_path / "counts.csv"
    path.touch()
    with IntervalCsvLog(path) as log:
        log.write(summary())
    assert path.read_text().splitlines()[0] == HEADER


def test_torn_last_line_is_not_merged_with_new_row(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text(HEADER + "\n2023-11-14T22:13:20+00:00,2023-11")  # a previous run killed mid-row
    with IntervalCsvLog(path) as log:
        log.write(summary())
    lines = path.read_text().splitlines()
    assert lines[1] == "2023-11-14T22:13:20+00:00,2023-11"
    assert lines[2].split(",")[2] == "1500"


def test_mismatched_header_is_an_error_and_file_untouched(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("a,b,c\n1,2,3\n")
    before = path.read_bytes()
    with pytest.raises(MaskwatchError) as e:
        IntervalCsvLog(path)
    assert "different header" in str(e.value) and "\n" not in str(e.value)
    assert path.read_bytes() == before


def test_unwritable_path_is_a_one_line_error(tmp_path):
    with pytest.raises(MaskwatchError) as e:
        IntervalCsvLog(tmp_path)  # a directory
    assert "\n" not in str(e.value)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MaskwatchError):
        IntervalCsvLog(blocker / "counts.csv")  # parent is a file
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(MaskwatchError):
                IntervalCsvLog(ro / "counts.csv")
        finally:
            ro.chmod(0o700)


def event(kind="label_decided", track_id=5, label="without_mask", t=1_700_000_001.25, frame=42):
    return Event(kind, track_id, t, frame, label=label if kind == "label_decided" else None,
                 confidence=0.8 if kind == "label_decided" else None, box=(10.0, 20.5, 50.25, 70.0))


def test_event_jsonl(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventJsonl(path) as sink:
        sink.write(event("person_seen"))
        assert len(path.read_text().splitlines()) == 1  # flushed per line
        sink.write_all([event(), event(track_id=6, label="with_mask")])
    with EventJsonl(path) as sink:  # append
        sink.write(event(track_id=7))
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["track_id"] for r in recs] == [5, 5, 6, 7]
    r = recs[1]
    assert set(r) == {"kind", "track_id", "label", "confidence", "time", "epoch", "frame_index", "box", "model"}
    assert (r["kind"], r["label"], r["confidence"], r["frame_index"]) == ("label_decided", "without_mask", 0.8, 42)
    assert r["epoch"] == 1_700_000_001.25
    assert datetime.fromisoformat(r["time"]).timestamp() == pytest.approx(1_700_000_001.25)
    assert r["box"] == [10.0, 20.5, 50.2, 70.0] or r["box"] == [10.0, 20.5, 50.3, 70.0]
    assert recs[0]["label"] is None and recs[0]["confidence"] is None


def test_event_jsonl_unwritable(tmp_path):
    with pytest.raises(MaskwatchError):
        EventJsonl(tmp_path)


def test_event_log_is_never_appended_to_a_file_that_is_not_one(tmp_path):
    """Regression: ``--events counts.csv`` (yesterday's CSV) or ``--events clip.mp4`` got JSON appended."""
    csv_log = tmp_path / "counts.csv"
    csv_log.write_text(",".join(CSV_COLUMNS) + "\n")
    video = tmp_path / "clip.mp4"
    video.write_bytes((Path(__file__).resolve().parents[1] / "fixtures" / "clip_320x240.mp4").read_bytes())
    for path in (csv_log, video):
        before = path.read_bytes()
        with pytest.raises(MaskwatchError, match="is not a JSON-lines event log") as e:
            EventJsonl(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
        assert path.read_bytes() == before
    torn = tmp_path / "torn.jsonl"
    torn.write_text('{"kind":"person_se')  # a crash in the very first record: still ours
    with EventJsonl(torn) as sink:
        sink.write(event())
    assert json.loads(torn.read_text().splitlines()[1])["track_id"] == 5
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with EventJsonl(empty) as sink:
        sink.write(event())
    assert len(empty.read_text().splitlines()) == 1


def test_an_output_that_is_the_source_is_refused(tmp_path):
    from maskwatch.config import Config
    from maskwatch.sinks import check_sinks_config

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"the video being watched")
    for outputs, name in ((dict(events=clip), "events"), (dict(log=tmp_path / "." / "clip.mp4"), "log")):
        with pytest.raises(MaskwatchError, match=f"^{name} .*clip.mp4 is the source being watched"):
            check_sinks_config(Config(source=str(clip), **outputs))
    check_sinks_config(Config(source="0", events=tmp_path / "0"))  # a webcam index is not the file "0"
    assert clip.read_bytes() == b"the video being watched"


def frame_and_faces():
    img = np.full((240, 320, 3), 60, np.uint8)
    faces = Faces(xyxy=np.array([[100, 60, 160, 140], [200, 60, 260, 140]], np.float32),
                  score=np.array([0.9, 0.9], np.float32),
                  probs=np.array([[0.1, 0.8, 0.1], [0.9, 0.05, 0.05]], np.float32),
                  track_id=np.array([5, 6]), track_label=np.array([1, 0]))
    return img, faces


def test_snapshot_once_per_track_and_only_listed_labels(tmp_path):
    folder = tmp_path / "snaps"
    saver = SnapshotSaver(folder)
    assert folder.is_dir()
    img, faces = frame_and_faces()
    written = saver.maybe_save(img, faces, [event("person_seen"), event(), event(track_id=6, label="with_mask")])
    assert len(written) == 1
    p = written[0]
    assert p.parent == folder and "track5" in p.name and "without_mask" in p.name and p.suffix == ".jpg"
    assert p.name.startswith(datetime.fromtimestamp(1_700_000_001.25).strftime("%Y%m%dT%H%M%S"))
    saved = cv2.imread(str(p))
    assert saved.shape == img.shape
    assert not np.array_equal(saved, img)  # annotated
    assert saver.maybe_save(img, faces, [event()]) == []  # same track again: nothing
    assert saver.maybe_save(img, faces, []) == []
    assert len(list(folder.iterdir())) == 1
    incorrect = saver.maybe_save(img, faces, [event(track_id=9, label="mask_worn_incorrectly")])
    assert len(incorrect) == 1 and "mask_worn_incorrectly" in incorrect[0].name


def test_snapshot_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MaskwatchError):
        SnapshotSaver(blocker)
    with pytest.raises(MaskwatchError):
        SnapshotSaver(tmp_path / "s", labels=("no_such_label",))


# -- one protocol ---------------------------------------------------------------------------------


def test_every_sink_has_the_protocol(tmp_path):
    from maskwatch.gui.worker import ResultMailbox
    from maskwatch.sinks import AlertPolicy, AlertSink, ConsoleSink, Sink, VideoSink

    sinks = [IntervalCsvLog(tmp_path / "c.csv"), EventJsonl(tmp_path / "e.jsonl"), SnapshotSaver(tmp_path / "s"),
             VideoSink(tmp_path / "v.mp4"), AlertSink(AlertPolicy(0.8)), ConsoleSink(io.StringIO(), io.StringIO()),
             ResultMailbox()]
    for sink in sinks:
        assert isinstance(sink, Sink), type(sink).__name__
        sink.close()


def test_interval_times_under_a_second_have_milliseconds(tmp_path):
    """Regression: ``--interval 0.5`` wrote repeated one-second start times."""
    from maskwatch.sinks import timespec_for

    path = tmp_path / "counts.csv"
    with IntervalCsvLog(path, timespec=timespec_for(0.5)) as log:
        for k in range(4):
            log.on_interval(summary(start=1_700_000_000.25 + 0.5 * k, end=1_700_000_000.75 + 0.5 * k))
    starts = [datetime.fromisoformat(r["start"]).timestamp() for r in read_rows(path)]
    assert starts == [1_700_000_000.25, 1_700_000_000.75, 1_700_000_001.25, 1_700_000_001.75]
    assert timespec_for(60) == "seconds" and timespec_for(1.5) == "milliseconds"


# -- output paths ---------------------------------------------------------------------------------


SAME_FILE_CASES = {
    "log and events": (dict(log="x.out", events="x.out"), "log and events are the same file"),
    "through ..": (dict(log="a/x.csv", events="a/../a/x.csv"), "log and events are the same file"),
    "video and log": (dict(log="x.mp4", save_video="x.mp4"), "log and save_video are the same file"),
    "events and video": (dict(events="v.mp4", save_video="v.mp4"), "events and save_video are the same file"),
    "log inside snapshots": (dict(log="snaps/counts.csv", snapshots="snaps"), "inside the snapshots folder"),
    "video inside snapshots": (dict(save_video="snaps/deep/v.mp4", snapshots="snaps"), "inside the snapshots folder"),
    "snapshots is the log": (dict(events="snaps", snapshots="snaps"), "inside the snapshots folder"),
}


@pytest.mark.parametrize("case", sorted(SAME_FILE_CASES))
def test_outputs_that_collide_are_refused_before_anything_is_written(case, tmp_path, monkeypatch):
    from maskwatch.config import Config
    from maskwatch.sinks import sinks_from_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    paths, fragment = SAME_FILE_CASES[case]
    config = Config(**{k: Path(v) for k, v in paths.items()})
    with pytest.raises(MaskwatchError, match=fragment) as e:
        sinks_from_config(config)
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a"]  # nothing written


def test_links_to_the_same_file_are_the_same_file(tmp_path):
    from maskwatch.sinks import check_output_paths

    target = tmp_path / "counts.csv"
    target.write_text("")
    (tmp_path / "soft.csv").symlink_to(target)
    os.link(target, tmp_path / "hard.csv")
    for other in ("soft.csv", "hard.csv"):
        with pytest.raises(MaskwatchError, match="same file"):
            check_output_paths(log=target, events=tmp_path / other)
    check_output_paths(log=target, events=tmp_path / "events.jsonl", snapshots=tmp_path / "snaps",
                       save_video=tmp_path / "v.mp4")


def test_sinks_from_config_in_order_and_closed_if_one_fails(tmp_path):
    from maskwatch.config import Config
    from maskwatch.sinks import AlertSink, ConsoleSink, VideoSink, sinks_from_config

    console = ConsoleSink(io.StringIO(), io.StringIO())
    config = Config(log=tmp_path / "c.csv", events=tmp_path / "e.jsonl", snapshots=tmp_path / "s",
                    save_video=tmp_path / "v.mp4")
    sinks = sinks_from_config(config, console=console)
    assert [type(s) for s in sinks] == [IntervalCsvLog, EventJsonl, SnapshotSaver, VideoSink, AlertSink, ConsoleSink]
    for s in sinks:
        s.close()
    assert sinks_from_config(Config()) == []  # nothing asked for: no sink (no listener for alerts either)

    (tmp_path / "bad.csv").write_text("a,b\n")  # a CSV with another header: IntervalCsvLog refuses it
    with pytest.raises(MaskwatchError, match="different header"):
        sinks_from_config(Config(log=tmp_path / "bad.csv", events=tmp_path / "e2.jsonl"))
    assert not (tmp_path / "e2.jsonl").exists()  # the log is opened first: nothing else was


def test_an_output_that_cannot_be_written_leaves_no_other_file(tmp_path, monkeypatch):
    """Regression: the CSV was opened first; snapshots (or events, video) failing then left a
    header-only CSV although the error said nothing was written."""
    from maskwatch.config import Config
    from maskwatch.sinks import from_config, sinks_from_config

    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    config = Config(log=tmp_path / "new" / "counts.csv", events=tmp_path / "new" / "deeper" / "e.jsonl",
                    snapshots=blocker / "snaps")
    with pytest.raises(MaskwatchError, match="blocker is not a folder") as e:
        sinks_from_config(config)  # refused before any file is opened
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
    # and if an output fails only when it is opened (the checks could not see it coming), what
    # was opened before it is closed and the files and folders this start made are removed
    monkeypatch.setattr(from_config, "check_sinks_config", lambda config: None)
    with pytest.raises(MaskwatchError, match="cannot create snapshot folder"):
        sinks_from_config(config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
    assert blocker.read_text() == "a file where a folder should be"


# -- video ----------------------------------------------------------------------------------------


def video_result(index: int, timestamp: float, faces=None, size=(240, 320)):
    from maskwatch.frames import Frame
    from maskwatch.results import FrameResult, Stats, Totals

    image = np.full((*size, 3), 60, np.uint8)
    return FrameResult(Frame(image, index, timestamp, 0.0), faces if faces is not None else Faces.empty(),
                       Stats(), Totals())


def read_video(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return frames, fps


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv", ".mov"])
def test_video_sink_writes_annotated_frames_at_the_frames_rate(tmp_path, suffix):
    from maskwatch.results import FrameResult, Stats, Totals
    from maskwatch.sinks import VideoSink

    _, faces = frame_and_faces()
    path = tmp_path / f"out{suffix}"
    with VideoSink(path) as sink:
        for i in range(20):
            sink.on_result(video_result(i, 100.0 + i / 12.5, faces))  # a file at 12.5 fps
        sink.on_result(FrameResult(None, Faces.empty(), Stats(), Totals()))  # a status update: no frame
    frames, fps = read_video(path)
    assert len(frames) == sink.frames_written == 20 and fps == pytest.approx(12.5, abs=0.01)
    # the overlay is in the picture: the without_mask box (red) around face 0, the with_mask one (green) around 1
    b, g, r = (int(v) for v in frames[10][100, 100])  # on the left edge of box 0
    assert r > 150 and g < 120
    b, g, r = (int(v) for v in frames[10][100, 200])
    assert g > 120 and r < 120


def test_video_sink_resizes_frames_of_another_size_and_measures_live_rates(tmp_path):
    from maskwatch.sinks import VideoSink

    path = tmp_path / "live.mp4"
    sink = VideoSink(path)
    t0 = 1_700_000_000.0
    for i in range(12):  # a camera processed at 8 fps, reconnecting at another resolution half-way
        sink.on_result(video_result(i, t0 + i / 8, size=(240, 320) if i < 6 else (480, 640)))
    sink.close()
    sink.close()  # idempotent
    frames, fps = read_video(path)
    assert len(frames) == 12 and frames[-1].shape == (240, 320, 3) and fps == pytest.approx(8.0, abs=0.01)
    assert sink.size == (320, 240)


def test_video_sink_without_frames_writes_no_file_and_closes_from_another_thread(tmp_path):
    import threading

    from maskwatch.sinks import VideoSink

    VideoSink(tmp_path / "empty.mp4").close()
    assert not (tmp_path / "empty.mp4").exists()

    sink = VideoSink(tmp_path / "threads.mp4", fps=25)
    stop = threading.Event()

    def feed():
        i = 0
        while not stop.is_set():
            sink.on_result(video_result(i, i / 25))
            i += 1

    writer = threading.Thread(target=feed)
    writer.start()
    deadline = time.monotonic() + 30
    while sink.frames_written < 5 and writer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    sink.close()  # the UI thread's Record off, while the monitor's thread writes
    n = sink.frames_written
    stop.set()
    writer.join()
    assert sink.frames_written == n  # nothing written after close
    frames, _ = read_video(tmp_path / "threads.mp4")
    assert len(frames) == n


def test_video_is_written_under_a_temporary_name_and_never_over_a_file_made_meanwhile(tmp_path):
    from maskwatch.sinks import VideoSink

    path = tmp_path / "rec.mp4"
    sink = VideoSink(path, fps=10)
    for i in range(5):
        sink.on_result(video_result(i, i / 10))
    (part,) = tmp_path.iterdir()  # being written: a hidden plain name, nothing under the final one yet
    assert part.name.startswith(".maskwatch-recording-") and part.suffix == ".mp4" and not path.exists()
    path.write_bytes(b"another program's file")  # appears during the recording
    sink.close()
    assert path.read_bytes() == b"another program's file"
    assert sink.path == tmp_path / "rec-1.mp4" and sorted(p.name for p in tmp_path.iterdir()) == ["rec-1.mp4", "rec.mp4"]
    assert len(read_video(sink.path)[0]) == 5


@pytest.mark.parametrize("name,fragment", [
    ("out.xyz", "unknown extension '.xyz'"),
    ("out", "unknown extension '(none)'"),
    ("missing/out.mp4", "does not exist"),
    ("exists.mp4", "exists; not overwriting it"),
])
def test_video_paths_are_checked_when_the_sink_is_made(tmp_path, name, fragment):
    from maskwatch.sinks import VideoSink

    (tmp_path / "exists.mp4").write_bytes(b"an older recording")
    with pytest.raises(MaskwatchError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as e:
        VideoSink(tmp_path / name)
    assert "\n" not in str(e.value)
    assert (tmp_path / "exists.mp4").read_bytes() == b"an older recording"


# -- alerts ---------------------------------------------------------------------------------------


def test_alert_sink_writes_alert_records_and_console_lines(tmp_path):
    from maskwatch.results import Totals
    from maskwatch.sinks import AlertPolicy, AlertSink, ConsoleSink, alert_record
    from maskwatch.sinks.alerts import jsonl_listener

    path = tmp_path / "events.jsonl"
    out, err = io.StringIO(), io.StringIO()
    console = ConsoleSink(out, err)
    seen = []
    with EventJsonl(path) as log:
        alerts = AlertSink(AlertPolicy(0.8), jsonl_listener(log), console.print_alert, seen.append,
                           thumbnail=lambda image, box: image[:8, :8])
        img, faces = frame_and_faces()
        result = video_result(42, 1_700_000_001.25, faces)
        result.frame.image = img
        result.events = [event(), event(track_id=6, label="with_mask")]
        result.totals = Totals(people_seen=2, by_label={"with_mask": 1, "without_mask": 1, "mask_worn_incorrectly": 0})
        alerts.on_result(result)
        alerts.on_result(result)  # the same totals again: still under, no second compliance alert
        alerts.on_interval(summary(people=(1, 3, 0)))  # 25% in this interval
        alerts.on_interval(summary(people=(4, 0, 0)))  # 100%: nothing
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["alert"] for r in records] == ["without_mask", "compliance", "without_mask", "interval_compliance"]
    person, compliance, _, interval = records
    assert set(person) == set(alert_record(seen[0])) == {
        "kind", "alert", "message", "track_id", "label", "confidence", "time", "epoch", "frame_index", "box",
        "compliance", "threshold", "interval_start"}
    assert all(r["kind"] == "alert" for r in records)
    assert (person["track_id"], person["label"], person["frame_index"], person["epoch"]) == (5, "without_mask", 42, 1_700_000_001.25)
    assert person["message"] == "Person #5 without a mask"
    assert person["box"] in ([10.0, 20.5, 50.2, 70.0], [10.0, 20.5, 50.3, 70.0])
    assert (compliance["compliance"], compliance["threshold"], compliance["track_id"]) == (0.5, 0.8, None)
    assert interval["compliance"] == 0.25 and interval["interval_start"] is not None
    assert seen[0].thumbnail.shape == (8, 8, 3)  # the desktop app's alert log gets the face
    lines = err.getvalue().splitlines()
    assert len(lines) == 4 and all(line.startswith("maskwatch: alert: ") for line in lines)
    assert lines[0].endswith("Person #5 without a mask") and out.getvalue() == ""


def test_console_sink_prints_rows_state_changes_and_holds_source_warnings():
    import logging

    from maskwatch.frames import SourceState
    from maskwatch.results import FrameResult, Stats, Totals
    from maskwatch.sinks import ConsoleSink

    out, err = io.StringIO(), io.StringIO()
    source_log = logging.getLogger("maskwatch.sources")
    console = ConsoleSink(out, err, hold_source_warnings=True)
    try:
        assert source_log.level == logging.CRITICAL  # until the first frame
        status = FrameResult(None, Faces.empty(), Stats(source_state=SourceState.CONNECTING), Totals())
        console.on_result(status)
        assert err.getvalue() == ""  # not news before the source was live
        live = video_result(0, 0.0)
        live.stats.source_state = SourceState.LIVE
        console.on_result(live)
        assert source_log.level == logging.NOTSET
        console.on_result(FrameResult(None, Faces.empty(), Stats(source_state=SourceState.RECONNECTING,
                                                                  reconnect_in=2.0), Totals()))
        assert err.getvalue() == "maskwatch: source reconnecting (next attempt in 2.0 s)\n"
        console.on_interval(summary())
        assert out.getvalue().count("\n") == 1 and "compliance 75%" in out.getvalue()
    finally:
        console.close()
    assert source_log.level == logging.NOTSET
    quiet_out, quiet_err = io.StringIO(), io.StringIO()
    quiet = ConsoleSink(quiet_out, quiet_err, quiet=True)
    quiet.on_interval(summary())
    from maskwatch.sinks import Alert

    quiet.print_alert(Alert("compliance", "Compliance fell to 10%"))
    assert quiet_out.getvalue() == quiet_err.getvalue() == ""


def test_a_log_from_before_the_time_columns_is_appended_in_its_shape_and_new_rows_carry_person_seconds(tmp_path):
    from maskwatch.frames import SourceState
    from maskwatch.results import IntervalSummary

    old_row = "2026-01-01T00:00:00+00:00,2026-01-01T00:01:00+00:00,10,5,1,1,0,0,1.000,25.0,0,live,m 1 (sha256 abababab)"
    path = tmp_path / "old.csv"
    path.write_text(MODEL_HEADER + "\n" + old_row + "\n")
    summary = IntervalSummary(start=60.0, end=120.0, frames=1500, faces=1500, people_seen=1,
                              by_label={"with_mask": 1, "without_mask": 0, "mask_worn_incorrectly": 0}, fps=25.0,
                              dropped_frames=0, source_state=SourceState.LIVE, model="m 1",
                              person_s={"with_mask": 42.0, "without_mask": 14.0, "mask_worn_incorrectly": 0.0},
                              label_changes=1)
    with IntervalCsvLog(path) as log:
        log.on_interval(summary)
    lines = path.read_text().splitlines()
    assert lines[:2] == [MODEL_HEADER, old_row] and lines[2].split(",")[-1] == "m 1"  # old shape kept
    new = tmp_path / "new.csv"
    with IntervalCsvLog(new) as log:
        log.on_interval(summary)
    header, row = new.read_text().splitlines()
    assert header == HEADER
    assert row.split(",")[-5:] == ["42.0", "14.0", "0.0", "0.750", "1"]
