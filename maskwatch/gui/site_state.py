"""The Site tab's Qt-free part: MQTT payloads in, per-camera status out (:class:`SiteState`).

``maskwatch serve --config site.toml`` publishes every camera in Frigate's topic shape
(``docs/mqtt.md``). The Site tab (:mod:`maskwatch.gui.site_tab`) subscribes to ``<prefix>/#``
and builds a tile per camera from:

- ``<prefix>/available`` (retained): ``online`` / ``offline`` (the broker sends ``offline`` as the
  last will when serve dies): every tile turns grey while it says ``offline``;
- ``<prefix>/<camera>/state`` (retained): ``connecting`` / ``live`` / ``reconnecting`` / ``ended``,
  shown with how long it has been so (``≥`` when the value was already retained when we connected);
- ``<prefix>/<camera>/<label>`` (retained): the people in view now;
- ``<prefix>/<camera>/compliance`` (retained) and ``<prefix>/<camera>/intervals`` (not retained,
  one JSON row per closed interval): the last interval's compliance, and today's (with_mask /
  decided people of today's intervals; those before the tab connected come from the history
  database when a site config naming one was opened);
- ``<prefix>/events`` (not retained): the last alert (a person decided without a mask or wearing it
  incorrectly, or who took it off, as :func:`maskwatch.sinks.alerts.alert_worthy` says), with its
  snapshot when the payload's path is a file on this machine.

A camera that sends nothing for its timeout turns grey: a live camera's heartbeat is its interval
row, so the default timeout is ``2 × interval + 10 s`` (the interval from the opened site config,
else learned from the rows, else 60 s); the "Grey after" box sets a fixed one. Retained values
replayed at a (re)connect do not count as news: they only restart the clock.

Nothing here imports Qt: payloads that are not serve's are counted in :attr:`SiteState.ignored`,
never raised. The widgets that show a :class:`CameraStatus` are in :mod:`maskwatch.gui.site_tile`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime

from maskwatch import LABELS
from maskwatch.results import Event
from maskwatch.site.publisher import STATES, topic_safe
from maskwatch.sinks.alerts import PERSON_ALERT_LABELS, alert_worthy

log = logging.getLogger("maskwatch.gui.site")

DEFAULT_INTERVAL_S = 60.0
"""The interval assumed before the config or a row says (``Config.interval_s``'s default)."""
MAX_CAMERAS = 200
"""Tiles at most: a broker full of stray topics must not build thousands of widgets."""
MAX_TODAY_ROWS = 20000
"""Interval rows of today kept per camera (a day of 5 s intervals is 17280)."""
MAX_PAYLOAD = 64 * 1024
"""A bigger payload is not one of serve's: ignored."""
SHORT_LABEL = {"with_mask": "with mask", "without_mask": "without", "mask_worn_incorrectly": "incorrect"}
ALERT_TEXT = {"without_mask": "without a mask", "mask_worn_incorrectly": "mask worn incorrectly",
              "mask_off": "took the mask off"}


def timeout_for(interval_s: float | None) -> float:
    """Seconds without news after which a camera's tile turns grey: two intervals and 10 s.

    >>> timeout_for(60), timeout_for(1), timeout_for(None)
    (130.0, 12.0, 130.0)
    """
    interval = DEFAULT_INTERVAL_S if not interval_s or interval_s <= 0 else float(interval_s)
    return 2.0 * interval + 10.0


def duration_text(seconds: float) -> str:
    """``5s``, ``3m 05s``, ``2h 04m``, ``3d 2h``.

    >>> duration_text(4.6), duration_text(185), duration_text(7440), duration_text(3 * 86400 + 7300)
    ('5s', '3m 05s', '2h 04m', '3d 2h')
    """
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def local_midnight(now: float) -> float:
    return datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def rate_text(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.0f}%"


@dataclass
class SiteAlert:
    """The last alert of a camera (from an ``events`` payload)."""

    kind: str  # without_mask, mask_worn_incorrectly, mask_off
    ts: float
    track_id: int | None
    snapshot: str | None  # the path in the payload (a file on serve's host)
    box: tuple[float, float, float, float] | None = None  # the face in the snapshot's pixels (x1, y1, x2, y2)


@dataclass
class CameraStatus:
    """What the broker told about one camera."""

    name: str
    state: str | None = None
    state_since: float | None = None  # wall clock of the change (or of the connect, see state_exact)
    state_exact: bool = False  # False: the state was retained when we connected (it is older)
    in_view: dict[str, int] = field(default_factory=dict)
    compliance: float | None = None  # the last closed interval's rate
    compliance_known: bool = False  # False: no compliance topic / row yet ("None" is known: nobody decided)
    today: dict[str, tuple[float, dict[str, int]]] = field(default_factory=dict)  # row id -> (start_ts, by label)
    interval_s: float | None = None  # learned from the rows (the longest of the last few)
    lengths: list[float] = field(default_factory=list)
    last_alert: SiteAlert | None = None
    last_news: float | None = None  # wall clock of the last message that was not a retained replay
    messages: int = 0
    created: float = field(default_factory=time.time)  # when the tab first heard of it (or read it in site.toml)

    @property
    def people_in_view(self) -> int:
        return sum(self.in_view.values())

    def today_rate(self, now: float) -> tuple[float | None, int]:
        """(with_mask / decided people, decided) over today's interval rows (local day of ``now``)."""
        midnight = local_midnight(now)
        decided = masked = 0
        for start, by_label in self.today.values():
            if start >= midnight:
                decided += sum(by_label.values())
                masked += by_label.get("with_mask", 0)
        return (None if decided == 0 else masked / decided), decided


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _count(value) -> int:
    number = _number(value)
    return int(number) if number is not None and 0 <= number < 1e9 else 0


class SiteState:
    """Every camera's :class:`CameraStatus`, fed one MQTT message at a time (see the module docstring).

    >>> s = SiteState("site")
    >>> s.handle("site/door/state", b"live", retained=False, now=100.0)
    'door'
    >>> s.handle("site/door/with_mask", b"2", retained=False, now=101.0), s.cameras["door"].people_in_view
    ('door', 2)
    >>> s.handle("site/door/compliance", b"0.75", retained=True, now=102.0), s.cameras["door"].compliance
    ('door', 0.75)
    >>> s.handle("elsewhere/door/state", b"live", retained=False), s.handle("site/a+b/state", b"live", retained=False)
    (None, None)
    """

    def __init__(self, prefix: str = "maskwatch") -> None:
        self.prefix = prefix
        self.cameras: dict[str, CameraStatus] = {}
        self.available: str | None = None  # "online" / "offline" / None (not heard)
        self.available_since: float | None = None
        self.connected_at: float | None = None
        self.ignored = 0  # messages that were not serve's (bad topic, bad payload): counted, never raised
        self._seen_events: set[str] = set()

    # -- feeding ------------------------------------------------------------------------------
    def connected(self, now: float | None = None) -> None:
        """A (re)connect: the retained values that follow are replays, the timeouts start over."""
        self.connected_at = time.time() if now is None else now

    def camera(self, name: str) -> CameraStatus | None:
        """The status of ``name``, made if new (``None`` past :data:`MAX_CAMERAS` or for a bad name)."""
        status = self.cameras.get(name)
        if status is None:
            if not topic_safe(name) or len(self.cameras) >= MAX_CAMERAS:
                return None
            status = self.cameras[name] = CameraStatus(name)
        return status

    def handle(self, topic: str, payload: bytes, retained: bool, now: float | None = None) -> str | None:
        """One message; returns the camera it changed, ``"*"`` for every camera, ``None`` if ignored."""
        now = time.time() if now is None else now
        try:
            return self._handle(topic, payload, retained, now)
        except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as e:  # never the GUI's problem
            self.ignored += 1
            log.debug("site tab: ignored a message on %s: %s", topic, type(e).__name__)
            return None

    def _handle(self, topic: str, payload: bytes, retained: bool, now: float) -> str | None:
        head = self.prefix + "/"
        if not isinstance(topic, str) or not topic.startswith(head) or len(payload) > MAX_PAYLOAD:
            self.ignored += 1
            return None
        levels = topic[len(head):].split("/")
        text = bytes(payload).decode("utf-8").strip()
        if levels == ["available"]:
            if text not in ("online", "offline"):
                raise ValueError("available")
            if text != self.available:
                self.available, self.available_since = text, now
            return "*"
        if levels == ["events"]:
            return self._event(json.loads(text), retained, now)
        if len(levels) != 2:
            self.ignored += 1
            return None
        name, what = levels
        if what not in ("state", "compliance", "intervals", *LABELS):
            self.ignored += 1  # discovery, a new topic of a later version: not ours to show
            return None
        status = self.camera(name)
        if status is None:
            self.ignored += 1
            return None
        if what == "state":
            if text not in STATES:
                raise ValueError("state")
            if text != status.state:
                status.state, status.state_since, status.state_exact = text, now, not retained
        elif what == "compliance":
            status.compliance = None if text == "None" else _checked_rate(float(text))
            status.compliance_known = True
        elif what == "intervals":
            self.add_interval(status, json.loads(text))
        else:
            status.in_view[what] = _count(int(text))
        status.messages += 1
        if not retained:
            status.last_news = now
        return name

    def add_interval(self, status: CameraStatus, row) -> None:
        """One interval payload (live, or from the history database) into ``status``."""
        if not isinstance(row, dict) or row.get("camera") not in (None, status.name):
            raise ValueError("interval")
        start, end = _number(row.get("start_ts")), _number(row.get("end_ts"))
        if start is None or end is None or end < start:
            raise ValueError("interval times")
        row_id = str(row.get("id") or f"{start}-{end}")
        by_label = {label: _count(row.get(label)) for label in LABELS}
        if row_id not in status.today and len(status.today) >= MAX_TODAY_ROWS:
            status.today.pop(next(iter(status.today)))
        status.today[row_id] = (start, by_label)
        if end > start:
            status.lengths = (status.lengths + [end - start])[-5:]
            status.interval_s = max(status.lengths)  # a partial last row (serve stopping) is shorter
        newest = max((s for s, _ in status.today.values()), default=start)
        if start >= newest:  # the newest row is "the last interval" (compliance_rate None: nobody decided)
            rate = row.get("compliance_rate")
            status.compliance = None if rate is None else _checked_rate(float(rate))
            status.compliance_known = True

    def _event(self, event, retained: bool, now: float) -> str | None:
        if not isinstance(event, dict):
            raise ValueError("event")
        name = event.get("camera")
        if not isinstance(name, str):
            raise ValueError("event camera")
        status = self.camera(name)
        if status is None:
            self.ignored += 1
            return None
        if not retained:
            status.last_news = now
        self.add_event(status, event)
        return name

    def add_event(self, status: CameraStatus, event: dict) -> None:
        """One event payload: the last alert when it is one (duplicates by ``id`` are dropped)."""
        event_id = event.get("id")
        if isinstance(event_id, str):
            if event_id in self._seen_events:
                return
            if len(self._seen_events) > 10000:
                self._seen_events.clear()
            self._seen_events.add(event_id)
        if event.get("type") != "update":
            return
        label, previous = event.get("label"), event.get("previous")
        ts = _number(event.get("ts"))
        if ts is None or label not in LABELS:
            return
        kind = "label_changed" if previous is not None else "label_decided"
        track = event.get("track_id")
        track = int(track) if isinstance(track, int) and not isinstance(track, bool) else None
        if not alert_worthy(Event(kind, track if track is not None else -1, ts, 0, label, previous=previous),
                            PERSON_ALERT_LABELS):
            return
        if status.last_alert is not None and status.last_alert.ts > ts:
            return  # an older event (from the database, or late): the newer alert stands
        snapshot, box = event.get("snapshot"), event.get("box")
        box = tuple(_number(v) for v in box) if isinstance(box, list) and len(box) == 4 else None
        status.last_alert = SiteAlert("mask_off" if kind == "label_changed" else label, ts, track,
                                      snapshot if isinstance(snapshot, str) and snapshot else None,
                                      box if box is not None and None not in box else None)

    # -- reading ------------------------------------------------------------------------------
    def quiet_for(self, name: str, now: float) -> float:
        """Seconds since the camera's last news (or since the connect, when that is later)."""
        status = self.cameras[name]
        since = max(t for t in (status.last_news, self.connected_at, status.created) if t is not None)
        return max(0.0, now - since)

    def grey_reason(self, name: str, now: float, timeout_s: float) -> str | None:
        """Why ``name``'s tile is grey (``None``: it is not): serve offline, the camera ended, or no news."""
        status = self.cameras[name]
        if self.available == "offline":
            since = f" for {duration_text(now - self.available_since)}" if self.available_since else ""
            return f"serve offline{since}"
        if status.state == "ended":
            return "camera ended"
        quiet = self.quiet_for(name, now)
        if quiet > timeout_s:
            return f"nothing heard for {duration_text(quiet)} (timeout {duration_text(timeout_s)})"
        return None


def _checked_rate(rate: float) -> float:
    if not math.isfinite(rate) or not 0.0 <= rate <= 1.0:
        raise ValueError("rate")
    return rate
