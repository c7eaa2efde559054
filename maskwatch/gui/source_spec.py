"""Source texts as the app handles them: URLs without passwords, and the webcams on this machine.

The desktop app keeps a camera password only in its password field: URLs are shown, stored and
put in the recent list without it, and :func:`with_password` inserts it only into the spec handed
to the monitor when a run starts.

>>> strip_password("rtsp://admin:s3cret@10.0.0.7:554/live")
'rtsp://admin@10.0.0.7:554/live'
>>> split_password("rtsp://admin:s3cret@10.0.0.7/live")
('rtsp://admin@10.0.0.7/live', 's3cret')
>>> with_password("rtsp://admin@10.0.0.7/live", "p@ss:word")
'rtsp://admin:p%40ss%3Aword@10.0.0.7/live'
>>> with_password("clip.mp4", "ignored")
'clip.mp4'
"""

from __future__ import annotations

import glob
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from maskwatch.sources import NETWORK_SCHEMES

# scheme://user:password@rest -- like maskwatch.sources.redact_url, the password runs to the last "@".
_CREDENTIALS = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*)://(?P<user>[^\s:@/?#]*):(?P<password>\S*)@(?P<rest>[^@]*)$")
_USER = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*)://(?:(?P<user>[^\s:@/?#]*)@)?(?P<rest>.*)$")
# characters RFC 3986 allows unescaped in userinfo besides unreserved ones
_USERINFO_SAFE = "!$&'()*+,;=-._~"


def is_network_url(spec: str) -> bool:
    """``True`` for rtsp/http(s)/rtmp camera URLs.

    >>> is_network_url("RTSP://cam/x"), is_network_url("/videos/a.mp4")
    (True, False)
    """
    m = _USER.match(spec.strip())
    return bool(m) and m["scheme"].lower() in NETWORK_SCHEMES


def split_password(spec: str) -> tuple[str, str]:
    """(``spec`` without its URL password, the password percent-decoded or ``""``)."""
    spec = spec.strip()
    m = _CREDENTIALS.match(spec)
    if not m:
        return spec, ""
    user = f"{m['user']}@" if m["user"] else ""
    return f"{m['scheme']}://{user}{m['rest']}", unquote(m["password"])


def strip_password(spec: str) -> str:
    return split_password(spec)[0]


def with_password(spec: str, password: str) -> str:
    """``spec`` with ``password`` put into its URL (percent-encoded); non-URLs and empty passwords
    leave ``spec`` as it is. A password already in the URL is replaced."""
    spec, _ = split_password(spec)
    if not password or not is_network_url(spec):
        return spec
    m = _USER.match(spec)
    return f"{m['scheme']}://{m['user'] or ''}:{quote(password, safe=_USERINFO_SAFE)}@{m['rest']}"


@dataclass(frozen=True)
class Webcam:
    spec: str  # what open_source takes: "0" or "/dev/video2"
    name: str  # for the picker


def find_webcams(max_index: int = 4) -> list[Webcam]:
    """Video capture devices on this machine, without opening them (opening can take seconds).

    Linux: ``/dev/video*`` nodes whose sysfs ``index`` is 0 (UVC cameras also create metadata
    nodes), named from sysfs. Other systems: indices ``0..max_index-1`` can't be listed without
    opening them, so the picker offers index 0 (``Webcam 0``).
    """
    if not sys.platform.startswith("linux"):
        return [Webcam("0", "Webcam 0")]
    cams = []
    for node in sorted(glob.glob("/dev/video*"), key=lambda p: int(re.sub(r"\D", "", p) or 0)):
        sysfs = Path("/sys/class/video4linux") / os.path.basename(node)
        try:
            if (sysfs / "index").read_text().strip() not in ("", "0"):
                continue
        except OSError:
            pass
        try:
            label = (sysfs / "name").read_text().strip()
        except OSError:
            label = ""
        digits = re.sub(r"\D", "", node)
        spec = digits if digits else node
        cams.append(Webcam(spec, f"Webcam {spec}" + (f" — {label}" if label else "")))
    return cams[:max(max_index, 1) * 4]
