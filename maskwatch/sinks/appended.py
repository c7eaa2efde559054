"""Append-only text files: opened without clobbering, flushed (and optionally fsynced) per record.

A crash, SIGKILL or power cut loses at most the record being written; an existing file is never
truncated. Shared by the CSV interval log and the JSONL event log.
"""

from __future__ import annotations

import os
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
