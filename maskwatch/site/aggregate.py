"""``maskwatch aggregate --config site.toml [--db URL]``: every camera's rows from the broker into one database.

Cameras on several hosts each run ``maskwatch serve`` and publish to one broker; this command
subscribes to ``<prefix>/+/intervals`` and ``<prefix>/events`` (QoS 1) and writes each payload with
:meth:`History.upsert`, which ignores an ``id`` it has already (QoS 1 is at-least-once, and a
publisher republishes rows the broker never acked).

Nothing is lost while it is down: it connects with a fixed client id
(``maskwatch-aggregate-<prefix>``, ``--client-id`` to run a second one) and a persistent session
(``clean_session`` false), so the broker keeps the QoS 1 messages that arrive meanwhile; and a
message is acked only after its row is committed, so a crash or a database outage mid-write gets it
delivered again. A malformed payload, or a row the database refuses for its values (a null where
text belongs, an infinite number, a constraint), is logged and skipped (acked: sending it again
would not help, and an unacked bad message would come back first at every start and stop the
aggregate for good); only a database that is away (connection, lock) is retried, then the
aggregate stops with the message unacked.

It reads only the ``[mqtt]`` and ``[db]`` tables of ``site.toml`` (an aggregating host needs no
cameras). SIGTERM / SIGINT: disconnect and exit 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from pathlib import Path

from maskwatch.errors import MaskwatchError
from maskwatch.records import RowRejected
from maskwatch.site.config import SiteConfig
from maskwatch.site.mqtt.client import ConnectionLog, make_client

log = logging.getLogger(__name__)

DB_RETRIES_S = (0.5, 1.0, 2.0, 4.0)
"""Waits between tries of a failed database write (SQLite busy, PostgreSQL restarting) before giving up."""


def build_parser(parser_class, prog: str) -> argparse.ArgumentParser:
    p = parser_class(
        prog=prog,
        description="Subscribe to the site's MQTT broker and write every camera's interval rows and events "
                    "into one history database (idempotent by id).",
    )
    p.add_argument("--config", type=Path, required=True, metavar="SITE_TOML",
                   help="site.toml; only its [mqtt] and [db] tables are read")
    p.add_argument("--db", metavar="URL", help="history database (SQLAlchemy URL or SQLite file); default: [db] url")
    p.add_argument("--client-id", metavar="ID",
                   help="MQTT client id of the persistent session (default maskwatch-aggregate-<prefix>); "
                        "two aggregators need two ids")
    p.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    return p


def client_id_for(prefix: str) -> str:
    """The default persistent-session client id.

    >>> client_id_for("maskwatch"), client_id_for("site/a")
    ('maskwatch-aggregate-maskwatch', 'maskwatch-aggregate-site-a')
    """
    return "maskwatch-aggregate-" + prefix.replace("/", "-")


class Aggregator:
    """The subscriber: topics -> :meth:`History.upsert`. ``stop()`` is what a signal calls."""

    def __init__(self, settings, history, client_id: str) -> None:
        self.settings, self.history, self.client_id = settings, history, client_id
        self.intervals_topic = f"{settings.prefix}/+/intervals"
        self.events_topic = f"{settings.prefix}/events"
        self.stopped = threading.Event()
        self.failure: str | None = None  # a database write that kept failing: exit non-zero
        self.stored = self.duplicates = self.malformed = 0
        self._conn_log = ConnectionLog(log, settings, "aggregate")
        self._client = None

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        client = make_client(self.settings, client_id=self.client_id, clean_session=False, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = lambda c, u: self._conn_log.connect_failed()
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client
        try:
            client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
        except (OSError, ValueError) as e:
            raise MaskwatchError(f"[mqtt]: cannot use broker {self.settings.address}: {e}") from None
        client.loop_start()
        try:
            while not self.stopped.wait(0.2):
                pass
        finally:
            client.disconnect()
            client.loop_stop()
        if self.failure is not None:
            raise MaskwatchError(self.failure)

    # paho callbacks (network thread) ---------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._conn_log.refused(reason_code)
            return
        self._conn_log.connected()
        client.subscribe([(self.intervals_topic, 1), (self.events_topic, 1)])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:  # an ACL without read access: say it, or the aggregate would wait for nothing
            self._conn_log.problem(f"refused the subscription to {self.intervals_topic} and {self.events_topic} "
                                   f"({', '.join(refused)}); check the broker's ACL")
        else:
            log.info("aggregate: subscribed to %s and %s", self.intervals_topic, self.events_topic)

    def _on_disconnect(self, client, userdata, disconnect_flags, reason_code, properties) -> None:
        if not self.stopped.is_set():
            self._conn_log.lost(reason_code)

    def _on_message(self, client, userdata, message) -> None:
        try:
            if self._store(message.topic, message.payload):
                client.ack(message.mid, message.qos)
            # else: not acked; the broker sends it again after the reconnect of the next start
        except Exception as e:  # a bug must not leave a message acked without its row, nor kill the thread
            self.failure = f"aggregate stopped: unexpected {type(e).__name__}: {e}"
            log.debug("on_message failed", exc_info=True)
            self.stopped.set()

    def _store(self, topic: str, raw: bytes) -> bool:
        """Write one message; True when it may be acked (stored, a duplicate, or malformed and skipped)."""
        if self.failure is not None:
            return False
        kind = "event" if topic == self.events_topic else "interval"
        try:
            payload = json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return self._skip(topic, "not JSON")
        if kind == "interval" and isinstance(payload, dict) and topic.split("/")[-2] != payload.get("camera"):
            return self._skip(topic, f"camera {payload.get('camera')!r} is not the topic's")
        for wait in (*DB_RETRIES_S, None):
            try:
                new = self.history.upsert(kind, payload)
            except RowRejected as e:  # the row itself: sending it again would fail again
                return self._skip(topic, str(e))
            except MaskwatchError as e:
                if str(e).startswith("unknown row kind"):
                    return self._skip(topic, str(e))
                # the database (unreachable, locked, restarting): try again, then stop without the ack
                if wait is None or self.stopped.is_set():
                    self.failure = f"aggregate stopped: {e} (the message stays on the broker for the next start)"
                    self.stopped.set()
                    return False
                log.warning("%s; trying again in %.1f s", e, wait)
                self.stopped.wait(wait)
                continue
            except (TypeError, ValueError, ArithmeticError) as e:  # a value no check foresaw: still the row's
                return self._skip(topic, f"{type(e).__name__}: {e}")
            if new:
                self.stored += 1
            else:
                self.duplicates += 1
                log.debug("%s %s: duplicate id, ignored", kind, payload.get("id"))
            return True
        return False

    def _skip(self, topic: str, why: str) -> bool:
        self.malformed += 1
        log.warning("skipped a malformed message on %s: %s", topic, why[:200])
        return True


def run(args, stop_signals) -> int:
    # lazy: maskwatch.history imports SQLAlchemy (~0.6 s); `maskwatch aggregate --help` and a bad
    # argument do not wait for it
    from maskwatch.history import History

    mqtt, db_url, _shown_db = SiteConfig.load_broker_and_db(args.config)
    if args.db is not None:
        db_url = args.db
    client_id = args.client_id or client_id_for(mqtt.prefix)
    history = History(db_url)
    try:
        aggregator = Aggregator(mqtt, history, client_id)
        stop_signals.attach(aggregator)
        log.info("aggregate: %s/+/intervals and %s/events from %s into %s", mqtt.prefix, mqtt.prefix,
                 mqtt.address, history.shown_url)
        aggregator.run()
        log.info("aggregate: %d rows stored, %d duplicates, %d malformed", aggregator.stored,
                 aggregator.duplicates, aggregator.malformed)
    finally:
        history.close()
    return 0
