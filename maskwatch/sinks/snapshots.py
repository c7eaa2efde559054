"""``SnapshotSaver``: the annotated frame of each person decided with a flagged label, once per track,
and of each mask taken off (a label change from ``with_mask`` to a flagged label), once per change."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces
from maskwatch.overlay import annotate
from maskwatch.results import FrameResult
from maskwatch.sinks.alerts import alert_worthy
from maskwatch.sinks.appended import writable_folder
from maskwatch.sinks.base import BaseSink
from maskwatch.sinks.blur import check_blur_mode
from maskwatch.sinks.names import PART_SUFFIX, SNAPSHOT_PATTERN, snapshot_name

log = logging.getLogger("maskwatch.sinks.snapshots")

NAME_PATTERN = SNAPSHOT_PATTERN
"""The names :class:`SnapshotSaver` writes (:func:`maskwatch.sinks.names.snapshot_name`; what retention may delete)."""


class SnapshotSaver(BaseSink):
    """Saves the annotated frame when a person is decided with one of ``labels``, once per track,
    and when a person's label changes from ``with_mask`` to one of ``labels`` (the mask taken off:
    the ``mask_off`` alert), once per change.

    File names: ``<local time, e.g. 20261121T235959+0100>_track<id>_<label>.jpg`` in ``folder``
    (created if missing). As a sink it reads ``on_result`` (the decision and its frame together).
    ``written``: the paths saved for the last result's events, by track id. A sink that records
    them (the history database's :class:`~maskwatch.sinks.database.DatabaseSink`) is handed them
    explicitly: :meth:`on_saved` registers a listener, called once at the end of every
    ``on_result`` (also when nothing was saved, or saving failed), whatever the order of the sinks.
    Names match :data:`NAME_PATTERN`.

    ``blur``: ``"off"``, ``"others"`` (every face but the decided person's is blurred before the
    overlay is drawn: the snapshot shows whom it is about, not the bystanders) or ``"all"``
    (:func:`maskwatch.overlay.annotate`).
    """

    def __init__(self, folder: str | Path, labels=("without_mask", "mask_worn_incorrectly"), jpeg_quality: int = 90,
                 blur: str = "off"):
        self.blur = check_blur_mode(blur)
        self.folder = Path(folder)
        self.labels = tuple(labels)
        unknown = set(self.labels) - set(LABELS)
        if unknown:
            raise MaskwatchError(f"unknown snapshot label(s): {', '.join(sorted(unknown))}")
        self.jpeg_quality = int(jpeg_quality)
        self._saved: set[int] = set()
        self.written: dict[int, Path] = {}
        self._listeners: list[Callable[[dict[int, Path]], None]] = []
        writable_folder(self.folder, "snapshot folder")

    def on_saved(self, listener: Callable[[dict[int, Path]], None]) -> None:
        """Call ``listener(paths)`` after each result: the JPEGs saved for its events, by track id."""
        self._listeners.append(listener)

    def on_result(self, result: FrameResult) -> None:
        self.written = {}
        try:
            if result.events and result.frame is not None:
                self.maybe_save(result.frame.image, result.faces, result.events)
        except BaseException:
            self._hand_over(quiet=True)  # the listeners still get this frame's paths ...
            raise  # ... and the snapshot's own error is the one raised
        self._hand_over()

    def _hand_over(self, quiet: bool = False) -> None:
        for listener in self._listeners:
            try:
                listener(dict(self.written))
            except Exception as e:  # noqa: BLE001 - only while the snapshot's own error is raised
                if not quiet:
                    raise
                log.error("after a failed snapshot, handing over its paths failed too: %s", e)

    def maybe_save(self, frame_image_bgr: np.ndarray, faces: Faces, events) -> list[Path]:
        """Save one JPEG per qualifying event (a first decision with one of ``labels``, once per
        track; a change from with_mask to one of them); returns the paths written."""
        todo = [e for e in events if alert_worthy(e, self.labels)
                and (e.kind == "label_changed" or e.track_id not in self._saved)]
        if not todo:
            return []
        written = []
        data = None
        for e in todo:
            if data is None or self.blur == "others":  # "others": each snapshot keeps its own person
                data = self._encode(frame_image_bgr, faces, e.track_id)
            path = self.folder / snapshot_name(e.timestamp, e.track_id, e.label)
            part = path.with_name(path.name + PART_SUFFIX)
            try:  # a reader (the GUI's gallery) never sees half a JPEG
                part.write_bytes(data.tobytes())
                os.replace(part, path)
            except OSError as err:
                raise MaskwatchError(f"cannot write snapshot {path}: {err.strerror or err}") from None
            self._saved.add(e.track_id)
            self.written[e.track_id] = path
            written.append(path)
        return written

    def _encode(self, image: np.ndarray, faces: Faces, trigger: int) -> np.ndarray:
        """The JPEG of ``image`` with the overlay, faces blurred first as ``blur`` says."""
        annotated = annotate(image, faces, blur=self.blur, trigger=trigger)
        ok, data = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise MaskwatchError("cannot encode snapshot JPEG")
        return data
