"""The broker connection: :func:`make_client`, :class:`ConnectionLog` and the publisher's paho connection.

``make_client`` and ``ConnectionLog`` are shared by the publisher (:class:`maskwatch.site.mqtt.MqttPublisher`),
``maskwatch aggregate`` (:mod:`maskwatch.site.aggregate`), the desktop app's site tab and ``maskwatch doctor``.
:class:`Connection` is the publisher's part that talks to paho: the client with its last will,
the connect / connect-failed / disconnect callbacks, ``online`` on every connect and ``offline``
on a clean close.

paho-mqtt does the connection work: ``loop_start`` runs its network thread, which retries the
first connection too and reconnects with the capped backoff of ``reconnect_delay_set``
(:data:`RECONNECT_MIN_S` .. :data:`RECONNECT_MAX_S`). Moved here from ``maskwatch.site.publisher``
(which re-exports these names).
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from maskwatch.errors import MaskwatchError
from maskwatch.site.config import MqttSettings

log = logging.getLogger(__name__)

RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
"""paho's reconnect backoff: doubles from 1 s, capped at 30 s."""


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


class Connection:
    """The publisher's paho connection (a part of :class:`maskwatch.site.mqtt.MqttPublisher`).

    The publisher sets ``settings`` and ``_lock`` and calls :meth:`_init_connection`; it provides
    the hooks :meth:`_on_publish` (a PUBACK, :mod:`maskwatch.site.mqtt.outbox`),
    ``_new_connection`` (under ``_lock``: what a new broker connection resets) and
    ``_connection_up`` (after ``online``: discovery, retained values, the outbox).
    """

    settings: MqttSettings
    _lock: threading.Lock

    def _init_connection(self) -> None:
        self._client = None
        self._connected = threading.Event()
        self._connected_at = 0.0
        self._closing = False
        self.connect_failures = 0  # connection attempts that failed since start (tests, status)
        self._conn_log = ConnectionLog(log, self.settings, "publisher")

    # topics -------------------------------------------------------------------------------------
    def topic(self, *levels: str) -> str:
        return "/".join((self.settings.prefix, *levels))

    @property
    def available_topic(self) -> str:
        return self.topic("available")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # open and close ------------------------------------------------------------------------------
    def _open_client(self, max_in_flight: int):
        """Make the MQTT 5 client (will: ``offline``), set the callbacks, connect in the background."""
        client = make_client(self.settings, mqtt5=True)
        client.will_set(self.available_topic, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.max_inflight_messages_set(max_in_flight)
        self._client = client
        return client

    def _start_client(self, client) -> None:
        try:
            client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
        except (OSError, ValueError) as e:  # paho checks arguments only here; the network comes later
            raise MaskwatchError(f"[mqtt]: cannot use broker {self.settings.address}: {e}") from None
        client.loop_start()

    def _close_client(self, client) -> None:
        """``offline`` (if connected), then disconnect and stop paho's thread."""
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

    # paho callbacks (network thread: never raise, never block on our lock across a paho call) ---------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.connect_failures += 1
            self._conn_log.refused(reason_code)
            return
        with self._lock:
            self._connected_at = time.monotonic()
            self._new_connection()
        self._connected.set()
        self._conn_log.connected()
        client.publish(self.available_topic, "online", qos=1, retain=True)
        self._connection_up(client)

    def _on_connect_fail(self, client, userdata) -> None:
        self._connected.clear()
        self.connect_failures += 1
        self._conn_log.connect_failed()

    def _on_disconnect(self, client, userdata, disconnect_flags, reason_code, properties) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._closing:  # not our own close()
            self._conn_log.lost(reason_code)
