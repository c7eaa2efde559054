"""``CollectSink``: saves the face crops the classifier is least sure of, for a person to label.

The first step of the review loop (``docs/review-loop.md``): collect -> review (the app's Review
tab) -> fine-tune (``maskwatch-train finetune``) -> swap the model live.

Which faces: a face whose *calibrated* top probability (``FrameResult.faces.probs``, temperature
applied by :class:`~maskwatch.classification.MaskClassifier`) is under ``max_top_prob``
(reason ``low_confidence``), or, with ``split_vote``, a face of a track whose vote is split: over
the track's last ``vote_window`` classified frames the runner-up label has at least a third of
the votes (reason ``split_vote``; counted once the track has :data:`SPLIT_MIN_VOTES` votes). At
most one crop per track every ``per_track_s`` seconds (frame time: media time for files). Image
folders (and single images) have no tracks worth the name (the tracker links unrelated images):
there every face is judged on its own, and only ``low_confidence`` applies.

What is saved (``DIR/<name>.png``, lossless): the classifier's crop as served, the square
:func:`maskwatch.crop.square_box` of the face box with the model's ``crop_margin``, with
:data:`CONTEXT` times its side around it (the same centre), at the frame's own pixels (no
resizing; parts outside the frame replicate the border, as serving does). So the crop can be cut
again with another margin or size: in the saved image's pixels, ``face_x1..face_y2`` is the face
box (``square_box(face, margin)`` of it is the served square again, which is how
``maskwatch-train finetune`` re-cuts it) and ``served_x1..served_y2`` the served square (for a
crop inside the frame, its central 1/CONTEXT).

``DIR/collected.csv`` gets one row per saved crop (:data:`COLLECT_COLUMNS`): ``file`` (name in
``DIR``), ``time`` (local ISO time of saving), ``camera`` (the source, credentials redacted),
``image`` (the image's file name for image-folder sources, else empty), ``frame`` (frame index),
``track`` (track id, -1 for image sources), ``x1..y2`` (the face box in frame pixels),
``face_px`` (its width), ``face_x1..face_y2`` and ``served_x1..served_y2`` (the face box and the
served square inside the saved image),
``p_<label>`` (the three calibrated probabilities), ``guess`` (the most probable label),
``top_prob``, ``model`` (:meth:`~maskwatch.classification.ModelInfo.describe`) and ``reason``
(``low_confidence`` or ``split_vote``).

Caps: beyond ``max_files`` crops or ``max_mb`` megabytes the oldest are deleted until a tenth of
the room is free again. Their rows leave ``collected.csv`` *first* (the file is rewritten
atomically), then the files go: a crash in between leaves a file without a row, never a row
without its file. An existing folder is appended to (the caps count what is already there) and
repaired first, each repair one warning line: rows whose file was deleted by hand are dropped;
a torn last line (a crash while a row was appended) and rows of the wrong length are dropped;
crops of ours (``000123_t4.png``) without a row are deleted (a prune or a torn row left them;
with no row they have no probabilities to review, and uncounted they would escape the caps). A
crop younger than :data:`ORPHAN_GRACE_S` is left alone (another collector may be about to write
its row).

With ``retain_days`` (the run's ``retain_days``: a site keeps faces no longer than that) crops
older than that go too, rows first, when the sink opens and every hour after.

>>> from maskwatch.sinks.collect import served_and_saved
>>> served_and_saved((100, 100, 140, 150), margin=0.2)   # a 40x50 face: 70 px served, 105 px saved
((85, 90, 155, 160), (68, 73, 173, 178))
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import time
from collections import deque
from pathlib import Path

import numpy as np

from maskwatch import LABELS
from maskwatch.crop import padded_region, square_box
from maskwatch.errors import MaskwatchError
from maskwatch.records import iso_time
from maskwatch.results import FrameResult
from maskwatch.sinks.appended import AppendedFile, read_our_csv, rewrite_csv, writable_folder
from maskwatch.sources.spec import is_photos, parse, redact

log = logging.getLogger("maskwatch.collect")

CSV_NAME = "collected.csv"
CONTEXT = 1.5
"""Side of the saved image over the side of the served crop."""
SPLIT_MIN_VOTES = 5
"""A track's vote is judged split only once it has this many classified frames."""
PRUNE_TO = 0.9
"""When a cap is passed, the oldest crops are deleted until this share of each cap is used."""
REASONS = ("low_confidence", "split_vote")
CROP_NAME = re.compile(r"\d{6,}(?:_t-?\d+)?\.png")
"""The names :class:`CollectSink` gives its crops (what it may delete as orphans)."""
ORPHAN_GRACE_S = 60.0
"""A crop without a row is deleted only when it is older than this (its row may be on its way)."""
RETAIN_EVERY_S = 3600.0
"""How often a running collector drops crops older than ``retain_days``."""

COLLECT_COLUMNS: tuple[str, ...] = (
    "file", "time", "camera", "image", "frame", "track",
    "x1", "y1", "x2", "y2", "face_px",
    "face_x1", "face_y1", "face_x2", "face_y2",
    "served_x1", "served_y1", "served_x2", "served_y2",
    *(f"p_{label}" for label in LABELS), "guess", "top_prob",
    "model", "reason",
)
"""``collected.csv``'s header, in order (stable: ``benchmarks/site_adaptation.py`` reads it)."""


def served_and_saved(box, margin: float, context: float = CONTEXT) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(served square, saved square) of a face box, both ``(x1, y1, x2, y2)`` in frame pixels.

    The served square is what the classifier crops (:func:`~maskwatch.crop.square_box`); the
    saved square has ``context`` times its side and the same centre."""
    sx1, sy1, sx2, sy2 = square_box(box, margin)
    side = sx2 - sx1
    big = max(int(round(side * context)), side)
    ox, oy = sx1 - (big - side) // 2, sy1 - (big - side) // 2
    return (sx1, sy1, sx2, sy2), (ox, oy, ox + big, oy + big)


def cut_region(image: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    """``image[y1:y2, x1:x2]`` where parts outside the image replicate its border (as serving does)."""
    region = padded_region(image, x1, y1, x2, y2)
    if region is None:
        return np.zeros((max(y2 - y1, 1), max(x2 - x1, 1), 3), np.uint8)
    return np.ascontiguousarray(region)


def split_vote(votes) -> bool:
    """A vote is split when the runner-up label has at least a third of the votes.

    >>> split_vote([6, 3, 0]), split_vote([7, 2, 0]), split_vote([5, 0, 0])
    (True, False, False)
    """
    counts = sorted((int(v) for v in votes), reverse=True)
    total = sum(counts)
    return total > 0 and len(counts) > 1 and 3 * counts[1] >= total


def read_collected(folder: str | Path) -> list[dict]:
    """The rows of ``folder/collected.csv`` (``[]`` when there is none); a file with another
    header is a one-line ``MaskwatchError`` (never rows mixed into a file that is not ours)."""
    return [dict(zip(COLLECT_COLUMNS, row)) for row in _read_records(Path(folder) / CSV_NAME).rows]


def _read_records(path: Path):
    """``collected.csv`` as :class:`~maskwatch.sinks.appended.CsvRecords`; a foreign header is an error."""
    return read_our_csv(path, COLLECT_COLUMNS, "exists with a different header; collect into another folder")


def check_collect_folder(folder: str | Path) -> None:
    """The checks made before anything is opened: ``folder`` is (or can be) a folder, and an
    existing ``collected.csv`` in it is ours."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise MaskwatchError(f"cannot collect into {folder}: not a folder")
    read_collected(folder)


class CollectSink(AppendedFile):
    """Saves uncertain face crops into ``config.folder`` with a ``collected.csv`` row each (see the
    module docstring). ``config``: a :class:`~maskwatch.config.CollectConfig`; ``source``: the
    source text (for the ``camera`` column, redacted, and to tell image folders from videos);
    ``model``: the :class:`~maskwatch.classification.ModelInfo` in use (its crop margin and its
    description; :meth:`on_model` changes it when the model is swapped)."""

    def __init__(self, config, *, source=None, vote_window: int = 15, model=None, fsync: bool = False,
                 retain_days: float | None = None):
        if config.folder is None:
            raise MaskwatchError("collect: no folder given")
        self.folder = Path(config.folder)
        self.max_top_prob = float(config.max_top_prob)
        self.split_vote = bool(config.split_vote)
        self.per_track_s = float(config.per_track_s)
        self.max_files = int(config.max_files)
        self.max_bytes = int(float(config.max_mb) * 1e6)
        self.vote_window = max(int(vote_window), 1)
        self.fsync = fsync
        self.camera = "" if source is None else redact(parse(source).text)  # the text as given, credentials hidden
        self.per_face = source is not None and is_photos(source)  # the image column: frame.origin
        self.model = model
        self.retain_s = None if retain_days is None else float(retain_days) * 86400.0
        self.saved = 0  # crops written by this sink
        self.pruned = 0  # crops deleted for the caps by this sink
        self.expired = 0  # crops deleted for retain_days by this sink
        self.orphans_deleted = 0  # crops without a row deleted when the folder was opened
        self._next_retain = time.monotonic() + RETAIN_EVERY_S
        self._votes: dict[int, deque] = {}
        self._last_seen: dict[int, float] = {}
        self._last_saved: dict[int, float] = {}
        self._fh = None
        self._path = self.folder / CSV_NAME
        writable_folder(self.folder, "collect folder")
        records = _read_records(self._path)
        if records.torn:
            log.warning("%s: the last line was cut off (a crash while it was written); it was dropped", self._path)
        if records.dropped:
            log.warning("%s: %d rows had the wrong number of columns; they were dropped", self._path, records.dropped)
        rows = [dict(zip(COLLECT_COLUMNS, row)) for row in records.rows]
        kept = [r for r in rows if (self.folder / r["file"]).is_file()]
        if len(kept) != len(rows):
            log.warning("%s: %d rows named crops that are gone; their rows were dropped",
                        self._path, len(rows) - len(kept))
        self._rows: deque[tuple[dict, int]] = deque((r, self._size(r["file"])) for r in kept)
        self._bytes = sum(size for _, size in self._rows)
        if records.damaged or len(kept) != len(rows) or not self._path.exists() or records.header is None:
            self._rewrite()  # before anything is appended: never a row glued onto a torn one
        self._delete_orphans({r["file"] for r in kept})
        self._seq = 1 + max((self._seq_of(r["file"]) for r in kept), default=0)
        self._open()
        self._expire()

    # -- sink --------------------------------------------------------------------------------------

    def on_model(self, info) -> None:
        """The model in use changed (:meth:`maskwatch.monitor.Monitor.swap_model`)."""
        self.model = info

    def on_result(self, result: FrameResult) -> None:
        frame, faces = result.frame, result.faces
        if frame is None or not len(faces) or self._fh is None:
            return
        now = float(frame.timestamp)
        for i in range(len(faces)):
            probs = faces.probs[i]
            if not np.all(np.isfinite(probs)):
                continue  # not classified on this frame (the detector was skipped)
            track = int(faces.track_id[i])
            reason = None
            if float(probs.max()) < self.max_top_prob:
                reason = "low_confidence"
            if self.per_face or track < 0:
                if reason is not None:
                    self._save(frame, faces, i, -1 if self.per_face else track, reason)
                continue
            votes = self._votes.setdefault(track, deque(maxlen=self.vote_window))
            votes.append(int(np.argmax(probs)))
            self._last_seen[track] = now
            if reason is None and self.split_vote and len(votes) >= SPLIT_MIN_VOTES:
                if split_vote(np.bincount(np.asarray(votes), minlength=len(LABELS))):
                    reason = "split_vote"
            if reason is None:
                continue
            last = self._last_saved.get(track)
            if last is not None and now - last < self.per_track_s:
                continue
            self._last_saved[track] = now
            self._save(frame, faces, i, track, reason)
        if len(self._last_seen) > 256:
            self._forget(now)
        if self.retain_s is not None and time.monotonic() >= self._next_retain:
            self._next_retain = time.monotonic() + RETAIN_EVERY_S
            self._expire()

    # -- internals ---------------------------------------------------------------------------------

    def _forget(self, now: float) -> None:
        """Drop the votes of tracks not seen for a while (a long run sees thousands of people)."""
        horizon = max(60.0, 2 * self.per_track_s)
        for track in [t for t, seen in self._last_seen.items() if now - seen > horizon]:
            self._last_seen.pop(track, None)
            self._votes.pop(track, None)
            self._last_saved.pop(track, None)

    @staticmethod
    def _seq_of(name: str) -> int:
        match = re.match(r"(\d+)", name)
        return int(match.group(1)) if match else 0

    def _size(self, name: str) -> int:
        try:
            return (self.folder / name).stat().st_size
        except OSError:
            return 0

    def _save(self, frame, faces, i: int, track: int, reason: str) -> None:
        import cv2

        box = [float(v) for v in faces.xyxy[i]]
        margin = float(self.model.margin) if self.model is not None else 0.2
        served, saved = served_and_saved(box, margin)
        crop = cut_region(frame.image, *saved)
        ok, data = cv2.imencode(".png", crop)
        if not ok:
            raise MaskwatchError("cannot encode a collected crop as PNG")
        data = data.tobytes()
        while True:
            name = f"{self._seq:06d}_t{track}.png" if track >= 0 else f"{self._seq:06d}.png"
            self._seq += 1
            try:
                with open(self.folder / name, "xb") as fh:
                    fh.write(data)
                break
            except FileExistsError:  # a file left by another run: never overwritten
                continue
            except OSError as e:
                raise MaskwatchError(f"cannot write collected crop {self.folder / name}: {e.strerror or e}") from None
        probs = faces.probs[i]
        guess = int(np.argmax(probs))
        image = frame.origin if self.per_face else ""
        ox, oy = saved[0], saved[1]
        row = {
            "file": name,
            "time": iso_time(time.time(), "milliseconds"),
            "camera": self.camera,
            "image": image,
            "frame": str(int(frame.index)),
            "track": str(track),
            "x1": f"{box[0]:.1f}", "y1": f"{box[1]:.1f}", "x2": f"{box[2]:.1f}", "y2": f"{box[3]:.1f}",
            "face_px": f"{box[2] - box[0]:.1f}",
            "face_x1": f"{box[0] - ox:.1f}", "face_y1": f"{box[1] - oy:.1f}",
            "face_x2": f"{box[2] - ox:.1f}", "face_y2": f"{box[3] - oy:.1f}",
            "served_x1": str(served[0] - ox), "served_y1": str(served[1] - oy),
            "served_x2": str(served[2] - ox), "served_y2": str(served[3] - oy),
            **{f"p_{label}": f"{float(p):.4f}" for label, p in zip(LABELS, probs)},
            "guess": LABELS[guess],
            "top_prob": f"{float(probs[guess]):.4f}",
            "model": self.model.describe() if self.model is not None else "",
            "reason": reason,
        }
        self._append(row)
        self._rows.append((row, len(data)))
        self._bytes += len(data)
        self.saved += 1
        if len(self._rows) > self.max_files or self._bytes > self.max_bytes:
            self._prune()

    def _append(self, row: dict) -> None:
        try:
            self._writer.writerow([row[c] for c in COLLECT_COLUMNS])
            self._fh.flush()
            if self.fsync:
                os.fsync(self._fh.fileno())
        except OSError as e:
            raise MaskwatchError(f"cannot write {self._path}: {e.strerror or e}") from None

    def _delete_orphans(self, known: set[str]) -> None:
        """Delete our crops (:data:`CROP_NAME`) that have no row, older than :data:`ORPHAN_GRACE_S`."""
        now = time.time()
        gone = 0
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return
        for entry in entries:
            if entry.name in known or not CROP_NAME.fullmatch(entry.name):
                continue
            try:
                if not entry.is_file(follow_symlinks=False) or now - entry.stat().st_mtime < ORPHAN_GRACE_S:
                    continue
                os.unlink(entry.path)
                gone += 1
            except FileNotFoundError:
                continue
            except OSError as e:
                log.warning("cannot delete collected crop %s: %s", entry.path, e.strerror or e)
        if gone:
            log.warning("%s: %d crops had no row in %s (left by a crash); they were deleted",
                        self.folder, gone, CSV_NAME)
        self.orphans_deleted += gone

    def _expire(self) -> None:
        """Delete the crops older than ``retain_days`` (by their row's time, else the file's): rows first."""
        if self.retain_s is None or not self._rows:
            return
        limit = time.time() - self.retain_s
        old = {row["file"] for row, _ in self._rows if self._saved_at(row) < limit}
        if old:
            self.expired += len(self._drop(lambda row: row["file"] in old))
            log.info("collect: deleted %d crops older than %g days from %s", len(old), self.retain_s / 86400.0,
                     self.folder)

    def _saved_at(self, row: dict) -> float:
        from datetime import datetime

        try:
            return datetime.fromisoformat(row["time"]).timestamp()
        except (KeyError, ValueError):
            try:
                return (self.folder / row["file"]).stat().st_mtime
            except OSError:
                return time.time()

    def _drop(self, gone_if) -> list[str]:
        """Remove the rows for which ``gone_if(row)`` holds, rewrite the CSV, then delete their files."""
        gone = [row["file"] for row, _ in self._rows if gone_if(row)]
        self._rows = deque((row, size) for row, size in self._rows if not gone_if(row))
        self._bytes = sum(size for _, size in self._rows)
        self._remove(gone)
        return gone

    def _remove(self, gone: list[str]) -> None:
        """The kept rows are already in ``self._rows``: rewrite the CSV, then delete ``gone``'s files
        (rows first, so a crash in between leaves orphan files, never rows without their file)."""
        self.close()
        self._rewrite()
        self._open()
        for name in gone:
            try:
                (self.folder / name).unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("cannot delete collected crop %s: %s", self.folder / name, e.strerror or e)

    def _prune(self) -> None:
        """Delete the oldest crops until both caps have a tenth of room: rows first, then files."""
        count_to = max(int(self.max_files * PRUNE_TO), 0)
        bytes_to = int(self.max_bytes * PRUNE_TO)
        gone = []
        while self._rows and (len(self._rows) > count_to or self._bytes > bytes_to):
            row, size = self._rows.popleft()
            self._bytes -= size
            gone.append(row["file"])
        self._remove(gone)
        self.pruned += len(gone)

    def _rewrite(self) -> None:
        """Write ``collected.csv`` anew from the kept rows, atomically (a temporary file renamed)."""
        rewrite_csv(self._path, COLLECT_COLUMNS, (row for row, _ in self._rows), "collect list")

    def _open(self) -> None:
        try:
            self._fh = open(self._path, "a", encoding="utf-8", newline="")
        except OSError as e:
            raise MaskwatchError(f"cannot write {self._path}: {e.strerror or e}") from None
        self._writer = csv.writer(self._fh, lineterminator="\n")


def rows_by_uncertainty(rows: list[dict]) -> list[dict]:
    """Rows sorted most uncertain first (lowest ``top_prob``; rows without one last).

    >>> [r["file"] for r in rows_by_uncertainty([{"file": "a", "top_prob": "0.9"}, {"file": "b", "top_prob": "0.4"},
    ...                                          {"file": "c", "top_prob": ""}])]
    ['b', 'a', 'c']
    """
    def key(row):
        try:
            value = float(row.get("top_prob") or "nan")
        except ValueError:
            value = math.nan
        return (1, 0.0) if math.isnan(value) else (0, value)

    return sorted(rows, key=key)
