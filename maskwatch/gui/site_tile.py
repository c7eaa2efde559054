"""The Site tab's tile: one camera's name, state pill, people in view, compliance and last alert
with its snapshot (:class:`CameraTile`, filled from a :class:`~maskwatch.gui.site_state.CameraStatus`).

A grey tile (serve offline, the camera ended, no news for its timeout) has the sunken background
and every text muted (:data:`STALE_STYLE`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QPixmap
from PyQt6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMenu, QSizePolicy, QVBoxLayout, QWidget

from maskwatch import LABELS
from maskwatch.gui.side_panel import STATE_COLORS
from maskwatch.gui.site_state import ALERT_TEXT, SHORT_LABEL, CameraStatus, SiteAlert, duration_text, rate_text
from maskwatch.gui.theme import COLORS as _THEME, LABEL_TEXT as _LABEL_TEXT  # named, contrast-checked colours
from maskwatch.overlay import color_rgb

TILE_WIDTH, TILE_HEIGHT = 300, 214

MUTED = _THEME["muted"]
SUNKEN = _THEME["sunken"]
LINE = _THEME["line"]
ERROR_TEXT = _LABEL_TEXT["without_mask"]
STALE_STYLE = (f"#card {{ background: {SUNKEN}; border: 1px dashed {LINE}; border-radius: 8px; }} "
               f"QLabel {{ color: {MUTED}; }} QLabel#statePill {{ color: {_THEME.get('on_accent', '#ffffff')}; }}")
"""A grey tile: the sunken background and every text muted (contrast as the theme's muted text)."""


def _state_color(state: str | None) -> str:
    rgb = STATE_COLORS.get(state or "idle", (110, 116, 128))
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def _label_color(label: str) -> str:
    if label in _LABEL_TEXT:
        return _LABEL_TEXT[label]
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
        last = rate_text(status.compliance) if status.compliance_known else "—"
        if status.compliance_known and status.compliance is None:
            last = "nobody decided"
        self.compliance_label.setText(f"last interval {last}")
        rate, decided = status.today_rate(now)
        self.today_label.setText(f"today {rate_text(rate)} of {decided} decided" if decided
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
