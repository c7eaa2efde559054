"""The history database (maskwatch.site.history), its sink (maskwatch.sinks.database) and track_ended.

Every test runs against a real SQLite file; the ``History`` behaviour tests also run against a real
PostgreSQL server (tests/support/postgres.py; marked ``postgres``, skipped where none can be started).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import time
from datetime import datetime

import numpy as np
import pytest

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces
from maskwatch.frames import Frame, SourceState
from maskwatch.results import Event, FrameResult, IntervalSummary, Stats, Totals
from maskwatch.site.history import EVENT_FIELDS, INTERVAL_FIELDS, History, event_payload, interval_payload
from conftest import SHIPPED_MODEL, requires_shipped_model
from postgres import PASSWORD, postgres_server, postgres_url  # noqa: F401  (fixtures)


def summary(start: float, length: float = 60.0, with_mask: int = 3, without_mask: int = 1,
            state: SourceState = SourceState.LIVE, model: str | None = None) -> IntervalSummary:
    return IntervalSummary(start=start, end=start + length, frames=1500, faces=3000,
                           people_seen=with_mask + without_mask,
                           by_label={"with_mask": with_mask, "without_mask": without_mask, "mask_worn_incorrectly": 0},
                           fps=25.0, dropped_frames=2, source_state=state, model=model)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "history.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def history(db_url):
    h = History(db_url)
    yield h
    h.close()


# -- the outbox ------------------------------------------------------------------------------------


def test_rows_are_pending_oldest_first_until_marked_published(history):
    first = history.add_interval("door", summary(1e9))
    seen = history.add_event("door", Event("person_seen", 4, 1e9 + 5, 125, box=(1, 2, 3, 4)))
    decided = history.add_event("hall", Event("label_decided", 4, 1e9 + 6, 150, label="without_mask",
                                              confidence=0.875), snapshot="/snaps/x.jpg")
    second = history.add_interval("door", summary(1e9 + 60))
    pending = history.pending()
    assert [(kind, p["id"]) for kind, p in pending] == [
        ("interval", first["id"]), ("event", seen["id"]), ("event", decided["id"]), ("interval", second["id"])]
    assert pending[2][1] == decided and decided["snapshot"] == "/snaps/x.jpg"
    assert [p["id"] for _, p in history.pending(limit=2)] == [first["id"], seen["id"]]

    history.mark_published([first["id"], decided["id"], "no-such-id"])
    history.mark_published([])
    assert [p["id"] for _, p in history.pending()] == [seen["id"], second["id"]]
    history.mark_published(p["id"] for _, p in history.pending())
    assert history.pending() == []
    # published rows stay in the history
    assert [p["id"] for p in history.intervals()] == [first["id"], second["id"]]
    assert [p["id"] for p in history.events()] == [seen["id"], decided["id"]]


def test_upsert_is_idempotent_by_id_and_stores_as_published(history, tmp_path):
    with History(tmp_path / "worker.db") as worker:
        rows = [("interval", worker.add_interval("door", summary(1e9, model="mask_classifier 0.4.0"))),
                ("event", worker.add_event("door", Event("label_decided", 9, 1e9 + 1.25, 3, label="with_mask",
                                                         confidence=0.5, box=(0.5, 1, 2, 3)))),
                ("event", worker.add_event("door", Event("track_ended", 9, 1e9 + 9, 30, label="with_mask")))]
    for kind, payload in rows:
        received = json.loads(json.dumps(payload))  # as it comes off the broker
        assert history.upsert(kind, received) is True
        assert history.upsert(kind, received) is False  # QoS 1 duplicate
    assert history.pending() == []  # what the aggregate receives is not republished
    assert history.intervals() == [rows[0][1]]
    assert history.events() == [rows[1][1], rows[2][1]]
    assert len(history.intervals()) == 1 and len(history.events()) == 2


def test_upsert_rejects_what_is_not_a_row(history):
    good = interval_payload("door", summary(1e9))
    for kind, payload, words in [
        ("interval", {**good, "id": None}, "'id'"),
        ("interval", {**good, "start_ts": "yesterday"}, "'start_ts'"),
        ("interval", [1, 2], "not a JSON object"),
        ("event", {"id": "x", "type": "explode", "camera": "door", "track_id": 1, "ts": 1.0}, "unknown type"),
        ("event", {"id": "x", "type": "new", "camera": "door", "track_id": 1, "ts": 1.0, "box": [1]}, "box"),
        ("row", good, "unknown row kind"),
    ]:
        with pytest.raises(MaskwatchError, match=words) as info:
            history.upsert(kind, payload)
        assert "\n" not in str(info.value)
    assert history.intervals() == [] and history.events() == []


@pytest.mark.parametrize("kind, change, key", [
    ("interval", {"start": 7}, "'start'"),
    ("interval", {"model": [1]}, "'model'"),
    ("interval", {"source_state": {"a": 1}}, "'source_state'"),
    ("interval", {"frames": 2**40}, "'frames'"),
    ("interval", {"fps": "fast"}, "'fps'"),
    ("interval", {"compliance_rate": float("nan")}, "'compliance_rate'"),
    ("interval", {"end_ts": float("inf")}, "'end_ts'"),
    ("event", {"label": {"a": 1}}, "'label'"),
    ("event", {"ts": float("inf")}, "'ts'"),  # JSON's 1e400 (OverflowError escaped the aggregate's _store)
    ("event", {"ts": 1e300, "time": None}, "'time'"),  # no calendar holds it
    ("event", {"camera": None}, "'camera'"),
    ("event", {"track_id": True}, "'track_id'"),
    ("event", {"box": [1, 2, 3, float("inf")]}, "box"),
    ("event", {"snapshot": 5}, "'snapshot'"),
])
def test_a_row_with_a_bad_value_is_rejected_as_the_rows_fault(history, kind, change, key):
    from maskwatch.site.history import RowRejected

    good = (interval_payload("door", summary(1e9)) if kind == "interval"
            else event_payload("door", Event("label_decided", 3, 1e9, 1, label="with_mask", confidence=0.5)))
    with pytest.raises(RowRejected, match=key) as info:  # not "cannot write database": not retried
        history.upsert(kind, {**good, **change})
    assert str(info.value).startswith(f"{kind} payload") and "\n" not in str(info.value)
    assert history.upsert(kind, good) is True  # the database is fine


def test_a_null_start_is_made_from_start_ts(history):
    """``"start": null`` failed NOT NULL as "cannot write database": the aggregate retried it and stopped."""
    good = interval_payload("door", summary(1e9))
    assert history.upsert("interval", {**good, "start": None, "end": None}) is True
    assert history.intervals() == [good]


def test_json_infinity_from_the_broker_is_rejected():
    from maskwatch.site.history import RowRejected, _checked

    payload = json.loads('{"id": "a1", "type": "new", "camera": "door", "track_id": 1, "ts": 1e400}')
    with pytest.raises(RowRejected, match="'ts'"):
        _checked("event", payload)


def test_long_free_text_is_stored_whole(history):
    """A model after many live swaps ("A -> B -> C ..."), a long camera name or label: Text columns
    (a VARCHAR(200) on PostgreSQL refused them, and the aggregate retried the row forever)."""
    model = " -> ".join(f"mask_classifier-finetuned-{i:03d} 0.{i}.0 (sha256 {i:08x})" for i in range(12))
    assert len(model) > 500
    payload = interval_payload("c" * 300, summary(1e9, model=model))
    assert history.upsert("interval", json.loads(json.dumps(payload))) is True
    event = event_payload("c" * 300, Event("label_decided", 1, 1e9, 1, label="l" * 300), snapshot="/s" * 600)
    assert history.upsert("event", event) is True
    assert history.intervals()[0]["model"] == model and history.events()[0]["label"] == "l" * 300


def test_a_value_the_driver_cannot_store_is_the_rows_fault_not_the_databases(history):
    from maskwatch.site.history import DatabaseUnavailable, RowRejected

    payload = interval_payload("door", summary(1e9))
    with pytest.raises(RowRejected) as info:  # add_interval's own path: History.write, no _checked
        history.write("interval", {**payload, "frames": 2**70})
    assert not isinstance(info.value, DatabaseUnavailable)
    assert history.write("interval", payload) is True and history.write("interval", payload) is False


def test_intervals_and_events_filter_by_time_and_camera(history):
    a = history.add_interval("door", summary(1000.0))
    b = history.add_interval("hall", summary(1060.0))
    c = history.add_interval("door", summary(1120.0))
    e1 = history.add_event("door", Event("person_seen", 1, 1010.0, 1))
    e2 = history.add_event("hall", Event("person_seen", 2, 1100.0, 2))
    assert [p["id"] for p in history.intervals(since=1100.0)] == [b["id"], c["id"]]  # b ends at 1120
    assert [p["id"] for p in history.intervals(camera="door")] == [a["id"], c["id"]]
    assert [p["id"] for p in history.intervals(since=1100.0, camera="door")] == [c["id"]]
    assert [p["id"] for p in history.events(since=1050.0)] == [e2["id"]]
    assert [p["id"] for p in history.events(camera="door")] == [e1["id"]]
    assert history.cameras() == ["door", "hall"]


def test_rows_survive_reopening(db_url):
    with History(db_url) as h:
        p = h.add_interval("door", summary(1e9))
    with History(db_url) as h:  # tables exist: opened, not recreated
        assert h.intervals() == [p] and [x["id"] for _, x in h.pending()] == [p["id"]]


# -- payloads ------------------------------------------------------------------------------------


def test_interval_payload_shape_is_json_and_matches_the_csv():
    start = datetime(2026, 11, 29, 9, 0, 0).timestamp()
    p = interval_payload("door", summary(start, with_mask=3, without_mask=1, state=SourceState.RECONNECTING,
                                         model="mask_classifier 0.4.0"))
    assert tuple(p) == INTERVAL_FIELDS
    assert json.loads(json.dumps(p)) == p
    assert len(p["id"]) == 32 and int(p["id"], 16) >= 0
    assert p["start"].startswith("2026-11-29T09:00:00") and len(p["start"]) == 25  # whole seconds, with offset
    assert datetime.fromisoformat(p["end"]).timestamp() == p["end_ts"] == start + 60
    assert (p["frames"], p["faces"], p["people_seen"], p["with_mask"], p["without_mask"],
            p["mask_worn_incorrectly"]) == (1500, 3000, 4, 3, 1, 0)
    assert (p["compliance_rate"], p["fps"], p["dropped_frames"], p["source_state"], p["model"]) == (
        0.75, 25.0, 2, "reconnecting", "mask_classifier 0.4.0")
    sub = interval_payload("door", summary(start + 0.5, length=0.5))
    assert sub["start"][19:23] == ".500"  # sub-second times keep their milliseconds
    empty = interval_payload("door", summary(start, with_mask=0, without_mask=0))
    assert empty["compliance_rate"] is None
    assert interval_payload("door", summary(start))["id"] != p["id"]


def test_event_payload_types_for_every_counter_event():
    kinds = {"person_seen": "new", "label_decided": "update", "track_ended": "end"}
    for kind, type_ in kinds.items():
        p = event_payload("door", Event(kind, 7, 1e9 + 0.125, 3, label=None if kind == "person_seen" else "without_mask",
                                        confidence=0.8 if kind == "label_decided" else None, box=(1, 2, 3, 4)))
        assert tuple(p) == EVENT_FIELDS and json.loads(json.dumps(p)) == p
        assert (p["type"], p["camera"], p["track_id"], p["ts"], p["box"]) == (type_, "door", 7, 1e9 + 0.125,
                                                                             [1.0, 2.0, 3.0, 4.0])
        assert datetime.fromisoformat(p["time"]).timestamp() == 1e9 + 0.125
    with pytest.raises(MaskwatchError, match="unknown event kind 'alert'"):
        event_payload("door", Event("alert", 1, 1.0, 1))


# -- SQLite: several processes, WAL ------------------------------------------------------------


def _write_rows(path: str, camera: str, n: int, barrier) -> list[str]:
    ids = []
    with History(path) as h:  # every process creates the tables if missing, at about the same moment
        barrier.wait(60)  # then both write at once
        for i in range(n):
            ids.append(h.add_interval(camera, summary(1e9 + 60 * i))["id"])
            ids.append(h.add_event(camera, Event("person_seen", i, 1e9 + 60 * i, i))["id"])
            if i % 10 == 0:
                h.mark_published(ids[-2:])
            if i == n // 2:
                # halfway, each waits for the other to be halfway too: both were writing at the same
                # time, by construction rather than by a clock (a timing assert flaked under load);
                # each then writes its second half while the other does
                barrier.wait(60)
        return ids


def test_two_processes_write_one_sqlite_file_at_once_and_every_row_arrives(tmp_path):
    path = str(tmp_path / "site.db")
    ctx = multiprocessing.get_context("spawn")  # as maskwatch serve starts its workers
    with ctx.Manager() as manager:
        barrier = manager.Barrier(2)
        with ctx.Pool(2) as pool:
            jobs = [pool.apply_async(_write_rows, (path, camera, 100, barrier)) for camera in ("door", "hall")]
            seen = []
            while not all(j.ready() for j in jobs):  # a reader in a third process meanwhile
                time.sleep(0.05)
                try:
                    with History(path, create=False) as reader:
                        seen.append(len(reader.intervals()))
                except MaskwatchError as e:  # only before the writers made the file and its tables
                    assert "does not exist" in str(e) or "has no maskwatch history" in str(e), e
            ids_a, ids_b = [j.get(120) for j in jobs]  # a barrier that broke (a writer stuck) raises here
    assert seen == sorted(seen) and all(n <= 200 for n in seen)  # the reader saw rows only grow, no error
    ids = [ids_a, ids_b]
    with History(path) as h:
        intervals, events = h.intervals(), h.events()
        assert len(intervals) == len(events) == 200
        assert {p["id"] for p in intervals + events} == set(ids[0]) | set(ids[1])
        assert {p["camera"] for p in intervals} == {"door", "hall"}
        assert len(h.pending(limit=1000)) == 400 - 2 * 2 * 10  # 10 pairs marked published per process
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- errors: one line, the shown URL, never the password ---------------------------------------


def one_line_error(url) -> str:
    with pytest.raises(MaskwatchError) as info:
        History(url)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_file_that_is_not_a_database(tmp_path):
    (tmp_path / "counts.db").write_text("start,end,frames\n" * 100)
    message = one_line_error(tmp_path / "counts.db")
    assert message.startswith(f"cannot open database sqlite:///{tmp_path}/counts.db: ")
    assert "not a database" in message
    assert (tmp_path / "counts.db").read_text().startswith("start,end")  # untouched


def test_a_directory_and_bad_urls(tmp_path):
    assert "is a directory" in one_line_error(tmp_path)
    assert "not a database URL" in one_line_error("postgresql+psycopg://mw:s3cret@host:notaport/db")
    assert "s3cret" not in one_line_error("postgresql+psycopg://mw:s3cret@host:notaport/db")
    message = one_line_error("nosuchdb://mw:s3cret@host/db")
    assert "nosuchdb://mw:***@host/db" in message and "s3cret" not in message
    assert "no database given" in one_line_error("")


def test_an_unreachable_server_names_the_url_without_its_password():
    from postgres import free_port

    pytest.importorskip("psycopg")
    message = one_line_error(f"postgresql+psycopg://mw:s3cret-pw@127.0.0.1:{free_port()}/site")
    assert "postgresql+psycopg://mw:***@127.0.0.1:" in message and "s3cret-pw" not in message


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes read-only files")
def test_an_unwritable_file(tmp_path):
    path = tmp_path / "history.db"
    History(path).close()
    os.chmod(path, 0o444)
    os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(MaskwatchError, match=r"^cannot (open|write) database sqlite:///"):
            with History(path) as h:
                h.add_interval("door", summary(1e9))
    finally:
        os.chmod(tmp_path, 0o755)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc (a folder nobody can create files in)")
def test_a_place_no_file_can_be_created_even_as_root():
    message = one_line_error("/proc/maskwatch-history.db")
    assert message == "cannot open database sqlite:////proc/maskwatch-history.db: unable to open database file"


def test_another_programs_tables_are_refused(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE intervals (id TEXT PRIMARY KEY, what TEXT)")
    message = one_line_error(path)
    assert "has a table 'intervals' that is not maskwatch's history" in message and "camera" in message


def test_write_failure_is_one_line_error_after_close_and_after_a_dropped_table(tmp_path):
    path = tmp_path / "history.db"
    h = History(path)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE intervals")
    with pytest.raises(MaskwatchError, match=r"^cannot write database sqlite:///.*no such table: intervals$"):
        h.add_interval("door", summary(1e9))
    h.close()
    with pytest.raises(MaskwatchError, match="is closed"):
        h.add_event("door", Event("person_seen", 1, 1.0, 1))


@pytest.mark.postgres
def test_an_sqlalchemy_url_object_keeps_its_password(postgres_server):
    import sqlalchemy as sa

    url = sa.make_url(postgres_server.new_database())
    assert PASSWORD not in str(url)  # str() hides it: History must not go through str()
    with History(url) as h:
        h.add_interval("door", summary(1e9))
        assert len(h.intervals()) == 1 and PASSWORD not in h.shown_url


@pytest.mark.postgres
def test_postgres_wrong_password_never_shows_either_password(postgres_server):
    url = postgres_server.url("postgres", password="wr0ng-Secret-77")
    message = one_line_error(url)
    assert "password authentication failed" in message
    assert "wr0ng-Secret-77" not in message and PASSWORD not in message and ":***@" in message
    with History(postgres_server.new_database()) as h:
        assert PASSWORD not in h.shown_url and PASSWORD not in repr(h) and ":***@" in h.shown_url


# -- DatabaseSink --------------------------------------------------------------------------------


def frame_result(events, image=None, summary_=None) -> FrameResult:
    image = np.full((120, 160, 3), 90, np.uint8) if image is None else image
    faces = Faces(xyxy=np.array([[20, 20, 60, 70]], np.float32), score=np.array([0.9], np.float32),
                  track_id=np.array([5]), track_label=np.array([1]))
    return FrameResult(frame=Frame(image=image, index=10, timestamp=1e9 + 1, captured_at=0.0), faces=faces,
                       stats=Stats(), totals=Totals(), events=list(events), summary=summary_)


@pytest.mark.parametrize("database_first", [False, True], ids=["saver-first", "database-first"])
def test_database_sink_records_rows_events_and_the_snapshot_path(tmp_path, database_first):
    """The snapshot paths are handed over explicitly (SnapshotSaver.on_saved): the order of the
    sinks in the list does not matter."""
    from maskwatch.monitor import fan_out
    from maskwatch.sinks import DatabaseSink, IntervalCsvLog
    from maskwatch.sinks.snapshots import SnapshotSaver

    written = []
    with History(tmp_path / "history.db") as history:
        saver = SnapshotSaver(tmp_path / "snaps")
        database = DatabaseSink(history, "door", on_write=lambda kind, p: written.append((kind, p["id"])),
                                snapshots=saver)
        sinks = [IntervalCsvLog(tmp_path / "counts.csv"), *([database, saver] if database_first else [saver, database])]
        events = [Event("person_seen", 5, 1e9 + 1, 10, box=(20, 20, 60, 70)),
                  Event("label_decided", 5, 1e9 + 1, 10, label="without_mask", confidence=0.9, box=(20, 20, 60, 70))]
        assert fan_out(frame_result(events, summary_=summary(1e9 - 59)), sinks) is None
        assert fan_out(frame_result([Event("label_decided", 6, 1e9 + 2, 11, label="with_mask")]), sinks) is None
        for sink in sinks:
            sink.close()
        rows, evs = history.intervals(), history.events()
        assert [(e["type"], e["track_id"], e["label"]) for e in evs] == [
            ("new", 5, None), ("update", 5, "without_mask"), ("update", 6, "with_mask")]
        snapshot = evs[1]["snapshot"]
        assert snapshot is not None and os.path.isabs(snapshot) and os.path.isfile(snapshot)
        assert snapshot.endswith("_track5_without_mask.jpg") and [str(p) for p in saver.written.values()] == []
        assert evs[0]["snapshot"] is None and evs[2]["snapshot"] is None  # with_mask: no snapshot taken
        assert len(rows) == 1 and rows[0]["camera"] == "door"
        assert sorted(i for _, i in written) == sorted([rows[0]["id"]] + [e["id"] for e in evs])
        assert [kind for kind, _ in history.pending()].count("interval") == 1


def test_database_sink_close_writes_an_event_still_waiting_for_its_frame(tmp_path):
    from maskwatch.sinks import DatabaseSink
    from maskwatch.sinks.snapshots import SnapshotSaver

    with History(tmp_path / "history.db") as history:
        sink = DatabaseSink(history, "door", snapshots=SnapshotSaver(tmp_path / "snaps"))
        sink.on_event(Event("label_decided", 5, 1e9, 1, label="without_mask"))
        assert history.events() == []  # waits for the snapshot sink's on_result
        sink.close()
        assert [(e["type"], e["snapshot"]) for e in history.events()] == [("update", None)]


def test_a_database_error_ends_the_run_after_the_csv_got_the_row(tmp_path):
    from maskwatch.monitor import fan_out
    from maskwatch.sinks import DatabaseSink, IntervalCsvLog

    path = tmp_path / "history.db"
    with History(path) as history:
        csv_log = IntervalCsvLog(tmp_path / "counts.csv")
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE intervals")
        error = fan_out(frame_result([], summary_=summary(1e9)), [DatabaseSink(history, "door"), csv_log])
        csv_log.close()
    assert isinstance(error, MaskwatchError) and "no such table: intervals" in str(error)
    assert len((tmp_path / "counts.csv").read_text().splitlines()) == 2  # header + the row


class _ExclusiveLock:
    """Another connection holding SQLite's write lock (``BEGIN EXCLUSIVE``): every writer waits its
    busy timeout and gets "database is locked", as when another process's transaction runs long.
    Works as root (file permissions do not)."""

    def __init__(self, path) -> None:
        self.conn = sqlite3.connect(path, timeout=0.1, isolation_level=None)

    def __enter__(self) -> "_ExclusiveLock":
        self.conn.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc) -> None:
        self.conn.execute("COMMIT")
        self.conn.close()


def test_a_database_outage_keeps_every_row_in_order_and_writes_it_when_it_is_back(tmp_path, caplog):
    from maskwatch.sinks import DatabaseSink

    path = tmp_path / "history.db"
    written = []
    with History(path, busy_timeout_s=0.1) as history:
        sink = DatabaseSink(history, "door", on_write=lambda kind, p: written.append(p["id"]), retry_initial_s=0.05)
        sink.on_interval(summary(1e9))  # before the outage
        with _ExclusiveLock(path):
            for i in range(1, 4):  # the camera goes on: nothing raised, the rows wait in memory
                sink.on_event(Event("person_seen", i, 1e9 + 60 * i, i))
                sink.on_interval(summary(1e9 + 60 * i))
                time.sleep(0.06)
                sink.on_result(frame_result([]))  # a retry that finds the database still locked
            assert sink.queued == 6 and len(written) == 1
        deadline = time.monotonic() + 20
        while sink.queued and time.monotonic() < deadline:  # the next frames write the queue (after the retry wait)
            sink.on_result(frame_result([]))
            time.sleep(0.02)
        assert sink.queued == 0
        sink.on_interval(summary(1e9 + 240))
        sink.close()
        intervals, events = history.intervals(), history.events()
    assert [r["start_ts"] for r in intervals] == [1e9 + 60 * i for i in range(5)]
    assert [e["track_id"] for e in events] == [1, 2, 3]
    assert written[1:7] == [events[0]["id"], intervals[1]["id"], events[1]["id"], intervals[2]["id"],
                            events[2]["id"], intervals[3]["id"]]  # in the order they happened
    warnings = [r.getMessage() for r in caplog.records if r.name == "maskwatch.sinks.database"]
    assert len(warnings) == 2, warnings  # once when it went away, once when it came back
    assert "database is locked" in warnings[0] and "keeping rows in memory" in warnings[0]
    assert "is back" in warnings[1]


def test_a_full_outage_queue_keeps_the_oldest_and_counts_the_dropped_rows_loudly(tmp_path, caplog):
    from maskwatch.sinks import DatabaseSink

    path = tmp_path / "history.db"
    with History(path, busy_timeout_s=0.05) as history:
        sink = DatabaseSink(history, "door", max_queued=3, retry_initial_s=60)
        with _ExclusiveLock(path):
            for i in range(5):
                sink.on_interval(summary(1e9 + 60 * i))
            assert sink.queued == 3 and sink.dropped == 2
        sink.close()  # the database is back: the queue is written on close
        assert [r["start_ts"] for r in history.intervals()] == [1e9, 1e9 + 60, 1e9 + 120]  # the oldest kept
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("1 new row dropped" in m for m in errors) and any("2 rows of camera door were dropped" in m
                                                                for m in errors), errors


def test_rows_still_waiting_when_the_run_ends_are_one_error_with_their_count(tmp_path):
    from maskwatch.sinks import DatabaseSink

    path = tmp_path / "history.db"
    with History(path, busy_timeout_s=0.05) as history:
        sink = DatabaseSink(history, "door", close_wait_s=0.3)
        with _ExclusiveLock(path):
            sink.on_interval(summary(1e9))
            sink.on_event(Event("person_seen", 1, 1e9, 1))
            with pytest.raises(MaskwatchError, match=r"^2 rows of camera door could not be written to database "
                                                     r"sqlite:///.* and are lost"):
                sink.close()


# -- track_ended ---------------------------------------------------------------------------------


def _walk(counter, frames: int = 40):
    from maskwatch.config import TrackerConfig
    from tracking_driver import Driver

    tracker = Driver(TrackerConfig(vote_window=5, min_votes=2, max_age=2, min_hits=2))
    events = []
    for i in range(frames):
        boxes = [[10, 10, 50, 50]] + ([[300, 300, 340, 340]] if i < 6 else [])  # the 2nd person leaves
        probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]][:len(boxes)], np.float32)
        faces = tracker.update(Faces(xyxy=np.array(boxes, np.float32), score=np.full(len(boxes), 0.9), probs=probs), i)
        ev, _ = counter.update(faces, 100.0 + i, i, Stats(), track_update=tracker.last, labels=tracker.decisions)
        events += ev
    return events


def test_track_ended_when_a_counted_person_leaves_with_the_label_they_were_counted_with():
    from maskwatch.counting import Counter

    events = _walk(Counter(min_hits=2, end_events=True))
    ended = [e for e in events if e.kind == "track_ended"]
    assert [(e.track_id, e.label, e.frame_index) for e in ended] == [(2, "without_mask", 8)]  # last seen on 5, unseen > max_age (2)
    assert ended[0].box == (300.0, 300.0, 340.0, 340.0)
    assert event_payload("door", ended[0])["type"] == "end"
    assert [e.kind for e in events].count("person_seen") == 2  # nobody counted twice
    assert "track_ended" not in [e.kind for e in _walk(Counter(min_hits=2))]  # off unless asked for


@requires_shipped_model
def test_a_monitored_clip_ends_the_first_persons_track_into_the_database(known_faces_clip, tmp_path):
    """Person A (masked) leaves before B comes: A's track ends during the run, with A's label; the
    JSONL log records it, the database stores it as type "end"; B is still in view at the end.
    (The default tracker keeps a person who left for ``relink_s`` before ending them; the clip is
    shorter than that, so it is 0 here.)"""
    from maskwatch.config import Config, TrackerConfig
    from maskwatch.monitor import Monitor
    from maskwatch.sinks import DatabaseSink, EventJsonl

    config = Config(source=str(known_faces_clip["path"]), model=SHIPPED_MODEL, interval_s=60,
                    tracker=TrackerConfig(relink_s=0.0))
    with History(tmp_path / "history.db") as history:
        totals = Monitor(config, sinks=[EventJsonl(tmp_path / "events.jsonl"), DatabaseSink(history, "door")]).run()
        events = history.events()
    assert totals.people_seen == 2 and totals.by_label == known_faces_clip["by_label"]
    ends = [(e["track_id"], e["label"]) for e in events if e["type"] == "end"]
    first = next(e for e in events if e["type"] == "update")
    assert ends == [(first["track_id"], "with_mask")]
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records].count("track_ended") == 1


def test_the_old_sinks_ignore_track_ended(tmp_path):
    from maskwatch.sinks.alerts import AlertPolicy
    from maskwatch.sinks.snapshots import SnapshotSaver

    end = Event("track_ended", 5, 1e9, 10, label="without_mask", box=(20, 20, 60, 70))
    assert SnapshotSaver(tmp_path / "s").maybe_save(np.zeros((120, 160, 3), np.uint8),
                                                     frame_result([]).faces, [end]) == []
    totals = Totals(people_seen=1, by_label={k: int(k == "with_mask") for k in LABELS})
    policy = AlertPolicy(compliance_below=0.8)
    assert policy.check([end], totals, []) == []  # a person alert comes from label_decided only
    decided = Event("label_decided", 5, 1e9, 10, label="without_mask", box=(20, 20, 60, 70))
    assert [a.kind for a in policy.check([decided], totals, [])] == ["without_mask"]


def test_a_plain_path_is_an_sqlite_file_and_tilde_is_home(monkeypatch, tmp_path):
    from maskwatch.site.history import database_url

    monkeypatch.setenv("HOME", str(tmp_path))
    assert database_url("~/site/history.db").database == f"{tmp_path}/site/history.db"
    with History("~/site/history.db") as h:
        h.add_interval("door", summary(1e9))
    assert (tmp_path / "site" / "history.db").is_file()


def test_tilde_in_an_sqlite_url_is_home_too(monkeypatch, tmp_path):
    import sqlalchemy as sa

    from maskwatch.site.history import database_url

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert database_url("sqlite:///~/x.db").database == f"{tmp_path}/home/x.db"
    with History("sqlite:///~/x.db") as h:
        h.add_interval("door", summary(1e9))
    with History(sa.URL.create("sqlite", database="~/y.db")) as h:
        h.add_event("door", Event("person_seen", 1, 1e9, 1))
    assert (tmp_path / "home" / "x.db").is_file() and (tmp_path / "home" / "y.db").is_file()
    assert not (tmp_path / "~").exists()  # not a folder literally named ~


# -- labels over time ----------------------------------------------------------------------------


def test_label_changes_and_person_seconds_are_stored_and_an_older_database_is_upgraded(tmp_path):
    from maskwatch.site.history import History

    path = tmp_path / "old.db"
    with History(path) as h:
        old = h.add_interval("door", summary(1e9))
    con = sqlite3.connect(path)  # make it a database of the version before the time columns
    for col in ("with_mask_s", "without_mask_s", "mask_worn_incorrectly_s", "masked_time_share", "label_changes"):
        con.execute(f"ALTER TABLE intervals DROP COLUMN {col}")
    con.execute("ALTER TABLE events DROP COLUMN previous")
    con.execute("ALTER TABLE events DROP COLUMN frame_index")
    con.commit()
    con.close()

    with History(path) as h:  # opened by this version: the columns come back, the old row reads
        s = summary(1e9 + 60)
        s.person_s = {"with_mask": 40.0, "without_mask": 20.0, "mask_worn_incorrectly": 0.0}
        s.label_changes = 1
        new = h.add_interval("door", s)
        change = h.add_event("door", Event("label_changed", 9, 1e9 + 70, 5, label="without_mask",
                                           confidence=0.8, previous="with_mask"))
        rows = h.intervals()
        events = h.events()
    assert rows[0]["id"] == old["id"] and rows[0]["with_mask_s"] is None and rows[0]["masked_time_share"] is None
    assert (rows[1]["with_mask_s"], rows[1]["without_mask_s"], rows[1]["masked_time_share"], rows[1]["label_changes"]) == \
        (40.0, 20.0, pytest.approx(2 / 3), 1)
    assert events == [change] and change["type"] == "update" and change["previous"] == "with_mask"
    assert change["frame_index"] == 5  # schema 4: the frame, as in the JSONL record
    assert new["masked_time_share"] == pytest.approx(2 / 3)


def test_an_event_payload_names_its_frame_and_one_of_an_earlier_version_still_stores(tmp_path):
    """Schema 4: the MQTT body and the database row carry the event's frame_index (the JSONL
    record always had it); a payload from an earlier publisher (no frame_index) stores it as null,
    and a frame index beyond 32 bits (a camera running for years) is kept, not refused."""
    from maskwatch.records import SCHEMA_VERSION, event_record

    event = Event("label_decided", 4, 1e9, 123, label="with_mask", confidence=0.9)
    payload = event_payload("door", event)
    assert payload["frame_index"] == 123 == event_record(event)["frame_index"] and SCHEMA_VERSION == 4
    older = {k: v for k, v in event_payload("door", event).items() if k != "frame_index"}
    later = {**event_payload("door", event), "frame_index": 2**40}
    with History(tmp_path / "history.db") as h:
        for p in (payload, older, later):
            h.upsert("event", p)
        stored = {e["id"]: e["frame_index"] for e in h.events()}
    assert stored == {payload["id"]: 123, older["id"]: None, later["id"]: 2**40}
