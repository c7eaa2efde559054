"""Start the desktop app: ``run_app(config)`` (what ``maskwatch`` without ``--headless`` calls).

``python -m maskwatch.gui`` runs it directly, with extra flags for unattended runs:

    python -m maskwatch.gui assets/demo.mp4 --autostart --screenshot shot.png --settings-file /tmp/gui.ini

``--screenshot`` waits until the view has drawn at least one labelled box (a person whose label
was decided; with ``--screenshot-min-frame N`` on frame N or later), grabs the window from the screen (``QScreen.grabWindow``; a widget render on
platforms without a screen) into the PNG, writes ``<png>.json`` with what the view drew and which
Qt platform plugin was loaded, then closes the app the normal way (worker stopped, log flushed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from maskwatch.config import Config
from maskwatch.errors import MaskwatchError
from maskwatch.gui.qt_env import QtEnvironmentReport, check_platform_libraries, prepare_qt_environment
from maskwatch.mediapipe_import import import_mediapipe_without_tensorflow
from maskwatch.sources.spec import redact


class ScreenshotTaker:
    """Grabs the main window once the video view shows a labelled box (or at ``timeout_s``)."""

    def __init__(self, window, path: Path, env: QtEnvironmentReport, timeout_s: float = 60.0, settle_ms: int = 400,
                 min_frame: int = 0):
        from PyQt6.QtCore import QTimer

        self.window = window
        self.path = Path(path)
        self.env = env
        self.timeout_s = timeout_s
        self.settle_ms = settle_ms
        self.min_frame = min_frame
        self.started = time.monotonic()
        self.found_at: float | None = None
        self.done = False
        self.ok = False
        self._poll = QTimer()
        self._poll.timeout.connect(self._check)
        self._poll.start(100)
        window.video.painted.connect(self._on_paint)
        window.run_finished.connect(lambda _state: self._check(finished=True))

    def _on_paint(self) -> None:
        self._check()

    def _labelled(self) -> list[dict]:
        if self.window.video.frame_index < self.min_frame:
            return []
        return [b for b in self.window.video.drawn_boxes if b["decided"]]

    def _check(self, finished: bool = False) -> None:
        from PyQt6.QtCore import QTimer

        if self.done or self.found_at is not None:
            return
        if self._labelled():
            # hold this frame on screen (results wait in the mailbox), let it reach the server, grab
            self.found_at = time.monotonic()
            self.window.freeze_display = True
            self._poll.stop()
            QTimer.singleShot(self.settle_ms, self._grab)
        elif finished or time.monotonic() - self.started > self.timeout_s:
            self._grab()

    def _grab(self) -> None:
        from PyQt6.QtCore import QPoint
        from PyQt6.QtWidgets import QApplication

        if self.done:
            return
        self.done = True
        self._poll.stop()
        w = self.window
        w.freeze_display = True  # no new frame between the grab and the report of what was drawn
        QApplication.processEvents()
        app = QApplication.instance()
        screen = w.screen()
        if app.platformName() not in ("offscreen", "minimal") and screen is not None:
            pixmap = screen.grabWindow(int(w.winId()))
            how = "screen"
        else:
            pixmap = w.grab()
            how = "widget"
        boxes = list(w.video.drawn_boxes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        saved = pixmap.save(str(self.path), "PNG")
        labelled = [b for b in boxes if b["decided"]]
        self.ok = bool(saved and labelled)
        result = w.last_result
        report = {
            "png": str(self.path),
            "saved": bool(saved),
            "grab": how,
            "platform": app.platformName(),
            "qt_plugins_path": self.env.plugins_path,
            "platform_plugin_dir": self.env.platform_plugin_dir,
            "removed_env": sorted(self.env.removed),
            "window_size": [w.width(), w.height()],
            "video_origin": [w.video.mapTo(w, QPoint(0, 0)).x(), w.video.mapTo(w, QPoint(0, 0)).y()],
            "image_size": [pixmap.width(), pixmap.height()],
            "seconds_to_grab": round(time.monotonic() - self.started, 2),
            "frames_shown": w.video.frames_shown,
            "frame_index": None if result is None else int(result.frame.index),
            "boxes": boxes,
            "labelled_boxes": len(labelled),
            "totals": None if result is None else {"people_seen": result.totals.people_seen, **result.totals.by_label},
            "state": w.side.state,
            "error": w.last_error,
        }
        self.path.with_suffix(self.path.suffix + ".json").write_text(json.dumps(report, indent=2))
        w.close()


def _close_on_signals(window) -> None:
    """Ctrl+C / SIGTERM close the window the normal way (worker stopped, log flushed).

    Python runs signal handlers only between bytecodes; a 200 ms timer gives it the chance while
    Qt's event loop (C++) is running.
    """
    import signal

    from PyQt6.QtCore import QTimer

    def handle(signum, frame):
        QTimer.singleShot(0, window.close)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, handle)
        except ValueError:  # not the main thread (embedded use): leave signals alone
            return
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(200)


def run_app(config: Config, *, autostart: bool = False, screenshot: str | Path | None = None,
            screenshot_timeout_s: float = 60.0, screenshot_min_frame: int = 0, settings_file: str | Path | None = None,
            realtime: bool | None = None, argv: list[str] | None = None) -> int:
    """Open the main window on ``config`` and run the Qt event loop; returns the exit code.

    ``settings_file``: an INI file instead of the user's QSettings (tests, unattended runs).
    ``screenshot``: see the module doc; the exit code is 0 only if a labelled box was captured;
    ``screenshot_min_frame``: ignore labelled boxes on frames before this index.
    ``realtime``: play files at their speed (``None``: the saved setting), not saved.
    """
    env = prepare_qt_environment()  # before any QApplication: PyQt6's own plugins, not cv2's
    check_platform_libraries()  # one line naming the packages, not Qt's abort and core dump
    import_mediapipe_without_tensorflow()  # seconds of start-up and hundreds of MiB saved; no-op if done
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    # lazy: Qt widgets (and through the window OpenCV, numpy, the stages) load only after the Qt environment
    # above is prepared, and `import maskwatch.gui` (the CLI's --help, --headless) stays free of them
    from maskwatch.gui.main_window import MainWindow
    from maskwatch.gui.settings import APPLICATION, ORGANISATION, GuiSettings

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("maskwatch")
    app.setDesktopFileName("maskwatch")
    qsettings = QSettings(str(settings_file), QSettings.Format.IniFormat) if settings_file else None
    settings = GuiSettings(qsettings)
    window = MainWindow(config, settings)
    window.realtime_override = realtime
    if autostart or screenshot:
        window.picker.set_spec(str(config.source))
    window.show()
    _close_on_signals(window)
    taker = None
    if screenshot:
        taker = ScreenshotTaker(window, Path(screenshot), env, timeout_s=screenshot_timeout_s,
                                min_frame=screenshot_min_frame)
    if autostart or screenshot:
        from PyQt6.QtCore import QTimer

        QTimer.singleShot(0, window.start)
    code = app.exec()
    window.shutdown()
    if taker is not None:
        return 0 if taker.ok else 1
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maskwatch.gui", description="The maskwatch desktop app.")
    parser.add_argument("source", nargs="?", help="webcam index, camera URL, video file or image folder")
    parser.add_argument("--config", help="TOML config file")
    parser.add_argument("--model", help="classifier .tflite (default: models/mask_classifier.tflite)")
    parser.add_argument("--detector", help="face detector mode (default: the saved setting, else the config's)")
    parser.add_argument("--interval", type=float, metavar="S", help="seconds per interval (chart point, CSV row)")
    parser.add_argument("--log", metavar="CSV", help="interval CSV log for this run (not saved)")
    parser.add_argument("--autostart", action="store_true", help="start watching at once")
    parser.add_argument("--screenshot", metavar="PNG", help="save a window screenshot after the first labelled box, then quit")
    parser.add_argument("--screenshot-timeout", type=float, default=60.0, metavar="S")
    parser.add_argument("--screenshot-min-frame", type=int, default=0, metavar="N",
                        help="only grab a labelled box on frame N or later")
    parser.add_argument("--settings-file", metavar="INI", help="keep settings in this INI file, not the user's")
    parser.add_argument("--realtime", choices=("on", "off"), help="play files at their speed (saved setting otherwise)")
    args = parser.parse_args(argv)
    try:  # the CLI's merge and checks (Config.load): a bad flag or TOML value is one line, exit 2
        config = Config.load(args.config, {
            "source": args.source or None,
            "model": args.model or None,
            "detector.mode": args.detector or None,
            "interval_s": args.interval,
            "log": args.log or None,
        })
        return run_app(config, autostart=args.autostart, screenshot=args.screenshot,
                       screenshot_timeout_s=args.screenshot_timeout, screenshot_min_frame=args.screenshot_min_frame,
                       settings_file=args.settings_file,
                       realtime=None if args.realtime is None else args.realtime == "on")
    except MaskwatchError as e:
        print(f"maskwatch: error: {' '.join(redact(str(e)).split())}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
