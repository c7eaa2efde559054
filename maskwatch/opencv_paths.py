"""Paths OpenCV can be given: its C++ API takes UTF-8 text and crashes (segfault) on a file name
that is not valid UTF-8 (a name from another system, ``os.fsdecode`` surrogates). Readers and
writers open such files through :func:`opencv_path` instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def _opencv_can_take(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@contextlib.contextmanager
def opencv_path(path: str | Path):
    """A path text OpenCV can be given for ``path``: itself, or, when its name is not valid UTF-8,
    a symlink with a plain name in a temporary folder (``/proc/self/fd/N`` where symlinks fail),
    valid inside the ``with`` block (long enough for ``cv2.VideoCapture`` to open it)."""
    text = os.fspath(path)
    if _opencv_can_take(text):
        yield text
        return
    suffix = Path(text).suffix if _opencv_can_take(Path(text).suffix) else ""
    folder = tempfile.mkdtemp(prefix="maskwatch-")
    try:
        link = os.path.join(folder, "source" + suffix)
        try:
            os.symlink(os.path.abspath(text), link)
        except OSError:
            link = None
        if link is not None:
            yield link
            return
        fd = os.open(text, os.O_RDONLY)
        try:
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
