"""The desktop app (PyQt6): ``run_app(config)`` opens the main window.

The pipeline runs in a worker thread (:mod:`maskwatch.gui.worker`, the same ``Monitor`` as
``maskwatch --headless``); the window shows what it delivers. Importing this package does not
import Qt; :func:`run_app` first makes sure PyQt6 loads its own Qt plugins, not the Qt5 ones
bundled with OpenCV (:mod:`maskwatch.gui.qt_env`).
"""

from maskwatch.gui.app import run_app

__all__ = ["run_app"]
