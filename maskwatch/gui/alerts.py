"""The desktop app's alert widgets: the banner over the video and the alert log (with thumbnails).

When an alert is raised is decided without Qt, by :class:`~maskwatch.sinks.alerts.AlertPolicy` in
the monitor's :class:`~maskwatch.sinks.alerts.AlertSink` (the same one ``maskwatch --headless``
runs); the alerts reach the window in each delivery of the worker's mailbox. ``Alert`` and
``AlertPolicy`` are re-exported here for code that imported them from this module.
"""

from __future__ import annotations

import time

import numpy as np
from PyQt6.QtCore import QSize, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from PyQt6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from maskwatch.gui.theme import (  # noqa: F401 - re-exported: the colours moved to the theme, which checks them
    BANNER_COLORS,
    SEVERITY_COLORS,
    banner_color,
    banner_text_color,
)
from maskwatch.gui.video_view import to_qimage
from maskwatch.overlay import DISPLAY_NAMES
from maskwatch.sinks.alerts import Alert, AlertPolicy  # noqa: F401 - re-exported (moved out of Qt)

KIND_NAMES = {"mask_off": "mask taken off", "compliance": "compliance", "interval_compliance": "interval compliance"}
"""Tooltip names of the alert kinds that are not labels (labels use ``DISPLAY_NAMES``)."""
COMPLIANCE_KINDS = ("compliance", "interval_compliance")


class AlertBanner(QFrame):
    """A coloured bar over the video; hides itself after ``timeout_ms`` or when dismissed."""

    def __init__(self, timeout_ms: int = 10000, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("alertBanner")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 8, 8, 8)
        self.icon = QLabel("⚠")
        self.icon.setObjectName("alertIcon")
        self.text = QLabel()
        self.text.setObjectName("alertText")
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # a long message wraps inside the banner: it must never widen the window
        self.text.setWordWrap(True)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.text.setMinimumWidth(120)
        close = QToolButton()
        close.setText("✕")
        close.setObjectName("alertClose")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout.addWidget(self.icon)
        layout.addWidget(self.text, 1)
        layout.addWidget(close)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self._timeout_ms = timeout_ms
        self.hide()

    def show_message(self, message: str, kind: str = "compliance", sticky: bool = False) -> None:
        r, g, b = banner_color(kind)
        fg = banner_text_color((r, g, b))
        self.setStyleSheet(f"#alertBanner {{ background: rgb({r},{g},{b}); border-radius: 6px; }}"
                           f"#alertText, #alertIcon, #alertClose {{ color: {fg}; font-weight: 600; background: transparent; border: none; }}")
        self.icon.setText("ℹ" if kind == "info" else "⚠")
        self.text.setText(message)
        self.show()
        if sticky:
            self._timer.stop()
        else:
            self._timer.start(self._timeout_ms)


def thumbnail_icon(image_rgb: np.ndarray | None, color: tuple[int, int, int], size: int = 56, mark: str = "!") -> QIcon:
    """A square icon of a face crop (RGB) framed in ``color`` (or ``mark`` on ``color`` when there is none)."""
    pix = QPixmap(size, size)
    pix.fill(QColor(*color))
    p = QPainter(pix)
    if image_rgb is not None and image_rgb.size:
        img = to_qimage(image_rgb, bgr=False).scaled(size - 4, size - 4, Qt.AspectRatioMode.KeepAspectRatio,
                                              Qt.TransformationMode.SmoothTransformation)
        p.drawImage((size - img.width()) // 2, (size - img.height()) // 2, img)
    else:
        font = QFont()
        font.setPixelSize(size // 2)
        font.setBold(True)
        p.setFont(font)
        p.setPen(QColor(255, 255, 255))
        p.drawText(pix.rect(), Qt.AlignmentFlag.AlignCenter, mark)
    p.end()
    return QIcon(pix)


class AlertLog(QListWidget):
    """Newest alert first, with the person's thumbnail; emits ``alert_added(Alert)``."""

    alert_added = pyqtSignal(object)

    def __init__(self, max_items: int = 200, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("alertLog")
        self.setIconSize(QSize(56, 56))
        self.setUniformItemSizes(False)
        self.setWordWrap(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.max_items = max_items
        self.alerts: list[Alert] = []

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().paintEvent(event)
        if self.count() == 0:
            p = QPainter(self.viewport())
            p.setPen(QColor(120, 126, 136))
            p.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter, "No alerts yet")
            p.end()

    def add(self, alert: Alert) -> None:
        self.alerts.append(alert)
        stamp = time.strftime("%H:%M:%S", time.localtime(alert.at))
        label = KIND_NAMES.get(alert.kind) or DISPLAY_NAMES.get(alert.kind, alert.kind)
        kind = alert.label if alert.kind == "mask_off" and alert.label in SEVERITY_COLORS else alert.kind
        item = QListWidgetItem(thumbnail_icon(alert.thumbnail, SEVERITY_COLORS.get(kind, (120, 120, 120)),
                                              mark="%" if alert.kind in COMPLIANCE_KINDS else "!"),
                               f"{stamp}  {alert.message}")
        item.setToolTip(f"{stamp} — {label}: {alert.message}")
        self.insertItem(0, item)
        while self.count() > self.max_items:
            self.takeItem(self.count() - 1)
        self.alert_added.emit(alert)


def play_alert_sound() -> None:
    """The system bell (works everywhere Qt runs; no audio files or QtMultimedia needed)."""
    QApplication.beep()
