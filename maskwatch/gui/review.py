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

An empty tab says how to fill it (the *Collect uncertain faces* setting, ``maskwatch --collect``,
or Ctrl+Shift+O to open a folder). *Fine-tune on these* runs ``maskwatch-train finetune`` on
``DIR/labelled`` in the background (:mod:`maskwatch.gui.finetune_runner`: a subprocess, with a
progress bar and Cancel) into ``DIR/finetuned/<time>/``; it first says what the run will be (one
line each: a single class, nothing held out, no replay) and asks before it trains on one class
alone. At the end *Use the new model* emits :attr:`ReviewTab.model_ready` with the new ``.tflite``
(the window swaps it in). Without the ``[train]`` extra it says in one line how to install it. The
command it runs is shown, with absolute quoted paths, so it can be run by hand from any folder.

Colours: none are set here. The widgets carry object names for the window's stylesheet:
``reviewGrid`` (the crop grid and its captions), ``reviewHint`` (the empty tab's text),
``reviewProgress``, ``reviewWarning`` (warnings), ``finetuneBar``, ``finetuneButton``,
``finetuneCancel``, ``finetuneUse``, ``finetuneStatus``; ``muted`` as elsewhere. Labelled and
skipped crops are shown by their caption and a dimmed thumbnail, not by a coloured background.

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
from PyQt6.QtGui import QColor, QIcon, QKeyEvent, QKeySequence, QPainter, QPixmap
from PyQt6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
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
FINETUNED = "finetuned"
"""``DIR/finetuned/<time>/``: the Review tab's fine-tune runs (never reviewed as crops)."""
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
            if rel.parts[0] in (LABELLED, FINETUNED) or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
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


def labelled_counts(folder: Path) -> dict[str, int]:
    """Files in ``folder/labelled/<decision>/`` per decision (what a fine-tune would read)."""
    counts = {}
    for decision in DECISIONS:
        try:
            counts[decision] = sum(1 for p in (folder / LABELLED / decision).iterdir()
                                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError:
            counts[decision] = 0
    return counts


class ReviewTab(QWidget):
    """Open a folder, then label its crops with the keys (see the module docstring).

    Signals: ``changed()`` after every decision, undo and open (tests wait on it);
    ``finetune_finished(state, tflite, message)`` when a background fine-tune ends (``done``,
    ``failed`` or ``cancelled``); ``model_ready(path)`` when the user takes the new model
    (*Use the new model*): the window swaps it in."""

    changed = pyqtSignal()
    finetune_finished = pyqtSignal(str, str, str)
    model_ready = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        from maskwatch.gui.finetune_runner import FinetuneRunner

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

        bottom = QHBoxLayout()
        self.finetune_button = QPushButton("Fine-tune on these")
        self.finetune_button.setObjectName("finetuneButton")
        self.finetune_button.setToolTip("Train the mask model on the crops labelled here, in the background "
                                        "(maskwatch-train finetune); then use the new model")
        self.finetune_button.clicked.connect(self.start_finetune)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("finetuneCancel")
        self.cancel_button.clicked.connect(self.cancel_finetune)
        self.cancel_button.hide()
        self.finetune_bar = QProgressBar()
        self.finetune_bar.setObjectName("finetuneBar")
        self.finetune_bar.setRange(0, 1000)
        self.finetune_bar.hide()
        self.finetune_status = QLabel("")
        self.finetune_status.setObjectName("finetuneStatus")
        self.use_button = QPushButton("Use the new model")
        self.use_button.setObjectName("finetuneUse")
        self.use_button.setToolTip("Swap the fine-tuned model in (the stream goes on; the old file stays)")
        self.use_button.clicked.connect(self.use_new_model)
        self.use_button.hide()
        for button in (self.finetune_button, self.cancel_button, self.use_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys belong to the grid
        bottom.addWidget(self.finetune_button)
        bottom.addWidget(self.finetune_bar, 1)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.finetune_status, 1)
        bottom.addWidget(self.use_button)
        layout.addLayout(bottom)

        self.runner = FinetuneRunner(self)
        self.runner.progress.connect(self._on_finetune_progress)
        self.runner.line.connect(self._on_finetune_line)
        self.runner.finished.connect(self._on_finetune_finished)

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

    # -- fine-tune ---------------------------------------------------------------------------------

    def printed_command(self) -> str:
        """The fine-tune command for this folder, right from any working folder (absolute, quoted)."""
        from maskwatch.gui.finetune_runner import printed_command

        folder = self.session.folder if self.session is not None else Path("DIR")
        return printed_command(folder / LABELLED, folder / FINETUNED / "site_ft", self.finetune_model)

    def ask(self, title: str, text: str) -> bool:
        """Yes/no, No the default (tests replace it)."""
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _say_warnings(self, lines: list[str]) -> None:
        self.warning.setText("\n".join(lines))
        self.warning.setVisible(bool(lines))

    def _new_run_folder(self) -> Path:
        base = self.session.folder / FINETUNED / time.strftime("%Y%m%d_%H%M%S")
        path, n = base, 1
        while path.exists():
            path, n = base.with_name(f"{base.name}_{n}"), n + 1
        return path

    def start_finetune(self) -> bool:
        """Fine-tune on ``DIR/labelled`` in the background; ``False`` (and the one-line reason shown)
        when it does not start. A single-class set is trained only when the user says yes."""
        from maskwatch.gui.finetune_runner import train_missing

        if self.runner.running:
            self.message.setText("A fine-tune is running already (Cancel stops it)")
            return False
        s = self.session
        if s is None:
            self.message.setText("Open a folder of labelled crops first (Open folder…, Ctrl+Shift+O)")
            return False
        missing = train_missing()
        if missing:
            self.message.setText(missing)
            return False
        data = s.folder / LABELLED
        if not data.is_dir() or not any(labelled_counts(s.folder)[lab] for lab in LABELS):
            self.message.setText(f"Nothing labelled in {s.folder.name} yet: label crops with 1, 2 and 3 first")
            return False
        out = self._new_run_folder()
        extra = list(self.finetune_args)
        try:
            from train.finetune import FinetuneConfig, preflight, validate

            cfg = FinetuneConfig(data=str(data), out=str(out), allow_single_class=True)
            if self.finetune_model is not None:
                cfg.model = str(self.finetune_model)
            validate(cfg)
            pre = preflight(cfg)
        except MaskwatchError as e:
            self.message.setText(f"Not fine-tuned: {str(e).splitlines()[0]}")
            return False
        except ImportError as e:  # a half-installed [train] extra
            from maskwatch.gui.finetune_runner import INSTALL_HINT

            self.message.setText(f"{INSTALL_HINT} (cannot import {e.name or e})")
            return False
        self._say_warnings(pre.lines())
        if pre.single_class is not None:
            lab = pre.single_class
            if not self.ask("Fine-tune on one class?",
                            f"Every labelled crop is {lab} ({pre.counts[lab]}), and there is no replay of the "
                            f"original training faces.\n\nTrained on one class alone, the model drifts towards "
                            f"calling every face {lab}, and the held-out crops (all {lab}) cannot show it. Label faces of the other classes first (recommended), or train "
                            f"anyway?"):
                self.message.setText(f"Not fine-tuned: every labelled crop is {lab}; label faces of the other "
                                     f"classes too")
                return False
            extra.append("--allow-single-class")
        self.new_model = None
        self.use_button.hide()
        self.finetune_bar.setValue(0)
        self.finetune_bar.setFormat("starting %p%")
        self.finetune_bar.show()
        self.cancel_button.show()
        self.finetune_button.setEnabled(False)
        self.finetune_status.setText("")
        n = sum(pre.counts.values())
        self.message.setText(f"Fine-tuning on {n} crops in the background into {out}")
        self.runner.start(data, out, self.finetune_model, extra)
        return True

    def cancel_finetune(self) -> None:
        self.runner.cancel()

    def shutdown_finetune(self) -> None:
        """End a running fine-tune (call when the window closes)."""
        self.runner.shutdown()

    def use_new_model(self) -> None:
        if self.new_model and Path(self.new_model).is_file():
            self.model_ready.emit(self.new_model)
            self.use_button.hide()
            self.finetune_status.setText(f"Using {Path(self.new_model).parent.name}/{Path(self.new_model).name}")

    def _on_finetune_progress(self, fraction: float, text: str) -> None:
        self.finetune_bar.setValue(round(fraction * 1000))
        text = text.replace("%", "")  # the bar's format reads %p, %v, %m
        self.finetune_bar.setFormat(f"{text} %p%" if text else "%p%")

    def _on_finetune_line(self, text: str) -> None:
        if text.startswith("warning:"):
            shown = self.warning.text().splitlines()
            if text not in shown:
                self._say_warnings([*shown, text])
        else:
            self.finetune_status.setText(text if len(text) <= 160 else text[:157] + "…")
            self.finetune_status.setToolTip(text)

    def _on_finetune_finished(self, state: str, tflite: str, message: str) -> None:
        self.finetune_bar.hide()
        self.cancel_button.hide()
        self.finetune_button.setEnabled(True)
        if state == "done":
            self.new_model = tflite
            self.use_button.show()
            self.finetune_status.setText(message)
            self.message.setText(f"New model: {tflite}. Use the new model swaps it in (the old one stays on disk).")
        elif state == "cancelled":
            self.finetune_status.setText("")
            self.message.setText("Fine-tune cancelled; nothing was written")
        else:
            self.finetune_status.setText("")
            self.message.setText(f"Fine-tune failed: {message}")
        self.finetune_finished.emit(state, tflite, message)
