"""Frame sources: one ``open_source(spec)`` for a webcam, an RTSP/HTTP camera, a video file or an image folder.

    >>> from maskwatch.sources import open_source, redact_url
    >>> with open_source("tests/fixtures/clip_320x240.mp4") as source:
    ...     for frame in source:
    ...         pass
    >>> frame.index, frame.timestamp, frame.image.shape
    (49, 1.96, (240, 320, 3))
    >>> redact_url("cannot open rtsp://admin:s3cret@10.0.0.7/stream1")
    'cannot open rtsp://admin:***@10.0.0.7/stream1'

``spec`` is read by :func:`maskwatch.sources.spec.parse` (the one parser of source texts): an
``int`` or a digit string is a webcam index; ``rtsp://``, ``rtsps://``, ``rtmp://``, ``http://``,
``https://`` URLs are network cameras; an existing directory is an image folder; an existing image
file is a one-image folder; any other existing file is a video; a character device
(``/dev/video0``) is a webcam. Anything else raises ``MaskwatchError`` with one line, credentials
redacted.

Files (``FileSource``, ``ImageFolderSource``; ``files.py``) deliver every frame in order and then
end. Live sources (``LiveSource``: webcams and network cameras; ``live.py``) run a reader thread
that keeps only the newest frame: a consumer slower than the camera never builds a backlog or a
growing lag, and the frames it missed are counted in ``dropped``. Network cameras are opened with
FFmpeg over TCP with open and read timeouts, watched for stalls, and reconnected with capped
exponential backoff; their ``state`` goes CONNECTING -> LIVE -> RECONNECTING -> LIVE ... -> ENDED.

Reading: ``for frame in source`` blocks until the next frame and stops when the source has ended for
good. ``source.read(timeout)`` returns the next frame, or ``None`` when no frame came within
``timeout`` seconds or the source has ended (check ``source.state``); a consumer that must keep
working while a camera is down (interval logging, a GUI) uses ``read`` with a timeout.

Modules: ``spec`` (parsing), ``urls`` (URL text, redaction), ``credentials`` (the desktop app's
password field): no OpenCV; ``base`` (``Source``), ``files``, ``live``, ``opener`` (``open_source``),
``read_ahead`` (``ReadAhead``: a file read ahead in a thread).
"""

import importlib

from maskwatch.sources.spec import (
    IMAGE_SUFFIXES,
    NETWORK_SCHEMES,
    SECRET_KEYS,
    SourceSpec,
    display_path,
    is_network_url,
    parse,
    redact,
    redact_url,
    split_password,
    strip_password,
    validate_url,
    with_password,
)

# Names that need OpenCV, imported from their module on first use (PEP 562), so that parsing and
# redaction (the CLI's error lines, the configuration, the GUI's password field) load no OpenCV.
_LAZY = {
    "Source": "maskwatch.sources.base",
    "FALLBACK_FPS": "maskwatch.sources.files",
    "FileSource": "maskwatch.sources.files",
    "ImageFolderSource": "maskwatch.sources.files",
    "load_image": "maskwatch.sources.files",
    "opencv_path": "maskwatch.opencv_paths",
    "Capture": "maskwatch.sources.live",
    "LiveSource": "maskwatch.sources.live",
    "network_capture": "maskwatch.sources.live",
    "webcam_capture": "maskwatch.sources.live",
    "open_source": "maskwatch.sources.opener",
    "ReadAhead": "maskwatch.sources.read_ahead",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Capture",
    "FALLBACK_FPS",
    "FileSource",
    "IMAGE_SUFFIXES",
    "ImageFolderSource",
    "LiveSource",
    "NETWORK_SCHEMES",
    "ReadAhead",
    "SECRET_KEYS",
    "Source",
    "SourceSpec",
    "display_path",
    "is_network_url",
    "load_image",
    "network_capture",
    "open_source",
    "opencv_path",
    "parse",
    "redact",
    "redact_url",
    "split_password",
    "strip_password",
    "validate_url",
    "webcam_capture",
    "with_password",
]
