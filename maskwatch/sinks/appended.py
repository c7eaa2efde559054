r"""Append-only text files: opened without clobbering, flushed (and optionally fsynced) per record.

A crash, SIGKILL or power cut loses at most the record being written; an existing file is never
truncated. Shared by the CSV interval log and the JSONL event log.

Also the two helpers of every small CSV maskwatch rewrites or appends to (``collected.csv``,
``decisions.csv``, the report's files): :func:`rewrite_atomic` replaces a file whole or not at
all, and :func:`read_csv_records` reads one back telling a torn last line (a crash while
appending) and rows of the wrong length apart, so the caller can repair the file before it
appends to it again (an append onto a torn line would glue two rows into one bad row).

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "t.csv"
>>> _ = path.write_text("a,b\n1,2\n3\n4,5\n6,")   # a short row, and a torn last line
>>> r = read_csv_records(path, 2)
>>> r.header, r.rows, r.dropped, r.torn
(['a', 'b'], [['1', '2'], ['4', '5']], 1, True)
>>> rewrite_atomic(path, lambda fh: fh.write("a,b\n"), "test file"); path.read_text()
'a,b\n'
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from maskwatch.errors import MaskwatchError
from maskwatch.sinks.base import BaseSink


def open_append(path: Path, what: str):
    """``path`` opened for appending text (its folder created); one-line ``MaskwatchError`` if not."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a", encoding="utf-8", newline="")
    except IsADirectoryError:
        raise MaskwatchError(f"cannot write {what} {path}: it is a directory") from None
    except OSError as e:
        raise MaskwatchError(f"cannot write {what} {path}: {e.strerror or e}") from None


def sync(fh) -> None:
    """Flush Python's buffer and ask the OS to put the bytes on disk."""
    fh.flush()
    try:
        os.fsync(fh.fileno())
    except OSError:  # pipes, some network file systems
        pass


class AppendedFile(BaseSink):
    """Base of the append-only logs: an idempotent ``close`` and context-manager use."""

    _fh = None

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass


def writable_folder(folder: Path, what: str) -> Path:
    """Create ``folder`` if missing and check that files can be written in it; a one-line
    ``MaskwatchError`` naming ``what`` (``"snapshot folder"``) otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MaskwatchError(f"cannot create {what} {folder}: {e.strerror or e}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MaskwatchError(f"cannot write to {what} {folder}: permission denied")
    return folder



def new_file_mode() -> int:
    """The mode of every file maskwatch writes: what a plain ``open()`` gives, ``0o666`` less the
    process's umask (``0o644`` with the usual ``022``; the systemd unit's ``UMask=0027`` gives
    ``0o640``). Files written through a temporary file (``mkstemp`` makes them ``0o600``) are set to it
    too, so logs, recordings, crops and decisions all follow one rule: restrict them with the umask.

    >>> new_file_mode() & 0o777 == new_file_mode() and new_file_mode() & 0o111 == 0
    True
    """
    umask = _umask()
    return 0o666 & ~umask


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask() sets it, racing other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def rewrite_atomic(path: str | os.PathLike, write: Callable, what: str, binary: bool = False) -> None:
    """Replace ``path`` with what ``write(fh)`` writes, all or nothing.

    A temporary file in the same folder (so the rename stays on one file system) is written,
    flushed and fsynced, then renamed over ``path`` (``os.replace``: atomic on POSIX and Windows);
    on any error the temporary file is removed and ``path`` is untouched. ``binary``: ``fh`` takes
    bytes, else UTF-8 text with no newline translation. An ``OSError`` becomes the one-line
    ``MaskwatchError`` ``cannot write <what> <path>: <reason>``.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.chmod(tmp, new_file_mode())  # mkstemp's 0600 would make this file differ from the others
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as fh:
            write(fh)
            sync(fh)
        os.replace(tmp, path)
        tmp = None
        _sync_folder(path.parent)
    except IsADirectoryError:
        raise MaskwatchError(f"cannot write {what} {path}: it is a directory") from None
    except OSError as e:
        raise MaskwatchError(f"cannot write {what} {path}: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _sync_folder(folder: Path) -> None:
    """fsync a folder so a rename in it survives a power cut (POSIX; elsewhere a no-op)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class CsvRecords:
    """A CSV file read back: ``header`` (``None``: empty or missing), the ``rows`` of the right
    width, ``dropped`` (rows of another width, left out) and ``torn`` (the file ended inside a
    row, which is left out too)."""

    header: list[str] | None = None
    rows: list[list[str]] = field(default_factory=list)
    dropped: int = 0
    torn: bool = False

    @property
    def damaged(self) -> bool:
        """Whether the file should be rewritten before it is appended to."""
        return self.torn or self.dropped > 0


def read_csv_records(path: str | os.PathLike, width: int) -> CsvRecords:
    """Read ``path`` (a missing file is empty). Raises ``OSError``/``UnicodeDecodeError`` for the
    caller to word; the header is returned as it is, for the caller to check."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except FileNotFoundError:
        return CsvRecords()
    out = CsvRecords()
    if text and not text.endswith(("\n", "\r")):  # a crash while appending: the last line is partial
        out.torn = True
        cut = max(text.rfind("\n"), text.rfind("\r"))
        text = text[:cut + 1] if cut >= 0 else ""
    reader = csv.reader(io.StringIO(text, newline=""))
    out.header = next(reader, None)
    for row in reader:
        if len(row) == width:
            out.rows.append(row)
        elif row:  # a blank line is no row
            out.dropped += 1
    return out


def read_our_csv(path: Path, columns: tuple[str, ...], other_header: str) -> CsvRecords:
    """:func:`read_csv_records` of a CSV we write with header ``columns``: a read error, or a file
    with another header (``"<path> <other_header> (expected: ...)"``), is a one-line ``MaskwatchError``."""
    try:
        records = read_csv_records(path, len(columns))
    except (OSError, UnicodeDecodeError) as e:
        raise MaskwatchError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    if records.header is not None and tuple(records.header) != tuple(columns):
        raise MaskwatchError(f"{path} {other_header} (expected: {','.join(columns)})")
    return records


def rewrite_csv(path: Path, columns: tuple[str, ...], rows, what: str) -> None:
    """Write ``path`` anew, atomically (:func:`rewrite_atomic`): the header ``columns``, then the
    mappings ``rows`` in that column order."""
    def write(fh) -> None:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([row[c] for c in columns] for row in rows)

    rewrite_atomic(path, write, what)
