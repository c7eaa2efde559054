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
"""

from __future__ import annotations

import os
import re
import stat
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from maskwatch.errors import MaskwatchError

__all__ = [
    "IMAGE_SUFFIXES",
    "NETWORK_SCHEMES",
    "SECRET_KEYS",
    "Credentials",
    "SourceSpec",
    "display_path",
    "is_network_url",
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

NETWORK_SCHEMES: tuple[str, ...] = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SECRET_KEYS: tuple[str, ...] = (
    "pwd", "pw", "psw", "password", "passwd", "pass", "user_password", "loginpas", "loginpass",
    "token", "access_token", "key", "api_key", "apikey", "auth", "secret",
)  # fmt: skip
"""Query keys whose values are credentials. HTTP cameras take them in snapshot and MJPEG URLs:
Foscam ``?usr=admin&pwd=...``, the GoAhead/Hipcam clones (and old Dahua firmware)
``snapshot.cgi?loginuse=admin&loginpas=...``, Hikvision ``?auth=<base64 user:password>`` or
``?username=admin&password=...``, Reolink ``?user=admin&password=...`` or ``&token=...``; others
``pw``, ``psw``, ``user_password``. Axis cameras take HTTP authentication, not query keys."""

_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*)://")
# scheme://user:password@ in free text (log lines, error messages): the password runs to the last
# "@" on the line that is not past the next "scheme://", so raw "@", ":" and spaces in it are hidden
# too (at worst a little more than the password is).
_URL_CREDENTIALS = re.compile(
    r"(?P<prefix>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^\s:/?#]*):(?P<password>(?:(?!://)[^\r\n])*)@"
)
# user:password@ WITHOUT a well-formed scheme: a mistyped URL ("rtsp:/admin:pw@cam",
# "rtsp//admin:pw@cam", "admin:pw@10.0.0.7:554/live"). The user name starts a word (or follows a
# "/"), a malformed scheme in front of it stays shown; the password runs to the last "@" on the
# line, does not start with whitespace or "//" (that is "scheme://" or "found: /a@b.jpg") and
# does not cross a "://". Hides a little too much at worst (a line with a "word:" and, later, an
# "@": "12:30 ... x@y"), never too little.
_LOOSE_CREDENTIALS = re.compile(
    r"(?<![^\s'\"(<\[{=,;/])"
    r"(?P<user>(?:[a-zA-Z][a-zA-Z0-9+.\-]*(?::/|/{1,2}))?[^\s:/?#@'\"<>]+)"
    r":(?!//|\s)(?P<password>(?:(?!://)[^\r\n])*)@"
)
# a secret query value in free text (a message, a log line): where it ends cannot be known (the
# value may hold a space), so it is hidden up to the next "&" or the end of the line. The price:
# words after a raw secret on the same line are hidden too ("pwd=ab cd refused" -> "pwd=***").
_QUERY_SECRET = re.compile(
    r"(?P<key>(?<![\w.\-])(?:" + "|".join(sorted(SECRET_KEYS, key=len, reverse=True)) + r"))=(?P<value>[^&\r\n]*)",
    re.IGNORECASE,
)
# a secret query value inside a URL the user gave: it runs to the next "&" (spaces and "#" included)
_URL_QUERY_SECRET = re.compile(
    r"(?P<lead>[?&;])(?P<key>" + "|".join(sorted(SECRET_KEYS, key=len, reverse=True)) + r")=(?P<value>[^&]*)",
    re.IGNORECASE,
)
# a whole source text that is user:password@host... without a well-formed scheme (see _LOOSE_CREDENTIALS)
_LOOSE_URL = re.compile(
    r"(?P<user>(?:[a-zA-Z][a-zA-Z0-9+.\-]*(?::/+|/{1,2}))?[^\s:/?#@]+):(?!//)(?P<password>.*)@(?P<rest>[^@]*)\Z",
    re.DOTALL,
)
# a source text that is no file but looks like a camera URL typed wrong: "rtsp:/cam/live" (one
# slash), "rtsp//cam" or "admin:pw@cam/live" (a ":" before an "@"); a one-letter "scheme" is a
# Windows drive ("C:/videos/a.mp4"), not a URL
_MISTYPED_URL = re.compile(r"^[a-zA-Z][\w+.\-]+:/+|:.*@", re.DOTALL)
_PORT_AND_PATH = re.compile(r"^\d{1,5}[/?#]")
_PERCENT_ENCODED = re.compile(r"%(?![0-9A-Fa-f]{2})")
_USERINFO_SAFE = "!$&'()*+,;=-._~"  # RFC 3986 sub-delims and unreserved marks, allowed raw in userinfo

# Passwords parsed in this process, in every spelling they may reach a message in (raw, encoded):
# redact() hides them wherever they appear, even outside a URL (a library's error message).
_SECRETS: dict[str, None] = {}
_SECRETS_LOCK = threading.Lock()
_MAX_SECRETS = 64
_MIN_SECRET_LEN = 6  # shorter ones would blank out ordinary words; the URL patterns still hide them


def _remember_secret(secret: str) -> None:
    if len(secret) < _MIN_SECRET_LEN:
        return
    spellings = {secret, quote(secret, safe=""), quote(secret, safe=_USERINFO_SAFE), quote(secret, safe="/")}
    with _SECRETS_LOCK:
        for s in spellings:
            _SECRETS.pop(s, None)
            _SECRETS[s] = None
        while len(_SECRETS) > _MAX_SECRETS:
            _SECRETS.pop(next(iter(_SECRETS)))


def redact(text) -> str:
    """``text`` with every credential-looking part replaced by ``***``.

    Hidden: the password of every ``scheme://user:password@`` URL, the values of secret query keys
    (:data:`SECRET_KEYS`), and any password :func:`parse` has seen in this process where it stands
    in a credential's slot (after ``user:`` or ``key=``, up to an ``@``, ``&``, a space or the end),
    also when it holds characters that break the URL patterns (``x://y@z``). Text elsewhere is
    never searched for a password: a path that contains it (password ``secret``, file
    ``secrets/nope.txt``) stays as it is, so nothing is garbled and nothing is given away. Used
    for every message, log line, display name and file name that may carry a URL.

    >>> redact("rtsp://admin:pa55@cam.local:554/live and http://u:p@h/x")
    'rtsp://admin:***@cam.local:554/live and http://u:***@h/x'
    >>> redact("rtsp://viewer@cam/live")  # a user name alone is kept
    'rtsp://viewer@cam/live'
    >>> redact("GET /cgi-bin/snap?Password=hunter2&chn=1")
    'GET /cgi-bin/snap?Password=***&chn=1'
    >>> redact("cannot open http://cam/snap?pwd=***: refused")  # redacting twice changes nothing
    'cannot open http://cam/snap?pwd=***: refused'
    >>> redact("source not found: rtsp:/admin:s3cret@cam/live")  # a mistyped URL: still hidden
    'source not found: rtsp:/admin:***@cam/live'
    >>> redact("admin:s3cret@10.0.0.7:554/live and http://cam/x?pwd=ab cd")  # a raw query value: to the line's end
    'admin:***@10.0.0.7:554/live and http://cam/x?pwd=***'
    >>> _ = parse("rtsp://admin:secret@cam/live")
    >>> redact("password_file secrets/nope.txt not found; rtsp://admin:secret@cam/live")
    'password_file secrets/nope.txt not found; rtsp://admin:***@cam/live'
    """
    text = str(text)
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:  # only in a credential's slot: after "user:" or "key=", up to where it ends
            text = re.sub(r"(?<=[:=])" + re.escape(secret) + r"(?=[@&\s'\"<>)\],;]|$)", "***", text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['prefix']}{m['user']}:***@", text)
    text = _LOOSE_CREDENTIALS.sub(lambda m: f"{m['user']}:***@", text)
    # a value already redacted keeps what follows it ("pwd=***: connection refused" stays as it is)
    return _QUERY_SECRET.sub(
        lambda m: f"{m['key']}=***{m['value'][3:] if m['value'].startswith('***') else ''}", text
    )


redact_url = redact
"""The old name of :func:`redact` (it hides more than URL passwords now)."""


def display_path(path) -> str:
    """A path as text that can always be printed: bytes that are not UTF-8 (a file name from
    another system) are shown as ``\\xNN`` escapes instead of crashing ``print``.

    >>> display_path(os.fsdecode(b"caf\\xe9.jpg"))
    'caf\\\\xe9.jpg'
    """
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def _decoded(part: str) -> str:
    """``part`` percent-decoded if it reads as percent-encoded (every "%" starts a %XX), else as is."""
    return unquote(part) if "%" in part and not _PERCENT_ENCODED.search(part) else part


@dataclass(frozen=True)
class _UrlParts:
    scheme: str
    user: str | None  # None: no userinfo; may be "" (``rtsp://:pw@cam``)
    password: str | None  # raw text as given (None: no ":" in the userinfo)
    rest: str  # host, port, path, query
    head: str = ""  # the text before the userinfo: "scheme://" (and any extra "/" typed: "rtsp:///a:b@cam")


def _split_url(text: str) -> _UrlParts | None:
    """Scheme, user, password and the rest of ``scheme://...`` text (no parsing of the rest)."""
    m = _SCHEME.match(text)
    if not m:
        return None
    after = text[m.end():]
    head = text[:m.end()] + after[:len(after) - len(after.lstrip("/"))]  # "rtsp:///a:b@cam": a slash too many
    after = text[len(head):]
    at = after.rfind("@")
    if at >= 0:
        userinfo, rest = after[:at], after[at + 1:]
        user, colon, password = userinfo.partition(":")
        # else the "@" is in the path or query, not the userinfo: a "/?#" in the user name, or a
        # "password" that is a port and a path (http://cam:8080/snap?pwd=p@ss)
        if not any(c in user for c in "/?#") and not _PORT_AND_PATH.match(password):
            return _UrlParts(m["scheme"], user, password if colon else None, rest, head)
    return _UrlParts(m["scheme"], None, None, after, head)


def _loose_parts(text: str) -> re.Match | None:
    """``text`` read as ``user:password@rest`` without a well-formed scheme (a mistyped URL), or ``None``."""
    m = _LOOSE_URL.match(text)
    return m if m and not _PORT_AND_PATH.match(m["password"]) else None


def _query_secrets(rest: str) -> list[str]:
    return [_decoded(m["value"]) for m in _URL_QUERY_SECRET.finditer(rest) if m["value"]]


def _mask_query(rest: str, value=lambda m: "***") -> str:
    return _URL_QUERY_SECRET.sub(lambda m: f"{m['lead']}{m['key']}={value(m) if m['value'] else ''}", rest)


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


def validate_url(url: str, shown: str | None = None) -> None:
    """Raise ``MaskwatchError`` unless ``url`` is a syntactically usable camera URL.

    ``shown`` is how the URL appears in the message (default: ``url`` redacted).
    """
    shown = redact(url) if shown is None else shown
    if re.search(r"\s", url):
        raise MaskwatchError(f"malformed URL {shown}: contains whitespace")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise MaskwatchError(f"malformed URL {shown}: {redact(str(e)).lower()}") from None
    if parts.scheme.lower() not in NETWORK_SCHEMES:
        raise MaskwatchError(
            f"unsupported URL scheme {parts.scheme!r} in {shown} (use {', '.join(s + '://' for s in NETWORK_SCHEMES)})"
        )
    if not parts.hostname:
        raise MaskwatchError(f"malformed URL {shown}: no host")
    if port == 0:
        raise MaskwatchError(f"malformed URL {shown}: port 0")
    problem = address_problem(parts.hostname)
    if problem:
        raise MaskwatchError(f"invalid address in {shown}: {problem}")


def address_problem(host: str) -> str | None:
    """Why ``host`` cannot be a camera's address, or ``None``: an IPv4-looking host (four numbers)
    must be a real IPv4 address, so ``256.1.1.1`` is caught here instead of surfacing as a refused
    connection; a bracketed IPv6 literal must parse. Host names are left to the resolver.

    >>> address_problem("256.1.1.1"), address_problem("192.168.1.20"), address_problem("cam-1.local")
    ('256.1.1.1 is not an IPv4 address (each of its four numbers must be 0-255)', None, None)
    >>> address_problem("0.0.0.0")
    '0.0.0.0 is not a camera address'
    """
    import ipaddress

    if re.fullmatch(r"[0-9]+(\.[0-9]+){3}", host):
        try:
            ip = ipaddress.IPv4Address(host)
        except ValueError:
            return f"{host} is not an IPv4 address (each of its four numbers must be 0-255)"
        return f"{host} is not a camera address" if ip.is_unspecified else None
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            return f"{host} is not an IPv6 address"
    return None


# -- the desktop app's password field --------------------------------------------------------------


def is_network_url(text: str) -> bool:
    """``True`` for rtsp/http(s)/rtmp camera URLs.

    >>> is_network_url("RTSP://cam/x"), is_network_url("/videos/a.mp4")
    (True, False)
    """
    parts = _split_url(str(text).strip())
    return parts is not None and parts.scheme.lower() in NETWORK_SCHEMES


@dataclass(frozen=True)
class Credentials:
    """The secrets :func:`split_credentials` took out of a source text, each for its own slot:
    the userinfo password, and the value of each secret query key in the order the keys appear
    (``""`` for one that was empty). Both percent-decoded; ``repr`` shows neither.

    The desktop app's password field holds :attr:`primary`; the rest stay hidden in the app and go
    back to their own slots (:func:`with_credentials`), so ``rtsp://a:pw@cam/x?token=abc``
    keeps both ``pw`` and ``abc``.

    >>> shown, creds = split_credentials("rtsp://a:pw@cam/x?token=abc")
    >>> shown, creds.primary, creds
    ('rtsp://a@cam/x?token=', 'pw', Credentials(secret slots: 2))
    >>> with_credentials(shown, creds.with_primary("new pw"))
    'rtsp://a:new%20pw@cam/x?token=abc'
    """

    password: str | None = field(default=None, repr=False)  # None: the text had no ":password"
    query: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        return f"Credentials(secret slots: {int(self.password is not None) + len(self.query)})"

    def __bool__(self) -> bool:
        return bool(self.password) or any(self.query)

    @property
    def primary(self) -> str:
        """What the password field shows: the userinfo password, else the first secret query value."""
        return self.password or next((v for v in self.query if v), "")

    def with_primary(self, text: str) -> "Credentials":
        """These credentials with :attr:`primary`'s slot set to ``text`` (the field edited)."""
        if self.password or not any(self.query):
            return replace(self, password=text)
        i = next(i for i, v in enumerate(self.query) if v)
        return replace(self, query=(*self.query[:i], text, *self.query[i + 1:]))


def split_credentials(text: str) -> tuple[str, Credentials]:
    """(``text`` without its credentials, the :class:`Credentials` taken out).

    The userinfo password goes (the user name stays) and so do the values of secret query keys
    (each key stays, empty). A text without any secret is returned as it is. A text that is not a
    URL loses a ``user:password@`` and secret query values only when it looks like a mistyped URL
    and no file of that name exists (:func:`with_credentials` puts nothing back into it: it cannot
    be opened anyway).

    >>> split_credentials("http://cam/snap.cgi?usr=admin&pwd=my pass&token=t0k")[0]
    'http://cam/snap.cgi?usr=admin&pwd=&token='
    """
    text = str(text).strip()
    parts = _split_url(text)
    if parts is None:
        return _split_mistyped(text)
    creds = Credentials(None if parts.password is None else _decoded(parts.password),
                        tuple(_decoded(m["value"]) for m in _URL_QUERY_SECRET.finditer(parts.rest)))
    if not creds:
        return text, Credentials()
    user = "" if parts.user is None or (parts.user == "" and parts.password is not None) else f"{parts.user}@"
    return f"{parts.head}{user}{_mask_query(parts.rest, lambda m: '')}", creds


def with_credentials(text: str, credentials: Credentials) -> str:
    """``text`` with each secret of ``credentials`` put back into its own slot, percent-encoded:
    the password into the userinfo, each query value into the secret key at its position when that
    key is empty in ``text``. Non-URLs are returned without credentials; secrets already in ``text``
    are replaced by ``credentials``' (an empty slot there leaves them out).

    >>> with_credentials("http://cam/snap?usr=admin&pwd=&token=", Credentials(query=("a&b", "t0k")))
    'http://cam/snap?usr=admin&pwd=a%26b&token=t0k'
    """
    text, _ = split_credentials(text)
    parts = _split_url(text)
    if parts is None or parts.scheme.lower() not in NETWORK_SCHEMES:
        return text
    values = iter(credentials.query)
    rest = _URL_QUERY_SECRET.sub(
        lambda m: f"{m['lead']}{m['key']}={quote(next(values, ''), safe='')}", parts.rest)
    if credentials.password:
        return f"{parts.head}{parts.user or ''}:{quote(credentials.password, safe=_USERINFO_SAFE)}@{rest}"
    return f"{parts.head}{'' if parts.user is None else parts.user + '@'}{rest}"


def split_password(text: str) -> tuple[str, str]:
    """(``text`` without its credentials, the one the app's password field shows or ``""``):
    :func:`split_credentials` with :attr:`Credentials.primary`. Where a URL has more than one
    secret, the others are in :func:`split_credentials`' answer only.

    >>> split_password("rtsp://admin:s3cret@10.0.0.7/live")
    ('rtsp://admin@10.0.0.7/live', 's3cret')
    >>> split_password("http://cam/snap.cgi?user=admin&pwd=my pass")
    ('http://cam/snap.cgi?user=admin&pwd=', 'my pass')
    """
    shown, creds = split_credentials(text)
    return shown, creds.primary


def _split_mistyped(text: str) -> tuple[str, Credentials]:
    """:func:`split_credentials` of a text that is not a URL: a mistyped URL (not an existing
    file) loses its ``user:password@`` password and secret query values, so that the app neither
    shows nor stores them; anything else is returned as it is."""
    if not text or not (_MISTYPED_URL.search(text) or _URL_QUERY_SECRET.search(text)) or os.path.lexists(text):
        return text, Credentials()
    loose = _loose_parts(text)
    creds = Credentials(_decoded(loose["password"]) if loose else None,
                        tuple(_decoded(m["value"]) for m in _URL_QUERY_SECRET.finditer(text)))
    if not creds:
        return text, Credentials()
    if loose:
        text = f"{loose['user']}@{loose['rest']}"
    return _mask_query(text, lambda m: ""), creds


def strip_password(text: str) -> str:
    """``text`` without any credentials (what may be shown and stored).

    >>> strip_password("rtsp://admin:s3cret@10.0.0.7:554/live")
    'rtsp://admin@10.0.0.7:554/live'
    """
    return split_password(text)[0]


def with_password(text: str, password: str) -> str:
    """``text`` with ``password`` (the app's password field) put back, percent-encoded: into the
    userinfo when the URL has a user name or no empty secret query key, else into the first empty
    secret query value. Non-URLs and empty passwords leave ``text`` without credentials; a password
    already in the URL is replaced. For a URL that had several secrets, keep its
    :func:`split_credentials` answer and use :func:`with_credentials`.

    >>> with_password("rtsp://admin@10.0.0.7/live", "p@ss:word")
    'rtsp://admin:p%40ss%3Aword@10.0.0.7/live'
    >>> with_password("http://cam/snap.cgi?user=admin&pwd=", "a&b c")
    'http://cam/snap.cgi?user=admin&pwd=a%26b%20c'
    >>> with_password("rtsp://admin@cam/x?token=", "pw")  # a user name: the password is its
    'rtsp://admin:pw@cam/x?token='
    >>> with_password("clip.mp4", "ignored")
    'clip.mp4'
    """
    text, _ = split_credentials(text)
    parts = _split_url(text)
    if not password or parts is None:
        return text
    if parts.user is not None or not _URL_QUERY_SECRET.search(parts.rest):
        return with_credentials(text, Credentials(password=password))
    return with_credentials(text, Credentials(query=(password,)))
