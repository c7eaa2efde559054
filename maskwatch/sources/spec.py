"""``SourceSpec``: what a source text names (webcam, camera URL, file, folder), parsed once.

Every part of maskwatch that looks at a source text asks :func:`parse`: ``open_source``, the
pipeline's cheap pre-check, the CLI and the desktop app. Parsing is also where camera passwords are
kept apart from everything that may be shown:

- ``spec.name`` is the display name, every credential replaced by ``***``;
- ``spec.password`` holds the password (percent-decoded) and is left out of ``repr``;
- ``spec.url`` is what FFmpeg gets: the user name, the password and secret query values
  percent-encoded, so a password pasted raw (``p@ss w#rd/?:%``) still works.

>>> spec = parse("rtsp://admin:p@ss w#rd/?@10.0.0.7:554/live")
>>> spec.kind, spec.name, spec.password
('network', 'rtsp://admin:***@10.0.0.7:554/live', 'p@ss w#rd/?')
>>> spec.url
'rtsp://admin:p%40ss%20w%23rd%2F%3F@10.0.0.7:554/live'
>>> parse("http://cam/snap.cgi?user=admin&PWD=s3cret&res=hd").name
'http://cam/snap.cgi?user=admin&PWD=***&res=hd'
>>> parse("0").kind, parse("0").device
('webcam', 0)
>>> redact("cannot open rtsp://admin:s3cret@10.0.0.7/stream1?token=abc123")
'cannot open rtsp://admin:***@10.0.0.7/stream1?token=***'

How a text is read: an ``int`` or a digit string is a webcam index; a URL whose scheme is one of
:data:`NETWORK_SCHEMES` is a network camera; ``file://`` and anything else is a path, whose kind
:meth:`SourceSpec.resolve` finds on disk (a folder of images, an image, a video, a camera device).

Credentials in a URL: the user name runs from ``scheme://`` to the first ``:``, the password from
there to the LAST ``@`` (so ``@``, ``:``, ``/``, ``?``, ``#``, spaces are allowed in it). A password
with ``%`` followed by two hex digits everywhere it has a ``%`` is taken as already percent-encoded
(what the desktop app and most camera tools write); any other ``%`` is a literal character. The
price of "to the last @": in a URL *without* credentials, an ``@`` in the path or query is taken
for the end of a password unless what comes before it is a port and a path
(``http://cam:8080/snap?pwd=p@ss`` is read right; ``rtsp://cam:live@x`` is not); redaction then
hides a little too much, never too little. A password itself starting with digits and a ``/``
(``123/abc``) is read as a port and a path.

Query values of :data:`SECRET_KEYS` (``?pwd=...``, ``&token=...``, case-insensitive) are
credentials too: redacted everywhere, percent-encoded for FFmpeg, and moved to the desktop app's
password field like a URL password.

A URL typed wrong (``rtsp:/admin:pw@cam``, ``rtsp//admin:pw@cam``, ``admin:pw@10.0.0.7/live``)
is read as a path; its ``user:password@`` is hidden all the same (in ``name``, by :func:`redact`,
by :func:`strip_password`), and when no file of that name exists :meth:`SourceSpec.resolve` says
"malformed URL", not "source not found".

Where the parts live: URL text, its credentials and :func:`redact` in :mod:`maskwatch.sources.urls`;
the desktop app's password field (:class:`Credentials`, :func:`split_password` ...) in
:mod:`maskwatch.sources.credentials`; :func:`display_path` in :mod:`maskwatch.paths`. Every name
is importable from here as before.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

from maskwatch.errors import MaskwatchError
from maskwatch.paths import display_path
from maskwatch.sources.credentials import (  # noqa: F401 - re-exported: the desktop app's password field
    Credentials,
    split_credentials,
    split_password,
    strip_password,
    with_credentials,
    with_password,
)
from maskwatch.sources.urls import (  # noqa: F401 - re-exported: URL text and redaction
    _MISTYPED_URL,
    _USERINFO_SAFE,
    NETWORK_SCHEMES,
    SECRET_KEYS,
    _decoded,
    _loose_parts,
    _query_secrets,
    _mask_query,
    _remember_secret,
    _split_url,
    _UrlParts,
    address_problem,
    is_network_url,
    redact,
    redact_url,
    validate_url,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "NETWORK_SCHEMES",
    "SECRET_KEYS",
    "Credentials",
    "SourceSpec",
    "display_path",
    "is_network_url",
    "is_photos",
    "parse",
    "redact",
    "redact_url",
    "split_credentials",
    "split_password",
    "strip_password",
    "validate_url",
    "with_credentials",
    "with_password",
]

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source text. Build it with :func:`parse`.

    ``kind``: ``"webcam"`` (``device`` is an index or a device path), ``"network"`` (``url``),
    ``"url"`` (a scheme maskwatch cannot open: :meth:`check` says so), ``"path"`` (not looked at
    yet); after :meth:`resolve` a path is ``"images"`` (a folder), ``"image"``, ``"file"`` (a
    video) or ``"webcam"`` (a character device such as ``/dev/video0``).
    """

    kind: str
    name: str  # for display and logs: credentials redacted
    text: str = field(repr=False)  # as given (stripped): may hold a password, never show it
    url: str = field(default="", repr=False)  # network: the URL for FFmpeg (credentials encoded)
    password: str = field(default="", repr=False)  # the URL's password, percent-decoded
    device: int | str | None = None  # webcam: index or device path
    path: Path | None = field(default=None, repr=False)  # path kinds (``name`` shows it: a mistyped URL's password hidden)

    @property
    def is_network(self) -> bool:
        return self.kind == "network"

    @property
    def is_live(self) -> bool:
        return self.kind in ("webcam", "network")

    def resolve(self) -> "SourceSpec":
        """For a path: look at the file system and say what it is (raises ``MaskwatchError`` when
        it is missing or cannot be accessed). Other kinds are returned as they are."""
        if self.kind != "path":
            return self
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            if _MISTYPED_URL.search(self.text):  # "rtsp:/cam", "admin:pw@cam": a URL typed wrong, not a file
                raise MaskwatchError(f"malformed URL {self.name}: expected scheme://[user:password@]host[:port]/path "
                                     f"(and there is no file of that name)") from None
            raise MaskwatchError(f"source not found: {self.name}") from None
        except OSError as e:
            raise MaskwatchError(f"cannot access source {self.name}: {e.strerror or e}") from None
        if stat.S_ISDIR(mode):
            return replace(self, kind="images")
        if stat.S_ISCHR(mode):
            return replace(self, kind="webcam", device=str(self.path))
        if self.path.suffix.lower() in IMAGE_SUFFIXES:
            return replace(self, kind="image")
        return replace(self, kind="file")

    def check(self) -> "SourceSpec":
        """Cheap checks before any model is loaded: a camera URL must parse, a path must exist.
        Returns :meth:`resolve`'s answer; opening (and every deeper check) is ``open_source``'s job."""
        if self.kind == "network":
            validate_url(self.url, shown=self.name)
        elif self.kind == "url":
            validate_url(self.text, shown=self.name)  # raises: unsupported scheme
        return self.resolve()


def parse(spec) -> SourceSpec:
    """Read a source text (or a webcam index, or a path) into a :class:`SourceSpec`.

    Raises ``MaskwatchError`` only for nothing given (``""``, ``None``, ``True``); a URL is checked
    by :meth:`SourceSpec.check`, a path by :meth:`SourceSpec.resolve`. No I/O happens here.

    >>> parse("rtsp://cam:554/live").name, parse("clip.mp4").kind, str(parse("file:///tmp/a.mp4").path)
    ('rtsp://cam:554/live', 'path', '/tmp/a.mp4')
    """
    if isinstance(spec, SourceSpec):
        return spec
    if spec is None or isinstance(spec, bool):
        raise MaskwatchError(f"not a source: {spec!r}")
    if isinstance(spec, int):
        if spec < 0:
            raise MaskwatchError(f"not a webcam index: {spec}")
        return SourceSpec("webcam", f"webcam {spec}", str(spec), device=spec)
    text = (os.fspath(spec) if isinstance(spec, os.PathLike) else str(spec)).strip()
    if not text:
        raise MaskwatchError("no source given")
    if text.isdigit():
        return SourceSpec("webcam", f"webcam {int(text)}", text, device=int(text))
    parts = _split_url(text)
    if parts is not None and parts.scheme.lower() == "file":
        text = text[len("file://"):]
        parts = None
    if parts is None:
        loose = _loose_parts(text)
        for secret in ([loose["password"], _decoded(loose["password"])] if loose else []) + _query_secrets(text):
            _remember_secret(secret)  # a mistyped URL's password: hidden wherever it shows up later
        return SourceSpec("path", redact(display_path(text)), text, path=Path(text).expanduser())
    return _parse_url(text, parts)


def _parse_url(text: str, parts: _UrlParts) -> SourceSpec:
    password = "" if parts.password is None else _decoded(parts.password)
    secrets = ([password] if password else []) + _query_secrets(parts.rest)
    for secret in secrets + ([parts.password] if parts.password else []):
        _remember_secret(secret)
    shown_rest = _mask_query(parts.rest)
    if parts.user is None:
        name = f"{parts.head}{shown_rest}"
        url_userinfo = ""
    else:
        shown_user = parts.user + (":***" if parts.password is not None else "")
        name = f"{parts.head}{shown_user}@{shown_rest}"
        url_userinfo = quote(_decoded(parts.user), safe=_USERINFO_SAFE)
        if parts.password is not None:
            url_userinfo += ":" + quote(password, safe=_USERINFO_SAFE)
        url_userinfo += "@"
    url_rest = _mask_query(parts.rest, lambda m: quote(_decoded(m["value"]), safe=""))
    url = f"{parts.head}{url_userinfo}{url_rest}"
    kind = "network" if parts.scheme.lower() in NETWORK_SCHEMES else "url"
    return SourceSpec(kind, redact(name), text, url=url, password=password or next(iter(secrets), ""))


def is_photos(spec) -> bool:
    """Whether a source is still images (an image or a folder of them), not frames of one scene:
    the pipeline's detector must not carry faces from one picture to the next (motion gating), and
    the review loop's collector saves each face and names its image.

    >>> is_photos("rtsp://cam/live"), is_photos("0")
    (False, False)
    """
    try:
        return parse(spec).resolve().kind in ("image", "images")
    except MaskwatchError:  # not there: the source's own check says so, in its words
        return False
