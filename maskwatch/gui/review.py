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

The code, by idea: :mod:`maskwatch.gui.review_session` holds :class:`ReviewSession` (Qt-free:
the folder, the decisions, undo), :mod:`maskwatch.gui.review_grid` the crop grid and its keys,
:mod:`maskwatch.gui.review_tab` :class:`ReviewTab` (the widget) and
:mod:`maskwatch.gui.review_finetune` its fine-tune row. This module re-exports their names, so
``from maskwatch.gui.review import ReviewTab`` (and the rest) still works.
"""

from __future__ import annotations

from maskwatch.gui.review_finetune import FinetuneControls  # noqa: F401 - re-exported
from maskwatch.gui.review_grid import KEYS, SHORT, THUMB, CropGrid  # noqa: F401 - re-exported
from maskwatch.gui.review_session import (  # noqa: F401 - re-exported
    DECISION_COLUMNS,
    DECISIONS,
    DECISIONS_NAME,
    FINETUNED,
    IMAGE_SUFFIXES,
    LABELLED,
    NOT_A_FACE,
    SKIP,
    Crop,
    ReviewSession,
    _float,
    labelled_counts,
    log,
)
from maskwatch.gui.review_tab import HINT_ALL_DONE, HINT_NO_FOLDER, ReviewTab  # noqa: F401 - re-exported
