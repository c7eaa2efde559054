"""How responsive the desktop app stays while the monitor runs (offscreen Qt, the demo clip).

A 10 ms QTimer measures event-loop lag (how late each tick fires) from Start until the source
ends, including the model loading in the worker thread. Prints lag percentiles, frames processed
by the monitor vs shown by the UI (the rest were dropped by the latest-result mailbox), and the
time to the first frame.

    python benchmarks/gui_responsiveness.py                       # demo clip, real-time playback
    python benchmarks/gui_responsiveness.py --realtime off        # as fast as the pipeline goes
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from maskwatch.gui.qt_env import prepare_qt_environment  # noqa: E402

prepare_qt_environment()

from maskwatch.mediapipe_import import import_mediapipe_without_tensorflow  # noqa: E402

import_mediapipe_without_tensorflow()  # as run_app does

import numpy as np  # noqa: E402
from PyQt6.QtCore import QElapsedTimer, QSettings, QTimer  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from maskwatch.config import Config  # noqa: E402
from maskwatch.gui.main_window import MainWindow  # noqa: E402
from maskwatch.gui.settings import GuiSettings  # noqa: E402
from maskwatch.paths import demo_clip, models_dir  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=str(demo_clip()))
    parser.add_argument("--model", default=str(models_dir() / "mask_classifier.tflite"))
    parser.add_argument("--realtime", choices=("on", "off"), default="on")
    parser.add_argument("--mode", default=Config().detector.mode, help="detector mode (default: the app's)")
    args = parser.parse_args()

    app = QApplication([])
    tmp = tempfile.mkdtemp()
    settings = GuiSettings(QSettings(str(Path(tmp) / "gui.ini"), QSettings.Format.IniFormat))
    settings.save_controls(mode=args.mode, min_score=0.5, vote_window=15, log=None, snapshots=None, sound=False,
                           realtime=args.realtime == "on")
    window = MainWindow(Config(model=Path(args.model)), settings)
    window.resize(1280, 780)
    window.show()
    window.picker.set_spec(args.source)

    lags: list[float] = []
    clock = QElapsedTimer()
    expected = [0.0]
    first_frame = [None]
    processed = [0]

    running_lags: list[float] = []

    def tick():
        now = clock.elapsed()
        (lags if first_frame[0] is None else running_lags).append(max(0.0, now - expected[0]))
        expected[0] = now + 10

    def delivered():
        if first_frame[0] is None and window.last_result is not None:
            first_frame[0] = clock.elapsed() / 1000
        if window.last_result is not None:
            processed[0] = window.last_result.frame.index + 1

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    window.delivered.connect(delivered)
    window.run_finished.connect(lambda state: app.quit())
    clock.start()
    expected[0] = 10
    timer.start()
    t0 = time.monotonic()
    QTimer.singleShot(0, window.start)
    app.exec()
    seconds = time.monotonic() - t0
    window.shutdown()
    shown = window.video.frames_shown
    print(f"source {Path(args.source).name}, detector {args.mode}, realtime {args.realtime}, "
          f"model {Path(args.model).name}, {os.cpu_count()} CPUs")
    print(f"run {seconds:.1f} s, first frame after {first_frame[0]:.1f} s (models load in the worker thread)")
    print(f"frames: {processed[0]} processed by the monitor, {shown} shown, {window.worker.skipped} dropped by the UI mailbox")
    for name, values in (("loading (start to first frame)", lags), ("running (first frame to end)", running_lags)):
        lag = np.array(values or [0.0])
        print(f"event-loop lag while {name}, {len(values)} ticks of 10 ms: median {np.median(lag):.1f} ms, "
              f"p99 {np.percentile(lag, 99):.1f} ms, max {lag.max():.1f} ms")
    return 0 if window.side.state == "ended" else 1


if __name__ == "__main__":
    sys.exit(main())
