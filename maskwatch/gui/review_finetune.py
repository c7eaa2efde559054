"""The Review tab's fine-tune row: *Fine-tune on these*, its progress bar, Cancel, *Use the new model*.

:class:`FinetuneControls` is a mixin of :class:`maskwatch.gui.review_tab.ReviewTab` (it uses the
tab's ``session``, ``message``, ``warning`` and its signals ``finetune_finished`` and
``model_ready``): it builds the row and runs ``maskwatch-train finetune`` on ``DIR/labelled`` in
the background through :class:`maskwatch.gui.finetune_runner.FinetuneRunner`.
"""

from __future__ import annotations

import time
from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QBoxLayout, QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.gui.finetune_runner import INSTALL_HINT, FinetuneRunner, train_missing
from maskwatch.gui.finetune_runner import printed_command as finetune_command
from maskwatch.gui.review_session import FINETUNED, LABELLED, labelled_counts


class FinetuneControls:
    """The fine-tune row and what it does (a mixin of the Review tab; see the module docstring)."""

    def _build_finetune(self, layout: QBoxLayout) -> None:
        """The row under the grid, and the runner behind it."""
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

    def printed_command(self) -> str:
        """The fine-tune command for this folder, right from any working folder (absolute, quoted)."""
        folder = self.session.folder if self.session is not None else Path("DIR")
        return finetune_command(folder / LABELLED, folder / FINETUNED / "site_ft", self.finetune_model)

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
            # lazy: the [train] extra is optional (and numpy-heavy); a missing one is the ImportError below
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
