"""The Review tab's crop grid: the thumbnails, and the keys that label the current crop.

:class:`CropGrid` turns ``1`` ``2`` ``3`` ``X`` (:data:`KEYS`), ``S`` (skip) and ``Z`` / Ctrl+Z
(undo) into signals; the arrows still move. :data:`THUMB` is the thumbnail size, :data:`SHORT`
the captions' short label names.
"""

from __future__ import annotations

from PyQt6.QtCore import QSize, Qt, pyqtSignal
from PyQt6.QtGui import QKeyEvent, QKeySequence
from PyQt6.QtWidgets import QListView, QListWidget, QWidget

from maskwatch.gui.review_session import NOT_A_FACE, SKIP

KEYS: dict[int, str] = {
    Qt.Key.Key_1: "with_mask",
    Qt.Key.Key_2: "without_mask",
    Qt.Key.Key_3: "mask_worn_incorrectly",
    Qt.Key.Key_X: NOT_A_FACE,
}
THUMB = 160
SHORT = {"with_mask": "mask", "without_mask": "no mask", "mask_worn_incorrectly": "incorrect", NOT_A_FACE: "not a face"}


class CropGrid(QListWidget):
    """The grid of crops; turns the review keys into :attr:`key_decision` (arrows still move)."""

    key_decision = pyqtSignal(str)
    key_undo = pyqtSignal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setGridSize(QSize(THUMB + 24, THUMB + 48))
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setWordWrap(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt name
        key = event.key()
        if key in KEYS and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            self.key_decision.emit(KEYS[key])
        elif key == Qt.Key.Key_S and not event.modifiers():
            self.key_decision.emit(SKIP)
        elif key == Qt.Key.Key_Z and not event.modifiers() or event.matches(QKeySequence.StandardKey.Undo):
            self.key_undo.emit()
        else:
            super().keyPressEvent(event)
