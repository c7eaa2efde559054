"""MQTT in Frigate's topic shape: :class:`MqttPublisher`, the supervisor's one client.

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

The package, as Frigate's ``comms/``: :mod:`~maskwatch.site.mqtt.client` (``make_client``,
``ConnectionLog``, the paho connection and its reconnects), :mod:`~maskwatch.site.mqtt.outbox` (the
pump that publishes the history database's outbox rows, acked by PUBACK),
:mod:`~maskwatch.site.mqtt.retained` (state, in-view counts, compliance) and
:mod:`~maskwatch.site.mqtt.discovery` (Home Assistant). The ``[mqtt]`` table, ``MqttSettings``, is
:mod:`maskwatch.site.config`'s. All of it was ``maskwatch.site.publisher``, which re-exports every name.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from maskwatch.errors import MaskwatchError
from maskwatch.site.config import MqttSettings, topic_safe
from maskwatch.site.mqtt.client import RECONNECT_MAX_S, RECONNECT_MIN_S, Connection, ConnectionLog, make_client
from maskwatch.site.mqtt.discovery import discovery_configs
from maskwatch.site.mqtt.outbox import ACK_TIMEOUT_S, MAX_IN_FLIGHT, POLL_S, REFUSED_RETRY_S, OutboxPump
from maskwatch.site.mqtt.retained import STATES, RetainedState

if TYPE_CHECKING:
    from maskwatch.history import History

__all__ = [
    "ACK_TIMEOUT_S", "MAX_IN_FLIGHT", "POLL_S", "RECONNECT_MAX_S", "RECONNECT_MIN_S", "REFUSED_RETRY_S", "STATES",
    "ConnectionLog", "MqttPublisher", "MqttSettings", "discovery_configs", "make_client", "topic_safe",
]

log = logging.getLogger(__name__)


class MqttPublisher(OutboxPump, RetainedState, Connection):
    """The supervisor's one MQTT client: retained state, in-view counts, compliance, discovery, outbox.

    ``set_state`` / ``set_in_view`` (:mod:`~maskwatch.site.mqtt.retained`) remember the value and
    publish it (retained) when connected; every (re)connect (:mod:`~maskwatch.site.mqtt.client`)
    publishes ``online``, the discovery configs and every remembered value again, so a broker that
    lost its retained store is whole again. ``wake()`` says a row was written; the outbox thread
    (:mod:`~maskwatch.site.mqtt.outbox`) also looks every :data:`POLL_S` seconds. One lock,
    ``_lock``, guards the state of all three parts; it is never held while calling paho.
    """

    def __init__(self, settings: MqttSettings, history: "History | None", cameras: Iterable[str]) -> None:
        self.settings = settings
        self.history = history
        self.cameras = list(cameras)
        for camera in self.cameras:
            if not topic_safe(camera):
                raise MaskwatchError(f"camera name {camera!r} cannot be an MQTT topic level "
                                     "(letters, digits, '_' and '-' only)")
        self._lock = threading.Lock()  # guards the parts' dicts; never held while calling paho
        self._init_connection()
        self._init_retained()
        self._init_outbox()

    def start(self) -> "MqttPublisher":
        """Connect in the background (never blocks, never fails on an absent broker) and start the outbox thread."""
        if self._client is not None:
            return self
        client = self._open_client(MAX_IN_FLIGHT)
        self._load_compliance()
        self._start_client(client)
        self._start_outbox()
        return self

    def close(self, flush_timeout: float = 5.0) -> None:
        """Publish what is pending (up to ``flush_timeout`` s, if connected), ``offline``, then disconnect.

        Rows not acked by then stay in the outbox for the next start.
        """
        client = self._client
        if client is None or self._closing:
            return
        self._stop_outbox(flush_timeout)
        self._close_client(client)
        try:
            self._flush_acked()
        except Exception as e:  # those rows stay pending: sent again (a duplicate) next time
            log.warning("cannot mark rows published: %s: %s", type(e).__name__, e)

    def __enter__(self) -> "MqttPublisher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def discovery_configs(self) -> dict[str, dict]:
        """Home Assistant discovery for this publisher's cameras (:func:`~maskwatch.site.mqtt.discovery.discovery_configs`)."""
        return discovery_configs(self.settings, self.cameras)

    # the connection's hooks (maskwatch.site.mqtt.client.Connection) ---------------------------------
    def _new_connection(self) -> None:
        """Under ``_lock``, on every connect: every retained value again, refused rows offered again."""
        self._resend_retained()
        self._forget_refusals()

    def _connection_up(self, client) -> None:
        """After ``online`` (paho's network thread): discovery, the retained values, then the outbox."""
        if self.settings.discovery:
            for topic, config in self.discovery_configs().items():
                client.publish(topic, json.dumps(config), qos=1, retain=True)
        self._drain_retained()
        self._wake.set()
