"""``RecordingController``: the desktop app's own outputs, Record (Ctrl+R) and Snapshot (Ctrl+S).

Record adds a :class:`~maskwatch.sinks.video.VideoSink` to the running monitor: every processed
frame with its boxes, labels and track ids goes to ``maskwatch_<date>_<time>.mp4`` in the
recordings folder (:data:`RECORDINGS_KEY`, picked in the Record button's menu; default: the
system's Videos folder / ``maskwatch``), until Record is pressed again or the run ends. Snapshot
saves the frame shown with its overlay as ``maskwatch_<date>_<time>.png`` in the run's snapshot
folder (default: the system's Pictures folder / ``maskwatch``). Both draw with
:func:`maskwatch.overlay.annotate`, faces blurred as ``blur_faces`` says (no triggering person:
``"others"`` blurs every face, as in a video). ``retain_days`` purges both folders of the app's
old files (:func:`purge_old_outputs`).

The controller belongs to its :class:`~maskwatch.gui.main_window.MainWindow` (its parent), whose
thin methods of the same names (``start_recording``, ``save_snapshot``, ...) call it; it reads the
window's settings, configs, worker and last result, and shows its news in the window's banner,
status bar and Record button.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
from PyQt6.QtCore import QObject, QStandardPaths
from PyQt6.QtWidgets import QFileDialog

from maskwatch.errors import MaskwatchError
from maskwatch.gui.icons import icon
from maskwatch.gui.side_panel import elapsed_text
from maskwatch.overlay import annotate
from maskwatch.sinks.retention import purge_gui_outputs
from maskwatch.sinks.video import VideoSink
from maskwatch.sinks.names import gui_output_path
from maskwatch.sinks.names import gui_output_path as unused_name  # noqa: F401 - the old name, still importable

if TYPE_CHECKING:
    from maskwatch.gui.main_window import MainWindow

RECORDINGS_KEY = "output/recordings"
"""The settings key of the folder Record writes to."""


class RecordingController(QObject):
    """Record and Snapshot of one window (see the module docstring).

    ``recorder``: the recording in progress (``None`` when not recording); ``recordings``: the
    files finished in this session; ``snapshots_saved``: the Ctrl+S files of this session."""

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.recorder: VideoSink | None = None
        self.recordings: list[Path] = []
        self.snapshots_saved: list[Path] = []
        self._recording_since: float | None = None
        window.worker.sink_failed.connect(self._on_sink_failed)

    def _config(self):
        """The config of the current/last run, else the one the next run would have."""
        w = self.window
        return w.run_config or w.settings.apply(w.base_config)

    # --- folders -------------------------------------------------------------------------------------
    def snapshot_folder(self) -> Path:
        cfg = self._config()
        if cfg.snapshots is not None:
            return Path(cfg.snapshots)
        pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
        return Path(pictures or Path.home()) / "maskwatch"

    def recording_folder(self) -> Path:
        saved = self.window.settings.q.value(RECORDINGS_KEY, "")
        if saved:
            return Path(str(saved))
        movies = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
        return Path(movies or Path.home()) / "maskwatch"

    def choose_recording_folder(self) -> None:
        w = self.window
        folder = QFileDialog.getExistingDirectory(w, "Record to folder", str(self.recording_folder()))
        if folder:
            w.settings.set_value(RECORDINGS_KEY, folder)
            w.statusBar().showMessage(f"Recordings go to {folder}", 6000)

    def purge_old_outputs(self) -> None:
        """``retain_days``: the app's own Record videos and Ctrl+S snapshots older than that go (the
        run's sinks purge the headless snapshots and recordings; maskwatch.sinks.retention)."""
        purge_gui_outputs([self.recording_folder(), self.snapshot_folder()], self._config().retain_days)

    # --- snapshot ------------------------------------------------------------------------------------
    def save_snapshot(self) -> Path | None:
        """Save the current frame with its boxes (the overlay the headless snapshots use) as PNG.

        With ``blur_faces`` every face is blurred first, as the snapshot sink does: a manual
        snapshot has no triggering person, so ``"others"`` blurs every face too (as a video does)."""
        w = self.window
        if w.last_result is None:
            w.statusBar().showMessage("No frame to save yet", 4000)
            return None
        folder = self.snapshot_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = gui_output_path(folder, ".png")
            # no trigger: "others" blurs every face
            image = annotate(w.last_result.frame.image, w.last_result.faces, blur=self._config().blur_faces)
            # encoded in memory, written by Python: OpenCV crashes on a file name that is not UTF-8
            ok, data = cv2.imencode(".png", image)
            if not ok:
                raise OSError("could not encode the image")
            path.write_bytes(data.tobytes())
        except OSError as e:
            w.banner.show_message(f"Cannot save snapshot in {folder}: {e.strerror or e}", "error")
            return None
        self.snapshots_saved.append(path)
        w.statusBar().showMessage(f"Snapshot saved: {path}", 6000)
        return path

    # --- recording -----------------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def toggle_recording(self) -> None:
        if self.recording:
            self.stop_recording()
        else:
            self.start_recording()

    def start_recording(self) -> Path | None:
        """Record the running monitor's annotated frames to a new file; its path, or ``None``."""
        w = self.window
        if self.recording:
            return self.recorder.path
        if not w.running:  # Record when idle: start watching the chosen source, recording from its first frame
            w.start()
            if not w.running:
                return None
        folder = self.recording_folder()
        self.purge_old_outputs()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = gui_output_path(folder, ".mp4")
            sink = VideoSink(path, blur=w.run_config.blur_faces)  # blur_faces from the TOML (privacy)
        except OSError as e:
            w.banner.show_message(f"Cannot record in {folder}: {e.strerror or e}", "error")
            return None
        except MaskwatchError as e:
            w.banner.show_message(w._redact(str(e)), "error")
            return None
        if not w.worker.add_sink(sink):
            w.statusBar().showMessage("The run has ended: nothing to record", 4000)
            return None
        self.recorder = sink
        self._recording_since = time.monotonic()
        self._set_recording_ui(True)
        w.record_label.setText("● REC 0:00:00")
        w.statusBar().showMessage(f"Recording to {path}")
        return path

    def stop_recording(self) -> Path | None:
        """Finalise the recording; the file's path (``None`` when no frame was recorded)."""
        if self.recorder is None:
            return None
        self.window.worker.remove_sink(self.recorder)  # closes it: the file is complete when this returns
        return self.recording_ended()

    def recording_ended(self, error: str | None = None) -> Path | None:
        """The recording is over (stopped, failed, or closed by the monitor with the run): the UI
        says so; the file's path when it has frames."""
        w = self.window
        sink, self.recorder = self.recorder, None
        self._recording_since = None
        self._set_recording_ui(False)
        w.record_label.setText("")
        if error is not None:
            w.banner.show_message(f"Recording stopped: {error}", "error")
        if sink.frames_written and sink.path.exists():
            self.recordings.append(sink.path)
            if error is None:
                w.statusBar().showMessage(f"Recording saved: {sink.path} ({sink.frames_written} frames)", 8000)
            return sink.path
        if error is None:
            w.statusBar().showMessage("Recording stopped: no frame was recorded", 6000)
        return None

    def tick(self) -> None:
        """Once a second: the REC label's running time."""
        if self._recording_since is not None:
            self.window.record_label.setText(f"● REC {elapsed_text(time.monotonic() - self._recording_since)}")

    def _on_sink_failed(self, sink, message: str) -> None:
        if sink is self.recorder:
            self.recording_ended(self.window._redact(message))

    def _set_recording_ui(self, recording: bool) -> None:
        w = self.window
        w.record_action.setText("Stop recording" if recording else "Record")
        w.record_action.setIcon(icon("stop" if recording else "record"))
        w.record_button.setProperty("recording", "true" if recording else "false")
        w.record_button.style().unpolish(w.record_button)
        w.record_button.style().polish(w.record_button)
