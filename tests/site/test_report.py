"""``maskwatch report``: numbers from a history database filled with known intervals, its CSV, its
chart, and its one-line errors. Real databases (SQLite files; PostgreSQL where a server can start)."""

from __future__ import annotations

import csv
import sqlite3
import sys
from datetime import datetime

import cv2
import pytest

from conftest import run_cli
from maskwatch import cli
from maskwatch.frames import SourceState
from maskwatch.results import IntervalSummary
from maskwatch.site.history import History
from maskwatch.site.report import REPORT_COLUMNS, parse_since, summarize
from postgres import PASSWORD, postgres_server, postgres_url  # noqa: F401  (fixtures)

LIVE, RECONNECTING = SourceState.LIVE, SourceState.RECONNECTING


def at(day: int, hour: int, minute: int = 0) -> float:
    """Local time on 2026-11-<day>."""
    return datetime(2026, 11, day, hour, minute).timestamp()


def row(start: float, length: float = 600.0, wm: int = 0, nm: int = 0, inc: int = 0, seen: int | None = None,
        state: SourceState = LIVE, frames: int = 6000) -> IntervalSummary:
    return IntervalSummary(start=start, end=start + length, frames=frames, faces=2 * frames,
                           people_seen=wm + nm + inc if seen is None else seen,
                           by_label={"with_mask": wm, "without_mask": nm, "mask_worn_incorrectly": inc},
                           fps=10.0, dropped_frames=0, source_state=state)


def fill(history: History) -> None:
    """Two cameras, 10-minute rows. door: 27 Nov 09:00-09:40, a 20-minute reconnect, a 30-minute gap
    (09:50-10:20), then 28 Nov 23:40 to 29 Nov 00:20 with a reconnect across midnight. hall: one row."""
    for start, kw in [
        (at(27, 9, 0), dict(wm=3, nm=1, seen=5)),  # one person still undecided
        (at(27, 9, 10), dict(wm=2, inc=1)),
        (at(27, 9, 20), dict(state=RECONNECTING, frames=0)),
        (at(27, 9, 30), dict(state=RECONNECTING, frames=0)),
        (at(27, 9, 40), dict(wm=1)),
        # 09:50 .. 10:20 nothing: the worker was down
        (at(27, 10, 20), dict(nm=2)),
        (at(28, 23, 40), dict(wm=4)),
        (at(28, 23, 50), dict(state=RECONNECTING, length=1200.0, frames=0)),  # 23:50 .. 00:10
        (at(29, 0, 10), dict(wm=1, nm=1)),
    ]:
        history.add_interval("door", row(start, **kw))
    history.add_interval("hall", row(at(27, 12, 0), wm=5, nm=5))


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "history.db"
    with History(path) as h:
        fill(h)
    return path


def test_summary_per_day_counts_labels_compliance_frames_and_outage(db):
    with History(db) as h:
        periods = summarize(h.intervals(), "day")
    got = {(p.camera, datetime.fromtimestamp(p.start).day): p for p in periods}
    assert sorted(got) == [("door", 27), ("door", 28), ("door", 29), ("hall", 27)]
    d27 = got["door", 27]
    assert (d27.people_seen, d27.by_label, d27.decided, d27.frames, d27.rows) == (
        11, {"with_mask": 6, "without_mask": 3, "mask_worn_incorrectly": 1}, 10, 4 * 6000, 6)
    assert d27.compliance_rate == pytest.approx(0.6)
    # the reconnect rows, the 30-minute gap (longer than an interval), and from 10:30 to midnight
    assert d27.outage_s == 20 * 60 + 30 * 60 + (at(28, 0) - at(27, 10, 30))
    # the gap from 27 Nov 10:30 to 28 Nov 23:40 is an outage too, split at midnights
    assert got["door", 27].outage_s + got["door", 28].outage_s + got["door", 29].outage_s == pytest.approx(
        50 * 60 + (at(28, 23, 40) - at(27, 10, 30)) + 20 * 60)
    assert got["door", 28].outage_s == pytest.approx(24 * 3600 - 20 * 60 + 10 * 60)  # all day but 23:40-23:50
    assert got["door", 29].outage_s == pytest.approx(10 * 60)  # 00:00 .. 00:10 of the reconnect row
    assert (got["door", 29].people_seen, got["door", 29].compliance_rate) == (2, 0.5)
    assert (got["hall", 27].compliance_rate, got["hall", 27].outage_s) == (0.5, 0)


def test_summary_per_hour(db):
    with History(db) as h:
        periods = summarize(h.intervals(camera="door", since=at(27, 0)), "hour")
    nine, ten = periods[0], periods[1]
    assert datetime.fromtimestamp(nine.start).hour == 9 and datetime.fromtimestamp(ten.start).hour == 10
    assert (nine.people_seen, nine.by_label["with_mask"], nine.rows, nine.outage_s) == (9, 6, 5, 30 * 60)
    assert (ten.people_seen, ten.by_label["without_mask"], ten.rows) == (2, 2, 1)
    assert ten.outage_s == 20 * 60 + 30 * 60  # 10:00-10:20 of the gap, then from 10:30 on nothing


def test_report_table_and_csv_and_png(db, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="--png needs matplotlib (the train extra)")
    out_csv, out_png = tmp_path / "out" / "report.csv", tmp_path / "report.png"
    assert cli.main(["report", "--db", str(db), "--since", "2026-11-27", "--until", "2026-11-29T00:20",
                     "--csv", str(out_csv), "--png", str(out_png)]) == 0
    shown = capsys.readouterr().out
    assert "compliance per camera per day, 2026-11-27 00:00 to 2026-11-29 00:20" in shown
    assert "60.0%" in shown and "50.0%" in shown and "total" in shown
    with open(out_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == REPORT_COLUMNS
    # hall's only row ends 27 Nov 12:10: the rest of the window is its outage, days without rows included
    assert [(r["camera"], r["period"]) for r in rows] == [
        ("door", "2026-11-27"), ("door", "2026-11-28"), ("door", "2026-11-29"), ("hall", "2026-11-27"),
        ("hall", "2026-11-28"), ("hall", "2026-11-29")]
    assert [(r["rows"], int(r["outage_s"])) for r in rows[3:]] == [
        ("1", int(at(28, 0) - at(27, 12, 10))), ("0", int(at(29, 0) - at(28, 0))), ("0", 20 * 60)]
    assert {k: rows[0][k] for k in ("people_seen", "with_mask", "without_mask", "mask_worn_incorrectly", "decided",
                                    "compliance_rate", "frames", "outage_s", "rows")} == {
        "people_seen": "11", "with_mask": "6", "without_mask": "3", "mask_worn_incorrectly": "1", "decided": "10",
        "compliance_rate": "0.600", "frames": "24000", "outage_s": str(50 * 60 + int(at(28, 0) - at(27, 10, 30))),
        "rows": "6"}
    assert datetime.fromisoformat(rows[3]["period_start"]).timestamp() == at(27, 0)
    image = cv2.imread(str(out_png))
    assert image is not None and image.shape[0] > 400 and image.shape[1] > 800
    # a second run replaces its own report files
    assert cli.main(["report", "--db", str(db), "--since", "2026-11-29", "--until", "2026-11-29T00:30",
                     "--csv", str(out_csv), "--png", str(out_png), "--camera", "door", "--by", "hour"]) == 0
    assert [r["period"] for r in csv.DictReader(open(out_csv))] == ["2026-11-29 00:00"]


def test_report_csv_without_a_chart(db, tmp_path, capsys):
    out_csv = tmp_path / "report.csv"
    assert cli.main(["report", "--db", str(db), "--since", "2026-11-27", "--by", "hour", "--csv", str(out_csv)]) == 0
    rows = list(csv.DictReader(open(out_csv)))
    assert [r["period"] for r in rows if r["camera"] == "hall" and r["rows"] != "0"] == ["2026-11-27 12:00"]
    assert sum(int(r["people_seen"]) for r in rows) == 11 + 4 + 2 + 10 == sum(int(r["decided"]) for r in rows) + 1
    assert "2026-11-27 09:00" in capsys.readouterr().out


def test_since_filters_and_an_empty_window_says_so_and_writes_nothing(db, tmp_path, capsys):
    assert cli.main(["report", "--db", str(db), "--since", "2026-11-28T12:00", "--camera", "door"]) == 0
    shown = capsys.readouterr().out
    assert "2026-11-28" in shown and "2026-11-27" not in shown and "hall" not in shown
    out_csv = tmp_path / "empty.csv"
    assert cli.main(["report", "--db", str(db), "--since", "2030-01-01", "--csv", str(out_csv)]) == 0
    assert "no intervals since 2030-01-01 00:00 in sqlite:///" in capsys.readouterr().out
    assert not out_csv.exists()


def test_outage_counts_the_window_edges_and_days_without_rows(tmp_path, capsys):
    """A camera down from 18:00 until the report runs, and a day with no rows at all (review finding)."""
    path = tmp_path / "edges.db"
    with History(path) as h:
        h.add_interval("gate", row(at(20, 8, 0), wm=1))  # its first row ever, before the window
        h.add_interval("gate", row(at(25, 17, 50), wm=2))  # last row before the window: ends 18:00
        for start in (at(27, 6, 0), at(27, 6, 10)):  # back the next day at 06:00 (26 Nov: nothing)
            h.add_interval("gate", row(start, nm=1))
        h.add_interval("gate", row(at(27, 17, 50), wm=1))  # then down from 18:00 on
        h.add_interval("late", row(at(27, 12, 0), wm=1))  # first row ever inside the window
    with History(path) as h:
        every = h.intervals()
    got = {(p.camera, datetime.fromtimestamp(p.start).day): p
           for p in summarize(every, "day", since=at(25, 12), until=at(28, 6))}
    assert sorted(got) == [("gate", 25), ("gate", 26), ("gate", 27), ("gate", 28), ("late", 27), ("late", 28)]
    # from --since (its last row before was days ago) to 17:50, then 18:00 .. midnight
    assert (got["gate", 25].rows, got["gate", 25].outage_s) == (1, at(25, 17, 50) - at(25, 12) + at(26, 0) - at(25, 18))
    assert (got["gate", 26].rows, got["gate", 26].outage_s) == (0, 24 * 3600)  # a day without rows: all outage
    # 00:00 .. 06:00, then 06:20 .. 17:50 (a gap), then 18:00 .. midnight
    assert got["gate", 27].outage_s == 6 * 3600 + (at(27, 17, 50) - at(27, 6, 20)) + 6 * 3600
    assert (got["gate", 28].rows, got["gate", 28].outage_s) == (0, 6 * 3600)  # up to the window's end
    assert got["late", 27].outage_s == at(28, 0) - at(27, 12, 10)  # not before its first row ever
    # since earlier than a camera's first row ever: nothing before that row is an outage
    first = summarize(every, "day", since=at(19, 0), until=at(20, 8, 10))
    assert [(p.camera, p.rows, p.outage_s) for p in first] == [("gate", 1, 0.0)]

    assert cli.main(["report", "--db", str(path), "--since", "2026-11-26", "--until", "2026-11-26T23:00",
                     "--camera", "gate"]) == 0
    shown = capsys.readouterr().out
    assert "every camera was out" in shown and "2026-11-26" in shown and "23h 00m" in shown


def test_parse_since():
    assert parse_since("7d", now=1e6) == 1e6 - 7 * 86400
    assert parse_since("90m", now=1e6) == 1e6 - 5400
    assert parse_since("2W", now=1e6) == 1e6 - 14 * 86400
    assert parse_since("2026-11-01") == datetime(2026, 11, 1).timestamp()


def errors_of(*args) -> tuple[int, str]:
    done = run_cli("report", *args)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maskwatch: error: "), done.stderr
    return done.returncode, lines[0]


def test_cli_errors_are_one_line(db, tmp_path):
    assert errors_of("--db", tmp_path / "missing.db") == (
        2, f"maskwatch: error: no database sqlite:///{tmp_path}/missing.db: {tmp_path}/missing.db does not exist")
    assert not (tmp_path / "missing.db").exists()  # a report never creates a database
    code, line = errors_of("--db", db, "--since", "last tuesday")
    assert code == 2 and "--since: not a duration or a date: 'last tuesday'" in line
    code, line = errors_of("--db", db, "--camera", "garage")
    assert code == 2 and line.endswith("no camera 'garage' in sqlite:///" + str(db) + " (cameras: door, hall)")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    code, line = errors_of("--db", other)
    assert code == 2 and "has no maskwatch history (no table 'events')" in line
    code, line = errors_of("--db", "postgresql+psycopg://mw:s3cret-77@127.0.0.1:1/site")
    assert code == 2 and "postgresql+psycopg://mw:***@127.0.0.1:1/site" in line and "s3cret-77" not in line
    code, line = errors_of()
    assert code == 2 and "--db" in line


def test_report_never_overwrites_a_file_that_is_not_a_report(db, tmp_path):
    log = tmp_path / "counts.csv"
    log.write_text("start,end,frames\n2026-11-27T09:00:00+00:00,2026-11-27T09:01:00+00:00,1500\n")
    code, line = errors_of("--db", db, "--csv", log)
    assert code == 2 and line.endswith("counts.csv exists and is not a maskwatch report csv: use another --csv file")
    assert log.read_text().startswith("start,end,frames\n2026")
    clip = tmp_path / "clip.png"
    clip.write_bytes(b"not a png at all")
    code, line = errors_of("--db", db, "--png", clip)
    assert code == 2 and "is not a maskwatch report png" in line and clip.read_bytes() == b"not a png at all"


def test_png_without_matplotlib_names_the_fix(db, tmp_path, monkeypatch, capfd):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as in an install without the train extra
    assert cli.main(["report", "--db", str(db), "--png", str(tmp_path / "r.png")]) == 2
    err = capfd.readouterr().err.strip()
    assert err == "maskwatch: error: --png needs matplotlib, which is not installed: pip install matplotlib"
    assert not (tmp_path / "r.png").exists()


@pytest.mark.postgres
def test_report_from_postgres(postgres_url, tmp_path, capsys):
    with History(postgres_url) as h:
        fill(h)
    out_csv = tmp_path / "pg.csv"
    assert cli.main(["report", "--db", postgres_url, "--since", "2026-11-27", "--until", "2026-11-29T00:20",
                     "--csv", str(out_csv)]) == 0
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err and "60.0%" in captured.out
    assert len(list(csv.DictReader(open(out_csv)))) == 6  # door 27-29, hall 27 (its row) and 28-29 (outage)


@pytest.mark.postgres
def test_report_password_from_pgpassword_not_the_command_line(postgres_url, monkeypatch, capfd):
    """A password in --db shows in `ps`; libpq's PGPASSWORD (or ~/.pgpass) keeps it out."""
    with History(postgres_url) as h:
        fill(h)
    bare = postgres_url.replace(f":{PASSWORD}@", "@")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    assert cli.main(["report", "--db", bare]) == 2
    assert "no password supplied" in capfd.readouterr().err
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    assert cli.main(["report", "--db", bare, "--since", "2026-11-27"]) == 0
    out = capfd.readouterr().out
    assert "60.0%" in out and PASSWORD not in out


def test_person_time_and_masked_share_per_period_with_rows_of_an_earlier_version():
    from maskwatch.site.report import summarize

    day = 1_796_000_000.0
    old = dict(camera="door", start_ts=day, end_ts=day + 60, frames=600, people_seen=1, with_mask=1,
               without_mask=0, mask_worn_incorrectly=0, source_state="live")  # no time columns: adds nothing
    new = dict(old, start_ts=day + 60, end_ts=day + 120, with_mask_s=90.0, without_mask_s=30.0,
               mask_worn_incorrectly_s=0.0, masked_time_share=0.75)
    p, = summarize([old, new], "day", since=day - 1, until=day + 121)
    assert p.person_s == {"with_mask": 90.0, "without_mask": 30.0, "mask_worn_incorrectly": 0.0}
    assert p.masked_time_share == 0.75 and p.compliance_rate == 1.0


def test_cameras_with_equal_values_keep_their_markers_visible():
    """Issue 18: two cameras with the same compliance hid each other's markers. Each camera now has
    its own marker shape; all but the last are hollow and larger, and later ones are drawn on top."""
    from maskwatch.site.report import camera_styles

    styles = camera_styles(4)
    assert len({s["marker"] for s in styles}) == 4
    sizes = [s["markersize"] for s in styles]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4  # a smaller one sits inside a larger ring
    assert [s["markerfacecolor"] for s in styles] == ["none", "none", "none", None]
    assert [s["zorder"] for s in styles] == sorted(s["zorder"] for s in styles)
    assert camera_styles(1)[0]["markerfacecolor"] is None  # one camera: a plain filled marker
