"""``ConsoleSink``: what ``maskwatch --headless`` prints while it runs.

stdout: one line per interval row (:func:`format_summary`), and the totals at the end
(:func:`format_totals`, printed by the CLI). ``compliance`` is per person (first label);
``masked time`` is the with_mask share of person-time (``-`` with no time), and an interval with
label changes says how many. stderr: the source's state changes once it has been
live (``maskwatch: source reconnecting (next attempt in 2.0 s)``) and alerts
(``maskwatch: alert: <time> <message>``). ``quiet`` keeps only the totals.

>>> import io
>>> from maskwatch.results import Totals
>>> format_totals(Totals(people_seen=2, by_label={"with_mask": 1, "without_mask": 1, "mask_worn_incorrectly": 0}))
'total: people 2  with_mask 1  without_mask 1  mask_worn_incorrectly 0  compliance 50%  masked time -'
>>> from maskwatch.sinks.alerts import Alert
>>> err = io.StringIO()
>>> ConsoleSink(io.StringIO(), err).print_alert(Alert("compliance", "Compliance fell to 50% (alert under 80%)", timestamp=1e9))
>>> err.getvalue().startswith("maskwatch: alert: ") and err.getvalue().endswith(" Compliance fell to 50% (alert under 80%)\\n")
True
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TextIO

from maskwatch import LABELS
from maskwatch.frames import SourceState
from maskwatch.records import iso_time, state_text
from maskwatch.sinks.base import BaseSink

if TYPE_CHECKING:  # keeps ``import maskwatch.cli`` (which imports this module) free of numpy
    from maskwatch.results import FrameResult, IntervalSummary, Stats

PROG = "maskwatch"


def _pct(rate) -> str:
    return "-" if rate is None else f"{100 * rate:.0f}%"


def format_summary(summary: IntervalSummary, timespec: str = "seconds") -> str:
    """One human line per interval row (``timespec`` as the CSV log's: see ``timespec_for``)."""
    state = state_text(summary.source_state)
    labels = "  ".join(f"{k} {summary.by_label.get(k, 0)}" for k in LABELS)
    end = iso_time(summary.end, timespec)
    n = summary.label_changes
    changes = f"  {n} label change{'s' if n != 1 else ''}" if n else ""
    return (f"{iso_time(summary.start, timespec)} .. {end[11:]}  frames {summary.frames}  "
            f"faces {summary.faces}  people {summary.people_seen}  {labels}  "
            f"compliance {_pct(summary.compliance_rate)}  masked time {_pct(summary.masked_time_share)}{changes}  "
            f"fps {summary.fps:.1f}  "
            f"dropped {summary.dropped_frames}  {state}")


def format_totals(totals) -> str:
    """The final line of a headless run."""
    labels = "  ".join(f"{k} {totals.by_label.get(k, 0)}" for k in LABELS)
    return (f"total: people {totals.people_seen}  {labels}  compliance {_pct(totals.compliance_rate)}  "
            f"masked time {_pct(totals.masked_time_share)}")


class ConsoleSink(BaseSink):
    """Prints interval lines to ``out``, state changes and alerts to ``err`` (see the module docstring).

    ``hold_source_warnings``: until the first frame, the source's own warnings (``maskwatch.sources``
    log) are held back, so trouble opening a camera or file ends in ONE error line; from the first
    frame on (and after ``close``) they are shown.
    """

    def __init__(self, out: TextIO, err: TextIO, *, quiet: bool = False, timespec: str = "seconds",
                 hold_source_warnings: bool = False):
        self.out = out
        self.err = err
        self.quiet = quiet
        self.timespec = timespec
        self._last_state = None
        self._retry_reason: str | None = None  # the last "not reachable yet" reason printed
        self._source_log = logging.getLogger("maskwatch.sources")
        self._holding = hold_source_warnings and self._source_log.level == logging.NOTSET
        if self._holding:
            self._source_log.setLevel(logging.CRITICAL)

    def on_result(self, result: FrameResult) -> None:
        if result.frame is None:
            if self._last_state is not None:  # state changes are news once the source has been live
                self._show_state(result.stats)
            else:
                self._show_not_yet_open(result.stats)
            return
        self._release_source_warnings()
        self._show_state(result.stats)

    def on_interval(self, summary: IntervalSummary) -> None:
        if not self.quiet:
            print(format_summary(summary, self.timespec), file=self.out, flush=True)

    def print_alert(self, alert) -> None:
        """An alert listener (:class:`~maskwatch.sinks.alerts.AlertSink`): one line on ``err``."""
        if self.quiet:
            return
        when = alert.timestamp if alert.timestamp is not None else alert.at
        print(f"{PROG}: alert: {iso_time(when)} {alert.message}", file=self.err, flush=True)

    def close(self) -> None:
        self._release_source_warnings()

    def _release_source_warnings(self) -> None:
        if self._holding:
            self._holding = False
            self._source_log.setLevel(logging.NOTSET)

    def _show_not_yet_open(self, stats: Stats) -> None:
        """Before the first frame: a camera that is down is retried; say why, once per reason."""
        if stats.source_state != SourceState.RECONNECTING or not stats.source_error or self.quiet:
            return
        if stats.source_error == self._retry_reason:
            return
        self._retry_reason = stats.source_error
        extra = f" (next attempt in {stats.reconnect_in:.1f} s)" if stats.reconnect_in else ""
        print(f"{PROG}: source not reachable yet: {stats.source_error}; retrying{extra}, Ctrl+C stops",
              file=self.err, flush=True)

    def _show_state(self, stats: Stats) -> None:
        state = stats.source_state
        if self._last_state is not None and state != self._last_state and not self.quiet:
            extra = f" (next attempt in {stats.reconnect_in:.1f} s)" if stats.reconnect_in else ""
            print(f"{PROG}: source {state_text(state)}{extra}", file=self.err, flush=True)
        self._last_state = state
