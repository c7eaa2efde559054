"""``Sink``: the one shape of everything that consumes what the monitor produces.

A sink gets four calls (supervision's sinks have the same habit: small classes, one job each, used
as context managers):

- ``on_result(result)`` for every :class:`~maskwatch.results.FrameResult` the pipeline yields,
  **including status updates**: while a live source delivers no frame (connecting,
  reconnecting) the pipeline yields results whose ``frame`` is ``None`` (state, reconnect
  countdown, dropped frames in ``result.stats``). A sink that draws or writes frames skips those;
  a sink that shows health (the console, the GUI) reads them. One method, so a status update can
  never be missed by a sink that forgot a second method.
- ``on_event(event)`` for every :class:`~maskwatch.results.Event` (``person_seen``,
  ``label_decided``, ``track_ended``), before the ``on_result`` of the frame that decided it;
- ``on_interval(summary)`` for every :class:`~maskwatch.results.IntervalSummary` (one CSV row),
  including the final partial one written when the run ends (source ended, stop, signal, error);
- ``close()`` once at the end of the run, even when the run failed: flush and release files.

:class:`BaseSink` has no-op defaults, so a sink only writes the methods it needs.
:class:`CallbackSink` adapts plain functions.

>>> from maskwatch.results import IntervalSummary
>>> rows = []
>>> sink = CallbackSink(on_interval=rows.append)
>>> isinstance(sink, Sink)
True
>>> sink.on_interval("a row"); sink.on_event("ignored"); sink.close()
>>> rows
['a row']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # light at import: the CLI imports the console sink before its signal handlers matter
    from maskwatch.results import Event, FrameResult, IntervalSummary


@runtime_checkable
class Sink(Protocol):
    """What :class:`~maskwatch.monitor.Monitor` feeds (see the module docstring for when)."""

    def on_result(self, result: FrameResult) -> None: ...

    def on_event(self, event: Event) -> None: ...

    def on_interval(self, summary: IntervalSummary) -> None: ...

    def close(self) -> None: ...


class BaseSink:
    """No-op defaults for the four calls, and ``with`` support (``close`` on exit)."""

    def on_result(self, result: FrameResult) -> None:
        pass

    def on_event(self, event: Event) -> None:
        pass

    def on_interval(self, summary: IntervalSummary) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CallbackSink(BaseSink):
    """A sink made of plain functions (each optional).

    ``on_status`` gets the ``Stats`` of status updates (results without a frame); when it is given,
    ``on_result`` only gets results with a frame, as the monitor's old ``on_result`` callback did.
    """

    def __init__(
        self,
        on_result: Callable[[FrameResult], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
        on_interval: Callable[[IntervalSummary], None] | None = None,
        on_status=None,
        on_close: Callable[[], None] | None = None,
    ):
        self._on_result = on_result
        self._on_event = on_event
        self._on_interval = on_interval
        self._on_status = on_status
        self._on_close = on_close

    def on_result(self, result: FrameResult) -> None:
        if result.frame is None and self._on_status is not None:
            self._on_status(result.stats)
        elif self._on_result is not None:
            self._on_result(result)

    def on_event(self, event: Event) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def on_interval(self, summary: IntervalSummary) -> None:
        if self._on_interval is not None:
            self._on_interval(summary)

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
