"""``History``: the history database of a site (interval rows and events per camera), also the MQTT outbox.

One SQLAlchemy Core schema, two tables, for SQLite (the default: one file, no server) and any
other SQLAlchemy URL (``postgresql+psycopg://user@host/db`` for a site whose history is shared):

- ``intervals``: one row per closed interval of one camera (the CSV log's columns, plus ``id``,
  ``camera``, epoch ``start_ts``/``end_ts`` and the ``model`` that labelled it);
- ``events``: one row per counter event (``new`` person, ``update`` = label decided, ``end`` =
  track ended), with the path of the snapshot JPEG saved for it, if any.

Both have ``published`` (has the MQTT broker acknowledged it?) and ``written_at``. A worker writes a
row first (``published`` false) and the publisher sends what :meth:`History.pending` returns, then
:meth:`History.mark_published` on the broker's PUBACK: a broker outage leaves rows pending and loses
nothing. Each row's ``id`` (uuid4 hex) is made once when it is written, so a republished row keeps
its id and a consumer (``maskwatch aggregate``, :meth:`History.upsert`) drops duplicates by it.

The payloads (:func:`interval_payload`, :func:`event_payload`) are the MQTT message bodies and what
:meth:`History.intervals` / :meth:`History.events` return: one shape for the broker and the database.

SQLite: WAL mode (a reader never blocks the writers), ``busy_timeout`` (several worker processes
writing one file wait for each other's short transactions instead of failing); every write is one
short transaction that starts with its write.

>>> import tempfile, pathlib
>>> from maskwatch.frames import SourceState
>>> from maskwatch.results import IntervalSummary
>>> history = History(pathlib.Path(tempfile.mkdtemp()) / "history.db")
>>> row = IntervalSummary(start=1e9, end=1e9 + 60, frames=1500, faces=3000, people_seen=4,
...                       by_label={"with_mask": 3, "without_mask": 1, "mask_worn_incorrectly": 0},
...                       fps=25.0, dropped_frames=0, source_state=SourceState.LIVE)
>>> payload = history.add_interval("entrance", row)
>>> payload["people_seen"], payload["compliance_rate"], payload["source_state"], len(payload["id"])
(4, 0.75, 'live', 32)
>>> [kind for kind, p in history.pending()]
['interval']
>>> history.mark_published([payload["id"]]); history.pending()
[]
>>> history.upsert("interval", payload), history.intervals() == [payload]
(False, True)
>>> history.close()
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as sa_postgresql
from sqlalchemy.dialects import sqlite as sa_sqlite

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.records import (  # noqa: F401 - re-exported: the record shapes live in maskwatch.records
    EVENT_FIELDS,
    EVENT_TYPES,
    INTERVAL_FIELDS,
    TIME_FIELDS,
    RowRejected,
    event_payload,
    interval_payload,
    new_id,
    payload_time,
)
from maskwatch.records import (
    checked_row as _checked,
)
from maskwatch.sources.spec import redact

if TYPE_CHECKING:
    from maskwatch.results import Event, IntervalSummary

log = logging.getLogger(__name__)

KINDS = ("interval", "event")
"""The two kinds of rows (``pending`` returns them, ``upsert`` takes them)."""

BUSY_TIMEOUT_MS = 30_000
"""How long an SQLite writer waits for another process's transaction before giving up (``History(busy_timeout_s=)``)."""


class DatabaseUnavailable(MaskwatchError):
    """A database error that may pass by itself: the server is down or restarting, the connection
    dropped, the SQLite file is locked by another writer for longer than the busy timeout. The same
    write may succeed later (:class:`~maskwatch.sinks.database.DatabaseSink` keeps the row and tries
    again; ``maskwatch aggregate`` retries before giving up)."""


ADDED_COLUMNS: dict[str, tuple[str, ...]] = {"intervals": TIME_FIELDS, "events": ("previous", "frame_index")}
"""Columns added after the first release: a database without them gets them when it is opened."""

metadata = sa.MetaData()

intervals_table = sa.Table(
    "intervals", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("camera", sa.Text, nullable=False),  # free text: Text, never a length a long value overflows
    sa.Column("start", sa.Text, nullable=False),
    sa.Column("end", sa.Text, nullable=False),
    sa.Column("start_ts", sa.Float, nullable=False),
    sa.Column("end_ts", sa.Float, nullable=False),
    sa.Column("frames", sa.Integer, nullable=False),
    sa.Column("faces", sa.Integer, nullable=False),
    sa.Column("people_seen", sa.Integer, nullable=False),
    *(sa.Column(label, sa.Integer, nullable=False) for label in LABELS),
    sa.Column("compliance_rate", sa.Float, nullable=True),
    sa.Column("fps", sa.Float, nullable=False),
    sa.Column("dropped_frames", sa.Integer, nullable=False),
    sa.Column("source_state", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=True),  # "A -> B -> C" after several live swaps grows
    *(sa.Column(name, sa.Integer if name == "label_changes" else sa.Float, nullable=True) for name in TIME_FIELDS),
    sa.Column("published", sa.Boolean, nullable=False, default=False),
    sa.Column("written_at", sa.Float, nullable=False),
    sa.Index("ix_intervals_camera_start", "camera", "start_ts"),
    sa.Index("ix_intervals_published", "published"),
)

events_table = sa.Table(
    "events", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("type", sa.String(10), nullable=False),
    sa.Column("camera", sa.Text, nullable=False),
    sa.Column("track_id", sa.Integer, nullable=False),
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("time", sa.Text, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("box", sa.JSON, nullable=True),
    sa.Column("snapshot", sa.Text, nullable=True),
    sa.Column("previous", sa.Text, nullable=True),
    sa.Column("frame_index", sa.BigInteger, nullable=True),
    sa.Column("published", sa.Boolean, nullable=False, default=False),
    sa.Column("written_at", sa.Float, nullable=False),
    sa.Index("ix_events_camera_ts", "camera", "ts"),
    sa.Index("ix_events_published", "published"),
)

_TABLES = {"interval": intervals_table, "event": events_table}
_FIELDS = {"interval": INTERVAL_FIELDS, "event": EVENT_FIELDS}


# -- URLs --------------------------------------------------------------------------------------


def database_url(url: str | os.PathLike | sa.URL) -> sa.URL:
    """The SQLAlchemy URL of ``url``: a plain path (``history.db``) means an SQLite file.

    >>> database_url("site/history.db").render_as_string()
    'sqlite:///site/history.db'
    >>> database_url("sqlite:///~/history.db").database == os.path.expanduser("~/history.db")
    True
    >>> database_url("postgresql+psycopg://mw:s3cret@db.local/maskwatch").render_as_string()
    'postgresql+psycopg://mw:***@db.local/maskwatch'
    >>> database_url("not a url://x")
    Traceback (most recent call last):
    ...
    maskwatch.errors.MaskwatchError: not a database URL: 'not a url://x' (give an SQLAlchemy URL such as sqlite:///maskwatch.db or postgresql+psycopg://user@host/db, or a file path)
    """
    if isinstance(url, sa.URL):  # str() of a URL hides its password: never round-trip through it
        return _home_expanded(url)
    if isinstance(url, os.PathLike) or "://" not in str(url):
        path = str(os.fspath(url))
        if not path.strip():
            raise MaskwatchError("no database given (an SQLite file path or an SQLAlchemy URL)")
        return sa.URL.create("sqlite", database=os.path.expanduser(path))
    try:
        parsed = sa.make_url(str(url))
    except (sa_exc.ArgumentError, ValueError):
        raise MaskwatchError(
            f"not a database URL: {redact(url)!r} (give an SQLAlchemy URL such as sqlite:///maskwatch.db"
            " or postgresql+psycopg://user@host/db, or a file path)") from None
    return _home_expanded(parsed)


def _home_expanded(url: sa.URL) -> sa.URL:
    """An SQLite URL's ``~`` is the home folder (``sqlite:///~/x.db``), not a folder named ``~``."""
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database.startswith("~"):
        return url.set(database=os.path.expanduser(database))
    return url


def shown(url: sa.URL) -> str:
    """``url`` for messages and logs: the password hidden."""
    return url.render_as_string(hide_password=True)


# -- the database --------------------------------------------------------------------------------


class History:
    """The history database (see the module docstring); safe to share between threads of a process.

    ``url``: ``"sqlite:///x.db"``, a plain path (an SQLite file), or any SQLAlchemy URL. Tables are
    created if missing; with ``create=False`` (a reader such as ``maskwatch report``) a missing
    SQLite file or missing tables are an error instead. Every failure (bad URL, missing driver, unreachable server, unwritable file,
    a file that is not a database, a database with other tables of these names) is a one-line
    :class:`MaskwatchError` naming :attr:`shown_url`, never the password.
    """

    def __init__(self, url: str | os.PathLike | sa.URL, *, create: bool = True,
                 busy_timeout_s: float = BUSY_TIMEOUT_MS / 1000):
        self.url = database_url(url)
        self.busy_timeout_s = float(busy_timeout_s)
        self.shown_url: str = shown(self.url)
        self._closed = False
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            database = self.url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                self._prepare_sqlite_file(Path(database), create)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": self.busy_timeout_s}
        else:
            kwargs["pool_pre_ping"] = True  # a server restarted overnight: reconnect, don't fail the next write
        try:
            self.engine = sa.create_engine(self.url, **kwargs)
        except (sa_exc.NoSuchModuleError, sa_exc.ArgumentError) as e:
            raise MaskwatchError(f"cannot use database {self.shown_url}: unknown database kind ({self._reason(e)})") from None
        except ImportError as e:
            hint = " (pip install 'maskwatch[postgres]')" if self.url.get_backend_name() == "postgresql" else ""
            raise MaskwatchError(f"cannot use database {self.shown_url}: its driver is not installed: {e}{hint}") from None
        if self.is_sqlite:
            busy_ms = max(0, round(self.busy_timeout_s * 1000))
            sa_event.listen(self.engine, "connect", lambda dbapi_connection, _record: _sqlite_pragmas(dbapi_connection, busy_ms))
        with self._errors("open"):
            self._create_tables(create)

    # -- public API ---------------------------------------------------------------------------

    def add_interval(self, camera: str, summary: IntervalSummary) -> dict:
        """Store one closed interval of ``camera`` (unpublished); returns its payload (with its new ``id``)."""
        payload = interval_payload(camera, summary)
        self._insert("interval", payload, published=False)
        return payload

    def add_event(self, camera: str, event: Event, snapshot: str | os.PathLike | None = None) -> dict:
        """Store one event of ``camera`` (unpublished) with the path of its snapshot; returns its payload."""
        payload = event_payload(camera, event, snapshot)
        self._insert("event", payload, published=False)
        return payload

    def write(self, kind: str, payload: dict) -> bool:
        """Store a payload made earlier (:func:`interval_payload` / :func:`event_payload`) unpublished,
        unless its ``id`` is there already; ``True`` if it was new. For a writer that retries the same
        row after a failure (:class:`~maskwatch.sinks.database.DatabaseSink`): a write that committed
        but whose answer was lost is not stored twice."""
        if kind not in _TABLES:
            raise MaskwatchError(f"unknown row kind {kind!r} (known: {', '.join(KINDS)})")
        return self._insert(kind, payload, published=False)

    def pending(self, limit: int = 500) -> list[tuple[str, dict]]:
        """Up to ``limit`` rows not yet published, oldest written first: ``("interval"|"event", payload)``."""
        limit = max(int(limit), 0)
        rows: list[tuple[float, str, dict]] = []
        with self._errors("read"), self.engine.connect() as conn:
            for kind, table in _TABLES.items():
                query = (sa.select(table).where(table.c.published == sa.false())
                         .order_by(table.c.written_at, table.c.id).limit(limit))
                rows.extend((r.written_at, kind, self._payload(kind, r)) for r in conn.execute(query))
        rows.sort(key=lambda r: r[0])
        return [(kind, payload) for _, kind, payload in rows[:limit]]

    def mark_published(self, ids: Iterable[str]) -> None:
        """Mark the rows with these ids published (unknown ids are ignored)."""
        ids = [str(i) for i in ids]
        if not ids:
            return
        with self._errors("write"), self.engine.begin() as conn:
            for start in range(0, len(ids), 500):  # well under every database's bound-parameter limit
                chunk = ids[start:start + 500]
                for table in _TABLES.values():
                    conn.execute(sa.update(table).where(table.c.id.in_(chunk)).values(published=True))

    def upsert(self, kind: str, payload: dict) -> bool:
        """Insert a row received from elsewhere (stored as published) unless its ``id`` exists.

        For ``maskwatch aggregate``: the broker delivers QoS 1 messages at least once, so a
        duplicate is expected and ignored. Returns ``True`` if the row was new. A payload that is
        not a row of this ``kind`` is a ``MaskwatchError`` naming what is wrong.
        """
        if kind not in _TABLES:
            raise MaskwatchError(f"unknown row kind {kind!r} (known: {', '.join(KINDS)})")
        return self._insert(kind, _checked(kind, payload), published=True)

    def intervals(self, since: float | None = None, camera: str | None = None) -> list[dict]:
        """Interval payloads ending after ``since`` (epoch seconds), of one ``camera`` or all, oldest first."""
        t = intervals_table
        query = sa.select(t).order_by(t.c.start_ts, t.c.camera, t.c.written_at)
        if since is not None:
            query = query.where(t.c.end_ts > float(since))
        if camera is not None:
            query = query.where(t.c.camera == camera)
        return self._select("interval", query)

    def events(self, since: float | None = None, camera: str | None = None) -> list[dict]:
        """Event payloads at or after ``since`` (epoch seconds), of one ``camera`` or all, oldest first."""
        t = events_table
        query = sa.select(t).order_by(t.c.ts, t.c.camera, t.c.written_at)
        if since is not None:
            query = query.where(t.c.ts >= float(since))
        if camera is not None:
            query = query.where(t.c.camera == camera)
        return self._select("event", query)

    def cameras(self) -> list[str]:
        """The cameras that have interval rows, sorted."""
        with self._errors("read"), self.engine.connect() as conn:
            return sorted(conn.execute(sa.select(intervals_table.c.camera).distinct()).scalars())

    def close(self) -> None:
        """Release the connections (the file stays consistent: every write was committed)."""
        if not self._closed:
            self._closed = True
            self.engine.dispose()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"History({self.shown_url!r})"

    # -- internals ------------------------------------------------------------------------------

    def _insert(self, kind: str, payload: dict, published: bool) -> bool:
        table = _TABLES[kind]
        row = {k: payload.get(k) for k in _FIELDS[kind]}
        row["published"] = published
        row["written_at"] = time.time()
        dialect = self.engine.dialect.name
        try:
            return self._insert_row(table, row, dialect)
        except (TypeError, ValueError, ArithmeticError) as e:  # a value the driver cannot bind
            raise RowRejected(f"cannot write {kind} to database {self.shown_url}: {type(e).__name__}: {e}") from None

    def _insert_row(self, table: sa.Table, row: dict, dialect: str) -> bool:
        with self._errors("write", row=True):
            if dialect in ("sqlite", "postgresql"):  # one atomic statement, no read-then-write race
                module = sa_sqlite if dialect == "sqlite" else sa_postgresql
                stmt = (module.insert(table).values(**row).on_conflict_do_nothing(index_elements=["id"])
                        .returning(table.c.id))  # rowcount is not reliable for this on every driver
                with self.engine.begin() as conn:
                    return conn.execute(stmt).first() is not None
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.insert(table).values(**row))
                return True
            except sa_exc.IntegrityError:
                with self.engine.connect() as conn:
                    if conn.execute(sa.select(table.c.id).where(table.c.id == row["id"])).first() is not None:
                        return False
                raise

    def _select(self, kind: str, query) -> list[dict]:
        with self._errors("read"), self.engine.connect() as conn:
            return [self._payload(kind, r) for r in conn.execute(query)]

    @staticmethod
    def _payload(kind: str, row) -> dict:
        m = row._mapping
        payload = {k: m[k] for k in _FIELDS[kind]}
        if kind == "event" and payload["box"] is not None:
            payload["box"] = [float(v) for v in payload["box"]]
        return payload

    def _create_tables(self, create: bool) -> None:
        for attempt in range(3 if create else 0):
            try:
                metadata.create_all(self.engine, checkfirst=True)
                break
            except (sa_exc.OperationalError, sa_exc.ProgrammingError, sa_exc.IntegrityError):
                # another process created the tables between our check and our CREATE: look again
                if attempt == 2:
                    raise
                time.sleep(0.05 * (attempt + 1))
        inspector = sa.inspect(self.engine)
        for table in metadata.sorted_tables:
            if not create and not inspector.has_table(table.name):
                raise MaskwatchError(f"database {self.shown_url} has no maskwatch history (no table {table.name!r})")
            have = {c["name"] for c in inspector.get_columns(table.name)}
            self._add_columns(table, [c for c in ADDED_COLUMNS.get(table.name, ()) if c not in have])
            missing = [c.name for c in table.columns if c.name not in have and c.name not in ADDED_COLUMNS.get(table.name, ())]
            if missing:
                raise MaskwatchError(
                    f"database {self.shown_url} has a table {table.name!r} that is not maskwatch's history"
                    f" (no column {', '.join(missing)}); use another database")

    def _add_columns(self, table: sa.Table, names: list[str]) -> None:
        """Upgrade a database written by an earlier version: its missing (nullable) columns are added."""
        if not names:
            return
        quote = self.engine.dialect.identifier_preparer.quote
        for name in names:
            kind = table.c[name].type.compile(dialect=self.engine.dialect)
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.text(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(name)} {kind}"))
            except (sa_exc.OperationalError, sa_exc.ProgrammingError):
                # another process (a second camera's worker) added it first: fine if it is there now
                if name not in {c["name"] for c in sa.inspect(self.engine).get_columns(table.name)}:
                    raise
        log.info("database %s: added column(s) %s to %s", self.shown_url, ", ".join(names), table.name)

    def _prepare_sqlite_file(self, path: Path, create: bool) -> None:
        if path.is_dir():
            raise MaskwatchError(f"cannot open database {self.shown_url}: {path} is a directory")
        if not create:
            if not path.is_file():
                raise MaskwatchError(f"no database {self.shown_url}: {path} does not exist")
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MaskwatchError(f"cannot open database {self.shown_url}: cannot create folder {path.parent}: "
                                 f"{e.strerror or e}") from None

    @contextmanager
    def _errors(self, doing: str, row: bool = False) -> Iterator[None]:
        """Database errors -> one-line MaskwatchError naming the shown URL, never the password:
        :class:`DatabaseUnavailable` when it may pass (:meth:`_transient`), :class:`RowRejected`
        when ``row`` (one row's write) and the values were refused, else a plain MaskwatchError."""
        if self._closed:
            raise MaskwatchError(f"database {self.shown_url} is closed")
        try:
            yield
        except MaskwatchError:
            raise
        except sa_exc.SQLAlchemyError as e:
            kind = MaskwatchError
            if self._transient(e):
                kind = DatabaseUnavailable
            elif row and self._row_error(e):
                kind = RowRejected
            raise kind(f"cannot {doing} database {self.shown_url}: {self._reason(e)}") from None
        except OSError as e:
            raise MaskwatchError(f"cannot {doing} database {self.shown_url}: {e.strerror or e}") from None

    def _transient(self, error: BaseException) -> bool:
        """A connection or lock problem that may pass (the same statement may work later)."""
        if isinstance(error, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):
            return True
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
        if not isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return False
        if not self.is_sqlite:  # PostgreSQL & co.: OperationalError is the connection, the server, a lock
            return True
        text = str(getattr(error, "orig", error)).lower()  # SQLite: not "no such table" (the schema)
        return any(word in text for word in _SQLITE_TRANSIENT)

    def _row_error(self, error: BaseException) -> bool:
        """An error caused by the row's values, not by the database."""
        if isinstance(error, (sa_exc.IntegrityError, sa_exc.DataError)):
            return True
        if isinstance(error, sa_exc.StatementError) and not isinstance(error, sa_exc.DBAPIError):
            return True  # SQLAlchemy could not bind or process a value
        # SQLite reports a value it cannot bind as ProgrammingError/InterfaceError
        return self.is_sqlite and isinstance(error, (sa_exc.ProgrammingError, sa_exc.InterfaceError))

    def _reason(self, error: BaseException) -> str:
        """The driver's own first line (no SQL, no parameters), with any password hidden."""
        cause = getattr(error, "orig", None) or error
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        text = lines[0] if lines else type(cause).__name__
        password = self.url.password
        if password:
            text = text.replace(str(password), "***")
        return redact(text)


_SQLITE_TRANSIENT = ("locked", "busy", "disk i/o", "unable to open", "disk is full", "readonly database")
"""Words of the SQLite errors that may pass (another writer, a full or unmounted disk)."""


def _sqlite_pragmas(dbapi_connection, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    """Each new SQLite connection: wait for other writers, WAL (readers never block writers)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")  # persistent in the file; a no-op once set
        cursor.execute("PRAGMA synchronous = FULL")  # a committed row survives a power cut
    finally:
        cursor.close()
