"""``VideoView``: the live frame scaled to the widget (aspect kept) with boxes coloured by class.

Boxes, colours and label names are those of :mod:`maskwatch.overlay` (the headless snapshots use
the same), drawn with QPainter in widget pixels so text stays crisp at any window size. Each box
gets ``"<label> <confidence>% #<track id>"``; undecided tracks are grey and dashed.

``drawn_boxes`` lists what the last paint drew (the screenshot script reports it).
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from maskwatch import LABELS
from maskwatch.faces import Faces
from maskwatch.overlay import UNDECIDED, color_rgb, label_names, label_text


def to_qimage(image: np.ndarray, bgr: bool = True) -> QImage:
    """A QImage that owns a copy of a BGR (or RGB, ``bgr=False``) or grayscale uint8 image.

    >>> to_qimage(np.zeros((4, 6, 3), np.uint8)).size().width()
    6
    """
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    if image.ndim == 2:
        return QImage(image.data, w, h, image.strides[0], QImage.Format.Format_Grayscale8).copy()
    fmt = QImage.Format.Format_BGR888 if bgr else QImage.Format.Format_RGB888
    return QImage(image.data, w, h, image.strides[0], fmt).copy()


class VideoView(QWidget):
    """Shows the newest frame and its faces; paints a hint when there is no frame yet.

    ``painted`` is emitted after each paint, when ``drawn_boxes`` describes what is on screen.
    """

    painted = pyqtSignal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 180)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._image: QImage | None = None
        self._faces: Faces = Faces.empty()
        self._hint = "Choose a source and press Start (Space)"
        self.drawn_boxes: list[dict] = []
        self.frames_shown = 0
        self.frame_index = -1  # index of the frame shown (Frame.index), -1 when none
        self._badge = ""  # e.g. "reconnecting in 3 s", drawn over the last frame

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt name
        return QSize(960, 540)

    def set_hint(self, text: str) -> None:
        self._hint = text
        self.update()

    def set_badge(self, text: str) -> None:
        """A notice over the (frozen) last frame while the source is down; "" removes it."""
        if text != self._badge:
            self._badge = text
            self.update()

    def set_frame(self, image_bgr: np.ndarray, faces: Faces, index: int = -1) -> None:
        self._image = to_qimage(image_bgr)
        self.frame_index = index
        self._faces = faces
        self.frames_shown += 1
        self.update()

    def clear(self) -> None:
        self._image = None
        self._faces = Faces.empty()
        self._badge = ""
        self.frame_index = -1
        self.drawn_boxes = []
        self.update()

    def has_frame(self) -> bool:
        return self._image is not None

    def image_rect(self) -> QRectF:
        """Where the frame is drawn: as large as fits, centred, aspect kept."""
        if self._image is None:
            return QRectF()
        iw, ih = self._image.width(), self._image.height()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt name
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(18, 20, 24))
        if self._image is None:
            p.setPen(QColor(150, 156, 166))
            f = QFont(self.font())
            f.setPointSizeF(f.pointSizeF() * 1.3)
            p.setFont(f)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._hint)
            self.drawn_boxes = []
            p.end()
            return
        target = self.image_rect()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.drawImage(target, self._image)
        self.drawn_boxes = self._draw_faces(p, target)
        if self._badge:
            p.fillRect(target, QColor(0, 0, 0, 110))
            f = QFont(self.font())
            f.setPointSizeF(f.pointSizeF() * 1.4)
            f.setBold(True)
            p.setFont(f)
            p.setPen(QColor(255, 255, 255))
            p.drawText(target, Qt.AlignmentFlag.AlignCenter, self._badge)
        p.end()
        self.painted.emit()

    def _draw_faces(self, p: QPainter, target: QRectF) -> list[dict]:
        faces = self._faces
        if not len(faces):
            return []
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        scale = target.width() / self._image.width()
        font = QFont(self.font())
        font.setBold(True)
        font.setPointSizeF(max(8.0, min(12.0, 9.0 + target.height() / 400)))
        p.setFont(font)
        fm = QFontMetricsF(font)
        names = label_names(faces)
        drawn = []
        for i, name in enumerate(names):
            x1, y1, x2, y2 = (float(v) for v in faces.xyxy[i])
            rect = QRectF(target.x() + x1 * scale, target.y() + y1 * scale, (x2 - x1) * scale, (y2 - y1) * scale)
            rect = rect.intersected(target)
            if rect.width() < 1 or rect.height() < 1:
                continue
            r, g, b = color_rgb(name if name in LABELS else UNDECIDED)
            color = QColor(r, g, b)
            pen = QPen(color, 2.5 if name != UNDECIDED else 1.5)
            if name == UNDECIDED:
                pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(rect)
            text = label_text(faces, i, name)
            tw, th = fm.horizontalAdvance(text) + 8, fm.height() + 2
            ty = rect.top() - th if rect.top() - th >= target.top() else rect.top()
            tx = min(rect.left(), target.right() - tw)
            tag = QRectF(tx, ty, tw, th)
            p.fillRect(tag, color)
            p.setPen(QColor(0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else QColor(255, 255, 255))
            p.drawText(tag.adjusted(4, 0, -4, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text)
            drawn.append({
                "track_id": int(faces.track_id[i]),
                "label": name,
                "decided": name in LABELS,
                "text": text,
                "color_rgb": [r, g, b],
                "rect": [round(rect.x(), 1), round(rect.y(), 1), round(rect.width(), 1), round(rect.height(), 1)],
            })
        return drawn

