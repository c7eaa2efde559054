"""Import MediaPipe without TensorFlow (see :func:`import_mediapipe_without_tensorflow`).

Its own module so the CLI, the desktop app, the tests and the benchmarks share it without
importing one another (``gui/app.py`` used to import ``cli.py`` for it).
"""

from __future__ import annotations

import sys


def import_mediapipe_without_tensorflow() -> None:
    """Import MediaPipe without letting it import TensorFlow.

    ``mediapipe.tasks.python.core.optional_dependencies`` imports ``tensorflow.tools.docs`` only for
    its API-doc generator and falls back to a no-op when TensorFlow is missing. With the ``train``
    extra installed, that import loads all of TensorFlow into the app: measured here, ``import
    mediapipe`` took 12.4 s instead of 0.9 s and peak RSS was 780 MiB instead of 159 MiB. Blocking
    the module for the duration of the import takes the no-op path; TensorFlow stays importable
    afterwards. A no-op when MediaPipe or TensorFlow is already imported.
    """
    if "mediapipe" in sys.modules or "tensorflow" in sys.modules:
        return
    sys.modules["tensorflow"] = None  # import raises ModuleNotFoundError, which MediaPipe expects
    try:
        import mediapipe  # noqa: F401
        from mediapipe.tasks.python import vision  # noqa: F401
    except ImportError:
        pass  # FaceDetector reports a missing MediaPipe itself
    finally:
        if sys.modules.get("tensorflow", 0) is None:
            del sys.modules["tensorflow"]
