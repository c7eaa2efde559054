"""Retained values: ``<prefix>/<camera>/state``, ``<prefix>/<camera>/<label>`` (in view now), ``.../compliance``.

:class:`RetainedState` is a part of :class:`maskwatch.site.mqtt.MqttPublisher` (moved here from
``maskwatch.site.publisher``, which re-exports :data:`STATES`). ``set_state`` / ``set_in_view``
remember the value and publish it (retained) when connected; every (re)connect publishes every
remembered value again, so a broker that lost its retained store is whole again.

Retained values go out through :meth:`RetainedState._drain_retained`: a value is remembered and its
topic marked dirty, and whichever thread holds the drain lock publishes the *current* value of
every dirty topic. Only one thread publishes retained values at a time and it always reads the
newest value, so a ``set_state`` racing a reconnect can never be overwritten by an older copy. The
paho network thread (``_on_connect``) only *tries* the lock: paho holds its own locks around
callbacks and inside ``publish``, so blocking there could deadlock; if another thread holds the
lock, that thread sees the dirty marks before it lets go.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from maskwatch import LABELS
from maskwatch.frames import SourceState
from maskwatch.records import state_text
from maskwatch.site.config import topic_safe

if TYPE_CHECKING:
    from maskwatch.history import History

log = logging.getLogger(__name__)

STATES = tuple(state.value for state in SourceState)
"""What ``<prefix>/<camera>/state`` can say: the values of :class:`maskwatch.frames.SourceState`.

>>> STATES
('connecting', 'live', 'reconnecting', 'ended')
"""


def _rate_text(rate: float | None) -> str:
    """``<camera>/compliance``'s payload: the rate with 4 decimals, ``None`` when undefined.

    >>> _rate_text(0.75), _rate_text(None), _rate_text(1)
    ('0.75', 'None', '1.0')
    """
    return "None" if rate is None else repr(round(float(rate), 4))


class RetainedState:
    """The retained topics of :class:`maskwatch.site.mqtt.MqttPublisher` (see the module docstring).

    The publisher provides ``cameras``, ``history``, ``_lock``, ``_client``, ``connected`` and
    ``topic`` (:class:`maskwatch.site.mqtt.client.Connection`), and calls :meth:`_init_retained`.
    """

    cameras: list[str]
    history: "History | None"
    _lock: threading.Lock

    def _init_retained(self) -> None:
        self._states: dict[str, str] = {}
        self._in_view: dict[str, dict[str, int]] = {}
        self._compliance: dict[str, tuple[float, str]] = {}  # camera -> (end_ts of its interval, payload)
        self._retained: dict[str, str] = {}  # topic -> newest payload (state, in view, compliance)
        self._retained_sent: dict[str, str] = {}  # topic -> payload published on this connection
        self._dirty: set[str] = set()  # topics whose newest payload this connection has not got yet
        self._drain_lock = threading.Lock()  # held by the one thread publishing retained values

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

    def _resend_retained(self) -> None:
        """A new connection (a new broker, or one that lost its store) gets every value. Hold ``_lock``."""
        self._retained_sent.clear()
        self._dirty.update(self._retained)

    def _update_compliance(self, payload: Mapping) -> None:
        """An interval row went out: its rate becomes ``<camera>/compliance`` unless a newer one stands."""
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
        """Publish the newest payload of every dirty topic (see the module docstring for why it is safe).

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
