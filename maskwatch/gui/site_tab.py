"""The Site tab: one tile per camera of a site, live from the MQTT broker ``maskwatch serve`` publishes to.

``maskwatch serve --config site.toml`` publishes every camera in Frigate's topic shape
(``docs/mqtt.md``). This tab subscribes to ``<prefix>/#`` and builds a tile per camera from:

- ``<prefix>/available`` (retained): ``online`` / ``offline`` (the broker sends ``offline`` as the
  last will when serve dies): every tile turns grey while it says ``offline``;
- ``<prefix>/<camera>/state`` (retained): ``connecting`` / ``live`` / ``reconnecting`` / ``ended``,
  shown with how long it has been so (``≥`` when the value was already retained when we connected);
- ``<prefix>/<camera>/<label>`` (retained): the people in view now;
- ``<prefix>/<camera>/compliance`` (retained) and ``<prefix>/<camera>/intervals`` (not retained,
  one JSON row per closed interval): the last interval's compliance, and today's (with_mask /
  decided people of today's intervals; those before the tab connected come from the history
  database when a site config naming one was opened);
- ``<prefix>/events`` (not retained): the last alert (a person decided without a mask or wearing it
  incorrectly, or who took it off, as :func:`maskwatch.sinks.alerts.alert_worthy` says), with its
  snapshot when the payload's path is a file on this machine.

A camera that sends nothing for its timeout turns grey: a live camera's heartbeat is its interval
row, so the default timeout is ``2 × interval + 10 s`` (the interval from the opened site config,
else learned from the rows, else 60 s); the "Grey after" box sets a fixed one. Retained values
replayed at a (re)connect do not count as news: they only restart the clock.

paho-mqtt's network thread never touches a widget: :class:`_Bridge` re-emits each message as a Qt
signal (queued to the GUI thread), tagged with a generation number so that messages of a client
already closed are dropped. The broker address, port, user, prefix and timeout are kept in the
app's QSettings (``site/...``); the password only in its password field while the app runs.

Double-click on a tile: ``open_camera(name)``; when an opened site config knows that camera,
``open_source(url)`` too (the camera's source, with its password when the config gives one: hand
it to the source picker, which moves the password into its own field); otherwise the camera's
recent history from the site's database, when the config names one.

:class:`SiteState` is the Qt-free part (payloads in, per-camera status out); :class:`SiteTab` the widget.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QPixmap
from PyQt6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.results import Event
from maskwatch.site.publisher import STATES, topic_safe
from maskwatch.sinks.alerts import PERSON_ALERT_LABELS, alert_worthy

log = logging.getLogger("maskwatch.gui.site")

DEFAULT_INTERVAL_S = 60.0
"""The interval assumed before the config or a row says (``Config.interval_s``'s default)."""
MAX_CAMERAS = 200
"""Tiles at most: a broker full of stray topics must not build thousands of widgets."""
MAX_TODAY_ROWS = 20000
"""Interval rows of today kept per camera (a day of 5 s intervals is 17280)."""
MAX_PAYLOAD = 64 * 1024
"""A bigger payload is not one of serve's: ignored."""
TILE_WIDTH, TILE_HEIGHT = 300, 214
SHORT_LABEL = {"with_mask": "with mask", "without_mask": "without", "mask_worn_incorrectly": "incorrect"}
ALERT_TEXT = {"without_mask": "without a mask", "mask_worn_incorrectly": "mask worn incorrectly",
              "mask_off": "took the mask off"}

from maskwatch.gui.theme import COLORS as _THEME, LABEL_TEXT as _LABEL_TEXT  # noqa: E402 - named, contrast-checked colours

MUTED = _THEME["muted"]
SUNKEN = _THEME["sunken"]
LINE = _THEME["line"]
ERROR_TEXT = _LABEL_TEXT["without_mask"]
STALE_STYLE = (f"#card {{ background: {SUNKEN}; border: 1px dashed {LINE}; border-radius: 8px; }} "
               f"QLabel {{ color: {MUTED}; }} QLabel#statePill {{ color: {_THEME.get('on_accent', '#ffffff')}; }}")
"""A grey tile: the sunken background and every text muted (contrast as the theme's muted text)."""


def timeout_for(interval_s: float | None) -> float:
    """Seconds without news after which a camera's tile turns grey: two intervals and 10 s.

    >>> timeout_for(60), timeout_for(1), timeout_for(None)
    (130.0, 12.0, 130.0)
    """
    interval = DEFAULT_INTERVAL_S if not interval_s or interval_s <= 0 else float(interval_s)
    return 2.0 * interval + 10.0


def duration_text(seconds: float) -> str:
    """``5s``, ``3m 05s``, ``2h 04m``, ``3d 2h``.

    >>> duration_text(4.6), duration_text(185), duration_text(7440), duration_text(3 * 86400 + 7300)
    ('5s', '3m 05s', '2h 04m', '3d 2h')
    """
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def local_midnight(now: float) -> float:
    return datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _rate_text(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.0f}%"


# -- the Qt-free part: payloads in, per-camera status out ------------------------------------------


@dataclass
class SiteAlert:
    """The last alert of a camera (from an ``events`` payload)."""

    kind: str  # without_mask, mask_worn_incorrectly, mask_off
    ts: float
    track_id: int | None
    snapshot: str | None  # the path in the payload (a file on serve's host)
    box: tuple[float, float, float, float] | None = None  # the face in the snapshot's pixels (x1, y1, x2, y2)


@dataclass
class CameraStatus:
    """What the broker told about one camera."""

    name: str
    state: str | None = None
    state_since: float | None = None  # wall clock of the change (or of the connect, see state_exact)
    state_exact: bool = False  # False: the state was retained when we connected (it is older)
    in_view: dict[str, int] = field(default_factory=dict)
    compliance: float | None = None  # the last closed interval's rate
    compliance_known: bool = False  # False: no compliance topic / row yet ("None" is known: nobody decided)
    today: dict[str, tuple[float, dict[str, int]]] = field(default_factory=dict)  # row id -> (start_ts, by label)
    interval_s: float | None = None  # learned from the rows (the longest of the last few)
    lengths: list[float] = field(default_factory=list)
    last_alert: SiteAlert | None = None
    last_news: float | None = None  # wall clock of the last message that was not a retained replay
    messages: int = 0
    created: float = field(default_factory=time.time)  # when the tab first heard of it (or read it in site.toml)

    @property
    def people_in_view(self) -> int:
        return sum(self.in_view.values())

    def today_rate(self, now: float) -> tuple[float | None, int]:
        """(with_mask / decided people, decided) over today's interval rows (local day of ``now``)."""
        midnight = local_midnight(now)
        decided = masked = 0
        for start, by_label in self.today.values():
            if start >= midnight:
                decided += sum(by_label.values())
                masked += by_label.get("with_mask", 0)
        return (None if decided == 0 else masked / decided), decided


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _count(value) -> int:
    number = _number(value)
    return int(number) if number is not None and 0 <= number < 1e9 else 0


class SiteState:
    """Every camera's :class:`CameraStatus`, fed one MQTT message at a time (see the module docstring).

    >>> s = SiteState("site")
    >>> s.handle("site/door/state", b"live", retained=False, now=100.0)
    'door'
    >>> s.handle("site/door/with_mask", b"2", retained=False, now=101.0), s.cameras["door"].people_in_view
    ('door', 2)
    >>> s.handle("site/door/compliance", b"0.75", retained=True, now=102.0), s.cameras["door"].compliance
    ('door', 0.75)
    >>> s.handle("elsewhere/door/state", b"live", retained=False), s.handle("site/a+b/state", b"live", retained=False)
    (None, None)
    """

    def __init__(self, prefix: str = "maskwatch") -> None:
        self.prefix = prefix
        self.cameras: dict[str, CameraStatus] = {}
        self.available: str | None = None  # "online" / "offline" / None (not heard)
        self.available_since: float | None = None
        self.connected_at: float | None = None
        self.ignored = 0  # messages that were not serve's (bad topic, bad payload): counted, never raised
        self._seen_events: set[str] = set()

    # -- feeding ------------------------------------------------------------------------------
    def connected(self, now: float | None = None) -> None:
        """A (re)connect: the retained values that follow are replays, the timeouts start over."""
        self.connected_at = time.time() if now is None else now

    def camera(self, name: str) -> CameraStatus | None:
        """The status of ``name``, made if new (``None`` past :data:`MAX_CAMERAS` or for a bad name)."""
        status = self.cameras.get(name)
        if status is None:
            if not topic_safe(name) or len(self.cameras) >= MAX_CAMERAS:
                return None
            status = self.cameras[name] = CameraStatus(name)
        return status

    def handle(self, topic: str, payload: bytes, retained: bool, now: float | None = None) -> str | None:
        """One message; returns the camera it changed, ``"*"`` for every camera, ``None`` if ignored."""
        now = time.time() if now is None else now
        try:
            return self._handle(topic, payload, retained, now)
        except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as e:  # never the GUI's problem
            self.ignored += 1
            log.debug("site tab: ignored a message on %s: %s", topic, type(e).__name__)
            return None

    def _handle(self, topic: str, payload: bytes, retained: bool, now: float) -> str | None:
        head = self.prefix + "/"
        if not isinstance(topic, str) or not topic.startswith(head) or len(payload) > MAX_PAYLOAD:
            self.ignored += 1
            return None
        levels = topic[len(head):].split("/")
        text = bytes(payload).decode("utf-8").strip()
        if levels == ["available"]:
            if text not in ("online", "offline"):
                raise ValueError("available")
            if text != self.available:
                self.available, self.available_since = text, now
            return "*"
        if levels == ["events"]:
            return self._event(json.loads(text), retained, now)
        if len(levels) != 2:
            self.ignored += 1
            return None
        name, what = levels
        if what not in ("state", "compliance", "intervals", *LABELS):
            self.ignored += 1  # discovery, a new topic of a later version: not ours to show
            return None
        status = self.camera(name)
        if status is None:
            self.ignored += 1
            return None
        if what == "state":
            if text not in STATES:
                raise ValueError("state")
            if text != status.state:
                status.state, status.state_since, status.state_exact = text, now, not retained
        elif what == "compliance":
            status.compliance = None if text == "None" else _checked_rate(float(text))
            status.compliance_known = True
        elif what == "intervals":
            self.add_interval(status, json.loads(text))
        else:
            status.in_view[what] = _count(int(text))
        status.messages += 1
        if not retained:
            status.last_news = now
        return name

    def add_interval(self, status: CameraStatus, row) -> None:
        """One interval payload (live, or from the history database) into ``status``."""
        if not isinstance(row, dict) or row.get("camera") not in (None, status.name):
            raise ValueError("interval")
        start, end = _number(row.get("start_ts")), _number(row.get("end_ts"))
        if start is None or end is None or end < start:
            raise ValueError("interval times")
        row_id = str(row.get("id") or f"{start}-{end}")
        by_label = {label: _count(row.get(label)) for label in LABELS}
        if row_id not in status.today and len(status.today) >= MAX_TODAY_ROWS:
            status.today.pop(next(iter(status.today)))
        status.today[row_id] = (start, by_label)
        if end > start:
            status.lengths = (status.lengths + [end - start])[-5:]
            status.interval_s = max(status.lengths)  # a partial last row (serve stopping) is shorter
        newest = max((s for s, _ in status.today.values()), default=start)
        if start >= newest:  # the newest row is "the last interval" (compliance_rate None: nobody decided)
            rate = row.get("compliance_rate")
            status.compliance = None if rate is None else _checked_rate(float(rate))
            status.compliance_known = True

    def _event(self, event, retained: bool, now: float) -> str | None:
        if not isinstance(event, dict):
            raise ValueError("event")
        name = event.get("camera")
        if not isinstance(name, str):
            raise ValueError("event camera")
        status = self.camera(name)
        if status is None:
            self.ignored += 1
            return None
        if not retained:
            status.last_news = now
        self.add_event(status, event)
        return name

    def add_event(self, status: CameraStatus, event: dict) -> None:
        """One event payload: the last alert when it is one (duplicates by ``id`` are dropped)."""
        event_id = event.get("id")
        if isinstance(event_id, str):
            if event_id in self._seen_events:
                return
            if len(self._seen_events) > 10000:
                self._seen_events.clear()
            self._seen_events.add(event_id)
        if event.get("type") != "update":
            return
        label, previous = event.get("label"), event.get("previous")
        ts = _number(event.get("ts"))
        if ts is None or label not in LABELS:
            return
        kind = "label_changed" if previous is not None else "label_decided"
        track = event.get("track_id")
        track = int(track) if isinstance(track, int) and not isinstance(track, bool) else None
        if not alert_worthy(Event(kind, track if track is not None else -1, ts, 0, label, previous=previous),
                            PERSON_ALERT_LABELS):
            return
        if status.last_alert is not None and status.last_alert.ts > ts:
            return  # an older event (from the database, or late): the newer alert stands
        snapshot, box = event.get("snapshot"), event.get("box")
        box = tuple(_number(v) for v in box) if isinstance(box, list) and len(box) == 4 else None
        status.last_alert = SiteAlert("mask_off" if kind == "label_changed" else label, ts, track,
                                      snapshot if isinstance(snapshot, str) and snapshot else None,
                                      box if box is not None and None not in box else None)

    # -- reading ------------------------------------------------------------------------------
    def quiet_for(self, name: str, now: float) -> float:
        """Seconds since the camera's last news (or since the connect, when that is later)."""
        status = self.cameras[name]
        since = max(t for t in (status.last_news, self.connected_at, status.created) if t is not None)
        return max(0.0, now - since)

    def grey_reason(self, name: str, now: float, timeout_s: float) -> str | None:
        """Why ``name``'s tile is grey (``None``: it is not): serve offline, the camera ended, or no news."""
        status = self.cameras[name]
        if self.available == "offline":
            since = f" for {duration_text(now - self.available_since)}" if self.available_since else ""
            return f"serve offline{since}"
        if status.state == "ended":
            return "camera ended"
        quiet = self.quiet_for(name, now)
        if quiet > timeout_s:
            return f"nothing heard for {duration_text(quiet)} (timeout {duration_text(timeout_s)})"
        return None


def _checked_rate(rate: float) -> float:
    if not math.isfinite(rate) or not 0.0 <= rate <= 1.0:
        raise ValueError("rate")
    return rate


# -- the MQTT side ------------------------------------------------------------------------------------


class _Bridge(QObject):
    """paho's callbacks (its network thread) -> Qt signals (delivered queued in the GUI thread)."""

    message = pyqtSignal(int, str, bytes, bool)  # generation, topic, payload, retained
    link = pyqtSignal(int, str, str)  # generation, what ("connected", "refused", "unreachable", "lost"), detail


class _Client:
    """One paho client for one connection attempt: ``generation`` tags everything it reports."""

    def __init__(self, settings, bridge: _Bridge, generation: int) -> None:
        from maskwatch.site.publisher import make_client

        self.settings, self.bridge, self.generation = settings, bridge, generation
        self.closing = False
        self.client = make_client(settings)  # MQTT 3.1.1, clean session, credentials, TLS, backoff
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        try:
            self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
        except (OSError, ValueError) as e:  # paho checks its arguments here; the network comes later
            raise MaskwatchError(f"cannot use broker {self.settings.address}: {e}") from None
        self.client.loop_start()

    def close(self) -> None:
        self.closing = True
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001 - never connected: nothing to say goodbye to
            pass
        self.client.loop_stop()

    # paho's network thread: emit only
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.bridge.link.emit(self.generation, "refused", str(reason_code))
            return
        client.subscribe(f"{self.settings.prefix}/#", qos=1)
        self.bridge.link.emit(self.generation, "connected", "")

    def _on_connect_fail(self, client, userdata) -> None:
        self.bridge.link.emit(self.generation, "unreachable", "")

    def _on_disconnect(self, client, userdata, disconnect_flags, reason_code, properties) -> None:
        if not self.closing:
            self.bridge.link.emit(self.generation, "lost", str(reason_code))

    def _on_message(self, client, userdata, message) -> None:
        self.bridge.message.emit(self.generation, message.topic, bytes(message.payload), bool(message.retain))


# -- widgets --------------------------------------------------------------------------------------------


def _state_color(state: str | None) -> str:
    from maskwatch.gui.side_panel import STATE_COLORS

    rgb = STATE_COLORS.get(state or "idle", (110, 116, 128))
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def _label_color(label: str) -> str:
    if label in _LABEL_TEXT:
        return _LABEL_TEXT[label]
    from maskwatch.overlay import color_rgb

    r, g, b = color_rgb(label)[:3]
    return f"rgb({r},{g},{b})"


class CameraTile(QFrame):
    """One camera: name, state pill, people in view, compliance, last alert with its snapshot.

    Emits ``activated(name)`` on a double-click and ``history_requested(name)`` from its menu."""

    activated = pyqtSignal(str)
    history_requested = pyqtSignal(str)
    THUMB = 72

    def __init__(self, name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.name = name
        self.setObjectName("card")
        self.setProperty("stale", "false")
        self.setFixedSize(TILE_WIDTH, TILE_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setToolTip(f"{name}: double-click to open it in the Monitor tab (or see its history)")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(12, 10, 12, 10)
        outer.setSpacing(5)
        head = QHBoxLayout()
        self.name_label = QLabel(name.upper())
        self.name_label.setObjectName("cardTitle")
        self.pill = QLabel("—")
        self.pill.setObjectName("statePill")
        self.pill.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pill.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)
        head.addWidget(self.name_label, 1)
        head.addWidget(self.pill)
        outer.addLayout(head)
        self.state_label = QLabel("")
        self.state_label.setObjectName("muted")
        self.state_label.setWordWrap(True)
        outer.addWidget(self.state_label)
        self.in_view_label = QLabel("")
        self.in_view_label.setTextFormat(Qt.TextFormat.RichText)
        self.in_view_label.setWordWrap(True)
        outer.addWidget(self.in_view_label)
        self.compliance_label = QLabel("")
        self.compliance_label.setObjectName("compliance")
        outer.addWidget(self.compliance_label)
        self.today_label = QLabel("")
        self.today_label.setObjectName("muted")
        outer.addWidget(self.today_label)
        alert = QHBoxLayout()
        alert.setSpacing(8)
        self.thumb = QLabel()
        self.thumb.setFixedSize(self.THUMB, self.THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumb.setVisible(False)
        self.alert_label = QLabel("no alert")
        self.alert_label.setObjectName("muted")
        self.alert_label.setWordWrap(True)
        alert.addWidget(self.thumb)
        alert.addWidget(self.alert_label, 1)
        outer.addLayout(alert)
        outer.addStretch(1)
        self._thumb_path: str | None = None
        self.alerts_since = "since connected"  # "today" once the site's database was read
        self.stale = False
        self.grey_reason: str | None = None

    # filled by SiteTab._refresh_tile
    def show_status(self, status: CameraStatus, grey: str | None, quiet_s: float, now: float) -> None:
        state = status.state or "unknown"
        if grey is None or grey == "camera ended":
            pill = state.upper()
        else:
            pill = "OFFLINE" if grey.startswith("serve offline") else "NO DATA"
        self.pill.setText(pill)
        self.pill.setStyleSheet(f"background: {_state_color(None if grey else status.state)};")
        if status.state_since is not None:
            since = duration_text(now - status.state_since)
            since = f"{'' if status.state_exact else '≥ '}{since}"
            self.state_label.setText(f"last known: {state} for {since}\n{grey}" if grey
                                     else f"{state} for {since} · heard {duration_text(quiet_s)} ago")
        else:
            self.state_label.setText(grey or "no state yet")
        if status.in_view:
            parts = [f"<span style='color:{_label_color(label)}'>■</span>&nbsp;{status.in_view.get(label, 0)}&nbsp;"
                     f"{SHORT_LABEL[label].replace(' ', '&nbsp;')}" for label in LABELS]
            n = status.people_in_view
            self.in_view_label.setText(f"<b>{n}</b> in view: " + "  ".join(parts))
        else:
            self.in_view_label.setText("in view: —")
        last = _rate_text(status.compliance) if status.compliance_known else "—"
        if status.compliance_known and status.compliance is None:
            last = "nobody decided"
        self.compliance_label.setText(f"last interval {last}")
        rate, decided = status.today_rate(now)
        self.today_label.setText(f"today {_rate_text(rate)} of {decided} decided" if decided
                                 else "today: nobody decided yet")
        self._show_alert(status.last_alert)
        stale = grey is not None
        if stale != self.stale:
            self.stale = stale
            self.setProperty("stale", "true" if stale else "false")
            self.setStyleSheet(STALE_STYLE if stale else "")
        self.grey_reason = grey

    def _show_alert(self, alert: SiteAlert | None) -> None:
        if alert is None:
            self.alert_label.setText(f"no alert {self.alerts_since}")
            self._set_thumb(None)
            return
        when = datetime.fromtimestamp(alert.ts).strftime("%H:%M:%S")
        who = f"#{alert.track_id} " if alert.track_id is not None else ""
        text = f"last alert {when}: {who}{ALERT_TEXT.get(alert.kind, alert.kind)}"
        path = alert.snapshot
        if path is None:
            text += "\nno snapshot"
            self._set_thumb(None)
        elif Path(path).is_file():
            self._set_thumb(path, alert.box)
        else:
            text += "\nsnapshot not on this machine"
            self._set_thumb(None)
        self.alert_label.setText(text)

    def _set_thumb(self, path: str | None, box=None) -> None:
        if path == self._thumb_path:
            return
        self._thumb_path = path
        pixmap = QPixmap(path) if path else QPixmap()
        if not pixmap.isNull() and box is not None:  # the person's face, with some room around it
            x1, y1, x2, y2 = box
            side = max(x2 - x1, y2 - y1) * 1.6
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            left, top = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
            right, bottom = min(pixmap.width(), int(cx + side / 2)), min(pixmap.height(), int(cy + side / 2))
            if right - left >= 8 and bottom - top >= 8:
                pixmap = pixmap.copy(left, top, right - left, bottom - top)
        if pixmap.isNull():
            self.thumb.clear()
            self.thumb.setVisible(False)
            return
        self.thumb.setPixmap(pixmap.scaled(self.THUMB, self.THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation))
        self.thumb.setVisible(True)

    @property
    def thumbnail_shown(self) -> bool:
        return self._thumb_path is not None and not self.thumb.isHidden()

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.activated.emit(self.name)
        event.accept()

    def contextMenuEvent(self, event) -> None:  # noqa: N802
        menu = QMenu(self)
        menu.addAction("Open in the Monitor tab", lambda: self.activated.emit(self.name))
        menu.addAction("Recent history…", lambda: self.history_requested.emit(self.name))
        menu.exec(event.globalPos())


class HistoryDialog(QDialog):
    """A camera's last day of interval rows and its last alerts, read from the history database."""

    ROWS = 60

    def __init__(self, camera: str, db_url: str, shown_url: str, parent: QWidget | None = None, now: float | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"{camera}: recent history")
        self.resize(760, 460)
        layout = QVBoxLayout(self)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        columns = ("start", "end", "people", *(SHORT_LABEL[k] for k in LABELS), "compliance", "state")
        self.table = QTableWidget(0, len(columns))
        self.table.setHorizontalHeaderLabels(list(columns))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout.addWidget(self.table, 1)
        self.alerts = QLabel("")
        self.alerts.setObjectName("muted")
        self.alerts.setWordWrap(True)
        layout.addWidget(self.alerts)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.error: str | None = None
        self.load(camera, db_url, shown_url, time.time() if now is None else now)

    def load(self, camera: str, db_url: str, shown_url: str, now: float) -> None:
        from maskwatch.site.history import History
        from maskwatch.site.report import summarize

        try:
            history = History(db_url, create=False)  # a viewer never creates a database
            try:
                rows = history.intervals(since=now - 86400.0, camera=camera)
                events = history.events(since=now - 86400.0, camera=camera)
            finally:
                history.close()
        except MaskwatchError as e:
            self.error = str(e)
            self.summary.setText(f"cannot read the history: {e}")
            return
        if not rows:
            self.summary.setText(f"no interval rows of {camera} in the last 24 h in {shown_url}")
        else:
            total = summarize(rows)
            decided = sum(p.decided for p in total)
            masked = sum(p.by_label["with_mask"] for p in total)
            outage = sum(p.outage_s for p in total)
            self.summary.setText(
                f"{camera}, last 24 h ({len(rows)} intervals, {shown_url}): compliance "
                f"{_rate_text(masked / decided if decided else None)} of {decided} decided people, "
                f"outage {duration_text(outage)}")
        shown_rows = rows[-self.ROWS:][::-1]
        self.table.setRowCount(len(shown_rows))
        for r, row in enumerate(shown_rows):
            cells = [datetime.fromtimestamp(row["start_ts"]).strftime("%H:%M:%S"),
                     datetime.fromtimestamp(row["end_ts"]).strftime("%H:%M:%S"), str(row.get("people_seen", 0)),
                     *(str(row.get(k, 0)) for k in LABELS), _rate_text(row.get("compliance_rate")),
                     str(row.get("source_state", ""))]
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        probe = SiteState()
        lines = []
        for event in events[::-1]:
            status = CameraStatus(camera)
            probe.add_event(status, event)
            if status.last_alert is not None:
                a = status.last_alert
                lines.append(f"{datetime.fromtimestamp(a.ts).strftime('%H:%M:%S')} "
                             f"{'#%d ' % a.track_id if a.track_id is not None else ''}{ALERT_TEXT.get(a.kind, a.kind)}")
            if len(lines) >= 8:
                break
        self.alerts.setText("last alerts: " + ("; ".join(lines) if lines else "none in the last 24 h"))


class SiteTab(QWidget):
    """The Site tab (see the module docstring).

    Signals: ``open_camera(name)`` on a double-click of a tile; ``open_source(url)`` with that
    camera's source from the opened site config (the password in it: for the source picker only,
    never to be shown or stored). ``shutdown()`` disconnects (call it when the window closes).
    """

    open_camera = pyqtSignal(str)
    open_source = pyqtSignal(str)
    changed = pyqtSignal()  # after every message handled and every refresh (tests wait on it)

    def __init__(self, settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.state = SiteState(self._saved("site/prefix", "maskwatch"))
        self.tiles: dict[str, CameraTile] = {}
        self._columns = 0
        self.site = None  # the opened SiteConfig (or None)
        self.site_db: tuple[str, str] | None = None  # (database URL, shown URL) of the opened config
        self.site_path: Path | None = None
        self._site_note = ""  # " · site config ...: N cameras, history ..." once one is opened
        self.connection = "disconnected"  # disconnected, connecting, connected, refused, unreachable, lost
        self._client: _Client | None = None
        self._generation = 0
        self._bridge = _Bridge(self)
        self._bridge.message.connect(self._on_message)
        self._bridge.link.connect(self._on_link)
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        app = QApplication.instance()
        if app is not None:  # the app quitting without shutdown(): paho's thread still ends
            app.aboutToQuit.connect(self.shutdown)
        self.refresh()

    # -- settings (never the password) ------------------------------------------------------------
    def _saved(self, key: str, default):
        value = self.settings.q.value(key, None)
        if value is None or value == "":
            return default
        try:
            if isinstance(default, bool):
                return str(value).strip().lower() in ("1", "true", "yes", "on")
            return type(default)(value)
        except (TypeError, ValueError):
            return default

    def _save_fields(self) -> None:
        self.settings.q.setValue("site/host", self.host_edit.text().strip())
        self.settings.q.setValue("site/port", int(self.port_spin.value()))
        self.settings.q.setValue("site/username", self.user_edit.text().strip())
        self.settings.q.setValue("site/prefix", self.prefix_edit.text().strip() or "maskwatch")
        self.settings.q.setValue("site/tls", bool(self.tls_box.isChecked()))
        self.settings.q.setValue("site/timeout_s", int(self.timeout_spin.value()))
        self.settings.q.sync()

    # -- layout ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 8, 8, 8)
        outer.setSpacing(6)
        bar = QHBoxLayout()
        bar.setSpacing(6)
        self.host_edit = QLineEdit(self._saved("site/host", ""))
        self.host_edit.setPlaceholderText("broker host")
        self.host_edit.setToolTip("The MQTT broker maskwatch serve publishes to ([mqtt] host of site.toml)")
        self.port_spin = QSpinBox()
        self.port_spin.setRange(1, 65535)
        self.port_spin.setValue(min(max(self._saved("site/port", 1883), 1), 65535))
        self.port_spin.setToolTip("Broker port (1883; TLS usually 8883)")
        self.user_edit = QLineEdit(self._saved("site/username", ""))
        self.user_edit.setPlaceholderText("user (optional)")
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setPlaceholderText("broker password")
        self.password_edit.setToolTip("Sent only to the broker; never shown, logged or saved")
        self.prefix_edit = QLineEdit(self._saved("site/prefix", "maskwatch"))
        self.prefix_edit.setPlaceholderText("prefix")
        self.prefix_edit.setToolTip("The topic prefix ([mqtt] prefix of site.toml)")
        self.prefix_edit.setMaximumWidth(110)
        self.tls_box = QCheckBox("TLS")
        self.tls_box.setChecked(self._saved("site/tls", False))
        self.timeout_spin = QSpinBox()
        self.timeout_spin.setRange(0, 86400)
        self.timeout_spin.setSpecialValueText("auto")
        self.timeout_spin.setSuffix(" s")
        self.timeout_spin.setValue(min(max(self._saved("site/timeout_s", 0), 0), 86400))
        self.timeout_spin.setMaximumWidth(90)
        self.port_spin.setMaximumWidth(90)
        self.timeout_spin.setToolTip("A camera that sends nothing this long turns grey "
                                     "(auto: two intervals and 10 s)")
        self.timeout_spin.valueChanged.connect(lambda _v: (self._save_fields(), self.refresh()))
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self.toggle_connection)
        self.open_button = QPushButton("Open site.toml…")
        self.open_button.setToolTip("The site's config: each camera's source (double-click opens it) and its "
                                    "history database")
        self.open_button.clicked.connect(self.choose_site_config)
        for edit in (self.host_edit, self.user_edit, self.password_edit, self.prefix_edit):
            edit.returnPressed.connect(self.connect_broker)
        for widget, stretch in ((QLabel("Broker"), 0), (self.host_edit, 2), (self.port_spin, 0), (self.user_edit, 1),
                                (self.password_edit, 1), (self.prefix_edit, 0), (self.tls_box, 0),
                                (QLabel("Grey after"), 0), (self.timeout_spin, 0), (self.connect_button, 0),
                                (self.open_button, 0)):
            bar.addWidget(widget, stretch)
        outer.addLayout(bar)
        self.status_label = QLabel("not connected")
        self.status_label.setObjectName("muted")
        self.status_label.setWordWrap(True)
        outer.addWidget(self.status_label)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(10)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.empty_label = QLabel("No cameras yet. Enter the broker that maskwatch serve publishes to and press "
                                  "Connect; Open site.toml… fills it in from the site's config.")
        self.empty_label.setObjectName("muted")
        self.empty_label.setWordWrap(True)
        self.grid.addWidget(self.empty_label, 0, 0)
        self.scroll.setWidget(self.grid_host)
        outer.addWidget(self.scroll, 1)
        self._message = ""

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._relayout()

    def _relayout(self) -> None:
        width = max(self.scroll.viewport().width(), TILE_WIDTH)
        columns = max(1, (width + 10) // (TILE_WIDTH + 10))
        if columns == self._columns and all(self.grid.indexOf(t) >= 0 for t in self.tiles.values()):
            return
        self._columns = columns
        for tile in self.tiles.values():
            self.grid.removeWidget(tile)
        for i, name in enumerate(self._order()):
            self.grid.addWidget(self.tiles[name], i // columns, i % columns)
        self.empty_label.setVisible(not self.tiles)

    def _order(self) -> list[str]:
        configured = [c.name for c in self.site.cameras] if self.site is not None else []
        return [n for n in configured if n in self.tiles] + sorted(n for n in self.tiles if n not in configured)

    # -- the broker -------------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self.connection == "connected"

    def toggle_connection(self) -> None:
        if self._client is not None:
            self.shutdown()
        else:
            self.connect_broker()

    def broker_settings(self):
        """The fields as :class:`MqttSettings` (a :class:`MaskwatchError` line when one is wrong)."""
        from maskwatch.site.publisher import MqttSettings

        table = {"host": self.host_edit.text().strip() or None, "port": int(self.port_spin.value()),
                 "prefix": self.prefix_edit.text().strip() or "maskwatch", "tls": bool(self.tls_box.isChecked()),
                 "discovery": False}
        table = {k: v for k, v in table.items() if v is not None}
        if self.user_edit.text().strip():
            table["username"] = self.user_edit.text().strip()
        if self.password_edit.text():
            table["password"] = self.password_edit.text()
        mqtt = self.site.mqtt if self.site is not None else None
        if mqtt is not None and mqtt.host == table.get("host") and mqtt.port == table["port"] and mqtt.ca_certs:
            table["ca_certs"] = str(mqtt.ca_certs)  # the site's own CA file, when it is the site's broker
        if "host" not in table:
            raise MaskwatchError("Site: enter the broker's host (the [mqtt] host of site.toml)")
        return MqttSettings.from_table(table, "Site")

    def connect_broker(self) -> bool:
        """(Re)connect with the fields; ``False`` (and one line in the tab) when they are wrong."""
        self.shutdown(quiet=True)
        try:
            settings = self.broker_settings()
        except MaskwatchError as e:
            self._say(str(e), error=True)
            return False
        self._save_fields()
        if settings.prefix != self.state.prefix:
            self._set_prefix(settings.prefix)
        self._generation += 1
        try:
            client = _Client(settings, self._bridge, self._generation)
            client.start()
        except MaskwatchError as e:
            self._say(str(e), error=True)
            return False
        except Exception as e:  # noqa: BLE001 - a TLS file paho cannot read, ...: one line, no traceback
            self._say(f"cannot use broker {settings.address}: {type(e).__name__}: {e}", error=True)
            return False
        self._client, self._address = client, settings.address
        self.connection = "connecting"
        self.connect_button.setText("Disconnect")
        self._say(f"connecting to {settings.address} …")
        return True

    def shutdown(self, quiet: bool = False) -> None:
        """Disconnect from the broker (the tiles stay, greyed by their timeouts)."""
        client, self._client = self._client, None
        self._generation += 1  # whatever that client still has queued is dropped
        if client is not None:
            client.close()
        self.connection = "disconnected"
        self.connect_button.setText("Connect")
        if client is not None and not quiet:
            self._say("disconnected")

    def _on_link(self, generation: int, what: str, detail: str) -> None:
        if generation != self._generation:
            return
        address = getattr(self, "_address", "")
        if what == "lost" and self.connection != "connected":
            return  # the end of a refused or failed attempt: that reason stands
        self.connection = what
        if what == "connected":
            self.state.connected()
            self._say(f"connected to {address}, topics {self.state.prefix}/#{self._site_note}")
        elif what == "refused":
            self._say(f"broker {address} refused the connection: {detail} (check user and password); retrying",
                      error=True)
        elif what == "unreachable":
            self._say(f"broker {address} not reachable (down, or wrong host or port?); retrying", error=True)
        elif what == "lost":
            self._say(f"connection to {address} lost ({detail}); reconnecting", error=True)
        self.refresh()

    def _on_message(self, generation: int, topic: str, payload: bytes, retained: bool) -> None:
        if generation == self._generation:
            self.feed(topic, payload, retained)

    def feed(self, topic: str, payload: bytes, retained: bool = False, now: float | None = None) -> None:
        """One MQTT message (the bridge's, or a recorded one in tests)."""
        changed = self.state.handle(topic, payload, retained, now)
        if changed == "*":
            self.refresh(now)
        elif changed is not None:
            self._refresh_tile(changed, time.time() if now is None else now)
            self.changed.emit()

    # -- the site config ----------------------------------------------------------------------------------
    def choose_site_config(self) -> None:
        start = str(self.site_path.parent) if self.site_path else self._saved("site/config_dir", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Open the site's config", start, "Site config (*.toml);;All files (*)")
        if path:
            self.open_site_config(path)

    def open_site_config(self, path) -> bool:
        """Read ``site.toml``: the broker fields, each camera's source, the history database.

        A config whose cameras cannot be read here (a camera password from an environment variable
        this app does not have, ...) still gives the broker and the database, with the reason shown."""
        from maskwatch.site.config import SiteConfig

        path = Path(path).expanduser()
        note = ""
        try:
            site = SiteConfig.load(path)
            mqtt, db = site.mqtt, (site.db_url, site.shown_db_url)
        except MaskwatchError as e:
            try:
                mqtt, db_url, shown_db = SiteConfig.load_broker_and_db(path)
                site, db = None, (db_url, shown_db)
                note = f"; its cameras could not be read ({e})"
            except MaskwatchError as e2:
                self._say(str(e2 if "[mqtt]" not in str(e2) else e), error=True)
                return False
        self.site, self.site_db, self.site_path = site, db, path
        self.settings.q.setValue("site/config_dir", str(path.parent))
        self.settings.q.sync()
        if mqtt is not None:
            if mqtt.prefix != self.state.prefix:
                self._set_prefix(mqtt.prefix, seed=False)
            self.host_edit.setText(mqtt.host)
            self.port_spin.setValue(mqtt.port)
            self.prefix_edit.setText(mqtt.prefix)
            self.user_edit.setText(mqtt.username or "")
            self.tls_box.setChecked(bool(mqtt.tls))
            self.password_edit.setText(mqtt.password or "")  # hidden (password echo), never stored
        if site is not None:
            for camera in site.cameras:
                self._tile(camera.name)
        self._relayout()
        seeded = self._seed_from_history()
        from maskwatch.sources.spec import display_path

        self._site_note = f" · {display_path(path)}: {len(site.cameras) if site else '?'} cameras, history {db[1]}"
        self._say(f"site config {display_path(path)}: {len(site.cameras) if site else '?'} cameras, "
                  f"history {db[1]}{seeded}{note}", error=bool(note))
        self.refresh()
        return True

    def _seed_from_history(self) -> str:
        """Today's intervals and alerts from the opened site's database (" (today from the database)")."""
        if self.site_db is None:
            return ""
        from maskwatch.site.history import History

        midnight = local_midnight(time.time())
        try:
            history = History(self.site_db[0], create=False)
            try:
                rows, events = history.intervals(since=midnight), history.events(since=midnight)
            finally:
                history.close()
        except MaskwatchError as e:
            return f" (not readable: {e})"
        for row in rows:
            status = self.state.camera(str(row.get("camera")))
            if status is not None:
                try:
                    self.state.add_interval(status, row)
                except (ValueError, TypeError):
                    pass
        for event in events:
            status = self.state.camera(str(event.get("camera")))
            if status is not None:
                self.state.add_event(status, event)
        for name in self.state.cameras:
            tile = self._tile(name)
            if tile is not None:
                tile.alerts_since = "today"
        return f", {len(rows)} interval rows of today"

    # -- tiles --------------------------------------------------------------------------------------------
    def _tile(self, name: str) -> CameraTile | None:
        tile = self.tiles.get(name)
        if tile is None:
            if self.state.camera(name) is None:
                return None
            tile = self.tiles[name] = CameraTile(name, self.grid_host)
            tile.activated.connect(self.activate)
            tile.history_requested.connect(self.show_history)
            self._columns = 0  # lay out again
            self._relayout()
        return tile

    def _set_prefix(self, prefix: str, seed: bool = True) -> None:
        """Another site (topic prefix): start over, keeping the opened config's cameras."""
        self._clear_tiles()
        self.state = SiteState(prefix)
        if self.site is not None:
            for camera in self.site.cameras:
                self._tile(camera.name)
        if seed:
            self._seed_from_history()

    def _clear_tiles(self) -> None:
        for tile in self.tiles.values():
            self.grid.removeWidget(tile)
            tile.setParent(None)
            tile.deleteLater()
        self.tiles.clear()
        self._columns = 0
        self._relayout()

    def timeout_s(self, name: str) -> float:
        """The camera's grey-after time: the box's value, or two intervals and 10 s."""
        fixed = int(self.timeout_spin.value())
        if fixed > 0:
            return float(fixed)
        interval = None
        if self.site is not None:
            try:
                interval = self.site.camera(name).config.interval_s
            except KeyError:
                pass
        status = self.state.cameras.get(name)
        if interval is None and status is not None:
            interval = status.interval_s
        return timeout_for(interval)

    def _refresh_tile(self, name: str, now: float) -> None:
        tile = self._tile(name)
        if tile is None:
            return
        status = self.state.cameras[name]
        grey = self.state.grey_reason(name, now, self.timeout_s(name))
        if grey is None and not self.is_connected:
            grey = "not connected to the broker"
        tile.show_status(status, grey, self.state.quiet_for(name, now), now)

    def refresh(self, now: float | None = None) -> None:
        """Every tile again (durations, timeouts): once a second and after site-wide news."""
        now = time.time() if now is None else now
        for name in list(self.state.cameras):
            self._refresh_tile(name, now)
        self.empty_label.setVisible(not self.tiles)
        self.changed.emit()

    def _say(self, text: str, error: bool = False) -> None:
        from maskwatch.sources.spec import redact

        text = " ".join(redact(text).split())  # no message here is built with the password in it
        if text != self._message:  # a retry that fails the same way again is not news
            (log.warning if error else log.info)("site tab: %s", text)
        self._message = text
        self.status_label.setText(text)
        self.status_label.setStyleSheet(f"color: {ERROR_TEXT};" if error else "")

    # -- double-click ---------------------------------------------------------------------------------------
    def activate(self, name: str) -> None:
        """A tile was double-clicked: ``open_camera``; then its source, or its history, or a hint."""
        self.open_camera.emit(name)
        if self.site is not None:
            try:
                camera = self.site.camera(name)
            except KeyError:
                camera = None
            if camera is not None:
                self._say(f"{name}: opening {camera.shown_source} in the Monitor tab")
                self.open_source.emit(str(camera.config.source))
                return
        if self.site_db is not None:
            self.show_history(name)
            return
        self._say(f"{name}: open the site's site.toml to open this camera or see its history")

    def history_dialog(self, name: str) -> HistoryDialog | None:
        if self.site_db is None:
            self._say(f"{name}: open the site's site.toml (it names the history database) to see its history")
            return None
        return HistoryDialog(name, self.site_db[0], self.site_db[1], self)

    def show_history(self, name: str) -> None:
        dialog = self.history_dialog(name)
        if dialog is not None:
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.show()
