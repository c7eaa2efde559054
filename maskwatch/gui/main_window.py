"""``MainWindow``: source picker and controls on top, live video in the middle, side panel right.

The pipeline runs in :class:`~maskwatch.gui.worker.MonitorWorker` (the same ``Monitor`` as
``maskwatch --headless``, so the CSV log, JSONL events and snapshots are written exactly as
there). The window only displays what the worker delivers. Its toolbar, its size (kept within the
screen) and full screen come from its base, :class:`~maskwatch.gui.window_frame.WindowFrame`.

Alerts come in the worker's deliveries, raised by the same Qt-free
:class:`~maskwatch.sinks.alerts.AlertSink` that writes them to the JSONL log; the window shows
them (banner, optional beep, alert log).

Record (Ctrl+R) and Snapshot (Ctrl+S) belong to :class:`~maskwatch.gui.recording.RecordingController`
(the annotated video to ``maskwatch_<date>_<time>.mp4`` in the recordings folder, the annotated
frame as PNG in the snapshot folder); the window's methods of the same names call it.

The Review tab (:mod:`maskwatch.gui.review`) labels the face crops collected by the
``Collect uncertain faces`` setting (or ``maskwatch --collect``); a model fine-tuned on them is
picked in Settings and swapped in while the stream plays (:meth:`MainWindow.swap_model`: the next
frame uses it, the counts so far stay). The status bar names the model in use.

Keyboard: Space start/stop · Ctrl+O open file · Ctrl+S snapshot · Ctrl+R record · F11 full-screen
(Esc leaves) · Ctrl+, settings · Ctrl+1 / Ctrl+2 / Ctrl+3 the Monitor / Review / Site tab · Ctrl+Shift+O open a
folder to review · Ctrl+Q quit.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QCloseEvent, QKeySequence
from PyQt6.QtWidgets import (
    QFrame,
    QLabel,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from maskwatch.classification import model_info
from maskwatch.config import Config
from maskwatch.errors import MaskwatchError
from maskwatch.frames import SourceState
from maskwatch.gui.alerts import AlertBanner, play_alert_sound
from maskwatch.gui.controls import ControlsDialog
from maskwatch.gui.icons import icon
from maskwatch.gui.recording import RECORDINGS_KEY, RecordingController, unused_name  # noqa: F401 - importable from here
from maskwatch.gui.review import ReviewTab
from maskwatch.gui.settings import GuiSettings
from maskwatch.gui.side_panel import SidePanel, elapsed_text
from maskwatch.gui.site_tab import SiteTab
from maskwatch.gui.theme import apply_theme
from maskwatch.gui.video_view import VideoView
from maskwatch.gui.window_frame import WindowFrame
from maskwatch.gui.worker import Delivery, MonitorWorker
from maskwatch.results import FrameResult, Totals
from maskwatch.sources.spec import parse, redact


class MainWindow(WindowFrame):
    """Signals: ``delivered()`` after each delivery is shown, ``run_finished(str)`` with the final
    state ("ended", "stopped" or "error")."""

    delivered = pyqtSignal()
    run_finished = pyqtSignal(str)

    def __init__(self, config: Config, settings: GuiSettings | None = None, worker: MonitorWorker | None = None):
        super().__init__()
        self.base_config = config
        self.settings = settings or GuiSettings()
        self.worker = worker or MonitorWorker()
        self.worker.setParent(self)
        self.worker.result_available.connect(self._on_result_available)
        self.worker.failed.connect(self._on_failed)
        self.worker.finished.connect(self._on_finished)
        self.run_config: Config | None = None  # the config of the current/last run (with password)
        self.last_result: FrameResult | None = None
        self.last_error: str | None = None
        self._password = ""
        self._stop_requested = False
        self._started_at: float | None = None
        self._source_name = ""
        self._shown_spec: str | None = None
        self._shown_once = False
        self.outputs = RecordingController(self)  # Record and Snapshot
        self.freeze_display = False  # True: leave results in the mailbox (screenshot in progress)
        self.realtime_override: bool | None = None  # play files at their speed; None: the saved setting

        self.setWindowTitle("maskwatch")
        self.setWindowIcon(icon("maskwatch"))
        apply_theme()  # the whole application: this window, its dialogs, Qt's file dialogs
        self._build_toolbar()
        self._build_body()
        self._build_shortcuts()
        self.statusBar().showMessage("Ready")
        self.record_label = QLabel("")
        self.record_label.setObjectName("recordLabel")
        self.statusBar().addPermanentWidget(self.record_label)
        self.status_right = QLabel("")
        self.statusBar().addPermanentWidget(self.status_right)
        self.model_label = QLabel("")
        self.model_label.setObjectName("muted")
        self.statusBar().addPermanentWidget(self.model_label)
        self._model_path: Path | None = None
        self._show_model(self.settings.apply(self.base_config).model)
        self._clock = QTimer(self)
        self._clock.timeout.connect(self._tick)
        self._clock.start(1000)

        last = self.settings.last_source()
        given = str(config.source) != str(Config().source)  # a source named on the command line wins
        self.picker.set_spec(str(config.source) if given or not last else last)
        geometry, state = self.settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 780)
        self._fit_to_screen()

    # --- construction (the toolbar: WindowFrame._build_toolbar) ---------------------------------------
    def _build_body(self) -> None:
        central = QWidget()
        central.setObjectName("central")
        split = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(8, 8, 0, 8)
        lv.setSpacing(6)
        self.banner = AlertBanner()
        self.video = VideoView()
        self.video.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # holds the focus when no text is typed (Space)
        lv.addWidget(self.banner)
        lv.addWidget(self.video, 1)
        self.side = SidePanel(self.base_config.alert_compliance_below)
        self.side.alert_log.alert_added.connect(self._on_alert)
        # the side panel scrolls when the screen is short (1280x720): the window never needs more
        # height than the screen, and the status bar stays in view
        side_scroll = QScrollArea()
        side_scroll.setObjectName("sidePanel")
        side_scroll.setWidget(self.side)
        side_scroll.setWidgetResizable(True)
        side_scroll.setFrameShape(QFrame.Shape.NoFrame)
        side_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side_scroll.setMinimumWidth(self.side.minimumWidth() + 10)
        side_scroll.setMaximumWidth(self.side.maximumWidth() + 10)
        self.side_scroll = side_scroll
        split.addWidget(left)
        split.addWidget(side_scroll)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setCollapsible(0, False)
        self.review = ReviewTab()
        self.review.model_ready.connect(self.use_finetuned_model)
        self.site = SiteTab(self.settings)
        self.site.open_source.connect(self.open_site_camera)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(split, "Monitor")
        self.tabs.addTab(self.review, "Review")
        self.tabs.addTab(self.site, "Site")
        self.tabs.currentChanged.connect(self._tab_changed)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.setCentralWidget(central)
        self.splitter = split
        split.setSizes([900, 360])

    def _build_shortcuts(self) -> None:
        def add(keys, slot, text):
            action = QAction(text, self)
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(slot)
            self.addAction(action)
            return action

        add(["Space"], self.toggle_running, "Start/stop")
        add(["F11"], self.toggle_fullscreen, "Full screen")
        add(["Esc"], self.leave_fullscreen, "Leave full screen")
        add(["Ctrl+O"], self.picker.open_file, "Open file")
        add(["Ctrl+S"], self.save_snapshot, "Snapshot")
        add(["Ctrl+R"], self.toggle_recording, "Record")
        add(["Ctrl+,"], self.open_settings, "Settings")
        add(["Ctrl+1"], lambda: self.tabs.setCurrentIndex(0), "Monitor tab")
        add(["Ctrl+2"], self.show_review, "Review tab")
        add(["Ctrl+3"], lambda: self.tabs.setCurrentWidget(self.site), "Site tab")
        add(["Ctrl+Shift+O"], self.review.choose_folder, "Review: open folder")
        add(["Ctrl+Q"], self.close, "Quit")

    # --- running -------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker.running

    def toggle_running(self) -> None:
        if self.running:
            self.stop()
        else:
            self.start()

    def _redact(self, text: str) -> str:
        """Credentials out of a message: the URL's password slot and secret query values (the run's
        URL, password field included, went through ``parse``); never a search of the text for the
        password, which would garble a path that happens to contain it."""
        return redact(text)

    def build_run_config(self) -> Config:
        """The config for a run: the base config, the saved controls, the picked source."""
        spec = self.picker.spec_for_run()
        cfg = self.settings.apply(self.base_config)
        realtime = self.settings.realtime() if self.realtime_override is None else self.realtime_override
        try:
            live = parse(spec).is_live
        except MaskwatchError:  # the run's own checks report a bad source
            live = False
        realtime = realtime and not live  # pacing is for files standing in for cameras
        # the window records with Record (Ctrl+R, a new file each time); a save_video from the
        # command line or TOML is for --headless, where one run writes one file
        return replace(cfg.with_overrides({"source": spec, "sources.realtime": realtime}), save_video=None)

    def start(self) -> None:
        if self.running:
            return
        shown = self.picker.current_spec()
        if not shown:
            self.banner.show_message("Choose a source first: a webcam, a camera URL or a file (Ctrl+O)", "error")
            return
        self._password = self.picker.password.text()
        self.run_config = self.build_run_config()
        self.side.set_threshold(self.run_config.alert_compliance_below)
        # the recent list: added now (a camera that is down and retried stays listed), taken out
        # again when the run fails before its first frame (a missing file, an invalid address)
        self.settings.add_recent(shown)
        self._shown_spec = shown
        self._source_name = self._redact(self.picker.display_name())
        # Qt adds the application's name ("<title> — maskwatch") where the platform shows it
        self.setWindowTitle(self._source_name)
        self.side.source_is_live = self._is_live(self.run_config)
        self.last_result = None
        self.last_error = None
        self._stop_requested = False
        self._started_at = time.monotonic()
        self.side.reset()
        self.side.set_state(SourceState.CONNECTING.value)
        self.video.clear()
        self.video.set_hint(f"Opening {self._source_name} …")
        self.banner.hide()
        self._show_model(self.run_config.model)
        self._purge_old_outputs()
        self.worker.start(self.run_config, redact=self._redact)
        self._set_running_ui(True)
        self.statusBar().showMessage(f"Watching {self._source_name}")

    @staticmethod
    def _is_live(config: Config) -> bool:
        try:
            return parse(str(config.source)).is_live
        except MaskwatchError:
            return False

    def _forget_failed_source(self) -> None:
        """A source whose run failed before giving any frame leaves the recent list again."""
        shown, self._shown_spec = self._shown_spec, None
        if shown:
            self.settings.remove_recent(shown)
            self.picker.set_recent(self.settings.recent_sources())
            self.picker.set_spec(shown)  # still in the box, to be corrected

    def stop(self) -> None:
        if not self.running:
            return
        self._stop_requested = True
        self.start_action.setEnabled(False)
        self.statusBar().showMessage("Stopping…")
        self.worker.stop()

    def _set_running_ui(self, running: bool) -> None:
        self.start_action.setText("Stop" if running else "Start")
        self.start_action.setIcon(icon("stop" if running else "start"))
        self.start_action.setEnabled(True)
        self.start_button.setProperty("running", "true" if running else "false")
        self.start_button.style().unpolish(self.start_button)
        self.start_button.style().polish(self.start_button)
        self.picker.setEnabled(not running)

    # --- deliveries ----------------------------------------------------------------------------------
    def _on_result_available(self) -> None:
        if self.freeze_display:
            return
        delivery = self.worker.take()
        if delivery is not None:
            self.show_delivery(delivery)

    def show_delivery(self, d: Delivery) -> None:
        skipped = d.skipped
        if d.result is not None:
            self.last_result = d.result
            self.video.set_frame(d.result.frame.image, d.result.faces, d.result.frame.index)
            self.video.set_badge("")
            self.side.show_result(d.result, skipped)
            self.snapshot_action.setEnabled(True)
        if d.status is not None:
            self.side.show_stats(d.status, skipped)
            down = d.status.source_state in (SourceState.RECONNECTING, SourceState.CONNECTING)
            text = self.side.state_label.text() if down else ""
            if self.last_result is None:
                if down:
                    why = f" — {self._redact(d.status.source_error)}" if d.status.source_error else ""
                    self.video.set_hint(f"{self._source_name}: {text}{why}")
            else:
                self.video.set_badge(text)
        for s in d.summaries:
            self.side.add_interval(s)
        for alert in d.alerts:  # a person's alert has its thumbnail (the alert sink cut it)
            self.side.alert_log.add(alert)
        self.delivered.emit()

    def _on_alert(self, alert) -> None:
        self.banner.show_message(alert.message, alert.kind)
        if self.settings.sound():
            play_alert_sound()

    def _on_failed(self, message: str) -> None:
        self.last_error = self._redact(message)
        self.banner.show_message(self.last_error, "error", sticky=True)

    def _on_finished(self, totals) -> None:
        # results the UI has not taken yet (the last frames, the final partial interval)
        delivery = None if self.freeze_display else self.worker.take()
        if delivery is not None:
            self.show_delivery(delivery)
        self.worker.join(5.0)
        saved = None
        if self.recorder is not None:  # the monitor closed (finalised) it with the run
            saved = self.outputs.recording_ended()
        if self.last_error is not None:
            state = "error"
            if self.last_result is None:
                self._forget_failed_source()
        elif self._stop_requested:
            state = "stopped"
        else:
            state = SourceState.ENDED.value
        self.side.set_state(state)
        if isinstance(totals, Totals):
            self.side.show_totals(totals)
        self._set_running_ui(False)
        if self.last_result is None:
            self.video.set_hint("Choose a source and press Start (Space)" if state != "error" else self.last_error)
        ran = elapsed_text(time.monotonic() - self._started_at) if self._started_at is not None else None
        what = {"ended": "ended" if self.last_result is not None or not self.side.source_is_live else "gave no frame",
                "stopped": "stopped", "error": "failed"}[state]
        self.status_right.setText(f"{self._source_name} · {what}" + (f" after {ran}" if ran else ""))
        message = {"ended": f"{self._source_name} ended", "stopped": "Stopped",
                   "error": f"Stopped by an error: {self.last_error}"}[state]
        if self.run_config is not None and self.run_config.log is not None:
            message += f" — log: {self.run_config.log}"
        if saved is not None:  # the recording closed with the run: say where it is
            message += f" — recording saved: {saved}"
            self.banner.show_message(f"Recording saved when the run {what}: {saved}", "info")
        self.statusBar().showMessage(message)
        self._started_at = None
        self.run_finished.emit(state)

    def _tick(self) -> None:
        if self._started_at is not None:
            self.status_right.setText(f"{self._source_name} · running {elapsed_text(time.monotonic() - self._started_at)}")
        self.outputs.tick()

    # --- Record and Snapshot: maskwatch.gui.recording.RecordingController ------------------------------
    snapshots_saved = property(lambda self: self.outputs.snapshots_saved, doc="Ctrl+S files of this session")
    recorder = property(lambda self: self.outputs.recorder, doc="The recording in progress (or None)")
    recordings = property(lambda self: self.outputs.recordings, doc="Recordings finished in this session")
    recording = property(lambda self: self.outputs.recording, doc="Whether Record is on")

    def snapshot_folder(self) -> Path:
        return self.outputs.snapshot_folder()

    def recording_folder(self) -> Path:
        return self.outputs.recording_folder()

    def choose_recording_folder(self) -> None:
        self.outputs.choose_recording_folder()

    def _purge_old_outputs(self) -> None:
        self.outputs.purge_old_outputs()

    def save_snapshot(self) -> Path | None:
        return self.outputs.save_snapshot()

    def toggle_recording(self) -> None:
        self.outputs.toggle_recording()

    def start_recording(self) -> Path | None:
        return self.outputs.start_recording()

    def stop_recording(self) -> Path | None:
        return self.outputs.stop_recording()

    # --- settings, tabs, models --------------------------------------------------------------------
    def open_settings(self) -> None:
        dialog = ControlsDialog(self.settings, self.base_config, self)
        if dialog.exec():
            self.settings_saved(dialog)

    def show_review(self) -> None:
        """The Review tab, the keys on its grid; the collect folder opened if none is yet."""
        self.tabs.setCurrentWidget(self.review)
        self._tab_changed(self.tabs.currentIndex())

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is not self.review:
            return
        folder = self.settings.apply(self.base_config).collect.folder
        if self.review.session is None and folder is not None and Path(folder).is_dir():
            self.review.open_folder(folder)
        self.review.grid.setFocus()

    def settings_saved(self, dialog: ControlsDialog) -> None:
        """While a run goes on, a newly chosen mask model is swapped in at once; the rest applies
        from the next Start."""
        chosen = dialog.chosen_model() or Config().model
        if self.running and self._model_path is not None and Path(chosen) != self._model_path:
            self.swap_model(chosen)
        elif not self.running:
            self._show_model(self.settings.apply(self.base_config).model)

    def swap_model(self, path) -> str | None:
        """Use the mask classifier at ``path`` from the running stream's next frame (counts kept).
        Its description, or ``None`` (and the reason in the banner) when it cannot be used: the
        model in use stays."""
        try:
            described = self.worker.swap_model(path)
        except MaskwatchError as e:
            self.banner.show_message(f"Model not changed: {self._redact(str(e))}", "error")
            return None
        self._show_model(path)
        self.statusBar().showMessage(f"Now using {described}", 8000)
        return described

    def use_finetuned_model(self, path: str) -> None:
        """The Review tab's *Use the new model*: swapped into the running stream at once, and saved
        as the model of the next runs (Settings shows it; the shipped model is one click back)."""
        if self.running and self.swap_model(path) is None:
            return  # the banner says why; the model in use stays
        collect = self.settings.apply(self.base_config).collect.folder
        self.settings.set_model_and_collect(model=Path(path), collect=collect)
        if not self.running:
            self._show_model(path)
            self.statusBar().showMessage(f"The next run uses {Path(path).name}", 8000)

    def open_site_camera(self, url: str) -> None:
        """A double-clicked Site tile with its source known (an opened site.toml): that camera in
        the Monitor tab, started at once (what was running stops first)."""
        if self.running:
            self.stop()
            self.worker.join(10.0)
        self.picker.set_spec(url)  # its password goes to the password field, never into the box
        self.tabs.setCurrentIndex(0)
        self.start()

    def _show_model(self, path) -> None:
        """The model in use in the status bar: name, version, hash and its folder/file (not the whole path)."""
        self._model_path = Path(path)
        try:
            info = model_info(path)
        except (MaskwatchError, OSError):
            self.model_label.setText(f"model: {Path(path).name} (unreadable)")
            self.model_label.setToolTip("")
            return
        self.model_label.setText(f"model: {info.describe()} · {info.short_path()}")
        self.model_label.setToolTip(self._redact(str(path)))

    # --- shutdown --------------------------------------------------------------------------------------
    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop the worker and wait for it: camera released, last interval written, logs closed;
        the Site tab leaves its broker and a fine-tune in the background is cancelled."""
        self.site.shutdown(quiet=True)
        self.review.shutdown_finetune()
        if self.worker.running:
            self._stop_requested = True
            self.worker.stop()
        return self.worker.join(timeout)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt name
        self.statusBar().showMessage("Closing: stopping the monitor and flushing the log…")
        if self.worker.running:
            self.hide()  # feels instant; the worker may still be loading models (can take seconds)
        self.shutdown(timeout=60.0)
        self.settings.save_geometry(self.saveGeometry(), self.saveState())
        self._clock.stop()
        super().closeEvent(event)
