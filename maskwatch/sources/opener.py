"""``open_source``: a source text (or webcam index, or path) -> the right ``Source``, opened."""

from __future__ import annotations

import os

from maskwatch.sources.options import SourceConfig
from maskwatch.sources.base import Source
from maskwatch.sources.files import FileSource, ImageFolderSource
from maskwatch.sources.live import LiveSource
from maskwatch.sources.spec import SourceSpec, parse


def open_source(spec: str | int | os.PathLike | SourceSpec, config: SourceConfig | None = None) -> Source:
    """Open a webcam index, camera URL, video file, image or image folder (see ``maskwatch.sources``).

    Raises ``MaskwatchError`` (one line, credentials redacted) for a missing path, a malformed or
    unsupported URL, a video or image that can't be decoded, a folder without readable images, a
    webcam that can't be opened. A network camera that does not answer is not an error: it is
    retried (``state``).
    """
    config = config or SourceConfig()
    spec = parse(spec)
    if spec.kind in ("network", "url"):
        return LiveSource.network(spec, config)
    spec = spec.resolve()
    if spec.kind == "webcam":
        return LiveSource.webcam(spec.device, config)
    if spec.kind == "images":
        return ImageFolderSource.from_folder(spec.path)
    if spec.kind == "image":
        return ImageFolderSource.from_file(spec.path)
    return FileSource(spec.path, config)
