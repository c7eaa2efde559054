"""``GuiSettings``: the desktop app's persisted choices (QSettings, organisation ``maskwatch``).

Stored: detector mode, confidence threshold, vote window, CSV log file, snapshots folder, alert
sound, real-time playback of files, the mask model, the folder uncertain faces are collected into, the last source and a short list of recent sources. URLs are
stored without their password, always (the password lives only in the password field while the
app runs). Tests pass their own ``QSettings`` (an INI file in a temp folder).

>>> import tempfile, os
>>> from PyQt6.QtCore import QSettings
>>> s = GuiSettings(QSettings(os.path.join(tempfile.mkdtemp(), "gui.ini"), QSettings.Format.IniFormat))
>>> s.add_recent("rtsp://admin:secret@cam/stream")
>>> s.recent_sources()
['rtsp://admin@cam/stream']
"""

from __future__ import annotations

import logging
from pathlib import Path

from PyQt6.QtCore import QByteArray, QSettings

from maskwatch.config import Config
from maskwatch.detection.registry import MIN_SCORES
from maskwatch.errors import MaskwatchError
from maskwatch.sources.spec import strip_password

log = logging.getLogger("maskwatch.gui")

ORGANISATION = "maskwatch"
APPLICATION = "maskwatch"
MAX_RECENT = 8


def _field(config: Config, dotted: str):
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class GuiSettings:
    """Typed access to the app's QSettings; ``apply`` turns them into a :class:`Config`."""

    def __init__(self, qsettings: QSettings | None = None):
        self.q = qsettings if qsettings is not None else QSettings(ORGANISATION, APPLICATION)

    # --- pipeline controls -------------------------------------------------------------------
    def _get(self, key: str, default, kind):
        value = self.q.value(key, None)
        if value is None or value == "":
            return default
        try:
            return _bool(value) if kind is bool else kind(value)
        except (TypeError, ValueError):
            return default

    def sound(self) -> bool:
        return bool(self._get("alerts/sound", False, bool))

    def realtime(self) -> bool:
        return bool(self._get("playback/realtime", True, bool))

    def set_value(self, key: str, value) -> None:
        self.q.setValue(key, "" if value is None else (str(value) if isinstance(value, Path) else value))
        self.q.sync()

    def save_controls(self, *, mode: str, min_score: float, vote_window: int, log: Path | None,
                      snapshots: Path | None, sound: bool, realtime: bool) -> None:
        self.q.setValue("detector/mode", mode)
        self.q.setValue("detector/min_score", float(min_score))
        self.q.setValue("tracker/vote_window", int(vote_window))
        self.q.setValue("output/log", "" if log is None else str(log))
        self.q.setValue("output/snapshots", "" if snapshots is None else str(snapshots))
        self.q.setValue("alerts/sound", bool(sound))
        self.q.setValue("playback/realtime", bool(realtime))
        self.q.sync()

    def set_model_and_collect(self, *, model: Path | None, collect: Path | None) -> None:
        """The mask classifier (a ``.tflite``; ``None``: the shipped one) and the collect folder
        (``None``: off) of the review loop (``docs/review-loop.md``)."""
        self.q.setValue("model/path", "" if model is None else str(model))
        self.q.setValue("output/collect", "" if collect is None else str(collect))
        self.q.sync()

    def saved_controls(self) -> dict[str, object]:
        """The controls the user saved, as :meth:`Config.with_overrides` keys (unsaved ones left out)."""
        saved = {
            "detector.mode": self._get("detector/mode", None, str),
            "detector.min_score": self._get("detector/min_score", None, float),
            "tracker.vote_window": self._get("tracker/vote_window", None, int),
            "log": self._get("output/log", None, str),
            "snapshots": self._get("output/snapshots", None, str),
            "model": self._get("model/path", None, str),
            "collect.folder": self._get("output/collect", None, str),
        }
        return {key: value for key, value in saved.items() if value is not None}

    def apply(self, config: Config) -> Config:
        """``config`` with the persisted controls applied (:meth:`Config.with_overrides`, the merge
        the command line uses too).

        Precedence: a value the config sets explicitly (a TOML file or a command-line flag) wins
        over the saved one, which wins over a mode's default score; values never saved keep the
        config's. "Explicit" is read from the values: a field that differs from ``Config()``'s
        default, and a ``min_score`` that differs from its own mode's default (so ``--min-score
        0.4`` stays 0.4 under a saved mode; a flag equal to the default cannot be told from no
        flag). A saved score goes with its saved mode: it is not applied to another mode (a
        ``--detector`` flag that overrides the saved mode gets that mode's default score). A saved
        mode without a saved score brings the mode's default score, and ``tracker.min_votes`` is capped
        at the vote window, so a short window still decides labels. A saved value the
        configuration refuses (an INI file edited by hand) is left out, with a warning.
        """
        defaults, given, saved = Config(), config, self.saved_controls()
        explicit_score = given.detector.min_score != MIN_SCORES.get(given.detector.mode, defaults.detector.min_score)
        for key, value in saved.items():
            if key == "detector.min_score":
                if explicit_score or saved.get("detector.mode", config.detector.mode) != config.detector.mode:
                    continue  # a flag or TOML score wins; a score saved with another mode than the one running is that mode's
            elif _field(given, key) != _field(defaults, key):
                continue  # set by a TOML file or a flag: that wins
            if key == "model" and not Path(str(value)).expanduser().is_file():
                log.warning("ignoring the saved mask model %s: the file is not there", value)
                continue
            changes = {key: value}
            if key == "detector.mode" and explicit_score:
                changes["detector.min_score"] = given.detector.min_score  # the mode's default must not replace it
            try:
                config = config.with_overrides(changes).validate()
            except MaskwatchError as e:
                log.warning("ignoring the saved setting %s: %s", key, e)
        return config

    # --- sources -------------------------------------------------------------------------------
    def recent_sources(self) -> list[str]:
        value = self.q.value("sources/recent", [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in (value or [])]

    def add_recent(self, spec: str) -> None:
        """Put ``spec`` first in the recent list (password removed), keeping ``MAX_RECENT``."""
        spec = strip_password(spec)
        items = [spec] + [s for s in self.recent_sources() if s != spec]
        self.q.setValue("sources/recent", items[:MAX_RECENT])
        self.q.setValue("sources/last", spec)
        self.q.sync()

    def remove_recent(self, spec: str) -> None:
        """Take ``spec`` out of the recent list (a source that failed before its first frame)."""
        spec = strip_password(spec)
        self.q.setValue("sources/recent", [s for s in self.recent_sources() if s != spec])
        if self.last_source() == spec:
            self.q.remove("sources/last")
        self.q.sync()

    def last_source(self) -> str | None:
        value = self.q.value("sources/last", None)
        return str(value) if value else None

    # --- window ----------------------------------------------------------------------------------
    def save_geometry(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)
        self.q.sync()

    def geometry(self) -> tuple[QByteArray | None, QByteArray | None]:
        return self.q.value("window/geometry", None), self.q.value("window/state", None)

    def all_values(self) -> dict[str, str]:
        """Every stored key and its value as text (tests check no password is stored)."""
        return {k: str(self.q.value(k)) for k in self.q.allKeys()}
