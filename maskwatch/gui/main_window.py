"""``MainWindow``: source picker and controls on top, live video in the middle, side panel right.

The pipeline runs in :class:`~maskwatch.gui.worker.MonitorWorker` (the same ``Monitor`` as
``maskwatch --headless``, so the CSV log, JSONL events and snapshots are written exactly as
there). The window only displays what the worker delivers.

Alerts come in the worker's deliveries, raised by the same Qt-free
:class:`~maskwatch.sinks.alerts.AlertSink` that writes them to the JSONL log; the window shows
them (banner, optional beep, alert log).

Record (Ctrl+R) adds a :class:`~maskwatch.sinks.video.VideoSink` to the running monitor: every
processed frame with its boxes, labels and track ids goes to ``maskwatch_<date>_<time>.mp4`` in the
recordings folder (the button's menu picks it; default: the system's Videos folder /
``maskwatch``), until Record is pressed again or the run ends.

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

import cv2
from PyQt6.QtCore import QSize, QStandardPaths, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PyQt6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMenu,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from maskwatch.config import Config
from maskwatch.errors import MaskwatchError
from maskwatch.frames import SourceState
from maskwatch.gui.alerts import AlertBanner, play_alert_sound
from maskwatch.gui.controls import ControlsDialog
from maskwatch.gui.review import ReviewTab
from maskwatch.gui.settings import GuiSettings
from maskwatch.gui.side_panel import SidePanel, elapsed_text
from maskwatch.gui.site_tab import SiteTab
from maskwatch.gui.source_picker import SourcePicker
from maskwatch.gui.theme import apply_theme
from maskwatch.gui.video_view import VideoView
from maskwatch.gui.worker import Delivery, MonitorWorker
from maskwatch.overlay import annotate
from maskwatch.paths import assets_dir
from maskwatch.results import FrameResult, Totals
from maskwatch.site.retention import purge_gui_outputs
from maskwatch.sinks.video import VideoSink
from maskwatch.sources.spec import parse, redact

RECORDINGS_KEY = "output/recordings"
"""The settings key of the folder Record writes to."""



def icon(name: str) -> QIcon:
    path = assets_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def unused_name(folder: Path, suffix: str) -> Path:
    """``folder/maskwatch_<date>_<time><suffix>``, with ``_1``, ``_2`` ... if that file exists."""
    stem = time.strftime("maskwatch_%Y%m%d_%H%M%S")
    path, n = folder / f"{stem}{suffix}", 1
    while path.exists():
        path, n = folder / f"{stem}_{n}{suffix}", n + 1
    return path


class MainWindow(QMainWindow):
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
        self.worker.sink_failed.connect(self._on_sink_failed)
        self.run_config: Config | None = None  # the config of the current/last run (with password)
        self.last_result: FrameResult | None = None
        self.last_error: str | None = None
        self._password = ""
        self._stop_requested = False
        self._started_at: float | None = None
        self._source_name = ""
        self._shown_spec: str | None = None
        self._shown_once = False
        self.snapshots_saved: list[Path] = []
        self.recorder: VideoSink | None = None  # the recording in progress
        self.recordings: list[Path] = []  # recordings finished in this session
        self._recording_since: float | None = None
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

    # --- size ---------------------------------------------------------------------------------------
    def _fit_to_screen(self) -> None:
        """Never larger than the screen's free area (a 1280x720 laptop, a geometry saved on a
        bigger monitor): the status bar and the bottom of the side panel stay in view."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is None:
            return
        free = screen.availableGeometry()
        # the window manager's frame (title bar, borders): known once the window is mapped
        extra_w = max(0, self.frameGeometry().width() - self.geometry().width()) or 2
        extra_h = max(0, self.frameGeometry().height() - self.geometry().height()) or 30
        width, height = min(self.width(), free.width() - extra_w), min(self.height(), free.height() - extra_h)
        if (width, height) != (self.width(), self.height()):
            self.resize(width, height)
        frame = self.frameGeometry()
        if self.isVisible() and not free.contains(frame):  # a position saved on another screen
            self.move(max(free.left(), min(frame.left(), free.right() - frame.width())),
                      max(free.top(), min(frame.top(), free.bottom() - frame.height())))

    def _fit_toolbar(self) -> None:
        """Text beside the icons while they fit, icons only (with their tooltips) when the window is
        narrower: no action ever goes into the toolbar's overflow menu."""
        if not hasattr(self, "_toolbar_widths"):
            widths = {}
            for style in (Qt.ToolButtonStyle.ToolButtonTextBesideIcon, Qt.ToolButtonStyle.ToolButtonIconOnly):
                self.toolbar.setToolButtonStyle(style)
                widths[style] = self._toolbar_need()
            self._toolbar_widths = widths
            self.setMinimumWidth(widths[Qt.ToolButtonStyle.ToolButtonIconOnly])
        text = Qt.ToolButtonStyle.ToolButtonTextBesideIcon
        style = text if self.width() >= self._toolbar_widths[text] else Qt.ToolButtonStyle.ToolButtonIconOnly
        if self.toolbar.toolButtonStyle() != style:
            self.toolbar.setToolButtonStyle(style)

    def _toolbar_need(self) -> int:
        """The width the toolbar needs with every action shown (the source box at its minimum)."""
        layout = self.toolbar.layout()
        need = layout.contentsMargins().left() + layout.contentsMargins().right() + 24  # + the handle/extension slack
        for action in self.toolbar.actions():
            widget = self.toolbar.widgetForAction(action)
            if widget is None or not action.isVisible():
                continue
            hint = widget.minimumSizeHint() if widget is self.picker else widget.sizeHint()
            need += hint.width() + layout.spacing()
        return need

    def showEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().showEvent(event)
        if not self._shown_once:  # Space starts at once: the editable source box must not take it
            self._shown_once = True
            self.video.setFocus(Qt.FocusReason.OtherFocusReason)
            QTimer.singleShot(0, self._fit_to_screen)  # again with the window manager's frame known

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().resizeEvent(event)
        self._fit_toolbar()

    # --- construction ------------------------------------------------------------------------------
    def _build_toolbar(self) -> None:
        bar = QToolBar("Source")
        bar.setObjectName("sourceBar")
        bar.setMovable(False)
        bar.setIconSize(QSize(18, 18))
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(bar)
        self.toolbar = bar
        self.picker = SourcePicker(self.settings.recent_sources())
        self.picker.activated.connect(self.start)
        # an entry picked from the list (not typed): the focus leaves the text box, so Space starts it
        self.picker.combo.activated.connect(lambda _i: self.video.setFocus(Qt.FocusReason.OtherFocusReason))
        bar.addWidget(self.picker)

        self.start_action = QAction(icon("start"), "Start", self)
        self.start_action.setToolTip("Start / stop watching (Space)")
        self.start_action.triggered.connect(self.toggle_running)
        bar.addAction(self.start_action)
        self.start_button = bar.widgetForAction(self.start_action)
        self.start_button.setObjectName("startButton")

        self.snapshot_action = QAction(icon("snapshot"), "Snapshot", self)
        self.snapshot_action.setToolTip("Save the annotated frame (Ctrl+S)")
        self.snapshot_action.setEnabled(False)
        self.snapshot_action.triggered.connect(self.save_snapshot)
        bar.addAction(self.snapshot_action)

        self.record_action = QAction(icon("record"), "Record", self)
        self.record_action.setToolTip("Record the annotated video to a file (Ctrl+R; when idle it starts watching "
                                      "too); the arrow picks the folder")
        self.record_action.triggered.connect(self.toggle_recording)
        bar.addAction(self.record_action)
        self.record_button = bar.widgetForAction(self.record_action)
        self.record_button.setObjectName("recordButton")
        record_menu = QMenu(self)
        record_menu.addAction("Record to folder…", self.choose_recording_folder)
        self.record_button.setMenu(record_menu)
        self.record_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)

        self.fullscreen_action = QAction(icon("fullscreen"), "Full screen", self)
        self.fullscreen_action.setToolTip("Video only, full screen (F11; Esc leaves)")
        self.fullscreen_action.triggered.connect(self.toggle_fullscreen)
        bar.addAction(self.fullscreen_action)

        self.settings_action = QAction(icon("settings"), "Settings", self)
        self.settings_action.setToolTip("Detector, thresholds, log file, snapshots (Ctrl+,)")
        self.settings_action.triggered.connect(self.open_settings)
        bar.addAction(self.settings_action)

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
            totals = d.result.totals
        else:
            totals = self.last_result.totals if self.last_result is not None else Totals()
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
            saved = self._recording_ended()
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
        if self._recording_since is not None:
            self.record_label.setText(f"● REC {elapsed_text(time.monotonic() - self._recording_since)}")

    # --- actions ---------------------------------------------------------------------------------------
    def snapshot_folder(self) -> Path:
        cfg = self.run_config or self.settings.apply(self.base_config)
        if cfg.snapshots is not None:
            return Path(cfg.snapshots)
        pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
        return Path(pictures or Path.home()) / "maskwatch"

    def _purge_old_outputs(self) -> None:
        """``retain_days``: the app's own Record videos and Ctrl+S snapshots older than that go (the
        run's sinks purge the headless snapshots and recordings; maskwatch.site.retention)."""
        cfg = self.run_config or self.settings.apply(self.base_config)
        purge_gui_outputs([self.recording_folder(), self.snapshot_folder()], cfg.retain_days)

    def save_snapshot(self) -> Path | None:
        """Save the current frame with its boxes (the overlay the headless snapshots use) as PNG.

        With ``blur_faces`` every face is blurred first, as the snapshot sink does: a manual
        snapshot has no triggering person, so ``"others"`` blurs every face too (as a video does)."""
        if self.last_result is None:
            self.statusBar().showMessage("No frame to save yet", 4000)
            return None
        folder = self.snapshot_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = unused_name(folder, ".png")
            blur = (self.run_config or self.settings.apply(self.base_config)).blur_faces
            # no trigger: "others" blurs every face
            image = annotate(self.last_result.frame.image, self.last_result.faces, blur=blur)
            # encoded in memory, written by Python: OpenCV crashes on a file name that is not UTF-8
            ok, data = cv2.imencode(".png", image)
            if not ok:
                raise OSError("could not encode the image")
            path.write_bytes(data.tobytes())
        except OSError as e:
            self.banner.show_message(f"Cannot save snapshot in {folder}: {e.strerror or e}", "error")
            return None
        self.snapshots_saved.append(path)
        self.statusBar().showMessage(f"Snapshot saved: {path}", 6000)
        return path

    # --- recording ---------------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def recording_folder(self) -> Path:
        saved = self.settings.q.value(RECORDINGS_KEY, "")
        if saved:
            return Path(str(saved))
        movies = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
        return Path(movies or Path.home()) / "maskwatch"

    def choose_recording_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Record to folder", str(self.recording_folder()))
        if folder:
            self.settings.set_value(RECORDINGS_KEY, folder)
            self.statusBar().showMessage(f"Recordings go to {folder}", 6000)

    def toggle_recording(self) -> None:
        if self.recording:
            self.stop_recording()
        else:
            self.start_recording()

    def start_recording(self) -> Path | None:
        """Record the running monitor's annotated frames to a new file; its path, or ``None``."""
        if self.recording:
            return self.recorder.path
        if not self.running:  # Record when idle: start watching the chosen source, recording from its first frame
            self.start()
            if not self.running:
                return None
        folder = self.recording_folder()
        self._purge_old_outputs()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = unused_name(folder, ".mp4")
            sink = VideoSink(path, blur=self.run_config.blur_faces)  # blur_faces from the TOML (privacy)
        except OSError as e:
            self.banner.show_message(f"Cannot record in {folder}: {e.strerror or e}", "error")
            return None
        except MaskwatchError as e:
            self.banner.show_message(self._redact(str(e)), "error")
            return None
        if not self.worker.add_sink(sink):
            self.statusBar().showMessage("The run has ended: nothing to record", 4000)
            return None
        self.recorder = sink
        self._recording_since = time.monotonic()
        self._set_recording_ui(True)
        self.record_label.setText("● REC 0:00:00")
        self.statusBar().showMessage(f"Recording to {path}")
        return path

    def stop_recording(self) -> Path | None:
        """Finalise the recording; the file's path (``None`` when no frame was recorded)."""
        if self.recorder is None:
            return None
        self.worker.remove_sink(self.recorder)  # closes it: the file is complete when this returns
        return self._recording_ended()

    def _recording_ended(self, error: str | None = None) -> Path | None:
        sink, self.recorder = self.recorder, None
        self._recording_since = None
        self._set_recording_ui(False)
        self.record_label.setText("")
        if error is not None:
            self.banner.show_message(f"Recording stopped: {error}", "error")
        if sink.frames_written and sink.path.exists():
            self.recordings.append(sink.path)
            if error is None:
                self.statusBar().showMessage(f"Recording saved: {sink.path} ({sink.frames_written} frames)", 8000)
            return sink.path
        if error is None:
            self.statusBar().showMessage("Recording stopped: no frame was recorded", 6000)
        return None

    def _on_sink_failed(self, sink, message: str) -> None:
        if sink is self.recorder:
            self._recording_ended(self._redact(message))

    def _set_recording_ui(self, recording: bool) -> None:
        self.record_action.setText("Stop recording" if recording else "Record")
        self.record_action.setIcon(icon("stop" if recording else "record"))
        self.record_button.setProperty("recording", "true" if recording else "false")
        self.record_button.style().unpolish(self.record_button)
        self.record_button.style().polish(self.record_button)

    def toggle_fullscreen(self) -> None:
        if self.isFullScreen():
            self.leave_fullscreen()
        else:
            self.toolbar.hide()
            self.tabs.tabBar().hide()
            self.side_scroll.hide()
            self.statusBar().hide()
            self.showFullScreen()

    def leave_fullscreen(self) -> None:
        if not self.isFullScreen():
            return
        self.showNormal()
        self.toolbar.show()
        self.tabs.tabBar().show()
        self.side_scroll.show()
        self.statusBar().show()

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
        from maskwatch.classification import model_info

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
