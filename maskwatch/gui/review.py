"""The Review tab: label the collected face crops with the keyboard, most uncertain first.

Step two of the review loop (``docs/review-loop.md``): ``maskwatch --collect DIR`` (or the app's
collect setting) saved the crops the model was least sure of, with ``DIR/collected.csv``; here a
person labels them, and ``maskwatch-train finetune --data DIR/labelled`` trains on the result.

Open a folder (the collect folder, or any folder of face crops: an ImageFolder
``<label>/<file>`` works too, its folder name taken as the guess). The grid shows every crop not
labelled yet, most uncertain first (lowest calibrated top probability), 160 px, with the model's
guess and its probability. Keys, on the current crop (it advances by itself):

``1`` with mask · ``2`` without mask · ``3`` mask worn incorrectly · ``X`` not a face ·
``S`` skip (nothing written; it comes back once every other crop had its turn, and when the
folder is opened again) · ``Z`` undo the last key · arrows move.

Each decision *copies* the crop to ``DIR/labelled/<label>/<file>`` (``not_a_face`` for X; the
original stays where it is) and appends a row to ``DIR/decisions.csv`` (``file``, ``decision``,
``guess``, ``top_prob``, ``time``). Undo deletes the copy and removes that row again (the CSV is
rewritten atomically). Crops already in ``decisions.csv`` are not shown again when the folder is
reopened, so labelling can stop and resume at any time. Opening a folder repairs
``decisions.csv`` first (a warning line each): a torn last line (the app died while writing it)
and rows of the wrong length are dropped, and a copy in ``labelled/<label>/`` that has no row
(its row was the torn one) is adopted back as that decision, so neither the decision nor the next
row is lost.

:class:`ReviewSession` is the Qt-free part (the folder, the decisions, undo); :class:`ReviewTab`
the widget.
"""

from __future__ import annotations

import csv
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtCore import QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QIcon, QKeyEvent, QKeySequence, QPixmap
from PyQt6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.sinks.appended import read_our_csv, rewrite_csv
from maskwatch.sinks.collect import CSV_NAME, read_collected, rows_by_uncertainty
from maskwatch.sinks.timestamps import iso_time

log = logging.getLogger("maskwatch.review")

NOT_A_FACE = "not_a_face"
DECISIONS = (*LABELS, NOT_A_FACE)
"""What a crop can be labelled (``DIR/labelled/<decision>/``)."""
KEYS: dict[int, str] = {
    Qt.Key.Key_1: "with_mask",
    Qt.Key.Key_2: "without_mask",
    Qt.Key.Key_3: "mask_worn_incorrectly",
    Qt.Key.Key_X: NOT_A_FACE,
}
SKIP = "skip"
DECISIONS_NAME = "decisions.csv"
DECISION_COLUMNS = ("file", "decision", "guess", "top_prob", "time")
LABELLED = "labelled"
THUMB = 160
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SHORT = {"with_mask": "mask", "without_mask": "no mask", "mask_worn_incorrectly": "incorrect", NOT_A_FACE: "not a face"}


@dataclass
class Crop:
    """One crop to review: ``file`` relative to the folder, the model's ``guess`` and ``top_prob``."""

    file: str
    guess: str = ""
    top_prob: float | None = None
    decision: str | None = None  # set once labelled (or "skip") in this session
    note: str = ""  # why it was collected, and the face's size (the tooltip)

    @property
    def labelled_name(self) -> str:
        """The copy's name: sub-folders flattened, so ``a/x.png`` and ``b/x.png`` stay two files."""
        return self.file.replace("/", "__")


class ReviewSession:
    """The crops of ``folder`` still to label, and the decisions (see the module docstring).

    >>> import tempfile, pathlib, numpy as np, cv2
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a.png", "b.png"):
    ...     _ = cv2.imwrite(str(folder / name), np.zeros((8, 8, 3), np.uint8))
    >>> session = ReviewSession(folder)
    >>> [c.file for c in session.crops]
    ['a.png', 'b.png']
    >>> session.decide(0, "without_mask"); (folder / "labelled" / "without_mask" / "a.png").is_file()
    True
    >>> session.undo(), (folder / "labelled" / "without_mask" / "a.png").exists()
    (0, False)
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise MaskwatchError(f"not a folder: {self.folder}")
        self.decisions_path = self.folder / DECISIONS_NAME
        self._decided, damaged = self._read_decisions()
        found = self._find_crops()
        adopted = self._adopt_labelled(found)
        if damaged or adopted:
            self._rewrite_decisions()  # before anything is appended: never a row glued onto a torn one
        done = {row["file"] for row in self._decided}
        self.crops = [c for c in found if c.file not in done]
        self._undo: list[tuple[int, str]] = []  # (crop index, decision) in the order they were made

    # -- reading -----------------------------------------------------------------------------------

    def _read_decisions(self) -> tuple[list[dict], bool]:
        """The rows of ``decisions.csv`` and whether the file needs a repair (see the module docstring)."""
        records = read_our_csv(self.decisions_path, DECISION_COLUMNS, "has another header")
        if records.torn:
            log.warning("%s: the last line was cut off (the app stopped while writing it); it was dropped",
                        self.decisions_path)
        if records.dropped:
            log.warning("%s: %d rows had the wrong number of columns; they were dropped",
                        self.decisions_path, records.dropped)
        return [dict(zip(DECISION_COLUMNS, row)) for row in records.rows], records.damaged

    def _adopt_labelled(self, crops: list[Crop]) -> int:
        """Rows for copies in ``labelled/<decision>/`` of crops that have no row (a torn row): the
        copy is the decision. A copy that matches no crop is left alone. Returns how many."""
        decided = {row["file"] for row in self._decided}
        by_name = {c.labelled_name: c for c in crops if c.file not in decided}
        adopted = 0
        for decision in DECISIONS:
            folder = self.folder / LABELLED / decision
            try:
                names = sorted(p.name for p in folder.iterdir() if p.is_file())
            except OSError:
                continue
            for name in names:
                crop = by_name.pop(name, None)
                if crop is None:
                    continue
                try:
                    when = (folder / name).stat().st_mtime
                except OSError:
                    when = time.time()
                self._decided.append({"file": crop.file, "decision": decision, "guess": crop.guess,
                                      "top_prob": "" if crop.top_prob is None else f"{crop.top_prob:.4f}",
                                      "time": iso_time(when)})
                adopted += 1
        if adopted:
            log.warning("%s: %d labelled copies had no row; their rows were written again", self.decisions_path,
                        adopted)
        return adopted

    def _find_crops(self) -> list[Crop]:
        if (self.folder / CSV_NAME).is_file():  # a collect folder: its rows, most uncertain first
            crops = []
            for row in rows_by_uncertainty(read_collected(self.folder)):
                if (self.folder / row["file"]).is_file():
                    note = f"{row.get('reason', '')}, face {row.get('face_px', '?')} px, {row.get('model', '')}"
                    crops.append(Crop(row["file"], row.get("guess", ""), _float(row.get("top_prob")), note=note))
            return crops
        crops = []  # any folder of crops (an ImageFolder: the folder name is the guess)
        for path in sorted(self.folder.rglob("*")):
            rel = path.relative_to(self.folder)
            if rel.parts[0] == LABELLED or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            parent = rel.parts[0] if len(rel.parts) > 1 else ""
            crops.append(Crop(rel.as_posix(), parent if parent in DECISIONS else ""))
        return crops

    # -- deciding ----------------------------------------------------------------------------------

    @property
    def labelled(self) -> int:
        """Crops labelled in this session (skips not counted)."""
        return sum(1 for _, d in self._undo if d != SKIP)

    def labelled_path(self, crop: Crop, decision: str) -> Path:
        return self.folder / LABELLED / decision / crop.labelled_name

    def decide(self, index: int, decision: str) -> None:
        """Label crop ``index`` (one of :data:`DECISIONS`) or skip it (:data:`SKIP`)."""
        crop = self.crops[index]
        if crop.decision not in (None, SKIP):
            raise MaskwatchError(f"{crop.file} is already labelled {crop.decision} (undo it first)")
        if decision == SKIP:
            crop.decision = SKIP
            self._undo.append((index, SKIP))
            return
        if decision not in DECISIONS:
            raise MaskwatchError(f"unknown decision {decision!r} (one of {', '.join(DECISIONS)})")
        target = self.labelled_path(crop, decision)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.folder / crop.file, target)
        except OSError as e:
            raise MaskwatchError(f"cannot copy {crop.file} to {target.parent}: {e.strerror or e}") from None
        row = {"file": crop.file, "decision": decision, "guess": crop.guess,
               "top_prob": "" if crop.top_prob is None else f"{crop.top_prob:.4f}",
               "time": iso_time(time.time())}
        try:
            new = not self.decisions_path.exists() or self.decisions_path.stat().st_size == 0
            with open(self.decisions_path, "a", encoding="utf-8", newline="") as fh:
                writer = csv.writer(fh, lineterminator="\n")
                if new:
                    writer.writerow(DECISION_COLUMNS)
                writer.writerow([row[c] for c in DECISION_COLUMNS])
        except OSError as e:
            target.unlink(missing_ok=True)
            raise MaskwatchError(f"cannot write {self.decisions_path}: {e.strerror or e}") from None
        self._decided.append(row)
        crop.decision = decision
        self._undo.append((index, decision))

    def undo(self) -> int | None:
        """Take back the last decision (or skip): the copy is deleted and its row removed. Returns
        the crop's index (to go back to it), ``None`` when there is nothing to undo."""
        if not self._undo:
            return None
        index, decision = self._undo.pop()
        crop = self.crops[index]
        crop.decision = None
        if decision == SKIP:
            return index
        self.labelled_path(crop, decision).unlink(missing_ok=True)
        for i in range(len(self._decided) - 1, -1, -1):
            if self._decided[i]["file"] == crop.file:
                del self._decided[i]
                break
        self._rewrite_decisions()
        return index

    def _rewrite_decisions(self) -> None:
        rewrite_csv(self.decisions_path, DECISION_COLUMNS, self._decided, "decisions")

    def next_open(self, after: int, decision: str | None = None) -> int | None:
        """The first crop after ``after`` (wrapping around) whose decision is ``decision`` (``None``:
        not decided yet; :data:`SKIP`: skipped), ``None`` if there is none."""
        n = len(self.crops)
        for step in range(1, n + 1):
            i = (after + step) % n
            if self.crops[i].decision == decision:
                return i
        return None


def _float(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


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


class ReviewTab(QWidget):
    """Open a folder, then label its crops with the keys (see the module docstring).

    Signal ``changed()`` after every decision, undo and open (tests wait on it)."""

    changed = pyqtSignal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.session: ReviewSession | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        top = QHBoxLayout()
        self.open_button = QPushButton("Open folder…")
        self.open_button.setToolTip("A collect folder (collected.csv) or any folder of face crops (Ctrl+Shift+O)")
        self.open_button.clicked.connect(self.choose_folder)
        self.open_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys belong to the grid
        top.addWidget(self.open_button)
        self.progress = QLabel("No folder open")
        top.addWidget(self.progress, 1)
        layout.addLayout(top)
        self.keys_help = QLabel("1 with mask · 2 without mask · 3 worn incorrectly · X not a face · "
                                "S skip · Z undo · arrows move")
        self.keys_help.setObjectName("muted")
        layout.addWidget(self.keys_help)
        self.grid = CropGrid()
        self.grid.key_decision.connect(self.decide)
        self.grid.key_undo.connect(self.undo)
        layout.addWidget(self.grid, 1)
        self.message = QLabel("")
        self.message.setObjectName("muted")
        layout.addWidget(self.message)

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
        for crop in session.crops:
            item = QListWidgetItem(QIcon(self._thumbnail(session.folder / crop.file)), "")
            item.setToolTip(f"{crop.file}\n{crop.note}" if crop.note else crop.file)
            item.setSizeHint(QSize(THUMB + 20, THUMB + 44))
            self.grid.addItem(item)
            self._show_item(self.grid.count() - 1)
        self.message.setText("")
        if session.crops:
            self.grid.setCurrentRow(0)
        self.grid.setFocus()
        self._show_progress()
        self.changed.emit()
        return True

    @staticmethod
    def _thumbnail(path: Path) -> QPixmap:
        pixmap = QPixmap(str(path))
        if pixmap.isNull():
            return pixmap
        # small CCTV faces are enlarged (smoothly) so they can be judged; large ones shrunk
        return pixmap.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)

    def _show_item(self, index: int) -> None:
        crop = self.session.crops[index]
        item = self.grid.item(index)
        guess = SHORT.get(crop.guess, crop.guess) or "?"
        prob = "" if crop.top_prob is None else f" {crop.top_prob:.0%}"
        if crop.decision is None:
            item.setText(f"{guess}{prob}")
            item.setBackground(QColor(0, 0, 0, 0))
        elif crop.decision == SKIP:
            item.setText(f"skipped ({guess}{prob})")
            item.setBackground(QColor(60, 60, 60))
        else:
            item.setText(f"✓ {SHORT[crop.decision]} (was {guess}{prob})")
            item.setBackground(QColor(31, 111, 74))

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
            self.message.setText(f"Every crop had its turn. Fine-tune: maskwatch-train finetune --data "
                                 f"{s.folder / LABELLED} --out RUN")
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
