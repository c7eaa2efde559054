"""``Monitor``: runs a :class:`~maskwatch.pipeline.Pipeline` and feeds every sink.

The one runtime loop shared by ``maskwatch --headless`` and the desktop app's worker thread:
interval rows go to the CSV log, events to the JSONL log, ``without_mask`` /
``mask_worn_incorrectly`` decisions to snapshots (each only when configured), and every processed
frame to ``on_result``. Whatever ends the run (the source ending, :meth:`Monitor.stop`, an error
mid-run), the partial interval is written before :meth:`Monitor.run` returns or raises, so
nothing already counted is lost.

Example (needs the shipped model)::

    from maskwatch.config import Config
    monitor = Monitor(Config(source="clip.mp4", log=Path("counts.csv"), interval_s=10))
    totals = monitor.run()          # blocks; monitor.stop() from another thread or a signal handler
    print(totals.people_seen, totals.by_label)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from maskwatch.config import Config
from maskwatch.results import FrameResult, IntervalSummary, Stats, Totals

log = logging.getLogger("maskwatch.monitor")


class Monitor:
    """Runs a pipeline to its end (or :meth:`stop`) and writes the sinks.

    ``on_result`` gets every processed frame's ``FrameResult`` (in the thread calling
    :meth:`run`). Optional callbacks: ``on_summary(IntervalSummary)`` for every row written
    (including the final partial one) and ``on_status(Stats)`` for the pipeline's status updates
    while a live source delivers no frames (connecting / reconnecting).

    The pipeline is built inside :meth:`run` (so a GUI can create the monitor in its own thread and
    run it in a worker) unless one is given.
    """

    def __init__(
        self,
        config: Config,
        on_result: Callable[[FrameResult], None] | None = None,
        pipeline=None,
        *,
        on_summary: Callable[[IntervalSummary], None] | None = None,
        on_status: Callable[[Stats], None] | None = None,
    ):
        self.config = config
        self.on_result = on_result
        self.on_summary = on_summary
        self.on_status = on_status
        self.pipeline = pipeline
        self.totals = Totals()
        self.rows_written = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def stop(self) -> None:
        """End the run after the current frame. Thread-safe; safe in a signal handler."""
        self._stop.set()
        pipeline = self.pipeline
        if pipeline is not None:
            pipeline.stop()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self) -> Totals:
        """Process until the source ends or :meth:`stop`; returns the totals (unique people).

        Always writes the last partial interval, also when a stage raises (the error is re-raised
        after the row is written).
        """
        if self.pipeline is None:
            from maskwatch.pipeline import Pipeline

            pipeline = Pipeline(self.config)
            with self._lock:
                self.pipeline = pipeline
        pipeline = self.pipeline
        if self._stop.is_set():  # stop() came while the pipeline was being built
            pipeline.stop()
        csv_log = events_log = snapshots = None
        try:
            from maskwatch.sinks import EventJsonl, IntervalCsvLog, SnapshotSaver

            if self.config.log is not None:
                csv_log = IntervalCsvLog(self.config.log)
            if self.config.events is not None:
                events_log = EventJsonl(self.config.events)
            if self.config.snapshots is not None:
                snapshots = SnapshotSaver(self.config.snapshots)
            for result in pipeline:
                if result.events:
                    if events_log is not None:
                        events_log.write_all(result.events)
                    if snapshots is not None and result.frame is not None:
                        snapshots.maybe_save(result.frame.image, result.faces, result.events)
                if result.summary is not None:
                    self._write_row(csv_log, result.summary)
                self.totals = result.totals
                if result.frame is None:
                    if self.on_status is not None:
                        self.on_status(result.stats)
                elif self.on_result is not None:
                    self.on_result(result)
        finally:
            try:
                final = pipeline.close()
                if final is not None:
                    self._write_row(csv_log, final)
                self.totals = pipeline.totals
            finally:
                for sink in (csv_log, events_log):
                    if sink is not None:
                        sink.close()
        return self.totals

    def _write_row(self, csv_log, summary: IntervalSummary) -> None:
        if csv_log is not None:
            csv_log.write(summary)
        self.rows_written += 1
        if self.on_summary is not None:
            self.on_summary(summary)
