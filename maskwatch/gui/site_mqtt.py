"""The Site tab's MQTT side: a paho client whose callbacks (its network thread) become Qt signals.

paho-mqtt's network thread never touches a widget: :class:`Bridge` re-emits each message as a Qt
signal (queued to the GUI thread), tagged with a generation number so that messages of a client
already closed are dropped (:class:`~maskwatch.gui.site_tab.SiteTab` keeps the generation).
"""

from __future__ import annotations

from PyQt6.QtCore import QObject, pyqtSignal

from maskwatch.errors import MaskwatchError
from maskwatch.site.publisher import make_client


class Bridge(QObject):
    """paho's callbacks (its network thread) -> Qt signals (delivered queued in the GUI thread)."""

    message = pyqtSignal(int, str, bytes, bool)  # generation, topic, payload, retained
    link = pyqtSignal(int, str, str)  # generation, what ("connected", "refused", "unreachable", "lost"), detail


class BrokerClient:
    """One paho client for one connection attempt: ``generation`` tags everything it reports."""

    def __init__(self, settings, bridge: Bridge, generation: int) -> None:
        self.settings, self.bridge, self.generation = settings, bridge, generation
        self.closing = False
        self.client = make_client(settings)  # MQTT 3.1.1, clean session, credentials, TLS, backoff
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        try:
            self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
        except (OSError, ValueError) as e:  # paho checks its arguments here; the network comes later
            raise MaskwatchError(f"cannot use broker {self.settings.address}: {e}") from None
        self.client.loop_start()

    def close(self) -> None:
        self.closing = True
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001 - never connected: nothing to say goodbye to
            pass
        self.client.loop_stop()

    # paho's network thread: emit only
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.bridge.link.emit(self.generation, "refused", str(reason_code))
            return
        client.subscribe(f"{self.settings.prefix}/#", qos=1)
        self.bridge.link.emit(self.generation, "connected", "")

    def _on_connect_fail(self, client, userdata) -> None:
        self.bridge.link.emit(self.generation, "unreachable", "")

    def _on_disconnect(self, client, userdata, disconnect_flags, reason_code, properties) -> None:
        if not self.closing:
            self.bridge.link.emit(self.generation, "lost", str(reason_code))

    def _on_message(self, client, userdata, message) -> None:
        self.bridge.message.emit(self.generation, message.topic, bytes(message.payload), bool(message.retain))
