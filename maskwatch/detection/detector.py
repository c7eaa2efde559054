"""``FaceDetector``: the one face detector the app, ``detect``, training and benchmarks use.

A façade over the registered back-ends: it checks the mode, the score and the options, builds the
mode's back-end, converts whatever image it is given to BGR, and hands back a
:class:`~maskwatch.faces.Faces`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from maskwatch.boxes import clipped_faces
from maskwatch.detection import registry
from maskwatch.detection.images import to_bgr
from maskwatch.errors import MaskwatchError
from maskwatch.faces import Faces


class FaceDetector:
    """Faces in a BGR frame, in pixels of that frame.

    >>> import numpy as np
    >>> det = FaceDetector("dense", scales=(1.0, 2.0))
    >>> det.detect(np.zeros((120, 160), np.uint8)).xyxy.shape   # grayscale is fine too
    (0, 4)
    >>> det.close()

    ``mode`` is one of :data:`~maskwatch.detection.DETECTOR_MODES`; ``mode_options`` are that
    mode's options (:mod:`maskwatch.detection.options`, for example ``FaceDetector("tiled", tile=256)``).
    ``options`` holds all of them, defaults included. ``video=True`` says frames come one after
    another from one fixed camera: ``retina`` then gates on motion unless ``motion=False``.

    >>> with FaceDetector("retina") as photos, FaceDetector("retina", video=True) as camera:
    ...     photos.options["motion"], camera.options["motion"]
    (False, True)
    """

    def __init__(self, mode: str = registry.DEFAULT_MODE, min_score: float = 0.5, model_dir: Path | None = None,
                 video: bool = False, **mode_options):
        entry = registry.get(mode)
        try:
            score = float(min_score)
        except (TypeError, ValueError):
            score = float("nan")
        if not 0.0 <= score <= 1.0:
            raise MaskwatchError(f"face detector min_score must be in [0, 1], got {min_score}")
        options = entry.options.from_dict(mode_options)
        if "motion" in options.names() and options.motion is None:  # unset: gated on video only
            options = dataclasses.replace(options, motion=bool(video))
        self.mode = mode
        self.min_score = score
        self.options: dict = options.as_dict()
        self._backend = registry.build(mode, options, self.min_score, model_dir)

    @classmethod
    def from_config(cls, config, video: bool = False) -> "FaceDetector":
        """The detector a :class:`~maskwatch.config.DetectorConfig` describes (mode, min_score, options).

        ``video``: its frames come one after another from one camera (the pipeline), so a mode
        that can skip what did not change (``retina``'s ``motion``) does unless told otherwise.
        """
        return cls(config.mode, config.min_score, video=video, **config.options)

    def detect(self, image_bgr: np.ndarray) -> Faces:
        """Faces in ``image_bgr`` (uint8 BGR; BGRA and grayscale are converted)."""
        if self._backend is None:
            raise MaskwatchError("face detector is closed")
        bgr = to_bgr(image_bgr)
        if bgr.shape[0] == 0 or bgr.shape[1] == 0:
            return clipped_faces([], [], [], bgr.shape[1], bgr.shape[0])
        return self._backend.detect(bgr)

    def reset(self) -> None:
        """Forget what depends on consecutive frames (a camera reconnect, a new frame size): the
        motion gate's background model and remembered faces, so no face from before an outage is
        handed back. A back-end without such state has nothing to forget.

        >>> import numpy as np
        >>> with FaceDetector("retina", video=True) as det:
        ...     _ = det.detect(np.zeros((120, 160, 3), np.uint8)); det.reset()
        """
        reset = getattr(self._backend, "reset", None)  # only stateful back-ends (motion gating) have one
        if reset is not None:
            reset()

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaceDetector(mode={self.mode!r}, min_score={self.min_score}, {self.options})"
