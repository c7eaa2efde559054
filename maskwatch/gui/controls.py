"""``ControlsDialog``: detector mode, confidence threshold, vote window, log file, snapshots folder,
alert sound, file playback speed, the mask model and the collect folder of the review loop. Saved
with :class:`~maskwatch.gui.settings.GuiSettings`; they apply from the next Start, except a new
mask model, which the main window swaps in at once while a run goes on (:meth:`chosen_model`)."""

from __future__ import annotations

import json
from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QWidget,
)

from maskwatch.config import MODE_MIN_SCORE, Config
from maskwatch.detection import registry
from maskwatch.gui.settings import GuiSettings


def mode_label(mode: str) -> str:
    """The mode list's text: ``"RetinaFace — small faces in CCTV and crowds (default)"``."""
    options = registry.get(mode).options
    default = " (default)" if mode == registry.DEFAULT_MODE else ""
    return f"{options.title or mode} — {options.help}{default}"


def mode_tooltip(mode: str) -> str:
    """The mode's help, default threshold and options (the TOML ``[detector.options]`` it takes)."""
    options = registry.get(mode).options
    lines = [f"{mode}: {options.help}", f"default confidence threshold {options.default_min_score:g}"]
    for name, text in options.field_help().items():
        value = options.defaults()[name]
        value = "unset" if value is None else json.dumps(list(value) if isinstance(value, tuple) else value)
        lines.append(f"{name} = {value}: {text}")
    return "\n".join(lines)


def _path_row(edit: QLineEdit, browse) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    button = QToolButton()
    button.setText("…")
    button.clicked.connect(browse)
    layout.addWidget(button)
    return row


def _path_or_none(text: str) -> Path | None:
    text = text.strip()
    return Path(text).expanduser() if text else None


class ControlsDialog(QDialog):
    def __init__(self, settings: GuiSettings, base: Config, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")  # Qt adds " — maskwatch"
        self.settings = settings
        self.base = base
        form = QFormLayout(self)

        self.mode = QComboBox()
        for mode in registry.modes():
            self.mode.addItem(mode_label(mode), mode)
            self.mode.setItemData(self.mode.count() - 1, mode_tooltip(mode), Qt.ItemDataRole.ToolTipRole)
        self.min_score = QDoubleSpinBox()
        self.min_score.setRange(0.05, 0.99)
        self.min_score.setSingleStep(0.05)
        self.min_score.setDecimals(2)
        self.min_score.setToolTip("Faces the detector is less sure of are ignored")
        self.vote_window = QSpinBox()
        self.vote_window.setRange(1, 120)
        self.vote_window.setSuffix(" frames")
        self.vote_window.setToolTip("A person's label is the majority over this many recent frames")
        self.log = QLineEdit()
        self.log.setPlaceholderText("off (the CSV of interval counts, as in --headless --log)")
        self.snapshots = QLineEdit()
        self.snapshots.setPlaceholderText("off (JPEGs of people without a mask)")
        self.model = QLineEdit()
        self.model.setPlaceholderText("the shipped model (a .tflite with its .json next to it)")
        self.model.setToolTip("A fine-tuned model (maskwatch-train finetune) is used at once, without stopping the stream")
        self.collect = QLineEdit()
        self.collect.setPlaceholderText("off (the face crops the model is least sure of, to label in Review)")
        self.sound = QCheckBox("beep on alerts")
        self.realtime = QCheckBox("play video files at their real speed")

        # picking another mode puts its own default threshold in the box (still editable)
        self.mode.activated.connect(self._mode_picked)
        form.addRow("Face detector", self.mode)
        form.addRow("Confidence threshold", self.min_score)
        form.addRow("Vote window", self.vote_window)
        form.addRow("CSV log file", _path_row(self.log, self._browse_log))
        form.addRow("Snapshots folder", _path_row(self.snapshots, self._browse_snapshots))
        form.addRow("Mask model", _path_row(self.model, self._browse_model))
        form.addRow("Collect uncertain faces", _path_row(self.collect, self._browse_collect))
        form.addRow("Alerts", self.sound)
        form.addRow("Files", self.realtime)
        note = QLabel("Changes apply from the next Start (a new mask model: at once). "
                      "Values set in a config file or on the command line win.")
        note.setObjectName("muted")
        form.addRow(note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.load()

    def _mode_picked(self, index: int) -> None:
        mode = self.mode.itemData(index)
        if mode in MODE_MIN_SCORE:
            self.min_score.setValue(MODE_MIN_SCORE[mode])

    def load(self) -> None:
        cfg = self.settings.apply(self.base)
        i = self.mode.findData(cfg.detector.mode)
        self.mode.setCurrentIndex(max(i, 0))
        self.min_score.setValue(cfg.detector.min_score)
        self.vote_window.setValue(cfg.tracker.vote_window)
        self.log.setText("" if cfg.log is None else str(cfg.log))
        self.snapshots.setText("" if cfg.snapshots is None else str(cfg.snapshots))
        self.sound.setChecked(self.settings.sound())
        self.realtime.setChecked(self.settings.realtime())
        self.model.setText("" if cfg.model == Config().model else str(cfg.model))
        self.collect.setText("" if cfg.collect.folder is None else str(cfg.collect.folder))

    def save(self) -> None:
        self.settings.save_controls(
            mode=str(self.mode.currentData()),
            min_score=self.min_score.value(),
            vote_window=self.vote_window.value(),
            log=Path(self.log.text().strip()) if self.log.text().strip() else None,
            snapshots=Path(self.snapshots.text().strip()) if self.snapshots.text().strip() else None,
            sound=self.sound.isChecked(),
            realtime=self.realtime.isChecked(),
        )
        self.settings.set_model_and_collect(model=self.chosen_model(), collect=_path_or_none(self.collect.text()))

    def chosen_model(self) -> Path | None:
        """The mask model in the box (``None``: the shipped one)."""
        return _path_or_none(self.model.text())

    def accept(self) -> None:
        self.save()
        super().accept()

    def _browse_log(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "CSV log file", self.log.text() or str(Path.home() / "maskwatch.csv"),
                                              "CSV (*.csv)", options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.log.setText(path)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Mask model", self.model.text() or str(Path.home()),
                                              "TFLite model (*.tflite)")
        if path:
            self.model.setText(path)

    def _browse_collect(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Collect uncertain faces into", self.collect.text() or str(Path.home()))
        if path:
            self.collect.setText(path)

    def _browse_snapshots(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Snapshots folder", self.snapshots.text() or str(Path.home()))
        if path:
            self.snapshots.setText(path)
