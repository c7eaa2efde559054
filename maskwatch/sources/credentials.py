"""The desktop app's password field: the credentials of a source text taken out, and put back.

:func:`split_credentials` takes the userinfo password and the secret query values out of a
camera URL (:class:`Credentials`), :func:`with_credentials` puts them back percent-encoded;
:func:`split_password`, :func:`strip_password` and :func:`with_password` do the same for the one
password the field shows. How a URL's credentials are read: :mod:`maskwatch.sources.urls`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from urllib.parse import quote

from maskwatch.sources.urls import (
    _MISTYPED_URL,
    _URL_QUERY_SECRET,
    _USERINFO_SAFE,
    NETWORK_SCHEMES,
    _decoded,
    _loose_parts,
    _mask_query,
    _split_url,
)

__all__ = [
    "Credentials",
    "split_credentials",
    "split_password",
    "strip_password",
    "with_credentials",
    "with_password",
]


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
