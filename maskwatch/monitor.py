"""``Monitor``: runs a :class:`~maskwatch.pipeline.Pipeline` and fans its stream out to sinks.

The one runtime loop shared by ``maskwatch --headless`` and the desktop app's worker thread. The
monitor decides nothing about outputs: every consumer is a :class:`~maskwatch.sinks.Sink`
(CSV log, JSONL events, snapshots, video, alerts, the console, the GUI's mailbox). For each
``FrameResult`` the sinks get, in this order:

1. ``on_event(e)`` for each event decided on the frame;
2. ``on_interval(summary)`` when the frame closed an interval;
3. ``on_result(result)``, for frames and for status updates alike (``result.frame is None``
   while a live source is connecting or reconnecting: see :mod:`maskwatch.sinks.base`).

Sinks that want to know which mask classifier is in use (the event log's ``model`` key, the
collector's crop margin) have an optional ``on_model(info)`` (a
:class:`~maskwatch.classification.ModelInfo`): called once the sinks are open, and again before
the first result the pipeline produced with a swapped model (:meth:`Monitor.swap_model`).

Each call goes to every sink even when an earlier sink raised (a full disk for the video must not
cost the CSV its row); the first error then ends the run. Whatever ends it (the source ending,
:meth:`Monitor.stop`, a signal, an error), the partial interval is handed to every sink and every
sink is closed, each even if another fails, before :meth:`Monitor.run` returns or re-raises.

Example (needs the shipped model)::

    from maskwatch.config import Config
    from maskwatch.sinks import sinks_from_config
    config = Config(source="clip.mp4", log=Path("counts.csv"), interval_s=10)
    totals = Monitor(config, sinks=sinks_from_config(config)).run()  # monitor.stop() from elsewhere
    print(totals.people_seen, totals.by_label)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from maskwatch.classification import MaskClassifier
from maskwatch.config import Config
from maskwatch.errors import MaskwatchError
from maskwatch.pipeline import Pipeline
from maskwatch.results import FrameResult, Totals
from maskwatch.sinks import sinks_from_config

log = logging.getLogger("maskwatch.monitor")

SinkErrorHandler = Callable[[object, BaseException], None]


def load_checked_classifier(path):
    """A :class:`~maskwatch.classification.MaskClassifier` for ``path`` that has classified a
    blank face once: a model that loads but cannot run fails here, before it replaces one that
    works. Every problem is a one-line ``MaskwatchError``."""
    import numpy as np

    if path is None or not str(path).strip():
        raise MaskwatchError("no model file given")
    classifier = MaskClassifier(path)
    size = classifier.input_size
    try:
        probs = classifier.classify(np.zeros((1, size, size, 3), np.uint8))
    except (ValueError, RuntimeError) as e:
        raise MaskwatchError(f"model {classifier.info.short_path()} does not run: {str(e).splitlines()[0]}") from None
    if probs.shape != (1, 3) or not np.all(np.isfinite(probs)):
        raise MaskwatchError(f"model {classifier.info.short_path()} gives no probabilities for a blank face")
    return classifier


def fan_out(result: FrameResult, sinks: Iterable) -> BaseException | None:
    """Hand one result to every sink (events, then the closed interval, then the result).

    Returns the first exception a sink raised (after every sink had its turn), ``None`` if none.
    """
    return _deliver(result, [(sink, None) for sink in sinks])


def _deliver(result: FrameResult, entries) -> BaseException | None:
    calls = [(lambda s, e=e: s.on_event(e)) for e in result.events]
    if result.summary is not None:
        calls.append(lambda s: s.on_interval(result.summary))
    calls.append(lambda s: s.on_result(result))
    first = None
    for call in calls:
        for sink, on_error in entries:
            error = _call(call, sink, on_error)
            if first is None and error is not None:
                first = error
    return first


def _call(call, sink, on_error: SinkErrorHandler | None) -> BaseException | None:
    """Run ``call(sink)``; an error is returned, or handed to ``on_error`` (then ``None``)."""
    try:
        call(sink)
    except Exception as e:  # noqa: BLE001 - every sink gets its turn; the first error ends the run
        if on_error is None:
            return e
        on_error(sink, e)
    return None


class Monitor:
    """Runs a pipeline to its end (or :meth:`stop`) and feeds the sinks (see the module docstring).

    ``sinks``: the sinks (already open), or a function that opens them, called by :meth:`run` once
    the pipeline is built (models loaded, source open: a missing model or camera leaves no empty
    log behind, and a run stopped during start-up opens nothing); ``None``: those ``config`` names
    (``maskwatch.sinks.sinks_from_config``), opened the same way. The monitor closes them all
    when the run ends. :meth:`add_sink` / :meth:`remove_sink` change them while it runs (the
    desktop app's Record button).

    Plain functions (a script, a benchmark) go in as a ``maskwatch.sinks.CallbackSink``.

    The pipeline is built inside :meth:`run` (so a GUI can create the monitor in its own thread and
    run it in a worker) unless one is given; ``classifier``: a mask classifier already loaded for
    that pipeline (``maskwatch serve`` checks the model before a worker starts and hands it over,
    so it is not loaded twice).
    """

    def __init__(
        self,
        config: Config,
        sinks: Iterable | Callable[[], Iterable] | None = None,
        pipeline=None,
        classifier=None,
    ):
        self.config = config
        self.pipeline = pipeline
        self._classifier = classifier  # for the pipeline run() builds: one already loaded (and checked)
        self.totals = Totals()
        self.rows_written = 0
        self._stop = threading.Event()
        self._lock = threading.RLock()  # re-entrant: swap_model may run in a signal handler of the run's thread
        if sinks is None:
            def sinks():
                return sinks_from_config(config)
        self._open_sinks = sinks if callable(sinks) else None
        self._entries: list[tuple[object, SinkErrorHandler | None]] = [] if callable(sinks) else [(s, None) for s in sinks]
        self._finished = False
        self._finishing = threading.Event()
        self._pending_classifier = None  # swapped in before the pipeline was built
        self._model_told = None  # the ModelInfo the sinks were last told about

    @property
    def finishing(self) -> bool:
        """The run is over and the monitor is writing the last interval and closing the sinks:
        interrupting now (a second Ctrl-C) would leave files half written."""
        return self._finishing.is_set()

    @property
    def sinks(self) -> list:
        with self._lock:
            return [sink for sink, _ in self._entries]

    def add_sink(self, sink, on_error: SinkErrorHandler | None = None) -> bool:
        """Feed ``sink`` from the next result on (thread-safe). ``False`` when the run is over (the
        sink is then not used; close it yourself).

        ``on_error(sink, error)``: an error of this sink removes and closes it and is handed to
        ``on_error`` instead of ending the run (a recording may fail; the monitoring goes on).
        """
        with self._lock:
            if self._finished:
                return False
            self._entries = [*self._entries, (sink, on_error)]
            return True

    def remove_sink(self, sink, close: bool = True) -> None:
        """Stop feeding ``sink`` (thread-safe) and, by default, close it (a video is finalised).

        With ``close`` the sink is closed even when the monitor no longer has it (the run ended and
        is closing its sinks in its own thread): sinks' ``close`` is idempotent, and a thread-safe
        one (``VideoSink``) returns once the file is complete, whoever closed it first.
        """
        with self._lock:
            self._entries = [(s, h) for s, h in self._entries if s is not sink]
        if close:
            sink.close()

    def swap_model(self, path) -> str:
        """Load and check the mask classifier at ``path`` (in the calling thread: the run goes on
        meanwhile) and have the pipeline use it from its next frame; counts, tracks and votes stay.

        Returns ``"name version (sha256 8 hex)"``. A model that cannot be loaded or does not run
        raises a one-line ``MaskwatchError`` and the model in use stays. Thread-safe: the
        desktop app calls it from its GUI thread, ``serve`` on SIGHUP; in a signal handler of the
        run's own thread it works too (the locks are re-entrant), the run then waits for the load.
        """
        classifier = load_checked_classifier(path)
        with self._lock:
            pipeline = self.pipeline
            if pipeline is None:  # not built yet: run() hands it over once it is
                self._pending_classifier = classifier
        if pipeline is not None:
            pipeline.swap_classifier(classifier)
        log.info("mask classifier %s loaded from %s", classifier.info.describe(), classifier.info.short_path())
        return classifier.info.describe()

    @property
    def model_info(self):
        """The :class:`~maskwatch.classification.ModelInfo` in use (``None`` before the pipeline is
        built, or for a classifier without one)."""
        return getattr(self.pipeline, "model_info", None)

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

        Always hands the last partial interval to the sinks and closes them, also when a stage or
        a sink raises (the first error is re-raised afterwards). A monitor stopped before it
        started returns at once, without building the pipeline.
        """
        pipeline = None
        error: BaseException | None = None
        try:
            if self.pipeline is None and not self._stop.is_set():
                built = Pipeline(self.config, classifier=self._classifier)
                with self._lock:
                    self.pipeline = built
            with self._lock:
                pipeline = self.pipeline
                pending, self._pending_classifier = self._pending_classifier, None
            if pipeline is not None and pending is not None:
                pipeline.swap_classifier(pending)
            if pipeline is not None and self._stop.is_set():  # stop() came before or while it was built
                pipeline.stop()
            if self._open_sinks is not None and pipeline is not None and not self._stop.is_set():
                opened = list(self._open_sinks())
                with self._lock:
                    self._entries = [(s, None) for s in opened] + self._entries
            for result in pipeline if pipeline is not None else ():
                error = self._tell_model(pipeline)
                if error is not None:
                    break
                self.totals = result.totals
                if result.summary is not None:
                    self.rows_written += 1
                error = self._deliver(result)
                if error is not None:
                    break
        except BaseException as e:
            error = e
        finally:
            error = self._finish(pipeline, error)
        if error is not None:
            raise error
        return self.totals

    # -- internals ---------------------------------------------------------------------------------

    def _tell_model(self, pipeline) -> BaseException | None:
        """``on_model(info)`` to the sinks that have it, when the model in use is not the one they
        were last told about (the first result, and the first after a swap)."""
        info = getattr(pipeline, "model_info", None)  # a pipeline given by a test or a script may not say
        if info is None or info == self._model_told:
            return None
        self._model_told = info
        with self._lock:
            entries = [(s, h) for s, h in self._entries if callable(getattr(s, "on_model", None))]
        first = None
        for sink, on_error in entries:
            error = _call(lambda s: s.on_model(info), sink, self._guard(on_error))
            first = first or error
        return first

    def _deliver(self, result: FrameResult) -> BaseException | None:
        with self._lock:
            entries = list(self._entries)
        return _deliver(result, [(sink, self._guard(on_error)) for sink, on_error in entries])

    def _guard(self, on_error: SinkErrorHandler | None) -> SinkErrorHandler | None:
        """An optional sink's error handler that also detaches the failed sink."""
        if on_error is None:
            return None

        def handle(sink, error):
            log.warning("%s failed and was removed: %s", type(sink).__name__, error)
            try:
                self.remove_sink(sink)
            except Exception as close_error:  # noqa: BLE001 - it failed already; say why, go on
                log.warning("closing %s failed: %s", type(sink).__name__, close_error)
            on_error(sink, error)

        return handle

    def _finish(self, pipeline, error: BaseException | None) -> BaseException | None:
        """Close the pipeline, hand its partial interval to the sinks, close every sink.

        Each step is guarded against any exception, ``KeyboardInterrupt`` included (a second
        Ctrl-C where nobody ignores it): every sink still gets the last interval and is closed,
        and the first exception is returned for :meth:`run` to raise afterwards.
        """
        self._finishing.set()
        try:
            if pipeline is not None:
                final = pipeline.close()
                self.totals = pipeline.totals
                if final is not None:
                    self.rows_written += 1
                    with self._lock:
                        entries = list(self._entries)
                    for sink, on_error in entries:
                        try:
                            failed = _call(lambda s: s.on_interval(final), sink, self._guard(on_error))
                        except BaseException as e:  # noqa: BLE001 - the others still get the row
                            failed = e
                        if failed is not None:
                            log.warning("%s could not take the last interval: %s", type(sink).__name__, failed)
                            error = error or failed
        except BaseException as e:
            error = error or e
        finally:
            with self._lock:
                self._finished = True
                entries, self._entries = list(self._entries), []
            for sink, _ in entries:
                try:
                    sink.close()
                except BaseException as e:  # noqa: BLE001 - the others still get closed
                    log.warning("closing %s failed: %s", type(sink).__name__, e)
                    error = error or e
        return error
