"""Camera URL text: its schemes, its credentials, and hiding them (:func:`redact`).

The pieces :func:`maskwatch.sources.spec.parse` and the desktop app's password field
(:mod:`maskwatch.sources.credentials`) read a ``scheme://user:password@host/path?query`` text with:
the user name runs from ``scheme://`` to the first ``:``, the password from there to the LAST
``@``; the values of :data:`SECRET_KEYS` in the query are credentials too. :func:`redact` hides all
of them in any text (messages, log lines, display names); :func:`validate_url` checks that a URL
can name a camera. No I/O, no OpenCV.

>>> redact("cannot open rtsp://admin:s3cret@10.0.0.7/stream1?token=abc123")
'cannot open rtsp://admin:***@10.0.0.7/stream1?token=***'
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from maskwatch.errors import MaskwatchError

__all__ = [
    "NETWORK_SCHEMES",
    "SECRET_KEYS",
    "address_problem",
    "is_network_url",
    "redact",
    "redact_url",
    "validate_url",
]

NETWORK_SCHEMES: tuple[str, ...] = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")
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
    >>> from maskwatch.sources.spec import parse
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


def is_network_url(text: str) -> bool:
    """``True`` for rtsp/http(s)/rtmp camera URLs.

    >>> is_network_url("RTSP://cam/x"), is_network_url("/videos/a.mp4")
    (True, False)
    """
    parts = _split_url(str(text).strip())
    return parts is not None and parts.scheme.lower() in NETWORK_SCHEMES
