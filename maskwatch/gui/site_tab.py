"""The Site tab: one tile per camera of a site, live from the MQTT broker ``maskwatch serve`` publishes to.

``maskwatch serve --config site.toml`` publishes every camera in Frigate's topic shape
(``docs/mqtt.md``); this tab subscribes to ``<prefix>/#`` and builds a tile per camera (what each
topic shows, and when a tile turns grey: :mod:`maskwatch.gui.site_state`).

paho-mqtt's network thread never touches a widget (:mod:`maskwatch.gui.site_mqtt`); messages of a
client already closed are dropped by their generation number. The broker address, port, user,
prefix and timeout are kept in the app's QSettings (``site/...``); the password only in its
password field while the app runs.

Double-click on a tile: ``open_camera(name)``; when an opened site config knows that camera,
``open_source(url)`` too (the camera's source, with its password when the config gives one: hand
it to the source picker, which moves the password into its own field); otherwise the camera's
recent history from the site's database, when the config names one.

The tab's ideas, one module each: :mod:`maskwatch.gui.site_state` (:class:`SiteState`, the Qt-free
part: payloads in, per-camera status out), :mod:`maskwatch.gui.site_mqtt` (the paho client and its
Qt bridge), :mod:`maskwatch.gui.site_tile` (:class:`CameraTile`), :mod:`maskwatch.gui.site_history`
(:class:`HistoryDialog`) and this module, :class:`SiteTab` the widget; their names stay importable
from here.
"""

from __future__ import annotations

import time
from pathlib import Path

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import (
    QApplication, QCheckBox, QFileDialog, QFrame, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton,
    QScrollArea, QSpinBox, QVBoxLayout, QWidget,
)

from maskwatch.errors import MaskwatchError
from maskwatch.gui.site_history import HistoryDialog
from maskwatch.gui.site_mqtt import Bridge, BrokerClient
from maskwatch.gui.site_state import (  # noqa: F401 - re-exported
    ALERT_TEXT, DEFAULT_INTERVAL_S, MAX_CAMERAS, MAX_PAYLOAD, MAX_TODAY_ROWS, SHORT_LABEL, CameraStatus, SiteAlert,
    SiteState, duration_text, local_midnight, log, rate_text, timeout_for,
)
from maskwatch.gui.site_tile import (  # noqa: F401 - re-exported
    ERROR_TEXT, LINE, MUTED, STALE_STYLE, SUNKEN, TILE_HEIGHT, TILE_WIDTH, CameraTile,
)
from maskwatch.site.config import MqttSettings, SiteConfig
from maskwatch.sources.spec import display_path, redact

__all__ = [  # the names of site_tab.py before it was split by idea
    "ALERT_TEXT", "DEFAULT_INTERVAL_S", "ERROR_TEXT", "LINE", "MAX_CAMERAS", "MAX_PAYLOAD", "MAX_TODAY_ROWS", "MUTED",
    "SHORT_LABEL", "STALE_STYLE", "SUNKEN", "TILE_HEIGHT", "TILE_WIDTH", "CameraStatus", "CameraTile", "HistoryDialog",
    "SiteAlert", "SiteState", "SiteTab", "duration_text", "local_midnight", "timeout_for",
]
_Bridge, _Client = Bridge, BrokerClient  # their names before the split


class SiteTab(QWidget):
    """The Site tab (see the module docstring).

    Signals: ``open_camera(name)`` on a double-click of a tile; ``open_source(url)`` with that
    camera's source from the opened site config (the password in it: for the source picker only,
    never to be shown or stored). ``shutdown()`` disconnects (call it when the window closes).
    """

    open_camera = pyqtSignal(str)
    open_source = pyqtSignal(str)
    changed = pyqtSignal()  # after every message handled and every refresh (tests wait on it)

    def __init__(self, settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.state = SiteState(self._saved("site/prefix", "maskwatch"))
        self.tiles: dict[str, CameraTile] = {}
        self._columns = 0
        self.site = None  # the opened SiteConfig (or None)
        self.site_db: tuple[str, str] | None = None  # (database URL, shown URL) of the opened config
        self.site_path: Path | None = None
        self._site_note = ""  # " · site config ...: N cameras, history ..." once one is opened
        self.connection = "disconnected"  # disconnected, connecting, connected, refused, unreachable, lost
        self._client: BrokerClient | None = None
        self._generation = 0
        self._bridge = Bridge(self)
        self._bridge.message.connect(self._on_message)
        self._bridge.link.connect(self._on_link)
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        app = QApplication.instance()
        if app is not None:  # the app quitting without shutdown(): paho's thread still ends
            app.aboutToQuit.connect(self.shutdown)
        self.refresh()

    # -- settings (never the password) ------------------------------------------------------------
    def _saved(self, key: str, default):
        value = self.settings.q.value(key, None)
        if value is None or value == "":
            return default
        try:
            if isinstance(default, bool):
                return str(value).strip().lower() in ("1", "true", "yes", "on")
            return type(default)(value)
        except (TypeError, ValueError):
            return default

    def _save_fields(self) -> None:
        self.settings.q.setValue("site/host", self.host_edit.text().strip())
        self.settings.q.setValue("site/port", int(self.port_spin.value()))
        self.settings.q.setValue("site/username", self.user_edit.text().strip())
        self.settings.q.setValue("site/prefix", self.prefix_edit.text().strip() or "maskwatch")
        self.settings.q.setValue("site/tls", bool(self.tls_box.isChecked()))
        self.settings.q.setValue("site/timeout_s", int(self.timeout_spin.value()))
        self.settings.q.sync()

    # -- layout ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 8, 8, 8)
        outer.setSpacing(6)
        bar = QHBoxLayout()
        bar.setSpacing(6)
        self.host_edit = QLineEdit(self._saved("site/host", ""))
        self.host_edit.setPlaceholderText("broker host")
        self.host_edit.setToolTip("The MQTT broker maskwatch serve publishes to ([mqtt] host of site.toml)")
        self.port_spin = QSpinBox()
        self.port_spin.setRange(1, 65535)
        self.port_spin.setValue(min(max(self._saved("site/port", 1883), 1), 65535))
        self.port_spin.setToolTip("Broker port (1883; TLS usually 8883)")
        self.user_edit = QLineEdit(self._saved("site/username", ""))
        self.user_edit.setPlaceholderText("user (optional)")
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setPlaceholderText("broker password")
        self.password_edit.setToolTip("Sent only to the broker; never shown, logged or saved")
        self.prefix_edit = QLineEdit(self._saved("site/prefix", "maskwatch"))
        self.prefix_edit.setPlaceholderText("prefix")
        self.prefix_edit.setToolTip("The topic prefix ([mqtt] prefix of site.toml)")
        self.prefix_edit.setMaximumWidth(110)
        self.tls_box = QCheckBox("TLS")
        self.tls_box.setChecked(self._saved("site/tls", False))
        self.timeout_spin = QSpinBox()
        self.timeout_spin.setRange(0, 86400)
        self.timeout_spin.setSpecialValueText("auto")
        self.timeout_spin.setSuffix(" s")
        self.timeout_spin.setValue(min(max(self._saved("site/timeout_s", 0), 0), 86400))
        self.timeout_spin.setMaximumWidth(90)
        self.port_spin.setMaximumWidth(90)
        self.timeout_spin.setToolTip("A camera that sends nothing this long turns grey "
                                     "(auto: two intervals and 10 s)")
        self.timeout_spin.valueChanged.connect(lambda _v: (self._save_fields(), self.refresh()))
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self.toggle_connection)
        self.open_button = QPushButton("Open site.toml…")
        self.open_button.setToolTip("The site's config: each camera's source (double-click opens it) and its "
                                    "history database")
        self.open_button.clicked.connect(self.choose_site_config)
        for edit in (self.host_edit, self.user_edit, self.password_edit, self.prefix_edit):
            edit.returnPressed.connect(self.connect_broker)
        for widget, stretch in ((QLabel("Broker"), 0), (self.host_edit, 2), (self.port_spin, 0), (self.user_edit, 1),
                                (self.password_edit, 1), (self.prefix_edit, 0), (self.tls_box, 0),
                                (QLabel("Grey after"), 0), (self.timeout_spin, 0), (self.connect_button, 0),
                                (self.open_button, 0)):
            bar.addWidget(widget, stretch)
        outer.addLayout(bar)
        self.status_label = QLabel("not connected")
        self.status_label.setObjectName("muted")
        self.status_label.setWordWrap(True)
        outer.addWidget(self.status_label)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(10)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.empty_label = QLabel("No cameras yet. Enter the broker that maskwatch serve publishes to and press "
                                  "Connect; Open site.toml… fills it in from the site's config.")
        self.empty_label.setObjectName("muted")
        self.empty_label.setWordWrap(True)
        self.grid.addWidget(self.empty_label, 0, 0)
        self.scroll.setWidget(self.grid_host)
        outer.addWidget(self.scroll, 1)
        self._message = ""

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._relayout()

    def _relayout(self) -> None:
        width = max(self.scroll.viewport().width(), TILE_WIDTH)
        columns = max(1, (width + 10) // (TILE_WIDTH + 10))
        if columns == self._columns and all(self.grid.indexOf(t) >= 0 for t in self.tiles.values()):
            return
        self._columns = columns
        for tile in self.tiles.values():
            self.grid.removeWidget(tile)
        for i, name in enumerate(self._order()):
            self.grid.addWidget(self.tiles[name], i // columns, i % columns)
        self.empty_label.setVisible(not self.tiles)

    def _order(self) -> list[str]:
        configured = [c.name for c in self.site.cameras] if self.site is not None else []
        return [n for n in configured if n in self.tiles] + sorted(n for n in self.tiles if n not in configured)

    # -- the broker -------------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self.connection == "connected"

    def toggle_connection(self) -> None:
        if self._client is not None:
            self.shutdown()
        else:
            self.connect_broker()

    def broker_settings(self):
        """The fields as :class:`MqttSettings` (a :class:`MaskwatchError` line when one is wrong)."""
        table = {"host": self.host_edit.text().strip() or None, "port": int(self.port_spin.value()),
                 "prefix": self.prefix_edit.text().strip() or "maskwatch", "tls": bool(self.tls_box.isChecked()),
                 "discovery": False}
        table = {k: v for k, v in table.items() if v is not None}
        if self.user_edit.text().strip():
            table["username"] = self.user_edit.text().strip()
        if self.password_edit.text():
            table["password"] = self.password_edit.text()
        mqtt = self.site.mqtt if self.site is not None else None
        if mqtt is not None and mqtt.host == table.get("host") and mqtt.port == table["port"] and mqtt.ca_certs:
            table["ca_certs"] = str(mqtt.ca_certs)  # the site's own CA file, when it is the site's broker
        if "host" not in table:
            raise MaskwatchError("Site: enter the broker's host (the [mqtt] host of site.toml)")
        return MqttSettings.from_table(table, "Site")

    def connect_broker(self) -> bool:
        """(Re)connect with the fields; ``False`` (and one line in the tab) when they are wrong."""
        self.shutdown(quiet=True)
        try:
            settings = self.broker_settings()
        except MaskwatchError as e:
            self._say(str(e), error=True)
            return False
        self._save_fields()
        if settings.prefix != self.state.prefix:
            self._set_prefix(settings.prefix)
        self._generation += 1
        try:
            client = BrokerClient(settings, self._bridge, self._generation)
            client.start()
        except MaskwatchError as e:
            self._say(str(e), error=True)
            return False
        except Exception as e:  # noqa: BLE001 - a TLS file paho cannot read, ...: one line, no traceback
            self._say(f"cannot use broker {settings.address}: {type(e).__name__}: {e}", error=True)
            return False
        self._client, self._address = client, settings.address
        self.connection = "connecting"
        self.connect_button.setText("Disconnect")
        self._say(f"connecting to {settings.address} …")
        return True

    def shutdown(self, quiet: bool = False) -> None:
        """Disconnect from the broker (the tiles stay, greyed by their timeouts)."""
        client, self._client = self._client, None
        self._generation += 1  # whatever that client still has queued is dropped
        if client is not None:
            client.close()
        self.connection = "disconnected"
        self.connect_button.setText("Connect")
        if client is not None and not quiet:
            self._say("disconnected")

    def _on_link(self, generation: int, what: str, detail: str) -> None:
        if generation != self._generation:
            return
        address = getattr(self, "_address", "")
        if what == "lost" and self.connection != "connected":
            return  # the end of a refused or failed attempt: that reason stands
        self.connection = what
        if what == "connected":
            self.state.connected()
            self._say(f"connected to {address}, topics {self.state.prefix}/#{self._site_note}")
        elif what == "refused":
            self._say(f"broker {address} refused the connection: {detail} (check user and password); retrying",
                      error=True)
        elif what == "unreachable":
            self._say(f"broker {address} not reachable (down, or wrong host or port?); retrying", error=True)
        elif what == "lost":
            self._say(f"connection to {address} lost ({detail}); reconnecting", error=True)
        self.refresh()

    def _on_message(self, generation: int, topic: str, payload: bytes, retained: bool) -> None:
        if generation == self._generation:
            self.feed(topic, payload, retained)

    def feed(self, topic: str, payload: bytes, retained: bool = False, now: float | None = None) -> None:
        """One MQTT message (the bridge's, or a recorded one in tests)."""
        changed = self.state.handle(topic, payload, retained, now)
        if changed == "*":
            self.refresh(now)
        elif changed is not None:
            self._refresh_tile(changed, time.time() if now is None else now)
            self.changed.emit()

    # -- the site config ----------------------------------------------------------------------------------
    def choose_site_config(self) -> None:
        start = str(self.site_path.parent) if self.site_path else self._saved("site/config_dir", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Open the site's config", start, "Site config (*.toml);;All files (*)")
        if path:
            self.open_site_config(path)

    def open_site_config(self, path) -> bool:
        """Read ``site.toml``: the broker fields, each camera's source, the history database.

        A config whose cameras cannot be read here (a camera password from an environment variable
        this app does not have, ...) still gives the broker and the database, with the reason shown."""
        path = Path(path).expanduser()
        note = ""
        try:
            site = SiteConfig.load(path)
            mqtt, db = site.mqtt, (site.db_url, site.shown_db_url)
        except MaskwatchError as e:
            try:
                mqtt, db_url, shown_db = SiteConfig.load_broker_and_db(path)
                site, db = None, (db_url, shown_db)
                note = f"; its cameras could not be read ({e})"
            except MaskwatchError as e2:
                self._say(str(e2 if "[mqtt]" not in str(e2) else e), error=True)
                return False
        self.site, self.site_db, self.site_path = site, db, path
        self.settings.q.setValue("site/config_dir", str(path.parent))
        self.settings.q.sync()
        if mqtt is not None:
            if mqtt.prefix != self.state.prefix:
                self._set_prefix(mqtt.prefix, seed=False)
            self.host_edit.setText(mqtt.host)
            self.port_spin.setValue(mqtt.port)
            self.prefix_edit.setText(mqtt.prefix)
            self.user_edit.setText(mqtt.username or "")
            self.tls_box.setChecked(bool(mqtt.tls))
            self.password_edit.setText(mqtt.password or "")  # hidden (password echo), never stored
        if site is not None:
            for camera in site.cameras:
                self._tile(camera.name)
        self._relayout()
        seeded = self._seed_from_history()
        self._site_note = f" · {display_path(path)}: {len(site.cameras) if site else '?'} cameras, history {db[1]}"
        self._say(f"site config {display_path(path)}: {len(site.cameras) if site else '?'} cameras, "
                  f"history {db[1]}{seeded}{note}", error=bool(note))
        self.refresh()
        return True

    def _seed_from_history(self) -> str:
        """Today's intervals and alerts from the opened site's database (" (today from the database)")."""
        if self.site_db is None:
            return ""
        # lazy: SQLAlchemy (~0.3 s) only once a site's database is opened
        from maskwatch.history import History

        midnight = local_midnight(time.time())
        try:
            history = History(self.site_db[0], create=False)
            try:
                rows, events = history.intervals(since=midnight), history.events(since=midnight)
            finally:
                history.close()
        except MaskwatchError as e:
            return f" (not readable: {e})"
        for row in rows:
            status = self.state.camera(str(row.get("camera")))
            if status is not None:
                try:
                    self.state.add_interval(status, row)
                except (ValueError, TypeError):
                    pass
        for event in events:
            status = self.state.camera(str(event.get("camera")))
            if status is not None:
                self.state.add_event(status, event)
        for name in self.state.cameras:
            tile = self._tile(name)
            if tile is not None:
                tile.alerts_since = "today"
        return f", {len(rows)} interval rows of today"

    # -- tiles --------------------------------------------------------------------------------------------
    def _tile(self, name: str) -> CameraTile | None:
        tile = self.tiles.get(name)
        if tile is None:
            if self.state.camera(name) is None:
                return None
            tile = self.tiles[name] = CameraTile(name, self.grid_host)
            tile.activated.connect(self.activate)
            tile.history_requested.connect(self.show_history)
            self._columns = 0  # lay out again
            self._relayout()
        return tile

    def _set_prefix(self, prefix: str, seed: bool = True) -> None:
        """Another site (topic prefix): start over, keeping the opened config's cameras."""
        self._clear_tiles()
        self.state = SiteState(prefix)
        if self.site is not None:
            for camera in self.site.cameras:
                self._tile(camera.name)
        if seed:
            self._seed_from_history()

    def _clear_tiles(self) -> None:
        for tile in self.tiles.values():
            self.grid.removeWidget(tile)
            tile.setParent(None)
            tile.deleteLater()
        self.tiles.clear()
        self._columns = 0
        self._relayout()

    def timeout_s(self, name: str) -> float:
        """The camera's grey-after time: the box's value, or two intervals and 10 s."""
        fixed = int(self.timeout_spin.value())
        if fixed > 0:
            return float(fixed)
        interval = None
        if self.site is not None:
            try:
                interval = self.site.camera(name).config.interval_s
            except KeyError:
                pass
        status = self.state.cameras.get(name)
        if interval is None and status is not None:
            interval = status.interval_s
        return timeout_for(interval)

    def _refresh_tile(self, name: str, now: float) -> None:
        tile = self._tile(name)
        if tile is None:
            return
        status = self.state.cameras[name]
        grey = self.state.grey_reason(name, now, self.timeout_s(name))
        if grey is None and not self.is_connected:
            grey = "not connected to the broker"
        tile.show_status(status, grey, self.state.quiet_for(name, now), now)

    def refresh(self, now: float | None = None) -> None:
        """Every tile again (durations, timeouts): once a second and after site-wide news."""
        now = time.time() if now is None else now
        for name in list(self.state.cameras):
            self._refresh_tile(name, now)
        self.empty_label.setVisible(not self.tiles)
        self.changed.emit()

    def _say(self, text: str, error: bool = False) -> None:
        text = " ".join(redact(text).split())  # no message here is built with the password in it
        if text != self._message:  # a retry that fails the same way again is not news
            (log.warning if error else log.info)("site tab: %s", text)
        self._message = text
        self.status_label.setText(text)
        self.status_label.setStyleSheet(f"color: {ERROR_TEXT};" if error else "")

    # -- double-click ---------------------------------------------------------------------------------------
    def activate(self, name: str) -> None:
        """A tile was double-clicked: ``open_camera``; then its source, or its history, or a hint."""
        self.open_camera.emit(name)
        if self.site is not None:
            try:
                camera = self.site.camera(name)
            except KeyError:
                camera = None
            if camera is not None:
                self._say(f"{name}: opening {camera.shown_source} in the Monitor tab")
                self.open_source.emit(str(camera.config.source))
                return
        if self.site_db is not None:
            self.show_history(name)
            return
        self._say(f"{name}: open the site's site.toml to open this camera or see its history")

    def history_dialog(self, name: str) -> HistoryDialog | None:
        if self.site_db is None:
            self._say(f"{name}: open the site's site.toml (it names the history database) to see its history")
            return None
        return HistoryDialog(name, self.site_db[0], self.site_db[1], self)

    def show_history(self, name: str) -> None:
        dialog = self.history_dialog(name)
        if dialog is not None:
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.show()
