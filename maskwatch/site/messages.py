"""What a camera's worker tells the supervisor, over its own pipe: one small frozen dataclass each.

The worker (:mod:`maskwatch.site.worker`) sends them, the supervisor
(:mod:`maskwatch.site.supervisor`) handles them; they cross the pipe pickled, so each holds only
plain values (text, numbers, dicts of counts) and is picklable by reference to this module. Every
message names its camera.

>>> import pickle
>>> m = WorkerError("door", "cannot read video x.mp4", permanent=True)
>>> pickle.loads(pickle.dumps(m)) == m, m.permanent
(True, True)
>>> StateChanged("door", "live")
StateChanged(camera='door', state='live')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

EXIT_PERMANENT = 3
"""A worker's exit status: the camera cannot work as configured; do not restart it."""
EXIT_RETRY = 4
"""A worker's exit status: the camera failed (unreachable at start); restart it with backoff."""
STATS_EVERY_S = 5.0
"""How often a worker sends its speed (fps, capture-to-label latency) to the supervisor, unless
``[serve] stats_every_s`` says (then the supervisor logs it as an ordinary line, else in --debug)."""


@dataclass(frozen=True)
class StateChanged:
    """The camera's source state changed (``connecting`` / ``live`` / ``reconnecting`` / ``ended``)."""

    camera: str
    state: str


@dataclass(frozen=True)
class InView:
    """The people in view now changed: decided label -> count."""

    camera: str
    counts: Mapping[str, int]


@dataclass(frozen=True)
class OutboxWritten:
    """A row was written to the history database (the MQTT outbox): publish it now."""

    camera: str


@dataclass(frozen=True)
class LogLine:
    """One log line of the worker (already redacted; the supervisor redacts it again and writes it)."""

    camera: str
    level: int
    text: str


@dataclass(frozen=True)
class RunTotals:
    """The running worker's totals so far (sent with each interval row and when it closes)."""

    camera: str
    rows: int
    people_seen: int
    by_label: Mapping[str, int]


@dataclass(frozen=True)
class Stats:
    """The camera's speed, every ``stats_every_s``."""

    camera: str
    fps: float
    latency_ms: float
    frames: int


@dataclass(frozen=True)
class WorkerError:
    """An error the worker met; ``permanent``: the camera cannot work as configured (not restarted)."""

    camera: str
    text: str
    permanent: bool


Message = StateChanged | InView | OutboxWritten | LogLine | RunTotals | Stats | WorkerError
"""Any message a worker sends."""
