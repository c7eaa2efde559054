"""The Review tab's Qt-free part: a folder of face crops, the decisions on them, undo.

:class:`ReviewSession` reads the crops of a folder (a collect folder with ``collected.csv``, most
uncertain first, or any folder of crops), copies each decision to ``DIR/labelled/<label>/`` and
appends it to ``DIR/decisions.csv``, repairing that file when it is opened (see
:mod:`maskwatch.gui.review` for the whole story). No Qt here: the widgets are in
:mod:`maskwatch.gui.review_tab`.
"""

from __future__ import annotations

import csv
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.sinks.appended import read_our_csv, rewrite_csv
from maskwatch.sinks.collect import CSV_NAME, read_collected, rows_by_uncertainty
from maskwatch.sinks.timestamps import iso_time

log = logging.getLogger("maskwatch.review")

NOT_A_FACE = "not_a_face"
DECISIONS = (*LABELS, NOT_A_FACE)
"""What a crop can be labelled (``DIR/labelled/<decision>/``)."""
SKIP = "skip"
DECISIONS_NAME = "decisions.csv"
DECISION_COLUMNS = ("file", "decision", "guess", "top_prob", "time")
LABELLED = "labelled"
FINETUNED = "finetuned"
"""``DIR/finetuned/<time>/``: the Review tab's fine-tune runs (never reviewed as crops)."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


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
    """The crops of ``folder`` still to label, and the decisions (see :mod:`maskwatch.gui.review`).

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
        """The rows of ``decisions.csv`` and whether the file needs a repair (see :mod:`maskwatch.gui.review`)."""
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
