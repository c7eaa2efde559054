"""Retention: snapshots and recordings older than ``retain_days`` are deleted (a site keeps faces).

Only files maskwatch wrote are touched, recognised by name: in the ``snapshots`` folder the
:class:`~maskwatch.sinks.snapshots.SnapshotSaver` names (``20261121T235959+0100_track7_without_mask.jpg``;
every name and its pattern are made in :mod:`maskwatch.sinks.names`) and their ``.part`` leftovers; next to
``save_video`` (``out/door.mp4``) the video itself, its numbered variants (``door-1.mp4``), the
per-run recordings of ``maskwatch serve`` (``door-20261121T235959.mp4``) and abandoned temporary
recordings (``.maskwatch-recording-*.mp4``); in the desktop app's folders, its Record videos
and Ctrl+S snapshots (``maskwatch_20261121_235959.mp4`` / ``.png``, :data:`GUI_NAMES`,
:func:`purge_gui_outputs`, called by the window when a run or a recording starts). A photo a
person put in the same folder stays. The age is the file's modification time. The review loop's
collect folder is not purged here but by the collector itself
(:class:`~maskwatch.sinks.collect.CollectSink` with ``retain_days``): it deletes a crop's row
before the crop, and a purge from outside would leave rows without their crops while the
collector has the file open.

:class:`RetentionSink` runs :func:`purge` when it is opened and then every ``every_s`` seconds
(an hour) from the monitor's loop; :func:`maskwatch.sinks.sinks_from_config` adds it when
``retain_days`` is set, so ``maskwatch --headless`` and every ``maskwatch serve`` worker keep
their own outputs trimmed. Each deleted file is logged (``maskwatch.sinks.retention``, INFO).

>>> import os, tempfile, time
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> old, mine = folder / "20200101T000000+0000_track3_without_mask.jpg", folder / "holiday.jpg"
>>> for p in (old, mine):
...     _ = p.write_bytes(b"x"); os.utime(p, (0, 0))
>>> [p.name for p in purge_folder(folder, snapshot_names(), max_age_s=86400)]
['20200101T000000+0000_track3_without_mask.jpg']
>>> mine.exists()
True
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

from maskwatch.sinks.base import BaseSink
from maskwatch.sinks.names import GUI_NAMES, recording_names, snapshot_names  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

EVERY_S = 3600.0
"""How often a running camera purges its folders."""

DAY_S = 86400.0


def purge_folder(folder: Path, names: re.Pattern, max_age_s: float, now: float | None = None) -> list[Path]:
    """Delete the files in ``folder`` (not below it) whose name matches ``names`` and whose
    modification time is older than ``max_age_s``; the paths deleted. A file that cannot be
    deleted is logged and left."""
    now = time.time() if now is None else now
    deleted: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder (yet): nothing to keep short
        return deleted
    for entry in entries:
        if not names.fullmatch(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or now - entry.stat(follow_symlinks=False).st_mtime <= max_age_s:
                continue
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("cannot delete old file %s: %s", entry.path, e.strerror or e)
            continue
        deleted.append(Path(entry.path))
    return sorted(deleted)


def purge(config, now: float | None = None) -> list[Path]:
    """Delete the snapshots and recordings of ``config`` older than ``config.retain_days``;
    nothing when it is ``None``. Each deleted file is logged."""
    days = getattr(config, "retain_days", None)
    if days is None:
        return []
    max_age = float(days) * DAY_S
    deleted: list[Path] = []
    if config.snapshots is not None:
        deleted += purge_folder(Path(config.snapshots), snapshot_names(), max_age, now)
    if config.save_video is not None:
        video = Path(config.save_video)
        deleted += purge_folder(video.parent, recording_names(video), max_age, now)
    for path in deleted:
        log.info("retention: deleted %s (older than %g days)", path, days)
    return deleted


def purge_gui_outputs(folders, retain_days: float | None, now: float | None = None) -> list[Path]:
    """Delete the desktop app's recordings and snapshots (:data:`GUI_NAMES`) older than
    ``retain_days`` in each of ``folders``; nothing when it is ``None``. Each deleted file is logged.

    >>> import os, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("maskwatch_20200101_080000.mp4", "maskwatch_20200101_080000_1.png", "party.mp4"):
    ...     _ = (folder / name).write_bytes(b"x"); os.utime(folder / name, (0, 0))
    >>> [p.name for p in purge_gui_outputs([folder, folder], 7)], sorted(p.name for p in folder.iterdir())
    (['maskwatch_20200101_080000.mp4', 'maskwatch_20200101_080000_1.png'], ['party.mp4'])
    """
    if retain_days is None:
        return []
    deleted: list[Path] = []
    for folder in dict.fromkeys(Path(f) for f in folders):  # the same folder once
        deleted += purge_folder(folder, GUI_NAMES, float(retain_days) * DAY_S, now)
    for path in deleted:
        log.info("retention: deleted %s (older than %g days)", path, retain_days)
    return deleted


class RetentionSink(BaseSink):
    """Purges ``config``'s old snapshots and recordings when made and every ``every_s`` seconds
    after (checked on each result: a dead camera's folders are trimmed once it comes back)."""

    def __init__(self, config, every_s: float = EVERY_S) -> None:
        self.config = config
        self.every_s = float(every_s)
        self.deleted = len(purge(config))
        self._next = time.monotonic() + self.every_s

    def on_result(self, result) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.every_s
            self.deleted += len(purge(self.config))
