"""The Review tab's widget: open a folder, label its crops with the keys, fine-tune on them.

See :mod:`maskwatch.gui.review` for the whole story (keys, files, colours). :class:`ReviewTab`
puts together the folder's :class:`~maskwatch.gui.review_session.ReviewSession`, the
:class:`~maskwatch.gui.review_grid.CropGrid` and the fine-tune row
(:class:`~maskwatch.gui.review_finetune.FinetuneControls`).
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QIcon, QPainter, QPixmap
from PyQt6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidgetItem,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from maskwatch.errors import MaskwatchError
from maskwatch.gui.review_finetune import FinetuneControls
from maskwatch.gui.review_grid import SHORT, THUMB, CropGrid
from maskwatch.gui.review_session import DECISIONS_NAME, LABELLED, SKIP, ReviewSession, labelled_counts


HINT_NO_FOLDER = (
    "Nothing to review yet.\n\n"
    "This tab shows the faces the model was least sure of, for you to label. To collect them: "
    "Settings \u2192 \u201cCollect uncertain faces\u201d (pick a folder), then Start a camera or a clip; "
    "or run  maskwatch --headless --source SOURCE --collect DIR.\n\n"
    "Then open that folder here: Open folder\u2026 (Ctrl+Shift+O). Any folder of face crops works too.")
HINT_ALL_DONE = (
    "Nothing left to review in {folder}: {labelled} crops are labelled in {labelled_dir}.\n\n"
    "Fine-tune on these (below), or collect more: Settings \u2192 \u201cCollect uncertain faces\u201d, or "
    "maskwatch --collect DIR; then open the folder again (Ctrl+Shift+O).")



class ReviewTab(FinetuneControls, QWidget):
    """Open a folder, then label its crops with the keys (see :mod:`maskwatch.gui.review`).

    Signals: ``changed()`` after every decision, undo and open (tests wait on it);
    ``finetune_finished(state, tflite, message)`` when a background fine-tune ends (``done``,
    ``failed`` or ``cancelled``); ``model_ready(path)`` when the user takes the new model
    (*Use the new model*): the window swaps it in."""

    changed = pyqtSignal()
    finetune_finished = pyqtSignal(str, str, str)
    model_ready = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.session: ReviewSession | None = None
        self.finetune_model: str | None = None   # None: the shipped float model
        self.finetune_args: list[str] = []       # more options for maskwatch-train finetune (tests: tiny runs)
        self.new_model: str | None = None
        self._thumbs: list[QPixmap] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        top = QHBoxLayout()
        self.open_button = QPushButton("Open folder…")
        self.open_button.setToolTip("A collect folder (collected.csv) or any folder of face crops (Ctrl+Shift+O)")
        self.open_button.clicked.connect(self.choose_folder)
        self.open_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys belong to the grid
        top.addWidget(self.open_button)
        self.progress = QLabel("No folder open")
        self.progress.setObjectName("reviewProgress")
        top.addWidget(self.progress, 1)
        layout.addLayout(top)
        self.keys_help = QLabel("1 with mask · 2 without mask · 3 worn incorrectly · X not a face · "
                                "S skip · Z undo · arrows move")
        self.keys_help.setObjectName("muted")
        layout.addWidget(self.keys_help)
        self.grid = CropGrid()
        self.grid.setObjectName("reviewGrid")
        self.grid.key_decision.connect(self.decide)
        self.grid.key_undo.connect(self.undo)
        self.hint = QLabel(HINT_NO_FOLDER)
        self.hint.setObjectName("reviewHint")
        self.hint.setWordWrap(True)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setMargin(24)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint)
        self.stack.addWidget(self.grid)
        layout.addWidget(self.stack, 1)
        self.message = QLabel("")
        self.message.setObjectName("muted")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message)
        self.warning = QLabel("")
        self.warning.setObjectName("reviewWarning")
        self.warning.setWordWrap(True)
        self.warning.hide()
        layout.addWidget(self.warning)

        self._build_finetune(layout)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Crops to review", str(Path.home()))
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> bool:
        """Show ``folder``'s crops; ``False`` (and the reason shown) when it cannot be reviewed."""
        try:
            session = ReviewSession(folder)
        except MaskwatchError as e:
            self.message.setText(str(e))
            return False
        self.session = session
        self.grid.clear()
        self._thumbs = []
        for crop in session.crops:
            thumb = self._thumbnail(session.folder / crop.file)
            self._thumbs.append(thumb)
            item = QListWidgetItem(QIcon(thumb), "")
            item.setToolTip(f"{crop.file}\n{crop.note}" if crop.note else crop.file)
            item.setSizeHint(QSize(THUMB + 20, THUMB + 44))
            self.grid.addItem(item)
            self._show_item(self.grid.count() - 1)
        self.message.setText("")
        self._show_hint()
        if session.crops:
            self.grid.setCurrentRow(0)
        self.grid.setFocus()
        self._show_progress()
        self.changed.emit()
        return True

    def _show_hint(self) -> None:
        """The grid, or (no folder, nothing to review) the text that says how to fill the tab."""
        s = self.session
        if s is not None and s.crops:
            self.stack.setCurrentWidget(self.grid)
            return
        if s is None:
            self.hint.setText(HINT_NO_FOLDER)
        else:
            self.hint.setText(HINT_ALL_DONE.format(folder=s.folder, labelled=sum(labelled_counts(s.folder).values()),
                                                   labelled_dir=s.folder / LABELLED))
        self.stack.setCurrentWidget(self.hint)

    @staticmethod
    def _thumbnail(path: Path) -> QPixmap:
        pixmap = QPixmap(str(path))
        if pixmap.isNull():
            return pixmap
        # small CCTV faces are enlarged (smoothly) so they can be judged; large ones shrunk
        return pixmap.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)

    @staticmethod
    def _dimmed(pixmap: QPixmap) -> QPixmap:
        """A decided crop's thumbnail: darkened (in the image, so it reads the same in any theme)."""
        if pixmap.isNull():
            return pixmap
        out = QPixmap(pixmap)
        painter = QPainter(out)
        painter.fillRect(out.rect(), QColor(0, 0, 0, 150))
        painter.end()
        return out

    def _show_item(self, index: int) -> None:
        crop = self.session.crops[index]
        item = self.grid.item(index)
        guess = SHORT.get(crop.guess, crop.guess) or "?"
        prob = "" if crop.top_prob is None else f" {crop.top_prob:.0%}"
        thumb = self._thumbs[index] if index < len(self._thumbs) else QPixmap()
        if crop.decision is None:
            item.setText(f"{guess}{prob}")
            item.setIcon(QIcon(thumb))
        elif crop.decision == SKIP:
            item.setText(f"skipped ({guess}{prob})")
            item.setIcon(QIcon(self._dimmed(thumb)))
        else:
            item.setText(f"✓ {SHORT[crop.decision]} (was {guess}{prob})")
            item.setIcon(QIcon(self._dimmed(thumb)))

    def _show_progress(self) -> None:
        s = self.session
        if s is None:
            return
        left = sum(1 for c in s.crops if c.decision is None)
        self.progress.setText(f"{s.folder.name}: {s.labelled} labelled, {left} to go — "
                              f"labels go to {LABELLED}/ and {DECISIONS_NAME}")

    @property
    def current(self) -> int:
        return self.grid.currentRow()

    def decide(self, decision: str) -> None:
        """Label (or skip) the current crop and move to the next open one."""
        s, index = self.session, self.current
        if s is None or not 0 <= index < len(s.crops):
            return
        if s.crops[index].decision not in (None, SKIP):
            self.message.setText(f"{s.crops[index].file} is labelled already: Z undoes it")
            return
        try:
            s.decide(index, decision)
        except MaskwatchError as e:
            self.message.setText(str(e))
            return
        self.message.setText("")
        self._show_item(index)
        following = s.next_open(index)
        if following is None:  # every crop had its turn: back to the skipped ones, if any
            following = s.next_open(index, SKIP)
            self.message.setText(f"Every crop had its turn. Fine-tune on these (below), or run: "
                                 f"{self.printed_command()}")
        if following is not None:
            self.grid.setCurrentRow(following)
        self._show_progress()
        self.changed.emit()

    def undo(self) -> None:
        s = self.session
        if s is None:
            return
        try:
            index = s.undo()
        except MaskwatchError as e:
            self.message.setText(str(e))
            return
        if index is None:
            self.message.setText("Nothing to undo")
            return
        self.message.setText("")
        self._show_item(index)
        self.grid.setCurrentRow(index)
        self._show_progress()
        self.changed.emit()

