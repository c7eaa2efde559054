"""``SiteConfig``: a whole site in one TOML file (``maskwatch serve --config site.toml``).

::

    [defaults]                      # any single-camera setting, for every camera that does not set it
    interval_s = 60
    detector.every_n = 2

    [[cameras]]
    name = "entrance"               # unique, [A-Za-z0-9_-]+ (it becomes an MQTT topic level)
    source = "rtsp://admin@10.0.0.7:554/live"
    password_env = "ENTRANCE_PW"    # or password = "..." / password_file = "/run/secrets/entrance"
    log = "entrance.csv"            # and any other single-camera key: snapshots, blur_faces, retain_days, ...

    [db]                            # default: sqlite file maskwatch.db next to site.toml
    url = "postgresql+psycopg://maskwatch@db/maskwatch"
    password_file = "/run/secrets/db"

    [mqtt]                          # absent: no MQTT (MqttSettings, below; the client: maskwatch.site.mqtt)
    host = "127.0.0.1"

    [serve]                         # the supervisor (maskwatch.site.serve)
    restart_backoff_initial_s = 1
    restart_backoff_max_s = 60

Relative paths (outputs, the model, a video file source, a SQLite file) are relative to the folder
of ``site.toml``, not to the working directory a service manager happens to start in.

Each camera's :class:`~maskwatch.config.Config` is the defaults, then ``[defaults]``, then the
camera's own keys, checked by :meth:`~maskwatch.config.Config.validate`. Every error is one line
naming the file and the key (``config file site.toml: camera 'entrance': interval_s must be ...``);
passwords (from the file, the environment or a secrets file, :mod:`maskwatch.site.secrets`) are
put into the source or database URL only here and never reach a message.

``MqttSettings`` (the ``[mqtt]`` table) and :func:`topic_safe` live here, with the rest of the site
file; they were in ``maskwatch.site.publisher``, which re-exports them. The MQTT client, outbox,
retained state and Home Assistant discovery are :mod:`maskwatch.site.mqtt`.

>>> s = MqttSettings.from_table({"host": "broker.lan", "prefix": "site1"}, "[mqtt]")
>>> (s.host, s.port, s.prefix, s.keepalive, s.discovery, s.discovery_prefix)
('broker.lan', 1883, 'site1', 30, True, 'homeassistant')
>>> MqttSettings.from_table({"host": "b", "prefix": "a/#"}, "[mqtt]")
Traceback (most recent call last):
...
maskwatch.errors.MaskwatchError: [mqtt]: prefix 'a/#' must be topic levels of letters, digits, '_' or '-' joined by '/'
>>> MqttSettings.from_table({"host": "b", "qos": 2}, "[mqtt]")
Traceback (most recent call last):
...
maskwatch.errors.MaskwatchError: [mqtt]: unknown key 'qos' (known: host, port, prefix, client_id, username, password, password_env, password_file, keepalive, tls, ca_certs, discovery, discovery_prefix)
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskwatch.config import Config, read_toml
from maskwatch.errors import MaskwatchError
from maskwatch.site.secrets import resolve_secret, secret_keys
from maskwatch.sources.spec import display_path as _shown
from maskwatch.sources.spec import is_network_url, parse, split_credentials, with_password

CAMERA_NAME = re.compile(r"[A-Za-z0-9_-]+")
"""A camera name: a single MQTT topic level and a safe file name (no ``/``, ``+``, ``#``, spaces)."""

DEFAULT_DB_FILE = "maskwatch.db"
"""The SQLite file ``[db]`` defaults to, next to ``site.toml``."""

OUTPUT_KEYS = ("log", "events", "save_video")
"""Per-camera output files: two cameras writing one of them is an error."""

TOPIC_LEVEL = re.compile(r"[A-Za-z0-9_-]+")
"""One topic level we write: no wildcards (``+``, ``#``), no ``/``, nothing a shell or HA trips on."""


def topic_safe(value: str) -> bool:
    """Whether ``value`` can be one MQTT topic level here.

    >>> topic_safe("entrance_1"), topic_safe("a/b"), topic_safe("+"), topic_safe("")
    (True, False, False, False)
    """
    return isinstance(value, str) and TOPIC_LEVEL.fullmatch(value) is not None


def _prefix_safe(value: str) -> bool:
    return isinstance(value, str) and all(topic_safe(level) for level in value.split("/"))


@dataclass(frozen=True)
class MqttSettings:
    """The ``[mqtt]`` table of ``site.toml``. ``password`` is never shown (``repr`` hides it)."""

    host: str
    port: int = 1883
    prefix: str = "maskwatch"
    client_id: str | None = None  # None: paho makes a random one
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive: int = 30
    tls: bool = False
    ca_certs: Path | None = None  # None with tls: the system's CA store
    discovery: bool = True
    discovery_prefix: str = "homeassistant"

    KEYS = ("host", "port", "prefix", "client_id", "username", *secret_keys("password"), "keepalive", "tls",
            "ca_certs", "discovery", "discovery_prefix")

    @property
    def address(self) -> str:
        """``host:port``, for messages (no credentials in it)."""
        return f"{self.host}:{self.port}"

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "[mqtt]",
                   environ: Mapping[str, str] | None = None) -> "MqttSettings":
        """Parse and check the table; a bad value is a one-line :class:`MaskwatchError` naming ``where``."""
        if not isinstance(table, Mapping):
            raise MaskwatchError(f"{where} must be a table")
        for key in table:
            if key not in cls.KEYS:
                raise MaskwatchError(f"{where}: unknown key {key!r} (known: {', '.join(cls.KEYS)})")

        def text(key: str, default: str | None) -> str | None:
            value = table.get(key, default)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise MaskwatchError(f"{where}: {key} must be a non-empty string")
            return value

        def integer(key: str, default: int, low: int, high: int) -> int:
            value = table.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise MaskwatchError(f"{where}: {key} must be a whole number from {low} to {high}, not {value!r}")
            return value

        def flag(key: str, default: bool) -> bool:
            value = table.get(key, default)
            if not isinstance(value, bool):
                raise MaskwatchError(f"{where}: {key} must be true or false, not {value!r}")
            return value

        host = text("host", None)
        if host is None:
            raise MaskwatchError(f"{where}: host is missing (the MQTT broker's name or address)")
        host = host.strip()
        prefix = text("prefix", "maskwatch")
        if not _prefix_safe(prefix):
            raise MaskwatchError(
                f"{where}: prefix {prefix!r} must be topic levels of letters, digits, '_' or '-' joined by '/'")
        discovery_prefix = text("discovery_prefix", "homeassistant")
        if not _prefix_safe(discovery_prefix):
            raise MaskwatchError(f"{where}: discovery_prefix {discovery_prefix!r} must be topic levels of letters, "
                                 "digits, '_' or '-' joined by '/'")
        username = text("username", None)
        password = resolve_secret(table, "password", where, environ=environ)
        if password is not None and username is None:
            raise MaskwatchError(f"{where}: a password needs a username")
        ca_certs = text("ca_certs", None)
        tls = flag("tls", False)
        if ca_certs is not None:
            if not tls:
                raise MaskwatchError(f"{where}: ca_certs is for tls = true")
            ca_path = Path(ca_certs).expanduser()
            if not ca_path.is_file():
                raise MaskwatchError(f"{where}: ca_certs {ca_path} is not a file")
        return cls(
            host=host,
            port=integer("port", 1883, 1, 65535),
            prefix=prefix,
            client_id=text("client_id", None),
            username=username,
            password=password,
            keepalive=integer("keepalive", 30, 5, 3600),
            tls=tls,
            ca_certs=Path(ca_certs).expanduser() if ca_certs is not None else None,
            discovery=flag("discovery", True),
            discovery_prefix=discovery_prefix,
        )


@dataclass(frozen=True)
class ServeSettings:
    """The ``[serve]`` table: how the supervisor restarts and stops workers (seconds)."""

    restart_backoff_initial_s: float = 1.0  # the first wait before restarting a dead worker, doubled ...
    restart_backoff_max_s: float = 60.0  # ... up to this
    restart_reset_after_s: float = 60.0  # a worker that ran this long before dying gets the initial wait again
    stop_timeout_s: float = 20.0  # SIGTERM -> wait this long for workers to write their last row, then SIGKILL
    stats_every_s: float = 0.0  # > 0: log each camera's fps and capture-to-label latency this often (0: off)

    @classmethod
    def from_table(cls, table: Mapping, where: str) -> "ServeSettings":
        names = [f.name for f in dataclasses.fields(cls)]
        values = {}
        for key, value in table.items():
            if key not in names:
                raise MaskwatchError(f"{where}: unknown key {key!r} (known: {', '.join(names)})")
            if key == "stats_every_s" and value == 0 and not isinstance(value, bool):
                pass  # off
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.1 <= value <= 86400:
                raise MaskwatchError(f"{where}: {key} must be a number of seconds between 0.1 and 86400, got {value!r}")
            values[key] = float(value)
        settings = cls(**values)
        if settings.restart_backoff_initial_s > settings.restart_backoff_max_s:
            raise MaskwatchError(f"{where}: restart_backoff_initial_s must be <= restart_backoff_max_s "
                                 f"({settings.restart_backoff_max_s:g}), got {settings.restart_backoff_initial_s:g}")
        return settings


@dataclass(frozen=True)
class CameraConfig:
    """One ``[[cameras]]`` entry: its name and its checked single-camera config (the source URL with
    its password in it: hand ``config`` only to the worker; show :attr:`shown_source`)."""

    name: str
    config: Config = field(repr=False)
    shown_source: str = ""


@dataclass(frozen=True)
class SiteConfig:
    """A parsed ``site.toml`` (see the module docstring)."""

    path: Path
    cameras: tuple[CameraConfig, ...]
    db_url: str = field(repr=False)  # with its password, if one was given: show shown_db_url
    shown_db_url: str
    mqtt: MqttSettings | None = None  # None without [mqtt]
    serve: ServeSettings = field(default_factory=ServeSettings)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SiteConfig":
        """Read and check ``path``; a one-line ``MaskwatchError`` naming the file and key otherwise."""
        path = Path(path).expanduser()
        where = f"config file {_shown(path)}"
        data = read_toml(path, where)
        return cls.from_table(data, path, where)

    @classmethod
    def from_table(cls, data: Mapping, path: Path, where: str) -> "SiteConfig":
        known = {"cameras", "defaults", "db", "mqtt", "serve"}
        for key in data:
            if key not in known:
                raise MaskwatchError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
        base = path.absolute().parent
        defaults = _table(data, "defaults", where)
        for key in ("name", "source", *secret_keys("password")):
            if key in defaults:
                raise MaskwatchError(f"{where}: [defaults] cannot set {key}: it belongs to each [[cameras]] entry")
        cameras_raw = data.get("cameras")
        if cameras_raw is None:
            raise MaskwatchError(f"{where}: no [[cameras]]: a site needs at least one camera")
        if not isinstance(cameras_raw, list) or not all(isinstance(c, Mapping) for c in cameras_raw) or not cameras_raw:
            raise MaskwatchError(f"{where}: cameras must be [[cameras]] tables, at least one")
        cameras: list[CameraConfig] = []
        for i, table in enumerate(cameras_raw):
            cameras.append(_camera(table, i, defaults, base, where))
        names = [c.name for c in cameras]
        for name in names:
            if names.count(name) > 1:
                raise MaskwatchError(f"{where}: camera name {name!r} is used twice: each camera needs its own name")
        _check_outputs(cameras, where)
        db_url, shown_db = _db_url(_table(data, "db", where), base, f"{where}: [db]")
        mqtt = None
        if "mqtt" in data:
            mqtt = MqttSettings.from_table(_secret_file_anchored(_table(data, "mqtt", where), base), f"{where}: [mqtt]")
        serve = ServeSettings.from_table(_table(data, "serve", where), f"{where}: [serve]")
        return cls(path=path, cameras=tuple(cameras), db_url=db_url, shown_db_url=shown_db, mqtt=mqtt, serve=serve)

    @staticmethod
    def load_broker_and_db(path: str | os.PathLike):
        """(``MqttSettings``, database URL, shown database URL) of ``path``'s ``[mqtt]`` and ``[db]``
        only, by the same rules as :meth:`load` (``maskwatch aggregate`` runs where the cameras are not,
        so their tables are not checked). No ``[mqtt]`` is a one-line error: aggregating needs a broker."""
        path = Path(path).expanduser()
        where = f"config file {_shown(path)}"
        data = read_toml(path, where)
        if "mqtt" not in data:
            raise MaskwatchError(f"{where}: no [mqtt] table: aggregate needs the broker (host = ...)")
        base = path.absolute().parent
        mqtt = MqttSettings.from_table(_secret_file_anchored(_table(data, "mqtt", where), base), f"{where}: [mqtt]")
        db_url, shown_db = _db_url(_table(data, "db", where), base, f"{where}: [db]")
        return mqtt, db_url, shown_db

    def camera(self, name: str) -> CameraConfig:
        for camera in self.cameras:
            if camera.name == name:
                return camera
        raise KeyError(name)


# -- pieces ----------------------------------------------------------------------------------------


def _table(data: Mapping, key: str, where: str) -> Mapping:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise MaskwatchError(f"{where}: {key} must be a table ([{key}])")
    return value


def _relative_to(base: Path, value):
    """``value`` (a path from the file) anchored at the file's folder unless absolute or ``~``."""
    if value is None or not isinstance(value, (str, os.PathLike)) or not str(value):
        return value
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _secret_file_anchored(table: Mapping, base: Path) -> Mapping:
    """``table`` with a relative ``password_file`` taken from the site file's folder."""
    value = table.get("password_file")
    if not isinstance(value, str) or not value:
        return table
    return {**table, "password_file": str(_relative_to(base, value))}


def _check_camera_keys(table: Mapping, where: str) -> None:
    """An unknown key of a ``[[cameras]]`` table: ``unknown key 'nmae'`` (with the known ones).

    >>> _check_camera_keys({"nmae": "door", "source": "a.mp4"}, "site.toml: cameras[1]")
    Traceback (most recent call last):
    ...
    maskwatch.errors.MaskwatchError: site.toml: cameras[1]: unknown key 'nmae' (a camera takes name, source, password, password_env, password_file and the keys of maskwatch's config, e.g. interval_s, log, detector)
    """
    fields = {f.name for f in dataclasses.fields(Config)}
    for key in table:
        head = str(key).partition(".")[0]
        if key in ("name", "source", *secret_keys("password")) or head in fields:
            continue
        raise MaskwatchError(f"{where}: unknown key {str(key)!r} (a camera takes name, source, "
                             f"{', '.join(secret_keys('password'))} and the keys of maskwatch's config, "
                             "e.g. interval_s, log, detector)")


def _source_with_password(source, password: str | None, where: str) -> str:
    """``source`` with ``password`` put into it (a camera URL only)."""
    if password is None:
        return source
    if not isinstance(source, str) or not is_network_url(source):
        raise MaskwatchError(f"{where}: a password is given but source is not a camera URL (rtsp://, http://, ...)")
    if split_credentials(source)[1]:
        raise MaskwatchError(f"{where}: source already has a password: give it once (in source, or as password / "
                             "password_env / password_file)")
    return with_password(source, password)


def _camera(table: Mapping, index: int, defaults: Mapping, base: Path, where: str) -> CameraConfig:
    name = table.get("name")
    if name is None:  # a misspelled key ("nmae") says so, as a [detector] typo does, before "name is missing"
        _check_camera_keys(table, f"{where}: cameras[{index}]")
    if not isinstance(name, str) or not CAMERA_NAME.fullmatch(name):
        raise MaskwatchError(f"{where}: cameras[{index}].name must be letters, digits, '_' or '-' "
                             f"(it is an MQTT topic level), got {name!r}")
    here = f"{where}: camera {name!r}"
    source = table.get("source")
    if source is None:
        raise MaskwatchError(f"{here}: source is missing")
    if isinstance(source, str) and source.strip() and not re.fullmatch(r"\d+", source.strip()):
        if not is_network_url(source):
            source = str(_relative_to(base, source))
    source = _source_with_password(source, resolve_secret(_secret_file_anchored(table, base), "password", here), here)
    keys = {k: v for k, v in table.items() if k not in ("name", "source", *secret_keys("password"))}
    def anchored(t: Mapping) -> dict:
        out = {}
        for k, v in t.items():
            if k in (*OUTPUT_KEYS, "snapshots", "model", "collect.folder"):
                v = _relative_to(base, v)
            elif k == "collect" and isinstance(v, Mapping) and "folder" in v:
                v = {**v, "folder": _relative_to(base, v["folder"])}
            out[k] = v
        return out

    config = (Config().with_overrides(anchored(defaults), where=f"{where}: [defaults]")
              .with_overrides(anchored(keys), where=here)
              .with_overrides(source=source, where=here)
              .validate(where=here))
    shown = source
    if isinstance(source, str):
        try:
            shown = parse(source).name  # also teaches redact() this password, wherever it may appear
        except MaskwatchError as e:
            raise MaskwatchError(f"{here}: source: {e}") from None
    # lazy: maskwatch.sinks.from_config imports the video and snapshot sinks (OpenCV, NumPy: ~0.5 s);
    # the desktop app, doctor and aggregate read site.toml's other tables without them
    from maskwatch.sinks.from_config import check_output_paths, source_file

    try:
        check_output_paths(log=config.log, events=config.events, snapshots=config.snapshots,
                           save_video=config.save_video, source=source_file(config.source))
    except MaskwatchError as e:
        raise MaskwatchError(f"{here}: {e}") from None
    return CameraConfig(name=name, config=config, shown_source=str(shown))


def _check_outputs(cameras: list[CameraConfig], where: str) -> None:
    """Two cameras must not write one file or share one snapshots folder."""
    seen: dict[Path, tuple[str, str]] = {}
    for camera in cameras:
        for key in (*OUTPUT_KEYS, "snapshots", "collect.folder"):
            value = camera.config.collect.folder if key == "collect.folder" else getattr(camera.config, key)
            if value is None:
                continue
            target = Path(value).resolve()
            if target in seen:
                other, other_key = seen[target]
                raise MaskwatchError(f"{where}: cameras {other!r} ({other_key}) and {camera.name!r} ({key}) both "
                                     f"write {_shown(value)}: give each camera its own")
            seen[target] = (camera.name, key)


def _db_url(table: Mapping, base: Path, where: str) -> tuple[str, str]:
    """(the database URL with its password, the URL shown in messages)."""
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    for key in table:
        if key not in ("url", *secret_keys("password")):
            raise MaskwatchError(f"{where}: unknown key {key!r} (known: url, password, password_env, password_file)")
    raw = table.get("url")
    if raw is None:
        raw = str(base / DEFAULT_DB_FILE)
    if not isinstance(raw, str) or not raw.strip():
        raise MaskwatchError(f"{where}: url must be a database URL (sqlite:///file.db, postgresql+psycopg://...) or a file")
    if "://" not in raw:  # a plain path: a SQLite file (URL.create: a '?' or '#' in the name stays the name's)
        url = URL.create("sqlite", database=str(_relative_to(base, raw)))
    else:
        try:
            url = make_url(raw)
        except (ArgumentError, ValueError):
            raise MaskwatchError(f"{where}: url is not a database URL (sqlite:///file.db, "
                                 "postgresql+psycopg://user@host/db)") from None
    if (url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:"
            and not url.database.startswith("file:")):
        url = url.set(database=str(_relative_to(base, url.database)))  # ~ is home, relative is site.toml's folder
    password = resolve_secret(_secret_file_anchored(table, base), "password", where)
    if password is not None:
        if url.password is not None:
            raise MaskwatchError(f"{where}: url already has a password: give it once (in url, or as password / "
                                 "password_env / password_file)")
        url = url.set(password=password)
    return url.render_as_string(hide_password=False), url.render_as_string(hide_password=True)
