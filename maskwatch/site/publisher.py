"""MQTT in Frigate's topic shape: ``MqttSettings`` (the ``[mqtt]`` table) and ``MqttPublisher``.

Topics (``<prefix>`` defaults to ``maskwatch``; see docs/mqtt.md):

- ``<prefix>/available``: ``online`` on every connect, ``offline`` on a clean close and as the
  broker-sent last will when the process dies (retained);
- ``<prefix>/<camera>/state``: ``connecting`` / ``live`` / ``reconnecting`` / ``ended`` (retained);
- ``<prefix>/<camera>/<label>``: people in view now with that label (retained);
- ``<prefix>/<camera>/compliance``: the last closed interval's rate, ``0.0``..``1.0``, or
  ``None`` when nobody was decided in it (retained);
- ``<prefix>/<camera>/intervals`` and ``<prefix>/events``: the history rows (QoS 1, JSON, a unique
  ``id`` each; a consumer drops duplicates by ``id``);
- ``<discovery_prefix>/sensor/<prefix>_<camera>_<what>/config``: Home Assistant discovery (retained).

Why an outbox: rows are written to the history database first (by the camera workers) and this
publisher sends what :meth:`History.pending` returns, marking a row published only when the
broker's PUBACK for it arrived. A broker outage, a dead network or a restart of this process
therefore loses nothing: the rows wait in the database and go out, oldest first, once the broker
is back (the broker may see a row twice if it went away between receiving a row and acking it).

paho-mqtt does the connection work: ``loop_start`` runs its network thread, which retries the
first connection too and reconnects with the capped backoff of ``reconnect_delay_set``. The
publisher speaks MQTT 5: a broker that drops a row (an ACL denying the topic, a quota) says so in
the PUBACK's reason code, and the row stays in the outbox instead of being marked published (MQTT
3.1.1 has no such code: Mosquitto acks a denied publish as if it were delivered).

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

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskwatch import LABELS, __version__
from maskwatch.errors import MaskwatchError
from maskwatch.records import state_text
from maskwatch.site.secrets import resolve_secret, secret_keys

if TYPE_CHECKING:
    from maskwatch.history import History

log = logging.getLogger(__name__)

TOPIC_LEVEL = re.compile(r"[A-Za-z0-9_-]+")
"""One topic level we write: no wildcards (``+``, ``#``), no ``/``, nothing a shell or HA trips on."""

STATES = ("connecting", "live", "reconnecting", "ended")
"""What ``<prefix>/<camera>/state`` can say (the values of :class:`maskwatch.frames.SourceState`)."""

MAX_IN_FLIGHT = 20
"""Outbox rows sent and not yet acked, at most (paho's own in-flight window is 20 too)."""

ACK_TIMEOUT_S = 60.0
"""A row sent this long ago (while connected) without a PUBACK is sent again (a duplicate at worst)."""

POLL_S = 2.0
"""The outbox is looked at this often even without :meth:`MqttPublisher.wake` (rows from other processes)."""

RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
"""paho's reconnect backoff: doubles from 1 s, capped at 30 s."""

REFUSED_RETRY_S = 60.0
"""A row the broker refused (MQTT 5 failure reason code) is offered again after this long (or on a
reconnect): an ACL fixed on the broker lets it through without restarting maskwatch."""


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


def make_client(settings: MqttSettings, client_id: str | None = None, clean_session: bool = True,
                manual_ack: bool = False, mqtt5: bool = False):
    """A paho-mqtt 2.x client (VERSION2 callbacks) with credentials, TLS and backoff set.

    Shared by the publisher and ``maskwatch aggregate``; the caller sets callbacks, the will and
    then ``connect_async`` + ``loop_start``. ``mqtt5``: speak MQTT 5 (the publisher: PUBACK reason
    codes tell a refused row from a delivered one); otherwise MQTT 3.1.1, whose ``clean_session =
    False`` gives the aggregator a broker-kept session without connect-time properties (MQTT 5 has
    no clean-session flag: a kept session needs a session expiry interval on every connect).
    """
    import paho.mqtt.client as mqtt  # here: the CLI's other commands never pay for it

    if mqtt5 and not clean_session:
        raise ValueError("make_client: a kept session (clean_session=False) is MQTT 3.1.1 here")
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id if client_id is not None else (settings.client_id or ""),
        clean_session=None if mqtt5 else clean_session,
        protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    client.suppress_exceptions = True  # a bug in a callback must not kill the network thread
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        client.tls_set(ca_certs=str(settings.ca_certs) if settings.ca_certs else None)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return client


class ConnectionLog:
    """Logs the broker connection's ups and downs once per change, never with a password.

    The first problem is a warning, and so is the recovery after one ("connected"); a plain first
    connect is info. The same problem again (every backoff retry) is not logged again.
    """

    def __init__(self, logger: logging.Logger, settings: MqttSettings, what: str) -> None:
        self._log, self._settings, self._what = logger, settings, what
        self._problem: str | None = None
        self._lock = threading.Lock()

    def problem(self, text: str) -> None:
        with self._lock:
            if text == self._problem:
                return
            self._problem = text
        self._log.warning("%s: MQTT broker %s: %s", self._what, self._settings.address, text)

    def connect_failed(self) -> None:
        """The TCP/TLS connect failed: say whether the name does not resolve or the broker is away."""
        try:
            socket.getaddrinfo(self._settings.host, self._settings.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            self.problem(f"cannot resolve host name {self._settings.host!r} ({getattr(e, 'strerror', None) or e}); "
                         "retrying")
            return
        except OSError:
            pass
        self.problem("not reachable (broker down or port closed?); retrying with backoff")

    def refused(self, reason: object) -> None:
        self.problem(f"refused the connection: {reason} (check username/password in [mqtt]); retrying")

    def lost(self, reason: object) -> None:
        self.problem(f"connection lost ({reason}); reconnecting")

    def connected(self) -> None:
        with self._lock:
            had_problem, self._problem = self._problem is not None, None
        (self._log.warning if had_problem else self._log.info)(
            "%s: connected to MQTT broker %s", self._what, self._settings.address)


def _rate_text(rate: float | None) -> str:
    """``<camera>/compliance``'s payload: the rate with 4 decimals, ``None`` when undefined.

    >>> _rate_text(0.75), _rate_text(None), _rate_text(1)
    ('0.75', 'None', '1.0')
    """
    return "None" if rate is None else repr(round(float(rate), 4))


class MqttPublisher:
    """The supervisor's one MQTT client: retained state, in-view counts, compliance, discovery, outbox.

    ``set_state`` / ``set_in_view`` remember the value and publish it (retained) when connected;
    every (re)connect publishes ``online``, the discovery configs and every remembered value
    again, so a broker that lost its retained store is whole again. ``wake()`` says a row was
    written; the outbox thread also looks every :data:`POLL_S` seconds.

    Retained values go out through :meth:`_drain_retained`: a value is remembered and its topic
    marked dirty, and whichever thread holds the drain lock publishes the *current* value of every
    dirty topic. Only one thread publishes retained values at a time and it always reads the newest
    value, so a ``set_state`` racing a reconnect can never be overwritten by an older copy. The
    paho network thread (``_on_connect``) only *tries* the lock: paho holds its own locks around
    callbacks and inside ``publish``, so blocking there could deadlock; if another thread holds the
    lock, that thread sees the dirty marks before it lets go.
    """

    def __init__(self, settings: MqttSettings, history: "History | None", cameras: Iterable[str]) -> None:
        self.settings = settings
        self.history = history
        self.cameras = list(cameras)
        for camera in self.cameras:
            if not topic_safe(camera):
                raise MaskwatchError(f"camera name {camera!r} cannot be an MQTT topic level "
                                     "(letters, digits, '_' and '-' only)")
        self._client = None
        self._lock = threading.Lock()  # guards the dicts below; never held while calling paho
        self._connected = threading.Event()
        self._connected_at = 0.0
        self._states: dict[str, str] = {}
        self._in_view: dict[str, dict[str, int]] = {}
        self._compliance: dict[str, tuple[float, str]] = {}  # camera -> (end_ts of its interval, payload)
        self._retained: dict[str, str] = {}  # topic -> newest payload (state, in view, compliance)
        self._retained_sent: dict[str, str] = {}  # topic -> payload published on this connection
        self._dirty: set[str] = set()  # topics whose newest payload this connection has not got yet
        self._drain_lock = threading.Lock()  # held by the one thread publishing retained values
        self._refused: dict[str, float] = {}  # row id -> when the broker refused it (offered again later)
        self._refused_topics: set[str] = set()  # topics refused since the last accepted row on them (logged once)
        self._in_flight: dict[int, tuple[str, float, str]] = {}  # mid -> (row id, sent at, topic)
        self._in_flight_ids: set[str] = set()
        self._early_acks: dict[int, tuple[float, Any]] = {}  # PUBACKs that beat publish() returning the mid
        self._acked: list[str] = []  # ids acked, to mark published in the history (by the outbox thread)
        self._skipped: set[str] = set()  # rows that cannot be published (logged once)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._outbox_problem: str | None = None
        self.published_rows = 0  # rows acked by the broker since start (tests, status)
        self.refused_rows = 0  # PUBACKs with a failure reason code since start (tests, status)
        self.connect_failures = 0  # connection attempts that failed since start (tests, status)
        self._conn_log = ConnectionLog(log, settings, "publisher")

    # topics -------------------------------------------------------------------------------------
    def topic(self, *levels: str) -> str:
        return "/".join((self.settings.prefix, *levels))

    @property
    def available_topic(self) -> str:
        return self.topic("available")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # the supervisor's calls ----------------------------------------------------------------------
    def start(self) -> "MqttPublisher":
        """Connect in the background (never blocks, never fails on an absent broker) and start the outbox thread."""
        if self._client is not None:
            return self
        client = make_client(self.settings, mqtt5=True)
        client.will_set(self.available_topic, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.max_inflight_messages_set(MAX_IN_FLIGHT)
        self._client = client
        self._load_compliance()
        try:
            client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
        except (OSError, ValueError) as e:  # paho checks arguments only here; the network comes later
            raise MaskwatchError(f"[mqtt]: cannot use broker {self.settings.address}: {e}") from None
        client.loop_start()
        if self.history is not None:
            self._thread = threading.Thread(target=self._outbox_loop, name="mqtt-outbox", daemon=True)
            self._thread.start()
        return self

    def set_state(self, camera: str, state: str) -> None:
        """``<prefix>/<camera>/state`` (retained). ``state``: one of :data:`STATES` (a SourceState works)."""
        state = state_text(state)
        if state not in STATES:
            raise ValueError(f"unknown camera state {state!r} (one of {', '.join(STATES)})")
        self._check_camera(camera)
        with self._lock:
            self._states[camera] = state
            self._remember(self.topic(camera, "state"), state)
        self._drain_retained()

    def set_in_view(self, camera: str, counts: Mapping[str, int]) -> None:
        """``<prefix>/<camera>/<label>`` for every label (retained); a label not in ``counts`` is 0."""
        self._check_camera(camera)
        clean: dict[str, int] = {label: 0 for label in LABELS}
        for label, n in counts.items():
            if not topic_safe(label):
                log.debug("in-view label %r is not topic-safe; not published", label)
                continue
            clean[label] = int(n)
        with self._lock:
            before = self._in_view.get(camera, {})
            for label in before:  # a label seen before and gone now reads 0, not its last count
                clean.setdefault(label, 0)
            self._in_view[camera] = clean
            for label, n in clean.items():
                self._remember(self.topic(camera, label), str(n))
        self._drain_retained()

    def wake(self) -> None:
        """A row was written to the outbox: publish it now rather than at the next poll."""
        self._wake.set()

    def close(self, flush_timeout: float = 5.0) -> None:
        """Publish what is pending (up to ``flush_timeout`` s, if connected), ``offline``, then disconnect.

        Rows not acked by then stay in the outbox for the next start.
        """
        client = self._client
        if client is None or self._closing:
            return
        if self._thread is not None:
            deadline = time.monotonic() + flush_timeout
            while self.connected and time.monotonic() < deadline and not self._outbox_empty():
                self._wake.set()
                time.sleep(0.05)
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=flush_timeout + 5)
        self._closing = True
        if self.connected:
            info = client.publish(self.available_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):  # went away meanwhile: the will says offline anyway
                pass
        client.disconnect()
        client.loop_stop()
        self._connected.clear()
        self._client = None
        try:
            self._flush_acked()
        except Exception as e:  # those rows stay pending: sent again (a duplicate) next time
            log.warning("cannot mark rows published: %s: %s", type(e).__name__, e)

    def __enter__(self) -> "MqttPublisher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # paho callbacks (network thread: never raise, never block on our lock across a paho call) ---------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.connect_failures += 1
            self._conn_log.refused(reason_code)
            return
        with self._lock:
            self._connected_at = time.monotonic()
            self._retained_sent.clear()  # a new broker (or one that lost its store) gets every value
            self._dirty.update(self._retained)
            self._refused.clear()  # refused rows are offered again on a new connection
        self._connected.set()
        self._conn_log.connected()
        client.publish(self.available_topic, "online", qos=1, retain=True)
        if self.settings.discovery:
            for topic, config in self.discovery_configs().items():
                client.publish(topic, json.dumps(config), qos=1, retain=True)
        self._drain_retained()
        self._wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        self._connected.clear()
        self.connect_failures += 1
        self._conn_log.connect_failed()

    def _on_disconnect(self, client, userdata, disconnect_flags, reason_code, properties) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._closing:  # not our own close()
            self._conn_log.lost(reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            entry = self._in_flight.pop(mid, None)
            if entry is None:
                self._early_acks[mid] = (time.monotonic(), reason_code)
                return
            row_id, topic = entry[0], entry[2]
            self._in_flight_ids.discard(row_id)
            refused = bool(getattr(reason_code, "is_failure", False))  # MQTT 5: an ACL, a quota, ...
            first_refusal = accepted_again = False
            if refused:
                self.refused_rows += 1
                self._refused[row_id] = time.monotonic()
                first_refusal = topic not in self._refused_topics
                self._refused_topics.add(topic)
            else:
                self._acked.append(row_id)
                if topic in self._refused_topics:
                    self._refused_topics.discard(topic)
                    accepted_again = True
        if first_refusal:  # once per topic, not once per row and retry
            log.warning("MQTT broker %s refused a row on %s (%s); such rows stay in the outbox and are offered "
                        "again every %.0f s and on every reconnect (check the broker's ACL for this client)",
                        self.settings.address, topic, reason_code, REFUSED_RETRY_S)
        elif accepted_again:
            log.warning("MQTT broker %s accepts rows on %s again", self.settings.address, topic)
        if not refused:
            self._wake.set()

    # the outbox ----------------------------------------------------------------------------------
    def _outbox_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(POLL_S)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._flush_acked()
                if self.connected:
                    self._send_pending()
            except Exception as e:  # the database went away (locked, server down): retry at the next poll
                text = str(e) if isinstance(e, MaskwatchError) else f"{type(e).__name__}: {e}"
                if text != self._outbox_problem:  # once per change, not every poll
                    self._outbox_problem = text
                    log.warning("outbox: %s; trying again every %.0f s", text, POLL_S,
                                exc_info=log.isEnabledFor(logging.DEBUG))
                self._stop.wait(POLL_S)
            else:
                if self._outbox_problem is not None:
                    self._outbox_problem = None
                    log.warning("outbox: the history database works again")
        try:
            self._flush_acked()
        except Exception as e:
            log.warning("outbox: cannot mark rows published: %s: %s", type(e).__name__, e)

    def _flush_acked(self) -> None:
        with self._lock:
            acked, self._acked = self._acked, []
        if acked and self.history is not None:
            try:
                self.history.mark_published(acked)
            except Exception:
                with self._lock:  # try again later; a republish meanwhile is a harmless duplicate
                    self._acked[:0] = acked
                raise
            self.published_rows += len(acked)

    def _outbox_empty(self) -> bool:
        with self._lock:
            if self._in_flight or self._acked:
                return False
        try:
            gone = self._skipped | set(self._refused)  # nothing more to do for those before closing
            return not [row for row in self.history.pending(limit=MAX_IN_FLIGHT + len(gone) + 1)
                        if row[1].get("id") not in gone]
        except Exception:
            return True

    def _expire(self) -> None:
        """Forget rows sent long ago without an ack (while connected), so they are sent again."""
        now = time.monotonic()
        with self._lock:
            since = max(self._connected_at, 0.0)
            for mid, (row_id, sent, _topic) in list(self._in_flight.items()):
                if now - max(sent, since) > ACK_TIMEOUT_S:
                    del self._in_flight[mid]
                    self._in_flight_ids.discard(row_id)
                    log.debug("row %s: no PUBACK in %.0f s; sending it again", row_id, ACK_TIMEOUT_S)
            for mid, (at, _code) in list(self._early_acks.items()):
                if now - at > 5.0:
                    del self._early_acks[mid]
            for row_id, at in list(self._refused.items()):
                if now - at > REFUSED_RETRY_S:
                    del self._refused[row_id]

    def _send_pending(self) -> None:
        self._expire()
        with self._lock:
            room = MAX_IN_FLIGHT - len(self._in_flight)
            busy = self._in_flight_ids | set(self._acked)  # acked, not yet marked in the database: not again
            refused = set(self._refused)  # refused lately: offered again after REFUSED_RETRY_S or a reconnect
        if room <= 0:
            return
        rows = self.history.pending(limit=MAX_IN_FLIGHT + len(busy) + len(self._skipped) + len(refused))
        for kind, payload in rows:
            if room <= 0 or not self.connected:
                return
            row_id = payload.get("id")
            if row_id in busy or row_id in self._skipped or row_id in refused:
                continue
            topic = self._row_topic(kind, payload)
            if topic is None:
                self._skipped.add(row_id)
                continue
            client = self._client
            if client is None:
                return
            info = client.publish(topic, json.dumps(payload, allow_nan=False), qos=1)
            if info.rc not in (0, 4):  # MQTT_ERR_SUCCESS, MQTT_ERR_NO_CONN (paho keeps it and resends it)
                log.debug("row %s not queued by paho (rc %s); next poll", row_id, info.rc)
                return
            with self._lock:
                self._in_flight[info.mid] = (row_id, time.monotonic(), topic)
                self._in_flight_ids.add(row_id)
                early = self._early_acks.pop(info.mid, None)
            if early is not None:  # its PUBACK came before publish() returned: handle it now
                self._on_publish(client, None, info.mid, early[1], None)
            room -= 1
            if kind == "interval":
                self._update_compliance(payload)

    def _row_topic(self, kind: str, payload: Mapping) -> str | None:
        camera = payload.get("camera")
        if kind == "interval" and topic_safe(camera):
            return self.topic(camera, "intervals")
        if kind == "event" and topic_safe(camera):
            return self.topic("events")
        log.warning("outbox row %s (%s, camera %r) cannot be published; it stays in the history database",
                    payload.get("id"), kind, camera)
        return None

    # retained values -------------------------------------------------------------------------------
    def _update_compliance(self, payload: Mapping) -> None:
        camera, end = payload["camera"], payload.get("end_ts") or 0.0
        text = _rate_text(payload.get("compliance_rate"))
        with self._lock:
            last = self._compliance.get(camera)
            if last is not None and last[0] > end:  # an older row sent late: the newer rate stands
                return
            self._compliance[camera] = (end, text)
            self._remember(self.topic(camera, "compliance"), text)  # equal rates of a backlog: sent once
        self._drain_retained()

    def _load_compliance(self) -> None:
        """The last day's newest interval per camera, so a fresh broker gets a compliance value at once."""
        if self.history is None:
            return
        for camera in self.cameras:
            try:
                rows = self.history.intervals(since=time.time() - 86400.0, camera=camera)
            except Exception as e:
                log.debug("cannot read the last interval of %s: %s", camera, e)
                continue
            if rows:  # pending or not: a pending one is sent again later with the same end_ts
                text = _rate_text(rows[-1].get("compliance_rate"))
                with self._lock:
                    self._compliance[camera] = (rows[-1].get("end_ts") or 0.0, text)
                    self._remember(self.topic(camera, "compliance"), text)

    def _remember(self, topic: str, payload: str) -> None:
        """The newest retained ``payload`` of ``topic``; dirty unless this connection has it. Hold ``_lock``."""
        self._retained[topic] = payload
        if self._retained_sent.get(topic) == payload:
            self._dirty.discard(topic)
        else:
            self._dirty.add(topic)

    def _drain_retained(self) -> None:
        """Publish the newest payload of every dirty topic (see the class docstring for why it is safe).

        Never blocks on the drain lock: a thread that cannot take it leaves its dirty marks to the
        holder, which looks again after letting go.
        """
        while self._drain_lock.acquire(blocking=False):
            try:
                while True:
                    client = self._client
                    with self._lock:
                        if client is None or not self.connected or not self._dirty:
                            break  # not connected: the next connect marks everything dirty anyway
                        batch = [(topic, self._retained[topic]) for topic in sorted(self._dirty)]
                        self._dirty.clear()
                        for topic, payload in batch:
                            self._retained_sent[topic] = payload
                    for topic, payload in batch:  # never under _lock: paho's on_publish takes it
                        client.publish(topic, payload, qos=1, retain=True)
            finally:
                self._drain_lock.release()
            with self._lock:  # marks made while we held the lock (another thread gave up on it)
                if not (self._dirty and self.connected and self._client is not None):
                    return

    def _check_camera(self, camera: str) -> None:
        if not topic_safe(camera):
            raise ValueError(f"camera name {camera!r} is not topic-safe")

    # Home Assistant ---------------------------------------------------------------------------------
    def discovery_configs(self) -> dict[str, dict]:
        """Home Assistant MQTT discovery: topic -> config, for each camera's compliance, counts and state.

        Every sensor belongs to a device named after the camera and reads ``<prefix>/available``.
        """
        prefix, node = self.settings.prefix, self.settings.prefix.replace("/", "_")
        configs: dict[str, dict] = {}
        for camera in self.cameras:
            device = {"identifiers": [f"{node}_{camera}"], "name": camera, "manufacturer": "maskwatch",
                      "model": "maskwatch camera", "sw_version": __version__}
            common = {"availability_topic": f"{prefix}/available", "payload_available": "online",
                      "payload_not_available": "offline", "device": device,
                      "origin": {"name": "maskwatch", "sw_version": __version__}}
            sensors = {
                "compliance": {
                    "name": "Mask compliance", "state_topic": f"{prefix}/{camera}/compliance",
                    "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:face-mask",
                    # the topic carries 0..1 or "None" (nobody decided in the interval): HA shows unknown
                    "value_template": "{{ (value | float * 100) | round(1) if value != 'None' else None }}",
                },
                "state": {"name": "Camera state", "state_topic": f"{prefix}/{camera}/state",
                          "icon": "mdi:cctv"},
                # time-weighted: the with_mask share of the person-time of each closed interval
                "masked_time": {
                    "name": "Masked share of person-time", "state_topic": f"{prefix}/{camera}/intervals",
                    "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:timer-check",
                    "value_template": "{{ (value_json.masked_time_share * 100) | round(1) "
                                      "if value_json.masked_time_share is not none else None }}",
                },
            }
            for label in LABELS:
                sensors[label] = {
                    "name": f"People in view {label.replace('_', ' ')}", "state_topic": f"{prefix}/{camera}/{label}",
                    "unit_of_measurement": "people", "state_class": "measurement", "icon": "mdi:account-group",
                }
            for what, sensor in sensors.items():
                unique = f"{node}_{camera}_{what}"
                configs[f"{self.settings.discovery_prefix}/sensor/{unique}/config"] = {
                    **sensor, "unique_id": unique, **common}
        return configs
