"""Alerts without Qt: when to raise one (:class:`AlertPolicy`) and the sink that raises them.

An alert is raised when a person is decided ``without_mask`` (or ``mask_worn_incorrectly``), when a
person's label changes from ``with_mask`` to one of those (``mask_off``: "Person #12 took the mask
off"; a change towards ``with_mask`` raises none), when
compliance (with_mask / decided people) since the start falls under the threshold
(``Config.alert_compliance_below``; once per crossing), and for every closed interval whose
compliance is under it. The desktop app (banner, beep, alert log) and ``maskwatch --headless``
(a line on stderr and a record in the JSONL event log) get their alerts from the same
:class:`AlertSink`, so both raise exactly the same ones.

>>> from maskwatch.results import Event, Totals
>>> policy = AlertPolicy(compliance_below=0.8)
>>> totals = Totals(people_seen=1, by_label={"with_mask": 0, "without_mask": 1, "mask_worn_incorrectly": 0})
>>> [a.kind for a in policy.check([Event("label_decided", 4, 1.0, 25, "without_mask", 0.9)], totals, [])]
['without_mask', 'compliance']
>>> policy.check([], totals, [])   # still under: no second alert for the same crossing
[]

The JSONL record of an alert (:func:`alert_record`) has the event records' keys (``kind`` is
``"alert"``; ``track_id``, ``label``, ``confidence`` and ``box`` are those of the person, ``null``
for compliance alerts; ``time`` / ``epoch`` / ``frame_index`` say when: the deciding frame, or the
interval's end) plus ``alert`` (``without_mask``, ``mask_worn_incorrectly``, ``mask_off``,
``compliance`` or ``interval_compliance``), ``message``, ``compliance`` (the rate that fell under, else ``null``),
``threshold`` and ``interval_start`` (interval alerts, else ``null``):

>>> record = alert_record(policy.check([Event("label_decided", 7, 1e9, 25, "without_mask", 0.9)], totals, [])[0])
>>> record["kind"], record["alert"], record["track_id"], record["message"]
('alert', 'without_mask', 7, 'Person #7 without a mask')
>>> off = Event("label_changed", 7, 1e9, 90, "without_mask", 0.8, previous="with_mask")
>>> [a.message for a in policy.person_alerts([off, Event("label_changed", 7, 1e9, 99, "with_mask", previous="without_mask")])]
['Person #7 took the mask off']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from maskwatch.records import alert_record  # noqa: F401 - re-exported (maskwatch.records)
from maskwatch.results import Event, FrameResult, IntervalSummary, Totals
from maskwatch.sinks.base import BaseSink

PERSON_ALERT_LABELS: tuple[str, ...] = ("without_mask", "mask_worn_incorrectly")
"""Decided labels that raise an alert for the person."""


@dataclass
class Alert:
    kind: str  # "without_mask", "mask_worn_incorrectly", "mask_off", "compliance" or "interval_compliance"
    message: str
    at: float = field(default_factory=time.time)  # wall clock when raised
    track_id: int | None = None
    thumbnail: np.ndarray | None = None  # RGB crop of the person's face (the desktop app's log)
    timestamp: float | None = None  # when it happened: the deciding frame's time, an interval's end
    frame_index: int | None = None
    label: str | None = None  # the person's decided label
    confidence: float | None = None
    box: tuple[float, float, float, float] | None = None
    compliance: float | None = None  # the rate that fell under the threshold
    threshold: float | None = None
    interval_start: float | None = None


class AlertPolicy:
    """Turns events, totals and closed intervals into alerts (keeps the one bit of state: whether
    the running compliance is already under the threshold)."""

    def __init__(self, compliance_below: float, person_labels: tuple[str, ...] = PERSON_ALERT_LABELS):
        self.compliance_below = float(compliance_below)
        self.person_labels = tuple(person_labels)
        self._below = False

    def person_alerts(self, events: Iterable[Event], thumbnails: dict[int, np.ndarray] | None = None) -> list[Alert]:
        thumbnails = thumbnails or {}
        alerts = []
        for e in events:
            if not alert_worthy(e, self.person_labels):
                continue
            if e.kind == "label_changed":
                kind = "mask_off"
                what = "took the mask off" if e.label == "without_mask" else "is now wearing the mask incorrectly"
            else:
                kind = e.label
                what = "without a mask" if e.label == "without_mask" else "wearing a mask incorrectly"
            alerts.append(Alert(kind, f"Person #{e.track_id} {what}", track_id=e.track_id,
                                thumbnail=thumbnails.get(e.track_id), timestamp=e.timestamp,
                                frame_index=e.frame_index, label=e.label, confidence=e.confidence,
                                box=e.box, threshold=self.compliance_below))
        return alerts

    def interval_alerts(self, summaries: Iterable[IntervalSummary]) -> list[Alert]:
        alerts = []
        for s in summaries:
            rate = s.compliance_rate
            if rate is not None and rate < self.compliance_below:
                alerts.append(Alert("interval_compliance",
                                    f"Interval compliance {rate:.0%} is under {self.compliance_below:.0%}",
                                    timestamp=s.end, compliance=rate, threshold=self.compliance_below,
                                    interval_start=s.start))
        return alerts

    def totals_alerts(self, totals: Totals, timestamp: float | None = None, frame_index: int | None = None) -> list[Alert]:
        """One alert when the running compliance crosses under the threshold (again after it
        recovered), none while it stays under."""
        rate = totals.compliance_rate
        below = rate is not None and rate < self.compliance_below
        alerts = []
        if below and not self._below:
            alerts.append(Alert("compliance", f"Compliance fell to {rate:.0%} (alert under {self.compliance_below:.0%})",
                                timestamp=timestamp, frame_index=frame_index, compliance=rate,
                                threshold=self.compliance_below))
        self._below = below
        return alerts

    def check(self, events: list[Event], totals: Totals, summaries: list[IntervalSummary],
              thumbnails: dict[int, np.ndarray] | None = None) -> list[Alert]:
        """All three kinds for one batch: people, then intervals, then the running compliance."""
        decided = [e for e in events if e.kind == "label_decided"]
        when = (decided[-1].timestamp, decided[-1].frame_index) if decided else (None, None)
        return (self.person_alerts(events, thumbnails) + self.interval_alerts(summaries)
                + self.totals_alerts(totals, *when))


def alert_worthy(e: Event, labels: tuple[str, ...] = PERSON_ALERT_LABELS) -> bool:
    """A person decided with one of ``labels``, or changed from with_mask to one of them."""
    if e.kind == "label_decided":
        return e.label in labels
    return e.kind == "label_changed" and e.previous == "with_mask" and e.label in labels


AlertListener = Callable[[Alert], None]


class AlertSink(BaseSink):
    """Runs an :class:`AlertPolicy` on the monitor's stream and hands each alert to its listeners.

    Listeners (called in order, in the monitor's thread): e.g. ``events_log.write_record`` through
    :func:`jsonl_listener`, the console's ``print_alert``, the desktop app's mailbox.
    ``thumbnail(image_bgr, box)`` (optional) cuts the person's face from the deciding frame, for
    the desktop app's alert log.
    """

    def __init__(self, policy: AlertPolicy, *listeners: AlertListener,
                 thumbnail: Callable[[np.ndarray, tuple], np.ndarray | None] | None = None):
        self.policy = policy
        self.listeners: list[AlertListener] = list(listeners)
        self.thumbnail = thumbnail

    def on_result(self, result: FrameResult) -> None:
        if result.frame is None:  # a status update: nobody was decided
            return
        thumbnails = {}
        if self.thumbnail is not None:
            for e in result.events:
                if alert_worthy(e, self.policy.person_labels) and e.box is not None:
                    crop = self.thumbnail(result.frame.image, e.box)
                    if crop is not None:
                        thumbnails[e.track_id] = crop
        decided = [e for e in result.events if e.kind == "label_decided"]
        when = (decided[-1].timestamp, decided[-1].frame_index) if decided else (None, result.frame.index)
        self._emit(self.policy.person_alerts(result.events, thumbnails)
                   + self.policy.totals_alerts(result.totals, *when))

    def on_interval(self, summary: IntervalSummary) -> None:
        self._emit(self.policy.interval_alerts([summary]))

    def _emit(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            for listener in self.listeners:
                listener(alert)


def jsonl_listener(events_log) -> AlertListener:
    """A listener that appends each alert to an :class:`~maskwatch.sinks.events.EventJsonl`."""
    return lambda alert: events_log.write_record(alert_record(alert))
