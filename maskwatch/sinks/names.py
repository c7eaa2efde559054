"""The names of the files maskwatch writes, made and recognised in one place.

Every writer names its files through a function here, and retention (:mod:`maskwatch.sinks.retention`)
deletes only files whose name matches a pattern here, so a name and the pattern that recognises it
cannot drift apart:

- snapshots (:class:`~maskwatch.sinks.snapshots.SnapshotSaver`): :func:`snapshot_name`,
  ``20261121T235959+0100_track7_without_mask.jpg`` (local time with its UTC offset), written as
  ``<name>.part`` first (:data:`PART_SUFFIX`); :func:`snapshot_names` matches both;
- a recorded video (:class:`~maskwatch.sinks.video.VideoSink`): written to a temporary
  ``.maskwatch-recording-<random><suffix>`` (:data:`PART_PREFIX`) and published under its name or,
  when that appeared meanwhile, a numbered variant (:func:`numbered_variants`: ``door-1.mp4``);
  ``maskwatch serve`` gives each worker run its own file (:func:`stamped_recording`:
  ``door-20261121T235959.mp4``); :func:`recording_names` matches them all;
- the desktop app's Record and Ctrl+S (:func:`gui_output_path`: ``maskwatch_20261121_235959.mp4``,
  ``_1``, ``_2`` ... when taken), matched by :data:`GUI_NAMES`.

>>> name = snapshot_name(0.0, 7, "without_mask")
>>> bool(snapshot_names().fullmatch(name)), bool(snapshot_names().fullmatch(name + PART_SUFFIX))
(True, True)
>>> from pathlib import Path
>>> video = Path("v/door.mp4")
>>> [bool(recording_names(video).fullmatch(p.name)) for p in (numbered_variants(video)[2], stamped_recording(video))]
[True, True]
>>> bool(recording_names(video).fullmatch("door-party.mp4"))
False
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

from maskwatch import LABELS

PART_SUFFIX = ".part"
"""A snapshot is written under its name plus this, then renamed (a reader never sees half a JPEG)."""

PART_PREFIX = ".maskwatch-recording-"
"""A recording's temporary file's name starts so (then random letters and the real extension)."""

SNAPSHOT_PATTERN = re.compile(r"\d{8}T\d{6}[+-]\d{4}_track\d+_(?:" + "|".join(LABELS) + r")\.jpg")
"""The names :func:`snapshot_name` makes (what retention may delete in a snapshot folder)."""

GUI_NAMES = re.compile(r"maskwatch_\d{8}_\d{6}(?:_\d+)?\.(?:mp4|png)")
"""What the desktop app's Record (Ctrl+R) and Snapshot (Ctrl+S) name their files (:func:`gui_output_path`)."""

MAX_VARIANT = 99
"""A recording whose name is taken gets ``-1`` ... ``-99`` before its extension."""


def snapshot_name(timestamp: float, track_id: int, label: str) -> str:
    """The snapshot file name of ``track_id`` decided ``label`` at ``timestamp`` (epoch seconds)."""
    stamp = datetime.fromtimestamp(timestamp).astimezone().strftime("%Y%m%dT%H%M%S%z")
    return f"{stamp}_track{int(track_id)}_{label}.jpg"


def snapshot_names() -> re.Pattern:
    """The snapshot names (and their ``.part`` leftovers) :func:`snapshot_name` makes."""
    return re.compile(f"(?:{SNAPSHOT_PATTERN.pattern})(?:{re.escape(PART_SUFFIX)})?")


def numbered_variants(path: Path) -> list[Path]:
    """``path``, then ``path`` with ``-1`` ... ``-99`` before the extension: where a finished
    recording goes when its name was taken during the recording."""
    return [path] + [path.with_name(f"{path.stem}-{n}{path.suffix}") for n in range(1, MAX_VARIANT + 1)]


def stamped_recording(path: Path, now: datetime | None = None) -> Path:
    """``path`` with this run's start time: each ``maskwatch serve`` worker run records its own file
    (a restarted worker must not find its predecessor's video in the way)."""
    stamp = (now or datetime.now()).strftime("%Y%m%dT%H%M%S")
    return path.with_name(f"{path.stem}-{stamp}{path.suffix}")


def recording_names(save_video: Path) -> re.Pattern:
    """The recordings of ``save_video``: itself, its numbered and stamped variants, and abandoned
    temporary recordings of the same extension."""
    stem, suffix = re.escape(save_video.stem), re.escape(save_video.suffix)
    return re.compile(
        f"{stem}(?:-\\d{{8}}T\\d{{6}})?(?:-\\d{{1,2}})?{suffix}|{re.escape(PART_PREFIX)}[A-Za-z0-9_]+{suffix}")


def gui_output_path(folder: Path, suffix: str) -> Path:
    """``folder/maskwatch_<date>_<time><suffix>``, with ``_1``, ``_2`` ... if that file exists."""
    stem = time.strftime("maskwatch_%Y%m%d_%H%M%S")
    path, n = folder / f"{stem}{suffix}", 1
    while path.exists():
        path, n = folder / f"{stem}_{n}{suffix}", n + 1
    return path
