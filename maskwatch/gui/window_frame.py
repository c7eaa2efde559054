"""``WindowFrame``: the main window's frame, the base of :class:`~maskwatch.gui.main_window.MainWindow`.

- The toolbar (``_build_toolbar``): the source picker, Start, Snapshot, Record (its menu picks the
  folder), Full screen and Settings, with text beside the icons while they fit and icons only
  (with their tooltips) when the window is narrower: no action ever goes into the toolbar's
  overflow menu.
- The size: never larger than the screen's free area (a 1280x720 laptop, a geometry saved on a
  bigger monitor), so the status bar and the bottom of the side panel stay in view.
- Full screen (F11): the video only; Esc leaves.

The actions call the window's slots (``start``, ``toggle_running``, ``save_snapshot``,
``toggle_recording``, ``choose_recording_folder``, ``toggle_fullscreen``, ``open_settings``),
and the frame uses the widgets the window builds (``video``, ``tabs``, ``side_scroll``).
"""

from __future__ import annotations

from PyQt6.QtCore import QSize, Qt, QTimer
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import QApplication, QMainWindow, QMenu, QToolBar, QToolButton

from maskwatch.gui.icons import icon
from maskwatch.gui.source_picker import SourcePicker


class WindowFrame(QMainWindow):
    """Toolbar, size and full screen of the main window (see the module docstring)."""

    _shown_once = False  # the first show puts the focus on the video (Space starts at once)

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

    # --- the toolbar ------------------------------------------------------------------------------
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

    # --- full screen ----------------------------------------------------------------------------------
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
