"""Credentials of a site: from the TOML, an environment variable or a file, never shown.

A table (``[mqtt]``, a ``[[cameras]]`` entry, ``[db]``) names a secret ``KEY`` in one of three ways:

- ``KEY = "..."`` in the file itself (fine for a file only root can read);
- ``KEY_env = "NAME"``: the value of environment variable ``NAME`` (systemd ``Environment=``,
  Docker ``-e``);
- ``KEY_file = "/run/secrets/name"``: the file's content, one trailing newline dropped (Docker and
  Kubernetes secrets).

Giving more than one is an error (which one wins would be a guess), and so is a missing variable,
an unreadable file or an empty value. Messages name the key and the variable or file, never the
value.

>>> resolve_secret({"password_env": "MW_DOCTEST_PW"}, "password", "[mqtt]", environ={"MW_DOCTEST_PW": "s3cret"})
's3cret'
>>> resolve_secret({}, "password", "[mqtt]") is None
True
>>> resolve_secret({"password": "a", "password_env": "B"}, "password", "[mqtt]")
Traceback (most recent call last):
...
maskwatch.errors.MaskwatchError: [mqtt]: give only one of password, password_env, password_file
>>> resolve_secret({"password_env": "MW_NOT_SET"}, "password", "[mqtt]", environ={})
Traceback (most recent call last):
...
maskwatch.errors.MaskwatchError: [mqtt]: password_env names MW_NOT_SET, which is not set in the environment
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from maskwatch.errors import MaskwatchError

SECRET_SUFFIXES = ("", "_env", "_file")


def secret_keys(key: str) -> tuple[str, ...]:
    """The three table keys that can name secret ``key`` (``key``, ``key_env``, ``key_file``)."""
    return tuple(key + suffix for suffix in SECRET_SUFFIXES)


def resolve_secret(table: Mapping, key: str, where: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The secret ``key`` of ``table`` (see the module docstring), ``None`` when none is given.

    ``where`` names the table in messages (``"[mqtt]"``, ``"camera 'entrance'"``).
    """
    environ = os.environ if environ is None else environ
    given = [k for k in secret_keys(key) if table.get(k) is not None]
    if not given:
        return None
    if len(given) > 1:
        raise MaskwatchError(f"{where}: give only one of {', '.join(secret_keys(key))}")
    name = given[0]
    raw = table[name]
    if not isinstance(raw, str) or not raw:
        raise MaskwatchError(f"{where}: {name} must be a non-empty string")
    if name == key:
        return raw
    if name.endswith("_env"):
        value = environ.get(raw)
        if value is None:
            raise MaskwatchError(f"{where}: {name} names {raw}, which is not set in the environment")
        if not value:
            raise MaskwatchError(f"{where}: {name} names {raw}, which is empty")
        return value
    path = Path(raw).expanduser()
    try:
        value = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or type(e).__name__
        raise MaskwatchError(f"{where}: cannot read {name} {path}: {reason}") from None
    value = value[:-1] if value.endswith("\n") else value
    value = value[:-1] if value.endswith("\r") else value
    if not value:
        raise MaskwatchError(f"{where}: {name} {path} is empty")
    return value
