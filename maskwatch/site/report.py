"""``maskwatch report``: compliance per camera per day (or hour) from the history database.

For each camera and each local day (``--by hour``: hour) since ``--since``: people seen, people per
decided label, compliance (``with_mask`` / decided people), frames processed, and outage time. A
table in the terminal, ``--csv`` a CSV of the same rows, ``--png`` a chart (compliance per camera
over time above, people per label stacked below) to paste into a report.

Outage time is time the history shows a camera was not watching: rows whose ``source_state`` is
``reconnecting`` or ``connecting`` (the camera was away while the worker waited for it), plus gaps
between consecutive rows longer than one interval (the camera's median row length: the worker or
its host was down). It is split exactly at period boundaries. A row is counted in the period its
``start`` falls in. Over a window (``--since`` .. ``--until``, default now) the edges count too: a
camera known to the database is out from the window's start (or its first row ever, if that is
later) to its first row in the window, and from its last row to the window's end; a day (or hour)
with no rows at all is shown with all of its time as outage. A camera that stopped at 18:00 thus
shows the evening and every later day as outage, not nothing.

>>> parse_since("7d", now=1e6), parse_since("36h", now=1e6)
(395200.0, 870400.0)
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.sinks.appended import rewrite_atomic
from maskwatch.records import iso_time

BY = ("day", "hour")
OUTAGE_STATES = ("reconnecting", "connecting")
TRAIL_SLACK_S = 60.0
"""The window's end is later than a camera's last row by its open interval: beyond one interval plus
this long, the rest of the window counts as outage (a row is written a moment after it closes)."""
DEFAULT_SINCE = "7d"
_UNITS = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$", re.IGNORECASE)

REPORT_COLUMNS: tuple[str, ...] = (
    "camera", "period", "period_start", "people_seen", *LABELS, "decided", "compliance_rate",
    "frames", "outage_s", "rows", *(f"{k}_s" for k in LABELS), "masked_time_share",
)
"""The header of ``--csv``, in order (the person-seconds by label and the masked share of person-time
last; rows written before the history had them add nothing to them)."""

_OLD_REPORT_COLUMNS = REPORT_COLUMNS[:len(REPORT_COLUMNS) - len(LABELS) - 1]
"""The header of report CSVs written before the time-weighted columns (still ours to overwrite)."""

LABEL_COLORS = {"with_mask": "#2e8b57", "mask_worn_incorrectly": "#e69f00", "without_mask": "#c0392b"}


# -- --since -------------------------------------------------------------------------------------


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds of ``--since``: ``30m``, ``24h``, ``7d``, ``2w`` ago, or a local date/time.

    >>> from datetime import datetime
    >>> parse_since("2026-11-01") == datetime(2026, 11, 1).timestamp()
    True
    >>> parse_since("2026-11-01T08:30") == datetime(2026, 11, 1, 8, 30).timestamp()
    True
    >>> parse_since("last week")
    Traceback (most recent call last):
    ...
    maskwatch.errors.MaskwatchError: --since: not a duration or a date: 'last week' (use e.g. 24h, 7d, 2w or 2026-11-01)
    """
    now = time.time() if now is None else float(now)
    m = _AGO.match(text)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2).lower()]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MaskwatchError(f"--since: not a duration or a date: {text!r} (use e.g. 24h, 7d, 2w or 2026-11-01)") from None
    return when.timestamp()  # a naive date/time is local time, like the CSV's


def _since_type(text: str) -> str:
    try:
        parse_since(text)
    except MaskwatchError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--since: ")) from None
    return text


# -- periods -------------------------------------------------------------------------------------


def period_start(ts: float, by: str) -> float:
    """Start (epoch) of the local day or hour that ``ts`` falls in."""
    t = datetime.fromtimestamp(ts)
    t = t.replace(minute=0, second=0, microsecond=0) if by == "hour" else t.replace(hour=0, minute=0, second=0,
                                                                                     microsecond=0)
    return t.timestamp()


def next_period(start: float, by: str) -> float:
    """Start of the period after the one starting at ``start`` (local midnights across DST too)."""
    t = datetime.fromtimestamp(start)
    if by == "hour":
        return start + 3600.0
    return (t + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def period_name(start: float, by: str) -> str:
    """``2026-11-29`` for a day, ``2026-11-29 09:00`` for an hour (local time)."""
    return datetime.fromtimestamp(start).strftime("%Y-%m-%d %H:00" if by == "hour" else "%Y-%m-%d")


@dataclass
class Period:
    """One camera's numbers for one day or hour."""

    camera: str
    start: float
    people_seen: int = 0
    by_label: dict[str, int] = field(default_factory=lambda: {k: 0 for k in LABELS})
    frames: int = 0
    outage_s: float = 0.0
    rows: int = 0
    person_s: dict[str, float] = field(default_factory=lambda: {k: 0.0 for k in LABELS})

    @property
    def masked_time_share(self) -> float | None:
        """with_mask person-seconds / person-seconds with any label (``None`` without any)."""
        total = sum(self.person_s.values())
        return None if total <= 0 else self.person_s["with_mask"] / total

    @property
    def decided(self) -> int:
        return sum(self.by_label.values())

    @property
    def compliance_rate(self) -> float | None:
        return None if self.decided == 0 else self.by_label["with_mask"] / self.decided

    def add(self, other: Period) -> None:
        self.people_seen += other.people_seen
        for k in LABELS:
            self.by_label[k] += other.by_label[k]
        self.frames += other.frames
        self.outage_s += other.outage_s
        self.rows += other.rows
        for k in LABELS:
            self.person_s[k] += other.person_s[k]


def summarize(intervals: list[dict], by: str = "day", since: float | None = None,
              until: float | None = None) -> list[Period]:
    """Interval payloads -> one :class:`Period` per camera and period, sorted (see the module docstring).

    Without ``since``/``until`` every row counts and only the outage between rows is known. With
    them, ``intervals`` should be every row of the cameras (also those before ``since``: the first
    row ever and the one before the window decide where the window's first outage starts); rows
    starting in ``[since, until)`` are counted, outage is clipped to the window, and the time after a
    camera's last row up to ``until`` is outage.

    >>> rows = [dict(camera="door", start_ts=t, end_ts=t + 60.0, frames=600, people_seen=2, with_mask=1,
    ...              without_mask=1, mask_worn_incorrectly=0, source_state=s)
    ...         for t, s in [(1e9, "live"), (1e9 + 60, "reconnecting"), (1e9 + 300, "live")]]
    >>> [(p.people_seen, p.decided, p.compliance_rate, p.frames, p.outage_s, p.rows) for p in summarize(rows, "day")]
    [(6, 6, 0.5, 1800, 240.0, 3)]
    >>> [(p.rows, p.outage_s) for p in summarize(rows, "day", since=1e9 - 3600, until=1e9 + 1000)]
    [(3, 880.0)]
    """
    if by not in BY:
        raise MaskwatchError(f"--by must be one of {', '.join(BY)}, got {by!r}")
    periods: dict[tuple[str, float], Period] = {}

    def period(camera: str, ts: float) -> Period:
        key = (camera, period_start(ts, by))
        if key not in periods:
            periods[key] = Period(camera, key[1])
        return periods[key]

    lo = -math.inf if since is None else since
    hi = math.inf if until is None else until

    def add_outage(camera: str, a: float, b: float) -> None:
        a, b = max(a, lo), min(b, hi)
        while b > a:  # split at period boundaries
            p = period(camera, a)
            end = min(b, next_period(p.start, by))
            p.outage_s += end - a
            a = end

    per_camera: dict[str, list[dict]] = defaultdict(list)
    for row in intervals:
        per_camera[row["camera"]].append(row)
    for camera, rows in per_camera.items():
        rows.sort(key=lambda r: (r["start_ts"], r["end_ts"]))
        lengths = [r["end_ts"] - r["start_ts"] for r in rows if r["end_ts"] > r["start_ts"]]
        nominal = statistics.median(lengths) if lengths else 0.0
        previous_end = None
        if since is not None and rows[0]["start_ts"] < since:
            previous_end = since  # a row ended before the window: the window's start is the edge
        for row in rows:
            if row["start_ts"] >= hi:
                break
            if row["start_ts"] < lo:  # before the window: only where the window's first gap starts
                previous_end = max(previous_end or lo, row["end_ts"])
                if row.get("source_state") in OUTAGE_STATES:
                    add_outage(camera, row["start_ts"], row["end_ts"])
                continue
            p = period(camera, row["start_ts"])
            p.rows += 1
            p.people_seen += int(row.get("people_seen") or 0)
            p.frames += int(row.get("frames") or 0)
            for k in LABELS:
                p.by_label[k] += int(row.get(k) or 0)
                p.person_s[k] += float(row.get(f"{k}_s") or 0.0)  # null in rows of earlier versions
            if row.get("source_state") in OUTAGE_STATES:
                add_outage(camera, row["start_ts"], row["end_ts"])
            if previous_end is not None and nominal > 0 and row["start_ts"] - previous_end > nominal + 1e-6:
                add_outage(camera, previous_end, row["start_ts"])  # nothing was recording
            previous_end = row["end_ts"] if previous_end is None else max(previous_end, row["end_ts"])
        if until is not None and previous_end is not None and until - previous_end > nominal + TRAIL_SLACK_S:
            add_outage(camera, previous_end, until)  # nothing since its last row
    return [periods[k] for k in sorted(periods)]


def totals_by_camera(periods: list[Period]) -> dict[str, Period]:
    out: dict[str, Period] = {}
    for p in periods:
        out.setdefault(p.camera, Period(p.camera, p.start)).add(p)
    return out


# -- output --------------------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """``0``, ``45s``, ``12m 05s``, ``3h 02m``.

    >>> format_duration(0), format_duration(45.2), format_duration(725), format_duration(3 * 3600 + 150)
    ('0', '45s', '12m 05s', '3h 02m')
    """
    s = int(round(seconds))
    if s <= 0:
        return "0"
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def render_table(periods: list[Period], by: str, title: str):
    """A rich table: one row per camera and period, and each camera's total when it has several."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("camera", no_wrap=True)
    table.add_column(by, no_wrap=True)
    for name in ("people", "with mask", "without mask", "incorrect", "compliance", "masked time", "frames", "outage"):
        table.add_column(name, justify="right")
    totals = totals_by_camera(periods)
    cameras = list(dict.fromkeys(p.camera for p in periods))
    for i, camera in enumerate(cameras):
        mine = [p for p in periods if p.camera == camera]
        for p in mine:
            table.add_row(camera, period_name(p.start, by), *_cells(p))
        if len(mine) > 1:
            table.add_row(camera, "total", *_cells(totals[camera]), style="bold")
        if i < len(cameras) - 1:
            table.add_section()
    return table


def _cells(p: Period) -> list[str]:
    return [str(p.people_seen), *(str(p.by_label[k]) for k in LABELS), _rate(p.compliance_rate),
            _rate(p.masked_time_share), str(p.frames), format_duration(p.outage_s)]


def _check_output(path: Path, what: str, is_ours) -> None:
    """Refuse to overwrite a file that is not an earlier report (an interval log, a video)."""
    if path.is_dir():
        raise MaskwatchError(f"cannot write {what} {path}: it is a directory")
    if path.exists():
        try:
            ours = is_ours(path)
        except OSError as e:
            raise MaskwatchError(f"cannot read {path}: {e.strerror or e}") from None
        if not ours:
            raise MaskwatchError(f"{path} exists and is not a maskwatch report {what}: use another --{what} file")


def _is_report_csv(path: Path) -> bool:
    with open(path, "rb") as fh:
        first = fh.readline(4096).decode("utf-8", "replace").rstrip("\r\n")
    return first in (",".join(REPORT_COLUMNS), ",".join(_OLD_REPORT_COLUMNS)) or path.stat().st_size == 0


def _is_png(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89PNG\r\n\x1a\n" or path.stat().st_size == 0


def write_csv(periods: list[Period], path: str | Path, by: str) -> None:
    """One CSV row per camera and period (:data:`REPORT_COLUMNS`)."""
    path = Path(path)
    _check_output(path, "csv", _is_report_csv)

    def write(fh) -> None:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(REPORT_COLUMNS)
        for p in periods:
            rate = p.compliance_rate
            w.writerow([p.camera, period_name(p.start, by),
                        iso_time(p.start),
                        p.people_seen, *(p.by_label[k] for k in LABELS), p.decided,
                        "" if rate is None else f"{rate:.3f}", p.frames, f"{p.outage_s:.0f}", p.rows,
                        *(f"{p.person_s[k]:.1f}" for k in LABELS),
                        "" if p.masked_time_share is None else f"{p.masked_time_share:.3f}"])

    rewrite_atomic(path, write, "csv")  # a temporary file renamed: no half-written report


def check_matplotlib() -> None:
    """One line naming the fix when matplotlib (the ``train`` extra, not the main install) is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MaskwatchError("--png needs matplotlib, which is not installed: pip install matplotlib") from None


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def camera_styles(n: int) -> list[dict]:
    """Line styles for ``n`` cameras in one compliance chart: each its own marker shape, the
    earlier ones larger, hollow and drawn below, so cameras with equal values stay visible (a big
    ring around a smaller filled marker) instead of hiding each other's markers.

    >>> [(s["marker"], s["markersize"], s["markerfacecolor"]) for s in camera_styles(3)]
    [('o', 11.0, 'none'), ('s', 8.5, 'none'), ('^', 6.0, None)]
    >>> len({(s["marker"], s["markersize"]) for s in camera_styles(12)}) == 12
    True
    """
    styles = []
    for i in range(n):
        size = max(4.0, 11.0 - 2.5 * i) if n > 1 else 7.0
        last = i == n - 1
        styles.append({"marker": MARKERS[i % len(MARKERS)], "markersize": size - 0.5 * (i // len(MARKERS)),
                       "markerfacecolor": None if last or n == 1 else "none", "markeredgewidth": 1.6,
                       "linestyle": ("-", "--", ":", "-.")[i % 4], "zorder": 2 + i})
    return styles


def write_png(periods: list[Period], path: str | Path, by: str, title: str) -> None:
    """Compliance per camera over time (top) and people per label, all cameras stacked (bottom)."""
    check_matplotlib()
    path = Path(path)
    _check_output(path, "png", _is_png)
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    starts = sorted({p.start for p in periods})
    x = {s: datetime.fromtimestamp(s + (1800 if by == "hour" else 43200)) for s in starts}  # mid-period
    fig = Figure(figsize=(10, 6.5), dpi=120, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    cameras = list(dict.fromkeys(p.camera for p in periods))
    for camera, style in zip(cameras, camera_styles(len(cameras))):
        mine = [p for p in periods if p.camera == camera and p.compliance_rate is not None]
        if mine:
            top.plot([x[p.start] for p in mine], [100 * p.compliance_rate for p in mine], label=camera, **style)
    top.set_ylim(0, 105)
    top.set_ylabel("compliance (% with mask)")
    top.grid(alpha=0.3)
    if top.get_legend_handles_labels()[0]:
        top.legend(loc="best", fontsize="small")
    top.set_title(title, loc="left", fontsize="medium")

    width = 0.8 / 24 if by == "hour" else 0.8  # matplotlib dates are in days
    base = [0] * len(starts)
    for label in ("with_mask", "mask_worn_incorrectly", "without_mask"):
        counts = [sum(p.by_label[label] for p in periods if p.start == s) for s in starts]
        bottom.bar([x[s] for s in starts], counts, width=width, bottom=base, color=LABEL_COLORS[label],
                   label=label.replace("_", " "))
        base = [b + c for b, c in zip(base, counts)]
    bottom.set_ylabel("people (all cameras)")
    bottom.set_ylim(0, max(max(base, default=0), 1) * 1.4)  # room for the legend above the bars
    bottom.legend(loc="upper left", fontsize="small", ncols=3)
    bottom.grid(axis="y", alpha=0.3)
    days = (starts[-1] - starts[0]) / 86400 + 1
    if by == "day" and days <= 62:  # one tick per day (or every few days), on midnights
        bottom.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, math.ceil(days / 12))))
        bottom.xaxis.set_major_formatter(mdates.DateFormatter("%a %d %b"))
    else:
        locator = mdates.AutoDateLocator()
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    span = (timedelta(minutes=30) if by == "hour" else timedelta(hours=12))
    bottom.set_xlim(x[starts[0]] - span, x[starts[-1]] + span)

    def write(fh) -> None:
        fig.savefig(fh, format="png")

    rewrite_atomic(path, write, "png", binary=True)


# -- the command ---------------------------------------------------------------------------------


def build_parser(parser_class=argparse.ArgumentParser, prog: str = "maskwatch report") -> argparse.ArgumentParser:
    p = parser_class(
        prog=prog,
        description="Compliance per camera per day (or hour) from the history database of 'maskwatch serve' "
                    "or 'maskwatch aggregate': people seen, people per label, compliance, frames, outage time.",
    )
    p.add_argument("--db", required=True, metavar="URL",
                   help="the history database: an SQLite file (maskwatch.db) or an SQLAlchemy URL "
                        "(postgresql+psycopg://user@host/db; a password in the URL is never printed)")
    p.add_argument("--since", default=DEFAULT_SINCE, type=_since_type, metavar="WHEN",
                   help="from this long ago (30m, 24h, 7d, 2w) or this local date/time (2026-11-01, "
                        f"2026-11-01T08:00); default {DEFAULT_SINCE}")
    p.add_argument("--until", type=_since_type, metavar="WHEN",
                   help="up to this long ago or this local date/time (same forms as --since); default now. "
                        "A camera's time after its last row up to here counts as outage")
    p.add_argument("--by", choices=BY, default="day", help="one row per camera per day (default) or hour")
    p.add_argument("--camera", metavar="NAME", help="only this camera")
    p.add_argument("--csv", type=Path, metavar="FILE", help="also write the rows to this CSV file")
    p.add_argument("--png", type=Path, metavar="FILE",
                   help="also draw a chart (compliance per camera over time, people per label) into this PNG "
                        "(needs matplotlib)")
    p.add_argument("--debug", action="store_true", help="log details and show tracebacks")
    return p


def run(args, stop_signals=None) -> int:
    """``maskwatch report``: see the module docstring. A bad input is one ``MaskwatchError`` line."""
    if stop_signals is not None:
        stop_signals.restore()  # a short read: Ctrl+C simply interrupts it
    from rich.console import Console

    # lazy: maskwatch.history imports SQLAlchemy (~0.6 s): `maskwatch report --help` and the desktop
    # app's history view (which imports summarize) do not need it
    from maskwatch.history import History

    now = time.time()
    since = parse_since(args.since, now=now)
    until = now if getattr(args, "until", None) is None else parse_since(args.until, now=now)
    if getattr(args, "until", None) is not None and until <= since:
        raise MaskwatchError(f"--until ({args.until}) must be later than --since ({args.since})")
    if args.png is not None:  # before reading anything
        check_matplotlib()
        _check_output(args.png, "png", _is_png)
    if args.csv is not None:
        _check_output(args.csv, "csv", _is_report_csv)
    with History(args.db, create=False) as history:
        if args.camera is not None:
            cameras = history.cameras()
            if args.camera not in cameras:
                known = ", ".join(cameras) if cameras else "none"
                raise MaskwatchError(f"no camera {args.camera!r} in {history.shown_url} (cameras: {known})")
        # every row, not only the window's: a camera's first row ever and its last row before the
        # window decide whether the window starts with an outage
        every = history.intervals(camera=args.camera)
        shown_url = history.shown_url
    rows = [r for r in every if since <= r["start_ts"] < until]
    since_text = datetime.fromtimestamp(since).strftime("%Y-%m-%d %H:%M")
    console = Console(highlight=False)
    if not console.is_terminal:  # piped or redirected: whole names and dates, not 80-column ellipses
        console = Console(highlight=False, width=200)
    periods = summarize(every, args.by, since=since, until=until)
    if not periods:
        # nothing went wrong: nothing was recorded (exit 0; a nightly job must not page anyone for a
        # closed site), and no empty files are left to mistake for a report
        what = f"of camera {args.camera!r} " if args.camera else ""
        console.print(f"no intervals {what}since {since_text} in {shown_url}; nothing written")
        return 0
    until_text = datetime.fromtimestamp(until).strftime("%Y-%m-%d %H:%M")
    title = f"maskwatch: compliance per camera per {args.by}, {since_text} to {until_text}"
    if not rows:
        console.print(f"no intervals since {since_text}: every camera was out (see the outage column)")
    console.print(render_table(periods, args.by, title))
    if args.csv is not None:
        write_csv(periods, args.csv, args.by)
        console.print(f"wrote {args.csv}")
    if args.png is not None:
        write_png(periods, args.png, args.by, title)
        console.print(f"wrote {args.png}")
    return 0
