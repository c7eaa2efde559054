"""The outbox pump: history rows (intervals, events) to ``<prefix>/<camera>/intervals`` and ``<prefix>/events``.

Rows are written to the history database first (by the camera workers) and the pump sends what
:meth:`History.pending <maskwatch.history.History.pending>` returns (QoS 1, JSON, oldest first, at
most :data:`MAX_IN_FLIGHT` unacked), marking a row published only when the broker's PUBACK for it
arrived. A broker outage, a dead network or a restart therefore loses nothing: the rows wait in the
database and go out once the broker is back (the broker may see a row twice if it went away between
receiving a row and acking it; a consumer drops duplicates by ``id``).

The publisher speaks MQTT 5: a broker that drops a row (an ACL denying the topic, a quota) says so
in the PUBACK's reason code, and the row stays in the outbox instead of being marked published
(MQTT 3.1.1 has no such code: Mosquitto acks a denied publish as if it were delivered); it is
offered again after :data:`REFUSED_RETRY_S` or on a reconnect.

:class:`OutboxPump` is a part of :class:`maskwatch.site.mqtt.MqttPublisher` (moved here from
``maskwatch.site.publisher``, which re-exports these constants).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from maskwatch.errors import MaskwatchError
from maskwatch.site.config import MqttSettings, topic_safe

if TYPE_CHECKING:
    from maskwatch.history import History

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 20
"""Outbox rows sent and not yet acked, at most (paho's own in-flight window is 20 too)."""

ACK_TIMEOUT_S = 60.0
"""A row sent this long ago (while connected) without a PUBACK is sent again (a duplicate at worst)."""

POLL_S = 2.0
"""The outbox is looked at this often even without :meth:`OutboxPump.wake` (rows from other processes)."""

REFUSED_RETRY_S = 60.0
"""A row the broker refused (MQTT 5 failure reason code) is offered again after this long (or on a
reconnect): an ACL fixed on the broker lets it through without restarting maskwatch."""


class OutboxPump:
    """The outbox thread and the PUBACK bookkeeping of :class:`maskwatch.site.mqtt.MqttPublisher`.

    The publisher provides ``settings``, ``history``, ``_lock``, ``_client``, ``connected``,
    ``topic`` (:class:`maskwatch.site.mqtt.client.Connection`) and ``_update_compliance``
    (:class:`maskwatch.site.mqtt.retained.RetainedState`), and calls :meth:`_init_outbox`.
    """

    settings: MqttSettings
    history: "History | None"
    _lock: threading.Lock

    def _init_outbox(self) -> None:
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
        self._outbox_problem: str | None = None
        self.published_rows = 0  # rows acked by the broker since start (tests, status)
        self.refused_rows = 0  # PUBACKs with a failure reason code since start (tests, status)

    def wake(self) -> None:
        """A row was written to the outbox: publish it now rather than at the next poll."""
        self._wake.set()

    def _start_outbox(self) -> None:
        if self.history is not None:
            self._thread = threading.Thread(target=self._outbox_loop, name="mqtt-outbox", daemon=True)
            self._thread.start()

    def _stop_outbox(self, flush_timeout: float) -> None:
        """Publish what is pending (up to ``flush_timeout`` s, if connected), then stop the thread."""
        if self._thread is None:
            return
        deadline = time.monotonic() + flush_timeout
        while self.connected and time.monotonic() < deadline and not self._outbox_empty():
            self._wake.set()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=flush_timeout + 5)

    def _forget_refusals(self) -> None:
        """A new connection: refused rows are offered again. Hold ``_lock``."""
        self._refused.clear()

    # PUBACKs (paho's network thread) ---------------------------------------------------------------
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

    # the outbox thread -----------------------------------------------------------------------------
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
